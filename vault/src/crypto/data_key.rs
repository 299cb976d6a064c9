//! The per-session data key.

use std::fmt;

use zeroize::Zeroizing;

use super::hazmat::fill_random;
use crate::error::{Error, Result};

/// A per-session data key (DEK): 32 bytes from the OS CSPRNG, zeroized on drop, never
/// printed.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// Generates a fresh random data key.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        fill_random(key.as_mut_slice());
        DataKey(key)
    }

    /// Takes a data key unwrapped by a key provider.
    ///
    /// # Errors
    /// [`Error::IntegrityError`] unless `bytes` is exactly 32 bytes long: an unwrapped key of
    /// another length means the wrapped key was not one of ours.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let array: [u8; 32] = bytes.try_into().map_err(|_| Error::IntegrityError)?;
        Ok(DataKey(Zeroizing::new(array)))
    }

    /// The raw key bytes, for a key provider to wrap. Never log or store them.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}
