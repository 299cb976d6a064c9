"""The shared cases of config/tests/cases.json through Vault.open: the same store string,
key source and options open the same vault here as in Rust, Node and the server.

Python cannot pass a memory bound or a tenant to open other than through the store string
and for_tenant; a case's tenant is applied with for_tenant after open."""

import base64
import json

import pci_vault
from conftest import REPO, VALID_FORM

CASES = json.loads((REPO / "config/tests/cases.json").read_text())["cases"]


def options(case):
    keys = case["keys"]
    if "keyring" in keys:
        source = pci_vault.KeySource.KEYRING(keys=[
            pci_vault.KeyringEntry(id=e["id"], key=base64.b64decode(e["key"])) for e in keys["keyring"]
        ])
    elif "env" in keys:
        source = pci_vault.KeySource.ENV(var=keys["env"])
    elif "file" in keys:
        source = pci_vault.KeySource.FILE(path=keys["file"])
    elif "source" in keys:
        source = pci_vault.KeySource.SOURCE(text=keys["source"])
    else:
        source = pci_vault.KeySource.DEVELOPMENT()
    d = case.get("session_defaults", {})
    defaults = pci_vault.SessionOptions(
        ttl_seconds=d.get("ttl_seconds"), pin_length=d.get("pin_length"),
        max_attempts=d.get("max_attempts"), fields=d.get("fields"),
    )
    audit_key = bytes([7] * case["audit_key_len"]) if "audit_key_len" in case else None
    return pci_vault.VaultOptions(keys=source, store=case["store"], session_defaults=defaults,
                                  audit_key=audit_key)


def fits(value, bits):
    """Whether a number fits the unsigned type the Python options declare."""
    return value is None or 0 <= value < (1 << bits)


async def test_the_shared_cases_open_the_same_vault():
    assert len(CASES) > 20
    ran = 0
    for case in CASES:
        name, expect = case["name"], case["expect"]
        d = case.get("session_defaults", {})
        if not (fits(d.get("pin_length"), 8) and fits(d.get("max_attempts"), 8)):
            print(f"skipped {name!r}: Python declares pin_length and max_attempts as u8")
            continue
        ran += 1
        try:
            vault = await pci_vault.Vault.open(options(case))
            if "tenant" in case:
                vault = vault.for_tenant(case["tenant"])
        except pci_vault.VaultError as err:
            assert expect.get("error") == err.code, f"{name}: {err.code} {err}"
            for secret in case.get("secrets", []):
                assert secret not in str(err), name
            continue
        assert "error" not in expect, f"{name}: opened, expected {expect['error']}"
        assert vault.tenant() == expect["tenant"], name
        assert vault.store_warnings() == [], name
        ticket = await vault.create_session()
        status = await vault.status(ticket.id)
        assert status.attempts_left == expect["max_attempts"], name
        assert status.fields == expect["fields"], name
        assert round((status.expires_at - status.created_at).total_seconds()) == expect["ttl_seconds"], name
        form = {f: VALID_FORM.get(f, "ref-1") for f in expect["fields"]}
        receipt = await vault.submit(ticket.id, form)
        assert len(receipt.pin) == expect["pin_length"], name
    assert ran >= 30, ran
