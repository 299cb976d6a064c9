#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod error;
mod reload;
mod text;

pub use error::LoadError;
pub use reload::{DEFAULT_CHECK_INTERVAL, KeyDirectory, KeyFile};
pub use text::parse_keyring;

use pci_vault::Keyring;

/// The environment variable the example server and the bindings read a keyring from.
pub const DEFAULT_ENV_VAR: &str = "PCI_VAULT_KEYS";

/// Reads a keyring text from environment variable `var` (see the crate docs for the format).
///
/// # Errors
/// [`LoadError`] when the variable is unset, not Unicode, or its keyring is bad. The
/// message names the variable and the entry, never the key.
pub fn from_env(var: &str) -> Result<Keyring, LoadError> {
    let text = std::env::var(var).map_err(|e| match e {
        std::env::VarError::NotPresent => LoadError::new(var, "is not set"),
        std::env::VarError::NotUnicode(_) => LoadError::new(var, "is not valid Unicode"),
    })?;
    let text = zeroize::Zeroizing::new(text);
    parse_keyring(&text).map_err(|e| e.in_source(var))
}

/// A keyring of one random key that lives as long as the process: records sealed with it
/// cannot be opened after a restart or by another process. For development only; logs a
/// warning.
pub fn development_keyring() -> Keyring {
    tracing::warn!(
        "using an ephemeral development key: sealed records are lost on restart; \
         configure a keyring for anything but development"
    );
    Keyring::ephemeral()
}
