//! `Vault.watch(id)`: a session's events. The Python package makes `SessionEvents` an async
//! iterator (`async for event in await vault.watch(id)`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use pci_vault::{SessionId, SessionWatch};
use tokio::sync::{Mutex, Notify};

use crate::error::VaultError;
use crate::vault::{SessionState, Vault};

/// One event of a session. Never card data or a PIN; its `repr()` shows only the start of
/// the session id (`redact.rs`).
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct SessionEvent {
    /// Unique to this event (32 hex digits).
    pub id: String,
    /// What happened: `created` (a pending session's state when the watch starts),
    /// `opened` (the form page was fetched; link previews fetch too), `submitted`,
    /// `reveal_failed`, `revealed`, `locked`, `cancelled`, `expired`.
    pub kind: String,
    /// The session.
    pub session_id: String,
    /// The session's tenant.
    pub tenant: String,
    /// The state after the event.
    pub state: SessionState,
    /// Wrong PINs still allowed after it.
    pub attempts_left: u8,
    /// When it happened.
    pub at: SystemTime,
    /// True when the watch reported it from the session's state (at the start, or after
    /// the store connection was restored) rather than as it happened.
    pub from_state: bool,
}

impl From<pci_vault::SessionEvent> for SessionEvent {
    fn from(event: pci_vault::SessionEvent) -> Self {
        SessionEvent {
            id: event.id.to_string(),
            kind: event.kind.as_str().to_owned(),
            session_id: event.session.to_string(),
            tenant: event.tenant.as_str().to_owned(),
            state: event.state.into(),
            attempts_left: event.attempts_left,
            at: event.at,
            from_state: event.from_state,
        }
    }
}

/// A session's events, in order: the current state first, then each event as it happens,
/// ending after `revealed`, `locked`, `cancelled` or `expired`.
#[derive(uniffi::Object)]
pub struct SessionEvents {
    watch: Mutex<Option<SessionWatch>>,
    /// Set by `close`, which also wakes a `next` that waits.
    closed: AtomicBool,
    closing: Notify,
}

#[uniffi::export(async_runtime = "tokio")]
impl SessionEvents {
    /// The next event, waiting for it; `None` once the watch has ended (or was closed).
    ///
    /// Errors: `NOT_FOUND` when the session disappeared before its time (the store lost
    /// it), `INTEGRITY_ERROR`, `KEY_UNAVAILABLE`; the watch ends then.
    pub async fn next(&self) -> Result<Option<SessionEvent>, VaultError> {
        let mut slot = self.watch.lock().await;
        // Made before the flag is read, so a `close` in between still wakes it.
        let closing = self.closing.notified();
        if self.closed.load(Ordering::SeqCst) {
            *slot = None;
        }
        let Some(watch) = slot.as_mut() else {
            return Ok(None);
        };
        let next = tokio::select! {
            next = watch.next() => next,
            () = closing => None,
        };
        match next {
            Some(Ok(event)) => Ok(Some(event.into())),
            Some(Err(e)) => {
                *slot = None;
                Err(e.into())
            }
            None => {
                *slot = None;
                Ok(None)
            }
        }
    }

    /// Stops watching and releases the subscription; a `next` waiting meanwhile returns
    /// `None` at once, as does every later one.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.closing.notify_waiters();
        self.watch.lock().await.take();
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Vault {
    /// Watches a session's events, from every process sharing the store (see
    /// `SessionEvents`).
    ///
    /// Errors: `INVALID_ARGUMENT` (a malformed id), `NOT_FOUND` (unknown, expired or
    /// another tenant's), `STORE_UNAVAILABLE` (the store cannot subscribe).
    pub async fn watch(&self, id: String) -> Result<Arc<SessionEvents>, VaultError> {
        let id = SessionId::parse(&id)?;
        let watch = self.inner.watch(&id).await?;
        Ok(Arc::new(SessionEvents {
            watch: Mutex::new(Some(watch)),
            closed: AtomicBool::new(false),
            closing: Notify::new(),
        }))
    }
}
