"""Hostile arguments from Python: wrong types, huge strings, NUL bytes, non-ASCII text.
Each call gets a clear error, and the session it aimed at is unharmed."""

import pytest

import pci_vault
from conftest import VALID_FORM, expect_error, form, keyring

VaultError = pci_vault.VaultError

HUGE = "4" * (16 * 1024 * 1024)


@pytest.fixture
async def session(store):
    """A vault, a submitted session on it and its PIN."""
    vault = await store.open()
    ticket = await vault.create_session()
    receipt = await vault.submit(ticket.id, VALID_FORM)
    return vault, ticket.id, receipt.pin


async def still_intact(vault, session_id, pin):
    status = await vault.status(session_id)
    assert status.state == pci_vault.SessionState.SUBMITTED
    assert status.attempts_left == 5, "a hostile call used a PIN attempt"
    assert (await vault.reveal(session_id, pin)).fields["card_number"] == "4242424242424242"


WRONG_TYPES = [
    ("status", (42,)),
    ("status", (None,)),
    ("status", (b"bytes-are-not-str",)),
    ("reveal", ("SESSION", 123456)),
    ("reveal", ("SESSION", None)),
    ("cancel", (["SESSION"],)),
    ("submit", ("SESSION", [("card_number", "4242424242424242")])),
    ("submit", ("SESSION", {"card_number": 4242424242424242})),
    ("submit", ("SESSION", {b"card_number": "4242424242424242"})),
    ("submit", ("SESSION", None)),
    ("create_session", ("ttl=900",)),
    ("create_session", ({"ttl_seconds": 900},)),
]


@pytest.mark.parametrize("method,args", WRONG_TYPES)
async def test_wrong_types_are_refused_before_the_call(session, method, args):
    """The generated module checks every argument before it crosses: a wrong scalar is a
    TypeError, a wrong container or record an AttributeError (uniffi's own checks)."""
    vault, session_id, pin = session
    args = tuple(session_id if a == "SESSION" else a for a in args)
    with pytest.raises((TypeError, AttributeError)):
        await getattr(vault, method)(*args)
    await still_intact(vault, session_id, pin)


@pytest.mark.parametrize(
    "options",
    [
        lambda: pci_vault.SessionOptions(ttl_seconds=-1),
        lambda: pci_vault.SessionOptions(ttl_seconds=2**32),
        lambda: pci_vault.SessionOptions(pin_length=256),
        lambda: pci_vault.SessionOptions(ttl_seconds="900"),
        lambda: pci_vault.SessionOptions(ttl_seconds=9.5),
        lambda: pci_vault.SessionOptions(metadata={"k": 1}),
        lambda: pci_vault.SessionOptions(metadata=[("k", "v")]),
    ],
)
async def test_out_of_range_numbers_and_wrong_option_types(store, options):
    vault = await store.open()
    with pytest.raises((TypeError, ValueError, AttributeError)):
        await vault.create_session(options())


async def test_a_string_for_a_list_of_fields_is_an_invalid_argument(store):
    # A str is a sequence of one-letter strings to the generated module: the core refuses
    # the form it makes (`c`, `a`, `r`, ... with a repeated name).
    vault = await store.open()
    await expect_error(VaultError.InvalidArgument, vault.create_session(
        pci_vault.SessionOptions(fields="card_number")))


async def test_wrong_types_in_open_options():
    bad = [
        lambda: pci_vault.VaultOptions(keys="k1:abc"),
        lambda: pci_vault.VaultOptions(keys=keyring("k1"), store=None),
        lambda: pci_vault.VaultOptions(keys=pci_vault.KeySource.KEYRING(
            keys=[pci_vault.KeyringEntry(id="k1", key="a" * 32)])),
        lambda: pci_vault.VaultOptions(keys=pci_vault.KeySource.PROVIDER(provider=object())),
    ]
    for options in bad:
        with pytest.raises((TypeError, ValueError, AttributeError)):
            await pci_vault.Vault.open(options())


async def test_huge_strings(session):
    vault, session_id, pin = session
    await expect_error(VaultError.InvalidArgument, vault.status(HUGE))
    await expect_error(VaultError.InvalidArgument, vault.reveal(session_id, HUGE))
    await expect_error(VaultError.InvalidArgument, vault.cancel(HUGE))
    with pytest.raises(VaultError.InvalidArgument):
        vault.for_tenant(HUGE)
    await expect_error(VaultError.InvalidArgument, vault.create_session(
        pci_vault.SessionOptions(metadata={"k": HUGE})))
    await expect_error(VaultError.InvalidArgument, vault.create_session(
        pci_vault.SessionOptions(fields=[HUGE])))
    await expect_error(VaultError.InvalidArgument, vault.create_session(
        pci_vault.SessionOptions(fields=["card_number"] * 100_000)))

    ticket = await vault.create_session()
    err = await expect_error(VaultError.ValidationFailed, vault.submit(
        ticket.id, form(card_number=HUGE, cardholder_name=HUGE)))
    assert [(f.field, f.reason) for f in err.fields] == [
        ("card_number", "too_long"), ("cardholder_name", "too_long")]
    assert len(str(err)) < 500
    await expect_error(VaultError.InvalidArgument, vault.submit(
        ticket.id, {f"field_{i}": "x" for i in range(100_000)}))
    await expect_error(VaultError.InvalidArgument, vault.submit(ticket.id, {HUGE: "x"}))
    assert (await vault.status(ticket.id)).state == pci_vault.SessionState.PENDING
    await still_intact(vault, session_id, pin)


async def test_nul_bytes(session):
    vault, session_id, pin = session
    await expect_error(VaultError.InvalidArgument, vault.status(session_id[:42] + "\0"))
    await expect_error(VaultError.InvalidArgument, vault.status(session_id + "\0"))
    await expect_error(VaultError.InvalidArgument, vault.reveal(session_id, pin + "\0"))
    await expect_error(VaultError.InvalidArgument, vault.reveal(session_id, "\0" * 6))
    with pytest.raises(VaultError.InvalidArgument):
        vault.for_tenant("acme\0")
    await expect_error(VaultError.InvalidArgument, vault.create_session(
        pci_vault.SessionOptions(metadata={"conversation\0": "c-1"})))
    await expect_error(VaultError.InvalidArgument, vault.create_session(
        pci_vault.SessionOptions(metadata={"conversation": "c\0-1"})))

    ticket = await vault.create_session(pci_vault.SessionOptions(
        fields=["card_number", "expiry", "cvc", "cardholder_name", "note"]))
    err = await expect_error(VaultError.ValidationFailed, vault.submit(ticket.id, {
        "card_number": "4242\x004242\x0042424242",
        "expiry": "12/\x0034",
        "cvc": "12\x003",
        "cardholder_name": "Ada\x00Lovelace",
        "note": "hello\x00world",
    }))
    assert {f.field for f in err.fields} == {"card_number", "expiry", "cvc", "cardholder_name", "note"}
    await expect_error(VaultError.InvalidArgument, vault.submit(
        ticket.id, {**VALID_FORM, "card_number\0": "4242424242424242"}))
    assert (await vault.status(ticket.id)).state == pci_vault.SessionState.PENDING
    await still_intact(vault, session_id, pin)


async def test_non_ascii_text(session):
    vault, session_id, pin = session
    names = ["Zoë Ærøskøbing-Łukasiewicz", "José María O'Neill", "山田 太郎", "Ольга Петрова",
             "Nguyễn Văn A"]
    for name in names:
        ticket = await vault.create_session(pci_vault.SessionOptions(
            fields=["card_number", "expiry", "cvc", "cardholder_name", "note"],
            metadata={"agent": "Jürgen", "kanal": "Überweisung ✓"}))
        receipt = await vault.submit(ticket.id, form(cardholder_name=name, note="Grüße 🙂"))
        assert (await vault.status(ticket.id)).metadata == {"agent": "Jürgen", "kanal": "Überweisung ✓"}
        revealed = await vault.reveal(ticket.id, receipt.pin)
        assert revealed.fields["cardholder_name"] == name
        assert revealed.fields["note"] == "Grüße 🙂"

    ticket = await vault.create_session()
    for digits in ("٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢", "４２４２４２４２４２４２４２４２", "4242 4242 4242 424２"):
        err = await expect_error(VaultError.ValidationFailed, vault.submit(
            ticket.id, form(card_number=digits)))
        assert [(f.field, f.reason) for f in err.fields] == [("card_number", "characters")]
    for bad in ("１２３４５６", "١٢٣٤٥٦", "12345٦"):
        await expect_error(VaultError.InvalidArgument, vault.reveal(session_id, bad))
    await expect_error(VaultError.InvalidArgument, vault.status("é" * 43))
    with pytest.raises(VaultError.InvalidArgument):
        vault.for_tenant("müller")
    await expect_error(VaultError.InvalidArgument, vault.submit(
        ticket.id, {**VALID_FORM, "straße": "x"}))
    # A lone surrogate is not text: Python refuses to encode it before the call.
    with pytest.raises(UnicodeEncodeError):
        await vault.submit(ticket.id, form(cardholder_name="Ada \ud800"))
    await still_intact(vault, session_id, pin)


async def test_printing_values_never_shows_secrets(store):
    key = bytes(range(1, 33))
    options = pci_vault.VaultOptions(
        keys=pci_vault.KeySource.KEYRING(keys=[pci_vault.KeyringEntry(id="k1", key=key)]),
        store="redis://vault-user:s3cr3t-pw@127.0.0.1:1",
    )
    entry = options.keys.keys[0]
    for text in (repr(options), str(options), repr(entry), str(entry), repr(options.keys)):
        assert "s3cr3t-pw" not in text and repr(key) not in text and str(list(key)) not in text
        assert "[REDACTED]" in text or "***" in text, text

    vault = await store.open()
    ticket = await vault.create_session()
    receipt = await vault.submit(ticket.id, VALID_FORM)
    status = await vault.status(ticket.id)
    revealed = await vault.reveal(ticket.id, receipt.pin)
    for value in (ticket, receipt, status, revealed):
        for text in (repr(value), str(value), f"{value}"):
            for secret in (ticket.id, receipt.pin, "4242424242424242", "Ada Lovelace"):
                assert secret not in text, f"{type(value).__name__} prints a secret: {text}"
    assert "424242******4242" in repr(revealed)
    assert ticket.id[:6] in repr(ticket)
