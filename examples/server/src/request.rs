//! Parsing of the customer's form submission, as pure functions over the raw body, so a
//! fuzz target can call them without a server.
//!
//! Values are card data: they are kept in [`Zeroizing`] strings and never reach an error
//! message (a JSON parser's message can quote the input, so it is replaced by fixed text).

use std::fmt;

use pci_vault::{FormInput, FormSpec};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use zeroize::Zeroizing;

/// Most field entries a submission may carry before parsing stops. The form spec allows
/// [`FormSpec::MAX_FIELDS`]; a body with more is refused without building the rest.
pub const MAX_ENTRIES: usize = FormSpec::MAX_FIELDS;

/// How a submission body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json`: `{"fields": {"card_number": "...", ...}}`.
    Json,
    /// `application/x-www-form-urlencoded`: the page's own form.
    Form,
}

impl BodyKind {
    /// The kind of a `Content-Type` value (parameters such as `charset` are ignored), or
    /// `None` for any other media type.
    pub fn of(content_type: &str) -> Option<BodyKind> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case("application/json") {
            Some(BodyKind::Json)
        } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            Some(BodyKind::Form)
        } else {
            None
        }
    }
}

/// Why a body could not be read as a submission. The text is fixed and never quotes input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedBody(pub &'static str);

impl fmt::Display for MalformedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The fields of one submission, in the order they were sent. Values zeroize on drop and
/// never print.
#[derive(Default)]
pub struct Submission(Vec<(String, Zeroizing<String>)>);

impl Submission {
    /// Parses a body of the given kind.
    ///
    /// # Errors
    /// [`MalformedBody`] when the body is not of that kind's shape, has more than
    /// [`MAX_ENTRIES`] fields, names a field twice, or is not UTF-8.
    pub fn parse(kind: BodyKind, body: &[u8]) -> Result<Self, MalformedBody> {
        match kind {
            BodyKind::Json => Self::from_json(body),
            BodyKind::Form => Self::from_urlencoded(body),
        }
    }

    /// Parses `application/x-www-form-urlencoded`.
    ///
    /// # Errors
    /// As [`Submission::parse`].
    pub fn from_urlencoded(body: &[u8]) -> Result<Self, MalformedBody> {
        let mut out = Submission::default();
        for (name, value) in form_urlencoded::parse(body) {
            // `parse` repairs bytes that are not UTF-8 with U+FFFD; a browser sends the
            // page's form in UTF-8, so such a body is refused rather than stored repaired.
            if name.contains('\u{FFFD}') || value.contains('\u{FFFD}') {
                return Err(MalformedBody("the form is not valid UTF-8"));
            }
            out.push(name.into_owned(), Zeroizing::new(value.into_owned()))?;
        }
        Ok(out)
    }

    /// Parses `{"fields": {"name": "value", ...}}`; values must be strings.
    ///
    /// # Errors
    /// As [`Submission::parse`].
    pub fn from_json(body: &[u8]) -> Result<Self, MalformedBody> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            fields: Submission,
        }
        serde_json::from_slice::<Body>(body)
            .map(|b| b.fields)
            .map_err(|e| match e.classify() {
                // The parser's own message can quote a value; only the kind is kept.
                serde_json::error::Category::Data => MalformedBody(
                    "the body must be {\"fields\": {name: string}} with at most 32 distinct fields",
                ),
                _ => MalformedBody("the body is not valid JSON"),
            })
    }

    fn push(&mut self, name: String, value: Zeroizing<String>) -> Result<(), MalformedBody> {
        if self.0.len() == MAX_ENTRIES {
            return Err(MalformedBody("a submission has at most 32 fields"));
        }
        if self.0.iter().any(|(n, _)| *n == name) {
            return Err(MalformedBody("a field appears twice in the submission"));
        }
        self.0.push((name, value));
        Ok(())
    }

    /// The value sent for `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no field was sent.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The submission as the vault takes it.
    pub fn to_form_input(&self) -> FormInput {
        let mut input = FormInput::new();
        for (name, value) in &self.0 {
            input.insert(name.as_str(), value.as_str());
        }
        input
    }
}

impl fmt::Debug for Submission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, _) in &self.0 {
            map.entry(name, &"[REDACTED]");
        }
        map.finish()
    }
}

impl<'de> Deserialize<'de> for Submission {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Submission;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of field names to string values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Submission, A::Error> {
                let mut out = Submission::default();
                while let Some(name) = map.next_key::<String>()? {
                    let value = Zeroizing::new(map.next_value::<String>()?);
                    out.push(name, value).map_err(de::Error::custom)?;
                }
                Ok(out)
            }
        }

        deserializer.deserialize_map(FieldsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(BodyKind::of("application/json"), Some(BodyKind::Json));
        assert_eq!(
            BodyKind::of("Application/JSON; charset=utf-8"),
            Some(BodyKind::Json)
        );
        assert_eq!(
            BodyKind::of("application/x-www-form-urlencoded"),
            Some(BodyKind::Form)
        );
        assert_eq!(BodyKind::of("multipart/form-data; boundary=x"), None);
        assert_eq!(BodyKind::of("text/plain"), None);
        assert_eq!(BodyKind::of(""), None);
    }

    #[test]
    fn urlencoded_fields_keep_their_order_and_decode() {
        let s = Submission::from_urlencoded(
            b"card_number=4242+4242+4242+4242&expiry=12%2F30&cvc=123&cardholder_name=Ada%20L",
        )
        .unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s.value("card_number"), Some("4242 4242 4242 4242"));
        assert_eq!(s.value("expiry"), Some("12/30"));
        assert_eq!(s.value("cardholder_name"), Some("Ada L"));
        assert_eq!(s.to_form_input().len(), 4);
    }

    #[test]
    fn json_fields() {
        let s = Submission::from_json(br#"{"fields":{"card_number":"4242","cvc":"1"}}"#).unwrap();
        assert_eq!(s.value("cvc"), Some("1"));
        assert!(
            Submission::from_json(br#"{"fields":{}}"#)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn malformed_bodies_are_refused_without_quoting_them() {
        let cases: [&[u8]; 8] = [
            b"",
            b"{",
            br#"{"fields":{"card_number":4242424242424242}}"#,
            br#"{"fields":{"card_number":"4242424242424242","card_number":"1"}}"#,
            br#"{"fields":["4242424242424242"]}"#,
            br#"{"fields":{},"extra":"4242424242424242"}"#,
            br#"{"card_number":"4242424242424242"}"#,
            b"\xff\xfe",
        ];
        for body in cases {
            let err = Submission::from_json(body).unwrap_err();
            assert!(!err.to_string().contains("4242"), "{err}");
        }
        let dup = Submission::from_urlencoded(b"cvc=123&cvc=123").unwrap_err();
        assert!(!dup.to_string().contains("123"));
    }

    #[test]
    fn too_many_fields_are_refused() {
        let body: String = (0..=MAX_ENTRIES).map(|i| format!("f{i}=x&")).collect();
        assert!(Submission::from_urlencoded(body.as_bytes()).is_err());
        let body: String = (0..MAX_ENTRIES).map(|i| format!("f{i}=x&")).collect();
        assert_eq!(
            Submission::from_urlencoded(body.as_bytes()).unwrap().len(),
            MAX_ENTRIES
        );
    }

    #[test]
    fn debug_is_redacted() {
        let s = Submission::from_urlencoded(b"card_number=4242424242424242").unwrap();
        let text = format!("{s:?}");
        assert!(
            text.contains("card_number") && !text.contains("4242"),
            "{text}"
        );
    }
}
