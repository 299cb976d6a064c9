//! Scanners the log and redaction tests use to look for a secret in text.

/// Every form in which `secret` could show up in text: as is, hex (both cases), base64
/// (standard and URL-safe, padded or not), and Rust's `Debug` of its bytes (`[1, 2, 3]`).
pub fn encodings(secret: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let mut forms = vec![
        hex.clone(),
        hex.to_uppercase(),
        STANDARD.encode(secret),
        STANDARD_NO_PAD.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
        format!("{secret:?}").trim_matches(['[', ']']).to_owned(),
    ];
    if let Ok(text) = std::str::from_utf8(secret) {
        forms.push(text.to_owned());
    }
    forms
}

/// Whether `needle` occurs in `text` as a token of its own: not next to a letter or digit.
/// For short secrets (a 4-digit security code) that could otherwise match inside a hex
/// digest or a longer number.
pub fn contains_token(text: &str, needle: &str) -> bool {
    text.match_indices(needle).any(|(at, _)| {
        let before = text.get(..at).and_then(|t| t.chars().next_back());
        let after = text.get(at + needle.len()..).and_then(|t| t.chars().next());
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Whether `digits` occurs in `text` as a whole number: no digit on either side, and not
/// the fraction of a timestamp (no `.` before it).
pub fn contains_number(text: &str, digits: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices(digits).any(|(at, _)| {
        let before = at.checked_sub(1).and_then(|i| bytes.get(i).copied());
        let after = bytes.get(at + digits.len()).copied();
        !before.is_some_and(|b| b.is_ascii_digit() || b == b'.')
            && !after.is_some_and(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_numbers_stand_alone() {
        assert!(contains_token("cvc=737;", "737"));
        assert!(!contains_token("a737b", "737"));
        assert!(contains_number("pin 123456.", "123456"));
        assert!(!contains_number("at 10:00:00.123456Z", "123456"));
        assert!(!contains_number("91234567", "123456"));
    }

    #[test]
    fn encodings_cover_hex_and_base64() {
        let forms = encodings(b"\x01\xab");
        for form in ["01ab", "01AB", "Aas=", "Aas", "1, 171"] {
            assert!(
                forms.iter().any(|f| f == form),
                "{form} missing from {forms:?}"
            );
        }
    }
}
