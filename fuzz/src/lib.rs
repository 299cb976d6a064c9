//! What the fuzz targets share: a deterministic executor, a store wrapper whose
//! interleavings the fuzzer chooses, and access to the memory store's raw bytes, as someone
//! who can read and write the store would have.
//!
//! A fuzz target signals a broken invariant by panicking, so the targets and this module
//! use `assert!` and `panic!` freely.

#![forbid(unsafe_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use pci_vault::audit::MemoryAuditSink;
use pci_vault::conformance::{TEST_KEK, flow::assert_no_secret_in, test_keyring};
use pci_vault::{
    CasOutcome, Claim, Claimed, EphemeralStore, Keyring, ManualClock, Result, Vault, Version, Versioned,
};
use pci_vault_memory::{MemoryLimits, MemoryStore};

pub use futures::executor::block_on;

/// Where every target's clock starts: 2030-06-15T12:00:00Z.
pub const START: Duration = Duration::from_secs(1_907_755_200);

/// Bytes of the unkeyed checksum that ends every sealed record: a big-endian CRC-32 of
/// everything before it (see `vault/src/record.rs`).
pub const CHECKSUM_LEN: usize = 4;

/// Replaces the last 4 bytes of `record` with the checksum of the bytes before them, as an
/// attacker who edits a stored record can: the checksum is unkeyed, so only the record tag
/// and the field AEADs stand between the edit and the vault.
pub fn fix_checksum(record: &mut [u8]) {
    let Some(body_len) = record.len().checked_sub(CHECKSUM_LEN) else {
        return;
    };
    let (body, checksum) = record.split_at_mut(body_len);
    checksum.copy_from_slice(&crc32fast::hash(body).to_be_bytes());
}

/// `body` followed by its checksum.
pub fn with_checksum(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + CHECKSUM_LEN);
    out.extend_from_slice(body);
    out.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
    out
}

/// A future that is pending once and wakes itself: a point where the executor switches to
/// another contender.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// A store wrapper that yields to the other contenders before and after every call, as
/// many times (0–3) as the next byte of a schedule the fuzzer chose says. Contenders joined
/// with `futures::future::join_all` on [`block_on`] then interleave between their load and
/// their compare-and-set in an order that is a pure function of the fuzz input, so every
/// crash reproduces. (The conformance suite's `Interleaved` draws its yields from the OS
/// random source, which suits tests but not a fuzzer.)
#[derive(Debug)]
pub struct Scheduled {
    inner: Arc<dyn EphemeralStore>,
    schedule: Mutex<(Vec<u8>, usize)>,
}

impl Scheduled {
    /// A wrapper that does not yield until it is given a schedule.
    pub fn new(inner: Arc<dyn EphemeralStore>) -> Self {
        Scheduled {
            inner,
            schedule: Mutex::new((Vec::new(), 0)),
        }
    }

    /// Starts a new schedule; when its bytes run out, calls stop yielding.
    pub fn set_schedule(&self, steps: Vec<u8>) {
        *self.schedule.lock().unwrap_or_else(|e| e.into_inner()) = (steps, 0);
    }

    async fn pause(&self) {
        let n = {
            let mut s = self.schedule.lock().unwrap_or_else(|e| e.into_inner());
            let n = s.0.get(s.1).copied().unwrap_or(0) % 4;
            s.1 += 1;
            n
        };
        for _ in 0..n {
            YieldNow(false).await;
        }
    }
}

#[async_trait]
impl EphemeralStore for Scheduled {
    async fn create(
        &self,
        key: &str,
        version: Version,
        value: &[u8],
        ttl: Duration,
    ) -> Result<CasOutcome> {
        self.pause().await;
        let out = self.inner.create(key, version, value, ttl).await;
        self.pause().await;
        out
    }

    async fn load(&self, key: &str) -> Result<Option<Versioned>> {
        self.pause().await;
        let out = self.inner.load(key).await;
        self.pause().await;
        out
    }

    async fn replace(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
    ) -> Result<CasOutcome> {
        self.pause().await;
        let out = self.inner.replace(key, expected, version, value).await;
        self.pause().await;
        out
    }

    async fn delete(&self, key: &str, expected: Version) -> Result<CasOutcome> {
        self.pause().await;
        let out = self.inner.delete(key, expected).await;
        self.pause().await;
        out
    }

    async fn claim(
        &self,
        key: &str,
        claim: Claim,
        limit: u8,
        prefix: &[u8],
    ) -> Result<Option<Claimed>> {
        self.pause().await;
        let out = self.inner.claim(key, claim, limit, prefix).await;
        self.pause().await;
        out
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}

/// One memory store on a manual clock, reachable raw (as an attacker with store access) and
/// through vaults (as the processes of a deployment).
pub struct Fixture {
    /// The store itself, for raw reads and writes.
    pub memory: Arc<MemoryStore>,
    /// The same store behind [`Scheduled`], which every vault of the fixture uses.
    pub scheduled: Arc<Scheduled>,
    /// The clock of the store and of every vault.
    pub clock: Arc<ManualClock>,
    keyring: Arc<Keyring>,
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}

impl Fixture {
    /// A fresh store with its clock at [`START`].
    pub fn new() -> Self {
        Fixture::at(UNIX_EPOCH + START)
    }

    /// A fresh store with its clock at `now`.
    pub fn at(now: SystemTime) -> Self {
        let clock = Arc::new(ManualClock::new(now));
        let memory = Arc::new(MemoryStore::with_clock(
            MemoryLimits::default(),
            clock.clone(),
        ));
        let scheduled = Arc::new(Scheduled::new(memory.clone()));
        Fixture {
            memory,
            scheduled,
            clock,
            keyring: Arc::new(test_keyring()),
        }
    }

    /// A vault on the fixture's store and clock with the conformance suite's keyring, and
    /// the in-memory audit sink it reports to. Each call is another "process": it shares the
    /// store and the key, and has its own audit key.
    pub fn vault(&self) -> (Vault, Arc<MemoryAuditSink>) {
        let audit = Arc::new(MemoryAuditSink::new());
        let vault = Vault::builder(self.scheduled.clone(), self.keyring.clone())
            .clock(self.clock.clone())
            .audit_sink(audit.clone())
            .build()
            .unwrap_or_else(|e| panic!("building the vault failed: {e}"));
        (vault, audit)
    }

    /// Every live entry, sorted by key: the store as an attacker who can read it sees it.
    pub fn entries(&self) -> Vec<(String, Vec<u8>)> {
        let mut entries = self.memory.raw_entries();
        entries.sort();
        entries
    }

    /// The key of the one entry in `after` that is not in `before`.
    pub fn new_key(before: &[(String, Vec<u8>)], after: &[(String, Vec<u8>)]) -> String {
        let mut new = after
            .iter()
            .filter(|(k, _)| !before.iter().any(|(b, _)| b == k))
            .map(|(k, _)| k.clone());
        let key = new.next().unwrap_or_else(|| panic!("no new entry"));
        assert!(new.next().is_none(), "more than one new entry");
        key
    }

    /// The stored bytes under `key`.
    pub fn raw(&self, key: &str) -> Vec<u8> {
        let loaded = block_on(self.memory.load(key)).unwrap_or_else(|e| panic!("load: {e}"));
        loaded.unwrap_or_else(|| panic!("no entry")).value
    }

    /// Overwrites the value under `key` (keeping its TTL), as someone with write access to
    /// the store can.
    pub fn overwrite(&self, key: &str, value: &[u8]) {
        block_on(async {
            let current = self
                .memory
                .load(key)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let current = current.unwrap_or_else(|| panic!("no entry to overwrite"));
            match self.memory.replace(key, current.version, pci_vault::Version::random(), value).await {
                Ok(CasOutcome::Applied(_)) => {}
                other => panic!("overwrite failed: {other:?}"),
            }
        });
    }

    /// Panics when any stored byte string holds a clear secret (in the encodings the
    /// conformance suite looks for) or the key-encryption key.
    pub fn assert_store_holds_no(&self, secrets: &[&str]) {
        let mut all: Vec<(&str, Vec<u8>)> = secrets
            .iter()
            .map(|s| ("a clear secret", s.as_bytes().to_vec()))
            .collect();
        all.push(("the key-encryption key", TEST_KEK.to_vec()));
        for (key, value) in self.entries() {
            assert_no_secret_in(value.as_slice(), &all);
            assert_no_secret_in(key.as_bytes(), &all);
        }
    }
}

/// Whether `text` holds a run of three or more ASCII digits. The library's own messages
/// have at most two in a row ("32 fields", "4-12 digits"), so such a run in an error
/// message can only come from an echoed value: a card number, a security code, a PIN.
pub fn has_digit_run(text: &str, run: usize) -> bool {
    let mut n = 0;
    for b in text.bytes() {
        n = if b.is_ascii_digit() { n + 1 } else { 0 };
        if n >= run {
            return true;
        }
    }
    false
}
