#!/usr/bin/env bash
# PCI DSS traceability: every test that docs/PCI-DSS.md names must have run and passed in
# this run of scripts/test, in the output the earlier suites left in .test-run/logs/.
# The naming convention (cargo:, fuzz:, tap:, pytest:) is described at the top of
# docs/PCI-DSS.md. Runs last, after every suite that can produce a named test.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

ensure_command python3 python3
step "checking docs/PCI-DSS.md against the test output of this run"
PCI_VAULT_TEST_LOGS="${PCI_VAULT_TEST_LOGS:-$PWD/.test-run/logs}" \
  PCI_VAULT_SUITE_PID=$$ python3 - docs/PCI-DSS.md <<'PY'
import os, re, sys, time

table_path = sys.argv[1]
logs_dir = os.environ["PCI_VAULT_TEST_LOGS"]
REQUIRED = ["3.2.1", "3.3.1", "3.3.2", "3.4.1", "3.5.1", "3.6.1", "3.7.1", "3.7.2",
            "3.7.3", "3.7.4", "3.7.5", "3.7.6", "3.7.7", "4.2.1", "6.2.4", "8.3.4",
            "10.2.1", "10.2.2"]
RUNNERS = ("cargo", "fuzz", "tap", "pytest")
problems = []


def run_started():
    """When the scripts/test process that runs this suite started (seconds since the
    epoch), found by walking up the process tree; None when run on its own."""
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        boot = next(int(l.split()[1]) for l in f if l.startswith("btime "))
    pid = int(os.environ.get("PCI_VAULT_SUITE_PID", os.getppid()))
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


# 1. The table: rows of | requirement | what it asks | how | tests |.
rows = {}
for line in open(table_path, encoding="utf-8"):
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
            problems.append(f"{req}: unknown runner {runner!r} (known: {', '.join(RUNNERS)})")
    if not refs and not cells[2].startswith("**Deployer"):
        problems.append(f"{req}: names no test and does not say it is the deployer's duty")
    rows[req] = refs
for req in REQUIRED:
    if req not in rows:
        problems.append(f"requirement {req} is missing from the table")

# 2. The logs of this run.
started = run_started()
logs = []
for name in sorted(os.listdir(logs_dir)) if os.path.isdir(logs_dir) else []:
    path = os.path.join(logs_dir, name)
    if not name.endswith(".log") or name.startswith("90-traceability"):
        continue
    if started is not None and os.path.getmtime(path) < started - 1:
        print(f"ignoring {name}: written by an earlier run")
        continue
    logs.append(path)
if started is None:
    print("warning: not run by scripts/test; every log in", logs_dir, "counts")

# 3. What passed and what failed, per runner.
passed, failed = set(), set()
running = re.compile(r"^\s*Running .*\(.*[/\\]deps[/\\]([A-Za-z0-9_]+)-[0-9a-f]+(?:\.exe)?\)\s*$")
cargo_test = re.compile(r"^test (\S+) \.\.\. (ok|FAILED|ignored)\b")
fuzz_line = re.compile(r"^fuzz target (\S+) \.\.\. (ok|FAILED)\b")
tap_line = re.compile(r"^\s*(not ok|ok) \d+ - (.*?)(?:\s+#\s*(.*))?\s*$")
pytest_line = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
for path in logs:
    binary = None
    for raw in open(path, encoding="utf-8", errors="replace"):
        line = raw.rstrip("\n")
        if (m := running.match(line)):
            binary = m.group(1)
        elif line.lstrip().startswith("Doc-tests "):
            binary = "doc-tests:" + line.split()[-1]
        elif (m := cargo_test.match(line)) and binary:
            key = ("cargo", f"{binary}::{m.group(1)}")
            (passed if m.group(2) == "ok" else failed).add(key)
        elif (m := fuzz_line.match(line)):
            (passed if m.group(2) == "ok" else failed).add(("fuzz", m.group(1)))
        elif (m := tap_line.match(line)):
            skipped = (m.group(3) or "").upper().startswith(("SKIP", "TODO"))
            ok = m.group(1) == "ok" and not skipped
            (passed if ok else failed).add(("tap", m.group(2)))
        elif (m := pytest_line.match(line)):
            (passed if m.group(2) == "PASSED" else failed).add(("pytest", m.group(1)))

# 4. Every named test ran and passed.
named = 0
for req, refs in rows.items():
    for runner, name in refs:
        named += 1
        key = (runner, name.strip())
        if key in failed:
            problems.append(f"{req}: {runner}:{name} failed (or was skipped) in this run")
        elif key not in passed:
            problems.append(f"{req}: {runner}:{name} did not run in this run")

for req, refs in rows.items():
    print(f"{req:>7}  {len(refs)} test(s)")
if problems:
    print("\nPCI DSS traceability check failed:")
    for p in problems:
        print("  -", p)
    sys.exit(1)
print(f"\n{len(rows)} requirements, {named} named tests: all ran and passed in this run")
PY
