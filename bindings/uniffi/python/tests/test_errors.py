"""Every error class of the Python package, with its stable code and its extra data."""

import asyncio
import base64
import os
import subprocess

import pytest

import pci_vault
from conftest import (
    CARDS,
    VALID_FORM,
    Store,
    expect_error,
    form,
    free_port,
    keyring,
    redis_cli,
    wrong_pin,
)

VaultError = pci_vault.VaultError


def random_id():
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


async def submitted(vault, **options):
    ticket = await vault.create_session(pci_vault.SessionOptions(**options))
    receipt = await vault.submit(ticket.id, VALID_FORM)
    return ticket.id, receipt.pin


async def test_not_found_for_unknown_and_expired_sessions(store):
    vault = await store.open()
    unknown = random_id()
    for call in (vault.status(unknown), vault.submit(unknown, VALID_FORM),
                 vault.reveal(unknown, "123456"), vault.cancel(unknown)):
        err = await expect_error(VaultError.NotFound, call)
        assert unknown not in err.message

    ticket = await vault.create_session(pci_vault.SessionOptions(ttl_seconds=1))
    await asyncio.sleep(1.2)
    await expect_error(VaultError.NotFound, vault.status(ticket.id))
    await expect_error(VaultError.NotFound, vault.submit(ticket.id, VALID_FORM))


async def test_state_errors(store):
    vault = await store.open()
    pending = await vault.create_session()
    await expect_error(VaultError.NotSubmitted, vault.reveal(pending.id, "123456"))

    session, pin = await submitted(vault)
    await expect_error(VaultError.AlreadySubmitted, vault.submit(session, VALID_FORM))
    await vault.reveal(session, pin)
    await expect_error(VaultError.AlreadyRevealed, vault.reveal(session, pin))
    await expect_error(VaultError.AlreadyRevealed, vault.cancel(session))

    await vault.cancel(pending.id)
    await expect_error(VaultError.Cancelled, vault.submit(pending.id, VALID_FORM))
    await expect_error(VaultError.Cancelled, vault.reveal(pending.id, "123456"))


async def test_wrong_pins_count_down_then_lock(store):
    vault = await store.open()
    session, pin = await submitted(vault, max_attempts=5)
    for left in (4, 3, 2, 1):
        err = await expect_error(VaultError.WrongPin, vault.reveal(session, wrong_pin(pin)))
        assert err.attempts_left == left
        assert pin not in str(err)
        assert (await vault.status(session)).attempts_left == left
    await expect_error(VaultError.Locked, vault.reveal(session, wrong_pin(pin)))
    # Locked for good, even with the right PIN; the data is gone.
    await expect_error(VaultError.Locked, vault.reveal(session, pin))
    status = await vault.status(session)
    assert status.state == pci_vault.SessionState.LOCKED and status.attempts_left == 0
    await expect_error(VaultError.Locked, vault.cancel(session))

    single, pin = await submitted(vault, max_attempts=1)
    await expect_error(VaultError.Locked, vault.reveal(single, wrong_pin(pin)))

    # A PIN of another length is a wrong PIN, not an argument error.
    other, pin = await submitted(vault)
    err = await expect_error(VaultError.WrongPin, vault.reveal(other, "1234"))
    assert err.attempts_left == 4
    assert (await vault.reveal(other, f"  {pin}\n")).fields["cvc"] == "123"


VALIDATION_CASES = [
    (form(card_number="4242424242424241"), [("card_number", "luhn")]),
    (form(card_number="4242-4242-4242-424X"), [("card_number", "characters")]),
    (form(card_number="424242424242"), [("card_number", "length")]),
    (form(card_number=None), [("card_number", "required")]),
    (form(card_number="   "), [("card_number", "required")]),
    (form(expiry="01/20"), [("expiry", "expired")]),
    (form(expiry="13/30"), [("expiry", "month")]),
    (form(expiry="1230"), [("expiry", "format")]),
    (form(expiry="12/70"), [("expiry", "too_far")]),
    (form(card_number="378282246310005", cvc="123"), [("cvc", "cvc_length")]),
    (form(cardholder_name="R2-D2"), [("cardholder_name", "characters")]),
    (form(cardholder_name="A" * 101), [("cardholder_name", "too_long")]),
    (form(cvc="1" * 2000), [("cvc", "too_long")]),
    (
        {"card_number": "4242424242424241", "expiry": "01/20", "cvc": "12"},
        [
            ("card_number", "luhn"),
            ("expiry", "expired"),
            ("cvc", "cvc_length"),
            ("cardholder_name", "required"),
        ],
    ),
]


@pytest.mark.parametrize("fields,expected", VALIDATION_CASES)
async def test_validation_failed_names_fields_and_reasons_never_values(fields, expected):
    vault = await Store("memory").open()
    ticket = await vault.create_session()
    err = await expect_error(VaultError.ValidationFailed, vault.submit(ticket.id, fields))
    assert [(f.field, f.reason) for f in err.fields] == expected
    assert all(isinstance(f, pci_vault.FieldError) for f in err.fields)
    text = f"{err} {err!r} {err.message}"
    for value in fields.values():
        if len(value.strip()) >= 3:
            assert value not in text, "an error repeats a submitted value"
    # Nothing was stored: the session is still pending and takes a good form.
    assert (await vault.status(ticket.id)).state == pci_vault.SessionState.PENDING
    receipt = await vault.submit(ticket.id, VALID_FORM)
    assert (await vault.reveal(ticket.id, receipt.pin)).fields["cvc"] == "123"


async def test_invalid_published_cards_fail_validation():
    vault = await Store("memory").open()
    for card in CARDS["invalid"]:
        ticket = await vault.create_session()
        err = await expect_error(
            VaultError.ValidationFailed, vault.submit(ticket.id, form(card_number=card["number"]))
        )
        assert [f.field for f in err.fields] == ["card_number"], card


async def test_invalid_arguments(store):
    vault = await store.open()
    session, pin = await submitted(vault)
    bad_options = [
        pci_vault.SessionOptions(ttl_seconds=0),
        pci_vault.SessionOptions(ttl_seconds=86401),
        pci_vault.SessionOptions(pin_length=3),
        pci_vault.SessionOptions(pin_length=13),
        pci_vault.SessionOptions(max_attempts=0),
        pci_vault.SessionOptions(max_attempts=11),
        pci_vault.SessionOptions(fields=[]),
        pci_vault.SessionOptions(fields=["Card Number"]),
        pci_vault.SessionOptions(fields=["card_number", "card_number"]),
        pci_vault.SessionOptions(fields=[f"f{i}" for i in range(33)]),
        pci_vault.SessionOptions(metadata={"note": "card 4242 4242 4242 4242"}),
        pci_vault.SessionOptions(metadata={f"k{i}": "v" for i in range(17)}),
        pci_vault.SessionOptions(metadata={"": "v"}),
        pci_vault.SessionOptions(metadata={"k": "v" * 257}),
    ]
    for options in bad_options:
        await expect_error(VaultError.InvalidArgument, vault.create_session(options))

    for bad_id in ("", "nope", session[:-1], session + "A", session[:-1] + "=", "*" * 43):
        err = await expect_error(VaultError.InvalidArgument, vault.status(bad_id))
        assert err.message == "invalid argument: a session id is 43 characters of base64url"
    for bad_pin in ("", "12", "12ab56", "1" * 13, "12 34"):
        err = await expect_error(VaultError.InvalidArgument, vault.reveal(session, bad_pin))
        assert err.message == "invalid argument: a PIN is 4-12 digits 0-9"
    ticket = await vault.create_session()
    await expect_error(
        VaultError.InvalidArgument, vault.submit(ticket.id, {**VALID_FORM, "favourite_colour": "red"})
    )
    with pytest.raises(VaultError.InvalidArgument):
        vault.for_tenant("not a tenant")
    # None of it used an attempt or lost the form.
    assert (await vault.status(session)).attempts_left == 5
    assert (await vault.reveal(session, pin)).fields["card_number"] == "4242424242424242"


async def test_invalid_open_options():
    cases = [
        pci_vault.VaultOptions(keys=pci_vault.KeySource.KEYRING(keys=[])),
        pci_vault.VaultOptions(keys=keyring("bad id")),
        pci_vault.VaultOptions(keys=pci_vault.KeySource.KEYRING(
            keys=[pci_vault.KeyringEntry(id="k1", key=b"\x00" * 32)])),
        pci_vault.VaultOptions(keys=pci_vault.KeySource.KEYRING(
            keys=[pci_vault.KeyringEntry(id="k1", key=b"short")])),
        pci_vault.VaultOptions(keys=keyring("k1"), store="http://127.0.0.1:1"),
        pci_vault.VaultOptions(keys=keyring("k1"), store="redis://127.0.0.1:1,rediss://127.0.0.1:2"),
        pci_vault.VaultOptions(keys=keyring("k1"), store="redis://127.0.0.1:1",
                               redis=pci_vault.RedisSettings(ca_file="/tmp/ca.pem")),
        pci_vault.VaultOptions(keys=keyring("k1"), store="redis://127.0.0.1:1",
                               redis=pci_vault.RedisSettings(timeout_ms=0)),
        pci_vault.VaultOptions(keys=keyring("k1"), store="redis://127.0.0.1:1",
                               redis=pci_vault.RedisSettings(connect_timeout_ms=60001)),
        pci_vault.VaultOptions(keys=keyring("k1"), store="redis://127.0.0.1:1",
                               redis=pci_vault.RedisSettings(key_prefix="{tag}")),
        pci_vault.VaultOptions(keys=keyring("k1"), store="rediss://127.0.0.1:1",
                               redis=pci_vault.RedisSettings(client_cert_file="/tmp/c.pem")),
        pci_vault.VaultOptions(keys=keyring("k1"), store="redis://127.0.0.1:1",
                               redis=pci_vault.RedisSettings(min_replicas=0)),
        pci_vault.VaultOptions(keys=keyring("k1"), store="redis://127.0.0.1:1",
                               redis=pci_vault.RedisSettings(min_replicas_timeout_ms=100)),
        pci_vault.VaultOptions(keys=keyring("k1"), store="redis://127.0.0.1:1?min_replicas=x"),
        pci_vault.VaultOptions(keys=keyring("k1"), store="memory",
                               redis=pci_vault.RedisSettings(key_prefix="x:")),
        pci_vault.VaultOptions(keys=keyring("k1"),
                               session_defaults=pci_vault.SessionOptions(pin_length=2)),
    ]
    for options in cases:
        await expect_error(VaultError.InvalidArgument, pci_vault.Vault.open(options))


async def test_store_unavailable_when_too_few_replicas_acknowledge(redis_server):
    # A single node has no replica: a vault that wants one for every write fails to open,
    # whether it asks in the Redis settings or in the store string.
    server = redis_server()
    plain = await pci_vault.Vault.open(pci_vault.VaultOptions(keys=keyring("k1"), store=server.url))
    assert len((await plain.create_session()).id) == 43
    for options in (
        pci_vault.VaultOptions(keys=keyring("k1"), store=server.url, redis=pci_vault.RedisSettings(
            min_replicas=1, min_replicas_timeout_ms=50)),
        pci_vault.VaultOptions(keys=keyring("k1"),
                               store=f"{server.url}?min_replicas=1&min_replicas_timeout_ms=50"),
    ):
        err = await expect_error(VaultError.StoreUnavailable, pci_vault.Vault.open(options))
        assert "0 of 1 replicas acknowledged" in err.message


async def test_store_unavailable_at_open_and_when_redis_dies(redis_server):
    nobody = f"redis://127.0.0.1:{free_port()}"
    err = await expect_error(VaultError.StoreUnavailable, pci_vault.Vault.open(
        pci_vault.VaultOptions(keys=keyring("k1"), store=nobody,
                               redis=pci_vault.RedisSettings(connect_timeout_ms=2000))))
    assert "redis" in err.message

    server = redis_server()
    vault = await pci_vault.Vault.open(pci_vault.VaultOptions(
        keys=keyring("k1"), store=server.url, redis=pci_vault.RedisSettings(timeout_ms=500)))
    ticket = await vault.create_session()
    server.stop()
    for call in (vault.status(ticket.id), vault.create_session(), vault.ping(),
                 vault.submit(ticket.id, VALID_FORM)):
        await expect_error(VaultError.StoreUnavailable, call)

    # The connection comes back by itself when Redis does (empty: it kept nothing on disk).
    redis_server(port=server.port)
    for _ in range(100):
        try:
            await vault.ping()
            break
        except VaultError.StoreUnavailable:
            await asyncio.sleep(0.1)
    await expect_error(VaultError.NotFound, vault.status(ticket.id))
    session, pin = await submitted(vault)
    assert (await vault.reveal(session, pin)).fields["cvc"] == "123"


async def test_capacity_exceeded_when_redis_is_full(redis_server):
    server = redis_server()
    vault = await pci_vault.Vault.open(pci_vault.VaultOptions(keys=keyring("k1"), store=server.url))
    kept, kept_pin = await submitted(vault)
    used = int(next(line.split(":")[1] for line in redis_cli(server.url, "info", "memory")
                    if line.startswith("used_memory:")))
    redis_cli(server.url, "config", "set", "maxmemory", str(used + 256 * 1024))
    for _ in range(20000):
        try:
            await vault.create_session(pci_vault.SessionOptions(metadata={"pad": "x" * 256}))
        except VaultError.CapacityExceeded as err:
            assert err.code == "CAPACITY_EXCEEDED"
            break
    else:
        pytest.fail("Redis never reported that it is full")
    # Nothing was lost: once there is room again, the earlier session reveals.
    redis_cli(server.url, "config", "set", "maxmemory", "0")
    assert (await vault.reveal(kept, kept_pin)).fields["card_number"] == "4242424242424242"


async def test_key_unavailable_for_missing_keys(redis_store, monkeypatch):
    monkeypatch.delenv("PCI_VAULT_PYTEST_UNSET", raising=False)
    err = await expect_error(VaultError.KeyUnavailable, pci_vault.Vault.open(pci_vault.VaultOptions(
        keys=pci_vault.KeySource.ENV(var="PCI_VAULT_PYTEST_UNSET"))))
    assert "PCI_VAULT_PYTEST_UNSET" in err.message
    # A keyring text given as the variable's name by mistake is refused, never shown.
    text = "k1:" + base64.b64encode(bytes(range(32))).decode()
    err = await expect_error(VaultError.InvalidArgument, pci_vault.Vault.open(pci_vault.VaultOptions(
        keys=pci_vault.KeySource.ENV(var=text))))
    assert text[3:] not in err.message and text[3:] not in repr(err)
    await expect_error(VaultError.KeyUnavailable, pci_vault.Vault.open(pci_vault.VaultOptions(
        keys=pci_vault.KeySource.FILE(path="/nonexistent/pci-vault-keys"))))

    sealer = await redis_store.open(keys=keyring("k1"))
    session, pin = await submitted(sealer)
    stranger = await redis_store.open(keys=keyring("k9", seed=40))
    await expect_error(VaultError.KeyUnavailable, stranger.status(session))
    await expect_error(VaultError.KeyUnavailable, stranger.reveal(session, pin))
    # The failed reveal used no attempt: the right keys still reveal.
    assert (await sealer.reveal(session, pin)).fields["cvc"] == "123"


async def test_integrity_error_for_an_altered_record(redis_store):
    vault = await redis_store.open()
    session, pin = await submitted(vault)
    [key] = redis_store.keys()
    url = os.environ["PCI_VAULT_TEST_REDIS_URL"]
    before = subprocess.run(["redis-cli", "-u", url, "--raw", "getrange", key, "40", "40"],
                            capture_output=True, check=True).stdout[:1]
    redis_cli(url, "setrange", key, "40", "A" if before != b"A" else "B")
    await expect_error(VaultError.IntegrityError, vault.status(session))
    await expect_error(VaultError.IntegrityError, vault.reveal(session, pin))
