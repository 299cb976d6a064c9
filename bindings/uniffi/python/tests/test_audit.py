"""Audit events (PCI DSS 10.2) reach a Python AuditSink: one per action, in order, with the
outcome, the actor and attempts left, a keyed reference instead of the session id and no
secret; a sink that raises or is slow does not break or hold up the vault. And the unsafe
Redis settings found at open are in store_warnings()."""

import asyncio
import collections
import datetime
import gc
import os
import re
import subprocess
import sys
import threading
import time
import weakref

import pytest

import pci_vault
from conftest import VALID_FORM, expect_error, form, redis_cli, redis_url, wrong_pin

VaultError = pci_vault.VaultError

EVENT_FIELDS = {"action", "outcome", "session_ref", "tenant", "actor", "at", "attempts_left"}


class Collector(pci_vault.AuditSink):
    """Keeps every event; can sleep in each call and raise on some; notes whether two calls
    ever overlapped."""

    def __init__(self, delay=0.0, raise_on=lambda n: False):
        self.events = []
        self.calls = 0
        self.raised = 0
        self.delay = delay
        self.raise_on = raise_on
        self.threads = set()
        self._inside = threading.Lock()
        self.overlapped = False

    def record(self, event):
        if not self._inside.acquire(blocking=False):
            self.overlapped = True
            self._inside.acquire()
        try:
            self.threads.add(threading.get_ident())
            self.calls += 1
            if self.delay:
                time.sleep(self.delay)
            self.events.append(event)
            if self.raise_on(self.calls):
                self.raised += 1
                if self.calls % 2:
                    # Not the declared error, with a secret in its text: dropped, not logged.
                    raise RuntimeError("audit trail down; card 4242424242424242 cvc 123")
                raise pci_vault.AuditSinkError.Unavailable()
        finally:
            self._inside.release()

    def seen(self):
        return [(e.action, e.outcome, e.actor, e.attempts_left) for e in self.events]


async def open_audited(store, sink, audit_key=None, **defaults):
    options = store.options(
        session_defaults=pci_vault.SessionOptions(**defaults) if defaults else None
    )
    options.audit_sink = sink
    options.audit_key = audit_key
    return await pci_vault.Vault.open(options)


async def test_a_whole_flow_is_audited_in_order(store):
    sink = Collector()
    vault = await open_audited(store, sink, audit_key=os.urandom(32))
    started = datetime.datetime.now(datetime.timezone.utc)

    # Session 1: four wrong PINs (4, 3, 2, 1 left), the fifth locks it.
    locked = await vault.create_session()
    receipt = await vault.submit(locked.id, VALID_FORM)
    for left in (4, 3, 2, 1):
        err = await expect_error(VaultError.WrongPin, vault.reveal(locked.id, wrong_pin(receipt.pin)))
        assert err.attempts_left == left
    await expect_error(VaultError.Locked, vault.reveal(locked.id, wrong_pin(receipt.pin)))
    await expect_error(VaultError.Locked, vault.reveal(locked.id, receipt.pin))
    await expect_error(VaultError.Locked, vault.cancel(locked.id))

    # Session 2: a refused submission, then the one-time reveal.
    revealed = await vault.create_session()
    await expect_error(VaultError.ValidationFailed, vault.submit(revealed.id, form(card_number="4242424242424241")))
    receipt = await vault.submit(revealed.id, VALID_FORM)
    await vault.status(revealed.id)  # not an action: no event
    await vault.reveal(revealed.id, receipt.pin)
    await expect_error(VaultError.AlreadyRevealed, vault.reveal(revealed.id, receipt.pin))

    # Session 3, for another tenant: cancelled.
    acme = vault.for_tenant("acme")
    cancelled = await acme.create_session()
    await acme.cancel(cancelled.id)
    await expect_error(VaultError.NotFound, vault.reveal(cancelled.id, "123456"))

    await vault.flush_audit()
    assert sink.seen() == [
        ("created", "success", "agent", None),
        ("submitted", "success", "customer", None),
        ("revealed", "WRONG_PIN", "agent", 4),
        ("revealed", "WRONG_PIN", "agent", 3),
        ("revealed", "WRONG_PIN", "agent", 2),
        ("revealed", "WRONG_PIN", "agent", 1),
        ("locked", "success", "agent", 0),
        ("revealed", "LOCKED", "agent", 0),
        ("revealed", "LOCKED", "agent", 0),
        ("cancelled", "LOCKED", "agent", None),
        ("created", "success", "agent", None),
        ("submitted", "VALIDATION_FAILED", "customer", None),
        ("submitted", "success", "customer", None),
        ("revealed", "success", "agent", None),
        ("revealed", "ALREADY_REVEALED", "agent", None),
        ("created", "success", "agent", None),
        ("cancelled", "success", "agent", None),
        ("revealed", "NOT_FOUND", "agent", None),
    ]
    events = sink.events
    assert [e.tenant for e in events] == ["default"] * 15 + ["acme", "acme", "default"]
    refs = [e.session_ref for e in events]
    assert all(re.fullmatch(r"[0-9a-f]{32}", ref) for ref in refs)
    assert len(set(refs[:10])) == 1 and len(set(refs[10:15])) == 1 and len(set(refs[15:])) == 1
    assert len({refs[0], refs[10], refs[15]}) == 3
    times = [e.at for e in events]
    assert times == sorted(times)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert started - datetime.timedelta(seconds=1) <= times[0] and times[-1] <= now
    assert all(set(vars(e)) == EVENT_FIELDS for e in events)
    assert vault.audit_failures() == 0
    assert sink.threads and threading.get_ident() not in sink.threads, "called on the event loop"


async def test_session_refs_match_only_under_the_same_audit_key(store):
    key = os.urandom(32)
    sinks = [Collector() for _ in range(4)]
    first = await open_audited(store, sinks[0], audit_key=key)
    second = await open_audited(store, sinks[1], audit_key=bytes(key))
    other_key = await open_audited(store, sinks[2], audit_key=os.urandom(32))
    random_key = await open_audited(store, sinks[3])

    ticket = await first.create_session()
    # On Redis the other vaults find the session; on memory they do not (NOT_FOUND): either
    # way each records an event for the id it was given.
    for vault in (second, other_key, random_key):
        try:
            await vault.reveal(ticket.id, "123456")
        except VaultError:
            pass
    for vault in (first, second, other_key, random_key):
        await vault.flush_audit()
    refs = [sink.events[0].session_ref for sink in sinks]
    assert refs[0] == refs[1]
    assert len({refs[0], refs[2], refs[3]}) == 3
    # An operator with the key finds the session's events from its id.
    assert pci_vault.session_ref(key, ticket.id) == refs[0]


def test_session_ref_is_the_documented_hmac():
    import base64
    import hashlib
    import hmac

    key = bytes([7] * 32)
    raw = bytes(range(32))
    session_id = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    expected = hmac.new(key, b"pci-vault/v1/audit" + raw, hashlib.sha256).hexdigest()[:32]
    assert pci_vault.session_ref(key, session_id) == expected
    with pytest.raises(VaultError.InvalidArgument):
        pci_vault.session_ref(key[:31], session_id)
    with pytest.raises(VaultError.InvalidArgument) as info:
        pci_vault.session_ref(key, "not-an-id")
    assert "not-an-id" not in str(info.value)


@pytest.mark.parametrize("bad", [b"", b"\x01" * 16, b"\x01" * 31, b"\x01" * 33, b"\x01" * 4096])
async def test_an_audit_key_is_32_bytes(bad):
    options = pci_vault.VaultOptions(
        keys=pci_vault.KeySource.DEVELOPMENT(), audit_key=bad, audit_sink=Collector()
    )
    err = await expect_error(VaultError.InvalidArgument, pci_vault.Vault.open(options))
    assert "32 bytes" in err.message


async def test_options_of_the_wrong_type_are_refused():
    for field, value in [("audit_key", "00" * 32), ("audit_key", 42), ("audit_sink", "log"), ("audit_sink", 42)]:
        options = pci_vault.VaultOptions(keys=pci_vault.KeySource.DEVELOPMENT())
        setattr(options, field, value)
        with pytest.raises((TypeError, AttributeError, ValueError)):
            await pci_vault.Vault.open(options)


async def test_no_event_or_repr_holds_a_secret(store, capfd):
    sink = Collector()
    key = os.urandom(32)
    vault = await open_audited(store, sink, audit_key=key)
    ticket = await vault.create_session()
    card = {**VALID_FORM, "cvc": "907"}
    receipt = await vault.submit(ticket.id, card)
    await expect_error(VaultError.WrongPin, vault.reveal(ticket.id, wrong_pin(receipt.pin)))
    await vault.reveal(ticket.id, receipt.pin)
    await vault.flush_audit()
    assert len(sink.events) == 4

    secrets = [
        ticket.id, ticket.id[:12], receipt.pin, wrong_pin(receipt.pin), "4242424242424242",
        "4242 4242 4242 4242", "907", "Ada Lovelace", key.hex(),
    ]
    for event in sink.events:
        # The reference and the time are made of digits and hex, where a short secret could
        # turn up by chance: they are checked for their form, the rest for the secrets.
        assert re.fullmatch(r"[0-9a-f]{32}", event.session_ref)
        assert isinstance(event.at, datetime.datetime)
        text = " ".join([repr(event), str(event), *(str(v) for v in vars(event).values())])
        for exact in (event.session_ref, str(event.at), repr(event.at)):
            text = text.replace(exact, "<checked>")
        for secret in secrets:
            assert secret not in text, f"an audit event holds {secret!r}"
    options = store.options()
    options.audit_key = key
    options.audit_sink = sink
    for text in (repr(options), str(options)):
        assert key.hex() not in text and repr(key) not in text and "[REDACTED]" in text
    out, err = capfd.readouterr()
    for secret in secrets:
        assert secret not in out + err


async def test_a_sink_that_raises_does_not_break_the_vault(store, capfd):
    sink = Collector(raise_on=lambda n: n <= 6 or n % 3 == 0)
    vault = await open_audited(store, sink)
    for _ in range(10):
        ticket = await vault.create_session()
        receipt = await vault.submit(ticket.id, VALID_FORM)
        assert (await vault.reveal(ticket.id, receipt.pin)).fields["cvc"] == "123"
    await vault.flush_audit()
    # Every event reached the sink, including the ones after it raised.
    assert sink.calls == 30
    assert [a for a, *_ in sink.seen()] == ["created", "submitted", "revealed"] * 10
    assert sink.raised == 6 + 8  # 1-6, then 9, 12, ..., 30
    assert vault.audit_failures() == sink.raised
    out, err = capfd.readouterr()
    assert "4242424242424242" not in out + err
    assert "audit trail down" not in out + err


async def test_a_slow_sink_does_not_hold_up_operations(store):
    sink = Collector(delay=0.5)
    vault = await open_audited(store, sink, max_attempts=10)
    ticket = await vault.create_session()
    receipt = await vault.submit(ticket.id, VALID_FORM)

    started = time.monotonic()
    for _ in range(9):
        await expect_error(VaultError.WrongPin, vault.reveal(ticket.id, wrong_pin(receipt.pin)))
    await expect_error(VaultError.Locked, vault.reveal(ticket.id, wrong_pin(receipt.pin)))
    elapsed = time.monotonic() - started
    # Waiting for the sink would take 0.5 s per event, 5 s or more for these 10 reveals.
    assert elapsed < 2.5, f"10 reveals took {elapsed:.1f} s behind a slow audit sink"
    assert len(sink.events) < 12, "the sink kept up: the test proves nothing"

    await vault.flush_audit()
    assert [left for *_, left in sink.seen()] == [None, None, *range(9, 0, -1), 0, 0]
    assert sink.seen()[-2:] == [("locked", "success", "agent", 0), ("revealed", "LOCKED", "agent", 0)]


async def test_concurrent_operations_give_one_event_each_never_two_calls_at_once(store):
    sink = Collector()
    vault = await open_audited(store, sink, max_attempts=5)
    ticket = await vault.create_session()
    receipt = await vault.submit(ticket.id, VALID_FORM)
    pins = [receipt.pin if i % 4 == 0 else wrong_pin(receipt.pin) for i in range(100)]
    results = await asyncio.gather(
        *(vault.reveal(ticket.id, pin) for pin in pins), return_exceptions=True
    )

    async def one_flow():
        t = await vault.create_session()
        r = await vault.submit(t.id, VALID_FORM)
        await vault.reveal(t.id, r.pin)

    await asyncio.gather(*(one_flow() for _ in range(30)))
    await vault.flush_audit()

    called = collections.Counter(
        "success" if isinstance(r, pci_vault.RevealedForm) else r.code for r in results
    )
    reveal_events = [e for e in sink.events[2:] if e.session_ref == sink.events[0].session_ref]
    audited = collections.Counter(e.outcome for e in reveal_events if e.action == "revealed")
    assert audited == called
    locks = [e for e in reveal_events if e.action == "locked"]
    state = (await vault.status(ticket.id)).state
    assert len(locks) == (1 if state == pci_vault.SessionState.LOCKED else 0)

    flows = collections.defaultdict(list)
    for event in sink.events:
        if event.session_ref != sink.events[0].session_ref:
            flows[event.session_ref].append(event.action)
    assert len(flows) == 30
    assert all(actions == ["created", "submitted", "revealed"] for actions in flows.values())
    assert not sink.overlapped, "the sink was called twice at once"
    assert vault.audit_failures() == 0


async def test_releasing_the_vault_stops_delivery_without_waiting_for_the_sink(store):
    events = []
    sink = Collector(delay=0.2)
    sink.events = events
    vault = await open_audited(store, sink)
    del sink
    for _ in range(50):
        await vault.create_session()
    started = time.monotonic()
    del vault
    gc.collect()
    # Releasing the vault does not wait for the sink (50 events take 10 s to hand over)...
    assert time.monotonic() - started < 2
    # ...and once the call in progress (0.2 s) returns, the sink is called no more: the
    # vault calls into the host only while the host holds the vault.
    await asyncio.sleep(0.4)
    handed = len(events)
    await asyncio.sleep(0.6)
    assert len(events) == handed < 50
    assert all(e.action == "created" for e in events)


async def test_after_a_flush_releasing_the_vault_releases_the_sink_at_once(store):
    events = []
    sink = Collector(delay=0.01)
    sink.events = events
    released = weakref.ref(sink)
    vault = await open_audited(store, sink)
    del sink
    for _ in range(20):
        await vault.create_session()
    await vault.flush_audit()
    assert [e.action for e in events] == ["created"] * 20
    del vault
    gc.collect()
    # On this thread, now: never later from one of the vault's threads.
    assert released() is None


EXIT_SCRIPT = """
import asyncio, sys, time
import pci_vault

class Printer(pci_vault.AuditSink):
    def record(self, event):
        time.sleep(0.02)
        print(event.action, flush=True)

async def main(store, sink):
    vault = await pci_vault.Vault.open(pci_vault.VaultOptions(
        keys=pci_vault.KeySource.DEVELOPMENT(), store=store, audit_sink=sink))
    for _ in range(10):
        await vault.create_session()
    return vault

# argv: store, then "open" (the vault stays open until exit) or "released" (no sink, the
# vault is released when main returns).
store, mode = sys.argv[1:]
vault = asyncio.run(main(store, Printer() if mode == "open" else None))
if mode == "released":
    del vault
"""


@pytest.mark.parametrize("mode", ["open", "released"])
def test_a_process_exits_cleanly_right_after_its_last_call(tmp_path, mode):
    # The vault's threads call into Python (audit sinks, and uniffi waking awaited calls);
    # one that does so while Python shuts down would abort the process. The package's exit
    # hook prevents it. Without the hook, "open" fails at once, and "released" (uniffi
    # waking a call that waits on Redis) in about one run in seven: hence the 12 runs.
    script = tmp_path / "exit_right_away.py"
    script.write_text(EXIT_SCRIPT)
    for run in range(12):
        store = "memory" if run % 3 == 0 else redis_url()
        done = subprocess.run(
            [sys.executable, str(script), store, mode], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"run {run} on {store}: {done.returncode} {done.stderr}"
        assert done.stderr == ""
        # An open vault's queued events are handed over at exit, slow sink and all.
        assert done.stdout == ("created\n" * 10 if mode == "open" else "")


async def test_without_a_sink_flush_returns_and_nothing_fails(store):
    vault = await store.open()
    await vault.create_session()
    await asyncio.wait_for(vault.flush_audit(), timeout=5)
    assert vault.audit_failures() == 0


async def test_store_warnings_report_unsafe_redis_settings(redis_server):
    memory = await pci_vault.Vault.open(pci_vault.VaultOptions(keys=pci_vault.KeySource.DEVELOPMENT()))
    assert memory.store_warnings() == []

    safe = redis_server()
    vault = await pci_vault.Vault.open(pci_vault.VaultOptions(
        keys=pci_vault.KeySource.DEVELOPMENT(), store=safe.url))
    assert vault.store_warnings() == []

    saving = redis_server("--save", "3600 1")
    vault = await pci_vault.Vault.open(pci_vault.VaultOptions(
        keys=pci_vault.KeySource.DEVELOPMENT(), store=saving.url))
    [warning] = vault.store_warnings()
    assert "persistence is on" in warning and "3600 1" in warning
    assert vault.for_tenant("acme").store_warnings() == [warning]

    evicting = redis_server("--maxmemory-policy", "allkeys-lru", "--appendonly", "yes")
    vault = await pci_vault.Vault.open(pci_vault.VaultOptions(
        keys=pci_vault.KeySource.DEVELOPMENT(), store=evicting.url))
    warnings = vault.store_warnings()
    assert len(warnings) == 2
    assert any("appendonly yes" in w for w in warnings)
    assert any("maxmemory-policy is allkeys-lru" in w for w in warnings)
    # A copy each time: the caller cannot change what the vault reports.
    vault.store_warnings().clear()
    assert len(vault.store_warnings()) == 2


async def test_a_call_cancelled_by_asyncio_still_ends_and_is_audited(redis_store):
    """asyncio drops a cancelled call's future; the operation still ends on its own, so a
    change that is stored has its audit event (here: a submit cancelled while Redis holds
    every write)."""
    sink = Collector()
    vault = await open_audited(redis_store, sink)
    ticket = await vault.create_session()
    redis_cli(redis_url(), "CLIENT", "PAUSE", "400", "WRITE")
    submitting = asyncio.ensure_future(vault.submit(ticket.id, VALID_FORM))
    await asyncio.sleep(0.1)
    assert not submitting.done()
    submitting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await submitting
    await asyncio.sleep(0.8)
    assert (await vault.status(ticket.id)).state == pci_vault.SessionState.SUBMITTED
    await vault.flush_audit()
    assert [e.action for e in sink.events] == ["created", "submitted"]


# A process that takes a session's last PIN attempt and dies before it stores the outcome:
# its key provider ends the process when the vault asks it to unwrap, which comes after the
# attempt is stored and before the PIN is compared.
DIES_MID_REVEAL = """
import asyncio, os, sys
import pci_vault

class DiesOnUnwrap(pci_vault.KeyProvider):
    def wrap(self, data_key, aad):
        raise pci_vault.KeyProviderError.Unavailable(reason="not used")

    def unwrap(self, wrapped, aad):
        os._exit(0)

async def main(url, prefix, session_id):
    vault = await pci_vault.Vault.open(pci_vault.VaultOptions(
        keys=pci_vault.KeySource.PROVIDER(provider=DiesOnUnwrap()), store=url,
        redis=pci_vault.RedisSettings(key_prefix=prefix)))
    await vault.reveal(session_id, "000000")
    print("the reveal returned", flush=True)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_status_cancelled_by_asyncio_still_audits_the_lock_it_stores(redis_store, tmp_path):
    """`status` of a session whose last attempt never stored its outcome locks it (a write)
    and audits the lock. Cancelled while Redis holds that write, it still ends: the lock
    that is stored has its audit event."""
    sink = Collector()
    vault = await open_audited(redis_store, sink)
    ticket = await vault.create_session(pci_vault.SessionOptions(max_attempts=1))
    await vault.submit(ticket.id, VALID_FORM)

    script = tmp_path / "dies_mid_reveal.py"
    script.write_text(DIES_MID_REVEAL)
    died = subprocess.run(
        [sys.executable, str(script), redis_url(), redis_store.prefix, ticket.id],
        capture_output=True, text=True, timeout=60,
    )
    assert (died.returncode, died.stdout, died.stderr) == (0, "", "")
    status = await vault.status(ticket.id)
    assert (status.state, status.attempts_left) == (pci_vault.SessionState.SUBMITTED, 0)
    # The session is finished as locked once the grace period after the attempt is over:
    # twice the Redis timeout, so 4 s by default.
    await asyncio.sleep(4.2)

    redis_cli(redis_url(), "CLIENT", "PAUSE", "1000", "WRITE")
    statusing = asyncio.ensure_future(vault.status(ticket.id))
    await asyncio.sleep(0.3)
    assert not statusing.done()
    statusing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await statusing
    await asyncio.sleep(1.2)
    assert (await vault.status(ticket.id)).state == pci_vault.SessionState.LOCKED
    await vault.flush_audit()
    assert [(e.action, e.attempts_left) for e in sink.events] == [
        ("created", None), ("submitted", None), ("locked", 0)]
