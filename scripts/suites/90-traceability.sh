#!/usr/bin/env bash
# PCI DSS traceability: every test that docs/PCI-DSS.md names must have run and passed in
# this run of scripts/test, in the output the earlier suites left in .test-run/logs/.
# The naming convention (cargo:, fuzz:, tap:, pytest:) is described at the top of
# docs/PCI-DSS.md. Runs last, after every suite that can produce a named test.
# The check is scripts/checks/traceability.py; its tests run first.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

ensure_command python3 python3
step "unit tests of the traceability check"
python3 -m unittest discover -s scripts/checks -p 'test_traceability.py'

step "checking docs/PCI-DSS.md against the test output of this run"
PCI_VAULT_TEST_LOGS="${PCI_VAULT_TEST_LOGS:-$PWD/.test-run/logs}" \
  PCI_VAULT_SUITE_PID=$$ python3 scripts/checks/traceability.py docs/PCI-DSS.md
