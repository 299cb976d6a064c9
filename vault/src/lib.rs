#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// docs.rs builds with nightly and `--cfg docsrs`: feature-gated items (`conformance`) show
// the feature they need. Other builds never see the attribute.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod audit;
#[cfg(feature = "bench")]
mod bench_support;
pub mod card;
pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
mod crypto;
mod error;
pub mod events;
pub mod form;
pub mod keys;
mod overrides;
mod pin;
mod record;
pub mod session;
pub mod store;
mod tenant;
mod vault;
mod wire;

pub use audit::{
    Actor, AuditAction, AuditEvent, AuditOutcome, AuditSink, TracingAuditSink, session_ref,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, ErrorCode, FieldError, FieldReason, Result};
pub use events::{EventId, SessionEvent, SessionEventKind};
pub use form::{CardSummary, FieldKind, FieldSpec, FormInput, FormSpec, RevealedForm};
pub use keys::{DataKey, KeyEncryptionKey, KeyId, KeyProvider, Keyring, WrappedKey};
pub use overrides::SessionOverrides;
pub use pin::Pin;
pub use secrecy::{ExposeSecret, SecretString};
pub use session::{Metadata, SessionId, SessionOptions, SessionState, SessionStatus, Ticket};
pub use store::{
    CasOutcome, Claim, Claimed, EphemeralStore, EventSubscription, Version, Versioned,
};
pub use tenant::Tenant;
pub use vault::{Receipt, SessionWatch, Vault, VaultBuilder};

/// Internals for this repository's tests, fuzz targets and benchmarks: the sealed-record
/// codec (what the fuzz targets decode and the tests inspect) and, with the feature `bench`,
/// the benchmark fixtures.
///
/// Not a public API: hidden from the docs, outside semantic versioning, and not for
/// programs. A program reaches records only through [`Vault`].
#[doc(hidden)]
pub mod internal {
    #[cfg(feature = "bench")]
    pub use crate::bench_support::{RecordFixture, card_form};
    pub use crate::record::{SealedRecord, UnverifiedRecord};
}

/// The repository README's code blocks, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct RepositoryReadme;
