//! `sessionRef(auditKey, id)`: the reference a session's audit events carry, so an
//! operator holding the deployment's audit key can find them.

#![cfg_attr(
    test,
    allow(
        dead_code,
        reason = "napi registers the export outside unit tests only"
    )
)]

use napi::bindgen_prelude::Unknown;
use napi::{Env, Result};
use napi_derive::napi;
use pci_vault::SessionId;

use crate::args::{self, Arg};
use crate::errors::Failure;

/// The `sessionRef` of the audit events of session `id` under the 32-byte `auditKey`
/// (the `auditKey` given to `Vault.open`): 32 lowercase hex digits. Throws `TypeError`
/// for arguments of the wrong type and `INVALID_ARGUMENT` for a key that is not 32 bytes or
/// a malformed id; the message never shows either.
#[napi(ts_args_type = "auditKey: Buffer, id: string")]
// `allow`, not `expect`: the napi macro re-emits the function, and rustc then reports an
// `expect` here as unfulfilled although the lint fires without it.
#[allow(
    unreachable_pub,
    reason = "exported to JavaScript by the napi macro, not to Rust"
)]
pub fn session_ref<'env>(
    env: &'env Env,
    audit_key: Unknown<'env>,
    id: Unknown<'env>,
) -> Result<String> {
    reference(audit_key, id).map_err(|failure| failure.into_js(env))
}

fn reference(audit_key: Unknown<'_>, id: Unknown<'_>) -> Arg<String> {
    let key = args::bytes(audit_key, "auditKey", "a Buffer of 32 bytes")?;
    let key = <&[u8; 32]>::try_from(key.as_slice())
        .map_err(|_| Failure::invalid("the audit key is 32 bytes"))?;
    let id = SessionId::parse(&args::string(id, "id")?)?;
    Ok(pci_vault::session_ref(key, &id))
}
