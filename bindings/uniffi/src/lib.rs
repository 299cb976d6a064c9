#![doc = include_str!("../README.md")]

mod audit;
mod audit_ref;
mod error;
mod events;
mod key_provider;
mod options;
mod redact;
mod vault;

pub use audit::{AuditEvent, AuditSink, AuditSinkError, stop_audit_delivery};
pub use audit_ref::session_ref;
pub use error::{FieldError, VaultError};
pub use events::{SessionEvent, SessionEvents};
pub use key_provider::{KeyProvider, KeyProviderError, WrappedKey};
pub use options::{KeySource, KeyringEntry, RedisSettings, SessionOptions, VaultOptions};
pub use vault::{CardSummary, Receipt, RevealedForm, SessionState, SessionStatus, Ticket, Vault};

uniffi::setup_scaffolding!("pci_vault");
