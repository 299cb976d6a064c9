//! The customer side: the secure form page and its submission.
//!
//! `GET /forms/{id}` only reads, so a chat's link preview cannot use up a link; unknown,
//! expired, malformed and already used links all get the same neutral 404 page.
//! `POST /forms/{id}` takes the page's own form (urlencoded, answered in HTML) or JSON
//! from a custom front end (answered in JSON).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pci_vault::{Error, SessionId};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, documented_errors};
use crate::extract::{SessionIdPath, WipedBody, body_kind};
use crate::i18n::Lang;
use crate::pages::{self, FormProblems, Message};
use crate::request::{BodyKind, Submission};
use crate::respond::{rfc3339, secret_json};
use crate::state::AppState;

/// A custom front end's submission.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "describes the request body for the OpenAPI document"
)]
pub struct SubmitRequest {
    /// Field names to values; the default form has `card_number`, `expiry` (`MM/YY`),
    /// `cvc` and `cardholder_name`.
    #[schema(example = json!({"card_number": "4242 4242 4242 4242", "expiry": "12/34", "cvc": "123", "cardholder_name": "Ada Lovelace"}))]
    fields: BTreeMap<String, String>,
}

/// The page's own form: one entry per field.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "describes the request body for the OpenAPI document"
)]
pub struct SubmitForm {
    /// The card number.
    card_number: Option<String>,
    /// The expiry, `MM/YY`.
    expiry: Option<String>,
    /// The security code.
    cvc: Option<String>,
    /// The name on the card.
    cardholder_name: Option<String>,
}

/// What a custom front end shows the customer after a submission. No `Debug`: it holds the
/// PIN.
#[derive(Serialize, ToSchema)]
pub struct SubmitResponse<'a> {
    /// The PIN the customer reads out to the agent. Show it only to the customer.
    #[schema(value_type = String, example = "123456")]
    pin: &'a str,
    /// When the session and its data expire (RFC 3339).
    #[schema(format = DateTime)]
    expires_at: String,
}

pub(crate) fn lang_of(headers: &HeaderMap) -> Lang {
    Lang::negotiate(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The secure form.
#[utoipa::path(
    get,
    path = "/forms/{id}",
    tag = "customer",
    params(SessionIdPath),
    responses(
        (status = 200, description = "The form page", content_type = "text/html", body = String),
        (status = 404, description = "The neutral page: unknown, expired or used link", content_type = "text/html", body = String),
        (status = 429, description = "The rate-limit page: too many loads and submissions from this client (`--form-rate-limit`)", content_type = "text/html", body = String,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The store or key provider failed", content_type = "text/html", body = String),
    )
)]
pub async fn form_page(
    State(state): State<AppState>,
    id: Result<SessionIdPath, ApiError>,
    headers: HeaderMap,
) -> Response {
    let lang = lang_of(&headers);
    let Ok(SessionIdPath(id)) = id else {
        return pages::message_page(lang, Message::Gone);
    };
    match state.vault().form_opened(&id).await {
        Ok(Some(form)) => pages::form_page(lang, &form, &FormProblems::default()),
        Ok(None) => pages::message_page(lang, Message::Gone),
        Err(e) => {
            tracing::warn!(code = %e.code(), "form page lookup failed");
            pages::message_page(lang, Message::Unavailable)
        }
    }
}

/// Submits the form: urlencoded from the page itself (answered in HTML; `Origin` must be
/// this server's public origin), or JSON from a custom front end (answered in JSON).
#[utoipa::path(
    post,
    path = "/forms/{id}",
    tag = "customer",
    params(SessionIdPath),
    request_body(content(
        (SubmitRequest = "application/json"),
        (SubmitForm = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Stored; the PIN for the customer", content(
            (SubmitResponse<'static> = "application/json"),
            (String = "text/html"),
        )),
        (status = 403, description = "A form POST from another origin", content_type = "text/html", body = String),
        SubmitErrors,
    )
)]
pub async fn submit(
    State(state): State<AppState>,
    id: Result<SessionIdPath, ApiError>,
    headers: HeaderMap,
    body: WipedBody,
) -> Response {
    let id = id.map(|SessionIdPath(id)| id);
    match body_kind(&headers) {
        Some(BodyKind::Form) => submit_form(&state, id, &headers, &body).await,
        Some(BodyKind::Json) => submit_json(&state, id, &body)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        None => ApiError::UnsupportedMediaType.into_response(),
    }
}

async fn submit_form(
    state: &AppState,
    id: Result<SessionId, ApiError>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let lang = lang_of(headers);
    let same_origin = state.public_url().accepts_form_post(
        header_str(headers, header::ORIGIN.as_str()),
        header_str(headers, "sec-fetch-site"),
    );
    if !same_origin {
        return pages::message_page(lang, Message::Forbidden);
    }
    let Ok(id) = id else {
        return pages::message_page(lang, Message::Gone);
    };
    let form = match state.vault().pending_form(&id).await {
        Ok(Some(form)) => form,
        Ok(None) => return pages::message_page(lang, Message::Gone),
        Err(e) => {
            tracing::warn!(code = %e.code(), "form submission lookup failed");
            return pages::message_page(lang, Message::Unavailable);
        }
    };
    let malformed = FormProblems {
        malformed: true,
        ..FormProblems::default()
    };
    let Ok(submission) = Submission::from_urlencoded(body) else {
        return pages::form_page(lang, &form, &malformed);
    };
    let (vault, input) = (state.vault().clone(), submission.to_form_input());
    let submitting = state
        .shutdown()
        .to_completion(async move { vault.submit(&id, &input).await });
    match submitting.await {
        Ok(receipt) => pages::pin_page(lang, receipt.pin.expose_secret(), receipt.expires_at),
        Err(Error::ValidationFailed { fields }) => pages::form_page(
            lang,
            &form,
            &FormProblems {
                fields: &fields,
                malformed: false,
                submitted: Some(&submission),
            },
        ),
        Err(Error::InvalidArgument(_)) => pages::form_page(lang, &form, &malformed),
        Err(e) if is_gone(&e) => pages::message_page(lang, Message::Gone),
        Err(e) => {
            tracing::warn!(code = %e.code(), "form submission failed");
            pages::message_page(lang, Message::Unavailable)
        }
    }
}

/// Whether the customer should see the neutral page: the link is no longer usable.
fn is_gone(e: &Error) -> bool {
    matches!(
        e,
        Error::NotFound
            | Error::AlreadySubmitted
            | Error::AlreadyRevealed
            | Error::Cancelled
            | Error::Locked
    )
}

async fn submit_json(
    state: &AppState,
    id: Result<SessionId, ApiError>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let id = id?;
    let submission = Submission::from_json(body).map_err(|e| ApiError::BadRequest(e.0))?;
    let (vault, input) = (state.vault().clone(), submission.to_form_input());
    let receipt = state
        .shutdown()
        .to_completion(async move { vault.submit(&id, &input).await })
        .await?;
    let body = SubmitResponse {
        pin: receipt.pin.expose_secret(),
        expires_at: rfc3339(receipt.expires_at),
    };
    Ok(secret_json(StatusCode::OK, &body, 128))
}

documented_errors! {
    /// The errors of `submit`: JSON for a custom front end, and a page for the page's own form
    /// where the customer has something to read.
    SubmitErrors {
        codes: [
            InvalidArgument, NotFound, AlreadySubmitted, AlreadyRevealed, Cancelled,
            ValidationFailed, Locked, KeyUnavailable, IntegrityError, StoreUnavailable,
            CapacityExceeded,
        ],
        own: [
            ApiError::PayloadTooLarge, ApiError::UnsupportedMediaType,
            ApiError::RateLimited { retry_after: 1 }, ApiError::BodyTimeout,
            ApiError::RequestTimeout,
        ],
        pages: [400, 404, 422, 429, 503],
    }
}
