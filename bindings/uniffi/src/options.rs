//! What `Vault.open` and `create_session` are asked for, and how it becomes the one
//! `VaultConfig` and `SessionOverrides`. Every check is theirs; this module only moves
//! values across.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use pci_vault::SessionOverrides;
use pci_vault_config::{StoreConfig, StoreSettings, inline_keyring};
use zeroize::Zeroizing;

use crate::audit::AuditSink;
use crate::error::VaultError;
use crate::key_provider::{KeyProvider, host_provider};

/// How to open a vault: the store, the keys and the session defaults.
#[derive(uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct VaultOptions {
    /// Where the key-encryption keys come from.
    pub keys: KeySource,
    /// `"memory"` (one process; bounds as `"memory?max_entries=N&max_bytes=N"`), a Redis URL (`redis://`, `rediss://` for TLS,
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
    /// Replicas that must acknowledge every write (single node or Sentinel), 1–64. A write
    /// they do not acknowledge in time answers `STORE_UNAVAILABLE`. Default: none.
    #[uniffi(default = None)]
    pub min_replicas: Option<u32>,
    /// With `min_replicas`: longest wait for them, in milliseconds, shorter than
    /// `timeout_ms`; default 500.
    #[uniffi(default = None)]
    pub min_replicas_timeout_ms: Option<u32>,
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
    /// A key-source string, as the server's `--key-source` takes it: `development`,
    /// `env:VAR`, `file:PATH`, `dir:PATH`, `pkcs11:module=…;token=…;key=…;pin-file=…` (an
    /// HSM) or `aws-kms:key=…;region=…` (AWS KMS). See docs/KEYS.md.
    Source {
        /// The key-source string.
        text: String,
    },
    /// The host's own KMS or HSM client: see `KeyProvider`. A call that takes longer than
    /// `timeout_ms` (1–60000, default 5000) is `KEY_UNAVAILABLE`.
    Provider {
        /// The host's implementation.
        provider: Arc<dyn KeyProvider>,
        /// Longest wait for one call, in milliseconds.
        #[uniffi(default = None)]
        timeout_ms: Option<u32>,
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
/// default to the core's defaults: TTL 900 s, PIN 6 digits, 5 attempts, the four card fields.
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
    /// The options given here, for `SessionOverrides::apply` to put over a base and check.
    pub(crate) fn overrides(self) -> SessionOverrides {
        let mut overrides = SessionOverrides::new();
        overrides.ttl_seconds = self.ttl_seconds.map(u64::from);
        overrides.pin_length = self.pin_length.map(u64::from);
        overrides.max_attempts = self.max_attempts.map(u64::from);
        overrides.fields = self.fields;
        overrides.metadata = self.metadata.map(|m| m.into_iter().collect());
        overrides
    }
}

impl KeySource {
    /// The key source of the vault's configuration.
    pub(crate) fn into_config(self) -> Result<pci_vault_config::KeySource, VaultError> {
        use pci_vault_config::KeySource as Core;
        Ok(match self {
            KeySource::Keyring { keys } => inline_keyring(
                keys.into_iter()
                    .map(|entry| (entry.id, Zeroizing::new(entry.key))),
            )?,
            KeySource::Env { var } => Core::env(var)?,
            KeySource::File { path } => Core::File(PathBuf::from(path)),
            KeySource::Directory { path } => Core::Directory(PathBuf::from(path)),
            KeySource::Development => Core::Development,
            KeySource::Source { text } => Core::parse(&text)?,
            KeySource::Provider {
                provider,
                timeout_ms,
            } => Core::Provider(Arc::new(host_provider(provider, timeout_ms)?)),
        })
    }
}

/// The store of `store` and `settings`; Redis options are checked when the store connects.
pub(crate) fn store_config(
    store: &str,
    settings: Option<RedisSettings>,
) -> Result<StoreConfig, VaultError> {
    let store = StoreConfig::parse(store)?;
    let Some(redis) = settings else {
        return Ok(store);
    };
    let mut settings = StoreSettings::new();
    // `cluster = False` is the default, not a request: several URLs are still a cluster.
    settings.cluster = redis.cluster.then_some(true);
    settings.key_prefix = redis.key_prefix;
    settings.timeout_ms = redis.timeout_ms.map(u64::from);
    settings.connect_timeout_ms = redis.connect_timeout_ms.map(u64::from);
    settings.ca_file = redis.ca_file.map(PathBuf::from);
    settings.client_cert_file = redis.client_cert_file.map(PathBuf::from);
    settings.client_key_file = redis.client_key_file.map(PathBuf::from);
    settings.min_replicas = redis.min_replicas.map(u64::from);
    settings.min_replicas_timeout_ms = redis.min_replicas_timeout_ms.map(u64::from);
    Ok(settings.apply(store)?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn session_options_replace_only_what_they_give() {
        let base = pci_vault::SessionOptions::default();
        let same = SessionOptions::default().overrides().apply(&base).unwrap();
        assert_eq!(same, base);
        let custom = SessionOptions {
            ttl_seconds: Some(60),
            pin_length: Some(8),
            fields: Some(vec!["card_number".into(), "order_ref".into()]),
            metadata: Some(HashMap::from([("conversation".into(), "c-1".into())])),
            ..Default::default()
        }
        .overrides()
        .apply(&base)
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
        let keyring = |keys| KeySource::Keyring { keys }.into_config();
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
    fn redis_settings_reach_the_store_options() {
        let redis = |store, settings| match store_config(store, settings).unwrap() {
            StoreConfig::Redis(options) => options,
            other => panic!("{other:?}"),
        };
        let opts = redis(
            "rediss://a:1",
            Some(RedisSettings {
                cluster: true,
                key_prefix: Some("t:".into()),
                timeout_ms: Some(250),
                connect_timeout_ms: None,
                ca_file: Some("/ca.pem".into()),
                client_cert_file: None,
                client_key_file: None,
                min_replicas: Some(1),
                min_replicas_timeout_ms: None,
            }),
        );
        assert!(opts.cluster);
        assert_eq!(opts.key_prefix, "t:");
        assert_eq!(opts.timeout, Duration::from_millis(250));
        assert_eq!(
            opts.connect_timeout,
            pci_vault_config::RedisOptions::DEFAULT_CONNECT_TIMEOUT
        );
        assert_eq!(opts.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            opts.min_replicas,
            Some(pci_vault_config::MinReplicas::new(
                1,
                Duration::from_millis(500)
            ))
        );
        let several = redis("redis://a:1, redis://b:2", None);
        assert!(several.cluster);
    }
}
