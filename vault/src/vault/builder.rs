//! Building a [`Vault`].

use std::sync::Arc;

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
}

impl VaultBuilder {
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

    /// Builds the vault.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when the session defaults are out of range.
    pub fn build(self) -> Result<Vault> {
        self.defaults.validate()?;
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
            }),
            tenant: Tenant::default(),
        })
    }
}
