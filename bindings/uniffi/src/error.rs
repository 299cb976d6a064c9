//! `VaultError`: the one error every exported call raises, one variant per stable code.

use pci_vault::{Error, ErrorCode};

/// Why a vault call failed. Each variant is one stable code of the vault (`pci_vault::ErrorCode`),
/// carried in `code` with the same spelling as in Rust, Node and the HTTP API; `message` is
/// the vault's text, which never contains a field value, a PIN, a key or a session id.
///
/// Python raises `VaultError.WrongPin`, `VaultError.ValidationFailed`, ... (all subclasses of
/// `VaultError`); Kotlin and Swift name the type `VaultException`.
#[derive(Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum VaultError {
    /// `NOT_FOUND`: unknown id, another tenant's session, or expired.
    #[error("{message}")]
    NotFound {
        /// `NOT_FOUND`
        code: String,
        /// What went wrong, without secrets.
        message: String,
    },
    /// `ALREADY_SUBMITTED`: the form was already submitted.
    #[error("{message}")]
    AlreadySubmitted {
        /// `ALREADY_SUBMITTED`
        code: String,
        /// What went wrong, without secrets.
        message: String,
    },
    /// `NOT_SUBMITTED`: reveal before the customer submitted.
    #[error("{message}")]
    NotSubmitted {
        /// `NOT_SUBMITTED`
        code: String,
        /// What went wrong, without secrets.
        message: String,
    },
    /// `ALREADY_REVEALED`: the one-time reveal was used; the data is gone.
    #[error("{message}")]
    AlreadyRevealed {
        /// `ALREADY_REVEALED`
        code: String,
        /// What went wrong, without secrets.
        message: String,
    },
    /// `CANCELLED`: the session was cancelled; the data is gone.
    #[error("{message}")]
    Cancelled {
        /// `CANCELLED`
        code: String,
        /// What went wrong, without secrets.
        message: String,
    },
    /// `LOCKED`: too many wrong PINs; the data is destroyed.
    #[error("{message}")]
    Locked {
        /// `LOCKED`
        code: String,
        /// What went wrong, without secrets.
        message: String,
    },
    /// `WRONG_PIN`: the PIN was wrong; `attempts_left` more wrong PINs lock the session.
    #[error("{message}")]
    WrongPin {
        /// `WRONG_PIN`
        code: String,
        /// What went wrong, without secrets.
        message: String,
        /// Wrong PINs still allowed before the session locks.
        attempts_left: u8,
    },
    /// `VALIDATION_FAILED`: one entry per invalid field, in form order; never a value.
    #[error("{message}")]
    ValidationFailed {
        /// `VALIDATION_FAILED`
        code: String,
        /// What went wrong, without secrets.
        message: String,
        /// The invalid fields and why.
        fields: Vec<FieldError>,
    },
    /// `INVALID_ARGUMENT`: a malformed id or PIN, an option out of range, an unknown field.
    #[error("{message}")]
    InvalidArgument {
        /// `INVALID_ARGUMENT`
        code: String,
        /// What went wrong, without secrets.
        message: String,
    },
    /// `STORE_UNAVAILABLE`: the store is down or timed out; nothing was half-written.
    #[error("{message}")]
    StoreUnavailable {
        /// `STORE_UNAVAILABLE`
        code: String,
        /// What went wrong, without secrets.
        message: String,
    },
    /// `CAPACITY_EXCEEDED`: the store is full.
    #[error("{message}")]
    CapacityExceeded {
        /// `CAPACITY_EXCEEDED`
        code: String,
        /// What went wrong, without secrets.
        message: String,
    },
    /// `KEY_UNAVAILABLE`: the key provider cannot wrap or unwrap (unknown key id, missing
    /// key, a host provider that raised).
    #[error("{message}")]
    KeyUnavailable {
        /// `KEY_UNAVAILABLE`
        code: String,
        /// What went wrong, without secrets.
        message: String,
    },
    /// `INTEGRITY_ERROR`: a stored record or wrapped key failed authentication.
    #[error("{message}")]
    IntegrityError {
        /// `INTEGRITY_ERROR`
        code: String,
        /// What went wrong, without secrets.
        message: String,
    },
    /// A code added to the vault after this binding was written; `code` names it.
    #[error("{message}")]
    Other {
        /// The stable code.
        code: String,
        /// What went wrong, without secrets.
        message: String,
    },
}

/// One invalid form field: its name and a stable reason (`luhn`, `expired`, `required`,
/// ...), never its value.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FieldError {
    /// The field name, as in the form (`card_number`, `expiry`, ...).
    pub field: String,
    /// Why the value was rejected, e.g. `luhn`.
    pub reason: String,
}

impl VaultError {
    /// The stable code, e.g. `WRONG_PIN`.
    pub fn code(&self) -> &str {
        match self {
            VaultError::NotFound { code, .. }
            | VaultError::AlreadySubmitted { code, .. }
            | VaultError::NotSubmitted { code, .. }
            | VaultError::AlreadyRevealed { code, .. }
            | VaultError::Cancelled { code, .. }
            | VaultError::Locked { code, .. }
            | VaultError::WrongPin { code, .. }
            | VaultError::ValidationFailed { code, .. }
            | VaultError::InvalidArgument { code, .. }
            | VaultError::StoreUnavailable { code, .. }
            | VaultError::CapacityExceeded { code, .. }
            | VaultError::KeyUnavailable { code, .. }
            | VaultError::IntegrityError { code, .. }
            | VaultError::Other { code, .. } => code,
        }
    }
}

impl From<Error> for VaultError {
    fn from(err: Error) -> Self {
        let code = err.code().as_str().to_owned();
        let message = err.to_string();
        if let Some(attempts_left) = err.attempts_left() {
            return VaultError::WrongPin {
                code,
                message,
                attempts_left,
            };
        }
        if let Some(fields) = err.field_problems() {
            let fields = fields
                .into_iter()
                .map(|(field, reason)| FieldError {
                    field,
                    reason: reason.to_owned(),
                })
                .collect();
            return VaultError::ValidationFailed {
                code,
                message,
                fields,
            };
        }
        match err.code() {
            ErrorCode::NotFound => VaultError::NotFound { code, message },
            ErrorCode::AlreadySubmitted => VaultError::AlreadySubmitted { code, message },
            ErrorCode::NotSubmitted => VaultError::NotSubmitted { code, message },
            ErrorCode::AlreadyRevealed => VaultError::AlreadyRevealed { code, message },
            ErrorCode::Cancelled => VaultError::Cancelled { code, message },
            ErrorCode::Locked => VaultError::Locked { code, message },
            ErrorCode::InvalidArgument => VaultError::InvalidArgument { code, message },
            ErrorCode::StoreUnavailable => VaultError::StoreUnavailable { code, message },
            ErrorCode::CapacityExceeded => VaultError::CapacityExceeded { code, message },
            ErrorCode::KeyUnavailable => VaultError::KeyUnavailable { code, message },
            ErrorCode::IntegrityError => VaultError::IntegrityError { code, message },
            _ => VaultError::Other { code, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pci_vault::{FieldError as CoreFieldError, FieldReason};

    fn sample(code: ErrorCode) -> Error {
        match code {
            ErrorCode::NotFound => Error::NotFound,
            ErrorCode::AlreadySubmitted => Error::AlreadySubmitted,
            ErrorCode::NotSubmitted => Error::NotSubmitted,
            ErrorCode::AlreadyRevealed => Error::AlreadyRevealed,
            ErrorCode::Cancelled => Error::Cancelled,
            ErrorCode::Locked => Error::Locked,
            ErrorCode::WrongPin => Error::WrongPin { attempts_left: 2 },
            ErrorCode::ValidationFailed => Error::ValidationFailed {
                fields: vec![CoreFieldError::new("card_number", FieldReason::Luhn)],
            },
            ErrorCode::InvalidArgument => Error::InvalidArgument("pin_length must be 4-12"),
            ErrorCode::StoreUnavailable => Error::store_unavailable("timed out"),
            ErrorCode::CapacityExceeded => Error::CapacityExceeded,
            ErrorCode::KeyUnavailable => Error::key_unavailable("unknown key id"),
            ErrorCode::IntegrityError => Error::IntegrityError,
            _ => Error::IntegrityError,
        }
    }

    #[test]
    fn every_code_keeps_its_spelling_and_message() {
        for code in ErrorCode::ALL {
            let core = sample(code);
            let message = core.to_string();
            let mapped = VaultError::from(core);
            assert_eq!(mapped.code(), code.as_str());
            assert_eq!(mapped.to_string(), message);
            assert!(
                !matches!(mapped, VaultError::Other { .. }),
                "{code} has no variant of its own"
            );
        }
    }

    #[test]
    fn extra_data_crosses() {
        let VaultError::WrongPin { attempts_left, .. } =
            VaultError::from(sample(ErrorCode::WrongPin))
        else {
            panic!("not WrongPin");
        };
        assert_eq!(attempts_left, 2);
        let VaultError::ValidationFailed { fields, .. } =
            VaultError::from(sample(ErrorCode::ValidationFailed))
        else {
            panic!("not ValidationFailed");
        };
        assert_eq!(
            fields,
            vec![FieldError {
                field: "card_number".into(),
                reason: "luhn".into()
            }]
        );
    }
}
