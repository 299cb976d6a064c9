//! Forms: which fields the customer is asked for, what they submit, and what the agent
//! gets back once.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::card::{self, Brand};
use crate::error::{Error, FieldError, FieldReason, Result};

/// What kind of value a field holds, and so how it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldKind {
    /// `card_number`: a PAN, checked by [`card::validate_pan`], stored as digits only.
    CardNumber,
    /// `expiry`: checked by [`card::validate_expiry`], stored as `MM/YY`.
    Expiry,
    /// `cvc`: checked by [`card::validate_cvc`] against the card's brand.
    Cvc,
    /// `cardholder_name`: checked by [`card::validate_name`].
    CardholderName,
    /// Any other field: 1 byte to 1 KiB of text without control characters.
    Text,
}

impl FieldKind {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            FieldKind::CardNumber => 1,
            FieldKind::Expiry => 2,
            FieldKind::Cvc => 3,
            FieldKind::CardholderName => 4,
            FieldKind::Text => 5,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => FieldKind::CardNumber,
            2 => FieldKind::Expiry,
            3 => FieldKind::Cvc,
            4 => FieldKind::CardholderName,
            5 => FieldKind::Text,
            _ => return None,
        })
    }

    fn standard_name(self) -> Option<&'static str> {
        match self {
            FieldKind::CardNumber => Some(FormSpec::CARD_NUMBER),
            FieldKind::Expiry => Some(FormSpec::EXPIRY),
            FieldKind::Cvc => Some(FormSpec::CVC),
            FieldKind::CardholderName => Some(FormSpec::CARDHOLDER_NAME),
            FieldKind::Text => None,
        }
    }
}

/// A field name. The four card fields' names are static strings, so records of the default
/// form decode without allocating their names.
pub(crate) type FieldName = Cow<'static, str>;

/// The name as a [`FieldName`], borrowing the static spelling of a card field's name.
pub(crate) fn field_name(name: &str) -> FieldName {
    match name {
        FormSpec::CARD_NUMBER => Cow::Borrowed(FormSpec::CARD_NUMBER),
        FormSpec::EXPIRY => Cow::Borrowed(FormSpec::EXPIRY),
        FormSpec::CVC => Cow::Borrowed(FormSpec::CVC),
        FormSpec::CARDHOLDER_NAME => Cow::Borrowed(FormSpec::CARDHOLDER_NAME),
        other => Cow::Owned(other.to_owned()),
    }
}

/// One field of a form: its name, kind and whether it must be filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    name: FieldName,
    kind: FieldKind,
    required: bool,
}

impl FieldSpec {
    /// A field. The four card fields have fixed names (`card_number`, `expiry`, `cvc`,
    /// `cardholder_name`); any other name is a [`FieldKind::Text`] field.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the name is not 1–32 characters of `[a-z0-9_]`
    /// starting with a letter, or does not match its kind.
    pub fn new(name: &str, kind: FieldKind, required: bool) -> Result<Self> {
        let well_formed = (1..=32).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !well_formed {
            return Err(Error::InvalidArgument(
                "a field name is 1-32 characters of a-z 0-9 _ starting with a letter",
            ));
        }
        let standard = FormSpec::kind_of_standard(name);
        match (kind.standard_name(), standard) {
            (Some(expected), _) if expected != name => Err(Error::InvalidArgument(
                "the card fields are named card_number, expiry, cvc and cardholder_name",
            )),
            (None, Some(_)) => Err(Error::InvalidArgument(
                "card_number, expiry, cvc and cardholder_name are reserved for the card fields",
            )),
            _ => Ok(FieldSpec {
                name: field_name(name),
                kind,
                required,
            }),
        }
    }

    /// A field by name alone: a card field when the name is one, a required text field
    /// otherwise.
    ///
    /// # Errors
    /// As [`FieldSpec::new`].
    pub fn named(name: &str) -> Result<Self> {
        let kind = FormSpec::kind_of_standard(name).unwrap_or(FieldKind::Text);
        FieldSpec::new(name, kind, true)
    }

    /// The field name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind of value.
    pub fn kind(&self) -> FieldKind {
        self.kind
    }

    /// Whether the customer must fill it.
    pub fn required(&self) -> bool {
        self.required
    }
}

/// The fields a session's form asks for, in display order. The default is the four card
/// fields, all required. Cheap to clone (shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormSpec(Arc<[FieldSpec]>);

/// The default form, shared by every session that uses it.
static DEFAULT_FORM: LazyLock<FormSpec> = LazyLock::new(|| {
    let field = |name: &'static str, kind| FieldSpec {
        name: Cow::Borrowed(name),
        kind,
        required: true,
    };
    FormSpec(Arc::from([
        field(FormSpec::CARD_NUMBER, FieldKind::CardNumber),
        field(FormSpec::EXPIRY, FieldKind::Expiry),
        field(FormSpec::CVC, FieldKind::Cvc),
        field(FormSpec::CARDHOLDER_NAME, FieldKind::CardholderName),
    ]))
});

impl FormSpec {
    /// Name of the card number field.
    pub const CARD_NUMBER: &'static str = "card_number";
    /// Name of the expiry field.
    pub const EXPIRY: &'static str = "expiry";
    /// Name of the security code field.
    pub const CVC: &'static str = "cvc";
    /// Name of the cardholder name field.
    pub const CARDHOLDER_NAME: &'static str = "cardholder_name";
    /// Most fields in a form.
    pub const MAX_FIELDS: usize = 32;
    /// Longest value of any field, in bytes.
    pub const MAX_VALUE_LEN: usize = 1024;

    /// A form of the given fields.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when there are no fields, more than 32, or a name twice.
    pub fn new(fields: Vec<FieldSpec>) -> Result<Self> {
        if fields.is_empty() || fields.len() > Self::MAX_FIELDS {
            return Err(Error::InvalidArgument("a form has 1-32 fields"));
        }
        for (i, f) in fields.iter().enumerate() {
            if fields.iter().skip(i + 1).any(|g| g.name == f.name) {
                return Err(Error::InvalidArgument(
                    "a field name appears twice in the form",
                ));
            }
        }
        if fields.as_slice() == &*DEFAULT_FORM.0 {
            return Ok(DEFAULT_FORM.clone());
        }
        Ok(FormSpec(Arc::from(fields)))
    }

    /// A form from field names, each as [`FieldSpec::named`].
    ///
    /// # Errors
    /// As [`FieldSpec::named`] and [`FormSpec::new`].
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut fields = Vec::new();
        for name in names {
            if fields.len() == Self::MAX_FIELDS {
                return Err(Error::InvalidArgument("a form has 1-32 fields"));
            }
            fields.push(FieldSpec::named(name)?);
        }
        FormSpec::new(fields)
    }

    /// The fields, in display order.
    pub fn fields(&self) -> &[FieldSpec] {
        &self.0
    }

    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.0.iter().find(|f| f.name == name)
    }

    fn kind_of_standard(name: &str) -> Option<FieldKind> {
        Some(match name {
            Self::CARD_NUMBER => FieldKind::CardNumber,
            Self::EXPIRY => FieldKind::Expiry,
            Self::CVC => FieldKind::Cvc,
            Self::CARDHOLDER_NAME => FieldKind::CardholderName,
            _ => return None,
        })
    }

    /// Checks every field of `input` against this form and returns the normalized values in
    /// form order. Nothing is stored unless every field passes.
    pub(crate) fn validate(
        &self,
        input: &FormInput,
        now: SystemTime,
    ) -> Result<Vec<(FieldName, Zeroizing<String>)>> {
        if input.0.len() > Self::MAX_FIELDS {
            return Err(Error::InvalidArgument("a submission has at most 32 fields"));
        }
        for (i, (name, _)) in input.0.iter().enumerate() {
            if self.field(name).is_none() {
                return Err(Error::InvalidArgument("the form has no field of that name"));
            }
            if input.0.iter().skip(i + 1).any(|(n, _)| n == name) {
                return Err(Error::InvalidArgument(
                    "a field appears twice in the submission",
                ));
            }
        }

        let value_of = |name: &str| {
            input
                .0
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.expose_secret())
                .filter(|v| !v.trim().is_empty())
        };
        // The brand decides the CVC length, so the card number is checked first.
        let brand = self
            .field(Self::CARD_NUMBER)
            .and_then(|_| value_of(Self::CARD_NUMBER))
            .filter(|v| v.len() <= Self::MAX_VALUE_LEN)
            .and_then(|v| card::validate_pan(v).ok())
            .map(|(_, brand)| brand);

        let mut values = Vec::with_capacity(self.0.len());
        let mut errors = Vec::new();
        for spec in self.0.iter() {
            let Some(raw) = value_of(&spec.name) else {
                if spec.required {
                    errors.push(FieldError {
                        field: spec.name.to_string(),
                        reason: FieldReason::Required,
                    });
                }
                continue;
            };
            match check_value(spec.kind, raw, brand, now) {
                Ok(value) => values.push((spec.name.clone(), value)),
                Err(reason) => errors.push(FieldError {
                    field: spec.name.to_string(),
                    reason,
                }),
            }
        }
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(Error::ValidationFailed { fields: errors })
        }
    }
}

fn check_value(
    kind: FieldKind,
    raw: &str,
    brand: Option<Brand>,
    now: SystemTime,
) -> Result<Zeroizing<String>, FieldReason> {
    if raw.len() > FormSpec::MAX_VALUE_LEN {
        return Err(FieldReason::TooLong);
    }
    match kind {
        FieldKind::CardNumber => card::validate_pan(raw).map(|(digits, _)| digits),
        FieldKind::Expiry => card::validate_expiry(raw, now).map(|e| Zeroizing::new(e.to_mm_yy())),
        FieldKind::Cvc => card::validate_cvc(raw, brand),
        FieldKind::CardholderName => card::validate_name(raw),
        FieldKind::Text => {
            if raw.chars().any(char::is_control) {
                Err(FieldReason::Characters)
            } else {
                Ok(Zeroizing::new(raw.trim().to_owned()))
            }
        }
    }
}

impl Default for FormSpec {
    fn default() -> Self {
        DEFAULT_FORM.clone()
    }
}

/// What the customer submits: field names and their clear values. Values zeroize on drop
/// and never print.
#[derive(Default)]
pub struct FormInput(Vec<(String, SecretString)>);

impl FormInput {
    /// An empty submission.
    pub fn new() -> Self {
        FormInput::default()
    }

    /// Adds a field (builder style).
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    /// Adds a field.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), SecretString::from(value.into())));
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for FormInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, _) in &self.0 {
            map.entry(name, &"[REDACTED]");
        }
        map.finish()
    }
}

/// The brand and masked number of a card (PCI DSS 3.4.1: first 6 and last 4 digits at
/// most): safe to show and to log. `status` carries it once the form is submitted, `reveal`
/// with the clear form.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CardSummary {
    /// The brand, from the card number's leading digits.
    pub brand: Brand,
    /// First 6 and last 4 digits, the rest `*`.
    pub masked_number: String,
}

impl CardSummary {
    /// The summary of a validated card number (ASCII digits); `None` when no brand is
    /// recognised.
    pub(crate) fn of(digits: &str) -> Option<CardSummary> {
        Brand::detect(digits).map(|brand| CardSummary {
            brand,
            masked_number: crate::card::mask_pan(digits),
        })
    }

    /// Whether `masked` has the shape [`crate::card::mask_pan`] gives: 12–19 characters,
    /// ASCII digits and `*`, at most ten of them digits, the last four digits.
    pub(crate) fn is_masked_shape(masked: &str) -> bool {
        let b = masked.as_bytes();
        (12..=19).contains(&b.len())
            && b.iter().all(|c| c.is_ascii_digit() || *c == b'*')
            && b.iter().filter(|c| c.is_ascii_digit()).count() <= 10
            && b.iter().rev().take(4).all(u8::is_ascii_digit)
    }
}

/// The clear form, returned once by `reveal`. Values zeroize on drop and never print.
pub struct RevealedForm {
    pub(crate) fields: Vec<(String, SecretString)>,
    pub(crate) card: Option<CardSummary>,
}

impl RevealedForm {
    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The fields and values, in form order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretString)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// Brand and masked number, when the form has a card number.
    pub fn card(&self) -> Option<&CardSummary> {
        self.card.as_ref()
    }

    /// Takes the fields out, for bindings that hand them on.
    pub fn into_fields(self) -> Vec<(String, SecretString)> {
        self.fields
    }
}

impl fmt::Debug for RevealedForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevealedForm")
            .field(
                "fields",
                &self
                    .fields
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("card", &self.card)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use std::time::Duration;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_564_800)
    }

    fn good() -> FormInput {
        FormInput::new()
            .with("card_number", "4242 4242 4242 4242")
            .with("expiry", "12/2030")
            .with("cvc", "123")
            .with("cardholder_name", "Ada Lovelace")
    }

    #[test]
    fn valid_form_is_normalized_in_form_order() {
        let values = FormSpec::default().validate(&good(), now()).unwrap();
        let got: Vec<(&str, &str)> = values
            .iter()
            .map(|(n, v)| (n.as_ref(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("card_number", "4242424242424242"),
                ("expiry", "12/30"),
                ("cvc", "123"),
                ("cardholder_name", "Ada Lovelace")
            ]
        );
    }

    #[test]
    fn every_failing_field_is_named_without_its_value() {
        let input = FormInput::new()
            .with("card_number", "4242424242424241")
            .with("expiry", "13/30")
            .with("cvc", "12345");
        let err = FormSpec::default().validate(&input, now()).unwrap_err();
        let Error::ValidationFailed { fields } = &err else {
            panic!("{err:?}")
        };
        let got: Vec<(&str, &str)> = fields
            .iter()
            .map(|f| (f.field.as_str(), f.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("card_number", "luhn"),
                ("expiry", "month"),
                ("cvc", "cvc_length"),
                ("cardholder_name", "required")
            ]
        );
        let text = format!("{err} {err:?}");
        assert!(!text.contains("4242") && !text.contains("12345"), "{text}");
    }

    #[test]
    fn amex_needs_four_digit_cvc() {
        let input = FormInput::new()
            .with("card_number", "378282246310005")
            .with("expiry", "12/30")
            .with("cvc", "123")
            .with("cardholder_name", "A B");
        let err = FormSpec::default().validate(&input, now()).unwrap_err();
        assert!(
            matches!(err, Error::ValidationFailed { ref fields } if fields[0].field == "cvc" && fields[0].reason == FieldReason::CvcLength)
        );
    }

    #[test]
    fn unknown_duplicate_and_too_many_fields_are_invalid_arguments() {
        let unknown = good().with("pin", "1");
        assert_eq!(
            FormSpec::default()
                .validate(&unknown, now())
                .unwrap_err()
                .code(),
            ErrorCode::InvalidArgument
        );
        let dup = good().with("cvc", "123");
        assert_eq!(
            FormSpec::default()
                .validate(&dup, now())
                .unwrap_err()
                .code(),
            ErrorCode::InvalidArgument
        );
        let mut many = FormInput::new();
        for i in 0..33 {
            many.insert(format!("f{i}"), "x");
        }
        assert_eq!(
            FormSpec::default()
                .validate(&many, now())
                .unwrap_err()
                .code(),
            ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn oversized_values_are_too_long() {
        let input = FormInput::new()
            .with("card_number", "4".repeat(2000))
            .with("expiry", "12/30")
            .with("cvc", "123")
            .with("cardholder_name", "x".repeat(1025));
        let Error::ValidationFailed { fields } =
            FormSpec::default().validate(&input, now()).unwrap_err()
        else {
            panic!()
        };
        assert!(
            fields.iter().all(|f| f.reason == FieldReason::TooLong),
            "{fields:?}"
        );
    }

    #[test]
    fn custom_forms() {
        let spec = FormSpec::from_names(["card_number", "expiry", "postcode"]).unwrap();
        assert_eq!(spec.field("postcode").unwrap().kind(), FieldKind::Text);
        let input = FormInput::new()
            .with("card_number", "4242424242424242")
            .with("expiry", "12/30")
            .with("postcode", "SW1A 1AA");
        assert_eq!(spec.validate(&input, now()).unwrap().len(), 3);
        assert!(FormSpec::from_names(["Card"]).is_err());
        assert!(FormSpec::from_names(["a", "a"]).is_err());
        assert!(FormSpec::from_names([]).is_err());
        assert!(FieldSpec::new("cvc", FieldKind::Text, true).is_err());
        assert!(FieldSpec::new("secret", FieldKind::CardNumber, true).is_err());
        let optional = FormSpec::new(vec![
            FieldSpec::new("note", FieldKind::Text, false).unwrap(),
        ])
        .unwrap();
        assert!(
            optional
                .validate(&FormInput::new(), now())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn debug_of_inputs_and_revealed_forms_is_redacted() {
        let text = format!("{:?}", good());
        assert!(
            text.contains("card_number") && !text.contains("4242"),
            "{text}"
        );
        let revealed = RevealedForm {
            fields: vec![("cvc".into(), SecretString::from("987".to_string()))],
            card: None,
        };
        assert!(!format!("{revealed:?}").contains("987"));
    }
}
