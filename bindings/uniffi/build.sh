#!/usr/bin/env bash
# Generates the Kotlin and Swift sources of the uniffi library (maturin generates the Python
# module into the wheel: see pyproject.toml). Builds libpci_vault_uniffi and the crate's own
# uniffi-bindgen (one cargo command, feature `cli`: the library's API is the same without
# it), then writes into OUT_DIR:
#   OUT_DIR/kotlin/uniffi/pci_vault/pci_vault.kt
#   OUT_DIR/swift/pci_vault.swift, pci_vaultFFI.h, pci_vaultFFI.modulemap
#   OUT_DIR/libpci_vault_uniffi.so (or .dylib): the library they load
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

(cd "$root" && cargo build --locked "${cargo_profile[@]}" -p pci-vault-uniffi --features cli)
library=$target_dir/$profile/$lib
bindgen=$target_dir/$profile/uniffi-bindgen

rm -rf "$out"
mkdir -p "$out/kotlin" "$out/swift"
for language in kotlin swift; do
  (cd "$root/bindings/uniffi" && "$bindgen" generate --no-format --library "$library" \
    --language "$language" --out-dir "$out/$language" >/dev/null)
done
cp "$library" "$out/$lib"
echo "$out"
