#!/usr/bin/env bash
# The Rust workspace: formatting, lints (warnings are errors), every test and doctest.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, warnings are errors)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

# The Redis backend's tests start their own redis-server processes.
ensure_command redis-server redis-server
ensure_command redis-cli redis-tools

step "cargo test (unit, conformance, integration, doctests)"
cargo test --workspace --all-features --locked
