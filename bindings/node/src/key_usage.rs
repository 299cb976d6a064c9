//! `vault.keyUsage()`: how many data keys each key-encryption key has wrapped in this
//! process, so a host can alert before a key reaches its limit and rotate it.

use napi_derive::napi;
use pci_vault_config::KeyWraps;

/// One key-encryption key's wrap count in this process.
#[napi(object)]
pub struct KeyWrapCount {
    /// The key id, as records name it.
    pub key_id: String,
    /// Data keys it wrapped since the vault was opened (saturating at 2^53 − 1).
    pub wraps: f64,
    /// Whether it reached the wrap warning limit: rotate it.
    pub rotation_due: bool,
}

impl From<KeyWraps> for KeyWrapCount {
    fn from(key: KeyWraps) -> Self {
        const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
        KeyWrapCount {
            key_id: key.key_id.as_str().to_owned(),
            // A JavaScript number holds every integer up to 2^53 − 1 exactly.
            #[expect(clippy::cast_precision_loss, reason = "capped at 2^53 - 1 first")]
            wraps: key.wraps.min(MAX_SAFE_INTEGER) as f64,
            rotation_due: key.rotation_due,
        }
    }
}
