"""The binding with its keys in an HSM (a SoftHSM2 token, through PKCS#11) and in AWS KMS
(moto's server): the key-source strings scripts/suites/50-python.sh sets up. Two vaults
with the same source share sessions on Redis; a key the HSM or KMS does not have is
refused at open with KEY_UNAVAILABLE, naming no secret.
"""

import os
import re
import uuid
from pathlib import Path

import pytest

import pci_vault

SOURCES = [
    ("hsm", "PCI_VAULT_TEST_HSM_KEY_SOURCE", "k1", "no-such-key"),
    ("kms", "PCI_VAULT_TEST_KMS_KEY_SOURCE", None, "00000000-0000-0000-0000-000000000000"),
]

FORM = {
    "card_number": "4242 4242 4242 4242",
    "expiry": "12/34",
    "cvc": "123",
    "cardholder_name": "Ada Lovelace",
}


def source_of(variable):
    source = os.environ.get(variable)
    assert source, f"{variable} names the key source (scripts/suites/50-python.sh sets it)"
    return source


def options(source, prefix):
    return pci_vault.VaultOptions(
        keys=pci_vault.KeySource.SOURCE(text=source),
        store=os.environ["PCI_VAULT_TEST_REDIS_URL"],
        redis=pci_vault.RedisSettings(key_prefix=prefix),
    )


@pytest.mark.parametrize("name,variable,label,missing", SOURCES, ids=[s[0] for s in SOURCES])
async def test_two_vaults_share_a_session_and_count_the_wraps(name, variable, label, missing):
    source = source_of(variable)
    prefix = f"custody-{uuid.uuid4().hex[:12]}:"
    agent = await pci_vault.Vault.open(options(source, prefix))
    form = await pci_vault.Vault.open(options(source, prefix))

    ticket = await agent.create_session()
    receipt = await form.submit(ticket.id, FORM)
    revealed = await agent.reveal(ticket.id, receipt.pin)
    assert revealed.card == pci_vault.CardSummary(brand="visa", masked_number="424242******4242")
    assert revealed.fields["card_number"] == "4242424242424242"

    [usage] = agent.key_usage()
    key_id = label or re.search(r"key=([^;]*)", source).group(1)
    assert (usage.key_id, usage.wraps, usage.rotation_due) == (key_id, 1, False)


@pytest.mark.parametrize("name,variable,label,missing", SOURCES, ids=[s[0] for s in SOURCES])
async def test_a_key_that_is_not_there_is_key_unavailable_at_open(name, variable, label, missing):
    source = source_of(variable)
    wrong = re.sub(r"key=[^;]*", f"key={missing}", source, count=1)
    with pytest.raises(pci_vault.VaultError.KeyUnavailable) as raised:
        await pci_vault.Vault.open(options(wrong, "custody-missing:"))
    assert raised.value.code == "KEY_UNAVAILABLE"
    pin_file = re.search(r"pin-file=([^;]*)", source)
    if pin_file:
        pin = Path(pin_file.group(1)).read_text().strip()
        assert pin and pin not in str(raised.value)
