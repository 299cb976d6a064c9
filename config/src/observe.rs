//! Timing of every call the vault makes to its store and its key provider, handed to a
//! host's [`Observer`] (the example server turns it into latency histograms and error
//! counts).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pci_vault::store::{Claim, Claimed, EventSubscription};
use pci_vault::{
    CasOutcome, DataKey, EphemeralStore, Error, ErrorCode, KeyProvider, Result, Version, Versioned,
    WrappedKey,
};

/// What a store or key-provider call is reported as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Call {
    /// `store` or `key_provider`.
    pub component: &'static str,
    /// The trait method: `create`, `load`, `replace`, `delete`, `claim`, `release`, `ping`;
    /// `wrap`, `unwrap`.
    pub operation: &'static str,
    /// How long it took.
    pub elapsed: Duration,
    /// `None` when it succeeded, else its error's code.
    pub error: Option<ErrorCode>,
}

/// Receives one [`Call`] per store or key-provider call.
///
/// # Behavior
/// `observe` runs on the caller's task after each call: it MUST NOT block or panic.
pub trait Observer: Send + Sync + fmt::Debug {
    /// Takes one call.
    fn observe(&self, call: Call);
}

fn timed<T>(
    observer: &dyn Observer,
    component: &'static str,
    operation: &'static str,
    started: Instant,
    result: Result<T>,
) -> Result<T> {
    observer.observe(Call {
        component,
        operation,
        elapsed: started.elapsed(),
        error: result.as_ref().err().map(Error::code),
    });
    result
}

/// A store whose calls are reported to an observer.
#[derive(Debug)]
pub(crate) struct ObservedStore {
    pub(crate) inner: Arc<dyn EphemeralStore>,
    pub(crate) observer: Arc<dyn Observer>,
}

#[async_trait]
impl EphemeralStore for ObservedStore {
    async fn create(
        &self,
        key: &str,
        version: Version,
        value: &[u8],
        ttl: Duration,
    ) -> Result<CasOutcome> {
        let started = Instant::now();
        let result = self.inner.create(key, version, value, ttl).await;
        timed(&*self.observer, "store", "create", started, result)
    }

    async fn load(&self, key: &str) -> Result<Option<Versioned>> {
        let started = Instant::now();
        let result = self.inner.load(key).await;
        timed(&*self.observer, "store", "load", started, result)
    }

    async fn replace(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
    ) -> Result<CasOutcome> {
        let started = Instant::now();
        let result = self.inner.replace(key, expected, version, value).await;
        timed(&*self.observer, "store", "replace", started, result)
    }

    async fn delete(&self, key: &str, expected: Version) -> Result<CasOutcome> {
        let started = Instant::now();
        let result = self.inner.delete(key, expected).await;
        timed(&*self.observer, "store", "delete", started, result)
    }

    async fn claim(
        &self,
        key: &str,
        claim: Claim,
        limit: u8,
        prefix: &[u8],
    ) -> Result<Option<Claimed>> {
        let started = Instant::now();
        let result = self.inner.claim(key, claim, limit, prefix).await;
        timed(&*self.observer, "store", "claim", started, result)
    }

    async fn release(&self, key: &str, id: u64) -> Result<bool> {
        let started = Instant::now();
        let result = self.inner.release(key, id).await;
        timed(&*self.observer, "store", "release", started, result)
    }

    async fn ping(&self) -> Result<()> {
        let started = Instant::now();
        let result = self.inner.ping().await;
        timed(&*self.observer, "store", "ping", started, result)
    }

    async fn replace_and_publish(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
        event: &[u8],
    ) -> Result<CasOutcome> {
        let started = Instant::now();
        let result = self
            .inner
            .replace_and_publish(key, expected, version, value, event)
            .await;
        timed(&*self.observer, "store", "replace", started, result)
    }

    async fn publish(&self, key: &str, event: &[u8]) -> Result<()> {
        let started = Instant::now();
        let result = self.inner.publish(key, event).await;
        timed(&*self.observer, "store", "publish", started, result)
    }

    async fn subscribe(&self, key: &str) -> Result<Box<dyn EventSubscription>> {
        let started = Instant::now();
        let result = self.inner.subscribe(key).await;
        timed(&*self.observer, "store", "subscribe", started, result)
    }
}

/// A key provider whose calls are reported to an observer.
#[derive(Debug)]
pub(crate) struct ObservedKeys {
    pub(crate) inner: Arc<dyn KeyProvider>,
    pub(crate) observer: Arc<dyn Observer>,
}

#[async_trait]
impl KeyProvider for ObservedKeys {
    async fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<WrappedKey> {
        let started = Instant::now();
        let result = self.inner.wrap(dek, aad).await;
        timed(&*self.observer, "key_provider", "wrap", started, result)
    }

    async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey> {
        let started = Instant::now();
        let result = self.inner.unwrap(wrapped, aad).await;
        timed(&*self.observer, "key_provider", "unwrap", started, result)
    }
}
