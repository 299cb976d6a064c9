//! Building a [`Vault`].

use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use super::{Inner, Vault};
use crate::audit::{AuditSink, TracingAuditSink};
use crate::clock::{Clock, SystemClock};
use crate::crypto::{AuditKey, fill_random};
use crate::error::Result;
use crate::keys::KeyProvider;
use crate::session::SessionOptions;
use crate::tenant::Tenant;

/// Configures a [`Vault`]. Only the store and the key provider are required.
#[must_use]
pub struct VaultBuilder {
    store: Arc<dyn crate::store::EphemeralStore>,
    keys: Arc<dyn KeyProvider>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
    defaults: SessionOptions,
    audit_key: Option<Zeroizing<[u8; 32]>>,
    attempt_grace: Duration,
}

impl VaultBuilder {
    /// The default [`VaultBuilder::attempt_grace`]: twice the Redis store's default
    /// operation timeout.
    pub const DEFAULT_ATTEMPT_GRACE: Duration = Duration::from_secs(4);

    /// Longest accepted [`VaultBuilder::attempt_grace`].
    pub const MAX_ATTEMPT_GRACE: Duration = Duration::from_secs(60);

    pub(super) fn new(
        store: Arc<dyn crate::store::EphemeralStore>,
        keys: Arc<dyn KeyProvider>,
    ) -> Self {
        VaultBuilder {
            store,
            keys,
            audit: Arc::new(TracingAuditSink),
            clock: Arc::new(SystemClock),
            defaults: SessionOptions::default(),
            audit_key: None,
            attempt_grace: Self::DEFAULT_ATTEMPT_GRACE,
        }
    }

    /// Where audit events go. Default: [`TracingAuditSink`].
    pub fn audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = sink;
        self
    }

    /// The clock for expiry. Default: [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The options callers start from when they create a session.
    pub fn session_defaults(mut self, defaults: SessionOptions) -> Self {
        self.defaults = defaults;
        self
    }

    /// The key for the session references in audit events. Give every process of a
    /// deployment the same key, so their events can be matched. Default: a random key per
    /// vault, so references match only within one process.
    pub fn audit_key(mut self, key: [u8; 32]) -> Self {
        self.audit_key = Some(Zeroizing::new(key));
        self
    }

    /// How long after a session's latest PIN attempt that attempt's outcome may still be on
    /// its way to the store. A reveal that finds every attempt taken waits at most this long
    /// for the outcome; after it, a session still submitted is locked (its last attempt's
    /// write was lost). Set it to at least twice the store's operation timeout, and keep
    /// the clocks of the processes sharing a store closer than it. Default:
    /// [`VaultBuilder::DEFAULT_ATTEMPT_GRACE`]; 1 ms to [`VaultBuilder::MAX_ATTEMPT_GRACE`].
    pub fn attempt_grace(mut self, grace: Duration) -> Self {
        self.attempt_grace = grace;
        self
    }

    /// Builds the vault.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when the session defaults or the attempt grace are out of range.
    pub fn build(self) -> Result<Vault> {
        self.defaults.validate()?;
        if !(Duration::from_millis(1)..=Self::MAX_ATTEMPT_GRACE).contains(&self.attempt_grace) {
            return Err(crate::error::Error::InvalidArgument(
                "the attempt grace is 1 ms to 60 s",
            ));
        }
        let audit_key = self.audit_key.unwrap_or_else(|| {
            let mut key = Zeroizing::new([0u8; 32]);
            fill_random(key.as_mut_slice());
            key
        });
        Ok(Vault {
            inner: Arc::new(Inner {
                store: self.store,
                keys: self.keys,
                audit: self.audit,
                clock: self.clock,
                defaults: self.defaults,
                audit_key: AuditKey::new(&audit_key),
                attempt_grace: self.attempt_grace,
            }),
            tenant: Tenant::default(),
        })
    }
}
