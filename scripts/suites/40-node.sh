#!/usr/bin/env bash
# The Node.js binding (bindings/node) and the Cognigy extension (examples/cognigy-extension):
# builds the native module with @napi-rs/cli — the build the npm package ships, linked
# against glibc 2.17 with napi-rs's cross toolchain — then runs both packages' `node --test`
# suites against it, with a throwaway redis-server; the extension's suite runs twice, in
# process and through a real pci-vault-server. The binding also runs with its keys in an HSM
# (a SoftHSM2 token) and in AWS KMS (moto's server).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

ensure_command node nodejs
ensure_command npm npm
ensure_command redis-server redis-server
ensure_command redis-cli redis-tools
# The cross toolchain is an npm package holding a .tar.xz.
ensure_command xz xz-utils

for package in bindings/node examples/cognigy-extension; do
  # npm ci when node_modules is missing or older than the lock file (npm writes
  # node_modules/.package-lock.json on every install).
  if [ ! -d "$package/node_modules" ] || [ "$package/package-lock.json" -nt "$package/node_modules/.package-lock.json" ]; then
    step "npm ci ($package)"
    (cd "$package" && npm ci --no-audit --no-fund)
  fi
done

# One command, always the same (release profile, this crate's features, the glibc 2.17
# toolchain), so cargo reuses what it built last time instead of rebuilding the
# dependencies; the release check (60-release) packs this same build.
step "napi build (bindings/node, release, glibc 2.17 baseline)"
(cd bindings/node && npm run build)

# The server the extension's server transport calls: the same build as 30-server's.
step "cargo build -p pci-vault-server"
cargo build -p pci-vault-server --locked
export PCI_VAULT_SERVER_BIN="$PWD/target/debug/pci-vault-server"

start_redis
key_work=$(mktemp -d)
on_exit "rm -rf '$key_work'"
key_custody "$key_work" "$PCI_VAULT_SERVER_BIN"

step "node --test (bindings/node)"
(cd bindings/node && npm test)

step "node --test (bindings/node, keys in SoftHSM2 and in moto's KMS)"
(cd bindings/node && node --test test/custody/*.test.js)

step "node --test (examples/cognigy-extension)"
(cd examples/cognigy-extension && npm test)
