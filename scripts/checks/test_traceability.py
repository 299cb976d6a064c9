"""Tests of traceability.py: the table, the log selection, the result parsing, the verdict.

Run: python3 -m unittest discover -s scripts/checks -p 'test_traceability.py'
"""

import io
import os
import sys
import tempfile
import time
import unittest
from contextlib import redirect_stdout
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import traceability as t  # noqa: E402

HEADER = "| requirement | what it asks | how | tests |\n|---|---|---|---|\n"


def table(*rows):
    """A table with a row for every required requirement, the given rows replacing theirs."""
    given = {r.split("|")[1].strip().strip("*"): r for r in rows}
    lines = [given.pop(req, f"| {req} | x | y | `cargo:b::t_{req}` |") for req in t.REQUIRED]
    return (HEADER + "\n".join(lines + list(given.values())) + "\n").splitlines(True)


class ParseTable(unittest.TestCase):
    def test_complete_table_has_no_problem(self):
        rows, problems = t.parse_table(table())
        self.assertEqual(problems, [])
        self.assertEqual(rows["3.2.1"], [("cargo", "b::t_3.2.1")])

    def test_bold_requirement_and_several_tests(self):
        rows, _ = t.parse_table(table("| **8.3.4** | a | b | `cargo:v::x`, `tap:opens once` |"))
        self.assertEqual(rows["8.3.4"], [("cargo", "v::x"), ("tap", "opens once")])

    def test_missing_requirement(self):
        lines = [line for line in table() if not line.startswith("| 3.4.1 ")]
        _, problems = t.parse_table(lines)
        self.assertEqual(problems, ["requirement 3.4.1 is missing from the table"])

    def test_duplicate_row(self):
        lines = table() + ["| 3.4.1 | x | y | `cargo:b::again` |\n"]
        _, problems = t.parse_table(lines)
        self.assertEqual(problems, ["requirement 3.4.1 has two rows"])

    def test_unknown_runner(self):
        _, problems = t.parse_table(table("| 6.2.4 | a | b | `jest:x` |"))
        self.assertEqual(len(problems), 1)
        self.assertIn("6.2.4: unknown runner 'jest'", problems[0])

    def test_row_without_test_must_be_the_deployers(self):
        _, problems = t.parse_table(table("| 4.2.1 | a | TLS is on | none |"))
        self.assertEqual(
            problems, ["4.2.1: names no test and does not say it is the deployer's duty"])
        _, problems = t.parse_table(table("| 4.2.1 | a | **Deployer.** TLS | none |"))
        self.assertEqual(problems, [])

    def test_other_lines_are_ignored(self):
        rows, problems = t.parse_table(table() + ["text | with | bars | in | it\n",
                                                  "| not a requirement | a | b | c |\n"])
        self.assertEqual(problems, [])
        self.assertEqual(len(rows), len(t.REQUIRED))


class ParseResults(unittest.TestCase):
    def parse(self, text):
        passed, failed = set(), set()
        t.parse_results(io.StringIO(text), passed, failed)
        return passed, failed

    def test_cargo_tests_are_named_by_binary(self):
        passed, failed = self.parse(
            "     Running tests/flow.rs (target/debug/deps/flow-0123abcd)\n"
            "test reveal_once ... ok\n"
            "test locks ... FAILED\n"
            "test slow ... ignored\n"
            "   Doc-tests pci_vault\n"
            "test quick_start ... ok\n")
        self.assertEqual(passed, {("cargo", "flow::reveal_once"),
                                  ("cargo", "doc-tests:pci_vault::quick_start")})
        self.assertEqual(failed, {("cargo", "flow::locks"), ("cargo", "flow::slow")})

    def test_cargo_test_before_any_binary_is_ignored(self):
        self.assertEqual(self.parse("test orphan ... ok\n"), (set(), set()))

    def test_fuzz_tap_and_pytest(self):
        passed, failed = self.parse(
            "fuzz target sealed_record ... ok\n"
            "fuzz target card_fields ... FAILED\n"
            "ok 1 - opens once\n"
            "not ok 2 - locks\n"
            "ok 3 - later # SKIP no redis\n"
            "tests/test_a.py::test_x PASSED\n"
            "tests/test_a.py::test_y SKIPPED\n")
        self.assertEqual(passed, {("fuzz", "sealed_record"), ("tap", "opens once"),
                                  ("pytest", "tests/test_a.py::test_x")})
        self.assertEqual(failed, {("fuzz", "card_fields"), ("tap", "locks"), ("tap", "later"),
                                  ("pytest", "tests/test_a.py::test_y")})


class CheckNamed(unittest.TestCase):
    def test_verdicts(self):
        rows = {"3.2.1": [("cargo", "a::ok"), ("cargo", "a::bad"), ("tap", "absent ")]}
        problems, named = t.check_named(rows, {("cargo", "a::ok")}, {("cargo", "a::bad")})
        self.assertEqual(named, 3)
        self.assertEqual(problems, [
            "3.2.1: cargo:a::bad failed (or was skipped) in this run",
            "3.2.1: tap:absent  did not run in this run",
        ])


class SelectLogs(unittest.TestCase):
    def test_own_log_other_files_and_earlier_runs_are_left_out(self):
        with tempfile.TemporaryDirectory() as d:
            for name in ("10-rust.log", "40-node.log", "90-traceability.log", "notes.txt"):
                open(os.path.join(d, name), "w").close()
            old = time.time() - 3600
            os.utime(os.path.join(d, "40-node.log"), (old, old))
            paths, notes = t.select_logs(d, time.time() - 60)
            self.assertEqual([os.path.basename(p) for p in paths], ["10-rust.log"])
            self.assertEqual(notes, ["ignoring 40-node.log: written by an earlier run"])

            paths, notes = t.select_logs(d, None)
            self.assertEqual([os.path.basename(p) for p in paths],
                             ["10-rust.log", "40-node.log"])
            self.assertTrue(notes[-1].startswith("warning: not run by scripts/test"))

    def test_missing_directory_has_no_logs(self):
        paths, _ = t.select_logs("/nonexistent/logs", 0)
        self.assertEqual(paths, [])


class Main(unittest.TestCase):
    def run_main(self, table_lines, log_text):
        with tempfile.TemporaryDirectory() as d:
            table_path = os.path.join(d, "PCI-DSS.md")
            with open(table_path, "w", encoding="utf-8") as f:
                f.writelines(table_lines)
            logs = os.path.join(d, "logs")
            os.mkdir(logs)
            with open(os.path.join(logs, "10-rust.log"), "w") as f:
                f.write(log_text)
            out = io.StringIO()
            env = {"PCI_VAULT_TEST_LOGS": logs, "PCI_VAULT_SUITE_PID": "1"}
            with mock.patch.dict(os.environ, env), redirect_stdout(out):
                rc = t.main(["traceability.py", table_path])
            return rc, out.getvalue()

    def test_all_named_tests_passed(self):
        log = "     Running x (target/debug/deps/b-0a1b)\n" + "".join(
            f"test t_{req} ... ok\n" for req in t.REQUIRED)
        rc, out = self.run_main(table(), log)
        self.assertEqual(rc, 0, out)
        self.assertIn(f"{len(t.REQUIRED)} requirements, {len(t.REQUIRED)} named tests: "
                      "all ran and passed in this run", out)

    def test_a_missing_test_fails(self):
        rc, out = self.run_main(table(), "")
        self.assertEqual(rc, 1)
        self.assertIn("PCI DSS traceability check failed:", out)
        self.assertIn("3.2.1: cargo:b::t_3.2.1 did not run in this run", out)


if __name__ == "__main__":
    unittest.main()
