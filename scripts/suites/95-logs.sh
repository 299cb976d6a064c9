#!/usr/bin/env bash
# No card number, CVC or PIN in any log of the test run: the suites' output in
# .test-run/logs/ and every server log the tests wrote below it. Runs after the suites
# that write logs. Looks for
#   - every public test card number (vault/tests/data/test-cards.json, plus the ones the tests
#     use), with or without spaces or dashes between the digits;
#   - a CVC, PIN or card number next to its field name ("cvc":"737", pin=123456, ...);
#   - every PIN a test saw (the tests list them in .test-run/seen-pins/), as a whole number.
# The scan is scripts/checks/log_scan.py; its tests run first.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

logs="${PCI_VAULT_TEST_LOGS:-$PWD/.test-run/logs}"
[ -d "$logs" ] || die "no logs in $logs: run the other suites first"

ensure_command python3 python3
step "unit tests of the log scan"
python3 -m unittest discover -s scripts/checks -p 'test_log_scan.py'

step "scan the logs of this run for card numbers, CVCs and PINs"
python3 scripts/checks/log_scan.py "$logs" "$PWD/.test-run/seen-pins" "$PWD/vault/tests/data/test-cards.json"
