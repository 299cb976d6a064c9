//! Key providers: who wraps and unwraps the per-session data keys.
//!
//! Every session has its own random 256-bit [`DataKey`]. The vault never stores it in
//! clear: a [`KeyProvider`] wraps it (KMS-style, `wrap(dek, aad) -> WrappedKey`) and the
//! wrapped form goes into the record. A cloud KMS or an HSM implements [`KeyProvider`]
//! without ever handing out its key-encryption key; [`Keyring`] is the local implementation
//! over AES-256-GCM keys held in memory.

mod keyring;

use std::fmt;

use crate::error::{Error, Result};
use async_trait::async_trait;

pub use crate::crypto::DataKey;
pub use keyring::{KeyEncryptionKey, Keyring};

/// The identifier of a key-encryption key: 1–64 characters from `[A-Za-z0-9._:/-]`.
///
/// Records carry the id of the key that wrapped their data key; unwrapping looks the id up
/// and never tries other keys.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// Longest accepted key id, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Checks and takes a key id.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the id is empty, too long or has other characters.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= Self::MAX_LEN
            && id.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-')
            });
        if ok {
            Ok(KeyId(id))
        } else {
            Err(Error::InvalidArgument(
                "a key id is 1-64 characters from A-Z a-z 0-9 . _ : / -",
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({:?})", self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A data key wrapped by a [`KeyProvider`]: the id of the wrapping key and the opaque
/// ciphertext. Not secret: safe to store next to the data it protects.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The key that wrapped the data key.
    pub key_id: KeyId,
    /// The provider's opaque ciphertext (at most 1 KiB).
    pub ciphertext: Vec<u8>,
}

impl WrappedKey {
    /// Longest accepted wrapped-key ciphertext, in bytes.
    pub const MAX_CIPHERTEXT_LEN: usize = 1024;
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// Wraps and unwraps data keys. The plug point for a KMS, an HSM or a local keyring.
///
/// # Behavior
/// - `wrap` MUST bind `aad` to the result: `unwrap` with other associated data MUST fail,
///   whatever its length. A provider that cannot bind associated data of some length MUST
///   refuse it with [`Error::InvalidArgument`] rather than bind part of it.
///   The vault passes the format version, tenant and session id as `aad`, so a wrapped key
///   moved to another session does not open.
/// - `wrap` MUST name, in [`WrappedKey::key_id`], the key that wrapped. `unwrap` MUST use
///   exactly that key and MUST NOT try others.
/// - Implementations MUST NOT log, print or return key material in errors.
///
/// # Errors
/// - [`Error::KeyUnavailable`] when the key id is unknown or the provider cannot be reached.
/// - [`Error::IntegrityError`] when the key is known but the ciphertext or `aad` does not
///   authenticate.
#[async_trait]
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// Wraps `dek` under the current primary key, binding `aad`.
    async fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<WrappedKey>;

    /// Unwraps a data key wrapped by [`KeyProvider::wrap`] with the same `aad`.
    async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey>;
}

#[async_trait]
impl<T: KeyProvider + ?Sized> KeyProvider for std::sync::Arc<T> {
    async fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<WrappedKey> {
        (**self).wrap(dek, aad).await
    }

    async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey> {
        (**self).unwrap(wrapped, aad).await
    }
}

/// Keyrings given as an ordered list, as every configuration gives them.
impl Keyring {
    /// Builds a keyring from `(id, key)` pairs in order: the first entry is the primary
    /// (it wraps new data keys), the others only unwrap.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `keys` is empty or an id appears twice.
    pub fn primary_first(
        keys: impl IntoIterator<Item = (KeyId, KeyEncryptionKey)>,
    ) -> Result<Self> {
        let keys: Vec<(KeyId, KeyEncryptionKey)> = keys.into_iter().collect();
        let primary = keys
            .first()
            .map(|(id, _)| id.clone())
            .ok_or(Error::InvalidArgument("the keyring has no keys"))?;
        Keyring::new(primary, keys)
    }
}
