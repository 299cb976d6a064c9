"""`await vault.watch(id)`: a session's events as an async iterator — on each store, and
across two processes on Redis (the other process is a child Python interpreter)."""

import asyncio
import subprocess
import sys
import textwrap

import pci_vault

from conftest import VALID_FORM, expect_error, keyring, redis_url, wrong_pin


async def next_event(events, timeout=5):
    return await asyncio.wait_for(events.__anext__(), timeout)


async def test_watch_yields_the_state_then_each_event_once(store):
    vault = await store.open()
    ticket = await vault.create_session(None)
    events = await vault.watch(ticket.id)
    first = await next_event(events)
    assert (first.kind, first.state, first.from_state) == ("created", pci_vault.SessionState.PENDING, True)
    assert first.session_id == ticket.id and first.tenant == "default" and len(first.id) == 32

    receipt = await vault.submit(ticket.id, VALID_FORM)
    submitted = await next_event(events)
    assert (submitted.kind, submitted.attempts_left) == ("submitted", 5)
    await expect_error(pci_vault.VaultError.WrongPin, vault.reveal(ticket.id, wrong_pin(receipt.pin)))
    failed = await next_event(events)
    assert (failed.kind, failed.attempts_left) == ("reveal_failed", 4)
    await vault.reveal(ticket.id, receipt.pin)
    rest = [event.kind async for event in events]
    assert rest == ["revealed"]
    for event in (first, submitted, failed):
        assert "4242" not in repr(event) and receipt.pin not in repr(event)
        # The session id is the customer's credential: repr() and str() show its start only.
        assert ticket.id not in repr(event) and ticket.id not in str(event)
        assert ticket.id[:6] in repr(event)

    other = await vault.create_session(None)
    events = await vault.watch(other.id)
    assert (await next_event(events)).kind == "created"
    await events.close()
    assert [event async for event in events] == []

    await expect_error(pci_vault.VaultError.InvalidArgument, vault.watch("x"))
    await expect_error(pci_vault.VaultError.NotFound, vault.for_tenant("other").watch(ticket.id))


# The other process: opens its own vault on the same Redis and prefix, then runs the
# commands given on its command line, printing each outcome.
WORKER = textwrap.dedent(
    """
    import asyncio, sys
    import pci_vault
    from conftest import VALID_FORM, keyring

    async def main(url, prefix, session, *commands):
        vault = await pci_vault.Vault.open(pci_vault.VaultOptions(
            keys=keyring("k1"), store=url, redis=pci_vault.RedisSettings(key_prefix=prefix)))
        pin = None
        for command in commands:
            if command == "submit":
                pin = (await vault.submit(session, VALID_FORM)).pin
                print("submitted", flush=True)
            elif command == "wrong":
                try:
                    await vault.reveal(session, "".join("1" if c == "0" else "0" for c in pin))
                except pci_vault.VaultError.WrongPin as e:
                    print("WRONG_PIN", e.attempts_left, flush=True)
            elif command == "reveal":
                await vault.reveal(session, pin)
                print("revealed", flush=True)

    asyncio.run(main(*sys.argv[1:]))
    """
)


def other_process(prefix, session, *commands):
    """Runs `commands` on `session` in a child interpreter; returns its output lines."""
    tests = __file__.rsplit("/", 1)[0]
    done = subprocess.run(
        [sys.executable, "-c", WORKER, redis_url(), prefix, session, *commands],
        cwd=tests,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")[:-1]


async def test_close_ends_a_watch_whose_next_is_waiting(store):
    vault = await store.open()
    ticket = await vault.create_session(None)
    events = await vault.watch(ticket.id)
    assert (await next_event(events)).kind == "created"
    waiting = asyncio.ensure_future(events.next())
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await asyncio.wait_for(events.close(), 2)
    assert await asyncio.wait_for(waiting, 2) is None
    assert await events.next() is None


async def test_a_watch_sees_another_process_submit_fail_and_reveal_in_order(redis_store):
    vault = await redis_store.open()
    ticket = await vault.create_session(None)
    events = await vault.watch(ticket.id)
    assert (await next_event(events)).kind == "created"
    out = await asyncio.to_thread(other_process, redis_store.prefix, ticket.id, "submit", "wrong", "reveal")
    assert out == ["submitted", "WRONG_PIN 4", "revealed"]
    seen = [(event.kind, event.attempts_left, event.from_state) async for event in events]
    assert seen == [("submitted", 5, False), ("reveal_failed", 4, False), ("revealed", 3, False)]


async def test_a_watch_started_after_another_process_submitted_learns_it_first(redis_store):
    vault = await redis_store.open()
    ticket = await vault.create_session(None)
    assert await asyncio.to_thread(other_process, redis_store.prefix, ticket.id, "submit") == ["submitted"]
    events = await vault.watch(ticket.id)
    first = await next_event(events)
    assert (first.kind, first.from_state) == ("submitted", True)
    await vault.cancel(ticket.id)
    assert [event.kind async for event in events] == ["cancelled"]


async def test_many_watches_share_one_redis_connection(redis_server):
    # A server of this test's own, so its client list is ours alone.
    server = redis_server()
    vault = await pci_vault.Vault.open(pci_vault.VaultOptions(keys=keyring("k1"), store=server.url))
    tickets = [await vault.create_session(None) for _ in range(30)]
    watches = [await vault.watch(ticket.id) for ticket in tickets]
    for events in watches:
        assert (await next_event(events)).kind == "created"
    pubsub = subprocess.run(
        ["redis-cli", "-p", str(server.port), "client", "list", "type", "pubsub"],
        capture_output=True, check=True, text=True,
    ).stdout.splitlines()
    assert len(pubsub) == 1, "every watch subscribes on the store's one subscriber connection"
    for ticket in tickets:
        await vault.submit(ticket.id, VALID_FORM)
    for events in watches:
        assert (await next_event(events)).kind == "submitted"
