//! Wrap counts per key id, and the warning when a key nears the number of wraps it should
//! make before a rotation.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use pci_vault::{DataKey, KeyId, KeyProvider, Result, WrappedKey};

/// How many data keys each key-encryption key has wrapped in this process, and the count
/// at which a rotation is due. Shared by the provider that counts and the host that reads.
pub struct KeyUsage {
    warning_limit: u64,
    counts: Mutex<BTreeMap<KeyId, u64>>,
}

/// One key's count, as [`KeyUsage::wraps`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyWraps {
    /// The key.
    pub key_id: KeyId,
    /// Data keys it wrapped in this process.
    pub wraps: u64,
    /// Whether `wraps` reached the warning limit: rotate the key.
    pub rotation_due: bool,
}

impl KeyUsage {
    /// The default warning limit: 2³⁰ wraps, a quarter of the 2³² AES-GCM encryptions with
    /// random 96-bit nonces that NIST SP 800-38D allows one key (see `docs/SECURITY.md`).
    pub const DEFAULT_WARNING_LIMIT: u64 = 1 << 30;

    /// Counts that warn once a key has wrapped `warning_limit` data keys (at least 1).
    pub fn new(warning_limit: u64) -> Self {
        KeyUsage {
            warning_limit: warning_limit.max(1),
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    /// The count at which a key's rotation is due.
    pub fn warning_limit(&self) -> u64 {
        self.warning_limit
    }

    /// Every key that wrapped in this process, in key id order.
    pub fn wraps(&self) -> Vec<KeyWraps> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(key_id, &wraps)| KeyWraps {
                key_id: key_id.clone(),
                wraps,
                rotation_due: wraps >= self.warning_limit,
            })
            .collect()
    }

    /// Whether any key reached the warning limit.
    pub fn rotation_due(&self) -> bool {
        self.wraps().iter().any(|k| k.rotation_due)
    }

    fn record(&self, key_id: &KeyId) {
        let wraps = {
            let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            let count = counts.entry(key_id.clone()).or_insert(0);
            *count = count.saturating_add(1);
            *count
        };
        if wraps == self.warning_limit {
            tracing::warn!(
                key_id = key_id.as_str(),
                wraps,
                warning_limit = self.warning_limit,
                "key-encryption key {key_id} has wrapped {wraps} data keys in this process, the \
                 warning limit: rotate it (make a new primary key; keep this one for unwrapping)"
            );
        }
    }
}

impl Default for KeyUsage {
    fn default() -> Self {
        KeyUsage::new(Self::DEFAULT_WARNING_LIMIT)
    }
}

impl fmt::Debug for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyUsage")
            .field("warning_limit", &self.warning_limit)
            .field("wraps", &self.wraps())
            .finish()
    }
}

/// A provider that counts, in a [`KeyUsage`], the wraps of the provider under it, by the
/// key id each wrap names. Unwraps are not counted: they use no new nonce.
#[derive(Debug)]
pub struct CountingProvider {
    inner: Arc<dyn KeyProvider>,
    usage: Arc<KeyUsage>,
}

impl CountingProvider {
    /// Counts the wraps of `inner` in `usage`.
    pub fn new(inner: Arc<dyn KeyProvider>, usage: Arc<KeyUsage>) -> Self {
        CountingProvider { inner, usage }
    }
}

#[async_trait]
impl KeyProvider for CountingProvider {
    async fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<WrappedKey> {
        let wrapped = self.inner.wrap(dek, aad).await?;
        self.usage.record(&wrapped.key_id);
        Ok(wrapped)
    }

    async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey> {
        self.inner.unwrap(wrapped, aad).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pci_vault::{KeyEncryptionKey, Keyring};

    #[tokio::test]
    async fn wraps_are_counted_per_key_and_the_limit_is_flagged() {
        let usage = Arc::new(KeyUsage::new(3));
        let k1 = KeyId::new("k1").unwrap();
        let ring = Keyring::single(k1.clone(), KeyEncryptionKey::generate());
        let counting = CountingProvider::new(Arc::new(ring), usage.clone());
        let dek = DataKey::generate();
        let wrapped = counting.wrap(&dek, b"a").await.unwrap();
        counting.unwrap(&wrapped, b"a").await.unwrap();
        assert_eq!(
            usage.wraps(),
            vec![KeyWraps {
                key_id: k1.clone(),
                wraps: 1,
                rotation_due: false
            }]
        );
        assert!(!usage.rotation_due());
        for _ in 0..2 {
            counting.wrap(&dek, b"a").await.unwrap();
        }
        assert_eq!(usage.wraps()[0].wraps, 3);
        assert!(usage.rotation_due());
        assert_eq!(KeyUsage::new(0).warning_limit(), 1);
    }
}
