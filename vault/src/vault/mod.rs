//! The vault: the session state machine over a store, a key provider, an audit sink and a
//! clock.

mod builder;
mod customer;
pub(crate) mod ops;
mod reveal;
mod watch;
mod write;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::audit::AuditSink;
use crate::clock::Clock;
use crate::crypto::AuditKey;
use crate::error::Result;
use crate::form::{FormInput, RevealedForm};
use crate::keys::KeyProvider;
use crate::pin::Pin;
use crate::session::{SessionId, SessionOptions, SessionStatus, Ticket};
use crate::store::EphemeralStore;
use crate::tenant::Tenant;

pub use builder::VaultBuilder;
pub use watch::SessionWatch;

/// The one-time card-form vault.
///
/// Cheap to clone: clones share the store, key provider, audit sink and clock. Every method
/// is safe to call concurrently, from any number of tasks, threads and processes sharing the
/// store; the invariants in `docs/CONTRACTS.md` ("Invariants") hold whatever the
/// interleaving, and whatever the store does to a reply (see `docs/SECURITY.md`, "Faults").
///
/// Agent-side methods on `Vault` act for the default tenant; [`Vault::for_tenant`] gives the
/// same methods for another one. [`Vault::submit`] is the customer's and finds the session
/// by its id alone.
#[derive(Clone)]
pub struct Vault {
    pub(crate) inner: Arc<Inner>,
    tenant: Tenant,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn EphemeralStore>,
    pub(crate) keys: Arc<dyn KeyProvider>,
    pub(crate) audit: Arc<dyn AuditSink>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) defaults: SessionOptions,
    pub(crate) audit_key: AuditKey,
    /// How long after a session's latest PIN attempt its outcome may still be on its way
    /// (see [`VaultBuilder::attempt_grace`]).
    pub(crate) attempt_grace: Duration,
}

/// What `submit` returns: the PIN to show to the customer, and when the session expires.
#[derive(Debug)]
#[non_exhaustive]
pub struct Receipt {
    /// The PIN. Show it only to the customer; the vault keeps only its verifier.
    pub pin: Pin,
    /// When the session and its data expire.
    pub expires_at: SystemTime,
}

impl Vault {
    /// Starts building a vault on `store`, with `keys` wrapping the data keys.
    pub fn builder(store: Arc<dyn EphemeralStore>, keys: Arc<dyn KeyProvider>) -> VaultBuilder {
        VaultBuilder::new(store, keys)
    }

    /// The same vault, acting for `tenant` on the agent-side methods.
    pub fn for_tenant(&self, tenant: Tenant) -> Vault {
        Vault {
            inner: Arc::clone(&self.inner),
            tenant,
        }
    }

    /// The tenant the agent-side methods act for.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// The options [`Vault::create_session`] starts from (see [`VaultBuilder::session_defaults`]).
    pub fn session_defaults(&self) -> &SessionOptions {
        &self.inner.defaults
    }

    /// Creates a session and returns its id and expiry. The link for the customer is
    /// `{public_base_url}/forms/{id}`.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for options out of range; `KEY_UNAVAILABLE`; `STORE_UNAVAILABLE`;
    /// `CAPACITY_EXCEEDED`.
    pub async fn create_session(&self, options: &SessionOptions) -> Result<Ticket> {
        ops::create_session(&self.inner, &self.tenant, options).await
    }

    /// What the agent may know about a session: state, times, attempts left, metadata.
    /// Never secret data.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown, expired or other tenant's session; `INTEGRITY_ERROR`;
    /// `KEY_UNAVAILABLE`; `STORE_UNAVAILABLE`.
    pub async fn status(&self, id: &SessionId) -> Result<SessionStatus> {
        ops::status(&self.inner, &self.tenant, id).await
    }

    /// The customer submits the form. Every field is validated before anything is stored;
    /// on success the fields are sealed, a PIN is generated and returned, and only its
    /// verifier is stored.
    ///
    /// # Errors
    /// `VALIDATION_FAILED` (per field); `INVALID_ARGUMENT` (unknown or repeated field);
    /// `ALREADY_SUBMITTED`; `CANCELLED`; `NOT_FOUND`; `INTEGRITY_ERROR`; `KEY_UNAVAILABLE`;
    /// `STORE_UNAVAILABLE`; `CAPACITY_EXCEEDED`.
    pub async fn submit(&self, id: &SessionId, input: &FormInput) -> Result<Receipt> {
        ops::submit(&self.inner, id, input).await
    }

    /// The agent reveals the form with the customer's PIN: once. The form is returned only
    /// once the tombstone that destroys the stored data is known to be stored.
    ///
    /// Each guess first takes one of the session's attempts in the store, durably, in the
    /// same atomic step that reads the record; only then is the PIN compared (in constant
    /// time). A wrong PIN answers `WRONG_PIN` with the attempts left; the one that uses the
    /// last attempt locks the session and destroys its data. A reveal that finds every
    /// attempt taken compares nothing: it waits (at most the grace period) for the guesses
    /// in flight and answers the state that won (`ALREADY_REVEALED`, `LOCKED`); a session
    /// whose last attempt never stored its outcome is locked once the grace period is over.
    ///
    /// # Errors
    /// `WRONG_PIN`; `LOCKED`; `ALREADY_REVEALED`; `NOT_SUBMITTED`; `CANCELLED`; `NOT_FOUND`;
    /// `INTEGRITY_ERROR`; `KEY_UNAVAILABLE`; `STORE_UNAVAILABLE` (the form is then not
    /// returned, even if its tombstone was stored).
    pub async fn reveal(&self, id: &SessionId, pin: &Pin) -> Result<RevealedForm> {
        reveal::reveal(&self.inner, &self.tenant, id, pin).await
    }

    /// Cancels a pending or submitted session and destroys its data, leaving a tombstone
    /// until the TTL ends. Cancelling a cancelled session succeeds again.
    ///
    /// # Errors
    /// `ALREADY_REVEALED`; `LOCKED`; `NOT_FOUND`; `INTEGRITY_ERROR`; `KEY_UNAVAILABLE`;
    /// `STORE_UNAVAILABLE`.
    pub async fn cancel(&self, id: &SessionId) -> Result<()> {
        ops::cancel(&self.inner, &self.tenant, id).await
    }

    /// Checks that the store answers.
    ///
    /// # Errors
    /// `STORE_UNAVAILABLE`.
    pub async fn ping(&self) -> Result<()> {
        self.inner.store.ping().await
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("tenant", &self.tenant)
            .field("store", &self.inner.store)
            .field("keys", &self.inner.keys)
            .field("audit", &self.inner.audit)
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}
