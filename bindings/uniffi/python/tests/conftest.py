"""Shared fixtures: vaults on the memory store and on a real Redis, test cards, and
throwaway redis-server processes for the tests that stop, fill or secure a server.

The suite's Redis comes from PCI_VAULT_TEST_REDIS_URL (scripts/suites/50-python.sh starts
it); without it the Redis tests fail rather than skip.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

import pci_vault

REPO = Path(__file__).resolve().parents[4]
CARDS = json.loads((REPO / "vault/tests/data/test-cards.json").read_text())
# The arguments every test launcher of the repository starts redis-server with (loopback,
# no persistence, noeviction), shared with the Rust and Node launchers.
REDIS_FLAGS = json.loads((REPO / "testkit/redis-flags.json").read_text())["args"]

VALID_FORM = {
    "card_number": "4242 4242 4242 4242",
    "expiry": "12/34",
    "cvc": "123",
    "cardholder_name": "Ada Lovelace",
}


SEEN_PINS = []

# How many PINs to hand to the log check (scripts/suites/95-logs.sh): it looks for each one
# as a whole number in every log of the run, so a few hundred random six-digit PINs would
# now and then match an unrelated number. Fifty keep that chance well under 1%.
PINS_FOR_THE_LOG_CHECK = 50


@pytest.fixture(autouse=True, scope="session")
def remember_pins():
    """Notes the PINs `submit` returns (the real call, unchanged) and lists some of them in
    .test-run/seen-pins/, so the log check makes sure no log of the run contains one."""
    submit = pci_vault.Vault.submit

    async def noting_submit(self, *args, **kwargs):
        receipt = await submit(self, *args, **kwargs)
        SEEN_PINS.append(receipt.pin)
        return receipt

    pci_vault.Vault.submit = noting_submit
    yield
    pci_vault.Vault.submit = submit
    logs = Path(os.environ.get("PCI_VAULT_TEST_LOGS", REPO / ".test-run" / "logs"))
    seen = logs.parent / "seen-pins"
    seen.mkdir(parents=True, exist_ok=True)
    pins = [pin for pin in dict.fromkeys(SEEN_PINS) if len(pin) >= 6][:PINS_FOR_THE_LOG_CHECK]
    (seen / "python.txt").write_text("".join(f"{pin}\n" for pin in pins))


def form(**changes):
    """The valid card form with some fields changed (None removes a field)."""
    out = dict(VALID_FORM)
    for name, value in changes.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def keyring(*ids, seed=7):
    """An inline keyring: one 32-byte key per id (derived from the id), the first primary."""
    return pci_vault.KeySource.KEYRING(
        keys=[
            pci_vault.KeyringEntry(id=key_id, key=bytes([seed + i]) * 32)
            for i, key_id in enumerate(ids)
        ]
    )


def redis_url():
    url = os.environ.get("PCI_VAULT_TEST_REDIS_URL")
    if not url:
        pytest.fail("PCI_VAULT_TEST_REDIS_URL is not set: run scripts/test 50-python")
    return url


def redis_cli(url, *args):
    """Runs redis-cli against `url` and returns its output lines."""
    out = subprocess.run(
        ["redis-cli", "-u", url, "--raw", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return [line for line in out.stdout.splitlines() if line]


def redis_keys(url, prefix):
    """Every key under `prefix`."""
    return redis_cli(url, "--scan", "--pattern", f"{prefix}*")


class Store:
    """One store a test runs against: memory, or the suite's Redis under a fresh prefix."""

    def __init__(self, kind):
        self.kind = kind
        self.prefix = f"pytest-{uuid.uuid4().hex[:12]}:"

    def options(self, keys=None, session_defaults=None):
        keys = keys or keyring("k1")
        if self.kind == "memory":
            return pci_vault.VaultOptions(keys=keys, session_defaults=session_defaults)
        return pci_vault.VaultOptions(
            keys=keys,
            store=redis_url(),
            redis=pci_vault.RedisSettings(key_prefix=self.prefix),
            session_defaults=session_defaults,
        )

    async def open(self, keys=None, session_defaults=None):
        return await pci_vault.Vault.open(self.options(keys, session_defaults))

    def keys(self):
        """The Redis keys this test wrote (Redis only)."""
        assert self.kind == "redis"
        return redis_keys(redis_url(), self.prefix)


@pytest.fixture(params=["memory", "redis"])
def store(request):
    """Each test that takes `store` runs once on memory and once on Redis."""
    return Store(request.param)


@pytest.fixture
def redis_store():
    return Store("redis")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server of one test, on a free loopback port, stopped by PID."""

    def __init__(self, *extra, port=None, tls=False):
        self.dir = tempfile.mkdtemp(prefix="pci-vault-pytest-redis-")
        self.port = port or free_port()
        port_args = ["--port", "0", "--tls-port", str(self.port)] if tls else ["--port", str(self.port)]
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                *port_args,
                *REDIS_FLAGS,
                "--dir", self.dir,
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_server():
    """Starts throwaway redis-servers with extra arguments; stops them all after the test."""
    servers = []

    def start(*extra, **kwargs):
        server = RedisServer(*extra, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


async def expect_error(cls, awaitable):
    """Awaits and returns the VaultError it raises, checking its class and code."""
    with pytest.raises(cls) as info:
        await awaitable
    err = info.value
    assert isinstance(err, pci_vault.VaultError)
    assert err.code == CODES[cls], f"{cls.__name__} carries {err.code}"
    return err


CODES = {
    pci_vault.VaultError.NotFound: "NOT_FOUND",
    pci_vault.VaultError.AlreadySubmitted: "ALREADY_SUBMITTED",
    pci_vault.VaultError.NotSubmitted: "NOT_SUBMITTED",
    pci_vault.VaultError.AlreadyRevealed: "ALREADY_REVEALED",
    pci_vault.VaultError.Cancelled: "CANCELLED",
    pci_vault.VaultError.Locked: "LOCKED",
    pci_vault.VaultError.WrongPin: "WRONG_PIN",
    pci_vault.VaultError.ValidationFailed: "VALIDATION_FAILED",
    pci_vault.VaultError.InvalidArgument: "INVALID_ARGUMENT",
    pci_vault.VaultError.StoreUnavailable: "STORE_UNAVAILABLE",
    pci_vault.VaultError.CapacityExceeded: "CAPACITY_EXCEEDED",
    pci_vault.VaultError.KeyUnavailable: "KEY_UNAVAILABLE",
    pci_vault.VaultError.IntegrityError: "INTEGRITY_ERROR",
}


def wrong_pin(pin):
    """A PIN of the same length that is not `pin`."""
    return "".join("1" if c == "0" else "0" for c in pin)
