//! The exported `Vault` object: the core's five operations, one call each.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use pci_vault::{ExposeSecret, FormInput, Pin, SessionId, Tenant};
use pci_vault_config::{KeyUsage, VaultConfig, to_completion};
use zeroize::Zeroizing;

use crate::audit::HostAuditSink;
use crate::error::VaultError;
use crate::options::{SessionOptions, VaultOptions, store_config};

/// The one-time card-form vault. Every method may be called concurrently from any number
/// of tasks and processes sharing the store.
#[derive(uniffi::Object)]
pub struct Vault {
    pub(crate) inner: pci_vault::Vault,
    /// The unsafe Redis settings found at open; shared with `for_tenant` vaults.
    store_warnings: Arc<[String]>,
    /// The queue to the host's audit sink, if `open` was given one; shared with
    /// `for_tenant` vaults, so their events go through the same queue, in order.
    audit: Option<Arc<HostAuditSink>>,
    /// The wrap counts of the keys; shared with `for_tenant` vaults.
    key_usage: Arc<KeyUsage>,
}

/// One key-encryption key's wrap count in this process.
#[derive(Debug, uniffi::Record)]
pub struct KeyWrapCount {
    /// The key id, as records name it.
    pub key_id: String,
    /// Data keys it wrapped since the vault was opened.
    pub wraps: u64,
    /// Whether it reached the wrap warning limit: rotate it.
    pub rotation_due: bool,
}

/// What `create_session` returns: the id for the link `{public_base_url}/forms/{id}` and
/// when it expires.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct Ticket {
    /// The session id: 43 characters of base64url.
    pub id: String,
    /// When the session and any data in it expire.
    pub expires_at: SystemTime,
}

/// What `submit` returns: the PIN to show to the customer, and only to the customer.
#[derive(uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct Receipt {
    /// The PIN the customer reads out to the agent.
    pub pin: String,
    /// When the session and its data expire.
    pub expires_at: SystemTime,
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SessionState {
    /// Waiting for the customer's form.
    Pending,
    /// Submitted; waiting for the agent's PIN.
    Submitted,
    /// Revealed once; the data is destroyed.
    Revealed,
    /// Cancelled; the data is destroyed.
    Cancelled,
    /// Too many wrong PINs; the data is destroyed.
    Locked,
}

/// What the agent may learn about a session: never secret data.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct SessionStatus {
    /// The session id.
    pub id: String,
    /// The current state.
    pub state: SessionState,
    /// When the session was created.
    pub created_at: SystemTime,
    /// When the customer submitted the form, if they did.
    pub submitted_at: Option<SystemTime>,
    /// When the session expires.
    pub expires_at: SystemTime,
    /// Wrong PINs still allowed (0 once locked).
    pub attempts_left: u8,
    /// The labels given at creation.
    pub metadata: HashMap<String, String>,
    /// The names of the fields the form asks for, in order.
    pub fields: Vec<String>,
    /// While the session is submitted: the card's brand and masked number (first 6 and
    /// last 4 digits); `None` otherwise. Nothing else of the card.
    pub card: Option<CardSummary>,
}

/// The clear form, returned once by `reveal`.
#[derive(uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct RevealedForm {
    /// Field name → clear value (`card_number` as digits only, `expiry` as `MM/YY`).
    pub fields: HashMap<String, String>,
    /// Brand and masked number, when the form has a card number.
    pub card: Option<CardSummary>,
}

/// A card's brand and masked number: safe to show and to log.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CardSummary {
    /// `visa`, `mastercard`, `amex`, `discover`, `jcb`, `diners`, `unionpay` or `maestro`.
    pub brand: String,
    /// First 6 and last 4 digits, the rest `*`.
    pub masked_number: String,
}

#[uniffi::export(async_runtime = "tokio")]
impl Vault {
    /// Opens a vault on the store and keys of `options`. A Redis store is connected and
    /// checked now.
    ///
    /// Errors: `INVALID_ARGUMENT` (a malformed option, key or URL), `KEY_UNAVAILABLE` (keys
    /// that cannot be loaded), `STORE_UNAVAILABLE` (Redis unreachable, refused, TLS failure).
    #[uniffi::constructor]
    pub async fn open(options: VaultOptions) -> Result<Arc<Vault>, VaultError> {
        let VaultOptions {
            keys,
            store,
            redis,
            session_defaults,
            audit_key,
            audit_sink,
        } = options;
        // Under `Zeroizing` before anything can fail, like the inline keys (read first).
        let audit_key = audit_key.map(Zeroizing::new);
        let keys = keys.into_config()?;
        let mut config = VaultConfig::new(store_config(&store, redis)?, keys);
        config.session_defaults = session_defaults.unwrap_or_default().overrides();
        config.audit_key = audit_key;
        let audit = audit_sink.map(|sink| Arc::new(HostAuditSink::start(sink)));
        config.audit_sink = audit
            .as_ref()
            .map(|audit| Arc::clone(audit) as Arc<dyn pci_vault::AuditSink>);
        let opened = config.open().await?;
        Ok(Arc::new(Vault {
            inner: opened.vault,
            store_warnings: opened.store_warnings.into(),
            audit,
            key_usage: opened.key_usage,
        }))
    }

    /// The same vault acting for `tenant` (1–64 characters of `A-Z a-z 0-9 . _ -`) in
    /// `create_session`, `status`, `reveal` and `cancel`; sessions of other tenants answer
    /// `NOT_FOUND`. A vault opened by `open` acts for the tenant `default`.
    pub fn for_tenant(&self, tenant: String) -> Result<Arc<Vault>, VaultError> {
        Ok(Arc::new(Vault {
            inner: self.inner.for_tenant(Tenant::new(tenant)?),
            store_warnings: Arc::clone(&self.store_warnings),
            audit: self.audit.clone(),
            key_usage: Arc::clone(&self.key_usage),
        }))
    }

    /// The tenant this vault acts for.
    pub fn tenant(&self) -> String {
        self.inner.tenant().as_str().to_owned()
    }

    /// The unsafe Redis settings `open` found (persistence on, an eviction policy that can
    /// silently drop sessions), one sentence each. Empty for the memory store, for a safe
    /// server, and when the ACL does not allow reading the settings. Log them at start.
    pub fn store_warnings(&self) -> Vec<String> {
        self.store_warnings.to_vec()
    }

    /// How many data keys each key-encryption key has wrapped in this process, and whether
    /// one reached the wrap warning limit (2^30 per key): export it to monitoring and
    /// rotate a key before it is due. Key ids only, never key material.
    pub fn key_usage(&self) -> Vec<KeyWrapCount> {
        self.key_usage
            .wraps()
            .into_iter()
            .map(|key| KeyWrapCount {
                key_id: key.key_id.as_str().to_owned(),
                wraps: key.wraps,
                rotation_due: key.rotation_due,
            })
            .collect()
    }

    /// Waits until every audit event recorded before this call has been handed to the
    /// `audit_sink` (its `record` returned or raised). Returns at once without a sink. Call
    /// it before you release the vault: events still queued when the last handle to it goes
    /// away are dropped. It waits as long as the sink takes.
    pub async fn flush_audit(&self) {
        if let Some(audit) = &self.audit {
            audit.flush().await;
        }
    }

    /// How many audit events the `audit_sink` did not take since `open`: it raised, or
    /// `stop_audit_delivery` had stopped delivery. 0 without a sink.
    pub fn audit_failures(&self) -> u64 {
        self.audit.as_ref().map_or(0, |audit| audit.failures())
    }

    /// Creates a session. Options left out take the vault's session defaults.
    #[uniffi::method(default(options = None))]
    pub async fn create_session(
        &self,
        options: Option<SessionOptions>,
    ) -> Result<Ticket, VaultError> {
        let options = options
            .unwrap_or_default()
            .overrides()
            .apply(self.inner.session_defaults())?;
        let vault = self.inner.clone();
        let ticket = to_completion(async move { vault.create_session(&options).await }).await?;
        Ok(Ticket {
            id: ticket.id.to_string(),
            expires_at: ticket.expires_at,
        })
    }

    /// State, times, attempts left and metadata of a session; never secret data.
    pub async fn status(&self, id: String) -> Result<SessionStatus, VaultError> {
        let id = SessionId::parse(&id)?;
        let vault = self.inner.clone();
        // Not a plain read: a session whose attempts were all taken without their outcome
        // stored is locked here, then audited; run to the end so a cancelled call cannot
        // store the lock without its audit event.
        let (id, status) = to_completion(async move {
            let status = vault.status(&id).await?;
            Ok((id, status))
        })
        .await?;
        Ok(SessionStatus {
            id: id.to_string(),
            state: status.state.into(),
            created_at: status.created_at,
            submitted_at: status.submitted_at,
            expires_at: status.expires_at,
            attempts_left: status.attempts_left,
            metadata: status.metadata_pairs().collect(),
            fields: status.field_names(),
            card: status
                .card_view()
                .map(|(brand, masked_number)| CardSummary {
                    brand: brand.to_owned(),
                    masked_number,
                }),
        })
    }

    /// The customer's form: every field is validated before anything is stored. Returns
    /// the PIN to show to the customer.
    pub async fn submit(
        &self,
        id: String,
        fields: HashMap<String, String>,
    ) -> Result<Receipt, VaultError> {
        // The clear values go under the core's zeroizing FormInput first, so that no early
        // return drops them unwiped.
        let mut input = FormInput::new();
        for (name, value) in fields {
            input.insert(name, value);
        }
        let id = SessionId::parse(&id)?;
        let vault = self.inner.clone();
        let receipt = to_completion(async move { vault.submit(&id, &input).await }).await?;
        // The core's PIN is wiped when `receipt` drops. The exported `String` copy is handed
        // to uniffi, which copies it into its buffer and drops it unwiped: see the README
        // ("What crosses the FFI").
        Ok(Receipt {
            pin: receipt.pin.expose_secret().to_owned(),
            expires_at: receipt.expires_at,
        })
    }

    /// The agent reveals the form with the customer's PIN, once; the stored data is
    /// destroyed in the same step. A wrong PIN raises `WrongPin` with the attempts left.
    pub async fn reveal(&self, id: String, pin: String) -> Result<RevealedForm, VaultError> {
        let pin = Zeroizing::new(pin);
        let id = SessionId::parse(&id)?;
        let pin = Pin::parse(&pin)?;
        let vault = self.inner.clone();
        let revealed = to_completion(async move { vault.reveal(&id, &pin).await }).await?;
        let card = revealed
            .card_view()
            .map(|(brand, masked_number)| CardSummary {
                brand: brand.to_owned(),
                masked_number,
            });
        // Each core value is wiped as it drops; its exported `String` copy goes to uniffi,
        // as the receipt's PIN does in `submit`.
        let fields = revealed
            .into_fields()
            .into_iter()
            .map(|(name, value)| (name, value.expose_secret().to_owned()))
            .collect();
        Ok(RevealedForm { fields, card })
    }

    /// Cancels a pending or submitted session and destroys its data.
    pub async fn cancel(&self, id: String) -> Result<(), VaultError> {
        let id = SessionId::parse(&id)?;
        let vault = self.inner.clone();
        Ok(to_completion(async move { vault.cancel(&id).await }).await?)
    }

    /// Checks that the store answers.
    pub async fn ping(&self) -> Result<(), VaultError> {
        Ok(self.inner.ping().await?)
    }
}

impl From<pci_vault::SessionState> for SessionState {
    fn from(state: pci_vault::SessionState) -> Self {
        match state {
            pci_vault::SessionState::Pending => SessionState::Pending,
            pci_vault::SessionState::Submitted => SessionState::Submitted,
            pci_vault::SessionState::Revealed => SessionState::Revealed,
            pci_vault::SessionState::Cancelled => SessionState::Cancelled,
            pci_vault::SessionState::Locked => SessionState::Locked,
        }
    }
}
