#!/usr/bin/env bash
# Fuzz targets (fuzz/, a cargo workspace of its own): format and lints, then every target
# for a bounded time, starting from the committed seed corpus in fuzz/corpus/<target>/.
# A crash fails the suite and leaves its input in fuzz/artifacts/<target>/; reproduce it
# with `cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>`.
# PCI_VAULT_FUZZ_SECONDS sets the time per target (default 25).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

seconds=${PCI_VAULT_FUZZ_SECONDS:-25}

# libFuzzer is C++, compiled by the libfuzzer-sys crate.
ensure_command c++ g++
# cargo fuzz needs nightly (-Z sanitizer flags). Without it, and when rustup cannot fetch
# it, the stable compiler is told to accept them: same flags, same sanitizer runtime.
toolchain=+nightly
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  step "installing the nightly toolchain for cargo fuzz"
  if ! rustup toolchain install nightly --profile minimal; then
    step "no nightly toolchain: fuzzing with the stable compiler (RUSTC_BOOTSTRAP=1)"
    toolchain=+stable
    export RUSTC_BOOTSTRAP=1
  fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  step "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

step "fuzz workspace: cargo fmt --check, cargo clippy (warnings are errors)"
(cd fuzz && cargo fmt -- --check && cargo clippy --locked --all-targets -- -D warnings)

step "cargo fuzz build (address sanitizer, debug assertions, fuzz/Cargo.lock as committed)"
(cd fuzz && cargo "$toolchain" fetch --locked)
cargo "$toolchain" fuzz build -a

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
targets=$(cargo "$toolchain" fuzz list)
[ -n "$targets" ] || die "cargo fuzz list found no target"
for target in $targets; do
  [ -d "fuzz/corpus/$target" ] || die "fuzz target $target has no seed corpus in fuzz/corpus/$target"
  step "fuzzing $target for ${seconds}s"
  mkdir -p "$work/$target"
  log="$work/$target.log"
  # New inputs go to the scratch corpus (first directory); the seeds are only read.
  if ! cargo "$toolchain" fuzz run -a "$target" "$work/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=20 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 80 "$log"
    printf 'fuzz target %s ... FAILED\n' "$target"
    die "fuzz target $target failed; its input is in fuzz/artifacts/$target/"
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  [ -n "$runs" ] && [ "$runs" -gt 0 ] || die "fuzz target $target ran no input"
  printf 'fuzz target %s ... ok (%s runs in %ss)\n' "$target" "$runs" "$seconds"
done
