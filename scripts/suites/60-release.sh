#!/usr/bin/env bash
# The release check: builds every artefact a user installs (npm packages, the Cognigy
# extension tarball, the Python wheel and sdist, each crate's .crate) and installs each one
# as a user would — in a clean temporary place, with no network and the repository on no
# path — then uses it. Each check is a script in scripts/release/, run in name order; each
# appends one line per artefact to the report this suite prints at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

# Artefacts are built under .test-run/release/ (never committed) and kept for inspection.
export PCI_VAULT_RELEASE_DIR="$PWD/.test-run/release"
# Tab-separated: artefact file name, size in bytes, what was run from it.
export PCI_VAULT_RELEASE_REPORT="$PCI_VAULT_RELEASE_DIR/report.tsv"
rm -rf "$PCI_VAULT_RELEASE_DIR"
mkdir -p "$PCI_VAULT_RELEASE_DIR"
: >"$PCI_VAULT_RELEASE_REPORT"

checks=(scripts/release/check-*.sh)
[ -e "${checks[0]}" ] || die "no release checks in scripts/release/"
for check in "${checks[@]}"; do
  step "release check $(basename "$check" .sh)"
  bash "$check"
done

step "artefacts built and installed as a user would"
[ -s "$PCI_VAULT_RELEASE_REPORT" ] || die "the release checks reported no artefact"
python3 - "$PCI_VAULT_RELEASE_REPORT" <<'PY'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
width = max(len(r[0]) for r in rows)
for name, size, ran in rows:
    print(f"  {name:<{width}}  {int(size) / 1024:>9.1f} KiB  {ran}")
PY
