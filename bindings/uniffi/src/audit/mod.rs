//! Audit events to a sink written by the host (`VaultOptions(audit_sink=...)`).
//!
//! The shared library installs no `tracing` subscriber, so the core's default sink would drop
//! every event in a Python, Kotlin or Swift process; with an `AuditSink` each event reaches
//! the host, which writes it to its audit trail (PCI DSS 10.2). Events carry a keyed hash of
//! the session id, never the id, a value, a PIN or a key.
//!
//! [`delivery`] hands the events to the host without ever making an operation wait for it.

mod delivery;

use std::time::{Duration, SystemTime};

pub(crate) use delivery::HostAuditSink;

/// One audit event, as the host's `AuditSink.record` receives it. Holds no secret: the
/// session is named by `session_ref`, a keyed hash of its id.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AuditEvent {
    /// What happened: `created`, `submitted`, `revealed`, `locked` or `cancelled`.
    pub action: String,
    /// `success`, or the stable error code the action failed with (e.g. `WRONG_PIN`).
    pub outcome: String,
    /// HMAC-SHA256 of the session id under the vault's audit key, first 16 bytes in lowercase
    /// hex: it matches the events of one session without revealing its id.
    pub session_ref: String,
    /// The tenant the session belongs to (the acting tenant when it was not found).
    pub tenant: String,
    /// Who acted: `agent` or `customer`.
    pub actor: String,
    /// When the vault recorded it.
    pub at: SystemTime,
    /// Wrong PINs still allowed, on `revealed` and `locked` events; otherwise `None`.
    pub attempts_left: Option<u8>,
}

impl From<&pci_vault::AuditEvent> for AuditEvent {
    fn from(event: &pci_vault::AuditEvent) -> Self {
        AuditEvent {
            action: event.action.as_str().to_owned(),
            outcome: event.outcome.as_str().to_owned(),
            session_ref: event.session_ref.clone(),
            tenant: event.tenant.as_str().to_owned(),
            actor: event.actor.as_str().to_owned(),
            at: event.at,
            attempts_left: event.attempts_left,
        }
    }
}

/// Receives the vault's audit events; implemented in the host language (a uniffi foreign
/// trait) and given as `VaultOptions.audit_sink`.
///
/// # Behavior
/// - `record` is called once per event, on a thread of the vault's own (never the host's
///   event loop), one call at a time per opened vault, in the order the vault recorded the
///   events. It MAY block: the vault's operations do not wait for it; later events wait in
///   a queue.
/// - An exception it raises is counted (`Vault.audit_failures()`) and otherwise ignored:
///   that event is lost for the sink, the next one is delivered as usual. Its text is not
///   kept.
/// - It MUST NOT call the vault and wait for the answer on the same thread.
/// - It is called only while the vault is open: events still queued when the host releases
///   the last handle to the vault are dropped. `Vault.flush_audit()` delivers them first;
///   the Python package calls `stop_audit_delivery` at interpreter exit.
#[uniffi::export(foreign)]
pub trait AuditSink: Send + Sync {
    /// Takes one event.
    fn record(&self, event: AuditEvent) -> Result<(), AuditSinkError>;
}

/// Why a host audit sink could not take an event. Kotlin and Swift name it
/// `AuditSinkException`. The vault treats it like any other exception from the sink: it
/// counts the event as not delivered and goes on.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum AuditSinkError {
    /// The sink's destination (log shipper, SIEM) cannot take the event now.
    #[error("the audit sink could not take the event")]
    Unavailable,
}

impl From<uniffi::UnexpectedUniFFICallbackError> for AuditSinkError {
    /// An exception the host did not declare. Its text may hold anything, so it is dropped.
    fn from(_: uniffi::UnexpectedUniFFICallbackError) -> Self {
        AuditSinkError::Unavailable
    }
}

/// Delivers the audit events that every open vault of this process has queued for its
/// `AuditSink`, waiting at most `timeout_ms` milliseconds, then stops calling audit sinks for
/// good: later events are dropped and counted in `Vault.audit_failures()`. Returns whether
/// everything queued was delivered in time.
///
/// The Python package calls it at interpreter exit (`atexit`), with 5 seconds: Python ends
/// a foreign thread that calls into it while it shuts down, and that aborts the process. A
/// Kotlin or Swift host may call it from its own shutdown hook.
#[uniffi::export]
pub fn stop_audit_delivery(timeout_ms: u32) -> bool {
    delivery::Gate::process().close(Duration::from_millis(u64::from(timeout_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A real event of the core (its type cannot be built outside the core): the one a
    /// vault records for `create_session`.
    pub(super) async fn core_event() -> pci_vault::AuditEvent {
        let sink = Arc::new(pci_vault::audit::MemoryAuditSink::new());
        let vault = pci_vault::Vault::builder(
            Arc::new(pci_vault_memory::MemoryStore::new()),
            Arc::new(pci_vault::Keyring::ephemeral()),
        )
        .audit_sink(Arc::clone(&sink) as Arc<dyn pci_vault::AuditSink>)
        .build()
        .unwrap();
        vault
            .create_session(&pci_vault::SessionOptions::default())
            .await
            .unwrap();
        sink.take().pop().unwrap()
    }

    #[tokio::test]
    async fn events_cross_with_their_wire_spelling() {
        let core = core_event().await;
        let event = AuditEvent::from(&core);
        assert_eq!(event.action, "created");
        assert_eq!(event.outcome, "success");
        assert_eq!(event.actor, "agent");
        assert_eq!(event.tenant, "default");
        assert_eq!(event.session_ref, core.session_ref);
        assert_eq!(event.session_ref.len(), 32);
        assert_eq!(event.at, core.at);
        assert_eq!(event.attempts_left, None);
    }

    #[test]
    fn unexpected_exceptions_keep_nothing_of_their_text() {
        let err = AuditSinkError::from(uniffi::UnexpectedUniFFICallbackError {
            reason: "ValueError('4242424242424242')".into(),
        });
        assert!(!format!("{err} {err:?}").contains("4242"));
    }
}
