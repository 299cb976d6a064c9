//! Card field rules, one by one and as a whole form through `Vault::submit`.
//!
//! Each validator is checked for what its acceptance promises (a PAN is 12–19 ASCII digits
//! that pass Luhn and name their brand; an expiry lies in the 20-year window and
//! re-validates from its normal form; a name normalizes idempotently). The whole form is
//! checked against a reference built from those validators: the vault must answer exactly
//! the expected per-field errors (or `INVALID_ARGUMENT`), leave the store unchanged when it
//! refuses, never echo a value in an error, and reveal exactly the normalized values when
//! it accepts.

#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pci_vault::card::{
    self, Brand, MAX_NAME_CHARS, luhn_valid, mask_pan, validate_cvc, validate_expiry,
    validate_name, validate_pan,
};
use pci_vault::{
    Error, ErrorCode, ExposeSecret, FieldKind, FieldReason, FieldSpec, FormInput, FormSpec,
    SessionOptions,
};
use pci_vault_fuzz::{Fixture, has_digit_run, run};

#[derive(Arbitrary, Debug)]
struct Input {
    pan: String,
    expiry: String,
    cvc: String,
    name: String,
    note: String,
    /// Days after 2000-01-01, taken modulo 29,000 (up to 2079, so that `MM/YY` stays
    /// unambiguous for the whole 20-year window).
    days: u16,
    /// An expiry this many months from now, which must be accepted exactly when it lies
    /// in the window.
    expiry_offset: i16,
    brand: u8,
    /// The fields of the submission, in order; empty means the four card fields.
    layout: Vec<Slot>,
    /// The form has a fifth, optional text field `note`.
    with_note: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Slot {
    CardNumber,
    Expiry,
    Cvc,
    Name,
    Note,
    Unknown,
}

const BRANDS: [Brand; 8] = [
    Brand::Visa,
    Brand::Mastercard,
    Brand::Amex,
    Brand::Discover,
    Brand::Jcb,
    Brand::Diners,
    Brand::UnionPay,
    Brand::Maestro,
];

fuzz_target!(|input: Input| {
    let now = UNIX_EPOCH
        + Duration::from_secs(946_684_800 + u64::from(input.days % 29_000) * 86_400 + 43_200);
    let brand = check_pan(&input.pan);
    check_expiry(&input.expiry, now);
    check_expiry_window(input.expiry_offset, now);
    let hint = BRANDS.get(usize::from(input.brand) % 9).copied();
    check_cvc(&input.cvc, hint.or(brand));
    check_name(&input.name);
    check_form(&input, now);
});

fn check_pan(pan: &str) -> Option<Brand> {
    match validate_pan(pan) {
        Ok((digits, brand)) => {
            let stripped: String = pan
                .trim()
                .chars()
                .filter(|c| !matches!(c, ' ' | '-'))
                .collect();
            assert_eq!(digits.as_str(), stripped);
            assert!((12..=19).contains(&digits.len()));
            assert!(digits.bytes().all(|b| b.is_ascii_digit()));
            assert!(luhn_valid(&digits));
            assert_eq!(Brand::detect(&digits), Some(brand));
            assert!(card::contains_card_number(&digits));
            assert!(card::contains_card_number(pan));
            let masked = mask_pan(&digits);
            assert_eq!(masked.len(), digits.len());
            let shown = masked.bytes().filter(|&b| b != b'*').count();
            assert!(shown <= 10, "a mask shows at most 6 + 4 digits");
            assert_eq!(masked[masked.len() - 4..], digits[digits.len() - 4..]);
            Some(brand)
        }
        Err(reason) => {
            assert!(matches!(
                reason,
                FieldReason::Required
                    | FieldReason::Length
                    | FieldReason::Characters
                    | FieldReason::UnknownBrand
                    | FieldReason::Luhn
            ));
            let t = pan.trim();
            if t.chars()
                .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
            {
                assert_ne!(reason, FieldReason::Characters);
            }
            None
        }
    }
}

/// Months since year 0 of the UTC month of `t`.
fn month_index(t: SystemTime) -> i32 {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    // Civil-from-days (Howard Hinnant), enough for a cross-check.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    i32::try_from(y * 12 + m - 1).unwrap_or(0)
}

fn check_expiry(text: &str, now: SystemTime) {
    match validate_expiry(text, now) {
        Ok(e) => {
            assert!((1..=12).contains(&e.month));
            let given = i32::from(e.year) * 12 + i32::from(e.month) - 1;
            let current = month_index(now);
            assert!(
                (current..=current + 240).contains(&given),
                "accepted outside the window"
            );
            assert_eq!(validate_expiry(&e.to_mm_yy(), now), Ok(e));
            assert_eq!(
                validate_expiry(&format!("{:02}/{}", e.month, e.year), now),
                Ok(e)
            );
        }
        Err(reason) => assert!(matches!(
            reason,
            FieldReason::Required
                | FieldReason::Format
                | FieldReason::Month
                | FieldReason::Expired
                | FieldReason::TooFar
        )),
    }
}

fn check_expiry_window(offset: i16, now: SystemTime) {
    let offset = i32::from(offset % 300);
    let target = month_index(now) + offset;
    let (year, month) = (target.div_euclid(12), target.rem_euclid(12) + 1);
    let text = format!("{month:02}/{year}");
    let got = validate_expiry(&text, now);
    match offset {
        o if o < 0 => assert_eq!(got, Err(FieldReason::Expired), "{text}"),
        o if o > 240 => assert_eq!(got, Err(FieldReason::TooFar), "{text}"),
        _ => assert!(got.is_ok(), "{text}: {got:?}"),
    }
}

fn check_cvc(text: &str, brand: Option<Brand>) {
    match validate_cvc(text, brand) {
        Ok(cvc) => {
            assert_eq!(cvc.as_str(), text.trim());
            assert!(cvc.bytes().all(|b| b.is_ascii_digit()));
            match brand {
                Some(b) => assert_eq!(cvc.len(), b.cvc_length()),
                None => assert!(matches!(cvc.len(), 3 | 4)),
            }
        }
        Err(reason) => assert!(matches!(
            reason,
            FieldReason::Required | FieldReason::Characters | FieldReason::CvcLength
        )),
    }
}

fn check_name(text: &str) {
    match validate_name(text) {
        Ok(name) => {
            let chars = name.chars().count();
            assert!((1..=MAX_NAME_CHARS).contains(&chars));
            assert!(!name.chars().any(|c| c.is_control() || c.is_ascii_digit()));
            assert!(
                !name
                    .chars()
                    .any(|c| matches!(c, '<' | '>' | '&' | '"' | '/'))
            );
            assert!(!name.starts_with(' ') && !name.ends_with(' ') && !name.contains("  "));
            assert_eq!(
                validate_name(&name).map(|n| n.to_string()),
                Ok(name.to_string())
            );
        }
        Err(reason) => assert!(matches!(
            reason,
            FieldReason::Required | FieldReason::Characters | FieldReason::TooLong
        )),
    }
}

/// What `submit` must answer, computed from the public validators.
#[derive(Debug, PartialEq)]
enum Expected {
    Stored(Vec<(String, String)>),
    Fields(Vec<(String, FieldReason)>),
    InvalidArgument,
}

fn expected(spec: &FormSpec, submission: &[(String, String)], now: SystemTime) -> Expected {
    if submission.len() > FormSpec::MAX_FIELDS {
        return Expected::InvalidArgument;
    }
    for (i, (name, _)) in submission.iter().enumerate() {
        let repeated = submission.iter().skip(i + 1).any(|(n, _)| n == name);
        if spec.field(name).is_none() || repeated {
            return Expected::InvalidArgument;
        }
    }
    let value_of = |name: &str| {
        submission
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    };
    let brand = value_of(FormSpec::CARD_NUMBER)
        .filter(|v| v.len() <= FormSpec::MAX_VALUE_LEN)
        .and_then(|v| validate_pan(v).ok())
        .map(|(_, b)| b);
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for field in spec.fields() {
        let Some(raw) = value_of(field.name()) else {
            if field.required() {
                errors.push((field.name().to_owned(), FieldReason::Required));
            }
            continue;
        };
        let checked = if raw.len() > FormSpec::MAX_VALUE_LEN {
            Err(FieldReason::TooLong)
        } else {
            match field.kind() {
                FieldKind::CardNumber => validate_pan(raw).map(|(d, _)| d.to_string()),
                FieldKind::Expiry => validate_expiry(raw, now).map(|e| e.to_mm_yy()),
                FieldKind::Cvc => validate_cvc(raw, brand).map(|c| c.to_string()),
                FieldKind::CardholderName => validate_name(raw).map(|n| n.to_string()),
                _ => {
                    if raw.chars().any(char::is_control) {
                        Err(FieldReason::Characters)
                    } else {
                        Ok(raw.trim().to_owned())
                    }
                }
            }
        };
        match checked {
            Ok(v) => values.push((field.name().to_owned(), v)),
            Err(r) => errors.push((field.name().to_owned(), r)),
        }
    }
    if errors.is_empty() {
        Expected::Stored(values)
    } else {
        Expected::Fields(errors)
    }
}

fn check_form(input: &Input, now: SystemTime) {
    let mut names = vec![
        FormSpec::CARD_NUMBER,
        FormSpec::EXPIRY,
        FormSpec::CVC,
        FormSpec::CARDHOLDER_NAME,
    ];
    let mut fields: Vec<FieldSpec> = names
        .iter()
        .map(|n| FieldSpec::named(n).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    if input.with_note {
        names.push("note");
        fields
            .push(FieldSpec::new("note", FieldKind::Text, false).unwrap_or_else(|e| panic!("{e}")));
    }
    let spec = FormSpec::new(fields).unwrap_or_else(|e| panic!("{e}"));

    let layout: Vec<Slot> = if input.layout.is_empty() {
        vec![Slot::CardNumber, Slot::Expiry, Slot::Cvc, Slot::Name]
    } else {
        input.layout.iter().copied().take(40).collect()
    };
    let submission: Vec<(String, String)> = layout
        .iter()
        .map(|slot| match slot {
            Slot::CardNumber => (FormSpec::CARD_NUMBER.to_owned(), input.pan.clone()),
            Slot::Expiry => (FormSpec::EXPIRY.to_owned(), input.expiry.clone()),
            Slot::Cvc => (FormSpec::CVC.to_owned(), input.cvc.clone()),
            Slot::Name => (FormSpec::CARDHOLDER_NAME.to_owned(), input.name.clone()),
            Slot::Note => ("note".to_owned(), input.note.clone()),
            Slot::Unknown => (input.note.chars().take(40).collect(), input.cvc.clone()),
        })
        .collect();
    let want = expected(&spec, &submission, now);

    let fx = Fixture::at(now);
    let (vault, _) = fx.vault();
    let options = SessionOptions::default().with_form(spec);
    let ticket = run(vault.create_session(&options)).unwrap_or_else(|e| panic!("{e}"));
    let mut form = FormInput::new();
    for (name, value) in &submission {
        form.insert(name.clone(), value.clone());
    }
    let before = fx.entries();
    match (run(vault.submit(&ticket.id, &form)), want) {
        (Ok(receipt), Expected::Stored(values)) => {
            let revealed = run(vault.reveal(&ticket.id, &receipt.pin))
                .unwrap_or_else(|e| panic!("reveal after submit: {e}"));
            let got: Vec<(String, String)> = revealed
                .iter()
                .map(|(n, v)| (n.to_owned(), v.expose_secret().to_owned()))
                .collect();
            assert_eq!(got, values, "the reveal differs from what was submitted");
        }
        (Err(e), want) => {
            let text = format!("{e} {e:?}");
            assert!(!has_digit_run(&text, 3), "an error echoes a value: {text}");
            match (&e, want) {
                (Error::ValidationFailed { fields }, Expected::Fields(reasons)) => {
                    let got: Vec<(String, FieldReason)> =
                        fields.iter().map(|f| (f.field.clone(), f.reason)).collect();
                    assert_eq!(got, reasons);
                }
                (e, Expected::InvalidArgument) => {
                    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e:?}")
                }
                (e, want) => panic!("submit answered {e:?}, expected {want:?}"),
            }
            assert_eq!(fx.entries(), before, "a refused submit changed the store");
        }
        (Ok(_), want) => panic!("submit stored a form, expected {want:?}"),
    }
}
