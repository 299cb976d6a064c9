//! Payment-card field rules: card number (PAN), expiry, security code, cardholder name.
//!
//! Each check returns the normalized value or a [`FieldReason`]; none of them ever puts the
//! value into an error. The rules are summarized in `docs/CONTRACTS.md` ("Defaults and
//! limits").

use std::fmt;
use std::time::SystemTime;

use zeroize::Zeroizing;

use crate::error::FieldReason;

/// A card brand, detected from the issuer identification number (the leading digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Brand {
    /// Visa: `4`; 13, 16, 18 or 19 digits.
    Visa,
    /// Mastercard: `51`–`55` and `2221`–`2720`; 16 digits.
    Mastercard,
    /// American Express: `34`, `37`; 15 digits; 4-digit security code.
    Amex,
    /// Discover: `6011`, `644`–`649`, `65`; 16–19 digits.
    Discover,
    /// JCB: `3528`–`3589`; 16–19 digits.
    Jcb,
    /// Diners Club: `300`–`305`, `3095`, `36`, `38`, `39`; 14–19 digits.
    Diners,
    /// UnionPay: `62`, `81`; 16–19 digits. Luhn is required (see [`validate_pan`]).
    UnionPay,
    /// Maestro: `50`, `56`–`58`, `639`, `67`; 12–19 digits.
    Maestro,
}

impl Brand {
    /// The wire spelling: `visa`, `mastercard`, `amex`, `discover`, `jcb`, `diners`,
    /// `unionpay`, `maestro`.
    pub fn as_str(self) -> &'static str {
        match self {
            Brand::Visa => "visa",
            Brand::Mastercard => "mastercard",
            Brand::Amex => "amex",
            Brand::Discover => "discover",
            Brand::Jcb => "jcb",
            Brand::Diners => "diners",
            Brand::UnionPay => "unionpay",
            Brand::Maestro => "maestro",
        }
    }

    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Brand::Visa => 1,
            Brand::Mastercard => 2,
            Brand::Amex => 3,
            Brand::Discover => 4,
            Brand::Jcb => 5,
            Brand::Diners => 6,
            Brand::UnionPay => 7,
            Brand::Maestro => 8,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Brand> {
        Some(match b {
            1 => Brand::Visa,
            2 => Brand::Mastercard,
            3 => Brand::Amex,
            4 => Brand::Discover,
            5 => Brand::Jcb,
            6 => Brand::Diners,
            7 => Brand::UnionPay,
            8 => Brand::Maestro,
            _ => return None,
        })
    }

    /// Digits in this brand's security code.
    pub fn cvc_length(self) -> usize {
        if self == Brand::Amex { 4 } else { 3 }
    }

    fn accepts_length(self, len: usize) -> bool {
        match self {
            Brand::Visa => matches!(len, 13 | 16 | 18 | 19),
            Brand::Mastercard => len == 16,
            Brand::Amex => len == 15,
            Brand::Diners => (14..=19).contains(&len),
            Brand::Discover | Brand::Jcb | Brand::UnionPay => (16..=19).contains(&len),
            Brand::Maestro => (12..=19).contains(&len),
        }
    }

    /// Detects the brand from the leading digits of an all-ASCII-digit string.
    pub fn detect(digits: &str) -> Option<Brand> {
        let prefix = |n: usize| -> u32 {
            digits
                .get(..n)
                .and_then(|p| p.parse().ok())
                .unwrap_or(u32::MAX)
        };
        let (p1, p2, p3, p4) = (prefix(1), prefix(2), prefix(3), prefix(4));
        Some(match () {
            _ if p1 == 4 => Brand::Visa,
            _ if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) => Brand::Mastercard,
            _ if p2 == 34 || p2 == 37 => Brand::Amex,
            _ if (3528..=3589).contains(&p4) => Brand::Jcb,
            _ if (300..=305).contains(&p3) || p4 == 3095 || matches!(p2, 36 | 38 | 39) => {
                Brand::Diners
            }
            _ if p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 => Brand::Discover,
            _ if p2 == 62 || p2 == 81 => Brand::UnionPay,
            _ if p2 == 50 || (56..=58).contains(&p2) || p3 == 639 || p2 == 67 => Brand::Maestro,
            _ => return None,
        })
    }
}

impl fmt::Display for Brand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a card number and returns its digits and brand.
///
/// Spaces and dashes are stripped; what remains must be 12–19 ASCII digits (full-width or
/// Arabic-Indic digits are refused as `characters`), of a length the brand issues, and pass
/// the Luhn check. Policy for UnionPay: Luhn is required like every other brand; the rare
/// legacy UnionPay numbers that fail it are refused as `luhn`.
pub fn validate_pan(input: &str) -> Result<(Zeroizing<String>, Brand), FieldReason> {
    let mut digits = Zeroizing::new(String::with_capacity(19));
    for c in input.trim().chars() {
        match c {
            '0'..='9' => {
                if digits.len() == 19 {
                    return Err(FieldReason::Length);
                }
                digits.push(c);
            }
            ' ' | '-' => {}
            _ => return Err(FieldReason::Characters),
        }
    }
    if digits.is_empty() {
        return Err(FieldReason::Required);
    }
    if !(12..=19).contains(&digits.len()) {
        return Err(FieldReason::Length);
    }
    let brand = Brand::detect(&digits).ok_or(FieldReason::UnknownBrand)?;
    if !brand.accepts_length(digits.len()) {
        return Err(FieldReason::Length);
    }
    if !luhn_valid(&digits) {
        return Err(FieldReason::Luhn);
    }
    Ok((digits, brand))
}

/// The Luhn (mod 10) check over ASCII digits; false for anything else.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// The masked form of a card number: first 6 and last 4 digits, the rest `*`
/// (`424242******4242`). Numbers shorter than 13 digits keep only the last 4.
pub fn mask_pan(digits: &str) -> String {
    let len = digits.chars().count();
    let head = if len >= 13 { 6 } else { 0 };
    digits
        .chars()
        .enumerate()
        .map(|(i, c)| if i < head || i + 4 >= len { c } else { '*' })
        .collect()
}

/// The value of a decimal digit of any script whose digits form a block of ten starting at a
/// code point that ends in hex 0 — ASCII, full-width, Arabic-Indic, Extended Arabic-Indic,
/// Devanagari, Thai and most others.
fn decimal_digit(c: char) -> Option<u8> {
    if c.is_ascii_digit() {
        return Some(c as u8 - b'0');
    }
    let offset = u32::from(c) & 0xF;
    let zero = char::from_u32(u32::from(c) - offset)?;
    (offset <= 9 && c.is_numeric() && zero.is_numeric()).then_some(offset as u8)
}

/// Whether `text` contains a run of 12–19 digits (spaces and dashes allowed between them)
/// that passes the Luhn check and belongs to a known brand: a card number where none belongs.
/// Digits of other scripts (full-width, Arabic-Indic, ...) count as their values, so a card
/// number cannot slip through written in them.
pub fn contains_card_number(text: &str) -> bool {
    let mut run = Zeroizing::new(String::new());
    let check = |run: &str| {
        (12..=19).contains(&run.len()) && luhn_valid(run) && Brand::detect(run).is_some()
    };
    for c in text.chars() {
        match (c, decimal_digit(c)) {
            (_, Some(d)) => run.push(char::from(b'0' + d)),
            (' ' | '-', None) => {}
            _ => {
                if check(&run) {
                    return true;
                }
                run.clear();
            }
        }
        if run.len() > 19 {
            // A long digit string: look at every 12–19 digit window ending here.
            if (12..=19).any(|n| run.get(run.len() - n..).is_some_and(check)) {
                return true;
            }
        }
    }
    check(&run)
}

/// A checked expiry: month 1–12, four-digit year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// 1–12.
    pub month: u8,
    /// e.g. 2030.
    pub year: u16,
}

impl Expiry {
    /// The normalized text form, `MM/YY`.
    pub fn to_mm_yy(self) -> String {
        format!("{:02}/{:02}", self.month, self.year % 100)
    }
}

/// Checks an expiry written `MM/YY` or `MM/YYYY` (spaces around the slash allowed).
///
/// A card is valid through the end of its month (UTC), so the current month passes and the
/// previous one is `expired`; more than 20 years ahead is `too_far`.
pub fn validate_expiry(input: &str, now: SystemTime) -> Result<Expiry, FieldReason> {
    let text = input.trim();
    if text.is_empty() {
        return Err(FieldReason::Required);
    }
    let (mm, yy) = text.split_once('/').ok_or(FieldReason::Format)?;
    let (mm, yy) = (mm.trim(), yy.trim());
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if mm.len() != 2 || !all_digits(mm) || !matches!(yy.len(), 2 | 4) || !all_digits(yy) {
        return Err(FieldReason::Format);
    }
    let month: u8 = mm.parse().map_err(|_| FieldReason::Format)?;
    let year: u16 = yy.parse().map_err(|_| FieldReason::Format)?;
    let year = if yy.len() == 2 { 2000 + year } else { year };
    if !(1..=12).contains(&month) {
        return Err(FieldReason::Month);
    }
    let today = time::OffsetDateTime::from(now);
    let current = today.year() * 12 + i32::from(u8::from(today.month())) - 1;
    let given = i32::from(year) * 12 + i32::from(month) - 1;
    if given < current {
        return Err(FieldReason::Expired);
    }
    if given > current + 20 * 12 {
        return Err(FieldReason::TooFar);
    }
    Ok(Expiry { month, year })
}

/// Checks a security code: ASCII digits, 4 for Amex and 3 for every other brand; 3 or 4
/// when the brand is unknown (the form has no valid card number).
pub fn validate_cvc(input: &str, brand: Option<Brand>) -> Result<Zeroizing<String>, FieldReason> {
    let text = input.trim();
    if text.is_empty() {
        return Err(FieldReason::Required);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldReason::Characters);
    }
    let ok = match brand {
        Some(b) => text.len() == b.cvc_length(),
        None => matches!(text.len(), 3 | 4),
    };
    if ok {
        Ok(Zeroizing::new(text.to_owned()))
    } else {
        Err(FieldReason::CvcLength)
    }
}

/// Most characters in a cardholder name.
pub const MAX_NAME_CHARS: usize = 100;

/// Checks a cardholder name: 1–100 characters of letters (any script), combining marks,
/// spaces and `' ’ - . ,`. Digits are refused, so a card number typed into the name field
/// never gets stored there; so are control characters, bidirectional overrides and markup.
/// Inner runs of white space collapse to one space.
pub fn validate_name(input: &str) -> Result<Zeroizing<String>, FieldReason> {
    let mut out = Zeroizing::new(String::with_capacity(input.len().min(4 * MAX_NAME_CHARS)));
    let mut chars = 0usize;
    for word in input.split([' ', '\u{a0}']) {
        if word.is_empty() {
            continue;
        }
        for c in word.chars() {
            let allowed = c.is_alphabetic()
                || is_combining_mark(c)
                || matches!(c, '\'' | '\u{2019}' | '-' | '.' | ',');
            if !allowed {
                return Err(FieldReason::Characters);
            }
        }
        if !out.is_empty() {
            out.push(' ');
            chars += 1;
        }
        out.push_str(word);
        chars += word.chars().count();
        if chars > MAX_NAME_CHARS {
            return Err(FieldReason::TooLong);
        }
    }
    if out.is_empty() {
        return Err(FieldReason::Required);
    }
    Ok(out)
}

/// Combining diacritical marks (as in decomposed "é").
fn is_combining_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// 2026-11-25T00:00:00Z
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_564_800)
    }

    /// The published test cards of `shared/data/test-cards.json`, copied into the crate.
    fn test_cards() -> serde_json::Value {
        serde_json::from_str(include_str!("../tests/data/test-cards.json")).unwrap()
    }

    #[test]
    fn every_published_test_card_validates_with_its_brand() {
        let cards = test_cards();
        let valid = cards["valid"].as_array().unwrap();
        assert!(valid.len() >= 15);
        for card in valid {
            let number = card["number"].as_str().unwrap();
            let (digits, got) = validate_pan(number).unwrap_or_else(|r| panic!("{number}: {r}"));
            assert_eq!(digits.as_str(), number);
            assert_eq!(got.as_str(), card["brand"].as_str().unwrap(), "{number}");
            assert_eq!(
                got.cvc_length() as u64,
                card["cvc_length"].as_u64().unwrap(),
                "{number}"
            );
            assert_eq!(
                digits.len() as u64,
                card["length"].as_u64().unwrap(),
                "{number}"
            );
        }
    }

    #[test]
    fn every_published_invalid_card_fails_for_its_reason() {
        let cards = test_cards();
        let invalid = cards["invalid"].as_array().unwrap();
        assert!(invalid.len() >= 7);
        for card in invalid {
            let (number, why) = (
                card["number"].as_str().unwrap(),
                card["why"].as_str().unwrap(),
            );
            let reason = validate_pan(number).unwrap_err();
            let expected = match why.split(':').next().unwrap() {
                "luhn" => FieldReason::Luhn,
                "length" => FieldReason::Length,
                "characters" | "full-width digits" | "arabic-indic digits" => {
                    FieldReason::Characters
                }
                "empty" => FieldReason::Required,
                other => panic!("unknown reason {other}"),
            };
            assert_eq!(reason, expected, "{number:?}");
        }
    }

    #[test]
    fn pan_normalization_and_brand_ranges() {
        assert_eq!(
            validate_pan(" 4242-4242 4242 4242 ").unwrap().0.as_str(),
            "4242424242424242"
        );
        assert_eq!(Brand::detect("2221000000000009"), Some(Brand::Mastercard));
        assert_eq!(Brand::detect("2720990000000007"), Some(Brand::Mastercard));
        assert_eq!(Brand::detect("2721000000000000"), None);
        assert_eq!(Brand::detect("6759649826438453"), Some(Brand::Maestro));
        assert_eq!(Brand::detect("9999999999999995"), None);
        assert_eq!(
            validate_pan("9999999999999995").unwrap_err(),
            FieldReason::UnknownBrand
        );
        // Amex must be 15 digits.
        assert_eq!(
            validate_pan("3782822463100050").unwrap_err(),
            FieldReason::Length
        );
        assert_eq!(
            validate_pan(&"4".repeat(40)).unwrap_err(),
            FieldReason::Length
        );
    }

    #[test]
    fn masking_shows_first_six_and_last_four() {
        assert_eq!(mask_pan("4242424242424242"), "424242******4242");
        assert_eq!(mask_pan("378282246310005"), "378282*****0005");
        assert_eq!(mask_pan("123456789012"), "********9012");
    }

    #[test]
    fn expiry_rules() {
        let n = now();
        assert_eq!(
            validate_expiry("11/26", n).unwrap(),
            Expiry {
                month: 11,
                year: 2026
            }
        );
        assert_eq!(validate_expiry("11 / 2026", n).unwrap().to_mm_yy(), "11/26");
        assert_eq!(
            validate_expiry("10/26", n).unwrap_err(),
            FieldReason::Expired
        );
        assert_eq!(validate_expiry("00/27", n).unwrap_err(), FieldReason::Month);
        assert_eq!(validate_expiry("13/27", n).unwrap_err(), FieldReason::Month);
        assert_eq!(
            validate_expiry("11/46", n).unwrap(),
            Expiry {
                month: 11,
                year: 2046
            }
        );
        assert_eq!(
            validate_expiry("12/2046", n).unwrap_err(),
            FieldReason::TooFar
        );
        for bad in ["1126", "1/26", "11/026", "aa/bb", "11/2x", "１１/２６"] {
            assert_eq!(
                validate_expiry(bad, n).unwrap_err(),
                FieldReason::Format,
                "{bad}"
            );
        }
        assert_eq!(validate_expiry("  ", n).unwrap_err(), FieldReason::Required);
    }

    #[test]
    fn cvc_length_follows_brand() {
        assert!(validate_cvc("123", Some(Brand::Visa)).is_ok());
        assert_eq!(
            validate_cvc("1234", Some(Brand::Visa)).unwrap_err(),
            FieldReason::CvcLength
        );
        assert!(validate_cvc("1234", Some(Brand::Amex)).is_ok());
        assert_eq!(
            validate_cvc("123", Some(Brand::Amex)).unwrap_err(),
            FieldReason::CvcLength
        );
        assert_eq!(
            validate_cvc("12a", None).unwrap_err(),
            FieldReason::Characters
        );
        assert!(validate_cvc("1234", None).is_ok());
        assert_eq!(validate_cvc("", None).unwrap_err(), FieldReason::Required);
    }

    #[test]
    fn names() {
        assert_eq!(
            validate_name("  Ada   Lovelace ").unwrap().as_str(),
            "Ada Lovelace"
        );
        assert!(validate_name("Zoë O’Brien-Smith, Jr.").is_ok());
        assert!(validate_name("محمد").is_ok());
        assert!(validate_name("e\u{301}mile").is_ok());
        for bad in [
            "<script>alert(1)</script>",
            "a\u{0}b",
            "a\tb",
            "a\u{202e}b",
            "John 4242424242424242",
            "a\nb",
        ] {
            assert_eq!(
                validate_name(bad).unwrap_err(),
                FieldReason::Characters,
                "{bad:?}"
            );
        }
        assert_eq!(
            validate_name(&"a".repeat(101)).unwrap_err(),
            FieldReason::TooLong
        );
        assert!(validate_name(&"a".repeat(100)).is_ok());
        assert_eq!(validate_name("   ").unwrap_err(), FieldReason::Required);
    }

    #[test]
    fn card_numbers_are_found_in_free_text() {
        assert!(contains_card_number("4242424242424242"));
        assert!(contains_card_number("pay with 4242 4242 4242 4242 today"));
        assert!(contains_card_number("x1234567894242424242424242"));
        assert!(!contains_card_number("order 12345"));
        assert!(!contains_card_number("4242424242424241"));
        assert!(contains_card_number("４２４２４２４２４２４２４２４２"));
        assert!(contains_card_number("٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢"));
        assert!(contains_card_number("۴۲۴۲ ۴۲۴۲ ۴۲۴۲ ۴۲۴۲"));
        assert!(!contains_card_number("½ Ⅻ ² order"));
    }
}
