//! The agent API: create a session, follow it, reveal it once, cancel it.
//! Every route takes `Authorization: Bearer <api key>`; the key decides the tenant.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pci_vault::{
    Error, ExposeSecret, Pin, RevealedForm, SessionEventKind, SessionId, SessionOverrides,
    SessionState, SessionStatus, Vault,
};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::auth::Agent;
use crate::error::{ApiError, documented_errors};
use crate::extract::{Json, SessionIdPath};
use crate::respond::{rfc3339, secret_json};
use crate::state::AppState;
use pci_vault_webhooks as webhooks;

/// What the agent asks for; every member is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    /// How long the link and any data live, in seconds: 1–86400, default 900.
    #[schema(minimum = 1, maximum = 86400, example = 900)]
    ttl_seconds: Option<u32>,
    /// Non-secret labels: at most 16 entries, keys 1–64 bytes, values at most 256 bytes,
    /// no card numbers.
    #[schema(example = json!({"conversation": "c-42"}))]
    metadata: Option<BTreeMap<String, String>>,
    /// The fields the form asks for, in order; default `card_number`, `expiry`, `cvc`,
    /// `cardholder_name`. Other names (1–32 of `a-z 0-9 _`) are text fields.
    #[schema(example = json!(["card_number", "expiry", "cvc", "cardholder_name"]))]
    fields: Option<Vec<String>>,
    /// PIN digits: 4–12, default 6.
    #[schema(minimum = 4, maximum = 12)]
    pin_length: Option<u8>,
    /// Wrong PINs before the session locks: 1–10, default 5.
    #[schema(minimum = 1, maximum = 10)]
    max_attempts: Option<u8>,
}

impl CreateSessionRequest {
    fn overrides(self) -> SessionOverrides {
        let mut overrides = SessionOverrides::new();
        overrides.ttl_seconds = self.ttl_seconds.map(u64::from);
        overrides.pin_length = self.pin_length.map(u64::from);
        overrides.max_attempts = self.max_attempts.map(u64::from);
        overrides.fields = self.fields;
        overrides.metadata = self.metadata.map(|m| m.into_iter().collect());
        overrides
    }
}

/// A session's state on the wire: `pending`, `submitted`, `revealed`, `cancelled` or
/// `locked`, as the core spells it.
#[derive(Debug, Clone, Copy)]
pub struct StateName(pub(crate) SessionState);

impl Serialize for StateName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

impl PartialSchema for StateName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(SessionState::ALL.map(SessionState::as_str)))
            .into()
    }
}

impl ToSchema for StateName {}

/// A new session. No `Debug`: its id and link are the customer's credential.
#[derive(Serialize, ToSchema)]
pub struct SessionCreated {
    /// The session id.
    id: String,
    /// The link to send to the customer.
    url: String,
    /// Always `pending`.
    state: StateName,
    /// When the link and any data expire (RFC 3339).
    #[schema(format = DateTime)]
    expires_at: String,
}

/// What the agent may know about a session; never secret data. No `Debug`: its id is the
/// customer's credential.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    /// The session id.
    id: String,
    /// The current state.
    state: StateName,
    /// When the session was created (RFC 3339).
    #[schema(format = DateTime)]
    created_at: String,
    /// When the session expires (RFC 3339).
    #[schema(format = DateTime)]
    expires_at: String,
    /// When the customer submitted the form (RFC 3339), or null.
    #[schema(format = DateTime)]
    submitted_at: Option<String>,
    /// Wrong PINs still allowed before the session locks.
    attempts_left: u8,
    /// The labels given at creation.
    metadata: BTreeMap<String, String>,
    /// The fields the form asks for.
    fields: Vec<String>,
    /// While the session is submitted: the card's brand and masked number (first 6 and
    /// last 4 digits), to confirm the card with the customer before revealing; null
    /// otherwise. Nothing else of the card.
    card: Option<CardView>,
}

impl SessionView {
    fn new(id: &SessionId, status: &SessionStatus) -> Self {
        SessionView {
            id: id.to_string(),
            state: StateName(status.state),
            created_at: rfc3339(status.created_at),
            expires_at: rfc3339(status.expires_at),
            submitted_at: status.submitted_at.map(rfc3339),
            attempts_left: status.attempts_left,
            metadata: status.metadata_pairs().collect(),
            fields: status.field_names(),
            card: status.card_view().map(|(brand, masked_number)| CardView {
                brand,
                masked_number,
            }),
        }
    }
}

/// The PIN the customer read out.
#[derive(Deserialize, Zeroize, ZeroizeOnDrop, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevealRequest {
    /// 4–12 digits.
    #[schema(example = "123456")]
    pin: String,
}

/// The revealed form: returned once.
#[derive(Serialize, ToSchema)]
pub struct RevealResponse<'a> {
    /// The session id.
    #[schema(value_type = String)]
    id: &'a str,
    /// Every field the customer filled, in clear.
    #[schema(value_type = BTreeMap<String, String>)]
    fields: RevealedFields<'a>,
    /// Brand and masked number, when the form has a card number.
    card: Option<CardView>,
}

/// The brand and masked number of a card: safe to show.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardView {
    /// `visa`, `mastercard`, `amex`, `discover`, `jcb`, `diners`, `unionpay` or `maestro`.
    brand: &'static str,
    /// First 6 and last 4 digits, the rest `*`.
    masked_number: String,
}

/// The clear fields, serialized straight from the vault's secret strings.
pub struct RevealedFields<'a>(&'a RevealedForm);

impl Serialize for RevealedFields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in self.0.iter() {
            map.serialize_entry(name, value.expose_secret())?;
        }
        map.end()
    }
}

/// Creates a session and returns the link for the customer.
#[utoipa::path(
    post,
    path = "/v1/sessions",
    tag = "agent",
    security(("api_key" = [])),
    request_body(content = CreateSessionRequest, content_type = "application/json",
        description = "Optional; an empty body takes every default"),
    responses(
        (status = 201, description = "Created", body = SessionCreated,
            headers(("Location" = String, description = "The session's API URL"))),
        CreateErrors,
    )
)]
pub async fn create_session(
    State(state): State<AppState>,
    Agent(vault, _): Agent,
    Json(request): Json<CreateSessionRequest>,
) -> Result<Response, ApiError> {
    let options = request.overrides().apply(vault.session_defaults())?;
    let creating = vault.clone();
    let ticket = state
        .shutdown()
        .to_completion(async move { creating.create_session(&options).await })
        .await?;
    webhooks::feed::follow(state.webhooks(), &vault, &ticket.id);
    let created = SessionCreated {
        id: ticket.id.to_string(),
        url: state.public_url().form_link(&ticket.id),
        state: StateName(SessionState::Pending),
        expires_at: rfc3339(ticket.expires_at),
    };
    let location = HeaderValue::try_from(format!("/v1/sessions/{}", ticket.id))
        .map_err(|_| ApiError::BadRequest("unreachable: a session id is a header value"))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(created),
    )
        .into_response())
}

/// A session's state, times, attempts left and metadata.
#[utoipa::path(
    get,
    path = "/v1/sessions/{id}",
    tag = "agent",
    security(("api_key" = [])),
    params(SessionIdPath),
    responses((status = 200, description = "The session", body = SessionView), StatusErrors)
)]
pub async fn get_session(
    State(state): State<AppState>,
    Agent(vault, _): Agent,
    SessionIdPath(id): SessionIdPath,
) -> Result<axum::Json<SessionView>, ApiError> {
    let status = vault.status(&id).await?;
    // A live session read here is followed from here too (its creating process may have
    // stopped); an ended one is not: nothing more will happen to it.
    if !status.state.is_terminal() {
        webhooks::feed::follow_live(state.webhooks(), &vault, &id);
    }
    Ok(axum::Json(SessionView::new(&id, &status)))
}

/// Reveals the form once, with the PIN the customer read out.
#[utoipa::path(
    post,
    path = "/v1/sessions/{id}/reveal",
    tag = "agent",
    security(("api_key" = [])),
    params(SessionIdPath),
    request_body(content = RevealRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The clear form; the stored data is destroyed", body = RevealResponse<'static>),
        RevealErrors,
    )
)]
pub async fn reveal(
    State(state): State<AppState>,
    Agent(vault, _): Agent,
    SessionIdPath(id): SessionIdPath,
    Json(request): Json<Option<RevealRequest>>,
) -> Result<Response, ApiError> {
    let request = request.ok_or(ApiError::BadRequest(
        "the body must be {\"pin\": \"<digits>\"}",
    ))?;
    let pin = Pin::parse(&request.pin)?;
    let id_text = id.to_string();
    let revealing = vault.clone();
    let session = id.clone();
    // Read before the reveal: a watch that follows the session now delivers its outcome,
    // and may have ended (and stopped following) by the time the reveal returns.
    let followed = state.webhooks().follows(&id);
    let outcome = state
        .shutdown()
        .to_completion(async move { revealing.reveal(&session, &pin).await })
        .await;
    if !followed {
        announce_reveal(&state, &vault, &id, &outcome);
    }
    let form = outcome?;
    let capacity = 256
        + form
            .iter()
            .map(|(name, value)| name.len() + 6 * value.expose_secret().len() + 8)
            .sum::<usize>();
    let body = RevealResponse {
        id: &id_text,
        fields: RevealedFields(&form),
        card: form.card_view().map(|(brand, masked_number)| CardView {
            brand,
            masked_number,
        }),
    };
    Ok(secret_json(StatusCode::OK, &body, capacity))
}

/// Tells the tenant's webhook receiver how a reveal made here, on a session this process
/// did not follow, ended — the process that created the session, which would tell it
/// otherwise, may have stopped — and follows a session that a wrong PIN left live.
fn announce_reveal(
    state: &AppState,
    vault: &Vault,
    id: &SessionId,
    outcome: &Result<RevealedForm, Error>,
) {
    let (kind, attempts_left) = match outcome {
        Ok(_) => (SessionEventKind::Revealed, 0),
        Err(e) => match e.attempts_left() {
            Some(left) => (SessionEventKind::RevealFailed, left),
            None => return,
        },
    };
    webhooks::feed::announce(state.webhooks(), vault.tenant(), id, kind, attempts_left);
    if kind == SessionEventKind::RevealFailed {
        webhooks::feed::follow_live(state.webhooks(), vault, id);
    }
}

/// Cancels a session and destroys its data.
#[utoipa::path(
    delete,
    path = "/v1/sessions/{id}",
    tag = "agent",
    security(("api_key" = [])),
    params(SessionIdPath),
    responses((status = 204, description = "Cancelled (again, if it already was)"), CancelErrors)
)]
pub async fn cancel(
    State(state): State<AppState>,
    Agent(vault, _): Agent,
    SessionIdPath(id): SessionIdPath,
) -> Result<StatusCode, ApiError> {
    state
        .shutdown()
        .to_completion(async move { vault.cancel(&id).await })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

documented_errors! {
    /// The errors of `create_session`.
    CreateErrors {
        codes: [InvalidArgument, KeyUnavailable, StoreUnavailable, CapacityExceeded],
        own: [
            ApiError::Unauthorized, ApiError::PayloadTooLarge, ApiError::UnsupportedMediaType,
            ApiError::RateLimited { retry_after: 1 }, ApiError::BodyTimeout,
            ApiError::RequestTimeout,
        ],
    }
}

documented_errors! {
    /// The errors of `get_session`.
    StatusErrors {
        codes: [InvalidArgument, NotFound, KeyUnavailable, IntegrityError, StoreUnavailable],
        own: [
            ApiError::Unauthorized, ApiError::RateLimited { retry_after: 1 },
            ApiError::RequestTimeout,
        ],
    }
}

documented_errors! {
    /// The errors of `reveal`.
    RevealErrors {
        codes: [
            InvalidArgument, WrongPin, NotFound, NotSubmitted, AlreadyRevealed, Cancelled,
            Locked, KeyUnavailable, IntegrityError, StoreUnavailable,
        ],
        own: [
            ApiError::Unauthorized, ApiError::PayloadTooLarge, ApiError::UnsupportedMediaType,
            ApiError::RateLimited { retry_after: 1 }, ApiError::BodyTimeout,
            ApiError::RequestTimeout,
        ],
    }
}

documented_errors! {
    /// The errors of `cancel`.
    CancelErrors {
        codes: [
            InvalidArgument, NotFound, AlreadyRevealed, Locked, KeyUnavailable, IntegrityError,
            StoreUnavailable,
        ],
        own: [
            ApiError::Unauthorized, ApiError::RateLimited { retry_after: 1 },
            ApiError::RequestTimeout,
        ],
    }
}
