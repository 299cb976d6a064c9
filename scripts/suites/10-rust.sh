#!/usr/bin/env bash
# The Rust workspace: the compiler against the declared rust-version, formatting, lints
# (warnings are errors), API docs (warnings are errors), the dependency policy (licences,
# bans, sources), every test and doctest.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

step "rustc against the declared rust-version"
# rust-version (root Cargo.toml) is the oldest compiler the crates claim to build with; it
# is true only if the test command builds with it. Older than declared cannot build; newer
# than declared means the declared one is no longer what CI tests: CI fails until
# rust-version is raised to the compiler CI has, a laptop only warns.
declared=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -n 1)
[ -n "$declared" ] || die "no rust-version in Cargo.toml"
actual=$(rustc --version | sed -n 's/^rustc \([0-9]*\.[0-9]*\)\..*/\1/p')
[ -n "$actual" ] || die "cannot read the version of rustc: $(rustc --version)"
version_key() { local IFS=.; set -- $1; printf '%05d%05d' "$1" "${2:-0}"; }
echo "rustc $actual, rust-version $declared"
if [ "$(version_key "$actual")" -lt "$(version_key "$declared")" ]; then
  die "rustc $actual is older than the declared rust-version $declared"
elif [ "$actual" != "$declared" ]; then
  message="rustc $actual is newer than the declared rust-version $declared, which this run does not test: set rust-version = \"$actual\" in Cargo.toml"
  [ -n "${CI:-}" ] && die "$message"
  echo "warning: $message"
fi

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
# The server's webhook tests run the README's Node and Python verify examples.
ensure_command node nodejs
ensure_command python3 python3

step "cargo test (unit, conformance, integration, doctests)"
# The HSM and KMS providers need SoftHSM2 and a moto server: scripts/suites/20-keys.sh runs
# their tests.
cargo test --workspace --all-features --locked \
  --exclude pci-vault-pkcs11 --exclude pci-vault-aws-kms
