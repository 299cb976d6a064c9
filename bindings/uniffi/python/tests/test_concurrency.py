"""The vault's invariants under concurrency, driven from Python with asyncio.gather."""

import asyncio
import collections

import pci_vault
from conftest import VALID_FORM, expect_error, wrong_pin

VaultError = pci_vault.VaultError


def outcomes(results):
    """Counts results by outcome: "ok" for a value, the error code for a VaultError."""
    counts = collections.Counter()
    for result in results:
        if isinstance(result, pci_vault.VaultError):
            counts[result.code] += 1
        elif isinstance(result, BaseException):
            raise result
        else:
            counts["ok"] += 1
    return counts


async def test_100_concurrent_reveals_one_success(store):
    vault = await store.open()
    ticket = await vault.create_session()
    receipt = await vault.submit(ticket.id, VALID_FORM)

    results = await asyncio.gather(
        *(vault.reveal(ticket.id, receipt.pin) for _ in range(100)), return_exceptions=True
    )

    counts = outcomes(results)
    assert counts["ok"] == 1, counts
    # The losers learn the form is gone: revealed, or every attempt taken by the guesses
    # still in flight.
    assert set(counts) <= {"ok", "ALREADY_REVEALED", "LOCKED"}, counts
    [form] = [r for r in results if isinstance(r, pci_vault.RevealedForm)]
    assert form.fields["card_number"] == "4242424242424242"
    assert (await vault.status(ticket.id)).state == pci_vault.SessionState.REVEALED


async def test_100_concurrent_reveals_from_two_vaults_sharing_redis(redis_store):
    first = await redis_store.open()
    second = await redis_store.open()
    ticket = await first.create_session()
    receipt = await second.submit(ticket.id, VALID_FORM)

    results = await asyncio.gather(
        *((first if i % 2 else second).reveal(ticket.id, receipt.pin) for i in range(100)),
        return_exceptions=True,
    )
    assert outcomes(results)["ok"] == 1


async def test_concurrent_wrong_pins_evaluate_at_most_max_attempts(store):
    vault = await store.open()
    ticket = await vault.create_session(pci_vault.SessionOptions(max_attempts=5))
    receipt = await vault.submit(ticket.id, VALID_FORM)
    guess = wrong_pin(receipt.pin)

    results = await asyncio.gather(
        *(vault.reveal(ticket.id, guess) for _ in range(100)), return_exceptions=True
    )

    counts = outcomes(results)
    assert set(counts) <= {"WRONG_PIN", "LOCKED"}, counts
    assert counts["WRONG_PIN"] <= 4, counts
    left = sorted(r.attempts_left for r in results if isinstance(r, VaultError.WrongPin))
    assert len(set(left)) == len(left), f"two guesses were told the same count: {left}"
    status = await vault.status(ticket.id)
    assert status.state == pci_vault.SessionState.LOCKED and status.attempts_left == 0
    await expect_error(VaultError.Locked, vault.reveal(ticket.id, receipt.pin))


async def test_100_concurrent_submits_one_wins(store):
    vault = await store.open()
    ticket = await vault.create_session()

    results = await asyncio.gather(
        *(vault.submit(ticket.id, VALID_FORM) for _ in range(100)), return_exceptions=True
    )

    counts = outcomes(results)
    assert counts == {"ok": 1, "ALREADY_SUBMITTED": 99}, counts
    [receipt] = [r for r in results if isinstance(r, pci_vault.Receipt)]
    assert (await vault.reveal(ticket.id, receipt.pin)).fields["cvc"] == "123"


async def test_many_sessions_at_once(store):
    vault = await store.open()

    async def one_flow(i):
        ticket = await vault.create_session(pci_vault.SessionOptions(metadata={"n": str(i)}))
        receipt = await vault.submit(ticket.id, VALID_FORM)
        status = await vault.status(ticket.id)
        assert status.metadata == {"n": str(i)}
        return (await vault.reveal(ticket.id, receipt.pin)).fields["card_number"]

    results = await asyncio.gather(*(one_flow(i) for i in range(100)))
    assert results == ["4242424242424242"] * 100
