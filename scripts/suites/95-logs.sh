#!/usr/bin/env bash
# No card number, CVC or PIN in any log of the test run: the suites' output in
# .test-run/logs/ and every server log the tests wrote below it. Runs after the suites
# that write logs. Looks for
#   - every public test card number (vault/tests/data/test-cards.json, plus the ones the tests
#     use), with or without spaces or dashes between the digits;
#   - a CVC, PIN or card number next to its field name ("cvc":"737", pin=123456, ...);
#   - every PIN a test saw (the tests list them in .test-run/seen-pins/), as a whole number.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

logs="${PCI_VAULT_TEST_LOGS:-$PWD/.test-run/logs}"
[ -d "$logs" ] || die "no logs in $logs: run the other suites first"

step "scan the logs of this run for card numbers, CVCs and PINs"
python3 - "$logs" "$PWD/.test-run/seen-pins" "$PWD/vault/tests/data/test-cards.json" <<'PY'
import json, os, re, sys

logs, seen_dir, cards_file = sys.argv[1:4]

# The public test numbers the project's tests use, and every one in the shared list.
numbers = {
    "4242424242424242", "4000056655665556", "4111111111111111", "5555555555554444",
    "2223003122003222", "5105105105105100", "378282246310005", "371449635398431",
    "6011111111111117", "3566002020360505", "30569309025904", "6200000000000005",
    "4242424242424241",
}
with open(cards_file) as f:
    data = json.load(f)
for group in ("valid", "invalid"):
    for card in data.get(group, []):
        digits = re.sub(r"\D", "", str(card.get("number", "")))
        if len(digits) >= 12:
            numbers.add(digits)
card_patterns = [
    (n, re.compile(r"(?<![0-9])" + r"[ -]?".join(n) + r"(?![0-9])")) for n in sorted(numbers)
]

# A secret right next to its name, as a log line or a serialized map would show it.
labelled = re.compile(
    r"""(?ix)\b(cvc|cvv|cvv2|csc|security_code|pin|card_number|pan)\b
        ["']?\s*[:=]\s*["']?\s*[0-9][0-9 -]{2,22}""")

pins = set()
if os.path.isdir(seen_dir):
    for name in os.listdir(seen_dir):
        with open(os.path.join(seen_dir, name)) as f:
            pins.update(line.strip() for line in f if line.strip().isdigit())
pin_patterns = [re.compile(r"(?<![0-9.])" + p + r"(?![0-9])") for p in sorted(pins) if len(p) >= 4]

files = []
for root, _, names in os.walk(logs):
    for name in names:
        path = os.path.join(root, name)
        # This suite's own log is being written while it runs.
        if os.path.abspath(path) == os.path.abspath(os.path.join(logs, "95-logs.log")):
            continue
        files.append(path)

problems = []
total = 0
for path in sorted(files):
    with open(path, errors="replace") as f:
        text = f.read()
    total += len(text)
    rel = os.path.relpath(path, logs)
    for number, pattern in card_patterns:
        if pattern.search(text):
            problems.append(f"{rel}: a test card number ({number[:6]}…{number[-4:]})")
    for m in labelled.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        problems.append(f"{rel}:{line}: a value next to '{m.group(1)}'")
    for pattern in pin_patterns:
        m = pattern.search(text)
        if m:
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"{rel}:{line}: a PIN a test saw")

print(f"scanned {len(files)} log files ({total} bytes) for {len(numbers)} card numbers "
      f"and {len(pins)} PINs")
if problems:
    # The report names files, lines and masked numbers, never the secret itself.
    for p in problems:
        print("  " + p)
    print(f"{len(problems)} secret(s) found in the logs")
    sys.exit(1)
print("no card number, CVC or PIN in any log")
PY
