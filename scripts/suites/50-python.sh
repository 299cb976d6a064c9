#!/usr/bin/env bash
# The uniffi bindings (bindings/uniffi): builds the shared library and its uniffi-bindgen,
# generates the Kotlin and Swift sources (they must generate; they are not compiled here),
# builds the Python wheel with maturin, installs it into a venv under .test-run/ and runs
# the Python tests against a throwaway Redis, then with the keys in an HSM (a SoftHSM2
# token) and in AWS KMS (moto's server).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

ensure_command python3 python3
ensure_command redis-cli redis-tools
ensure_command openssl openssl
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt_install python3-venv
  python3 -c 'import venv, ensurepip' || die "python3 cannot create a venv"
fi

out="$PWD/target/uniffi/debug"
step "build libpci_vault_uniffi + its uniffi-bindgen; generate Kotlin, Swift into ${out#"$PWD"/}"
bindings/uniffi/build.sh "$out" >/dev/null
for generated in libpci_vault_uniffi.so kotlin/uniffi/pci_vault/pci_vault.kt \
  swift/pci_vault.swift swift/pci_vaultFFI.h; do
  [ -s "$out/$generated" ] || die "bindings/uniffi/build.sh did not produce $generated"
  printf '  %s\n' "$generated"
done

venv=.test-run/venv
step "Python venv ($venv): pinned build and test tools"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  -r bindings/uniffi/python/requirements-build.txt -r bindings/uniffi/python/requirements-test.txt

# A debug wheel of the library just built (the release wheel and the sdist are the release
# check's: scripts/release/check-python.sh). Always reinstall: the library may have changed.
wheels=.test-run/python-wheel
rm -rf "$wheels"
step "maturin: the pci-vault wheel (debug) into $wheels, installed into $venv"
"$venv/bin/maturin" build --locked -m bindings/uniffi/Cargo.toml -o "$wheels" >/dev/null
wheel=("$wheels"/pci_vault-*.whl)
[ -f "${wheel[0]}" ] || die "maturin built no wheel into $wheels"
printf '  %s\n' "$(basename "${wheel[0]}")"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "${wheel[0]}"

start_redis
# The keys in an HSM and in AWS KMS; pci-vault-server creates the HSM key (30-server's build).
step "cargo build -p pci-vault-server"
cargo build -p pci-vault-server --locked
key_work=$(mktemp -d)
on_exit "rm -rf '$key_work'"
key_custody "$key_work" "$PWD/target/debug/pci-vault-server"

step "pytest bindings/uniffi/python/tests (memory and Redis at $PCI_VAULT_TEST_REDIS_URL)"
cd bindings/uniffi
"../../$venv/bin/python" -m pytest -v -p no:cacheprovider --durations=5 python/tests

step "pytest bindings/uniffi/python/custody_tests (keys in SoftHSM2 and in moto's KMS)"
"../../$venv/bin/python" -m pytest -v -p no:cacheprovider python/custody_tests
