//! The customer pages' languages: English and German, chosen by `Accept-Language`.

use pci_vault::FieldReason;

/// A language of the customer pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English, the default.
    En,
    /// German.
    De,
}

impl Lang {
    /// The best supported language for an `Accept-Language` header: the highest `q` among
    /// `en*` and `de*` ranges, the earlier one on a tie; English when neither is acceptable
    /// or the header is missing or malformed.
    pub fn negotiate(accept_language: Option<&str>) -> Lang {
        let Some(header) = accept_language else {
            return Lang::En;
        };
        let mut best: Option<(Lang, u16)> = None;
        for range in header.split(',').take(32) {
            let mut parts = range.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let primary = tag.split('-').next().unwrap_or_default();
            let lang = if primary.eq_ignore_ascii_case("de") {
                Lang::De
            } else if primary.eq_ignore_ascii_case("en") || primary == "*" {
                Lang::En
            } else {
                continue;
            };
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1000), parse_q);
            let Some(q) = q else { continue };
            if q > 0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((lang, q));
            }
        }
        best.map_or(Lang::En, |(lang, _)| lang)
    }

    /// The BCP 47 tag, for `lang` and `Content-Language`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }

    /// The texts in this language.
    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::En => &EN,
            Lang::De => &DE,
        }
    }
}

/// A `q` value (`0`–`1`, at most three decimals) in thousandths.
fn parse_q(text: &str) -> Option<u16> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// Every text of the customer pages in one language.
#[derive(Debug)]
pub struct Texts {
    /// Title of the form page.
    pub form_title: &'static str,
    /// Introduction above the form.
    pub form_intro: &'static str,
    /// Label of the card number field.
    pub card_number: &'static str,
    /// Label of the expiry field.
    pub expiry: &'static str,
    /// Hint under the expiry field.
    pub expiry_hint: &'static str,
    /// Label of the security code field.
    pub cvc: &'static str,
    /// Hint under the security code field.
    pub cvc_hint: &'static str,
    /// Label of the cardholder name field.
    pub cardholder_name: &'static str,
    /// Marks an optional field.
    pub optional: &'static str,
    /// The submit button.
    pub submit: &'static str,
    /// Heading of the error summary on a form with invalid fields.
    pub errors_heading: &'static str,
    /// Shown when the submission could not be read at all.
    pub malformed: &'static str,
    /// Title of the PIN page.
    pub pin_title: &'static str,
    /// Text above the PIN.
    pub pin_intro: &'static str,
    /// Text below the PIN; `{}` is the expiry time.
    pub pin_outro: &'static str,
    /// Title and text of the neutral page for unknown, expired and used links.
    pub gone_title: &'static str,
    /// Body of the neutral page.
    pub gone_body: &'static str,
    /// Title of the page for a form sent from another site.
    pub forbidden_title: &'static str,
    /// Body of that page.
    pub forbidden_body: &'static str,
    /// Title of the page for too many attempts.
    pub rate_limited_title: &'static str,
    /// Body of that page.
    pub rate_limited_body: &'static str,
    /// Title of the page for a server-side failure.
    pub unavailable_title: &'static str,
    /// Body of that page.
    pub unavailable_body: &'static str,
    /// Reminder that the page is secure and the agent does not see the data.
    pub footer: &'static str,
    reasons: Reasons,
}

#[derive(Debug)]
struct Reasons {
    required: &'static str,
    too_long: &'static str,
    characters: &'static str,
    length: &'static str,
    luhn: &'static str,
    unknown_brand: &'static str,
    format: &'static str,
    month: &'static str,
    expired: &'static str,
    too_far: &'static str,
    cvc_length: &'static str,
    other: &'static str,
}

impl Texts {
    /// The message for a field rejected for `reason`.
    pub fn reason(&self, reason: FieldReason) -> &'static str {
        let r = &self.reasons;
        match reason {
            FieldReason::Required => r.required,
            FieldReason::TooLong => r.too_long,
            FieldReason::Characters => r.characters,
            FieldReason::Length => r.length,
            FieldReason::Luhn => r.luhn,
            FieldReason::UnknownBrand => r.unknown_brand,
            FieldReason::Format => r.format,
            FieldReason::Month => r.month,
            FieldReason::Expired => r.expired,
            FieldReason::TooFar => r.too_far,
            FieldReason::CvcLength => r.cvc_length,
            _ => r.other,
        }
    }
}

static EN: Texts = Texts {
    form_title: "Pay by card",
    form_intro: "Enter your card details. They are encrypted at once; the agent cannot see them until you tell them the PIN shown on the next page.",
    card_number: "Card number",
    expiry: "Expiry date",
    expiry_hint: "MM/YY, as printed on the card",
    cvc: "Security code",
    cvc_hint: "3 digits on the back, 4 on the front for American Express",
    cardholder_name: "Name on the card",
    optional: "optional",
    submit: "Send securely",
    errors_heading: "Please check these fields",
    malformed: "The form could not be read. Please fill it in again.",
    pin_title: "Thank you",
    pin_intro: "Your card details are stored securely. Tell the agent this PIN:",
    pin_outro: "The PIN is valid until {}. Do not share it with anyone else.",
    gone_title: "Link not available",
    gone_body: "This link is not valid. It may have expired or already been used. Please ask the agent for a new link.",
    forbidden_title: "Form not accepted",
    forbidden_body: "This form can only be sent from its own page. Please open the link you were given and try again.",
    rate_limited_title: "Too many attempts",
    rate_limited_body: "Please wait a moment and try again.",
    unavailable_title: "Temporarily unavailable",
    unavailable_body: "The service cannot take your details right now. Please try again in a moment.",
    footer: "Secure page. Your card details are never shown in the chat.",
    reasons: Reasons {
        required: "Please fill in this field.",
        too_long: "This is too long.",
        characters: "This contains characters that are not allowed.",
        length: "This card number has the wrong number of digits.",
        luhn: "This card number is not valid. Please check it.",
        unknown_brand: "This type of card is not accepted.",
        format: "Please use the format MM/YY.",
        month: "The month must be 01 to 12.",
        expired: "This card has expired.",
        too_far: "This date is too far in the future.",
        cvc_length: "The security code has the wrong number of digits for this card.",
        other: "This value is not valid.",
    },
};

static DE: Texts = Texts {
    form_title: "Mit Karte bezahlen",
    form_intro: "Geben Sie Ihre Kartendaten ein. Sie werden sofort verschlüsselt; der Mitarbeiter sieht sie erst, wenn Sie ihm die PIN von der nächsten Seite nennen.",
    card_number: "Kartennummer",
    expiry: "Gültig bis",
    expiry_hint: "MM/JJ, wie auf der Karte",
    cvc: "Sicherheitscode",
    cvc_hint: "3 Ziffern auf der Rückseite, bei American Express 4 auf der Vorderseite",
    cardholder_name: "Name auf der Karte",
    optional: "optional",
    submit: "Sicher senden",
    errors_heading: "Bitte prüfen Sie diese Felder",
    malformed: "Das Formular konnte nicht gelesen werden. Bitte füllen Sie es erneut aus.",
    pin_title: "Vielen Dank",
    pin_intro: "Ihre Kartendaten sind sicher gespeichert. Nennen Sie dem Mitarbeiter diese PIN:",
    pin_outro: "Die PIN gilt bis {}. Geben Sie sie an niemanden sonst weiter.",
    gone_title: "Link nicht verfügbar",
    gone_body: "Dieser Link ist nicht gültig. Er ist vielleicht abgelaufen oder wurde schon benutzt. Bitte fragen Sie den Mitarbeiter nach einem neuen Link.",
    forbidden_title: "Formular nicht angenommen",
    forbidden_body: "Dieses Formular kann nur von seiner eigenen Seite gesendet werden. Bitte öffnen Sie den erhaltenen Link und versuchen Sie es erneut.",
    rate_limited_title: "Zu viele Versuche",
    rate_limited_body: "Bitte warten Sie einen Moment und versuchen Sie es erneut.",
    unavailable_title: "Vorübergehend nicht verfügbar",
    unavailable_body: "Der Dienst kann Ihre Daten gerade nicht annehmen. Bitte versuchen Sie es gleich noch einmal.",
    footer: "Sichere Seite. Ihre Kartendaten erscheinen nie im Chat.",
    reasons: Reasons {
        required: "Bitte füllen Sie dieses Feld aus.",
        too_long: "Die Eingabe ist zu lang.",
        characters: "Die Eingabe enthält unzulässige Zeichen.",
        length: "Die Kartennummer hat die falsche Anzahl Ziffern.",
        luhn: "Diese Kartennummer ist ungültig. Bitte prüfen Sie sie.",
        unknown_brand: "Diese Kartenart wird nicht angenommen.",
        format: "Bitte im Format MM/JJ eingeben.",
        month: "Der Monat muss zwischen 01 und 12 liegen.",
        expired: "Diese Karte ist abgelaufen.",
        too_far: "Dieses Datum liegt zu weit in der Zukunft.",
        cvc_length: "Der Sicherheitscode hat für diese Karte die falsche Anzahl Ziffern.",
        other: "Dieser Wert ist ungültig.",
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let cases = [
            (None, Lang::En),
            (Some(""), Lang::En),
            (Some("de"), Lang::De),
            (Some("de-DE,de;q=0.9,en;q=0.8"), Lang::De),
            (Some("en-US,en;q=0.9,de;q=0.8"), Lang::En),
            (Some("fr-FR,de;q=0.5,en;q=0.4"), Lang::De),
            (Some("fr, en;q=0.1, de;q=0.2"), Lang::De),
            (Some("DE-at"), Lang::De),
            (Some("de;q=0, en;q=0.1"), Lang::En),
            (Some("de;q=2"), Lang::En),
            (Some("de;q=0.1234"), Lang::En),
            (Some("fr"), Lang::En),
            (Some(";;;,,,=q"), Lang::En),
            (Some("*;q=0.5, de;q=0.6"), Lang::De),
        ];
        for (header, expected) in cases {
            assert_eq!(Lang::negotiate(header), expected, "{header:?}");
        }
    }

    #[test]
    fn q_values() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.05"), Some(50));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("-1"), None);
        assert_eq!(parse_q("0.+1"), None);
    }
}
