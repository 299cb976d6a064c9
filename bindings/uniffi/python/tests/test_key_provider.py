"""A key provider written in Python (a uniffi foreign trait), as a KMS or HSM client is."""

import asyncio
import os
import secrets
import subprocess
import threading

import pytest

import pci_vault
from conftest import VALID_FORM, expect_error

VaultError = pci_vault.VaultError


class HandleHsm(pci_vault.KeyProvider):
    """An HSM stand-in: keeps each data key inside, under a random handle, bound to its
    associated data, and hands out only the handle. Records every call."""

    def __init__(self, key_id="hsm:slot-1"):
        self.key_id = key_id
        self.keys = {}
        self.calls = []
        self.threads = set()
        self.lock = threading.Lock()
        self.fail = None  # an exception to raise instead of answering

    def wrap(self, data_key, aad):
        self._note("wrap", data_key, aad)
        handle = secrets.token_bytes(16)
        with self.lock:
            self.keys[handle] = (bytes(data_key), bytes(aad))
        return pci_vault.WrappedKey(key_id=self.key_id, ciphertext=handle)

    def unwrap(self, wrapped, aad):
        self._note("unwrap", wrapped, aad)
        if wrapped.key_id != self.key_id:
            raise pci_vault.KeyProviderError.Unavailable(reason=f"unknown key id {wrapped.key_id}")
        with self.lock:
            entry = self.keys.get(wrapped.ciphertext)
        if entry is None:
            raise pci_vault.KeyProviderError.Unavailable(reason="no such handle")
        data_key, bound = entry
        if bound != aad:
            raise pci_vault.KeyProviderError.Integrity()
        return data_key

    def _note(self, method, arg, aad):
        with self.lock:
            self.calls.append((method, arg, aad))
            self.threads.add(threading.get_ident())
        if self.fail is not None:
            raise self.fail


def provider_options(store, provider):
    return store.options(keys=pci_vault.KeySource.PROVIDER(provider=provider))


async def open_with(store, provider):
    return await pci_vault.Vault.open(provider_options(store, provider))


async def submitted_with(store, provider):
    """A vault on `provider`, with one submitted session: (vault, session id, PIN)."""
    vault = await open_with(store, provider)
    ticket = await vault.create_session()
    receipt = await vault.submit(ticket.id, VALID_FORM)
    return vault, ticket.id, receipt.pin


async def test_the_vault_wraps_and_unwraps_through_the_host(store):
    hsm = HandleHsm()
    vault = await open_with(store, hsm)
    ticket = await vault.create_session()
    [(method, data_key, aad)] = hsm.calls
    assert method == "wrap"
    assert isinstance(data_key, bytes) and len(data_key) == 32
    assert ticket.id.encode() not in aad  # the aad binds the session by its bytes, not its text
    assert len(aad) > 0

    receipt = await vault.submit(ticket.id, VALID_FORM)
    revealed = await vault.reveal(ticket.id, receipt.pin)
    assert revealed.fields["card_number"] == "4242424242424242"
    unwraps = [c for c in hsm.calls if c[0] == "unwrap"]
    assert unwraps and all(c[2] == aad for c in unwraps), "unwrap gets the aad wrap bound"
    assert all(c[1].key_id == "hsm:slot-1" for c in unwraps)
    assert threading.get_ident() not in hsm.threads, "called on the event loop's thread"

    # The vault counted the host's wraps under its key id, shared by every tenant's handle.
    wraps = sum(1 for c in hsm.calls if c[0] == "wrap")
    for handle in (vault, vault.for_tenant("acme")):
        [usage] = handle.key_usage()
        assert (usage.key_id, usage.wraps, usage.rotation_due) == ("hsm:slot-1", wraps, False)

    if store.kind == "redis":
        # The store holds the wrapped key (the handle), never the data key.
        [key] = store.keys()
        stored = subprocess.run(
            ["redis-cli", "-u", os.environ["PCI_VAULT_TEST_REDIS_URL"], "--raw", "get", key],
            capture_output=True, check=True,
        ).stdout
        assert len(stored) > 100 and data_key not in stored


async def test_a_second_vault_with_the_same_hsm_opens_the_records(redis_store):
    hsm = HandleHsm()
    first = await open_with(redis_store, hsm)
    second = await open_with(redis_store, hsm)
    ticket = await first.create_session()
    receipt = await first.submit(ticket.id, VALID_FORM)
    assert (await second.reveal(ticket.id, receipt.pin)).fields["cvc"] == "123"


async def test_a_provider_that_raises_at_create_stores_nothing(redis_store):
    hsm = HandleHsm()
    hsm.fail = RuntimeError("HSM offline; key=0011223344")
    vault = await open_with(redis_store, hsm)
    for _ in range(3):
        err = await expect_error(VaultError.KeyUnavailable, vault.create_session())
        assert err.message == "key unavailable: host key provider: raised RuntimeError"
        assert "0011223344" not in str(err)
    assert redis_store.keys() == [], "a failed create wrote to Redis"
    hsm.fail = None
    await vault.create_session()
    assert len(redis_store.keys()) == 1


async def test_a_slow_provider_is_key_unavailable_after_its_timeout(store):
    class Slow(HandleHsm):
        def wrap(self, data_key, aad):
            release.wait(5)
            return super().wrap(data_key, aad)

    release = threading.Event()
    vault = await pci_vault.Vault.open(store.options(
        keys=pci_vault.KeySource.PROVIDER(provider=Slow(), timeout_ms=200)))
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        err = await expect_error(VaultError.KeyUnavailable, vault.create_session())
    finally:
        release.set()
    took = loop.time() - started
    assert "the host key provider's wrap did not settle within 200 ms" in err.message
    assert 0.19 <= took < 2, took
    # The default is 5 s; out of range is refused.
    for bad in (0, 60_001):
        await expect_error(VaultError.InvalidArgument, pci_vault.Vault.open(store.options(
            keys=pci_vault.KeySource.PROVIDER(provider=HandleHsm(), timeout_ms=bad))))


async def test_a_provider_that_raises_at_submit_stores_nothing(store):
    hsm = HandleHsm()
    vault = await open_with(store, hsm)
    ticket = await vault.create_session()
    hsm.fail = pci_vault.KeyProviderError.Unavailable(reason="KMS timed out\nafter 2 s")
    err = await expect_error(VaultError.KeyUnavailable, vault.submit(ticket.id, VALID_FORM))
    assert err.message == "key unavailable: host key provider: KMS timed out after 2 s"
    hsm.fail = None
    status = await vault.status(ticket.id)
    assert status.state == pci_vault.SessionState.PENDING and status.submitted_at is None
    # The customer can submit again once the KMS is back.
    receipt = await vault.submit(ticket.id, VALID_FORM)
    assert (await vault.reveal(ticket.id, receipt.pin)).fields["cvc"] == "123"


async def test_a_provider_that_raises_at_reveal_keeps_the_form(store):
    hsm = HandleHsm()
    vault, session, pin = await submitted_with(store, hsm)
    hsm.fail = ConnectionError("reset by peer")
    await expect_error(VaultError.KeyUnavailable, vault.reveal(session, pin))
    hsm.fail = None
    status = await vault.status(session)
    assert status.state == pci_vault.SessionState.SUBMITTED and status.attempts_left == 5
    assert (await vault.reveal(session, pin)).fields["cvc"] == "123"


async def test_integrity_and_misbehaving_providers(store):
    hsm = HandleHsm()
    vault, good, good_pin = await submitted_with(store, hsm)
    hsm.fail = pci_vault.KeyProviderError.Integrity()
    await expect_error(VaultError.IntegrityError, vault.status(good))
    await expect_error(VaultError.IntegrityError, vault.reveal(good, good_pin))
    hsm.fail = None

    class Returns(HandleHsm):
        def __init__(self, wrapped=None, unwrapped=None):
            super().__init__()
            self.wrapped, self.unwrapped = wrapped, unwrapped

        def wrap(self, data_key, aad):
            return self.wrapped if self.wrapped is not None else super().wrap(data_key, aad)

        def unwrap(self, wrapped, aad):
            return self.unwrapped if self.unwrapped is not None else super().unwrap(wrapped, aad)

    bad_wraps = [
        ("not a WrappedKey", "host key provider: raised AttributeError"),
        (pci_vault.WrappedKey(key_id="bad id!", ciphertext=b"x"), "key id that is not"),
        (pci_vault.WrappedKey(key_id="", ciphertext=b"x"), "key id that is not"),
        (pci_vault.WrappedKey(key_id="k", ciphertext=b"x" * 1025), "longer than 1 KiB"),
    ]
    for wrapped, message in bad_wraps:
        bad = await open_with(store, Returns(wrapped=wrapped))
        err = await expect_error(VaultError.KeyUnavailable, bad.create_session())
        assert message in err.message, err.message

    for unwrapped in (b"\x01" * 31, b"\x01" * 33, "a str, not bytes", 42):
        bad = await open_with(store, Returns(unwrapped=unwrapped))
        ticket = await bad.create_session()
        await expect_error(VaultError.KeyUnavailable, bad.submit(ticket.id, VALID_FORM))
    # A provider that unwraps to 32 other bytes: the record does not open.
    liar = await open_with(store, Returns(unwrapped=b"\x01" * 32))
    ticket = await liar.create_session()
    await expect_error(VaultError.IntegrityError, liar.submit(ticket.id, VALID_FORM))

    # None of it touched the good session, nor used one of its attempts.
    assert (await vault.status(good)).attempts_left == 5
    assert (await vault.reveal(good, good_pin)).fields["cvc"] == "123"


async def test_100_concurrent_reveals_through_the_host_provider(store):
    vault, session, pin = await submitted_with(store, HandleHsm())
    results = await asyncio.gather(
        *(vault.reveal(session, pin) for _ in range(100)), return_exceptions=True
    )
    assert sum(isinstance(r, pci_vault.RevealedForm) for r in results) == 1
    assert all(isinstance(r, (pci_vault.RevealedForm, VaultError)) for r in results), results


def test_provider_calls_need_no_event_loop_of_their_own():
    """The host's methods are plain calls on a Rust thread: a vault driven from a second
    event loop in another thread works the same."""
    hsm = HandleHsm()
    result = {}

    def in_thread():
        async def flow():
            vault = await pci_vault.Vault.open(pci_vault.VaultOptions(
                keys=pci_vault.KeySource.PROVIDER(provider=hsm)))
            ticket = await vault.create_session()
            receipt = await vault.submit(ticket.id, VALID_FORM)
            result["form"] = await vault.reveal(ticket.id, receipt.pin)
        asyncio.run(flow())

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(timeout=60)
    assert result["form"].fields["cvc"] == "123"


@pytest.mark.parametrize("size", [0, 16, 31, 33, 1 << 20])
async def test_inline_keys_of_the_wrong_size_are_refused(size):
    await expect_error(VaultError.InvalidArgument, pci_vault.Vault.open(pci_vault.VaultOptions(
        keys=pci_vault.KeySource.KEYRING(keys=[pci_vault.KeyringEntry(id="k1", key=b"\x07" * size)]))))
