#!/usr/bin/env bash
# Release check of the Rust crates: `cargo package` for every publishable crate of the
# workspace, in one command, offline (crates from ~/.cargo/registry). Cargo packages them in
# dependency order and verifies each .crate by building it alone, with its dependencies from
# crates.io and the crates of this workspace from the .crate files it just made, as
# `cargo publish` will. Then each .crate must carry LICENSE and README.md, and pci-vault's
# published manifest no dev-dependency on a crate that depends on pci-vault.
# Run by scripts/suites/60-release.sh (it sets PCI_VAULT_RELEASE_DIR).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
[ -n "${PCI_VAULT_RELEASE_DIR:-}" ] || die "run from scripts/suites/60-release.sh"

# What ships to crates.io, in dependency order. Everything else in the workspace says
# publish = false (test kit, benchmarks, bindings, the example server).
crates=(pci-vault pci-vault-memory pci-vault-pkcs11 pci-vault-aws-kms pci-vault-keys pci-vault-redis
  pci-vault-config pci-vault-webhooks)
publishable=$(cargo metadata --format-version 1 --no-deps --locked | python3 -c '
import json, sys
for package in json.load(sys.stdin)["packages"]:
    if package["publish"] != []:
        print(package["name"])' | sort | tr '\n' ' ')
expected=$(printf '%s\n' "${crates[@]}" | sort | tr '\n' ' ')
[ "$publishable" = "$expected" ] \
  || die "publishable crates are: $publishable; this check packages: $expected"

packages=()
for crate in "${crates[@]}"; do packages+=(-p "$crate"); done
# Cargo unpacks the .crate files it just made into a registry of its own under
# ~/.cargo/registry/src/-<hash>/, a directory named after the target directory, and does not
# unpack them again while that directory exists: after a change to one of these crates, a
# second run on the same checkout would verify the others against the first run's source.
# Those directories hold nothing but this workspace's packages (crates.io's is
# index.crates.io-*); they go before each run.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
for crate in "${crates[@]}"; do
  rm -rf "$cargo_home"/registry/src/-*/"$crate"-[0-9]*
done
# Nor does it check its builds of them against their sources again (a registry crate of one
# version never changes): those builds go too. They are the ones whose dependency files
# name sources unpacked there.
target_dir=$(cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
for info in "$target_dir"/debug/deps/pci_vault*.d; do
  [ -f "$info" ] && grep -q 'registry/src/-[^/]*/pci-vault' "$info" || continue
  unit=$(basename "$info" .d)
  rm -f "$target_dir/debug/deps/lib$unit".* "$target_dir/debug/deps/$unit".*
  rm -rf "$target_dir/debug/.fingerprint/${unit//_/-}"
done
step "cargo package ${crates[*]} (offline; each verified by building the .crate alone)"
start=$SECONDS
# --allow-dirty: the test command runs on a working tree with changes too; `cargo publish`
# itself still refuses one.
offline cargo package --locked --offline --allow-dirty "${packages[@]}"
printf '  packaged and verified in %ss\n' "$((SECONDS - start))"

version=$(cargo metadata --format-version 1 --no-deps --locked | python3 -c '
import json, sys
print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "pci-vault"))')
out="$PCI_VAULT_RELEASE_DIR/crates"
mkdir -p "$out"
for crate in "${crates[@]}"; do
  file="$target_dir/package/$crate-$version.crate"
  [ -f "$file" ] || die "cargo package made no $file"
  cp "$file" "$out/"
  listing=$(tar -tzf "$file")
  for member in Cargo.toml LICENSE README.md; do
    grep -qx "$crate-$version/$member" <<<"$listing" || die "$crate-$version.crate has no $member"
  done
  release_report "$out/$crate-$version.crate" "cargo package: built alone from the .crate (offline); LICENSE, README.md inside"
done

# pci-vault's dev-dependencies on its own backends are path-only, so that crates.io takes
# pci-vault first: cargo leaves them out of the published manifest.
manifest=$(tar -xzOf "$out/pci-vault-$version.crate" "pci-vault-$version/Cargo.toml")
if grep -Eq '^\[dev-dependencies\.pci-vault-(memory|keys)\]' <<<"$manifest"; then
  die "pci-vault's published manifest names pci-vault-memory or pci-vault-keys: crates.io would refuse it before they exist"
fi
