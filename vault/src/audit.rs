//! Audit events: who did what to which session, and how it ended (PCI DSS 10.2).
//!
//! Events carry a keyed hash of the session id ([`AuditEvent::session_ref`]) instead of the
//! id, because the id is the customer's link credential. They never carry field values,
//! PINs or keys.

use std::fmt;
use std::time::SystemTime;

use crate::error::ErrorCode;
use crate::tenant::Tenant;

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
    /// HMAC-SHA256 of the session id under the vault's audit key, first 16 bytes in hex.
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
