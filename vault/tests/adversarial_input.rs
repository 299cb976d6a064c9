//! Hostile input at every public entry point, through the real `Vault` on the memory store:
//! malformed ids and PINs, card numbers in other scripts, every brand's wrong lengths and
//! check digits, security codes of the other brand's length, expiry edges, names with
//! control characters and markup, oversized values, too many, unknown and repeated fields.
//!
//! Each refusal has the right code, an error that never repeats the input, and leaves the
//! store byte for byte as it was; the session still takes a valid form afterwards, so
//! nothing is lost. What the conformance suite already proves (every code reachable, the
//! happy path, a second submit) is not repeated here.

#![cfg(feature = "conformance")]
#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

mod support;

use std::time::{Duration, UNIX_EPOCH};

use pci_vault::card::luhn_valid;
use pci_vault::conformance::{amex_form, visa_form};
use pci_vault::{
    Error, ErrorCode, ExposeSecret, FieldKind, FieldSpec, FormInput, FormSpec, Pin, SessionId,
    SessionOptions, SessionState, Vault,
};
use support::{Fixture, assert_refused, field_errors};

const ID_MESSAGE: &str = "invalid argument: a session id is 43 characters of base64url";
const PIN_MESSAGE: &str = "invalid argument: a PIN is 4-12 digits 0-9";

/// A vault on a fresh store, and the options of the sessions the customer submits to.
struct Customer {
    fx: Fixture,
    vault: Vault,
    options: SessionOptions,
}

impl Customer {
    fn new() -> Self {
        Customer::on(Fixture::new(), SessionOptions::default())
    }

    fn on(fx: Fixture, options: SessionOptions) -> Self {
        let (vault, _) = fx.vault();
        Customer { fx, vault, options }
    }

    /// Submits `form` to a fresh pending session and expects a refusal that echoes none of
    /// `inputs`, leaves the store byte for byte unchanged and the session pending.
    async fn refused(&self, form: FormInput, inputs: &[&str]) -> Error {
        let (id, _) = self.fx.session(&self.vault, &self.options).await;
        let before = self.fx.snapshot();
        let err = self.vault.submit(&id, &form).await.map(|_| ()).unwrap_err();
        let text = format!("{err} {err:?}");
        for input in inputs {
            let input = input.trim();
            if input.chars().count() >= 4 {
                assert!(!text.contains(input), "the error echoes {input:?}");
            }
        }
        assert_eq!(self.fx.snapshot(), before, "a refused submit wrote");
        let status = self.vault.status(&id).await.unwrap();
        assert_eq!(status.state, SessionState::Pending);
        err
    }

    /// As [`Customer::refused`], for a form with exactly one bad field.
    async fn refused_field(&self, form: FormInput, inputs: &[&str], field: &str, reason: &str) {
        let err = self.refused(form, inputs).await;
        let want = [(field.to_string(), reason)];
        assert_eq!(field_errors(&err), want, "{inputs:?}");
    }

    /// Submits `form`, reveals it, and returns the stored value of `field`.
    async fn stored(&self, form: FormInput, field: &str) -> String {
        let (id, _) = self.fx.session(&self.vault, &self.options).await;
        let receipt = self.vault.submit(&id, &form).await.unwrap();
        let revealed = self.vault.reveal(&id, &receipt.pin).await.unwrap();
        revealed.get(field).unwrap().expose_secret().to_owned()
    }
}

/// A form with the four card fields.
fn card(pan: &str, expiry: &str, cvc: &str, name: &str) -> FormInput {
    FormInput::new()
        .with("card_number", pan)
        .with("expiry", expiry)
        .with("cvc", cvc)
        .with("cardholder_name", name)
}

#[tokio::test]
async fn malformed_session_ids_are_refused_without_echo() {
    let good = SessionId::generate().to_string();
    let body = &good[..42];
    let hostile = [
        String::new(),
        " ".into(),
        body.into(),
        format!("{good}A"),
        format!("{good} "),
        format!(" {body}"),
        format!("{body}="),
        format!("{}==", &good[..41]),
        format!("{body}+"),
        format!("{body}/"),
        format!("{{{}}}", &good[..41]),
        format!("{}{{a}}", &good[..40]),
        "*".repeat(43),
        format!("{}*", body),
        format!("{}\r\n", &good[..41]),
        format!("{}\r\nSET x", &good[..36]),
        format!("{body}\n"),
        format!("{body}\0"),
        format!("{}\0\0", &good[..41]),
        format!("{}é", &good[..41]),
        format!("{}ｅ", &good[..40]),
        "٤".repeat(43),
        format!("../{}", &good[..40]),
        format!("{}%2F", &good[..39]),
        "A".repeat(10_000),
        "\u{202e}".repeat(43),
    ];
    for text in &hostile {
        let err = SessionId::parse(text).unwrap_err();
        assert_refused(&err, ErrorCode::InvalidArgument, &[text], "session id");
        assert_eq!(err.to_string(), ID_MESSAGE);
        assert!(text.parse::<SessionId>().is_err());
    }
    // 43 valid characters whose last one carries bits beyond the 256: not canonical.
    let mut bytes = good.clone().into_bytes();
    bytes[42] = if bytes[42] == b'B' { b'C' } else { b'B' };
    let noncanonical = String::from_utf8(bytes).unwrap();
    if let Ok(id) = SessionId::parse(&noncanonical) {
        assert_eq!(id.to_string(), noncanonical);
    }
}

#[tokio::test]
async fn unknown_well_formed_ids_find_nothing_and_change_nothing() {
    let fx = Fixture::new();
    let (vault, audit) = fx.vault();
    let (existing, _) = fx.session(&vault, &SessionOptions::default()).await;
    vault.submit(&existing, &visa_form()).await.unwrap();
    audit.take();
    let before = fx.snapshot();
    let pin = Pin::parse("123456").unwrap();
    for _ in 0..50 {
        let stranger = SessionId::generate();
        let codes = [
            vault.status(&stranger).await.map(|_| ()),
            vault.submit(&stranger, &visa_form()).await.map(|_| ()),
            vault.reveal(&stranger, &pin).await.map(|_| ()),
            vault.cancel(&stranger).await,
        ]
        .map(|r| r.unwrap_err().code());
        assert_eq!(codes, [ErrorCode::NotFound; 4]);
    }
    assert_eq!(fx.snapshot(), before);
    // The agent-side failures are audited; none names the session by its id.
    let events = audit.take();
    assert_eq!(events.len(), 100);
    assert_eq!(vault.status(&existing).await.unwrap().attempts_left, 5);
}

#[tokio::test]
async fn malformed_pins_are_refused_without_echo() {
    let hostile = [
        "",
        "   ",
        "123",
        "1234567890123",
        "12a456",
        "12 456",
        "12\t456",
        "123\n456",
        "\r\n1234\r\nX",
        "1234\0",
        "\u{0}1234",
        "+12345",
        "-12345",
        "1e100",
        "0x1234",
        "１２３４５６",
        "١٢٣٤٥٦",
        "۱۲۳۴۵۶",
        "१२३४५६",
        "𝟏𝟐𝟑𝟒𝟓𝟔",
        "¹²³⁴⁵⁶",
        "{123456}",
        "*",
        "123456*",
        "<script>1</script>",
    ];
    let huge = "1".repeat(1 << 20);
    for text in hostile.iter().copied().chain([huge.as_str()]) {
        let err = Pin::parse(text).unwrap_err();
        assert_refused(&err, ErrorCode::InvalidArgument, &[text], "PIN");
        assert_eq!(err.to_string(), PIN_MESSAGE);
    }
    // Surrounding white space is what an agent's copy and paste adds; it is ignored.
    for padded in ["\t 123456 \n", "123456\r\n"] {
        assert_eq!(Pin::parse(padded).unwrap().expose_secret(), "123456");
    }
}

#[tokio::test]
async fn well_formed_pins_of_another_length_count_as_wrong_guesses() {
    let fx = Fixture::new();
    let (vault, _) = fx.vault();
    let (id, _) = fx.session(&vault, &SessionOptions::default()).await;
    let receipt = vault.submit(&id, &visa_form()).await.unwrap();
    // A prefix of the right PIN, and the right PIN with a digit added: both wrong.
    let right = receipt.pin.expose_secret();
    for (guess, left) in [(&right[..4], 4), (&format!("{right}0")[..], 3)] {
        let err = vault
            .reveal(&id, &Pin::parse(guess).unwrap())
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(err, Error::WrongPin { attempts_left } if attempts_left == left));
        assert_refused(&err, ErrorCode::WrongPin, &[guess], "PIN of another length");
    }
    assert!(vault.reveal(&id, &receipt.pin).await.is_ok());
}

#[tokio::test]
async fn a_pin_from_one_session_opens_no_other() {
    let fx = Fixture::new();
    let (vault, _) = fx.vault();
    let twelve = SessionOptions::default().with_pin_length(12);
    let (a, _) = fx.session(&vault, &twelve).await;
    let (b, key_b) = fx.session(&vault, &twelve).await;
    let pin_a = vault.submit(&a, &visa_form()).await.unwrap().pin;
    let pin_b = vault.submit(&b, &amex_form()).await.unwrap().pin;
    assert_ne!(pin_a, pin_b);
    let before = fx.snapshot();
    let err = vault.reveal(&b, &pin_a).await.map(|_| ()).unwrap_err();
    assert!(
        matches!(err, Error::WrongPin { attempts_left: 4 }),
        "{err:?}"
    );
    // The attempt is a claim beside B's record: both records are byte for byte the same,
    // and only B counts an attempt.
    let after = fx.snapshot();
    assert!(before.iter().any(|(k, _)| *k == key_b));
    assert_eq!(before, after, "a guess changes no record");
    assert_eq!(vault.status(&a).await.unwrap().attempts_left, 5);
    assert_eq!(vault.status(&b).await.unwrap().attempts_left, 4);
    let form = vault.reveal(&b, &pin_b).await.unwrap();
    assert_eq!(
        form.get("card_number").unwrap().expose_secret(),
        "378282246310005"
    );
    assert!(vault.reveal(&a, &pin_a).await.is_ok());
}

#[tokio::test]
async fn digits_of_other_scripts_in_card_numbers_are_refused() {
    let customer = Customer::new();
    let pans = [
        "４２４２４２４２４２４２４２４２",
        "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢",
        "۴۲۴۲۴۲۴۲۴۲۴۲۴۲۴۲",
        "४२४२४२४२४२४२४२४२",
        "𝟒𝟐𝟒𝟐𝟒𝟐𝟒𝟐𝟒𝟐𝟒𝟐𝟒𝟐𝟒𝟐",
        "⁴²⁴²⁴²⁴²⁴²⁴²⁴²⁴²",
        "4242 4242 4242 ４２４２",
        "4242424242424٢42",
        "4242\u{200b}4242424242424242",
        "4242.4242.4242.4242",
        "4242_4242_4242_4242",
        "4242\t4242\t4242\t4242",
        "4242\n4242\n4242\n4242",
        "4242424242424242\0",
        "+4242424242424242",
        "<b>4242424242424242</b>",
        "4242424242424242; DROP TABLE cards",
    ];
    for pan in pans {
        let form = card(pan, "12/39", "123", "Ada Lovelace");
        customer
            .refused_field(form, &[pan], "card_number", "characters")
            .await;
    }
}

/// The Luhn check digit that completes `partial`.
fn complete(partial: &str) -> String {
    (0..10)
        .map(|d| format!("{partial}{d}"))
        .find(|n| luhn_valid(n))
        .unwrap()
}

#[tokio::test]
async fn luhn_invalid_and_wrong_length_card_numbers_are_refused_per_brand() {
    let cards: serde_json::Value =
        serde_json::from_str(include_str!("data/test-cards.json")).unwrap();
    let mut cases: Vec<(String, &str)> = Vec::new();
    for card in cards["valid"].as_array().unwrap() {
        let number = card["number"].as_str().unwrap();
        // Every other check digit fails Luhn.
        let (body, check) = number.split_at(number.len() - 1);
        for d in (0..10).map(|d| d.to_string()).filter(|d| d != check) {
            cases.push((format!("{body}{d}"), "luhn"));
        }
        // Two neighbouring digits swapped, a typing slip Luhn catches unless they are 0 and
        // 9; taken near the end, so the brand and length stay.
        let mut swapped = number.as_bytes().to_vec();
        let (i, j) = (swapped.len() - 3, swapped.len() - 2);
        let pair = [swapped[i], swapped[j]];
        if pair[0] != pair[1] && pair != *b"09" && pair != *b"90" {
            swapped.swap(i, j);
            cases.push((String::from_utf8(swapped).unwrap(), "luhn"));
        }
    }
    // Luhn-valid numbers of lengths their brand does not issue.
    let wrong_lengths: [(&str, &[usize]); 8] = [
        ("4", &[12, 14, 15, 17]),
        ("51", &[12, 13, 14, 15, 17, 18, 19]),
        ("2221", &[15, 17]),
        ("37", &[12, 13, 14, 16, 17, 18, 19]),
        ("6011", &[12, 13, 14, 15]),
        ("3528", &[12, 13, 14, 15]),
        ("36", &[12, 13]),
        ("62", &[12, 13, 14, 15]),
    ];
    for (prefix, lengths) in wrong_lengths {
        for &len in lengths {
            let partial = format!("{prefix}{}", "7".repeat(len - prefix.len() - 1));
            cases.push((complete(&partial), "length"));
        }
    }
    cases.push((complete(&"4".repeat(10)), "length"));
    cases.push((complete(&"4".repeat(19)), "length"));
    cases.push(("4".repeat(1000), "length"));
    cases.push((complete("999999999999999"), "unknown_brand"));
    cases.push((complete("100000000000000"), "unknown_brand"));
    assert!(cases.len() > 150, "{} cases", cases.len());
    let customer = Customer::new();
    for (pan, reason) in &cases {
        let form = card(pan, "12/39", "123", "Ada Lovelace");
        customer
            .refused_field(form, &[pan], "card_number", reason)
            .await;
    }
}

#[tokio::test]
async fn security_codes_must_match_the_brand() {
    let customer = Customer::new();
    let amex = "378282246310005";
    let visa = "4242424242424242";
    let cases = [
        (amex, "739", "cvc_length"),
        (amex, "73910", "cvc_length"),
        (visa, "7391", "cvc_length"),
        (visa, "73", "cvc_length"),
        (visa, "１２３", "characters"),
        (visa, "12a", "characters"),
        (visa, "1 3", "characters"),
        (visa, "12\n3", "characters"),
        (amex, "٧٣٩١", "characters"),
    ];
    for (pan, cvc, reason) in cases {
        let form = card(pan, "12/39", cvc, "Ada Lovelace");
        customer
            .refused_field(form, &[pan, cvc], "cvc", reason)
            .await;
    }
    // With an invalid card number the brand is unknown: the number alone is reported.
    let bad = "4242424242424241";
    let form = card(bad, "12/39", "7391", "Ada Lovelace");
    customer
        .refused_field(form, &[bad], "card_number", "luhn")
        .await;
    // The right lengths are stored.
    for (pan, cvc) in [(amex, "7391"), (visa, "739")] {
        let form = card(pan, "12/39", cvc, "Ada Lovelace");
        assert_eq!(customer.stored(form, "cvc").await, cvc);
    }
}

#[tokio::test]
async fn expiry_edges_of_month_and_window() {
    // The last millisecond of January 2031.
    let last_ms = Fixture::at(UNIX_EPOCH + Duration::from_millis(1_927_670_399_999));
    let customer = Customer::on(last_ms, SessionOptions::default());
    let cases = [
        ("00/31", "month"),
        ("13/31", "month"),
        ("99/31", "month"),
        ("00/2031", "month"),
        ("12/30", "expired"),
        ("12/2030", "expired"),
        ("01/2000", "expired"),
        ("02/2051", "too_far"),
        ("01/9999", "too_far"),
        ("1/31", "format"),
        ("01-31", "format"),
        ("0131", "format"),
        ("01/3", "format"),
        ("01/203", "format"),
        ("01/31/01", "format"),
        ("aa/bb", "format"),
        ("０１/３１", "format"),
        ("01/٣١", "format"),
        ("-1/31", "format"),
        ("+1/31", "format"),
        ("01/+31", "format"),
    ];
    for (expiry, reason) in cases {
        let form = card("4242424242424242", expiry, "123", "Ada Lovelace");
        customer
            .refused_field(form, &[expiry], "expiry", reason)
            .await;
    }
    // The current month is valid through its last millisecond, and so is exactly 20 years
    // ahead.
    for (expiry, stored) in [
        ("01/31", "01/31"),
        ("01/2031", "01/31"),
        (" 01 / 31 ", "01/31"),
        ("01/2051", "01/51"),
    ] {
        let form = card("4242424242424242", expiry, "123", "A B");
        assert_eq!(customer.stored(form, "expiry").await, stored);
    }
    // One millisecond later, January is over.
    customer.fx.clock.advance(Duration::from_millis(1));
    let form = card("4242424242424242", "01/31", "123", "Ada Lovelace");
    customer.refused_field(form, &[], "expiry", "expired").await;
}

#[tokio::test]
async fn names_with_control_characters_digits_or_markup_are_refused() {
    let customer = Customer::new();
    let long = "a".repeat(101);
    let cases = [
        ("Ada\nLovelace", "characters"),
        ("Ada\r\nLovelace", "characters"),
        ("Ada\tLovelace", "characters"),
        ("Ada\0", "characters"),
        ("Ada\u{7f}", "characters"),
        ("Ada\u{85}Lovelace", "characters"),
        ("Ada\u{1b}[31mLovelace", "characters"),
        ("\u{202e}ecalevoL adA", "characters"),
        ("Ada\u{200b}Lovelace", "characters"),
        ("<script>alert(1)</script>", "characters"),
        ("Ada <b>Lovelace</b>", "characters"),
        ("Ada &amp; Co", "characters"),
        ("\"Ada\" Lovelace", "characters"),
        ("Ada Lovelace 4242424242424242", "characters"),
        ("Ada 2nd", "characters"),
        ("Ada 😀", "characters"),
        ("{{name}}", "characters"),
        ("${jndi:ldap://x}", "characters"),
        ("'; DROP TABLE--", "characters"),
        (long.as_str(), "too_long"),
        ("", "required"),
        ("   ", "required"),
        ("\u{a0}\u{a0}", "required"),
    ];
    for (name, reason) in cases {
        let form = card("4242424242424242", "12/39", "123", name);
        customer
            .refused_field(form, &[name], "cardholder_name", reason)
            .await;
    }
    // Names in any script, with marks and apostrophes, are stored normalized.
    let hundred = "a".repeat(100);
    let good = [
        ("  Zoë   O’Brien-Smith  ", "Zoë O’Brien-Smith"),
        ("José\u{a0}Martínez", "José Martínez"),
        ("Jose\u{301} Marti\u{301}nez", "Jose\u{301} Marti\u{301}nez"),
        ("محمد عبد الله", "محمد عبد الله"),
        ("李小龍", "李小龍"),
        ("Dr. J. R. R. Tolkien, Jr.", "Dr. J. R. R. Tolkien, Jr."),
        (hundred.as_str(), hundred.as_str()),
    ];
    for (name, stored) in good {
        let form = card("4242424242424242", "12/39", "123", name);
        assert_eq!(customer.stored(form, "cardholder_name").await, stored);
    }
}

#[tokio::test]
async fn oversized_values_and_too_many_fields_are_refused() {
    let customer = Customer::new();
    let mib = "4".repeat(1 << 20);
    let err = customer.refused(card(&mib, &mib, &mib, &mib), &[]).await;
    assert_eq!(
        field_errors(&err),
        ["card_number", "expiry", "cvc", "cardholder_name"].map(|f| (f.to_string(), "too_long"))
    );
    // 33 fields, and 10,000: refused before any value is looked at.
    for n in [33, 10_000] {
        let mut many = visa_form();
        for i in 0..n - 4 {
            many.insert(format!("extra_{i}"), "x");
        }
        let err = customer.refused(many, &[]).await;
        assert_refused(&err, ErrorCode::InvalidArgument, &[], "too many fields");
    }

    // A text field takes 1 KiB and not a byte more, and no control character.
    let with_note = SessionOptions::default().with_form(
        FormSpec::new(vec![
            FieldSpec::named("card_number").unwrap(),
            FieldSpec::new("note", FieldKind::Text, true).unwrap(),
        ])
        .unwrap(),
    );
    let customer = Customer::on(Fixture::new(), with_note);
    let note = |text: &str| {
        FormInput::new()
            .with("card_number", "4242424242424242")
            .with("note", text)
    };
    let long = "n".repeat(1025);
    customer
        .refused_field(note(&long), &[], "note", "too_long")
        .await;
    customer
        .refused_field(note("line\nbreak"), &[], "note", "characters")
        .await;
    let stored = customer.stored(note(&long[..1024]), "note").await;
    assert_eq!(stored.len(), 1024);
}

#[tokio::test]
async fn unknown_and_repeated_fields_are_refused() {
    let customer = Customer::new();
    let unknown = [
        "pin",
        "CARD_NUMBER",
        "card_number ",
        " card_number",
        "card-number",
        "card_number\0",
        "card_number\r\n",
        "",
        "__proto__",
        "constructor",
        "{card_number}",
        "cardnumber",
        "ｃｖｃ",
    ];
    let pan = "4242424242424242";
    for name in unknown {
        let err = customer.refused(visa_form().with(name, pan), &[pan]).await;
        assert_refused(&err, ErrorCode::InvalidArgument, &[name, pan], name);
    }
    // The same field twice, whether the values agree or not: which one was meant is
    // ambiguous, so neither is taken.
    for (field, value) in [
        ("card_number", "4242424242424242"),
        ("card_number", "5555555555554444"),
        ("cvc", "123"),
        ("cardholder_name", "Mallory"),
    ] {
        let err = customer
            .refused(visa_form().with(field, value), &[value])
            .await;
        assert_refused(&err, ErrorCode::InvalidArgument, &[value], field);
    }
    // After all that, a valid form is still taken and revealed intact.
    let stored = customer.stored(visa_form(), "card_number").await;
    assert_eq!(stored, "4242424242424242");
}
