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

/// The version of a stored value: an opaque number that the writer chooses, unique to one
/// write.
///
/// Every write names the version it stores ([`Version::random`] draws one no other write
/// will carry), so a writer that did not get its reply learns the outcome by asking the
/// store again: if the stored version is the one it wrote, its write applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub u64);

impl Version {
    /// A version drawn from the operating system's random source: 64 random bits, so two
    /// writes carry the same version with negligible probability.
    pub fn random() -> Version {
        let mut bytes = [0u8; 8];
        crate::crypto::fill_random(&mut bytes);
        Version(u64::from_be_bytes(bytes))
    }
}

/// One claim on an entry (see [`EphemeralStore::claim`]): who took it and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    /// The claimant's id, unique to one claim (random; a retry repeats it).
    pub id: u64,
    /// When the claim was taken, in milliseconds since the Unix epoch, by the claimant's
    /// clock. The store keeps it and never interprets it.
    pub at_millis: i64,
}

/// A value, the version it was read at, and the claims taken on it since it was written.
#[derive(Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The stored bytes.
    pub value: Vec<u8>,
    /// Their version.
    pub version: Version,
    /// The claims taken on this version, oldest first.
    pub claims: Vec<Claim>,
}

impl fmt::Debug for Versioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Versioned")
            .field("value_len", &self.value.len())
            .field("version", &self.version)
            .field("claims", &self.claims)
            .finish()
    }
}

/// The result of [`EphemeralStore::claim`]: the entry as it is after the claim, and the
/// claim's place among its claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The entry, with every claim it holds (the new one included).
    pub entry: Versioned,
    /// The claim's 1-based position in `entry.claims`, or `None` when the entry already
    /// held `limit` claims and this one was not taken.
    pub slot: Option<u8>,
}

/// The result of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum CasOutcome {
    /// The write happened (now, or earlier under the same version); the value now has this
    /// version.
    Applied(Version),
    /// The condition did not hold (the key exists, is gone, or has another version); nothing
    /// was written.
    Conflict,
}

/// Most claims one entry can hold.
pub const MAX_CLAIMS: u8 = 16;

/// Longest event a store must publish, in bytes.
pub const MAX_EVENT_LEN: usize = 1024;

/// The events published on one key since [`EphemeralStore::subscribe`] returned, in the
/// order the store applied the writes that carried them.
#[async_trait]
pub trait EventSubscription: Send + fmt::Debug {
    /// The next event, waiting for one; `None` once the subscription is lost (a dropped
    /// connection, a subscriber that fell too far behind). Events published while it is
    /// lost are not delivered: the caller subscribes again and reads the entry.
    async fn next(&mut self) -> Option<Vec<u8>>;
}

/// An ephemeral key/value store with TTL, atomic compare-and-set and claims.
///
/// Keys are at most 128 bytes of `[A-Za-z0-9_-]`; values are at most 1 MiB.
///
/// # Behavior
/// - Every method MUST be atomic with respect to every other call on the same key, from any
///   thread or process sharing the store.
/// - An entry whose TTL has passed MUST behave as absent for every method, whether or not
///   it has been evicted yet.
/// - Every write is idempotent: the caller names the version it writes (or, for
///   [`claim`](Self::claim), the claim's id), and repeating a write that already applied —
///   a retry after a lost reply, or a command the client re-sent by itself — MUST answer
///   as the first one did without changing anything. This is how a caller whose write
///   timed out learns whether it applied.
/// - A method that returns an error MUST NOT have changed the entry, as far as the store can
///   tell. A network store cannot rule out that a write it reported as failed (timeout,
///   reset connection) applied or still applies later; the caller then repeats it to learn
///   which.
///
/// # Errors
/// - [`crate::Error::StoreUnavailable`] when the store is down, times out or answers
///   unexpectedly: the write may or may not have applied. The message MUST NOT contain
///   stored values.
/// - [`crate::Error::CapacityExceeded`] when a write would take the store past its bound;
///   nothing was written.
#[async_trait]
pub trait EphemeralStore: Send + Sync + fmt::Debug {
    /// Stores `value` at `version` under `key` for `ttl` if, and only if, `key` is absent.
    /// The new entry holds no claim.
    ///
    /// Returns [`CasOutcome::Applied`] also when `key` already holds `version` (this write
    /// applied before), and [`CasOutcome::Conflict`] when `key` holds another version.
    /// `ttl` is at least one millisecond.
    async fn create(
        &self,
        key: &str,
        version: Version,
        value: &[u8],
        ttl: Duration,
    ) -> Result<CasOutcome>;

    /// Reads the value under `key`, its version and its claims; `None` when absent or
    /// expired.
    async fn load(&self, key: &str) -> Result<Option<Versioned>>;

    /// Replaces the value under `key` with `value` at `version` if, and only if, its
    /// version is `expected`. The entry keeps its remaining TTL and its claims.
    ///
    /// Returns [`CasOutcome::Applied`] also when `key` already holds `version` (this write
    /// applied before), and [`CasOutcome::Conflict`] when `key` is absent or has another
    /// version.
    async fn replace(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
    ) -> Result<CasOutcome>;

    /// Deletes `key` if, and only if, its version is `expected`.
    ///
    /// Returns [`CasOutcome::Conflict`] when `key` is absent or has another version; the
    /// version in [`CasOutcome::Applied`] is the one deleted.
    async fn delete(&self, key: &str, expected: Version) -> Result<CasOutcome>;

    /// Reads the entry under `key` and, in the same atomic step, takes a claim on it: `claim`
    /// is appended to the entry's claims if the value starts with `prefix` and the entry
    /// holds fewer than `limit` (at most [`MAX_CLAIMS`]) claims. Claims are counted tickets,
    /// such as the attempts of a session: taking one neither changes the value nor its
    /// version, and keeps the TTL.
    ///
    /// A claim whose id the entry already holds is not taken again: the answer gives its
    /// place as the first call did. An entry whose value does not start with `prefix`, or
    /// that is full, answers with no place. Returns `None` when `key` is absent or expired.
    async fn claim(
        &self,
        key: &str,
        claim: Claim,
        limit: u8,
        prefix: &[u8],
    ) -> Result<Option<Claimed>>;

    /// Gives back the claim `id` if it is the entry's latest claim, so a claimant that
    /// compared nothing (its key provider failed, its record did not authenticate) costs no
    /// attempt. A claim with a later one after it stays: places already given never move.
    ///
    /// Returns `true` when the entry no longer holds the claim (given back now or before,
    /// or the entry is gone), `false` when the claim stays.
    async fn release(&self, key: &str, id: u64) -> Result<bool>;

    /// Checks that the store answers.
    async fn ping(&self) -> Result<()>;

    /// [`replace`](Self::replace), and in the same atomic step publishes `event` (at most
    /// [`MAX_EVENT_LEN`] bytes) to the subscribers of `key`, in every process sharing the
    /// store.
    ///
    /// The event MUST be published if, and only if, this call stores `version` now: not on
    /// a conflict, and not again when a repeated call finds `version` already stored. So an
    /// event is never announced for a write that did not happen, and not twice — except by
    /// a store whose writes count only once replicas confirm them, which publishes after
    /// the confirmation, again on a repeat (a watch reports each change once), and not at
    /// all when that publish fails (a watch learns the change from its next read).
    ///
    /// Required, with no default, so that a store wrapper cannot forget to forward it and
    /// silently drop every event. A store that delivers no events implements it as
    /// [`replace`](Self::replace) and fails [`subscribe`](Self::subscribe).
    async fn replace_and_publish(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
        event: &[u8],
    ) -> Result<CasOutcome>;

    /// Publishes `event` to the subscribers of `key` without a write: for what changes
    /// nothing stored (a form page fetched) or whose write was a claim (a wrong PIN).
    /// Delivery is at most once; a subscriber that misses it learns the entry's state by
    /// reading it.
    async fn publish(&self, key: &str, event: &[u8]) -> Result<()>;

    /// Subscribes to the events of `key`. Every event published after this returns, by
    /// any process sharing the store, is delivered in order, until the subscription is
    /// lost. A subscriber that reads the entry after subscribing therefore misses nothing
    /// between that read and the events that follow it.
    ///
    /// # Errors
    /// `STORE_UNAVAILABLE` when the store cannot subscribe now, or delivers no events at
    /// all.
    async fn subscribe(&self, key: &str) -> Result<Box<dyn EventSubscription>>;
}

#[async_trait]
impl<T: EphemeralStore + ?Sized> EphemeralStore for Arc<T> {
    async fn create(
        &self,
        key: &str,
        version: Version,
        value: &[u8],
        ttl: Duration,
    ) -> Result<CasOutcome> {
        (**self).create(key, version, value, ttl).await
    }

    async fn load(&self, key: &str) -> Result<Option<Versioned>> {
        (**self).load(key).await
    }

    async fn replace(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
    ) -> Result<CasOutcome> {
        (**self).replace(key, expected, version, value).await
    }

    async fn delete(&self, key: &str, expected: Version) -> Result<CasOutcome> {
        (**self).delete(key, expected).await
    }

    async fn claim(
        &self,
        key: &str,
        claim: Claim,
        limit: u8,
        prefix: &[u8],
    ) -> Result<Option<Claimed>> {
        (**self).claim(key, claim, limit, prefix).await
    }

    async fn release(&self, key: &str, id: u64) -> Result<bool> {
        (**self).release(key, id).await
    }

    async fn ping(&self) -> Result<()> {
        (**self).ping().await
    }

    async fn replace_and_publish(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
        event: &[u8],
    ) -> Result<CasOutcome> {
        (**self)
            .replace_and_publish(key, expected, version, value, event)
            .await
    }

    async fn publish(&self, key: &str, event: &[u8]) -> Result<()> {
        (**self).publish(key, event).await
    }

    async fn subscribe(&self, key: &str) -> Result<Box<dyn EventSubscription>> {
        (**self).subscribe(key).await
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
