//! The local key provider: AES-256-GCM over a set of key-encryption keys in memory.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use zeroize::Zeroizing;

use super::{DataKey, KeyId, KeyProvider, WrappedKey};
use crate::crypto::KekCipher;
use crate::error::{Error, Result};

/// A 256-bit key-encryption key. Zeroized on drop, never printed.
#[derive(Clone)]
pub struct KeyEncryptionKey {
    bytes: Zeroizing<[u8; 32]>,
    cipher: KekCipher,
}

impl KeyEncryptionKey {
    /// Takes 32 bytes of key material.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the material is not 32 bytes or is all zeros (the
    /// mark of an unset or truncated secret). The message never contains the material.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::InvalidArgument("a key-encryption key must be exactly 32 bytes"))?;
        let array = Zeroizing::new(array);
        if array.iter().all(|&b| b == 0) {
            return Err(Error::InvalidArgument(
                "a key-encryption key must not be all zeros",
            ));
        }
        Ok(KeyEncryptionKey::from_array(array))
    }

    fn from_array(bytes: Zeroizing<[u8; 32]>) -> Self {
        let cipher = KekCipher::new(&bytes);
        KeyEncryptionKey { bytes, cipher }
    }

    /// A fresh random key, for development and tests.
    pub fn generate() -> Self {
        KeyEncryptionKey::from_array(Zeroizing::new(*DataKey::generate().expose_secret()))
    }

    /// The raw key bytes. Never log or store them.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey([REDACTED])")
    }
}

/// A set of key-encryption keys: one primary that wraps new data keys, and older keys that
/// only unwrap, so records sealed before a rotation still open after it.
#[derive(Clone)]
pub struct Keyring {
    primary: KeyId,
    keys: BTreeMap<KeyId, KeyEncryptionKey>,
}

impl Keyring {
    /// Builds a keyring from `(id, key)` pairs and the id of the primary.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `keys` is empty, an id appears twice, or the primary
    /// is not among the keys.
    pub fn new(
        primary: KeyId,
        keys: impl IntoIterator<Item = (KeyId, KeyEncryptionKey)>,
    ) -> Result<Self> {
        let mut map = BTreeMap::new();
        for (id, key) in keys {
            if map.insert(id, key).is_some() {
                return Err(Error::InvalidArgument(
                    "a key id appears twice in the keyring",
                ));
            }
        }
        if map.is_empty() {
            return Err(Error::InvalidArgument("the keyring has no keys"));
        }
        if !map.contains_key(&primary) {
            return Err(Error::InvalidArgument(
                "the primary key id is not in the keyring",
            ));
        }
        Ok(Keyring { primary, keys: map })
    }

    /// A keyring of one key, which is the primary.
    pub fn single(id: KeyId, key: KeyEncryptionKey) -> Self {
        Keyring {
            primary: id.clone(),
            keys: BTreeMap::from([(id, key)]),
        }
    }

    /// A keyring of one fresh random key with id `dev`, for development and tests only:
    /// its records cannot be opened after the process ends.
    pub fn ephemeral() -> Self {
        Keyring::single(KeyId(String::from("dev")), KeyEncryptionKey::generate())
    }

    /// The id of the key that wraps new data keys.
    pub fn primary(&self) -> &KeyId {
        &self.primary
    }

    /// Whether the keyring holds a key with this id.
    pub fn contains(&self, id: &KeyId) -> bool {
        self.keys.contains_key(id)
    }

    /// The ids of every key, primary included, in order.
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.keys()
    }

    /// Wraps without the async trait, for callers that hold the keyring directly.
    ///
    /// `aad` may have any length; every byte of it is bound.
    pub fn wrap_now(&self, dek: &DataKey, aad: &[u8]) -> Result<WrappedKey> {
        let kek = self
            .keys
            .get(&self.primary)
            .ok_or_else(|| Error::key_unavailable("the primary key is missing"))?;
        Ok(WrappedKey {
            key_id: self.primary.clone(),
            ciphertext: kek.cipher.wrap(self.primary.as_str(), aad, dek),
        })
    }

    /// Unwraps without the async trait, for callers that hold the keyring directly.
    pub fn unwrap_now(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey> {
        let kek = self.keys.get(&wrapped.key_id).ok_or_else(|| {
            Error::key_unavailable(format!(
                "no key with id {:?} in the keyring",
                wrapped.key_id.as_str()
            ))
        })?;
        kek.cipher
            .unwrap(wrapped.key_id.as_str(), aad, &wrapped.ciphertext)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("primary", &self.primary)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl KeyProvider for Keyring {
    async fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<WrappedKey> {
        self.wrap_now(dek, aad)
    }

    async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey> {
        self.unwrap_now(wrapped, aad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn id(s: &str) -> KeyId {
        KeyId::new(s).unwrap()
    }

    #[test]
    fn rotation_keeps_old_records_readable() {
        let k1 = KeyEncryptionKey::generate();
        let before = Keyring::single(id("k1"), k1.clone());
        let dek = DataKey::generate();
        let wrapped = before.wrap_now(&dek, b"aad").unwrap();

        let after = Keyring::new(
            id("k2"),
            [(id("k2"), KeyEncryptionKey::generate()), (id("k1"), k1)],
        )
        .unwrap();
        assert_eq!(
            after.unwrap_now(&wrapped, b"aad").unwrap().expose_secret(),
            dek.expose_secret()
        );
        assert_eq!(after.wrap_now(&dek, b"aad").unwrap().key_id, id("k2"));
    }

    #[test]
    fn unknown_key_id_is_key_unavailable_and_wrong_aad_is_integrity() {
        let ring = Keyring::ephemeral();
        let dek = DataKey::generate();
        let mut wrapped = ring.wrap_now(&dek, b"a").unwrap();
        assert_eq!(
            ring.unwrap_now(&wrapped, b"b").unwrap_err().code(),
            ErrorCode::IntegrityError
        );
        wrapped.key_id = id("nope");
        assert_eq!(
            ring.unwrap_now(&wrapped, b"a").unwrap_err().code(),
            ErrorCode::KeyUnavailable
        );
    }

    /// Associated data is bound whatever its length: at, below and past every size the
    /// wrapping uses internally (its stack buffer and its length prefix), two values that
    /// differ only in their last byte never unwrap each other's keys.
    #[test]
    fn associated_data_of_any_length_is_bound() {
        let ring = Keyring::single(
            id(&"k".repeat(KeyId::MAX_LEN)),
            KeyEncryptionKey::generate(),
        );
        let dek = DataKey::generate();
        let lengths = (0..=600).chain([
            1023,
            1024,
            1025,
            4095,
            4096,
            4097,
            65534,
            65535,
            65536,
            65537,
            1 << 20,
        ]);
        for n in lengths {
            let aad: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let wrapped = ring.wrap_now(&dek, &aad).unwrap();
            assert_eq!(
                ring.unwrap_now(&wrapped, &aad).unwrap().expose_secret(),
                dek.expose_secret(),
                "{n}"
            );
            let mut other = aad.clone();
            match other.last_mut() {
                Some(last) => *last ^= 0x80,
                None => other.push(0),
            }
            assert_eq!(
                ring.unwrap_now(&wrapped, &other).unwrap_err().code(),
                ErrorCode::IntegrityError,
                "{n}"
            );
        }
    }

    #[test]
    fn bad_key_material_is_refused_without_echo() {
        for bad in [&[0u8; 32][..], &[1u8; 31][..], &[1u8; 33][..], &[][..]] {
            let err = KeyEncryptionKey::from_bytes(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidArgument);
        }
        let err =
            Keyring::new(id("missing"), [(id("k1"), KeyEncryptionKey::generate())]).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        let dup = Keyring::new(
            id("k1"),
            [
                (id("k1"), KeyEncryptionKey::generate()),
                (id("k1"), KeyEncryptionKey::generate()),
            ],
        );
        assert!(dup.is_err());
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = KeyEncryptionKey::from_bytes(&[0xAB; 32]).unwrap();
        let ring = Keyring::single(id("k1"), key.clone());
        for text in [
            format!("{key:?}"),
            format!("{ring:?}"),
            format!("{:?}", DataKey::generate()),
        ] {
            assert!(
                !text.to_lowercase().contains("ab, ab") && !text.contains("171"),
                "{text}"
            );
            assert!(!text.contains("abab"), "{text}");
        }
    }

    #[test]
    fn key_ids_are_checked() {
        assert!(KeyId::new("k-2025.11/a:b_c").is_ok());
        for bad in [
            "",
            "has space",
            "é",
            "x".repeat(65).as_str(),
            "a\nb",
            "{slot}",
        ] {
            assert!(KeyId::new(bad).is_err(), "{bad:?}");
        }
    }
}
