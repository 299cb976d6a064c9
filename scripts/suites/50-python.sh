#!/usr/bin/env bash
# The uniffi bindings (bindings/uniffi): builds the shared library and uniffi-bindgen,
# generates the Python, Kotlin and Swift sources (Kotlin and Swift must generate; they are
# not compiled here), installs the Python package into a venv under .test-run/ and runs its
# tests against a throwaway Redis.
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
step "build libpci_vault_uniffi + uniffi-bindgen; generate Python, Kotlin, Swift into ${out#"$PWD"/}"
bindings/uniffi/build.sh "$out" >/dev/null
for generated in python/pci_vault.py python/libpci_vault_uniffi.so \
  kotlin/uniffi/pci_vault/pci_vault.kt swift/pci_vault.swift swift/pci_vaultFFI.h; do
  [ -s "$out/$generated" ] || die "bindings/uniffi/build.sh did not produce $generated"
  printf '  %s\n' "$generated"
done

venv=.test-run/venv
step "Python venv ($venv): pinned test tools and the pci-vault package"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  -r bindings/uniffi/python/requirements-test.txt
# Always reinstall: the library may have changed since the last run.
PCI_VAULT_UNIFFI_DIR="$out" "$venv/bin/python" -m pip install -q --disable-pip-version-check \
  --no-build-isolation --no-deps --force-reinstall ./bindings/uniffi

start_redis

step "pytest bindings/uniffi/python/tests (memory and Redis at $PCI_VAULT_TEST_REDIS_URL)"
cd bindings/uniffi
"../../$venv/bin/python" -m pytest -v -p no:cacheprovider --durations=5 python/tests
