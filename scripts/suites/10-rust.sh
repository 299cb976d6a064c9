#!/usr/bin/env bash
# The Rust workspace: formatting, lints (warnings are errors), API docs (warnings are
# errors), the dependency policy (licences, bans, sources), every test and doctest.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, warnings are errors)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "cargo doc (all features, warnings are errors)"
# Broken or private intra-doc links, unclosed HTML, bad code blocks: the public API docs a
# reader of docs.rs would get.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked \
  --exclude pci-vault-node
# The Node binding is a cdylib: no Rust caller sees its API, so its Rust docs are for its
# maintainers, cover its private modules and may link to them.
RUSTDOCFLAGS="-D warnings --document-private-items -A rustdoc::private_intra_doc_links" \
  cargo doc -p pci-vault-node --no-deps --all-features --locked

step "cargo deny (licences, bans, sources; deny.toml)"
if ! cargo deny --version >/dev/null 2>&1; then
  step "installing cargo-deny"
  cargo install --locked cargo-deny
fi
# Advisories need the advisory database from the network; these three work offline.
cargo deny --locked check --hide-inclusion-graph licenses bans sources

# The Redis backend's tests start their own redis-server processes.
ensure_command redis-server redis-server
ensure_command redis-cli redis-tools

step "cargo test (unit, conformance, integration, doctests)"
cargo test --workspace --all-features --locked
