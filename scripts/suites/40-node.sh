#!/usr/bin/env bash
# The Node.js binding (bindings/node) and the Cognigy extension (examples/cognigy-extension):
# builds the native module with @napi-rs/cli, then runs both packages' `node --test` suites
# against it, with a throwaway redis-server.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

ensure_command node nodejs
ensure_command npm npm
ensure_command redis-server redis-server
ensure_command redis-cli redis-tools

for package in bindings/node examples/cognigy-extension; do
  if [ ! -d "$package/node_modules" ]; then
    step "npm ci ($package)"
    (cd "$package" && npm ci --no-audit --no-fund)
  fi
done

# One command, always the same (release profile, this crate's features), so cargo reuses
# what it built last time instead of rebuilding the dependencies.
step "napi build (bindings/node, release)"
(cd bindings/node && npm run build)

start_redis

step "node --test (bindings/node)"
(cd bindings/node && npm test)

step "node --test (examples/cognigy-extension)"
(cd examples/cognigy-extension && npm test)
