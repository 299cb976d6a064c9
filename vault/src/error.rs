//! The one error type of the crate and its stable codes.
//!
//! Every failure a caller can see is an [`Error`] with a stable [`ErrorCode`]. The codes are
//! shared by every binding and by the HTTP API, so they never change meaning. Messages are
//! written by this crate and never contain a field value, a PIN, a key or a session id.

use std::fmt;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an operation failed.
///
/// The variants map one to one onto [`ErrorCode`]. No variant carries secret data: a
/// validation failure names the field and the reason, never the value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session does not exist, belongs to another tenant, or has expired.
    #[error("session not found or expired")]
    NotFound,
    /// The form was already submitted; a submission never overwrites another.
    #[error("the form was already submitted")]
    AlreadySubmitted,
    /// The customer has not submitted the form yet, so there is nothing to reveal.
    #[error("the form has not been submitted yet")]
    NotSubmitted,
    /// The one-time reveal was already used; the data is gone.
    #[error("the form was already revealed")]
    AlreadyRevealed,
    /// The session was cancelled; the data is gone.
    #[error("the session was cancelled")]
    Cancelled,
    /// Too many wrong PINs; the data is destroyed.
    #[error("too many wrong PINs; the session is locked and its data destroyed")]
    Locked,
    /// The PIN was wrong. `attempts_left` more wrong PINs are allowed before the lock.
    #[error("wrong PIN; {attempts_left} attempt(s) left")]
    WrongPin {
        /// Wrong PINs still allowed before the session locks.
        attempts_left: u8,
    },
    /// One or more form fields are invalid. Each entry names a field and a reason.
    #[error("{} form field(s) failed validation", fields.len())]
    ValidationFailed {
        /// The failing fields, in form order.
        fields: Vec<FieldError>,
    },
    /// An argument is malformed or out of range (a session id, an option, an unknown field).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The store is down, timed out or refused the operation. Nothing was half-written.
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    /// The store is full (memory bound reached, Redis out of memory).
    #[error("store capacity exceeded")]
    CapacityExceeded,
    /// The key provider cannot wrap or unwrap (unknown key id, missing key, KMS failure).
    #[error("key unavailable: {0}")]
    KeyUnavailable(String),
    /// A stored record failed authentication: it was altered, corrupted or moved.
    #[error("stored record failed its integrity check")]
    IntegrityError,
}

impl Error {
    /// The stable code of this error, shared by every binding and the HTTP API.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::NotFound => ErrorCode::NotFound,
            Error::AlreadySubmitted => ErrorCode::AlreadySubmitted,
            Error::NotSubmitted => ErrorCode::NotSubmitted,
            Error::AlreadyRevealed => ErrorCode::AlreadyRevealed,
            Error::Cancelled => ErrorCode::Cancelled,
            Error::Locked => ErrorCode::Locked,
            Error::WrongPin { .. } => ErrorCode::WrongPin,
            Error::ValidationFailed { .. } => ErrorCode::ValidationFailed,
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::StoreUnavailable(_) => ErrorCode::StoreUnavailable,
            Error::CapacityExceeded => ErrorCode::CapacityExceeded,
            Error::KeyUnavailable(_) => ErrorCode::KeyUnavailable,
            Error::IntegrityError => ErrorCode::IntegrityError,
        }
    }

    /// A store failure. `detail` is written by the backend and MUST NOT contain stored
    /// values; it reaches logs and error messages.
    pub fn store_unavailable(detail: impl Into<String>) -> Self {
        Error::StoreUnavailable(detail.into())
    }

    /// A key-provider failure. `detail` MUST NOT contain key material.
    pub fn key_unavailable(detail: impl Into<String>) -> Self {
        Error::KeyUnavailable(detail.into())
    }
}

/// The stable error codes, with their HTTP statuses in `docs/CONTRACTS.md` ("Error codes").
///
/// [`ErrorCode::as_str`] gives the wire spelling (`"WRONG_PIN"`), used by every binding and
/// the HTTP API. The server-only codes `UNAUTHORIZED` and `RATE_LIMITED` are not produced by
/// the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `NOT_FOUND`
    NotFound,
    /// `ALREADY_SUBMITTED`
    AlreadySubmitted,
    /// `NOT_SUBMITTED`
    NotSubmitted,
    /// `ALREADY_REVEALED`
    AlreadyRevealed,
    /// `CANCELLED`
    Cancelled,
    /// `LOCKED`
    Locked,
    /// `WRONG_PIN`
    WrongPin,
    /// `VALIDATION_FAILED`
    ValidationFailed,
    /// `INVALID_ARGUMENT`
    InvalidArgument,
    /// `STORE_UNAVAILABLE`
    StoreUnavailable,
    /// `CAPACITY_EXCEEDED`
    CapacityExceeded,
    /// `KEY_UNAVAILABLE`
    KeyUnavailable,
    /// `INTEGRITY_ERROR`
    IntegrityError,
}

impl ErrorCode {
    /// Every code the library produces, for exhaustive tests and documentation.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::NotFound,
        ErrorCode::AlreadySubmitted,
        ErrorCode::NotSubmitted,
        ErrorCode::AlreadyRevealed,
        ErrorCode::Cancelled,
        ErrorCode::Locked,
        ErrorCode::WrongPin,
        ErrorCode::ValidationFailed,
        ErrorCode::InvalidArgument,
        ErrorCode::StoreUnavailable,
        ErrorCode::CapacityExceeded,
        ErrorCode::KeyUnavailable,
        ErrorCode::IntegrityError,
    ];

    /// The wire spelling of the code, e.g. `"WRONG_PIN"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadySubmitted => "ALREADY_SUBMITTED",
            ErrorCode::NotSubmitted => "NOT_SUBMITTED",
            ErrorCode::AlreadyRevealed => "ALREADY_REVEALED",
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::Locked => "LOCKED",
            ErrorCode::WrongPin => "WRONG_PIN",
            ErrorCode::ValidationFailed => "VALIDATION_FAILED",
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::StoreUnavailable => "STORE_UNAVAILABLE",
            ErrorCode::CapacityExceeded => "CAPACITY_EXCEEDED",
            ErrorCode::KeyUnavailable => "KEY_UNAVAILABLE",
            ErrorCode::IntegrityError => "INTEGRITY_ERROR",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One invalid form field: its name and a stable reason, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldError {
    /// The field name, as in the form spec (`card_number`, `expiry`, ...).
    pub field: String,
    /// Why the value was rejected.
    pub reason: FieldReason,
}

impl FieldError {
    /// Field `field` was rejected for `reason`.
    pub fn new(field: impl Into<String>, reason: FieldReason) -> Self {
        FieldError {
            field: field.into(),
            reason,
        }
    }
}

/// Why a field value was rejected. [`FieldReason::as_str`] is the stable wire spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldReason {
    /// A required field is missing or empty.
    Required,
    /// The value is longer than the field allows.
    TooLong,
    /// The value contains characters the field does not accept.
    Characters,
    /// The card number has a length its brand does not issue.
    Length,
    /// The card number fails the Luhn check.
    Luhn,
    /// The card number belongs to no supported brand.
    UnknownBrand,
    /// The value does not have the expected shape (e.g. an expiry that is not `MM/YY`).
    Format,
    /// The expiry month is not 01–12.
    Month,
    /// The card has expired.
    Expired,
    /// The expiry is more than 20 years ahead.
    TooFar,
    /// The security code has the wrong number of digits for the card brand.
    CvcLength,
}

impl FieldReason {
    /// The wire spelling of the reason, e.g. `"luhn"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldReason::Required => "required",
            FieldReason::TooLong => "too_long",
            FieldReason::Characters => "characters",
            FieldReason::Length => "length",
            FieldReason::Luhn => "luhn",
            FieldReason::UnknownBrand => "unknown_brand",
            FieldReason::Format => "format",
            FieldReason::Month => "month",
            FieldReason::Expired => "expired",
            FieldReason::TooFar => "too_far",
            FieldReason::CvcLength => "cvc_length",
        }
    }
}

impl fmt::Display for FieldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_upper_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{s}");
        }
    }

    #[test]
    fn wrong_pin_message_carries_only_the_count() {
        let e = Error::WrongPin { attempts_left: 3 };
        assert_eq!(e.code(), ErrorCode::WrongPin);
        assert_eq!(e.to_string(), "wrong PIN; 3 attempt(s) left");
    }
}
