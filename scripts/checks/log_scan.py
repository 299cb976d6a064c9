#!/usr/bin/env python3
"""No card number, CVC or PIN in any log of the test run.

Scans every file below the logs directory (the suites' output and every server log the
tests wrote there) but this suite's own log, for
  - every public test card number (the shared list, plus the ones the tests use), with or
    without spaces or dashes between the digits;
  - a CVC, PIN or card number next to its field name ("cvc":"737", pin=123456, ...);
  - every PIN a test saw (the tests list them in the seen-pins directory), as a whole number.
The report names files, lines and masked numbers, never the secret itself.

Usage: log_scan.py LOGS_DIR SEEN_PINS_DIR TEST_CARDS_JSON
Standard library only.
"""

import json
import os
import re
import sys

# The public test numbers the project's tests use, beyond the shared list.
KNOWN_NUMBERS = {
    "4242424242424242", "4000056655665556", "4111111111111111", "5555555555554444",
    "2223003122003222", "5105105105105100", "378282246310005", "371449635398431",
    "6011111111111117", "3566002020360505", "30569309025904", "6200000000000005",
    "4242424242424241",
}

# A secret right next to its name, as a log line or a serialized map would show it.
LABELLED = re.compile(
    r"""(?ix)\b(cvc|cvv|cvv2|csc|security_code|pin|card_number|pan)\b
        ["']?\s*[:=]\s*["']?\s*[0-9][0-9 -]{2,22}""")

# This suite's own log, being written while it runs.
OWN_LOG = "95-logs.log"


def card_numbers(cards_file):
    """KNOWN_NUMBERS and every number of 12 digits or more in the shared card list."""
    numbers = set(KNOWN_NUMBERS)
    with open(cards_file) as f:
        data = json.load(f)
    for group in ("valid", "invalid"):
        for card in data.get(group, []):
            digits = re.sub(r"\D", "", str(card.get("number", "")))
            if len(digits) >= 12:
                numbers.add(digits)
    return numbers


def card_patterns(numbers):
    """(number, pattern) pairs: the digits, optionally split by a space or dash, not
    inside a longer run of digits."""
    return [
        (n, re.compile(r"(?<![0-9])" + r"[ -]?".join(n) + r"(?![0-9])")) for n in sorted(numbers)
    ]


def seen_pins(seen_dir):
    """Every PIN the tests listed, one a line, in the files of `seen_dir`."""
    pins = set()
    if os.path.isdir(seen_dir):
        for name in os.listdir(seen_dir):
            with open(os.path.join(seen_dir, name)) as f:
                pins.update(line.strip() for line in f if line.strip().isdigit())
    return pins


def pin_patterns(pins):
    """A pattern per PIN of 4 digits or more: the whole number, not part of a longer one, of
    a decimal fraction, or of an identifier (a hex request id or a base64url session id
    holds runs of digits; a PIN that leaks stands apart, after `=`, `:`, a quote or a
    space)."""
    return [re.compile(r"(?<![0-9A-Za-z._-])" + p + r"(?![0-9A-Za-z_-])")
            for p in sorted(pins) if len(p) >= 4]


def log_files(logs):
    """Every file below `logs`, but this suite's own log."""
    own = os.path.abspath(os.path.join(logs, OWN_LOG))
    files = []
    for root, _, names in os.walk(logs):
        for name in names:
            path = os.path.join(root, name)
            if os.path.abspath(path) != own:
                files.append(path)
    return sorted(files)


def scan_text(rel, text, cards, pins):
    """The problems in one file's text, as report lines that hold no secret."""
    problems = []
    for number, pattern in cards:
        if pattern.search(text):
            problems.append(f"{rel}: a test card number ({number[:6]}…{number[-4:]})")
    for m in LABELLED.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        problems.append(f"{rel}:{line}: a value next to '{m.group(1)}'")
    for pattern in pins:
        m = pattern.search(text)
        if m:
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"{rel}:{line}: a PIN a test saw")
    return problems


def main(argv):
    logs, seen_dir, cards_file = argv[1:4]
    numbers = card_numbers(cards_file)
    cards = card_patterns(numbers)
    pins = seen_pins(seen_dir)
    pin_res = pin_patterns(pins)

    files = log_files(logs)
    problems = []
    total = 0
    for path in files:
        with open(path, errors="replace") as f:
            text = f.read()
        total += len(text)
        problems += scan_text(os.path.relpath(path, logs), text, cards, pin_res)

    print(f"scanned {len(files)} log files ({total} bytes) for {len(numbers)} card numbers "
          f"and {len(pins)} PINs")
    if problems:
        for p in problems:
            print("  " + p)
        print(f"{len(problems)} secret(s) found in the logs")
        return 1
    print("no card number, CVC or PIN in any log")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
