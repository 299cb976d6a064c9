//! The one place where failures become JavaScript errors.
//!
//! Every error the binding hands to JavaScript carries `code`, a stable code of `pci_vault::ErrorCode`
//! (`err.code === 'WRONG_PIN'`), plus `attemptsLeft` for `WRONG_PIN` and `fields` for
//! `VALIDATION_FAILED`. An argument of the wrong JavaScript type is a `TypeError` with code
//! `INVALID_ARGUMENT`. Messages come from the core or name the argument; none repeats a
//! value.

use napi::bindgen_prelude::{FromNapiValue, JsValue, Object};
use napi::{Env, JsTypeError, Status};
use pci_vault::{Error, ErrorCode};

use crate::results::FieldProblem;

/// Why a call failed, before it becomes a JavaScript error.
pub(crate) enum Failure {
    /// The vault refused or failed; the error has its stable code.
    Vault(Error),
    /// An argument has the wrong JavaScript type or shape. The message names the argument.
    Type(String),
    /// JavaScript threw while an argument was read (a getter or a `Proxy` trap), or N-API
    /// failed. The caller's own exception is left to propagate as it is.
    Js(napi::Error),
}

impl Failure {
    /// A `TypeError` for argument `name`, which should be `expected`.
    pub(crate) fn type_error(name: &str, expected: &str) -> Self {
        Failure::Type(format!("{name} must be {expected}"))
    }

    /// An `INVALID_ARGUMENT` error with a fixed message.
    pub(crate) fn invalid(message: &'static str) -> Self {
        Failure::Vault(Error::InvalidArgument(message))
    }

    /// An operation that panicked. It is `STORE_UNAVAILABLE`, the code the core gives an
    /// operation that was stopped before it ended (`pci_vault_config::to_completion`): its
    /// outcome is unknown, and the caller checks with `status` before trying again. Not
    /// `INTEGRITY_ERROR` or `KEY_UNAVAILABLE`, which would send operators after tampering
    /// or the keys. The panic's own message is not kept: it could hold anything.
    pub(crate) fn panicked() -> Self {
        Failure::Vault(Error::store_unavailable(
            "the operation failed unexpectedly; its outcome is unknown",
        ))
    }

    /// The JavaScript error for this failure, ready to throw or to reject a promise with.
    pub(crate) fn into_js(self, env: &Env) -> napi::Error {
        match self.build(env) {
            Ok(error) | Err(error) => error,
        }
    }

    fn build(self, env: &Env) -> napi::Result<napi::Error> {
        let (mut error, code) = match self {
            Failure::Js(error) => return Ok(error),
            Failure::Type(message) => {
                let type_error = JsTypeError::from(napi::Error::new(Status::InvalidArg, message))
                    .into_unknown(*env);
                (
                    Object::from_unknown(type_error)?,
                    ErrorCode::InvalidArgument,
                )
            }
            Failure::Vault(error) => {
                let mut object = env.create_error(napi::Error::from_reason(error.to_string()))?;
                if let Some(attempts_left) = error.attempts_left() {
                    object.set("attemptsLeft", u32::from(attempts_left))?;
                }
                if let Some(fields) = error.field_problems() {
                    let problems: Vec<FieldProblem> = fields
                        .into_iter()
                        .map(|(field, reason)| FieldProblem {
                            field,
                            reason: reason.to_owned(),
                        })
                        .collect();
                    object.set("fields", problems)?;
                }
                (object, error.code())
            }
        };
        error.set("code", code.as_str())?;
        Ok(napi::Error::from(error.to_unknown()))
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Vault(error)
    }
}

impl From<napi::Error> for Failure {
    fn from(error: napi::Error) -> Self {
        Failure::Js(error)
    }
}

impl From<pci_vault_keys::LoadError> for Failure {
    fn from(error: pci_vault_keys::LoadError) -> Self {
        Failure::Vault(error.into())
    }
}
