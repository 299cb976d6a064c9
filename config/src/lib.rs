#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod complete;
mod observe;
mod store;

use std::fmt;
use std::sync::Arc;

use pci_vault_keys::CountingProvider;

use pci_vault::{
    AuditSink, Error, KeyEncryptionKey, KeyId, Keyring, Result, SessionOptions, SessionOverrides,
    Tenant, Vault,
};
use zeroize::Zeroizing;

pub use complete::to_completion;
pub use observe::{Call, Observer};
pub use pci_vault_keys::{HostCalls, HostProvider, KeySource, KeyUsage, KeyWraps};
pub use pci_vault_memory::MemoryLimits;
pub use pci_vault_redis::{MinReplicas, RedisOptions};
pub use store::{MemoryGauge, MemoryUsage, StoreConfig, StoreSettings};

/// Everything a vault is opened with. Front-ends fill it from their host's values; only
/// [`VaultConfig::open`] checks and uses them, so every front-end opens the same vault from
/// the same values.
///
/// `Debug` shows no key material, audit key or Redis password.
#[non_exhaustive]
pub struct VaultConfig {
    /// Where sessions are kept.
    pub store: StoreConfig,
    /// Where the key-encryption keys come from.
    pub keys: KeySource,
    /// What `create_session` uses for every option it is not given, over the core's
    /// defaults.
    pub session_defaults: SessionOverrides,
    /// The tenant the agent-side operations act for (1–64 characters of
    /// `A-Z a-z 0-9 . _ -`); `None` is the default tenant.
    pub tenant: Option<String>,
    /// 32 bytes that key the session references in audit events, shared by every process
    /// of a deployment so their events match; `None` is a random key per vault. Wiped on
    /// drop.
    pub audit_key: Option<Zeroizing<Vec<u8>>>,
    /// Where audit events go; `None` writes them through `tracing`.
    pub audit_sink: Option<Arc<dyn AuditSink>>,
    /// Receives the time and outcome of every store and key-provider call; `None` reports
    /// nothing.
    pub observer: Option<Arc<dyn Observer>>,
    /// Wraps per key-encryption key after which the vault warns that the key is due for
    /// rotation ([`KeyUsage::DEFAULT_WARNING_LIMIT`] unless set; at least 1).
    pub wrap_warning_limit: u64,
}

/// What [`VaultConfig::open`] returns: the vault and what the host should tell its
/// operator.
#[non_exhaustive]
#[derive(Debug)]
pub struct OpenedVault {
    /// The vault, acting for the configured tenant.
    pub vault: Vault,
    /// Unsafe store settings found at open (Redis persistence on, an eviction policy that
    /// can drop sessions), one sentence each.
    pub store_warnings: Vec<String>,
    /// Warnings about the key source (an ephemeral development key), one sentence each.
    pub key_warnings: Vec<String>,
    /// The occupancy of the memory store against its bounds; `None` for other stores.
    pub memory: Option<MemoryGauge>,
    /// How many data keys each key-encryption key has wrapped in this process, and whether
    /// one is due for rotation: for the host's metrics and health checks.
    pub key_usage: Arc<KeyUsage>,
}

impl OpenedVault {
    /// Every warning, store warnings first.
    pub fn warnings(&self) -> impl Iterator<Item = &str> {
        self.store_warnings
            .iter()
            .chain(&self.key_warnings)
            .map(String::as_str)
    }
}

impl VaultConfig {
    /// Length of an audit key in bytes.
    pub const AUDIT_KEY_LEN: usize = 32;

    /// A configuration of `store` and `keys`, every other option at its default.
    pub fn new(store: StoreConfig, keys: KeySource) -> Self {
        VaultConfig {
            store,
            keys,
            session_defaults: SessionOverrides::new(),
            tenant: None,
            audit_key: None,
            audit_sink: None,
            observer: None,
            wrap_warning_limit: KeyUsage::DEFAULT_WARNING_LIMIT,
        }
    }

    /// Checks every option, loads the keys, opens (for Redis: connects to and checks) the
    /// store and builds the vault.
    ///
    /// The options that need no I/O are checked first, so a malformed option never waits
    /// on a key file or the network.
    ///
    /// # Errors
    /// - `INVALID_ARGUMENT` for a malformed option (session defaults out of range, a
    ///   malformed tenant, an audit key of another length than 32 bytes, memory bounds of 0,
    ///   a malformed Redis option, inline key material that is not a key).
    /// - `KEY_UNAVAILABLE` when the key source cannot be loaded, or the HSM or KMS refuses
    ///   or cannot be reached (the message names the source, never a key or a PIN).
    /// - `STORE_UNAVAILABLE` when Redis cannot be reached; the message never shows a
    ///   password.
    pub async fn open(self) -> Result<OpenedVault> {
        let defaults = self.session_defaults.apply(&SessionOptions::default())?;
        let tenant = self.tenant.map(Tenant::new).transpose()?;
        let audit_key = self
            .audit_key
            .as_deref()
            .map(|k| audit_key(k))
            .transpose()?;
        self.store.check()?;
        let key_warnings = self.keys.warnings();
        if self.wrap_warning_limit == 0 {
            return Err(Error::InvalidArgument(
                "the wrap warning limit is at least 1",
            ));
        }
        let attempt_grace = attempt_grace(self.store.attempt_grace(), &self.keys);
        let key_usage = Arc::new(KeyUsage::new(self.wrap_warning_limit));
        let keys: Arc<dyn pci_vault::KeyProvider> = Arc::new(CountingProvider::new(
            self.keys.connect().await?,
            key_usage.clone(),
        ));
        let (store, store_warnings, memory) = self.store.open().await?;
        let (store, keys) = match self.observer {
            Some(observer) => (
                Arc::new(observe::ObservedStore {
                    inner: store,
                    observer: Arc::clone(&observer),
                }) as Arc<dyn pci_vault::EphemeralStore>,
                Arc::new(observe::ObservedKeys {
                    inner: keys,
                    observer,
                }) as Arc<dyn pci_vault::KeyProvider>,
            ),
            None => (store, keys),
        };
        let mut builder = Vault::builder(store, keys)
            .session_defaults(defaults)
            .attempt_grace(attempt_grace);
        if let Some(key) = audit_key {
            builder = builder.audit_key(*key);
        }
        if let Some(sink) = self.audit_sink {
            builder = builder.audit_sink(sink);
        }
        let vault = builder.build()?;
        let vault = match tenant {
            Some(tenant) => vault.for_tenant(tenant),
            None => vault,
        };
        Ok(OpenedVault {
            vault,
            store_warnings,
            key_warnings,
            memory,
            key_usage,
        })
    }
}

/// The key source of keys a host gives inline, as `(id, key bytes)` in order: the first
/// is the primary (it wraps new data keys), the others only unwrap. Every key's bytes are
/// wiped here, whether or not they are a key.
///
/// # Errors
/// `INVALID_ARGUMENT` for no keys, a malformed or repeated id, or key material that is not
/// 32 bytes or is all zeros; the message never shows the key.
pub fn inline_keyring<I: Into<String>>(
    entries: impl IntoIterator<Item = (I, Zeroizing<Vec<u8>>)>,
) -> Result<KeySource> {
    // Every entry is taken (and so wiped on return) before anything can fail.
    let entries: Vec<(String, Zeroizing<Vec<u8>>)> = entries
        .into_iter()
        .map(|(id, key)| (id.into(), key))
        .collect();
    let mut keys = Vec::with_capacity(entries.len());
    for (id, key) in &entries {
        keys.push((KeyId::new(id.as_str())?, KeyEncryptionKey::from_bytes(key)?));
    }
    Ok(KeySource::Keyring(Keyring::primary_first(keys)?))
}

/// The audit key from a host's bytes: exactly [`VaultConfig::AUDIT_KEY_LEN`] of them.
fn audit_key(bytes: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; VaultConfig::AUDIT_KEY_LEN]);
    if bytes.len() != key.len() {
        return Err(Error::InvalidArgument("the audit key is 32 bytes"));
    }
    key.copy_from_slice(bytes);
    Ok(key)
}

/// How long a PIN attempt's outcome may still be on its way: the store's part (twice a
/// Redis operation timeout, the vault's default otherwise) and the longest key-provider
/// call, since the data key is unwrapped between taking the attempt and comparing the PIN.
/// A session whose attempts are all taken is finished as locked only after it.
fn attempt_grace(store: Option<std::time::Duration>, keys: &KeySource) -> std::time::Duration {
    let store = store.unwrap_or(pci_vault::VaultBuilder::DEFAULT_ATTEMPT_GRACE);
    (store + keys.longest_call()).min(pci_vault::VaultBuilder::MAX_ATTEMPT_GRACE)
}

impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultConfig")
            .field("store", &self.store)
            .field("keys", &self.keys)
            .field("session_defaults", &self.session_defaults)
            .field("tenant", &self.tenant)
            .field("audit_key", &self.audit_key.as_ref().map(|_| "[REDACTED]"))
            .field("audit_sink", &self.audit_sink)
            .field("observer", &self.observer)
            .field("wrap_warning_limit", &self.wrap_warning_limit)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_attempt_grace_covers_the_store_and_the_key_provider() {
        let redis = Some(Duration::from_secs(4));
        assert_eq!(
            attempt_grace(redis, &KeySource::Development),
            Duration::from_secs(4)
        );
        assert_eq!(
            attempt_grace(None, &KeySource::Development),
            pci_vault::VaultBuilder::DEFAULT_ATTEMPT_GRACE
        );
        let hsm = KeySource::parse("pkcs11:module=/m.so;token=t;key=k1;pin-env=PIN").unwrap();
        assert_eq!(attempt_grace(redis, &hsm), Duration::from_secs(14));
        let kms =
            KeySource::parse("aws-kms:key=alias/k;region=eu-west-1;timeout-ms=3000;retries=2")
                .unwrap();
        assert_eq!(attempt_grace(redis, &kms), Duration::from_secs(16));
        let slow =
            KeySource::parse("aws-kms:key=alias/k;region=eu-west-1;timeout-ms=30000;retries=2")
                .unwrap();
        assert_eq!(
            attempt_grace(redis, &slow),
            pci_vault::VaultBuilder::MAX_ATTEMPT_GRACE
        );
    }
}
