#!/usr/bin/env bash
# Release check of the Python package (bindings/uniffi): maturin builds the release wheel
# (linked with zig against glibc 2.17, tagged manylinux2014) and the sdist; auditwheel must
# accept the wheel's tag. Then, as a user would, offline, in /tmp and with the repository on
# no path: the README's install command installs the wheel into a fresh venv and the README's
# quick start runs there; pip builds a wheel from the sdist alone and the package it installs
# runs the quick start too.
# Run by scripts/suites/60-release.sh (it sets PCI_VAULT_RELEASE_DIR).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
[ -n "${PCI_VAULT_RELEASE_DIR:-}" ] || die "run from scripts/suites/60-release.sh"

ensure_command python3 python3
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt_install python3-venv
fi
readme=bindings/uniffi/README.md
requirements=bindings/uniffi/python/requirements-build.txt

# The build tools, pinned: the venv scripts/suites/50-python.sh uses.
tools=.test-run/venv
step "Python build tools ($requirements) in $tools"
[ -x "$tools/bin/python" ] || python3 -m venv "$tools"
"$tools/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"

dist="$PCI_VAULT_RELEASE_DIR/python"
rm -rf "$dist"
mkdir -p "$dist"
step "maturin: release wheel (zig, glibc 2.17) and sdist into ${dist#"$PWD"/}"
# maturin runs zig as `python -m ziglang`: the tools venv's python first on the PATH.
PATH="$PWD/$tools/bin:$PATH" "$tools/bin/maturin" build --release --locked --zig \
  --compatibility manylinux2014 -m bindings/uniffi/Cargo.toml -o "$dist"
"$tools/bin/maturin" sdist -m bindings/uniffi/Cargo.toml -o "$dist"
wheels=("$dist"/pci_vault-*.whl)
sdists=("$dist"/pci_vault-*.tar.gz)
if [ "${#wheels[@]}" -ne 1 ] || [ ! -f "${wheels[0]}" ]; then die "expected one wheel in $dist"; fi
if [ "${#sdists[@]}" -ne 1 ] || [ ! -f "${sdists[0]}" ]; then die "expected one sdist in $dist"; fi
wheel=${wheels[0]}
sdist=${sdists[0]}
case "$(basename "$wheel")" in
  *manylinux_2_17_x86_64*) ;;
  *) die "the wheel is not tagged manylinux_2_17_x86_64 (manylinux2014): $(basename "$wheel")" ;;
esac

step "auditwheel show $(basename "$wheel")"
shown=$("$tools/bin/auditwheel" show "$wheel")
printf '%s\n' "$shown"
# auditwheel wraps its lines: compare with the line breaks taken out.
tr -s '\n ' '  ' <<<"$shown" \
  | grep -q 'consistent with the following platform tag: "manylinux_2_17_x86_64"' \
  || die "auditwheel does not accept the wheel as manylinux_2_17_x86_64"

# What a user types (the README's first sh block) and runs (its first python block).
install_command=$(python3 - "$readme" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
print(re.search(r"^```sh\n(.*?)^```$", text, flags=re.S | re.M).group(1).strip())
PY
)
[ "$install_command" = "pip install pci-vault" ] \
  || die "$readme must start with 'pip install pci-vault', not: $install_command"
place=$(mktemp -d /tmp/pci-vault-python.XXXXXX)
trap 'rm -rf "$place"' EXIT
python3 - "$readme" "$place/quick_start.py" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)
open(sys.argv[2], "w").write(blocks[0])
PY
mkdir -p "$place/wheels"
cp "$wheel" "$place/wheels/"

# in_place VENV COMMAND...: runs COMMAND offline in $place, with VENV's bin first on the PATH,
# no PYTHONPATH and no repository on any path.
in_place() {
  local venv=$1
  shift
  (cd "$place" && offline env -u PYTHONPATH -u VIRTUAL_ENV PATH="$venv/bin:$PATH" \
    CARGO_NET_OFFLINE=true "$@")
}

# check_installed VENV: the package VENV imports is VENV's own, typed, and runs the quick start.
check_installed() {
  local venv=$1
  in_place "$venv" python -c '
import pathlib, sys
import pci_vault
package = pathlib.Path(pci_vault.__file__).parent
assert str(package).startswith(sys.argv[1]), package
assert (package / "py.typed").is_file(), "no py.typed"
print("  imported", package)
' "$venv/"
  in_place "$venv" python quick_start.py
}

step "offline, in ${place}: $install_command (the wheel), then the README quick start"
python3 -m venv "$place/venv"
read -r -a install_argv <<<"$install_command"
in_place "$place/venv" "${install_argv[@]}" --no-index --find-links "$place/wheels" \
  --only-binary :all: --disable-pip-version-check -q
check_installed "$place/venv"
release_report "$wheel" "auditwheel show: manylinux_2_17_x86_64; $install_command + README quick start, offline venv in /tmp"

# A user whose platform has no wheel gets the sdist: pip builds it in isolation, which
# installs the build backend (maturin, pinned) — here from a local folder, fetched now.
step "fetch the pinned maturin wheel for pip's isolated build (from PyPI, before going offline)"
mkdir -p "$place/build-backend"
"$tools/bin/python" -m pip download -q --disable-pip-version-check --only-binary :all: \
  --no-deps -d "$place/build-backend" "$(grep '^maturin==' "$requirements")"
cp "$sdist" "$place/"
step "offline, in ${place}: pip wheel $(basename "$sdist") (cargo offline, crates from ~/.cargo/registry)"
# A debug build: one cargo build serves both the library and the uniffi-bindgen maturin runs
# (a release build compiles every crate twice); what is checked is that the sdist builds.
# Build time: the compiled crates.io dependencies come from the workspace's target/. The
# workspace's own crates are cleaned from it first, so that each compiles from the sdist's
# files (the log must show it); the next build in the repository compiles them again.
target_dir=$(cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
own=(pci-vault pci-vault-memory pci-vault-keys pci-vault-redis pci-vault-config pci-vault-uniffi)
clean=()
for crate in "${own[@]}"; do clean+=(-p "$crate"); done
cargo clean --locked --offline --profile dev -q "${clean[@]}"
start=$SECONDS
in_place "$place/venv" env MATURIN_PEP517_ARGS="--profile dev" CARGO_TARGET_DIR="$target_dir" \
  python -m pip wheel --no-index --find-links "$place/build-backend" --no-deps \
  --disable-pip-version-check -v -w "$place/from-sdist" "$(basename "$sdist")" \
  >"$place/sdist-build.log" 2>&1 || { tail -40 "$place/sdist-build.log"; die "pip could not build a wheel from the sdist"; }
printf '  built in %ss\n' "$((SECONDS - start))"
for crate in "${own[@]}"; do
  grep -Eq "Compiling $crate v[^ ]+ \(/tmp/" "$place/sdist-build.log" \
    || die "$crate was not compiled from the sdist's files"
done
from_sdist=("$place/from-sdist"/pci_vault-*.whl)
[ -f "${from_sdist[0]}" ] || die "pip built no wheel from $(basename "$sdist")"
python3 -m venv "$place/sdist-venv"
in_place "$place/sdist-venv" pip install --no-index --no-deps --disable-pip-version-check -q \
  "${from_sdist[0]}"
check_installed "$place/sdist-venv"
release_report "$sdist" "pip wheel from the sdist alone (offline, cargo --offline) + README quick start"
