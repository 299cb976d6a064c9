//! Parsing what agents and customers type or send: session ids, PINs, tenants, key ids and
//! metadata. Nothing panics; what is accepted is canonical and round-trips; what is refused
//! is `INVALID_ARGUMENT` with a fixed message that never repeats the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pci_vault::{ErrorCode, KeyId, Metadata, Pin, SessionId, Tenant};

const ID_MESSAGE: &str = "invalid argument: a session id is 43 characters of base64url";
const PIN_MESSAGE: &str = "invalid argument: a PIN is 4-12 digits 0-9";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    session_id(&text);
    pin(&text);
    tenant_and_key_id(&text);
    metadata(&text);
});

fn session_id(text: &str) {
    let parsed = SessionId::parse(text);
    let via_from_str = text.parse::<SessionId>();
    match parsed {
        Ok(id) => {
            assert_eq!(via_from_str.ok().as_ref(), Some(&id));
            assert_eq!(text.len(), SessionId::TEXT_LEN);
            assert_eq!(id.to_string(), text, "accepted a non-canonical id");
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            let debug = format!("{id:?}");
            assert!(!debug.contains(text), "Debug shows the whole id");
        }
        Err(e) => {
            assert!(via_from_str.is_err());
            assert_eq!(e.code(), ErrorCode::InvalidArgument);
            assert_eq!(e.to_string(), ID_MESSAGE);
        }
    }
}

fn pin(text: &str) {
    match Pin::parse(text) {
        Ok(pin) => {
            let digits = pin.expose_secret();
            assert_eq!(digits, text.trim());
            assert!((4..=12).contains(&digits.len()));
            assert!(digits.bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(format!("{pin:?}"), "Pin([REDACTED])");
            assert_eq!(Pin::parse(digits).ok().as_ref(), Some(&pin));
        }
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::InvalidArgument);
            assert_eq!(e.to_string(), PIN_MESSAGE);
        }
    }
}

fn tenant_and_key_id(text: &str) {
    match Tenant::new(text) {
        Ok(t) => {
            assert_eq!(t.as_str(), text);
            assert_eq!(t.to_string(), text);
            assert!((1..=Tenant::MAX_LEN).contains(&text.len()));
        }
        Err(e) => assert_eq!(e.code(), ErrorCode::InvalidArgument),
    }
    match KeyId::new(text) {
        Ok(id) => {
            assert_eq!(id.as_str(), text);
            assert!((1..=KeyId::MAX_LEN).contains(&text.len()));
            assert!(!text.chars().any(char::is_control));
        }
        Err(e) => assert_eq!(e.code(), ErrorCode::InvalidArgument),
    }
}

/// `key=value` lines become metadata entries.
fn metadata(text: &str) {
    let entries: Vec<(&str, &str)> = text
        .split('\n')
        .map(|line| line.split_once('=').unwrap_or((line, "")))
        .collect();
    match Metadata::new(entries.iter().copied()) {
        Ok(m) => {
            assert!(m.len() <= Metadata::MAX_ENTRIES);
            for (k, v) in &entries {
                assert_eq!(m.get(k), Some(*v));
            }
            for (k, v) in m.iter() {
                assert!((1..=Metadata::MAX_KEY_LEN).contains(&k.len()));
                assert!(v.len() <= Metadata::MAX_VALUE_LEN);
                assert!(!k.chars().chain(v.chars()).any(char::is_control));
                assert!(!pci_vault::card::contains_card_number(v));
            }
        }
        Err(e) => assert_eq!(e.code(), ErrorCode::InvalidArgument),
    }
}
