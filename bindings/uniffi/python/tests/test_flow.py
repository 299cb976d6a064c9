"""The whole flow through the Python package, on the memory store and on Redis."""

import asyncio
import datetime
import os
import subprocess
import tempfile

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
)

VaultError = pci_vault.VaultError


async def test_create_submit_status_reveal(store):
    vault = await store.open()
    before = datetime.datetime.now(datetime.timezone.utc)
    ticket = await vault.create_session(
        pci_vault.SessionOptions(ttl_seconds=600, metadata={"conversation": "c-1"})
    )
    assert len(ticket.id) == 43
    assert set(ticket.id) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    lifetime = ticket.expires_at - before
    assert datetime.timedelta(seconds=598) < lifetime <= datetime.timedelta(seconds=601)

    status = await vault.status(ticket.id)
    assert status.id == ticket.id
    assert status.state == pci_vault.SessionState.PENDING
    assert status.submitted_at is None
    assert status.attempts_left == 5
    assert status.metadata == {"conversation": "c-1"}
    assert status.fields == ["card_number", "expiry", "cvc", "cardholder_name"]
    assert status.card is None
    assert status.expires_at == ticket.expires_at

    receipt = await vault.submit(ticket.id, VALID_FORM)
    assert len(receipt.pin) == 6 and receipt.pin.isdigit()
    assert receipt.expires_at == ticket.expires_at

    status = await vault.status(ticket.id)
    assert status.state == pci_vault.SessionState.SUBMITTED
    assert status.created_at <= status.submitted_at <= status.expires_at
    assert status.card == pci_vault.CardSummary(brand="visa", masked_number="424242******4242")
    shown = repr(status) + str(status.metadata) + str(status.fields)
    for secret in ("4242424242424242", "12/34", "Ada", receipt.pin):
        assert secret not in shown, "status shows card data beyond the summary"

    revealed = await vault.reveal(ticket.id, receipt.pin)
    assert revealed.fields == {
        "card_number": "4242424242424242",
        "expiry": "12/34",
        "cvc": "123",
        "cardholder_name": "Ada Lovelace",
    }
    assert revealed.card == pci_vault.CardSummary(brand="visa", masked_number="424242******4242")

    status = await vault.status(ticket.id)
    assert status.state == pci_vault.SessionState.REVEALED
    assert status.card is None, "the summary goes with the data"
    await expect_error(VaultError.AlreadyRevealed, vault.reveal(ticket.id, receipt.pin))
    await expect_error(VaultError.AlreadySubmitted, vault.submit(ticket.id, VALID_FORM))
    if store.kind == "redis":
        assert len(store.keys()) == 1, "a revealed session keeps only its tombstone"


async def test_every_published_test_card_reveals_its_brand(store):
    vault = await store.open()
    for card in CARDS["valid"]:
        ticket = await vault.create_session()
        cvc = "1234" if card["cvc_length"] == 4 else "123"
        receipt = await vault.submit(ticket.id, form(card_number=card["number"], cvc=cvc))
        revealed = await vault.reveal(ticket.id, receipt.pin)
        assert revealed.card.brand == card["brand"], card["number"]
        assert revealed.fields["card_number"] == card["number"]
        assert revealed.card.masked_number == (
            card["number"][:6] + "*" * (len(card["number"]) - 10) + card["number"][-4:]
        )


async def test_cancel_destroys_and_is_repeatable(store):
    vault = await store.open()
    pending = await vault.create_session()
    await vault.cancel(pending.id)
    await vault.cancel(pending.id)
    assert (await vault.status(pending.id)).state == pci_vault.SessionState.CANCELLED
    await expect_error(VaultError.Cancelled, vault.submit(pending.id, VALID_FORM))

    submitted = await vault.create_session()
    receipt = await vault.submit(submitted.id, VALID_FORM)
    await vault.cancel(submitted.id)
    await expect_error(VaultError.Cancelled, vault.reveal(submitted.id, receipt.pin))


async def test_custom_fields_and_session_defaults(store):
    vault = await store.open(
        session_defaults=pci_vault.SessionOptions(pin_length=8, max_attempts=3, ttl_seconds=120)
    )
    ticket = await vault.create_session(
        pci_vault.SessionOptions(fields=["card_number", "expiry", "order_ref"], pin_length=4)
    )
    status = await vault.status(ticket.id)
    assert status.fields == ["card_number", "expiry", "order_ref"]
    assert status.attempts_left == 3
    assert datetime.timedelta(seconds=118) < status.expires_at - status.created_at <= datetime.timedelta(seconds=120)
    receipt = await vault.submit(
        ticket.id, {"card_number": "5555555555554444", "expiry": "01/2035", "order_ref": "A-77"}
    )
    assert len(receipt.pin) == 4
    revealed = await vault.reveal(ticket.id, receipt.pin)
    assert revealed.fields == {"card_number": "5555555555554444", "expiry": "01/35", "order_ref": "A-77"}

    default = await vault.create_session()
    receipt = await vault.submit(default.id, VALID_FORM)
    assert len(receipt.pin) == 8


async def test_tenants_do_not_see_each_other(store):
    vault = await store.open()
    acme = vault.for_tenant("acme")
    other = vault.for_tenant("other-co")
    assert vault.tenant() == "default" and acme.tenant() == "acme"
    ticket = await acme.create_session()
    # The customer's submit finds the session by its id alone.
    receipt = await vault.submit(ticket.id, VALID_FORM)
    for stranger in (vault, other):
        await expect_error(VaultError.NotFound, stranger.status(ticket.id))
        await expect_error(VaultError.NotFound, stranger.reveal(ticket.id, receipt.pin))
        await expect_error(VaultError.NotFound, stranger.cancel(ticket.id))
    assert (await acme.reveal(ticket.id, receipt.pin)).fields["cvc"] == "123"


async def test_a_second_vault_on_the_same_redis_sees_the_session(redis_store):
    agent = await redis_store.open(keys=keyring("k1"))
    customer = await redis_store.open(keys=keyring("k1"))
    ticket = await agent.create_session()
    receipt = await customer.submit(ticket.id, VALID_FORM)
    assert (await agent.reveal(ticket.id, receipt.pin)).fields["expiry"] == "12/34"
    await expect_error(VaultError.AlreadyRevealed, customer.reveal(ticket.id, receipt.pin))


async def test_rotated_keyring_still_opens_older_records(redis_store):
    old = await redis_store.open(keys=keyring("k1", seed=7))
    ticket = await old.create_session()
    receipt = await old.submit(ticket.id, VALID_FORM)
    # k2 is the new primary; k1 (same material as before) only unwraps.
    rotated = await redis_store.open(
        keys=pci_vault.KeySource.KEYRING(
            keys=[
                pci_vault.KeyringEntry(id="k2", key=bytes([99]) * 32),
                pci_vault.KeyringEntry(id="k1", key=bytes([7]) * 32),
            ]
        )
    )
    assert (await rotated.reveal(ticket.id, receipt.pin)).fields["card_number"] == "4242424242424242"


async def test_key_sources_env_file_directory_and_development(monkeypatch):
    k1 = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="
    monkeypatch.setenv("PCI_VAULT_PYTEST_KEYS", f"k1:{k1}")
    with tempfile.TemporaryDirectory() as tmp:
        keyring_file = os.path.join(tmp, "keyring")
        with open(keyring_file, "w") as f:
            f.write(f"# primary first\nk1:{k1}\n")
        key_dir = os.path.join(tmp, "keys")
        os.mkdir(key_dir)
        with open(os.path.join(key_dir, "k1"), "w") as f:
            f.write(k1)
        with open(os.path.join(key_dir, "primary"), "w") as f:
            f.write("k1")
        sources = [
            pci_vault.KeySource.ENV(var="PCI_VAULT_PYTEST_KEYS"),
            pci_vault.KeySource.FILE(path=keyring_file),
            pci_vault.KeySource.DIRECTORY(path=key_dir),
        ]
        store = Store("redis")
        ticket = None
        for source in sources:
            vault = await store.open(keys=source)
            # All three name the same key: each opens what another sealed.
            if ticket is None:
                ticket = await vault.create_session()
                receipt = await vault.submit(ticket.id, VALID_FORM)
            assert (await vault.status(ticket.id)).state == pci_vault.SessionState.SUBMITTED
        assert (await vault.reveal(ticket.id, receipt.pin)).fields["cvc"] == "123"

    dev = await pci_vault.Vault.open(pci_vault.VaultOptions(keys=pci_vault.KeySource.DEVELOPMENT()))
    ticket = await dev.create_session()
    receipt = await dev.submit(ticket.id, VALID_FORM)
    assert (await dev.reveal(ticket.id, receipt.pin)).fields["cvc"] == "123"


async def test_redis_key_prefix_is_used(redis_store):
    vault = await redis_store.open()
    await vault.ping()
    assert redis_store.keys() == []
    await vault.create_session()
    await vault.create_session()
    keys = redis_store.keys()
    assert len(keys) == 2 and all(k.startswith(redis_store.prefix) for k in keys)


async def test_redis_cluster(redis_server):
    # The cluster bus port is named too: its default (port + 10000) may not exist.
    nodes = [
        redis_server("--cluster-enabled", "yes", "--cluster-port", str(free_port()),
                     "--cluster-node-timeout", "2000")
        for _ in range(3)
    ]
    subprocess.run(
        ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
         "--cluster-replicas", "0", "--cluster-yes"],
        check=True, capture_output=True, timeout=60,
    )
    for _ in range(200):
        if all("cluster_state:ok" in redis_cli(n.url, "cluster", "info") for n in nodes):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the cluster did not come up")
    vault = await pci_vault.Vault.open(
        pci_vault.VaultOptions(keys=keyring("k1"), store=",".join(n.url for n in nodes))
    )
    for _ in range(20):
        ticket = await vault.create_session()
        receipt = await vault.submit(ticket.id, VALID_FORM)
        assert (await vault.reveal(ticket.id, receipt.pin)).fields["cvc"] == "123"
    # The sessions are spread over the nodes (20 on one node of three: odds of 3^-19).
    sizes = [int(redis_cli(n.url, "dbsize")[0]) for n in nodes]
    assert sum(sizes) == 20 and sum(1 for size in sizes if size) >= 2, sizes
    # One seed with cluster=True reaches the same cluster.
    one_seed = await pci_vault.Vault.open(
        pci_vault.VaultOptions(keys=keyring("k1"), store=nodes[1].url,
                               redis=pci_vault.RedisSettings(cluster=True))
    )
    assert (await one_seed.status(ticket.id)).state == pci_vault.SessionState.REVEALED


async def test_redis_settings_need_a_redis_store():
    await expect_error(VaultError.InvalidArgument, pci_vault.Vault.open(pci_vault.VaultOptions(
        keys=keyring("k1"), redis=pci_vault.RedisSettings(key_prefix="x:"))))


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def tls_files(tmp_path):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made by openssl."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=pytest CA",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=tmp_path)
    (tmp_path / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    (tmp_path / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=tmp_path)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
                cwd=tmp_path)
    return tmp_path


async def test_redis_over_tls_with_a_ca_file_and_client_certificates(redis_server, tls_files):
    server = redis_server(
        "--tls-cert-file", str(tls_files / "server.pem"),
        "--tls-key-file", str(tls_files / "server.key"),
        "--tls-ca-cert-file", str(tls_files / "ca.pem"),
        "--tls-auth-clients", "optional",
        tls=True,
    )
    url = f"rediss://127.0.0.1:{server.port}"
    ca = str(tls_files / "ca.pem")
    vault = await pci_vault.Vault.open(pci_vault.VaultOptions(
        keys=keyring("k1"), store=url, redis=pci_vault.RedisSettings(ca_file=ca)))
    ticket = await vault.create_session()
    receipt = await vault.submit(ticket.id, VALID_FORM)
    assert (await vault.reveal(ticket.id, receipt.pin)).fields["cvc"] == "123"

    mutual = await pci_vault.Vault.open(pci_vault.VaultOptions(
        keys=keyring("k1"), store=url, redis=pci_vault.RedisSettings(
            ca_file=ca,
            client_cert_file=str(tls_files / "client.pem"),
            client_key_file=str(tls_files / "client.key"))))
    assert (await mutual.status(ticket.id)).state == pci_vault.SessionState.REVEALED

    # Without the CA the server's certificate is not trusted; plain text is refused.
    await expect_error(VaultError.StoreUnavailable, pci_vault.Vault.open(pci_vault.VaultOptions(
        keys=keyring("k1"), store=url, redis=pci_vault.RedisSettings(connect_timeout_ms=3000))))
    await expect_error(VaultError.StoreUnavailable, pci_vault.Vault.open(pci_vault.VaultOptions(
        keys=keyring("k1"), store=f"redis://127.0.0.1:{server.port}",
        redis=pci_vault.RedisSettings(connect_timeout_ms=1000))))
