//! `GET /v1/sessions/{id}/events`: one session's events as Server-Sent Events.
//!
//! The stream starts with the session's current state (as the event that led to it), then
//! sends each event as it happens, from any process sharing the store, and ends after a
//! terminal one (`revealed`, `locked`, `cancelled`, `expired`). Each SSE message has the
//! event's kind as its `event:` name, its unique id as `id:`, and a JSON `data:` line; a
//! comment line every 15 s keeps proxies from closing a quiet connection. An error while
//! streaming (the session's record can no longer be read) is a last `error` message with
//! the usual error body. A stream whose API key is removed from the API key file (or moved
//! to another tenant) ends within [`KEY_CHECK`] of the reload with a last `error` message,
//! `UNAUTHORIZED`. When the server shuts down, every stream ends at once with a last
//! `shutdown` message: not an error, the client reconnects (to another server) and the new
//! stream starts from the session's state, so nothing is missed. Without it, open streams
//! would hold the shutdown for its whole grace period and then be cut. Events carry no
//! card data and no PIN.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt as _};
use pci_vault::{Error, SessionEvent, SessionEventKind, SessionWatch};
use serde::Serialize;
use utoipa::PartialSchema;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::api::StateName;
use crate::auth::{Agent, Credential};
use crate::error::{ApiError, documented_errors};
use crate::extract::SessionIdPath;
use crate::respond::rfc3339;
use crate::shutdown::Shutdown;
use crate::state::AppState;

/// How often a comment line goes out on a quiet stream.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// How often a quiet stream checks that its API key is still configured; a stream with
/// events checks before each.
pub const KEY_CHECK: Duration = Duration::from_secs(1);

/// The wire spelling of an event kind.
pub struct KindName(SessionEventKind);

impl Serialize for KindName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

impl PartialSchema for KindName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(SessionEventKind::ALL.map(SessionEventKind::as_str)))
            .into()
    }
}

impl ToSchema for KindName {}

/// One event of a session: the `data:` of an SSE message. Never card data or a PIN.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    /// Unique to this event (32 hex digits); also the SSE `id:`.
    id: String,
    /// What happened; also the SSE `event:` name. `created` is a pending session's state
    /// when the stream starts; `opened` means the form page was fetched (link previews
    /// fetch too); `expired` is reported when the session's time passes.
    #[serde(rename = "type")]
    kind: KindName,
    /// The session.
    session_id: String,
    /// The session's tenant.
    tenant: String,
    /// The state after the event.
    state: StateName,
    /// Wrong PINs still allowed after it.
    attempts_left: u8,
    /// When it happened (RFC 3339).
    #[schema(format = DateTime)]
    at: String,
    /// True when the stream reported it from the session's state (at the start, or after
    /// the store connection was restored) rather than as it happened.
    from_state: bool,
}

/// One SSE message of the stream, as a client's SSE parser sees it.
#[derive(ToSchema)]
pub struct EventMessage {
    /// The SSE `event:` name: the event's `type` (`created`, `opened`, `submitted`,
    /// `reveal_failed`, `revealed`, `locked`, `cancelled`, `expired`), `error` for a last
    /// message whose data is an error body, or `shutdown` for a last message sent because
    /// the server is stopping (not an error: reconnect to go on following the session).
    pub event: String,
    /// The SSE `id:`: the event's id (none on `error` and `shutdown`).
    pub id: String,
    /// The SSE `data:`: an `EventView` as JSON (for `error`, an error body; for
    /// `shutdown`, `{"type": "shutdown", "message": …}`).
    pub data: String,
}

impl From<&SessionEvent> for EventView {
    fn from(event: &SessionEvent) -> Self {
        EventView {
            id: event.id.to_string(),
            kind: KindName(event.kind),
            session_id: event.session.to_string(),
            tenant: event.tenant.as_str().to_owned(),
            state: StateName(event.state),
            attempts_left: event.attempts_left,
            at: rfc3339(event.at),
            from_state: event.from_state,
        }
    }
}

fn message(event: &SessionEvent) -> Event {
    let data = serde_json::to_string(&EventView::from(event)).unwrap_or_default();
    Event::default()
        .event(event.kind.as_str())
        .id(event.id.to_string())
        .data(data)
}

fn error_message(error: ApiError) -> Event {
    let (_, body) = error.parts();
    let data = serde_json::to_string(&body).unwrap_or_default();
    Event::default().event("error").data(data)
}

/// The last message of a stream the server's shutdown ended: JSON like every other
/// `data:`, under a name of its own so a client tells it from an `error`.
fn shutdown_message() -> Event {
    Event::default().event("shutdown").data(
        r#"{"type":"shutdown","message":"the server is shutting down; reconnect to go on following the session"}"#,
    )
}

/// What a stream does next.
enum Step {
    /// The watch's next item, or `None` when the watch ended.
    Next(Option<pci_vault::Result<SessionEvent>>),
    /// The API key is no longer configured.
    KeyRemoved,
    /// The server is shutting down.
    ShuttingDown,
}

/// Waits for the watch's next item, checking the credential every [`KEY_CHECK`]; a
/// shutdown wins over everything else, so a busy stream ends as promptly as a quiet one.
async fn next_step(watch: &mut SessionWatch, credential: &Credential, shutdown: &Shutdown) -> Step {
    let next = watch.next();
    tokio::pin!(next);
    let stopping = shutdown.started();
    tokio::pin!(stopping);
    let mut checks = tokio::time::interval(KEY_CHECK);
    loop {
        tokio::select! {
            biased;
            () = &mut stopping => break Step::ShuttingDown,
            next = &mut next => break Step::Next(next),
            _ = checks.tick() => if !credential.is_current() { break Step::KeyRemoved },
        }
    }
}

/// The events of `watch`, ending after the terminal one, an error, once `credential` is
/// no longer configured, or at the server's shutdown.
fn stream(
    watch: SessionWatch,
    credential: Credential,
    shutdown: Shutdown,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(Some((watch, credential, shutdown)), |state| async move {
        let (mut watch, credential, shutdown) = state?;
        let step = match next_step(&mut watch, &credential, &shutdown).await {
            Step::Next(_) if !credential.is_current() => Step::KeyRemoved,
            step => step,
        };
        let last = match step {
            Step::Next(next) => match next? {
                Ok(event) => {
                    return Some((Ok(message(&event)), Some((watch, credential, shutdown))));
                }
                Err(error) => error_message(ApiError::Vault(error)),
            },
            Step::KeyRemoved => {
                tracing::info!("event stream ended: its API key is no longer configured");
                error_message(ApiError::Unauthorized)
            }
            Step::ShuttingDown => {
                tracing::debug!("event stream ended: the server is shutting down");
                shutdown_message()
            }
        };
        Some((Ok(last), None))
    })
}

/// A session's events as they happen, as Server-Sent Events (`text/event-stream`): its
/// current state first, then each event once, ending after `revealed`, `locked`,
/// `cancelled` or `expired`, with a last `error` message (`UNAUTHORIZED`) once its API
/// key is no longer configured, or with a last `shutdown` message when the server stops
/// (reconnect: the new stream starts from the session's state). Heartbeat comments every
/// 15 s.
#[utoipa::path(
    get,
    path = "/v1/sessions/{id}/events",
    tag = "agent",
    security(("api_key" = [])),
    params(SessionIdPath),
    responses(
        (status = 200, description = "A stream of SSE messages: `event:` the event type, \
            `id:` the event id, `data:` an EventView as JSON; a last `error` message with \
            an error body if the session can no longer be read, or `UNAUTHORIZED` once the \
            API key is removed from the API key file; a last `shutdown` message (not an \
            error) when the server stops: reconnect to go on following the session",
            content_type = "text/event-stream", body = EventMessage),
        EventErrors,
    )
)]
pub async fn session_events(
    State(state): State<AppState>,
    Agent(vault, credential): Agent,
    SessionIdPath(id): SessionIdPath,
) -> Result<Response, ApiError> {
    // Taken first, and held by the stream until it ends: streams stay open, and without a
    // bound they could hold every connection the customers' forms need.
    let permit = state
        .event_stream_permit()
        .ok_or(ApiError::Vault(Error::CapacityExceeded))?;
    let watch = vault.watch(&id).await?;
    // Followed from here too (its creating process may have stopped); a session that has
    // ended is dropped by the follow itself.
    pci_vault_webhooks::feed::follow_live(state.webhooks(), &vault, &id);
    let shutdown = state.shutdown().clone();
    let events = stream(watch, credential, shutdown).map(move |event| {
        let _held = &permit;
        event
    });
    let events = Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT));
    // axum's `Sse` sets `Cache-Control: no-cache`; the stream names the session, whose id is
    // the customer's credential, so it is `no-store` like every other answer.
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        events,
    )
        .into_response())
}

documented_errors! {
    /// The errors of `session_events`, before the stream starts.
    EventErrors {
        codes: [
            InvalidArgument, NotFound, KeyUnavailable, IntegrityError, StoreUnavailable,
            CapacityExceeded,
        ],
        own: [ApiError::Unauthorized],
    }
}
