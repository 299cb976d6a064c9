"""Tests of log_scan.py: what it finds, what it lets through, and what its report says.

Run: python3 -m unittest discover -s scripts/checks -p 'test_log_scan.py'
"""

import io
import json
import os
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import log_scan as s  # noqa: E402

CARD = "4242424242424242"


def scan(text, pins=()):
    return s.scan_text("a.log", text, s.card_patterns({CARD}), s.pin_patterns(set(pins)))


class CardNumbers(unittest.TestCase):
    def test_found_plain_spaced_and_dashed(self):
        for text in (f"pan {CARD} end", "4242 4242 4242 4242", "4242-4242-4242-4242"):
            self.assertEqual(scan(text), ["a.log: a test card number (424242…4242)"], text)

    def test_not_found_inside_a_longer_number(self):
        self.assertEqual(scan(f"1{CARD}"), [])
        self.assertEqual(scan(f"{CARD}0"), [])
        self.assertEqual(scan("424242******4242"), [])

    def test_shared_list_adds_numbers_of_12_digits_or_more(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "cards.json")
            with open(path, "w") as f:
                json.dump({"valid": [{"number": "3782 822463 10005"}, {"number": "12345"}],
                           "invalid": [{"number": "1234-5678-9012"}]}, f)
            numbers = s.card_numbers(path)
        self.assertIn("378282246310005", numbers)
        self.assertIn("123456789012", numbers)
        self.assertNotIn("12345", numbers)
        self.assertTrue(s.KNOWN_NUMBERS <= numbers)


class Labelled(unittest.TestCase):
    def test_value_next_to_its_name(self):
        for text, label in (('{"cvc":"737"}', "cvc"), ("pin=123456", "pin"),
                            ("CVV: 123", "CVV"), ("card_number = 4000 0566", "card_number")):
            self.assertEqual(scan("x\n" + text), [f"a.log:2: a value next to '{label}'"], text)

    def test_name_without_digits_is_fine(self):
        self.assertEqual(scan('{"cvc":"<redacted>"} pin_length=6 spin=1234'), [])


class Pins(unittest.TestCase):
    def test_a_seen_pin_as_a_whole_number(self):
        self.assertEqual(scan("one\nthe PIN 482913 here", pins={"482913"}),
                         ["a.log:2: a PIN a test saw"])

    def test_not_part_of_another_number_or_a_fraction(self):
        self.assertEqual(scan("1482913 4829130 0.482913", pins={"482913"}), [])

    def test_not_part_of_an_identifier(self):
        self.assertEqual(scan('"request_id":"58d3824abc" id=Ab_3824-x', pins={"3824"}), [])

    def test_a_seen_pin_next_to_punctuation(self):
        for text in ('"x":"3824"', "x=3824,", "(3824).", "code 3824"):
            self.assertEqual(scan(text, pins={"3824"}), ["a.log:1: a PIN a test saw"], text)

    def test_pins_shorter_than_4_digits_are_ignored(self):
        self.assertEqual(s.pin_patterns({"123"}), [])

    def test_seen_pins_are_read_from_every_file(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "a"), "w") as f:
                f.write("123456\nnot a pin\n")
            with open(os.path.join(d, "b"), "w") as f:
                f.write(" 9876 \n")
            self.assertEqual(s.seen_pins(d), {"123456", "9876"})
        self.assertEqual(s.seen_pins("/nonexistent/seen-pins"), set())


class Main(unittest.TestCase):
    def run_main(self, files, pins=()):
        with tempfile.TemporaryDirectory() as d:
            logs, seen = os.path.join(d, "logs"), os.path.join(d, "seen")
            os.makedirs(os.path.join(logs, "server"))
            os.mkdir(seen)
            with open(os.path.join(seen, "t"), "w") as f:
                f.write("".join(p + "\n" for p in pins))
            for name, text in files.items():
                with open(os.path.join(logs, name), "w") as f:
                    f.write(text)
            cards = os.path.join(d, "cards.json")
            with open(cards, "w") as f:
                json.dump({"valid": []}, f)
            out = io.StringIO()
            with redirect_stdout(out):
                rc = s.main(["log_scan.py", logs, seen, cards])
            return rc, out.getvalue()

    def test_clean_logs_pass(self):
        rc, out = self.run_main({"10-rust.log": "test ok\n", "server/s.log": "started\n"})
        self.assertEqual(rc, 0, out)
        self.assertIn("scanned 2 log files", out)
        self.assertIn("no card number, CVC or PIN in any log", out)

    def test_secrets_fail_and_the_report_holds_none(self):
        rc, out = self.run_main({"server/s.log": f"{CARD}\npin=9182\n"}, pins={"9182"})
        self.assertEqual(rc, 1)
        self.assertIn("server/s.log: a test card number (424242…4242)", out)
        self.assertIn("server/s.log:2: a value next to 'pin'", out)
        self.assertIn("server/s.log:2: a PIN a test saw", out)
        self.assertNotIn(CARD, out)
        self.assertNotIn("9182", out)

    def test_own_log_is_not_scanned(self):
        rc, out = self.run_main({"95-logs.log": f"{CARD}\n"})
        self.assertEqual(rc, 0, out)
        self.assertIn("scanned 0 log files", out)


if __name__ == "__main__":
    unittest.main()
