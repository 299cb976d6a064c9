//! Sessions: their ids, states, options and what the agent may learn about them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::card::contains_card_number;
use crate::crypto::fill_random;
use crate::error::{Error, Result};
use crate::form::{CardSummary, FormSpec};

/// A session id: 256 bits from the OS CSPRNG, written as 43 characters of unpadded
/// base64url. It is the customer's only credential for the form link, so `Debug` shows only
/// its first characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 32]);

impl SessionId {
    /// Length of the text form.
    pub const TEXT_LEN: usize = 43;

    /// A fresh random id.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes);
        SessionId(bytes)
    }

    /// Parses the text form.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `text` is exactly 43 characters of canonical
    /// unpadded base64url. The message never repeats the input.
    pub fn parse(text: &str) -> Result<Self> {
        const MSG: &str = "a session id is 43 characters of base64url";
        if text.len() != Self::TEXT_LEN {
            return Err(Error::InvalidArgument(MSG));
        }
        let mut bytes = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
            Ok(32) => Ok(SessionId(bytes)),
            _ => Err(Error::InvalidArgument(MSG)),
        }
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The raw 32 bytes, the form the crypto layer binds.
impl AsRef<[u8; 32]> for SessionId {
    fn as_ref(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_string();
        write!(f, "SessionId({}…)", text.get(..6).unwrap_or_default())
    }
}

impl std::str::FromStr for SessionId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        SessionId::parse(s)
    }
}

/// Where a session is in its life (`docs/CONTRACTS.md`, "Session states and transitions"):
/// `Pending → Submitted → Revealed`; `Pending | Submitted → Cancelled`;
/// `Submitted → Locked` after too many wrong PINs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Created; waiting for the customer's form.
    Pending,
    /// The customer submitted the form; waiting for the agent's PIN.
    Submitted,
    /// Revealed once; the data is destroyed.
    Revealed,
    /// Cancelled by the agent; the data is destroyed.
    Cancelled,
    /// Too many wrong PINs; the data is destroyed.
    Locked,
}

impl SessionState {
    /// The wire spelling: `pending`, `submitted`, `revealed`, `cancelled`, `locked`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Pending => "pending",
            SessionState::Submitted => "submitted",
            SessionState::Revealed => "revealed",
            SessionState::Cancelled => "cancelled",
            SessionState::Locked => "locked",
        }
    }

    /// Whether the session has ended and keeps only a tombstone without secret data.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SessionState::Revealed | SessionState::Cancelled | SessionState::Locked
        )
    }

    pub(crate) fn to_byte(self) -> u8 {
        match self {
            SessionState::Pending => 1,
            SessionState::Submitted => 2,
            SessionState::Revealed => 3,
            SessionState::Cancelled => 4,
            SessionState::Locked => 5,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => SessionState::Pending,
            2 => SessionState::Submitted,
            3 => SessionState::Revealed,
            4 => SessionState::Cancelled,
            5 => SessionState::Locked,
            _ => return None,
        })
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Free-form, non-secret labels the agent attaches to a session (a conversation id, an
/// order number): at most 16 entries, keys of 1–64 bytes, values of at most 256 bytes, no
/// control characters. Metadata is stored authenticated but not encrypted, so a value that
/// contains a card number is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata(BTreeMap<String, String>);

impl Metadata {
    /// Most entries.
    pub const MAX_ENTRIES: usize = 16;
    /// Longest key, in bytes.
    pub const MAX_KEY_LEN: usize = 64;
    /// Longest value, in bytes.
    pub const MAX_VALUE_LEN: usize = 256;

    /// Checks and takes metadata entries.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a limit is exceeded, a key is empty, a key or value
    /// has a control character, or a value contains a card number.
    pub fn new<K, V>(entries: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut map = BTreeMap::new();
        for (k, v) in entries {
            let (k, v) = (k.into(), v.into());
            if k.is_empty() || k.len() > Self::MAX_KEY_LEN {
                return Err(Error::InvalidArgument("a metadata key is 1-64 bytes"));
            }
            if v.len() > Self::MAX_VALUE_LEN {
                return Err(Error::InvalidArgument(
                    "a metadata value is at most 256 bytes",
                ));
            }
            if k.chars().chain(v.chars()).any(char::is_control) {
                return Err(Error::InvalidArgument(
                    "metadata must not contain control characters",
                ));
            }
            if contains_card_number(&k) || contains_card_number(&v) {
                return Err(Error::InvalidArgument(
                    "metadata must not contain a card number",
                ));
            }
            if map.insert(k, v).is_some() {
                return Err(Error::InvalidArgument("a metadata key appears twice"));
            }
            if map.len() > Self::MAX_ENTRIES {
                return Err(Error::InvalidArgument("metadata has at most 16 entries"));
            }
        }
        Ok(Metadata(map))
    }

    /// The entries, ordered by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What `create_session` is asked for. Every field has a default and a range
/// (`docs/CONTRACTS.md`, "Defaults and limits"), checked when a session is created.
///
/// Start from [`SessionOptions::default`] and change what differs; new options may be added,
/// so the struct cannot be written as a literal outside this crate:
///
/// ```
/// use std::time::Duration;
/// use pci_vault::{Metadata, SessionOptions};
///
/// let options = SessionOptions::default()
///     .with_ttl(Duration::from_secs(300))
///     .with_pin_length(8)
///     .with_metadata(Metadata::new([("conversation", "c-1")])?);
/// assert!(options.validate().is_ok());
/// # Ok::<(), pci_vault::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionOptions {
    /// How long the link and any data live: 1 s – 24 h, default 15 min. Whole seconds.
    pub ttl: Duration,
    /// Digits in the PIN: 4–12, default 6.
    pub pin_length: u8,
    /// Wrong PINs allowed before the session locks: 1–10, default 5 (PCI DSS 8.3.4).
    pub max_attempts: u8,
    /// The fields the customer's form asks for; default the four card fields.
    pub form: FormSpec,
    /// Non-secret labels for the agent.
    pub metadata: Metadata,
}

impl SessionOptions {
    /// Shortest TTL.
    pub const MIN_TTL: Duration = Duration::from_secs(1);
    /// Longest TTL.
    pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
    /// Default TTL.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
    /// Fewest PIN digits.
    pub const MIN_PIN_LENGTH: u8 = 4;
    /// Most PIN digits.
    pub const MAX_PIN_LENGTH: u8 = 12;
    /// Default PIN digits.
    pub const DEFAULT_PIN_LENGTH: u8 = 6;
    /// Fewest wrong PINs allowed.
    pub const MIN_ATTEMPTS: u8 = 1;
    /// Most wrong PINs allowed.
    pub const MAX_ATTEMPTS: u8 = 10;
    /// Default wrong PINs allowed.
    pub const DEFAULT_ATTEMPTS: u8 = 5;

    /// These options with `ttl` as the time to live (checked at creation).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// These options with a PIN of `pin_length` digits (checked at creation).
    #[must_use]
    pub fn with_pin_length(mut self, pin_length: u8) -> Self {
        self.pin_length = pin_length;
        self
    }

    /// These options allowing `max_attempts` wrong PINs (checked at creation).
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u8) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// These options asking the customer for the fields of `form`.
    #[must_use]
    pub fn with_form(mut self, form: FormSpec) -> Self {
        self.form = form;
        self
    }

    /// These options carrying `metadata` for the agent.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Checks every option against its range.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the option that is out of range.
    pub fn validate(&self) -> Result<()> {
        if self.ttl < Self::MIN_TTL || self.ttl > Self::MAX_TTL || self.ttl.subsec_nanos() != 0 {
            return Err(Error::InvalidArgument(
                "ttl must be a whole number of seconds from 1 s to 24 h",
            ));
        }
        if !(Self::MIN_PIN_LENGTH..=Self::MAX_PIN_LENGTH).contains(&self.pin_length) {
            return Err(Error::InvalidArgument("pin_length must be 4-12"));
        }
        if !(Self::MIN_ATTEMPTS..=Self::MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(Error::InvalidArgument("max_attempts must be 1-10"));
        }
        Ok(())
    }
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            ttl: Self::DEFAULT_TTL,
            pin_length: Self::DEFAULT_PIN_LENGTH,
            max_attempts: Self::DEFAULT_ATTEMPTS,
            form: FormSpec::default(),
            metadata: Metadata::default(),
        }
    }
}

/// What `create_session` returns: the id for the link and when the link expires.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ticket {
    /// The new session's id.
    pub id: SessionId,
    /// When the session and any data in it expire.
    pub expires_at: SystemTime,
}

/// What the agent may learn about a session: never secret data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStatus {
    /// The current state.
    pub state: SessionState,
    /// When the session was created.
    pub created_at: SystemTime,
    /// When the customer submitted the form, if they did.
    pub submitted_at: Option<SystemTime>,
    /// When the session expires.
    pub expires_at: SystemTime,
    /// Wrong PINs still allowed (0 once locked).
    pub attempts_left: u8,
    /// The labels given at creation.
    pub metadata: Metadata,
    /// The fields the form asks for.
    pub form: FormSpec,
    /// Once submitted (and until the session ends): the card's brand and masked number
    /// (first 6 and last 4 digits), so the agent can confirm the card with the customer
    /// before revealing; `None` before submit, after the session ends, and for a form
    /// without a card number. Nothing else of the card.
    pub card: Option<CardSummary>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_43_chars() {
        let id = SessionId::generate();
        let text = id.to_string();
        assert_eq!(text.len(), 43);
        assert_eq!(SessionId::parse(&text).unwrap(), id);
        assert_ne!(SessionId::generate(), id);
        let debug = format!("{id:?}");
        assert!(
            debug.starts_with("SessionId(") && !debug.contains(&text),
            "{debug}"
        );
    }

    #[test]
    fn malformed_ids_are_invalid_arguments() {
        let good = SessionId::generate().to_string();
        let mut cases = vec![
            String::new(),
            good[..42].to_string(),
            format!("{good}A"),
            format!("{}=", &good[..42]),
            format!("{}+", &good[..42]),
            format!("{}\n", &good[..42]),
            format!("{}\0", &good[..42]),
            format!("{{{}", &good[..42]),
            "*".repeat(43),
        ];
        // A non-canonical final character (trailing bits set) is refused too.
        let mut bytes = good.into_bytes();
        bytes[42] = if bytes[42] == b'B' { b'C' } else { b'B' };
        cases.push(String::from_utf8(bytes).unwrap());
        for case in cases {
            let parsed = SessionId::parse(&case);
            if let Ok(id) = &parsed {
                assert_eq!(id.to_string(), case, "accepted a non-canonical id");
            } else {
                assert_eq!(
                    parsed.unwrap_err().code(),
                    crate::ErrorCode::InvalidArgument
                );
            }
        }
    }

    #[test]
    fn options_ranges() {
        assert!(SessionOptions::default().validate().is_ok());
        let bad = [
            SessionOptions {
                ttl: Duration::ZERO,
                ..Default::default()
            },
            SessionOptions {
                ttl: Duration::from_millis(1500),
                ..Default::default()
            },
            SessionOptions {
                ttl: Duration::from_secs(86_401),
                ..Default::default()
            },
            SessionOptions {
                pin_length: 3,
                ..Default::default()
            },
            SessionOptions {
                pin_length: 13,
                ..Default::default()
            },
            SessionOptions {
                max_attempts: 0,
                ..Default::default()
            },
            SessionOptions {
                max_attempts: 11,
                ..Default::default()
            },
        ];
        for opts in bad {
            assert_eq!(
                opts.validate().unwrap_err().code(),
                crate::ErrorCode::InvalidArgument
            );
        }
    }

    #[test]
    fn metadata_limits_and_card_numbers() {
        assert!(Metadata::new([("conversation", "c-1")]).is_ok());
        assert!(Metadata::new([("", "x")]).is_err());
        assert!(Metadata::new([("k", "x".repeat(257))]).is_err());
        assert!(Metadata::new([("k\n", "x")]).is_err());
        assert!(Metadata::new([("note", "card 4242 4242 4242 4242")]).is_err());
        assert!(Metadata::new((0..17).map(|i| (format!("k{i}"), "v"))).is_err());
        assert!(Metadata::new((0..16).map(|i| (format!("k{i}"), "v"))).is_ok());
    }
}
