//! The event a receiver gets: what happened to which session, in which state, when.

use std::time::SystemTime;

use pci_vault::{SessionEventKind, SessionId, SessionState, Tenant};
use serde::{Serialize, Serializer};

/// Whether a receiver gets events of this kind: every kind but `created`, which is the state
/// a watch starts from rather than something that happened.
pub fn is_delivered(kind: SessionEventKind) -> bool {
    kind != SessionEventKind::Created
}

/// The names of the kinds a receiver gets, in the order of a session's life.
#[cfg(feature = "openapi")]
fn delivered_names() -> Vec<&'static str> {
    SessionEventKind::ALL
        .into_iter()
        .filter(|kind| is_delivered(*kind))
        .map(SessionEventKind::as_str)
        .collect()
}

/// A session event as the receiver gets it: the body of a delivery. It carries no card
/// data, no PIN and no secret.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "id": "evt_5d0c1f8e2a9b47c3a1e6f02b9d8c7a41",
    "kind": "reveal_failed",
    "session": "lRq4vXb2mC8u0TzQeYp7sWn1kJd5hGa9oFiLr3xE6yB",
    "tenant": "default",
    "state": "submitted",
    "at": "2026-11-30T14:05:09Z",
    "attempts_left": 4
})))]
pub struct WebhookEvent {
    /// Unique per event, the same on every attempt to deliver it and from every process
    /// that delivers it ([`crate::feed::delivery_id`]; also sent as `Idempotency-Key`):
    /// 1–128 visible ASCII characters.
    pub id: String,
    /// What happened: a kind that [`is_delivered`].
    #[serde(serialize_with = "kind_name")]
    #[cfg_attr(feature = "openapi", schema(schema_with = kind_schema))]
    pub kind: SessionEventKind,
    /// The session id.
    #[serde(serialize_with = "as_display")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub session: SessionId,
    /// The tenant the session belongs to.
    #[serde(serialize_with = "as_display")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub tenant: Tenant,
    /// The session's state after the event.
    #[serde(serialize_with = "state_name")]
    #[cfg_attr(feature = "openapi", schema(schema_with = state_schema))]
    pub state: SessionState,
    /// When it happened (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: SystemTime,
    /// Wrong PINs still allowed; present on `reveal_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<u8>,
}

fn as_display<T: std::fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn state_name<S: Serializer>(state: &SessionState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(state.as_str())
}

fn kind_name<S: Serializer>(kind: &SessionEventKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

/// `at` in RFC 3339, UTC, to the second: `2026-11-30T14:05:09Z`.
fn rfc3339<S: Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let at = time::OffsetDateTime::from(*at);
    let text = at
        .replace_nanosecond(0)
        .unwrap_or(at)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(serde::ser::Error::custom)?;
    s.serialize_str(&text)
}

/// The schema of `state`: one of the core's state names. (It replaces the field's whole
/// schema, so it carries the field's description too.)
#[cfg(feature = "openapi")]
fn state_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .description(Some("The session's state after the event."))
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(SessionState::ALL.map(SessionState::as_str)))
        .build()
}

/// The schema of `kind`: one of the delivered kinds' names.
#[cfg(feature = "openapi")]
fn kind_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .description(Some(
            "What happened. `opened` (the form page was fetched) is informative only: link \
             previews fetch pages too.",
        ))
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(delivered_names()))
        .build()
}

/// Longest event id, in characters.
pub const MAX_EVENT_ID_LEN: usize = 128;

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// A `reveal_failed` event, the one with every member.
    fn reveal_failed(session: &SessionId) -> WebhookEvent {
        WebhookEvent {
            id: "evt_1".to_owned(),
            kind: SessionEventKind::RevealFailed,
            session: session.clone(),
            tenant: Tenant::new("acme").unwrap(),
            state: SessionState::Submitted,
            at: UNIX_EPOCH + Duration::from_millis(1_795_564_800_123),
            attempts_left: Some(4),
        }
    }

    #[test]
    fn the_wire_form() {
        let session = SessionId::generate();
        let mut event = reveal_failed(&session);
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({
                "id": "evt_1",
                "kind": "reveal_failed",
                "session": session.to_string(),
                "tenant": "acme",
                "state": "submitted",
                "at": "2026-11-25T00:00:00Z",
                "attempts_left": 4,
            })
        );
        event.kind = SessionEventKind::Revealed;
        event.state = SessionState::Revealed;
        event.attempts_left = None;
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["kind"], "revealed");
        assert_eq!(value["state"], "revealed");
        assert!(value.get("attempts_left").is_none(), "{value}");
    }

    /// With the `openapi` feature the schema documents exactly the members an event is sent
    /// with, and lists the states a session can be in.
    #[cfg(feature = "openapi")]
    #[test]
    fn the_schema_matches_the_wire_form() {
        use utoipa::PartialSchema as _;
        let schema = serde_json::to_value(WebhookEvent::schema()).unwrap();
        let sent = serde_json::to_value(reveal_failed(&SessionId::generate())).unwrap();
        let mut documented: Vec<&String> =
            schema["properties"].as_object().unwrap().keys().collect();
        let mut members: Vec<&String> = sent.as_object().unwrap().keys().collect();
        documented.sort();
        members.sort();
        assert_eq!(documented, members);
        let state = &schema["properties"]["state"];
        assert_eq!(
            state["enum"],
            serde_json::json!(SessionState::ALL.map(SessionState::as_str))
        );
        assert!(state["description"].is_string(), "{state}");
        assert_eq!(
            schema["properties"]["kind"]["enum"],
            serde_json::json!(delivered_names())
        );
    }
}
