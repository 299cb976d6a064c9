//! The conformance suite on the memory store with a key provider under test, and a
//! provider wrapper that records what a provider is given.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pci_vault::conformance::Harness;
use pci_vault::{Clock, DataKey, EphemeralStore, KeyProvider, Result, WrappedKey};

use crate::memory::MemoryHarness;

/// The memory store's harness, with the keys of a provider under test: the provider as
/// configured, the same provider after its primary moved to a new key (the old key still
/// unwraps), and a provider of the same kind that does not know the first one's key id.
pub struct ProviderHarness {
    /// The store and clock.
    pub memory: MemoryHarness,
    /// What [`Harness::keys`] hands out.
    pub keys: Arc<dyn KeyProvider>,
    /// What [`Harness::rotated_keys`] hands out.
    pub rotated: Arc<dyn KeyProvider>,
    /// What [`Harness::renamed_keys`] hands out.
    pub renamed: Arc<dyn KeyProvider>,
}

#[async_trait]
impl Harness for ProviderHarness {
    fn store(&self) -> Arc<dyn EphemeralStore> {
        self.memory.store()
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.memory.clock()
    }

    async fn advance(&self, by: Duration) {
        self.memory.advance(by).await;
    }

    async fn bounded_store(&self) -> Option<Arc<dyn EphemeralStore>> {
        self.memory.bounded_store().await
    }

    fn keys(&self) -> Arc<dyn KeyProvider> {
        self.keys.clone()
    }

    fn rotated_keys(&self) -> Arc<dyn KeyProvider> {
        self.rotated.clone()
    }

    fn renamed_keys(&self) -> Arc<dyn KeyProvider> {
        self.renamed.clone()
    }
}

/// One call a provider received: the length of the data key it was given to wrap (0 for an
/// unwrap), the associated data, and the wrapped key's ciphertext.
#[derive(Clone, Debug)]
pub struct ProviderCall {
    /// Length of the data key handed to `wrap`; 0 for `unwrap`.
    pub dek_len: usize,
    /// The associated data.
    pub aad: Vec<u8>,
    /// The wrapped key's ciphertext (out of `wrap`, into `unwrap`).
    pub ciphertext: Vec<u8>,
}

/// Forwards to a provider and records every call, so a test can check what reaches it.
#[derive(Debug)]
pub struct RecordingProvider {
    inner: Arc<dyn KeyProvider>,
    calls: Mutex<Vec<ProviderCall>>,
}

impl RecordingProvider {
    /// Records the calls to `inner`.
    pub fn new(inner: Arc<dyn KeyProvider>) -> Self {
        RecordingProvider {
            inner,
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<ProviderCall> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl KeyProvider for RecordingProvider {
    async fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<WrappedKey> {
        let wrapped = self.inner.wrap(dek, aad).await?;
        self.calls.lock().unwrap().push(ProviderCall {
            dek_len: dek.expose_secret().len(),
            aad: aad.to_vec(),
            ciphertext: wrapped.ciphertext.clone(),
        });
        Ok(wrapped)
    }

    async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey> {
        self.calls.lock().unwrap().push(ProviderCall {
            dek_len: 0,
            aad: aad.to_vec(),
            ciphertext: wrapped.ciphertext.clone(),
        });
        self.inner.unwrap(wrapped, aad).await
    }
}
