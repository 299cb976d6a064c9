#!/usr/bin/env python3
"""Walks the whole pci-vault flow through a running pci-vault-server, as an operator checks
a deployment: health, readiness and metrics on the admin address, then a session created with
an API key, the customer's form fetched and submitted, the status, a wrong PIN, the reveal
with the right PIN, and a second reveal refused.

It uses a public test card (4242 4242 4242 4242) and prints no card data, PIN or API key.

Usage:
  smoke.py flow   --base URL --api-key-file FILE [--admin URL] [--seen-pins FILE]
  smoke.py submit --base URL --api-key-file FILE --state FILE [--seen-pins FILE]
  smoke.py reveal --base URL --api-key-file FILE --state FILE

`submit` and `reveal` split the flow around something the caller does in between (a key
rotation, a restart): `submit` keeps the session id and PIN in the state file (mode 0600),
`reveal` reveals it once and checks that a second reveal is refused.

The API key file holds `LABEL:KEY` lines (the first is used), or one bare key.
--seen-pins appends each PIN to FILE, so a log scan can check that no log holds it.
Standard library only.
"""

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

CARD = {
    "card_number": "4242 4242 4242 4242",
    "expiry": "12/39",
    "cvc": "123",
    "cardholder_name": "Ada Lovelace",
}
CARD_DIGITS = CARD["card_number"].replace(" ", "")


class Failed(Exception):
    """A check failed; the message names the step, never a secret."""


def step(text):
    print(f"  ok  {text}", flush=True)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def request(method, url, body=None, headers=None):
    """(status, headers, body bytes) of one request; HTTP errors are answers, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with OPENER.open(req, timeout=15) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
    except (urllib.error.URLError, OSError) as e:
        raise Failed(f"{method} {redact(url)}: no answer ({type(e).__name__})") from None


def redact(url):
    """The URL with a session id replaced, for messages."""
    return re.sub(r"/(forms|sessions)/[A-Za-z0-9_-]{20,}", r"/\1/{id}", url)


def expect(status, wanted, what, body=b""):
    if status != wanted:
        code = ""
        try:
            code = json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            pass
        raise Failed(f"{what}: HTTP {status} {code}, expected {wanted}")


def error_code(body):
    try:
        return json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def read_api_key(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            # LABEL:KEY, or a bare key (a key has no ':').
            return line.split(":", 1)[1].strip() if ":" in line else line
    raise Failed(f"{path} holds no API key")


class Agent:
    def __init__(self, base, key):
        self.base = base.rstrip("/")
        self.auth = {"Authorization": f"Bearer {key}"}

    def call(self, method, path, payload=None, auth=True):
        headers = dict(self.auth) if auth else {}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        return request(method, self.base + path, body, headers)


def check_health(admin):
    for path in ("/healthz", "/readyz"):
        status, _, body = request("GET", admin.rstrip("/") + path)
        expect(status, 200, f"GET {path}", body)
        step(f"GET {path} -> 200")
    status, headers, body = request("GET", admin.rstrip("/") + "/metrics")
    expect(status, 200, "GET /metrics", body)
    if b"pci_vault_http_requests" not in body:
        raise Failed("GET /metrics does not list pci_vault_http_requests")
    step("GET /metrics -> 200 with the request counters")


def submit(agent, seen_pins):
    """Creates a session and submits the card through the customer's form page; returns
    (id, pin)."""
    status, _, body = agent.call("POST", "/v1/sessions", {"ttl_seconds": 600}, auth=False)
    expect(status, 401, "POST /v1/sessions without an API key", body)
    step("POST /v1/sessions without an API key -> 401")

    status, headers, body = agent.call(
        "POST", "/v1/sessions", {"ttl_seconds": 600, "metadata": {"check": "deploy-smoke"}})
    expect(status, 201, "POST /v1/sessions", body)
    created = json.loads(body)
    session_id, url = created["id"], created["url"]
    if created["state"] != "pending" or not url.endswith(f"/forms/{session_id}"):
        raise Failed("POST /v1/sessions: unexpected answer")
    step("POST /v1/sessions -> 201 pending, with the form link")

    # The customer opens the link and posts the page's own form.
    form_url = agent.base + urllib.parse.urlsplit(url).path
    status, headers, body = request("GET", form_url)
    expect(status, 200, "GET /forms/{id}", body)
    page = body.decode("utf-8", "replace")
    if 'name="card_number"' not in page or "no-store" not in headers.get("Cache-Control", ""):
        raise Failed("GET /forms/{id}: not the card form, or cacheable")
    step("GET /forms/{id} -> 200 the card form, Cache-Control: no-store")

    origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(url))
    status, _, body = request(
        "POST", form_url, urllib.parse.urlencode(CARD).encode(),
        {"Content-Type": "application/x-www-form-urlencoded", "Origin": origin,
         "Accept-Language": "en"})
    expect(status, 200, "POST /forms/{id}", body)
    match = re.search(r'id="pin"[^>]*>\s*([0-9]{4,12})\s*<', body.decode("utf-8", "replace"))
    if not match:
        raise Failed("POST /forms/{id}: the page shows no PIN")
    pin = match.group(1)
    if seen_pins:
        with open(seen_pins, "a", encoding="utf-8") as f:
            f.write(pin + "\n")
    step("POST /forms/{id} (urlencoded, same origin) -> 200 the PIN page")

    status, _, body = agent.call("GET", f"/v1/sessions/{session_id}")
    expect(status, 200, "GET /v1/sessions/{id}", body)
    if json.loads(body)["state"] != "submitted":
        raise Failed("GET /v1/sessions/{id}: not submitted")
    step("GET /v1/sessions/{id} -> 200 submitted")
    return session_id, pin


def reveal(agent, session_id, pin, wrong_pin_first):
    path = f"/v1/sessions/{session_id}/reveal"
    if wrong_pin_first:
        wrong = str((int(pin) + 1) % 10 ** len(pin)).zfill(len(pin))
        status, _, body = agent.call("POST", path, {"pin": wrong})
        expect(status, 403, "reveal with a wrong PIN", body)
        answer = json.loads(body)["error"]
        if answer["code"] != "WRONG_PIN" or answer.get("attempts_left") is None:
            raise Failed("reveal with a wrong PIN: not WRONG_PIN with attempts_left")
        step(f"reveal with a wrong PIN -> 403 WRONG_PIN, {answer['attempts_left']} left")

    status, _, body = agent.call("POST", path, {"pin": pin})
    expect(status, 200, "reveal with the PIN", body)
    form = json.loads(body)
    if (form["fields"].get("card_number") != CARD_DIGITS
            or form["card"]["masked_number"] != CARD_DIGITS[:6] + "******" + CARD_DIGITS[-4:]):
        raise Failed("reveal with the PIN: not the card that was submitted")
    step("reveal with the PIN -> 200 the submitted card")

    status, _, body = agent.call("POST", path, {"pin": pin})
    expect(status, 410, "second reveal", body)
    if error_code(body) != "ALREADY_REVEALED":
        raise Failed("second reveal: not ALREADY_REVEALED")
    step("second reveal -> 410 ALREADY_REVEALED")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["flow", "submit", "reveal"])
    parser.add_argument("--base", required=True, help="the server's URL (agent API and forms)")
    parser.add_argument("--admin", help="the URL of /healthz, /readyz, /metrics (default: --base)")
    parser.add_argument("--api-key-file", required=True)
    parser.add_argument("--state", help="submit/reveal: file keeping the session id and PIN")
    parser.add_argument("--seen-pins", help="file to append each PIN to, for a log scan")
    args = parser.parse_args()
    agent = Agent(args.base, read_api_key(args.api_key_file))
    try:
        if args.command == "flow":
            check_health(args.admin or args.base)
            session_id, pin = submit(agent, args.seen_pins)
            reveal(agent, session_id, pin, wrong_pin_first=True)
        elif args.command == "submit":
            if not args.state:
                raise Failed("submit needs --state")
            session_id, pin = submit(agent, args.seen_pins)
            fd = os.open(args.state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"id": session_id, "pin": pin}, f)
        else:
            if not args.state:
                raise Failed("reveal needs --state")
            with open(args.state, encoding="utf-8") as f:
                saved = json.load(f)
            reveal(agent, saved["id"], saved["pin"], wrong_pin_first=False)
    except Failed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
