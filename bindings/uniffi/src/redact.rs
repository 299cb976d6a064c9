//! How exported values print. Their `Debug` and `Display` are exported (`#[uniffi::export
//! (Debug, Display)]`), so a host's `repr()`, `str()`, `toString()` and log lines show what
//! these impls show: never a clear field, a PIN, a key, a Redis password or a whole session
//! id (the customer's only credential), like the core's own `Debug`.

use std::fmt;

use crate::events::SessionEvent;
use crate::options::{KeySource, KeyringEntry, VaultOptions, store_config};
use crate::vault::{Receipt, RevealedForm, SessionStatus, Ticket};

const REDACTED: &str = "[REDACTED]";

/// The first 6 characters of a session id, as the core's `SessionId` `Debug` shows it.
struct IdPrefix<'a>(&'a str);

impl fmt::Debug for IdPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix: String = self.0.chars().take(6).collect();
        write!(f, "\"{prefix}…\"")
    }
}

/// Implements `Display` as the type's (redacting) `Debug`.
macro_rules! display_as_debug {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    )*};
}

display_as_debug!(
    SessionEvent,
    Ticket,
    Receipt,
    SessionStatus,
    RevealedForm,
    KeyringEntry,
    KeySource,
    VaultOptions
);

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("id", &IdPrefix(&self.id))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl fmt::Debug for SessionEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionEvent")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("session_id", &IdPrefix(&self.session_id))
            .field("tenant", &self.tenant)
            .field("state", &self.state)
            .field("attempts_left", &self.attempts_left)
            .field("at", &self.at)
            .field("from_state", &self.from_state)
            .finish()
    }
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt")
            .field("pin", &REDACTED)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl fmt::Debug for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStatus")
            .field("id", &IdPrefix(&self.id))
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .field("submitted_at", &self.submitted_at)
            .field("expires_at", &self.expires_at)
            .field("attempts_left", &self.attempts_left)
            .field("metadata", &self.metadata)
            .field("fields", &self.fields)
            .field("card", &self.card)
            .finish()
    }
}

impl fmt::Debug for RevealedForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.fields.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("RevealedForm")
            .field("fields", &names)
            .field("card", &self.card)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for KeyringEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyringEntry")
            .field("id", &self.id)
            .field("key", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Keyring { keys } => f.debug_struct("Keyring").field("keys", keys).finish(),
            KeySource::Env { var } => f.debug_struct("Env").field("var", var).finish(),
            KeySource::File { path } => f.debug_struct("File").field("path", path).finish(),
            KeySource::Directory { path } => {
                f.debug_struct("Directory").field("path", path).finish()
            }
            KeySource::Source { text } => {
                let described = pci_vault_config::KeySource::parse(text)
                    .map_or_else(|_| "<invalid key source>".to_owned(), |k| k.describe());
                f.debug_struct("Source").field("text", &described).finish()
            }
            KeySource::Provider { .. } => f.write_str("Provider"),
            KeySource::Development => f.write_str("Development"),
        }
    }
}

impl fmt::Debug for VaultOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("VaultOptions");
        out.field("keys", &self.keys);
        // The store's own Debug: Redis URLs with any password replaced by `***`.
        match store_config(&self.store, self.redis.clone()) {
            Ok(store) => out.field("store", &store),
            Err(_) => out.field("store", &"<invalid store>"),
        };
        out.field("session_defaults", &self.session_defaults)
            .field("audit_key", &self.audit_key.as_ref().map(|_| REDACTED))
            .field("audit_sink", &self.audit_sink.as_ref().map(|_| "AuditSink"))
            .finish()
    }
}
