//! What `Vault.open` and `create_session` are asked for, and how it becomes the core's
//! types. Every check is the core's; this module only moves values across.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pci_vault::{FormSpec, KeyEncryptionKey, KeyId, Keyring, Metadata};
use pci_vault_redis::RedisOptions;
use zeroize::Zeroizing;

use crate::audit::AuditSink;
use crate::error::{VaultError, invalid_argument};
use crate::key_provider::{HostKeyProvider, KeyProvider};

/// The `store` of [`VaultOptions`] that keeps sessions in this process's memory.
pub(crate) const MEMORY_STORE: &str = "memory";

/// How to open a vault: the store, the keys and the session defaults.
#[derive(uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct VaultOptions {
    /// Where the key-encryption keys come from.
    pub keys: KeySource,
    /// `"memory"` (one process), a Redis URL (`redis://`, `rediss://` for TLS,
    /// `redis://user:password@host:port` for an ACL user), or several comma-separated URLs:
    /// the seed nodes of a Redis Cluster.
    #[uniffi(default = "memory")]
    pub store: String,
    /// Redis tuning: cluster, key prefix, timeouts, TLS files. Only with a Redis `store`.
    #[uniffi(default = None)]
    pub redis: Option<RedisSettings>,
    /// What `create_session` uses for every option it is not given.
    #[uniffi(default = None)]
    pub session_defaults: Option<SessionOptions>,
    /// 32 bytes that key the session references of audit events. Give every process of a
    /// deployment the same key, so that the events of one session match across them.
    /// Default: a random key per vault.
    #[uniffi(default = None)]
    pub audit_key: Option<Vec<u8>>,
    /// Receives every audit event (created, submitted, revealed or refused, locked,
    /// cancelled): see `AuditSink`. Without it, events go to `tracing`, which a Python,
    /// Kotlin or Swift host does not see.
    #[uniffi(default = None)]
    pub audit_sink: Option<Arc<dyn AuditSink>>,
}

/// Redis settings beyond the URL. Every field has the Redis store's default.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RedisSettings {
    /// Treat a single URL as the seed of a Redis Cluster (several URLs always are).
    #[uniffi(default = false)]
    pub cluster: bool,
    /// Prefix of every key the store writes; default `pci-vault:`.
    #[uniffi(default = None)]
    pub key_prefix: Option<String>,
    /// Longest wait for one operation, in milliseconds (1–60000); default 2000.
    #[uniffi(default = None)]
    pub timeout_ms: Option<u32>,
    /// Longest wait to connect at open, in milliseconds (1–60000); default 5000.
    #[uniffi(default = None)]
    pub connect_timeout_ms: Option<u32>,
    /// PEM file of the CA(s) that sign the server's certificate (`rediss://` only); default
    /// the system roots.
    #[uniffi(default = None)]
    pub ca_file: Option<String>,
    /// PEM client certificate for mutual TLS (`rediss://` only), with `client_key_file`.
    #[uniffi(default = None)]
    pub client_cert_file: Option<String>,
    /// PEM private key of `client_cert_file`.
    #[uniffi(default = None)]
    pub client_key_file: Option<String>,
}

/// Where the key-encryption keys come from.
#[derive(uniffi::Enum)]
#[uniffi::export(Debug, Display)]
pub enum KeySource {
    /// Keys given inline; the first entry is the primary (it wraps new data keys), the
    /// others only unwrap.
    Keyring {
        /// The keys, primary first.
        keys: Vec<KeyringEntry>,
    },
    /// A keyring text (`id:base64-key`, comma- or line-separated, primary first) in an
    /// environment variable, e.g. `PCI_VAULT_KEYS`.
    Env {
        /// The variable's name.
        var: String,
    },
    /// A keyring text file (e.g. a Kubernetes secret key), reloaded when it changes.
    File {
        /// The file's path.
        path: String,
    },
    /// A directory with one file per key and a `primary` file (a Kubernetes secret mount),
    /// reloaded when it changes.
    Directory {
        /// The directory's path.
        path: String,
    },
    /// The host's own KMS or HSM client: see `KeyProvider`.
    Provider {
        /// The host's implementation.
        provider: Arc<dyn KeyProvider>,
    },
    /// One random key for this process only, with a warning: records are lost when it
    /// ends. For development.
    Development,
}

/// One key of an inline keyring.
#[derive(uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct KeyringEntry {
    /// 1–64 characters of `A-Z a-z 0-9 . _ : / -`.
    pub id: String,
    /// 32 bytes of key material, not all zeros.
    pub key: Vec<u8>,
}

/// Options of one session. Each one left out takes the vault's session default, and those
/// default to DESIGN §4.8: TTL 900 s, PIN 6 digits, 5 attempts, the four card fields.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct SessionOptions {
    /// How long the link and any data live, in whole seconds: 1–86400.
    #[uniffi(default = None)]
    pub ttl_seconds: Option<u32>,
    /// Digits in the PIN: 4–12.
    #[uniffi(default = None)]
    pub pin_length: Option<u8>,
    /// Wrong PINs allowed before the session locks: 1–10.
    #[uniffi(default = None)]
    pub max_attempts: Option<u8>,
    /// The fields the form asks for, in order: `card_number`, `expiry`, `cvc`,
    /// `cardholder_name` and any other `[a-z][a-z0-9_]*` text field; at most 32.
    #[uniffi(default = None)]
    pub fields: Option<Vec<String>>,
    /// Non-secret labels (a conversation id): at most 16 entries, keys 1–64 bytes, values at
    /// most 256 bytes, no card numbers.
    #[uniffi(default = None)]
    pub metadata: Option<HashMap<String, String>>,
}

impl SessionOptions {
    /// `base` with every option given here replacing it. The core checks the ranges when
    /// it uses the result.
    pub(crate) fn over(
        self,
        base: &pci_vault::SessionOptions,
    ) -> Result<pci_vault::SessionOptions, VaultError> {
        let mut out = base.clone();
        if let Some(ttl) = self.ttl_seconds {
            out.ttl = Duration::from_secs(u64::from(ttl));
        }
        if let Some(len) = self.pin_length {
            out.pin_length = len;
        }
        if let Some(attempts) = self.max_attempts {
            out.max_attempts = attempts;
        }
        if let Some(fields) = self.fields {
            out.form = FormSpec::from_names(fields.iter().map(String::as_str))?;
        }
        if let Some(metadata) = self.metadata {
            out.metadata = Metadata::new(metadata)?;
        }
        Ok(out)
    }
}

impl KeySource {
    /// Loads the keys into the vault's key provider.
    pub(crate) fn open(self) -> Result<Arc<dyn pci_vault::KeyProvider>, VaultError> {
        use pci_vault_keys::KeySource as Core;
        let core = match self {
            KeySource::Keyring { keys } => Core::Keyring(keyring(keys)?),
            KeySource::Env { var } => Core::Env(var),
            KeySource::File { path } => Core::File(PathBuf::from(path)),
            KeySource::Directory { path } => Core::Directory(PathBuf::from(path)),
            KeySource::Development => Core::Development,
            KeySource::Provider { provider } => return Ok(Arc::new(HostKeyProvider(provider))),
        };
        Ok(core.open()?)
    }
}

/// An inline keyring. Every key's bytes are put under `Zeroizing` before anything can fail,
/// so no copy in Rust outlives this call unwiped.
fn keyring(entries: Vec<KeyringEntry>) -> Result<Keyring, VaultError> {
    let entries: Vec<(String, Zeroizing<Vec<u8>>)> = entries
        .into_iter()
        .map(|entry| (entry.id, Zeroizing::new(entry.key)))
        .collect();
    let mut keys = Vec::with_capacity(entries.len());
    for (id, material) in &entries {
        keys.push((
            KeyId::new(id.as_str())?,
            KeyEncryptionKey::from_bytes(material)?,
        ));
    }
    let primary = keys
        .first()
        .map(|(id, _)| id.clone())
        .ok_or_else(|| invalid_argument("the keyring has no keys"))?;
    Ok(Keyring::new(primary, keys)?)
}

/// The audit key of [`VaultOptions`]: exactly 32 bytes. The caller's bytes are wiped here,
/// whether or not they fit.
pub(crate) fn audit_key(key: Zeroizing<Vec<u8>>) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let mut out = Zeroizing::new([0u8; 32]);
    if key.len() != out.len() {
        return Err(invalid_argument("the audit key is 32 bytes"));
    }
    out.copy_from_slice(&key);
    Ok(out)
}

/// The Redis options for `store` and `settings`; the store checks them when it connects.
pub(crate) fn redis_options(
    store: &str,
    settings: Option<RedisSettings>,
) -> Result<RedisOptions, VaultError> {
    let mut options = RedisOptions::from_list(store);
    let Some(settings) = settings else {
        return Ok(options);
    };
    options.cluster |= settings.cluster;
    if let Some(prefix) = settings.key_prefix {
        options.key_prefix = prefix;
    }
    if let Some(ms) = settings.timeout_ms {
        options.timeout = Duration::from_millis(u64::from(ms));
    }
    if let Some(ms) = settings.connect_timeout_ms {
        options.connect_timeout = Duration::from_millis(u64::from(ms));
    }
    options.ca_file = settings.ca_file.map(PathBuf::from);
    options.client_cert = match (settings.client_cert_file, settings.client_key_file) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        _ => {
            return Err(invalid_argument(
                "client_cert_file and client_key_file go together",
            ));
        }
    };
    Ok(options)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn session_options_replace_only_what_they_give() {
        let base = pci_vault::SessionOptions::default();
        let same = SessionOptions::default().over(&base).unwrap();
        assert_eq!(same, base);
        let custom = SessionOptions {
            ttl_seconds: Some(60),
            pin_length: Some(8),
            fields: Some(vec!["card_number".into(), "order_ref".into()]),
            metadata: Some(HashMap::from([("conversation".into(), "c-1".into())])),
            ..Default::default()
        }
        .over(&base)
        .unwrap();
        assert_eq!(custom.ttl, Duration::from_secs(60));
        assert_eq!(custom.pin_length, 8);
        assert_eq!(custom.max_attempts, base.max_attempts);
        assert_eq!(custom.form.fields().len(), 2);
        assert_eq!(custom.metadata.get("conversation"), Some("c-1"));
    }

    #[test]
    fn keyrings_are_checked_by_the_core() {
        let entry = |id: &str, key: Vec<u8>| KeyringEntry { id: id.into(), key };
        assert!(keyring(vec![entry("k1", vec![7; 32]), entry("k0", vec![8; 32])]).is_ok());
        for bad in [
            vec![],
            vec![entry("k1", vec![7; 31])],
            vec![entry("k1", vec![0; 32])],
            vec![entry("k 1", vec![7; 32])],
            vec![entry("k1", vec![7; 32]), entry("k1", vec![8; 32])],
        ] {
            let err = keyring(bad).unwrap_err();
            assert_eq!(err.code(), "INVALID_ARGUMENT", "{err}");
        }
    }

    #[test]
    fn audit_keys_are_32_bytes() {
        assert_eq!(*audit_key(Zeroizing::new(vec![5; 32])).unwrap(), [5; 32]);
        for len in [0, 16, 31, 33, 64] {
            let err = audit_key(Zeroizing::new(vec![5; len])).unwrap_err();
            assert_eq!(err.code(), "INVALID_ARGUMENT");
            assert_eq!(
                err.to_string(),
                "invalid argument: the audit key is 32 bytes"
            );
        }
    }

    #[test]
    fn redis_settings_reach_the_store_options() {
        let opts = redis_options(
            "rediss://a:1",
            Some(RedisSettings {
                cluster: true,
                key_prefix: Some("t:".into()),
                timeout_ms: Some(250),
                connect_timeout_ms: None,
                ca_file: Some("/ca.pem".into()),
                client_cert_file: None,
                client_key_file: None,
            }),
        )
        .unwrap();
        assert!(opts.cluster);
        assert_eq!(opts.key_prefix, "t:");
        assert_eq!(opts.timeout, Duration::from_millis(250));
        assert_eq!(opts.connect_timeout, RedisOptions::DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(opts.ca_file, Some(PathBuf::from("/ca.pem")));
        let several = redis_options("redis://a:1, redis://b:2", None).unwrap();
        assert!(several.cluster);
    }
}
