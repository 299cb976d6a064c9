#!/usr/bin/env bash
# Builds libpci_vault_uniffi and the uniffi-bindgen it was built with (one cargo command, so
# both share one feature set and nothing is built twice), then generates the Python, Kotlin
# and Swift sources into OUT_DIR:
#   OUT_DIR/python/pci_vault.py + libpci_vault_uniffi.so   (what the Python package ships)
#   OUT_DIR/kotlin/uniffi/pci_vault/pci_vault.kt
#   OUT_DIR/swift/pci_vault.swift, pci_vaultFFI.h, pci_vaultFFI.modulemap
# Usage: bindings/uniffi/build.sh [--release] [OUT_DIR]   (default: target/uniffi/<profile>)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
profile=debug
cargo_profile=()
if [ "${1:-}" = "--release" ]; then
  profile=release
  cargo_profile=(--release)
  shift
fi
out=${1:-$root/target/uniffi/$profile}
target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

case "$(uname -s)" in
  Darwin) lib=libpci_vault_uniffi.dylib ;;
  *) lib=libpci_vault_uniffi.so ;;
esac

(cd "$root" && cargo build --locked "${cargo_profile[@]}" -p pci-vault-uniffi -p pci-vault-uniffi-bindgen)
library=$target_dir/$profile/$lib
bindgen=$target_dir/$profile/uniffi-bindgen

rm -rf "$out"
mkdir -p "$out/python" "$out/kotlin" "$out/swift"
for language in python kotlin swift; do
  (cd "$root" && "$bindgen" generate --no-format --library "$library" --language "$language" \
    --out-dir "$out/$language" >/dev/null)
done
cp "$library" "$out/python/$lib"
echo "$out"
