"""The README's Python examples, run as written."""

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pci_vault
from conftest import VALID_FORM, expect_error, redis_url

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks():
    return re.findall(r"^```python\n(.*?)^```$", README.read_text(), flags=re.S | re.M)


def test_the_readme_has_the_three_examples():
    blocks = python_blocks()
    assert len(blocks) == 3
    assert "asyncio.run(main())" in blocks[0]
    assert "class LocalKms(pci_vault.KeyProvider)" in blocks[1]
    assert "class AuditTrail(pci_vault.AuditSink)" in blocks[2]


def test_quick_start_runs_as_written(tmp_path):
    script = tmp_path / "quick_start.py"
    script.write_text(python_blocks()[0])
    # A fresh interpreter, as a user would run it; its asserts are the checks.
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def kms_example():
    namespace = {"__name__": "readme_kms"}
    exec(compile(python_blocks()[1], str(README), "exec"), namespace)
    return namespace


async def test_kms_example_runs_the_flow_on_memory_and_redis():
    example = kms_example()
    for store in ("memory", redis_url()):
        vault = await example["open_vault"](store)
        ticket = await vault.create_session()
        receipt = await vault.submit(ticket.id, VALID_FORM)
        revealed = await vault.reveal(ticket.id, receipt.pin)
        assert revealed.fields["cardholder_name"] == "Ada Lovelace"


async def test_kms_example_reports_foreign_keys_and_tampering():
    example = kms_example()
    kms = example["LocalKms"]("kms:key-1", b"\x11" * 32)
    wrapped = kms.wrap(b"\x22" * 32, b"aad")
    assert kms.unwrap(wrapped, b"aad") == b"\x22" * 32
    try:
        kms.unwrap(wrapped, b"other aad")
        raise AssertionError("unwrap accepted other associated data")
    except pci_vault.KeyProviderError.Integrity:
        pass

    # A vault whose KMS holds another key cannot open what the first one sealed.
    first = await example["open_vault"](redis_url())
    ticket = await first.create_session()
    second = await example["open_vault"](redis_url())
    await expect_error(pci_vault.VaultError.IntegrityError, second.status(ticket.id))
    other_id = await pci_vault.Vault.open(pci_vault.VaultOptions(
        keys=pci_vault.KeySource.PROVIDER(provider=example["LocalKms"]("kms:key-2", b"\x11" * 32)),
        store=redis_url()))
    await expect_error(pci_vault.VaultError.KeyUnavailable, other_id.status(ticket.id))


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_audit_example_runs_as_written(tmp_path, kind):
    script = tmp_path / "audit_trail.py"
    script.write_text(python_blocks()[2])
    audit_key = os.urandom(32)
    env = {
        **os.environ,
        "PCI_VAULT_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
        "PCI_VAULT_AUDIT_KEY": audit_key.hex(),
        "PCI_VAULT_STORE": "memory" if kind == "memory" else redis_url(),
    }
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    # logging writes to stderr: one "audit {json}" line per event, and nothing else (no
    # store warning for the suite's safe Redis, no failed delivery).
    lines = done.stderr.splitlines()
    assert all(line.startswith("audit ") for line in lines), done.stderr
    events = [json.loads(line.removeprefix("audit ")) for line in lines]
    assert [(e["action"], e["outcome"], e["actor"]) for e in events] == [
        ("created", "success", "agent"),
        ("submitted", "success", "customer"),
        ("revealed", "success", "agent"),
    ]
    assert len({e["session_ref"] for e in events}) == 1
    assert all(e["tenant"] == "default" and e["attempts_left"] is None for e in events)
    for secret in ("4242424242424242", "4242 4242 4242 4242", "Ada Lovelace", audit_key.hex()):
        assert secret not in done.stderr
