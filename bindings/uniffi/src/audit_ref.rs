//! `session_ref(audit_key, id)`: the reference a session's audit events carry, so an
//! operator holding the deployment's audit key can find them.

use pci_vault::SessionId;
use zeroize::Zeroizing;

use crate::error::VaultError;

/// The `session_ref` of the audit events of session `id` under the 32-byte `audit_key`
/// (`VaultOptions.audit_key`): 32 lowercase hex digits.
///
/// Raises `VaultError.InvalidArgument` for a key that is not 32 bytes or a malformed id;
/// the message never shows either.
#[uniffi::export]
pub fn session_ref(audit_key: Vec<u8>, id: String) -> Result<String, VaultError> {
    let audit_key = Zeroizing::new(audit_key);
    let key = <&[u8; 32]>::try_from(audit_key.as_slice())
        .map_err(|_| pci_vault::Error::InvalidArgument("the audit key is 32 bytes"))?;
    let id = SessionId::parse(&id)?;
    Ok(pci_vault::session_ref(key, &id))
}
