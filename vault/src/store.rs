//! The store contract: where sealed records live while a session does.
//!
//! A store is a small key/value map with a time to live and atomic compare-and-set. It
//! knows nothing of sessions: the state machine lives once, in [`crate::Vault`], and every
//! store runs the same conformance suite (feature `conformance`). What reaches a store is
//! always a sealed record: it never sees a clear field, a PIN or a key.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;

/// The version of a stored value. A store changes it on every successful write, so a
/// compare-and-set with an old version fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub u64);

/// A value and the version it was read at.
#[derive(Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The stored bytes.
    pub value: Vec<u8>,
    /// Their version.
    pub version: Version,
}

impl fmt::Debug for Versioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Versioned")
            .field("value_len", &self.value.len())
            .field("version", &self.version)
            .finish()
    }
}

/// The result of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum CasOutcome {
    /// The write happened; the value now has this version.
    Applied(Version),
    /// The condition did not hold (the key exists, is gone, or has another version); nothing
    /// was written.
    Conflict,
}

/// An ephemeral key/value store with TTL and atomic compare-and-set.
///
/// Keys are at most 128 bytes of `[A-Za-z0-9_-]`; values are at most 1 MiB.
///
/// # Behavior
/// - Every method MUST be atomic with respect to every other call on the same key, from any
///   thread or process sharing the store.
/// - An entry whose TTL has passed MUST behave as absent for every method, whether or not
///   it has been evicted yet.
/// - A method that returns an error MUST NOT have changed the entry, as far as the store can
///   tell (a timeout whose write still lands is the one exception a network store cannot
///   rule out; the caller's compare-and-set makes it harmless).
///
/// # Errors
/// - [`crate::Error::StoreUnavailable`] when the store is down, times out or answers
///   unexpectedly. The message MUST NOT contain stored values.
/// - [`crate::Error::CapacityExceeded`] when a write would take the store past its bound.
#[async_trait]
pub trait EphemeralStore: Send + Sync + fmt::Debug {
    /// Stores `value` under `key` for `ttl` if, and only if, `key` is absent.
    ///
    /// Returns [`CasOutcome::Conflict`] when `key` exists. `ttl` is at least one
    /// millisecond.
    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<CasOutcome>;

    /// Reads the value under `key` and its version; `None` when absent or expired.
    async fn load(&self, key: &str) -> Result<Option<Versioned>>;

    /// Replaces the value under `key` if, and only if, its version is `expected`. The entry
    /// keeps its remaining TTL.
    ///
    /// Returns [`CasOutcome::Conflict`] when `key` is absent or has another version.
    async fn replace(&self, key: &str, expected: Version, value: &[u8]) -> Result<CasOutcome>;

    /// Deletes `key` if, and only if, its version is `expected`.
    ///
    /// Returns [`CasOutcome::Conflict`] when `key` is absent or has another version; the
    /// version in [`CasOutcome::Applied`] is the one deleted.
    async fn delete(&self, key: &str, expected: Version) -> Result<CasOutcome>;

    /// Checks that the store answers.
    async fn ping(&self) -> Result<()>;
}

#[async_trait]
impl<T: EphemeralStore + ?Sized> EphemeralStore for Arc<T> {
    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<CasOutcome> {
        (**self).create(key, value, ttl).await
    }

    async fn load(&self, key: &str) -> Result<Option<Versioned>> {
        (**self).load(key).await
    }

    async fn replace(&self, key: &str, expected: Version, value: &[u8]) -> Result<CasOutcome> {
        (**self).replace(key, expected, value).await
    }

    async fn delete(&self, key: &str, expected: Version) -> Result<CasOutcome> {
        (**self).delete(key, expected).await
    }

    async fn ping(&self) -> Result<()> {
        (**self).ping().await
    }
}

/// Whether `key` is a well-formed store key; stores may use it to refuse others.
pub fn is_valid_key(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Longest value a store must accept, in bytes.
pub const MAX_VALUE_LEN: usize = 1024 * 1024;
