//! What the adversarial suites share: a memory store on a manual clock, reachable raw as
//! someone with access to the store would reach it, with vaults built on it by the
//! conformance suite's own helpers.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each suite uses a part of its support (so `expect` would be unfulfilled in some)"
)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use pci_vault::audit::MemoryAuditSink;
use pci_vault::conformance::{self, Harness};
use pci_vault::{
    CasOutcome, Clock, EphemeralStore, Error, ErrorCode, ManualClock, SessionId, SessionOptions,
    Vault,
};
use pci_vault_memory::MemoryStore;
use pci_vault_testkit::memory::MemoryHarness;

use pci_vault_testkit::memory::NOW;

/// One memory store and the manual clock it and its vaults share.
pub struct Fixture {
    pub store: Arc<MemoryStore>,
    pub clock: Arc<ManualClock>,
}

#[async_trait]
impl Harness for Fixture {
    fn store(&self) -> Arc<dyn EphemeralStore> {
        self.store.clone()
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

impl Fixture {
    /// A fresh store at [`NOW`] (2031-01-15T10:00:00Z): far from a month's end, so the
    /// expiry tests that need one set it themselves.
    pub fn new() -> Self {
        Fixture::at(UNIX_EPOCH + NOW)
    }

    /// A fresh store at `now`.
    pub fn at(now: SystemTime) -> Self {
        let MemoryHarness { store, clock, .. } = MemoryHarness::at(now);
        Fixture { store, clock }
    }

    /// A vault on this store, built by the conformance suite (its keyring, an in-memory
    /// audit sink).
    pub fn vault(&self) -> (Vault, Arc<MemoryAuditSink>) {
        conformance::vault(self)
    }

    /// Every live entry as stored, sorted by key: what someone who can read the store sees.
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut entries = self.store.raw_entries();
        entries.sort();
        entries
    }

    /// Creates a session and returns it with the key its record is stored under.
    pub async fn session(&self, vault: &Vault, options: &SessionOptions) -> (SessionId, String) {
        let before = self.snapshot();
        let ticket = vault.create_session(options).await.unwrap();
        let key = self
            .snapshot()
            .into_iter()
            .map(|(k, _)| k)
            .find(|k| !before.iter().any(|(b, _)| b == k))
            .expect("the new session's record");
        (ticket.id, key)
    }

    /// The bytes stored under `key`.
    pub async fn raw(&self, key: &str) -> Vec<u8> {
        self.store.load(key).await.unwrap().expect("an entry").value
    }

    /// Writes `value` under `key` as a new entry (an hour's TTL; the record carries its own
    /// expiry), without the claims the old one held, as someone with write access to the
    /// store can.
    pub async fn rewrite(&self, key: &str, value: &[u8]) {
        let current = self.store.load(key).await.unwrap().expect("an entry");
        assert!(matches!(
            self.store.delete(key, current.version).await.unwrap(),
            CasOutcome::Applied(_)
        ));
        assert!(matches!(
            self.store
                .create(
                    key,
                    pci_vault::Version::random(),
                    value,
                    std::time::Duration::from_secs(3600)
                )
                .await
                .unwrap(),
            CasOutcome::Applied(_)
        ));
    }

    /// Overwrites the value under `key`, keeping its TTL and claims, as someone with write
    /// access to the store can.
    pub async fn overwrite(&self, key: &str, value: &[u8]) {
        let current = self.store.load(key).await.unwrap().expect("an entry");
        assert!(matches!(
            self.store
                .replace(key, current.version, pci_vault::Version::random(), value)
                .await
                .unwrap(),
            CasOutcome::Applied(_)
        ));
    }
}

/// Bytes of the checksum that ends every sealed record: a big-endian CRC-32 of everything
/// before it (see `vault/src/record.rs`).
pub const CHECKSUM_LEN: usize = 4;

/// Replaces the checksum at the end of a record with the checksum of the rest, as an
/// attacker who edits a stored record can: the checksum is unkeyed.
pub fn fix_checksum(record: &mut [u8]) {
    let n = record.len() - CHECKSUM_LEN;
    let sum = crc32fast::hash(&record[..n]);
    record[n..].copy_from_slice(&sum.to_be_bytes());
}

/// Asserts `err` has code `want` and that neither its message nor its `Debug` contains any
/// of `inputs` (each checked once it is long enough not to occur in a fixed message by
/// chance).
pub fn assert_refused(err: &Error, want: ErrorCode, inputs: &[&str], what: &str) {
    assert_eq!(err.code(), want, "{what}: {err:?}");
    let text = format!("{err} {err:?}");
    for input in inputs {
        let input = input.trim();
        if input.chars().count() >= 4 {
            assert!(!text.contains(input), "{what}: the error echoes its input");
        }
    }
}

/// The `(field, reason)` pairs of a `VALIDATION_FAILED` error.
pub fn field_errors(err: &Error) -> Vec<(String, &'static str)> {
    match err {
        Error::ValidationFailed { fields } => fields
            .iter()
            .map(|f| (f.field.clone(), f.reason.as_str()))
            .collect(),
        other => panic!("expected VALIDATION_FAILED, got {other:?}"),
    }
}

/// A directory under the system's temporary directory, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        // Random hex closed by a letter: no run of digits in the path stands on its own,
        // so a test that looks for a short number as a token never finds it here.
        let random: String = SessionId::generate().as_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let name = format!("pci-vault-{tag}-{random}x");
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
