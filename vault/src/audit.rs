//! Audit events: who did what to which session, and how it ended (PCI DSS 10.2).
//!
//! Events carry a keyed hash of the session id ([`AuditEvent::session_ref`]) instead of the
//! id, because the id is the customer's link credential. They never carry field values,
//! PINs or keys.

use std::fmt;
use std::time::SystemTime;

use crate::crypto::AuditKey;
use crate::error::ErrorCode;
use crate::session::SessionId;
use crate::tenant::Tenant;

/// The reference audit events carry for a session ([`AuditEvent::session_ref`]), computed
/// from the deployment's 32-byte audit key and the session id, so an operator who holds the
/// key can find a session's events:
///
/// `hex(HMAC-SHA256(audit_key, "pci-vault/v1/audit" || id_bytes)[0..16])`
///
/// where `id_bytes` are the 32 bytes the 43-character id encodes (unpadded base64url), the
/// label is its 18 ASCII bytes with no separator, and the hex is lowercase (32 characters).
pub fn session_ref(audit_key: &[u8; 32], id: &SessionId) -> String {
    AuditKey::new(audit_key).session_ref(id)
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditAction {
    /// An agent created a session.
    Created,
    /// The customer submitted the form (or tried to).
    Submitted,
    /// An agent revealed the form, or tried to.
    Revealed,
    /// A wrong PIN used the last attempt; the data was destroyed.
    Locked,
    /// An agent cancelled the session.
    Cancelled,
}

impl AuditAction {
    /// The wire spelling: `created`, `submitted`, `revealed`, `locked`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Created => "created",
            AuditAction::Submitted => "submitted",
            AuditAction::Revealed => "revealed",
            AuditAction::Locked => "locked",
            AuditAction::Cancelled => "cancelled",
        }
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Actor {
    /// The contact-centre side: a human agent, a bot, or the service acting for them.
    Agent,
    /// The customer, through the form link.
    Customer,
}

impl Actor {
    /// The wire spelling: `agent`, `customer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Agent => "agent",
            Actor::Customer => "customer",
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditOutcome {
    /// It did what was asked.
    Success,
    /// It failed with this code.
    Failure(ErrorCode),
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditOutcome::Success => f.write_str("success"),
            AuditOutcome::Failure(code) => f.write_str(code.as_str()),
        }
    }
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditEvent {
    /// What happened.
    pub action: AuditAction,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The session's reference: see [`session_ref`] for how it is computed.
    pub session_ref: String,
    /// The tenant the session belongs to (or the acting tenant, when the session was not
    /// found).
    pub tenant: Tenant,
    /// Who acted.
    pub actor: Actor,
    /// When.
    pub at: SystemTime,
    /// Wrong PINs still allowed, on reveal events.
    pub attempts_left: Option<u8>,
}

/// Receives audit events. The vault calls it after the change it reports is stored.
///
/// # Behavior
/// `record` MUST NOT block for long (hand events to a queue if the destination is slow) and
/// MUST NOT panic. Events contain no secret data, but the tenant and the session reference
/// are still operational data: send them only where your audit trail belongs.
pub trait AuditSink: Send + Sync + fmt::Debug {
    /// Takes one event.
    fn record(&self, event: &AuditEvent);
}

/// The default sink: one `tracing` event per audit event, at `INFO`, target
/// `pci_vault::audit`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingAuditSink;

impl AuditSink for TracingAuditSink {
    fn record(&self, event: &AuditEvent) {
        if !tracing::enabled!(target: "pci_vault::audit", tracing::Level::INFO) {
            return;
        }
        let at = time::OffsetDateTime::from(event.at)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        tracing::info!(
            target: "pci_vault::audit",
            action = event.action.as_str(),
            outcome = %event.outcome,
            session_ref = %event.session_ref,
            tenant = %event.tenant,
            actor = event.actor.as_str(),
            attempts_left = event.attempts_left,
            at = %at,
            "audit"
        );
    }
}

/// A sink that keeps events in memory, for tests and for hosts that forward them in batches.
#[derive(Debug, Default)]
pub struct MemoryAuditSink(std::sync::Mutex<Vec<AuditEvent>>);

impl MemoryAuditSink {
    /// An empty sink.
    pub fn new() -> Self {
        MemoryAuditSink::default()
    }

    /// Takes every event recorded so far, oldest first.
    pub fn take(&self) -> Vec<AuditEvent> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl AuditSink for MemoryAuditSink {
    fn record(&self, event: &AuditEvent) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}

#[cfg(test)]
mod tests {
    use hmac::{KeyInit as _, Mac as _};

    use super::*;

    #[test]
    fn session_ref_is_the_documented_hmac() {
        let key = [7u8; 32];
        let id = SessionId::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(b"pci-vault/v1/audit");
        mac.update(&(0u8..32).collect::<Vec<u8>>());
        let tag = mac.finalize().into_bytes();
        let expected: String = tag[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(session_ref(&key, &id), expected);
        assert_eq!(expected.len(), 32);
        assert_ne!(session_ref(&[8u8; 32], &id), expected);
    }
}
