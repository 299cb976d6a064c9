//! What the `Vault` methods resolve to, as JavaScript objects.

use chrono::{DateTime, Utc};
use napi::Env;
use napi::JsString;
use napi::bindgen_prelude::{BufferSlice, JsObjectValue, Object};
use napi_derive::napi;
use pci_vault::{ExposeSecret, Receipt, RevealedForm, Ticket};

/// A new session: its id, for the link `{publicBaseUrl}/forms/{id}`, and when it expires.
#[napi(object, object_from_js = false)]
pub struct SessionTicket {
    /// The session id: 43 characters of base64url (256 random bits). It is the customer's
    /// only credential for the form: send it only to that customer.
    pub id: String,
    /// When the link and any data in the session expire.
    pub expires_at: DateTime<Utc>,
}

impl From<Ticket> for SessionTicket {
    fn from(ticket: Ticket) -> Self {
        SessionTicket {
            id: ticket.id.to_string(),
            expires_at: ticket.expires_at.into(),
        }
    }
}

/// What the agent may know about a session. Never secret data.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct SessionStatus {
    /// Where the session is in its life: `pending` → `submitted` → `revealed`;
    /// `pending`/`submitted` → `cancelled`; `submitted` → `locked` after too many wrong
    /// PINs. In the last three the data is destroyed.
    #[napi(ts_type = "'pending' | 'submitted' | 'revealed' | 'cancelled' | 'locked'")]
    pub state: String,
    /// When the session was created.
    pub created_at: DateTime<Utc>,
    /// When the customer submitted the form; `null` before that.
    pub submitted_at: Option<DateTime<Utc>>,
    /// When the session expires.
    pub expires_at: DateTime<Utc>,
    /// Wrong PINs still allowed before the session locks (0 once locked).
    pub attempts_left: u32,
    /// The labels given at creation.
    pub metadata: std::collections::BTreeMap<String, String>,
    /// The names of the fields the form asks for, in order.
    pub fields: Vec<String>,
    /// While the session is submitted: the card's brand and masked number (first 6 and
    /// last 4 digits), to confirm the card with the customer before revealing; `null`
    /// otherwise. Nothing else of the card.
    pub card: Option<CardSummary>,
}

impl From<pci_vault::SessionStatus> for SessionStatus {
    fn from(status: pci_vault::SessionStatus) -> Self {
        SessionStatus {
            state: status.state.as_str().to_owned(),
            created_at: status.created_at.into(),
            submitted_at: status.submitted_at.map(Into::into),
            expires_at: status.expires_at.into(),
            attempts_left: u32::from(status.attempts_left),
            metadata: status.metadata_pairs().collect(),
            fields: status.field_names(),
            card: status
                .card_view()
                .map(|(brand, masked_number)| CardSummary {
                    brand: brand.to_owned(),
                    masked_number,
                }),
        }
    }
}

/// What `submit` resolves to: the PIN to show to the customer — only to the customer.
#[napi(object, object_from_js = false)]
pub struct SubmitReceipt<'env> {
    /// The PIN (4–12 digits). Show it to the customer only; the vault keeps only a
    /// verifier. A JavaScript string cannot be wiped: drop every reference soon.
    pub pin: JsString<'env>,
    /// When the session and its data expire.
    pub expires_at: DateTime<Utc>,
}

impl<'env> SubmitReceipt<'env> {
    /// Copies the PIN straight into a JavaScript string; the Rust copy is wiped when
    /// `receipt` drops.
    pub(crate) fn new(env: &'env Env, receipt: Receipt) -> napi::Result<Self> {
        Ok(SubmitReceipt {
            pin: env.create_string(receipt.pin.expose_secret())?,
            expires_at: receipt.expires_at.into(),
        })
    }
}

/// The brand and masked number of a card: safe to show and to log.
#[napi(object, object_from_js = false)]
pub struct CardSummary {
    /// `visa`, `mastercard`, `amex`, `discover`, `jcb`, `diners`, `unionpay` or `maestro`.
    pub brand: String,
    /// The first 6 and last 4 digits, the rest `*` (e.g. `424242******4242`).
    pub masked_number: String,
}

fn card_summary(form: &RevealedForm) -> Option<CardSummary> {
    let (brand, masked_number) = form.card_view()?;
    Some(CardSummary {
        brand: brand.to_owned(),
        masked_number,
    })
}

/// The clear form, returned once by `reveal`, with values as strings.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct RevealedFields<'env> {
    /// Field name → clear value, in form order (`card_number`, `expiry`, `cvc`,
    /// `cardholder_name`, ...). JavaScript strings cannot be wiped; use `revealBuffers` to
    /// get values you can overwrite.
    #[napi(ts_type = "Record<string, string>")]
    pub fields: Object<'env>,
    /// Brand and masked number; `null` when the form has no card number.
    pub card: Option<CardSummary>,
}

/// The clear form, returned once by `revealBuffers`, with values as `Buffer`s of UTF-8.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct RevealedBuffers<'env> {
    /// Field name → clear value as UTF-8 bytes, in form order. Each `Buffer` is the only
    /// copy of its value outside the vault: `buffer.fill(0)` wipes it.
    #[napi(ts_type = "Record<string, Buffer>")]
    pub fields: Object<'env>,
    /// Brand and masked number; `null` when the form has no card number.
    pub card: Option<CardSummary>,
}

impl<'env> RevealedFields<'env> {
    /// Copies each value into a JavaScript string; the Rust copies are wiped when `form`
    /// drops.
    pub(crate) fn new(env: &'env Env, form: RevealedForm) -> napi::Result<Self> {
        let mut fields = Object::new(env)?;
        for (name, value) in form.iter() {
            fields.set_named_property(name, value.expose_secret())?;
        }
        Ok(RevealedFields {
            fields,
            card: card_summary(&form),
        })
    }
}

impl<'env> RevealedBuffers<'env> {
    /// Copies each value into a new Node `Buffer`; the Rust copies are wiped when `form`
    /// drops.
    pub(crate) fn new(env: &'env Env, form: RevealedForm) -> napi::Result<Self> {
        let mut fields = Object::new(env)?;
        for (name, value) in form.iter() {
            let buffer = BufferSlice::copy_from(env, value.expose_secret().as_bytes())?;
            fields.set_named_property(name, buffer)?;
        }
        Ok(RevealedBuffers {
            fields,
            card: card_summary(&form),
        })
    }
}

/// One invalid form field of a `VALIDATION_FAILED` error (`err.fields`): its name and why
/// it was refused, never its value.
#[napi(object, object_from_js = false)]
pub(crate) struct FieldProblem {
    /// The field name, e.g. `card_number`.
    pub field: String,
    /// Why: `required`, `too_long`, `characters`, `length`, `luhn`, `unknown_brand`,
    /// `format`, `month`, `expired`, `too_far` or `cvc_length`.
    pub reason: String,
}
