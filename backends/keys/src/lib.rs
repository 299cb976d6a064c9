#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod error;
mod host;
mod reload;
mod source;
mod text;
mod usage;

pub use error::LoadError;
pub use host::{HostCalls, HostProvider};
pub use reload::{DEFAULT_CHECK_INTERVAL, KeyDirectory, KeyFile};
pub use text::parse_keyring;
pub use usage::{CountingProvider, KeyUsage, KeyWraps};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pci_vault::{KeyProvider, Keyring};

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
    tracing::warn!("{DEVELOPMENT_KEY_WARNING}");
    Keyring::ephemeral()
}

/// What [`development_keyring`] warns, for hosts that show warnings themselves.
pub const DEVELOPMENT_KEY_WARNING: &str = "using an ephemeral development key: sealed records \
     are lost on restart; configure a keyring for anything but development";

/// Where a deployment's keys come from: one value that a configuration (flags, a binding's
/// options) can name, opened into a [`KeyProvider`]. New providers (an HSM, a cloud KMS)
/// become new variants.
///
/// Its `Debug` is [`KeySource::describe`]: a keyring pasted where a file's path belongs
/// is not shown.
#[derive(Clone)]
#[non_exhaustive]
pub enum KeySource {
    /// A keyring already in memory (e.g. built from a binding's inline keys).
    Keyring(Keyring),
    /// A keyring text in an environment variable.
    Env(String),
    /// A keyring text file, reloaded when it changes.
    File(PathBuf),
    /// A directory of key files (a Kubernetes secret mount), reloaded when it changes.
    Directory(PathBuf),
    /// A random key for this process only, with a warning. For development.
    Development,
    /// A provider the host brings (its own KMS or HSM client).
    Provider(Arc<dyn KeyProvider>),
    /// Keys in an HSM, over PKCS#11.
    #[cfg(feature = "pkcs11")]
    Pkcs11(pci_vault_pkcs11::Pkcs11Config),
    /// A key in AWS KMS.
    #[cfg(feature = "aws-kms")]
    AwsKms(pci_vault_aws_kms::AwsKmsConfig),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeySource").field(&self.describe()).finish()
    }
}

impl KeySource {
    /// A keyring text in the environment variable `name`.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` unless `name` is 1–256 printable ASCII characters without `=`:
    /// the messages of this source name the variable, so a keyring text given here by
    /// mistake (it holds `=`) is refused rather than shown.
    pub fn env(name: impl Into<String>) -> pci_vault::Result<KeySource> {
        let name = name.into();
        let valid = (1..=256).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_graphic() && b != b'=');
        if !valid {
            return Err(pci_vault::Error::InvalidArgument(
                "an environment variable name is 1-256 printable ASCII characters without =",
            ));
        }
        Ok(KeySource::Env(name))
    }

    /// The longest a call to this source's keys may take: none for keys in memory, the
    /// call timeout of an HSM, the timeout and retries of AWS KMS, and for a provider the
    /// host brings, a host provider's default timeout. The vault waits that much longer
    /// before it takes a PIN attempt whose outcome it has not seen as lost, since the key is
    /// unwrapped between taking the attempt and comparing the PIN.
    pub fn longest_call(&self) -> Duration {
        match self {
            #[cfg(feature = "pkcs11")]
            KeySource::Pkcs11(_) => pci_vault_pkcs11::CALL_TIMEOUT,
            #[cfg(feature = "aws-kms")]
            KeySource::AwsKms(config) => {
                // Each try, and a second of backoff between them.
                (config.timeout + Duration::from_secs(1)).saturating_mul(config.retries + 1)
            }
            KeySource::Provider(_) => host::DEFAULT_HOST_TIMEOUT,
            KeySource::Keyring(_)
            | KeySource::Env(_)
            | KeySource::File(_)
            | KeySource::Directory(_)
            | KeySource::Development => Duration::ZERO,
        }
    }

    /// The warnings a host should show for this source: one for a development key.
    pub fn warnings(&self) -> Vec<String> {
        match self {
            KeySource::Development => vec![DEVELOPMENT_KEY_WARNING.to_owned()],
            _ => Vec::new(),
        }
    }

    /// Loads the keys now, or connects to the HSM or KMS.
    ///
    /// # Errors
    /// `KEY_UNAVAILABLE` when the source cannot be read, its key material is bad, or the
    /// HSM or KMS refuses or cannot be reached (the message names the source and the
    /// reason, never a key or a PIN); `INVALID_ARGUMENT` for a malformed KMS endpoint.
    pub async fn connect(self) -> pci_vault::Result<Arc<dyn KeyProvider>> {
        Ok(match self {
            #[cfg(feature = "pkcs11")]
            KeySource::Pkcs11(config) => {
                Arc::new(pci_vault_pkcs11::Pkcs11Provider::connect(config).await?)
            }
            #[cfg(feature = "aws-kms")]
            KeySource::AwsKms(config) => {
                Arc::new(pci_vault_aws_kms::AwsKmsProvider::connect(config).await?)
            }
            local => local.open()?,
        })
    }

    /// Loads the keys of a local source now (a keyring, a variable, a file, a directory,
    /// a development key, a host's provider).
    ///
    /// # Errors
    /// [`LoadError`] when the source cannot be read or its key material is bad, and for an
    /// HSM or KMS source, which opens with [`KeySource::connect`].
    pub fn open(self) -> Result<Arc<dyn KeyProvider>, LoadError> {
        Ok(match self {
            KeySource::Keyring(ring) => Arc::new(ring),
            KeySource::Env(var) => Arc::new(from_env(&var)?),
            KeySource::File(path) => Arc::new(KeyFile::open(path)?),
            KeySource::Directory(path) => Arc::new(KeyDirectory::open(path)?),
            KeySource::Development => Arc::new(development_keyring()),
            KeySource::Provider(provider) => provider,
            #[cfg(feature = "pkcs11")]
            KeySource::Pkcs11(config) => {
                return Err(LoadError::new(
                    config.describe(),
                    "opens with KeySource::connect",
                ));
            }
            #[cfg(feature = "aws-kms")]
            KeySource::AwsKms(config) => {
                return Err(LoadError::new(
                    config.describe(),
                    "opens with KeySource::connect",
                ));
            }
        })
    }
}
