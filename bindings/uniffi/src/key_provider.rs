//! A key provider written by the host (Python, Kotlin, Swift): its KMS or HSM client wraps
//! and unwraps the vault's data keys.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pci_vault::{Error, Result};
use pci_vault_config::{HostCalls, HostProvider};
use zeroize::Zeroizing;

/// Wraps and unwraps the vault's per-session data keys with a key the host's KMS or HSM
/// holds; implemented in the host language (a uniffi foreign trait).
///
/// # Behavior
/// - `wrap` receives a fresh 32-byte data key and associated data (`aad`). It MUST bind
///   `aad` to the result, so that `unwrap` with other `aad` fails, and MUST name the wrapping
///   key in `WrappedKey.key_id` (1–64 characters of `A-Z a-z 0-9 . _ : / -`). The
///   ciphertext is at most 1 KiB.
/// - `unwrap` MUST use exactly the key named by `key_id` and return the 32 bytes `wrap` was
///   given; it MUST NOT try other keys.
/// - Either method MAY be called from several threads at once, never on the host's event
///   loop. It MUST NOT log, print or put key material in an exception.
///
/// # Errors
/// Raise `KeyProviderError.Unavailable` when the key is unknown or the KMS cannot be
/// reached (the vault answers `KEY_UNAVAILABLE`), `KeyProviderError.Integrity` when the key
/// is known but the ciphertext or `aad` does not authenticate (`INTEGRITY_ERROR`). Any other
/// exception is `KEY_UNAVAILABLE` too; its text is not kept, only its type name.
#[uniffi::export(foreign)]
pub trait KeyProvider: Send + Sync {
    /// Wraps `data_key` (32 bytes), binding `aad`.
    fn wrap(&self, data_key: Vec<u8>, aad: Vec<u8>) -> Result<WrappedKey, KeyProviderError>;

    /// Unwraps a key `wrap` returned, with the same `aad`; returns the 32 bytes.
    fn unwrap(&self, wrapped: WrappedKey, aad: Vec<u8>) -> Result<Vec<u8>, KeyProviderError>;
}

/// A data key wrapped by a host key provider: which key wrapped it, and the provider's
/// opaque ciphertext. Not secret; the vault stores it in the session's record.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct WrappedKey {
    /// The id of the key that wrapped the data key.
    pub key_id: String,
    /// The provider's ciphertext, at most 1 KiB.
    pub ciphertext: Vec<u8>,
}

/// Why a host key provider could not wrap or unwrap. Kotlin and Swift name it
/// `KeyProviderException`.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum KeyProviderError {
    /// The key is unknown or the KMS/HSM cannot be reached: the vault answers
    /// `KEY_UNAVAILABLE`. `reason` reaches error messages and logs: never put key material
    /// in it.
    #[error("{reason}")]
    Unavailable {
        /// What went wrong, without key material.
        reason: String,
    },
    /// The key is known but the ciphertext or associated data does not authenticate: the
    /// vault answers `INTEGRITY_ERROR`.
    #[error("the wrapped key does not authenticate")]
    Integrity,
}

/// Longest host-written reason kept in an error message, in characters.
const MAX_REASON_CHARS: usize = 200;

impl From<uniffi::UnexpectedUniFFICallbackError> for KeyProviderError {
    /// An exception the host did not declare. Its text may hold anything (even key
    /// material), so only its type name is kept: `repr(e)` starts with it in Python.
    fn from(err: uniffi::UnexpectedUniFFICallbackError) -> Self {
        let type_name: String = err
            .reason
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .take(64)
            .collect();
        let type_name = if type_name.is_empty() {
            "an unexpected error"
        } else {
            type_name.as_str()
        };
        KeyProviderError::Unavailable {
            reason: format!("raised {type_name}"),
        }
    }
}

impl From<KeyProviderError> for Error {
    fn from(err: KeyProviderError) -> Self {
        match err {
            KeyProviderError::Unavailable { reason } => {
                let clean: String = reason
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(MAX_REASON_CHARS)
                    .collect();
                Error::key_unavailable(format!("host key provider: {clean}"))
            }
            KeyProviderError::Integrity => Error::IntegrityError,
        }
    }
}

/// The calls into a host [`KeyProvider`]; `HostProvider` bounds and checks them.
///
/// The host's methods are plain (blocking) calls into the host language: a KMS client over
/// the network may take a while, so each call runs on tokio's blocking pool, never on a
/// worker that drives other sessions. A call past the timeout keeps its blocking thread
/// until the host returns; what it returns then is dropped (a data key wiped).
pub(crate) struct HostKeyCalls(pub(crate) Arc<dyn KeyProvider>);

impl HostKeyCalls {
    async fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn KeyProvider) -> Result<T, KeyProviderError> + Send + 'static,
    ) -> Result<T> {
        let host = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || call(host.as_ref()))
            .await
            .map_err(|_| Error::key_unavailable("the host key provider did not return"))?
            .map_err(Error::from)
    }
}

#[async_trait]
impl HostCalls for HostKeyCalls {
    async fn wrap(&self, data_key: Zeroizing<Vec<u8>>, aad: Vec<u8>) -> Result<(String, Vec<u8>)> {
        // The copy handed to the host is moved into uniffi's buffer, which the host frees
        // without wiping: see the README ("What crosses the FFI").
        let data_key = data_key.to_vec();
        let wrapped = self.call(move |host| host.wrap(data_key, aad)).await?;
        Ok((wrapped.key_id, wrapped.ciphertext))
    }

    async fn unwrap(
        &self,
        wrapped: &pci_vault::WrappedKey,
        aad: Vec<u8>,
    ) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let wrapped = WrappedKey {
            key_id: wrapped.key_id.as_str().to_owned(),
            ciphertext: wrapped.ciphertext.clone(),
        };
        let clear = self
            .call(move |host| host.unwrap(wrapped, aad).map(Zeroizing::new))
            .await?;
        Ok(Some(clear))
    }
}

/// The vault's key provider for a host [`KeyProvider`], each call bounded by `timeout_ms`.
pub(crate) fn host_provider(
    provider: Arc<dyn KeyProvider>,
    timeout_ms: Option<u32>,
) -> Result<HostProvider<HostKeyCalls>> {
    let timeout = timeout_ms.map(|ms| Duration::from_millis(u64::from(ms)));
    HostProvider::new(HostKeyCalls(provider), "the host key provider", timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pci_vault::{DataKey, ErrorCode, KeyProvider as _};
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Handle → (data key, the aad it is bound to).
    type Slots = HashMap<Vec<u8>, (Vec<u8>, Vec<u8>)>;

    /// An HSM stand-in: keeps each data key under a handle and returns the handle.
    #[derive(Default)]
    struct Handles(Mutex<Slots>);

    impl KeyProvider for Handles {
        fn wrap(&self, data_key: Vec<u8>, aad: Vec<u8>) -> Result<WrappedKey, KeyProviderError> {
            let mut map = self.0.lock().unwrap();
            let handle = map.len().to_be_bytes().to_vec();
            map.insert(handle.clone(), (data_key, aad));
            Ok(WrappedKey {
                key_id: "hsm:slot-1".into(),
                ciphertext: handle,
            })
        }

        fn unwrap(&self, wrapped: WrappedKey, aad: Vec<u8>) -> Result<Vec<u8>, KeyProviderError> {
            match self.0.lock().unwrap().get(&wrapped.ciphertext) {
                Some((key, bound)) if *bound == aad => Ok(key.clone()),
                Some(_) => Err(KeyProviderError::Integrity),
                None => Err(KeyProviderError::Unavailable {
                    reason: "no such handle\nsecond line".into(),
                }),
            }
        }
    }

    #[tokio::test]
    async fn round_trip_binds_aad_and_maps_errors() {
        let provider = host_provider(Arc::new(Handles::default()), None).unwrap();
        let dek = DataKey::generate();
        let wrapped = provider.wrap(&dek, b"aad-1").await.unwrap();
        assert_eq!(wrapped.key_id.as_str(), "hsm:slot-1");
        let back = provider.unwrap(&wrapped, b"aad-1").await.unwrap();
        assert_eq!(back.expose_secret(), dek.expose_secret());

        let err = provider.unwrap(&wrapped, b"aad-2").await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::IntegrityError);

        let unknown = pci_vault::WrappedKey {
            ciphertext: vec![9; 8],
            ..wrapped
        };
        let err = provider.unwrap(&unknown, b"aad-1").await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::KeyUnavailable);
        assert_eq!(
            err.to_string(),
            "key unavailable: host key provider: no such handle second line"
        );
    }

    #[test]
    fn unexpected_exceptions_keep_only_their_type_name() {
        let err = KeyProviderError::from(uniffi::UnexpectedUniFFICallbackError {
            reason: "ValueError('key=00112233')".into(),
        });
        let message = Error::from(err).to_string();
        assert_eq!(
            message,
            "key unavailable: host key provider: raised ValueError"
        );
    }
}
