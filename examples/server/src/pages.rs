//! HTML pages: the customer's form, PIN and message pages, and the agent console.
//!
//! Templates are askama files under `templates/`, escaped by default. A page that holds
//! card data or a PIN is rendered into a zeroizing buffer that also backs the response
//! body, so the text is wiped when the body is dropped.

use std::fmt::Write as _;
use std::time::SystemTime;

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pci_vault::{FieldKind, FieldSpec, FormSpec};
use zeroize::Zeroizing;

use crate::headers::{AGENT_CSP, FORM_CSP};
use crate::i18n::{Lang, Texts};
use crate::request::Submission;
use crate::respond::secret_body;

/// One input of the form page.
#[derive(Debug)]
pub struct FieldView<'a> {
    name: &'a str,
    label: &'a str,
    hint: Option<&'static str>,
    error: Option<&'static str>,
    described_by: Option<String>,
    autocomplete: Option<&'static str>,
    inputmode: Option<&'static str>,
    placeholder: Option<&'static str>,
    max_length: usize,
    numeric: bool,
    required: bool,
    value: Option<&'a str>,
}

/// A field named in the error summary.
#[derive(Debug)]
pub struct ErrorView<'a> {
    name: &'a str,
    label: &'a str,
    message: &'static str,
}

#[derive(Template)]
#[template(path = "form.html")]
struct FormPage<'a> {
    lang: &'static str,
    root: &'static str,
    t: &'static Texts,
    fields: Vec<FieldView<'a>>,
    errors: Vec<ErrorView<'a>>,
    malformed: bool,
}

#[derive(Template)]
#[template(path = "pin.html")]
struct PinPage<'a> {
    lang: &'static str,
    root: &'static str,
    t: &'static Texts,
    pin: &'a str,
    outro: String,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    lang: &'static str,
    root: &'static str,
    t: &'static Texts,
    title: &'static str,
    body: &'static str,
}

#[derive(Template)]
#[template(path = "agent.html")]
struct AgentPage {
    lang: &'static str,
    root: &'static str,
}

/// The customer pages live under `/forms/`, so assets are one level up (relative links
/// keep working behind a path prefix).
const FORM_ROOT: &str = "../";

/// What went wrong with a submission, for the form page shown again.
#[derive(Debug, Default)]
pub struct FormProblems<'a> {
    /// Per-field reasons.
    pub fields: &'a [pci_vault::FieldError],
    /// The submission could not be read at all.
    pub malformed: bool,
    /// What was sent, to fill in again (except the card number and security code).
    pub submitted: Option<&'a Submission>,
}

fn field_view<'a>(
    spec: &'a FieldSpec,
    t: &'static Texts,
    problems: &FormProblems<'a>,
) -> FieldView<'a> {
    let (label, hint, autocomplete, inputmode, placeholder, max_length, numeric) = match spec.kind()
    {
        FieldKind::CardNumber => (
            t.card_number,
            None,
            Some("cc-number"),
            Some("numeric"),
            None,
            23,
            true,
        ),
        FieldKind::Expiry => (
            t.expiry,
            Some(t.expiry_hint),
            Some("cc-exp"),
            None,
            Some("MM/YY"),
            7,
            true,
        ),
        FieldKind::Cvc => (
            t.cvc,
            Some(t.cvc_hint),
            Some("cc-csc"),
            Some("numeric"),
            None,
            4,
            true,
        ),
        FieldKind::CardholderName => (
            t.cardholder_name,
            None,
            Some("cc-name"),
            None,
            None,
            100,
            false,
        ),
        _ => (
            spec.name(),
            None,
            None,
            None,
            None,
            FormSpec::MAX_VALUE_LEN,
            false,
        ),
    };
    let name = spec.name();
    let error = problems
        .fields
        .iter()
        .find(|e| e.field == name)
        .map(|e| t.reason(e.reason));
    let mut described_by = String::new();
    if hint.is_some() {
        let _ = write!(described_by, "{name}-hint");
    }
    if error.is_some() {
        let sep = if described_by.is_empty() { "" } else { " " };
        let _ = write!(described_by, "{sep}{name}-error");
    }
    // The card number and security code are never sent back to the browser.
    let echo = !matches!(spec.kind(), FieldKind::CardNumber | FieldKind::Cvc);
    let value = problems
        .submitted
        .filter(|_| echo)
        .and_then(|s| s.value(name));
    FieldView {
        name,
        label,
        hint,
        error,
        described_by: (!described_by.is_empty()).then_some(described_by),
        autocomplete,
        inputmode,
        placeholder,
        max_length,
        numeric,
        required: spec.required(),
        value,
    }
}

/// The form page for a pending session; with `problems`, shown again after a refused
/// submission (422, or 400 when the body could not be read).
pub fn form_page(lang: Lang, form: &FormSpec, problems: &FormProblems<'_>) -> Response {
    let t = lang.texts();
    let fields: Vec<FieldView<'_>> = form
        .fields()
        .iter()
        .map(|spec| field_view(spec, t, problems))
        .collect();
    let errors = fields
        .iter()
        .filter_map(|f| {
            f.error.map(|message| ErrorView {
                name: f.name,
                label: f.label,
                message,
            })
        })
        .collect();
    let status_code = if problems.malformed {
        StatusCode::BAD_REQUEST
    } else if problems.fields.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = FormPage {
        lang: lang.tag(),
        root: FORM_ROOT,
        t,
        fields,
        errors,
        malformed: problems.malformed,
    };
    html(status_code, lang, FORM_CSP, &page)
}

/// The page that shows the customer their PIN.
pub fn pin_page(lang: Lang, pin: &str, expires_at: SystemTime) -> Response {
    let t = lang.texts();
    let page = PinPage {
        lang: lang.tag(),
        root: FORM_ROOT,
        t,
        pin,
        outro: t.pin_outro.replace("{}", &human_time(expires_at)),
    };
    html(StatusCode::OK, lang, FORM_CSP, &page)
}

/// The customer-side message pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// Unknown, expired or used link: the same page for each (404).
    Gone,
    /// A form POST from another origin (403).
    Forbidden,
    /// Too many submissions from this client (429).
    RateLimited,
    /// A server-side failure (503).
    Unavailable,
}

/// A customer-side message page.
pub fn message_page(lang: Lang, message: Message) -> Response {
    let t = lang.texts();
    let (status, title, body) = match message {
        Message::Gone => (StatusCode::NOT_FOUND, t.gone_title, t.gone_body),
        Message::Forbidden => (StatusCode::FORBIDDEN, t.forbidden_title, t.forbidden_body),
        Message::RateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            t.rate_limited_title,
            t.rate_limited_body,
        ),
        Message::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            t.unavailable_title,
            t.unavailable_body,
        ),
    };
    let page = MessagePage {
        lang: lang.tag(),
        root: FORM_ROOT,
        t,
        title,
        body,
    };
    html(status, lang, FORM_CSP, &page)
}

/// The agent console.
pub fn agent_page() -> Response {
    let page = AgentPage {
        lang: "en",
        root: "",
    };
    html(StatusCode::OK, Lang::En, AGENT_CSP, &page)
}

/// Renders `page` into a zeroizing buffer that backs the response body.
fn html(status: StatusCode, lang: Lang, csp: &'static str, page: &impl Template) -> Response {
    let mut text = Zeroizing::new(String::with_capacity(16 * 1024));
    if page.render_into(&mut *text).is_err() {
        tracing::error!("a page template failed to render");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let bytes = Zeroizing::new(std::mem::take(&mut *text).into_bytes());
    let mut response = Response::new(secret_body(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(lang.tag()),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    response
}

/// A time for people: `2026-11-25 14:05 UTC`.
fn human_time(at: SystemTime) -> String {
    let t = time::OffsetDateTime::from(at);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}
