//! The signature of a delivery.
//!
//! `Pci-Vault-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is the lowercase hex of
//! HMAC-SHA256, keyed with the tenant's secret (its bytes as configured), over the ASCII
//! decimal timestamp, a `.`, and the raw body bytes: `HMAC(secret, "<t>.<body>")`. The
//! timestamp is the time of the attempt, so a receiver rejects any delivery whose `t` is
//! further than its tolerance from its own clock (a replay), and any whose HMAC does not
//! match (an altered body or timestamp), comparing in constant time. Receivers should
//! accept the header when any `v1` entry matches and ignore other keys, so more entries or
//! schemes can be added later.

use std::fmt::Write as _;

use hmac::{Hmac, KeyInit, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use super::config::WebhookSecret;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "pci-vault-signature";
/// The header carrying the event id, the same on every attempt of an event.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The tolerance receivers are advised to use, in seconds.
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;

/// `HMAC-SHA256(secret, "<timestamp>.<body>")`.
#[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
fn mac(secret: &WebhookSecret, timestamp: u64, body: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The value of [`SIGNATURE_HEADER`] for a delivery of `body` at `timestamp`.
pub fn signature_header(secret: &WebhookSecret, timestamp: u64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp},v1=");
    for byte in mac(secret, timestamp, body) {
        // Writing to a String cannot fail.
        let _ = write!(header, "{byte:02x}");
    }
    header
}

/// Why a delivery failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No `t=` or no `v1=`, or a malformed one.
    #[error("the signature header is malformed")]
    Malformed,
    /// `t` is outside the tolerance: a replay, or a clock far off.
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    /// No `v1` matches: the body or timestamp was altered, or the secret differs.
    #[error("the signature does not match")]
    Mismatch,
}

/// Verifies a delivery as a receiver does: the header parses, `t` lies within
/// `tolerance_seconds` of `now` (unix seconds), and a `v1` entry equals the HMAC of
/// `"<t>.<body>"` (compared in constant time).
///
/// # Errors
/// [`VerifyError`].
pub fn verify(
    secret: &WebhookSecret,
    header: &str,
    body: &[u8],
    now: u64,
    tolerance_seconds: u64,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => {
                timestamp = Some(value.parse::<u64>().map_err(|_| VerifyError::Malformed)?);
            }
            Some(("v1", value)) => candidates.push(decode_hex(value)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if candidates.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if now.abs_diff(timestamp) > tolerance_seconds {
        return Err(VerifyError::Stale);
    }
    let expected = mac(secret, timestamp, body);
    let matched = candidates
        .iter()
        .fold(0u8, |any, c| any | c.ct_eq(&expected).unwrap_u8());
    if matched == 1 {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

fn decode_hex(text: &str) -> Result<[u8; 32], VerifyError> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return Err(VerifyError::Malformed);
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(VerifyError::Malformed),
    };
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        if let [high, low] = pair {
            *byte = (nibble(*high)? << 4) | nibble(*low)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> WebhookSecret {
        WebhookSecret::new("whsec_test_0123456789abcdef0123456789").unwrap()
    }

    /// A fixed vector, computed independently with
    /// `printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'whsec_test_0123456789abcdef0123456789'`.
    #[test]
    fn known_vector() {
        assert_eq!(
            signature_header(&secret(), 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=a5b260f2f0d02b0a224db206e8f83426423fcf42f4bd4547033603d9098ddd2c"
        );
    }

    #[test]
    fn verifies_and_rejects() {
        let body = br#"{"id":"evt_1","kind":"submitted"}"#;
        let header = signature_header(&secret(), 1_700_000_000, body);
        assert_eq!(verify(&secret(), &header, body, 1_700_000_000, 300), Ok(()));
        assert_eq!(verify(&secret(), &header, body, 1_700_000_300, 300), Ok(()));
        assert_eq!(
            verify(&secret(), &header, body, 1_700_000_301, 300),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(&secret(), &header, body, 1_699_999_699, 300),
            Err(VerifyError::Stale)
        );
        let altered = br#"{"id":"evt_1","kind":"revealed"}"#;
        assert_eq!(
            verify(&secret(), &header, altered, 1_700_000_000, 300),
            Err(VerifyError::Mismatch)
        );
        // The timestamp is signed: moving it forward breaks the signature.
        let moved = header.replacen("t=1700000000", "t=1700000100", 1);
        assert_eq!(
            verify(&secret(), &moved, body, 1_700_000_100, 300),
            Err(VerifyError::Mismatch)
        );
        let other = WebhookSecret::new("whsec_other_0123456789abcdef012345678").unwrap();
        assert_eq!(
            verify(&other, &header, body, 1_700_000_000, 300),
            Err(VerifyError::Mismatch)
        );
        // Unknown entries are ignored; any matching v1 is enough.
        let rotated = format!("{header},v0=zz,v1={}", "0".repeat(64));
        assert_eq!(
            verify(&secret(), &rotated, body, 1_700_000_000, 300),
            Ok(())
        );
        for bad in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            &format!("t=1,v1={}", "g".repeat(64)),
        ] {
            assert_eq!(
                verify(&secret(), bad, body, 1, 300),
                Err(VerifyError::Malformed),
                "{bad}"
            );
        }
    }
}
