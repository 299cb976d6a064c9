//! Session options as a caller gives them: each one optional, applied over defaults.

use std::fmt;
use std::time::Duration;

use crate::error::Result;
use crate::form::FormSpec;
use crate::session::{Metadata, SessionOptions};

/// The session options a caller gives, each one optional: what a binding's `createSession`
/// options, an HTTP request body or a configuration's session defaults hold.
///
/// [`SessionOverrides::apply`] puts them over a base (the vault's defaults, or
/// [`SessionOptions::default`]) and checks the result once, with the core's ranges. Numbers
/// are taken as wide as hosts give them, so a value out of range is refused, never
/// truncated into range.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionOverrides {
    /// How long the link and any data live, in whole seconds.
    pub ttl_seconds: Option<u64>,
    /// Digits in the PIN.
    pub pin_length: Option<u64>,
    /// Wrong PINs allowed before the session locks.
    pub max_attempts: Option<u64>,
    /// The names of the fields the form asks for, in order.
    pub fields: Option<Vec<String>>,
    /// Non-secret labels, as `(key, value)` pairs.
    pub metadata: Option<Vec<(String, String)>>,
}

impl SessionOverrides {
    /// No overrides: [`SessionOverrides::apply`] returns its base.
    pub fn new() -> Self {
        SessionOverrides::default()
    }

    /// `base` with every option given here replacing it, checked.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` naming the option that is malformed or out of range.
    pub fn apply(&self, base: &SessionOptions) -> Result<SessionOptions> {
        let mut options = base.clone();
        if let Some(ttl) = self.ttl_seconds {
            options.ttl = Duration::from_secs(ttl);
        }
        if let Some(pin_length) = self.pin_length {
            options.pin_length = u8::try_from(pin_length).unwrap_or(u8::MAX);
        }
        if let Some(max_attempts) = self.max_attempts {
            options.max_attempts = u8::try_from(max_attempts).unwrap_or(u8::MAX);
        }
        if let Some(fields) = &self.fields {
            options.form = FormSpec::from_names(fields.iter().map(String::as_str))?;
        }
        if let Some(metadata) = &self.metadata {
            options.metadata = Metadata::new(metadata.iter().cloned())?;
        }
        options.validate()?;
        Ok(options)
    }
}

/// Shows the numbers and field names, and only the number of metadata entries: metadata is
/// the caller's and is checked (for card numbers among others) only by
/// [`SessionOverrides::apply`].
impl fmt::Debug for SessionOverrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionOverrides")
            .field("ttl_seconds", &self.ttl_seconds)
            .field("pin_length", &self.pin_length)
            .field("max_attempts", &self.max_attempts)
            .field("fields", &self.fields)
            .field("metadata_entries", &self.metadata.as_ref().map(Vec::len))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn overrides_replace_only_what_they_give() {
        let base = SessionOptions::default();
        assert_eq!(SessionOverrides::new().apply(&base).unwrap(), base);
        let custom = SessionOverrides {
            ttl_seconds: Some(60),
            pin_length: Some(8),
            fields: Some(vec!["card_number".into(), "order_ref".into()]),
            metadata: Some(vec![("conversation".into(), "c-1".into())]),
            ..SessionOverrides::default()
        }
        .apply(&base)
        .unwrap();
        assert_eq!(custom.ttl, Duration::from_secs(60));
        assert_eq!(custom.pin_length, 8);
        assert_eq!(custom.max_attempts, base.max_attempts);
        assert_eq!(custom.form.fields().len(), 2);
        assert_eq!(custom.metadata.get("conversation"), Some("c-1"));
    }

    #[test]
    fn out_of_range_is_refused_not_truncated() {
        let base = SessionOptions::default();
        for bad in [
            SessionOverrides {
                ttl_seconds: Some(0),
                ..SessionOverrides::default()
            },
            SessionOverrides {
                ttl_seconds: Some(86_401),
                ..SessionOverrides::default()
            },
            SessionOverrides {
                pin_length: Some(260),
                ..SessionOverrides::default()
            },
            SessionOverrides {
                pin_length: Some(3),
                ..SessionOverrides::default()
            },
            SessionOverrides {
                max_attempts: Some(256 + 5),
                ..SessionOverrides::default()
            },
            SessionOverrides {
                fields: Some(vec![]),
                ..SessionOverrides::default()
            },
        ] {
            let err = bad.apply(&base).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn debug_does_not_show_metadata_values() {
        let overrides = SessionOverrides {
            metadata: Some(vec![("note".into(), "4242424242424242".into())]),
            ..SessionOverrides::default()
        };
        assert!(!format!("{overrides:?}").contains("4242"));
    }
}
