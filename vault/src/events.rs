//! Session events: what happens to a session, as it happens.
//!
//! Each write that changes a session's state publishes its event with it
//! ([`crate::store::EphemeralStore::replace_and_publish`]: in the same atomic store step,
//! or, where a write counts only once replicas acknowledge it, right after that), so no
//! event announces a write that did not happen. A wrong PIN publishes `reveal_failed` after its attempt is
//! counted and the PIN compared; a fetched form page publishes `opened`. Neither changes
//! the record, so neither is a write.
//!
//! On the store an event is a small binary value authenticated under the session's data
//! key, like the record: the store, which is not trusted, can drop or delay an event but
//! not forge one. It carries no session id (the channel is named by the store key, a hash
//! of the id), no card data and no PIN:
//!
//! ```text
//! magic "PVE" | format (u8, 1) | kind (u8) | state (u8) | attempts left (u8)
//! time (i64 ms since the epoch) | event id (16 bytes)
//! ---- end of body
//! tag: AES-256-GCM (GMAC) under the data key over the body and the session id (28)
//! ```

use std::fmt;
use std::time::SystemTime;

use crate::clock::{from_millis, to_millis};
use crate::crypto::{RECORD_TAG_LEN, SessionCrypto, fill_random};
use crate::session::{SessionId, SessionState};
use crate::tenant::Tenant;

const MAGIC: &[u8; 3] = b"PVE";
const EVENT_FORMAT: u8 = 1;
const BODY_LEN: usize = 3 + 1 + 3 + 8 + EventId::LEN;

/// What happened to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionEventKind {
    /// The session exists and waits for the customer. Only a watch reports it, as the
    /// state it found a pending session in; nothing publishes it.
    Created,
    /// The customer's form page was fetched. Informative only: a chat's link preview
    /// fetches pages too, and fetching changes nothing.
    Opened,
    /// The customer submitted the form.
    Submitted,
    /// A wrong PIN; the event carries the attempts left.
    RevealFailed,
    /// The form was revealed, once; its data is destroyed.
    Revealed,
    /// The last allowed wrong PIN was given; the data is destroyed.
    Locked,
    /// The agent cancelled the session; the data is destroyed.
    Cancelled,
    /// The session's time ran out. No write happens at expiry: a watch reports it when
    /// the session's `expires_at` passes on the vault's clock.
    Expired,
}

impl SessionEventKind {
    /// The wire spelling: `created`, `opened`, `submitted`, `reveal_failed`, `revealed`,
    /// `locked`, `cancelled`, `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionEventKind::Created => "created",
            SessionEventKind::Opened => "opened",
            SessionEventKind::Submitted => "submitted",
            SessionEventKind::RevealFailed => "reveal_failed",
            SessionEventKind::Revealed => "revealed",
            SessionEventKind::Locked => "locked",
            SessionEventKind::Cancelled => "cancelled",
            SessionEventKind::Expired => "expired",
        }
    }

    /// Whether nothing can follow it: a watch ends after it.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SessionEventKind::Revealed
                | SessionEventKind::Locked
                | SessionEventKind::Cancelled
                | SessionEventKind::Expired
        )
    }

    /// The event that puts a session into `state`, as a watch reports a state it finds.
    pub(crate) fn of_state(state: SessionState) -> Self {
        match state {
            SessionState::Pending => SessionEventKind::Created,
            SessionState::Submitted => SessionEventKind::Submitted,
            SessionState::Revealed => SessionEventKind::Revealed,
            SessionState::Cancelled => SessionEventKind::Cancelled,
            SessionState::Locked => SessionEventKind::Locked,
        }
    }

    fn to_byte(self) -> u8 {
        match self {
            SessionEventKind::Created => 1,
            SessionEventKind::Opened => 2,
            SessionEventKind::Submitted => 3,
            SessionEventKind::RevealFailed => 4,
            SessionEventKind::Revealed => 5,
            SessionEventKind::Locked => 6,
            SessionEventKind::Cancelled => 7,
            SessionEventKind::Expired => 8,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => SessionEventKind::Created,
            2 => SessionEventKind::Opened,
            3 => SessionEventKind::Submitted,
            4 => SessionEventKind::RevealFailed,
            5 => SessionEventKind::Revealed,
            6 => SessionEventKind::Locked,
            7 => SessionEventKind::Cancelled,
            8 => SessionEventKind::Expired,
            _ => return None,
        })
    }
}

impl fmt::Display for SessionEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event's unique id: 128 random bits, written as 32 lowercase hex digits. A consumer
/// that may see an event twice (a webhook retried, a stream resumed) deduplicates by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId([u8; 16]);

impl EventId {
    const LEN: usize = 16;

    pub(crate) fn generate() -> Self {
        let mut bytes = [0u8; Self::LEN];
        fill_random(&mut bytes);
        EventId(bytes)
    }

    /// The raw 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}

/// One thing that happened to a session, as a watch reports it: never secret data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionEvent {
    /// Unique to this event.
    pub id: EventId,
    /// What happened.
    pub kind: SessionEventKind,
    /// The session it happened to.
    pub session: SessionId,
    /// The session's tenant.
    pub tenant: Tenant,
    /// The session's state after it (for `expired`, the last state seen).
    pub state: SessionState,
    /// Wrong PINs still allowed after it.
    pub attempts_left: u8,
    /// When it happened, by the clock of the process that caused it (for an event
    /// reported from a state read, when the watch read it; for `submitted`, the time of
    /// the submission).
    pub at: SystemTime,
    /// `true` when the watch reported it from the session's state, read when it started
    /// or resumed after a lost subscription, rather than from the event as published.
    pub from_state: bool,
}

/// An event as published through the store, after its tag is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PublishedEvent {
    pub(crate) id: EventId,
    pub(crate) kind: SessionEventKind,
    pub(crate) state: SessionState,
    pub(crate) attempts_left: u8,
    pub(crate) at_millis: i64,
}

impl PublishedEvent {
    /// A new event with a fresh id.
    pub(crate) fn new(
        kind: SessionEventKind,
        state: SessionState,
        attempts_left: u8,
        at_millis: i64,
    ) -> Self {
        PublishedEvent {
            id: EventId::generate(),
            kind,
            state,
            attempts_left,
            at_millis,
        }
    }

    /// The bytes published: body and tag under the session's keys.
    pub(crate) fn seal(&self, crypto: &SessionCrypto) -> Vec<u8> {
        let mut out = Vec::with_capacity(BODY_LEN + RECORD_TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.push(EVENT_FORMAT);
        out.push(self.kind.to_byte());
        out.push(self.state.to_byte());
        out.push(self.attempts_left);
        out.extend_from_slice(&self.at_millis.to_be_bytes());
        out.extend_from_slice(&self.id.0);
        let tag = crypto.event_tag(&out);
        out.extend_from_slice(&tag);
        out
    }

    /// Checks and decodes published bytes; `None` for anything this session's keys did not
    /// seal (forged, altered, another session's, malformed).
    pub(crate) fn open(bytes: &[u8], crypto: &SessionCrypto) -> Option<Self> {
        if bytes.len() != BODY_LEN + RECORD_TAG_LEN {
            return None;
        }
        let (body, tag) = bytes.split_at(BODY_LEN);
        if !crypto.verify_event_tag(body, tag) {
            return None;
        }
        if body.get(..3)? != MAGIC || *body.get(3)? != EVENT_FORMAT {
            return None;
        }
        Some(PublishedEvent {
            kind: SessionEventKind::from_byte(*body.get(4)?)?,
            state: SessionState::from_byte(*body.get(5)?)?,
            attempts_left: *body.get(6)?,
            at_millis: i64::from_be_bytes(body.get(7..15)?.try_into().ok()?),
            id: EventId(body.get(15..31)?.try_into().ok()?),
        })
    }

    /// The event as a watch of `session` for `tenant` reports it.
    pub(crate) fn into_event(self, session: &SessionId, tenant: &Tenant) -> SessionEvent {
        SessionEvent {
            id: self.id,
            kind: self.kind,
            session: session.clone(),
            tenant: tenant.clone(),
            state: self.state,
            attempts_left: self.attempts_left,
            at: from_millis(self.at_millis),
            from_state: false,
        }
    }
}

/// An event reported from a state read rather than received.
pub(crate) fn from_state(
    kind: SessionEventKind,
    session: &SessionId,
    tenant: &Tenant,
    state: SessionState,
    attempts_left: u8,
    at: SystemTime,
) -> SessionEvent {
    SessionEvent {
        id: EventId::generate(),
        kind,
        session: session.clone(),
        tenant: tenant.clone(),
        state,
        attempts_left,
        at: from_millis(to_millis(at)),
        from_state: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::DataKey;

    fn crypto(id: &SessionId) -> SessionCrypto {
        SessionCrypto::new(&DataKey::generate(), "default", id)
    }

    #[test]
    fn events_round_trip_and_any_change_is_refused() {
        let id = SessionId::generate();
        let keys = crypto(&id);
        let event = PublishedEvent::new(
            SessionEventKind::RevealFailed,
            SessionState::Submitted,
            3,
            1_700_000_000_000,
        );
        let sealed = event.seal(&keys);
        assert_eq!(PublishedEvent::open(&sealed, &keys), Some(event));
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 1;
            assert_eq!(PublishedEvent::open(&flipped, &keys), None, "byte {i}");
        }
        assert_eq!(PublishedEvent::open(&sealed[1..], &keys), None);
        let other = SessionId::generate();
        assert_eq!(PublishedEvent::open(&sealed, &crypto(&other)), None);
        assert_eq!(
            PublishedEvent::open(
                &sealed,
                &SessionCrypto::new(&DataKey::generate(), "default", &id)
            ),
            None
        );
    }

    #[test]
    fn ids_are_unique_hex() {
        let (a, b) = (EventId::generate(), EventId::generate());
        assert_ne!(a, b);
        assert_eq!(a.to_string().len(), 32);
        assert!(a.to_string().bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
