#!/usr/bin/env python3
"""PCI DSS traceability: every test that docs/PCI-DSS.md names ran and passed in this run.

Reads the requirement table of docs/PCI-DSS.md (rows of | requirement | what it asks | how |
tests |, tests named `cargo:`, `fuzz:`, `tap:` or `pytest:` as the top of that file
describes) and the output the earlier suites of scripts/test left in PCI_VAULT_TEST_LOGS,
and fails when a required requirement has no row, a row names no test and is not the
deployer's duty, or a named test did not run or did not pass.

Usage: traceability.py PCI-DSS.md   (PCI_VAULT_TEST_LOGS: the logs directory;
PCI_VAULT_SUITE_PID: the suite's shell, to find the scripts/test run it belongs to)
Standard library only.
"""

import os
import re
import sys

# The requirements the table must have a row for.
REQUIRED = ["3.2.1", "3.3.1", "3.3.2", "3.4.1", "3.5.1", "3.6.1", "3.7.1", "3.7.2",
            "3.7.3", "3.7.4", "3.7.5", "3.7.6", "3.7.7", "4.2.1", "6.2.4", "8.3.4",
            "10.2.1", "10.2.2"]
RUNNERS = ("cargo", "fuzz", "tap", "pytest")
# This suite's own log, being written while it runs.
OWN_LOG_PREFIX = "90-traceability"

RUNNING = re.compile(r"^\s*Running .*\(.*[/\\]deps[/\\]([A-Za-z0-9_]+)-[0-9a-f]+(?:\.exe)?\)\s*$")
CARGO_TEST = re.compile(r"^test (\S+) \.\.\. (ok|FAILED|ignored)\b")
FUZZ_LINE = re.compile(r"^fuzz target (\S+) \.\.\. (ok|FAILED)\b")
TAP_LINE = re.compile(r"^\s*(not ok|ok) \d+ - (.*?)(?:\s+#\s*(.*))?\s*$")
PYTEST_LINE = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")


def run_started(pid):
    """When the scripts/test process above `pid` started (seconds since the epoch), found
    by walking up the process tree; None when there is none (run on its own)."""
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    while pid > 1:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        if any(a.endswith(b"scripts/test") for a in args[:2]):
            return boot + int(fields[19]) / ticks
        pid = int(fields[1])
    return None


def parse_table(lines):
    """The requirement rows of the table: ({requirement: [(runner, test)]}, problems)."""
    rows, problems = {}, []
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 4:
            continue
        m = re.fullmatch(r"\**(\d+(?:\.\d+)+)\**", cells[0])
        if not m:
            continue
        req = m.group(1)
        if req in rows:
            problems.append(f"requirement {req} has two rows")
        refs = re.findall(r"`([a-z]+):([^`]+)`", cells[3])
        for runner, _ in refs:
            if runner not in RUNNERS:
                problems.append(
                    f"{req}: unknown runner {runner!r} (known: {', '.join(RUNNERS)})")
        if not refs and not cells[2].startswith("**Deployer"):
            problems.append(f"{req}: names no test and does not say it is the deployer's duty")
        rows[req] = refs
    for req in REQUIRED:
        if req not in rows:
            problems.append(f"requirement {req} is missing from the table")
    return rows, problems


def select_logs(logs_dir, started):
    """The logs of this run: every *.log in `logs_dir` but this suite's own, and, when the
    run's start is known, none written before it. Returns (paths, notes to print)."""
    paths, notes = [], []
    names = sorted(os.listdir(logs_dir)) if os.path.isdir(logs_dir) else []
    for name in names:
        path = os.path.join(logs_dir, name)
        if not name.endswith(".log") or name.startswith(OWN_LOG_PREFIX):
            continue
        if started is not None and os.path.getmtime(path) < started - 1:
            notes.append(f"ignoring {name}: written by an earlier run")
            continue
        paths.append(path)
    if started is None:
        notes.append(f"warning: not run by scripts/test; every log in {logs_dir} counts")
    return paths, notes


def parse_results(lines, passed, failed):
    """Adds the (runner, test) pairs that passed and failed in one log's lines."""
    binary = None
    for raw in lines:
        line = raw.rstrip("\n")
        if (m := RUNNING.match(line)):
            binary = m.group(1)
        elif line.lstrip().startswith("Doc-tests "):
            binary = "doc-tests:" + line.split()[-1]
        elif (m := CARGO_TEST.match(line)) and binary:
            key = ("cargo", f"{binary}::{m.group(1)}")
            (passed if m.group(2) == "ok" else failed).add(key)
        elif (m := FUZZ_LINE.match(line)):
            (passed if m.group(2) == "ok" else failed).add(("fuzz", m.group(1)))
        elif (m := TAP_LINE.match(line)):
            skipped = (m.group(3) or "").upper().startswith(("SKIP", "TODO"))
            ok = m.group(1) == "ok" and not skipped
            (passed if ok else failed).add(("tap", m.group(2)))
        elif (m := PYTEST_LINE.match(line)):
            (passed if m.group(2) == "PASSED" else failed).add(("pytest", m.group(1)))


def check_named(rows, passed, failed):
    """Problems with the named tests (failed, skipped or absent) and how many are named."""
    problems, named = [], 0
    for req, refs in rows.items():
        for runner, name in refs:
            named += 1
            key = (runner, name.strip())
            if key in failed:
                problems.append(f"{req}: {runner}:{name} failed (or was skipped) in this run")
            elif key not in passed:
                problems.append(f"{req}: {runner}:{name} did not run in this run")
    return problems, named


def main(argv):
    table_path = argv[1]
    logs_dir = os.environ["PCI_VAULT_TEST_LOGS"]
    with open(table_path, encoding="utf-8") as f:
        rows, problems = parse_table(f)

    pid = int(os.environ.get("PCI_VAULT_SUITE_PID", os.getppid()))
    paths, notes = select_logs(logs_dir, run_started(pid))
    for note in notes:
        print(note)

    passed, failed = set(), set()
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            parse_results(f, passed, failed)

    named_problems, named = check_named(rows, passed, failed)
    problems += named_problems

    for req, refs in rows.items():
        print(f"{req:>7}  {len(refs)} test(s)")
    if problems:
        print("\nPCI DSS traceability check failed:")
        for p in problems:
            print("  -", p)
        return 1
    print(f"\n{len(rows)} requirements, {named} named tests: all ran and passed in this run")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
