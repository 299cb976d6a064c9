//! `vault.watch(id, { signal })`: a session's events as an async iterator.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use napi::bindgen_prelude::{AbortSignal, AsyncGenerator};
use napi::{Error, Result, Status};
use napi_derive::napi;
use pci_vault::{SessionEvent as CoreEvent, SessionWatch};
use tokio::sync::{Mutex, Notify};

/// One event of a session. Never card data or a PIN.
#[napi(object, object_from_js = false)]
pub struct SessionEvent {
    /// Unique to this event (32 hex digits).
    pub id: String,
    /// What happened: `created` (a pending session's state when the watch starts),
    /// `opened` (the form page was fetched; link previews fetch too), `submitted`,
    /// `reveal_failed`, `revealed`, `locked`, `cancelled`, `expired`.
    #[napi(
        ts_type = "'created' | 'opened' | 'submitted' | 'reveal_failed' | 'revealed' | 'locked' | 'cancelled' | 'expired'"
    )]
    pub r#type: String,
    /// The session.
    pub session_id: String,
    /// The session's tenant.
    pub tenant: String,
    /// The state after the event.
    #[napi(ts_type = "'pending' | 'submitted' | 'revealed' | 'cancelled' | 'locked'")]
    pub state: String,
    /// Wrong PINs still allowed after it.
    pub attempts_left: u32,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// True when the watch reported it from the session's state (at the start, or after
    /// the store connection was restored) rather than as it happened.
    pub from_state: bool,
}

impl From<CoreEvent> for SessionEvent {
    fn from(event: CoreEvent) -> Self {
        SessionEvent {
            id: event.id.to_string(),
            r#type: event.kind.as_str().to_owned(),
            session_id: event.session.to_string(),
            tenant: event.tenant.as_str().to_owned(),
            state: event.state.as_str().to_owned(),
            attempts_left: u32::from(event.attempts_left),
            at: event.at.into(),
            from_state: event.from_state,
        }
    }
}

/// What stops a watch: its `AbortSignal`, or the iterator's `return()`.
#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    notify: Notify,
}

impl Stop {
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// A session's events: `for await (const event of events) { ... }`. The current state
/// comes first; the iteration ends after `revealed`, `locked`, `cancelled` or `expired`,
/// when the `AbortSignal` given to `watch` aborts, or when the loop is left.
#[napi(async_iterator)]
pub struct SessionEvents {
    watch: Arc<Mutex<Option<SessionWatch>>>,
    stop: Arc<Stop>,
}

impl SessionEvents {
    pub(crate) fn new(watch: SessionWatch, signal: Option<&AbortSignal>) -> Self {
        let stop = Arc::new(Stop::default());
        if let Some(signal) = signal {
            let on_abort = Arc::clone(&stop);
            signal.on_abort(move || on_abort.stop());
        }
        SessionEvents {
            watch: Arc::new(Mutex::new(Some(watch))),
            stop,
        }
    }
}

#[napi]
impl AsyncGenerator for SessionEvents {
    type Yield = SessionEvent;
    type Next = ();
    type Return = ();

    fn next(
        &mut self,
        _value: Option<()>,
    ) -> impl Future<Output = Result<Option<SessionEvent>>> + Send + 'static {
        let (watch, stop) = (Arc::clone(&self.watch), Arc::clone(&self.stop));
        async move {
            let mut slot = watch.lock().await;
            let Some(current) = slot.as_mut() else {
                return Ok(None);
            };
            let stopped = stop.notify.notified();
            if stop.stopped.load(Ordering::SeqCst) {
                *slot = None;
                return Ok(None);
            }
            let next = tokio::select! {
                next = current.next() => next,
                () = stopped => None,
            };
            match next {
                Some(Ok(event)) => Ok(Some(SessionEvent::from(event))),
                Some(Err(e)) => {
                    *slot = None;
                    Err(Error::new(
                        Status::GenericFailure,
                        format!("{}: {e}", e.code().as_str()),
                    ))
                }
                None => {
                    *slot = None;
                    Ok(None)
                }
            }
        }
    }

    fn complete(
        &mut self,
        _value: Option<()>,
    ) -> impl Future<Output = Result<Option<SessionEvent>>> + Send + 'static {
        self.stop.stop();
        let watch = Arc::clone(&self.watch);
        async move {
            watch.lock().await.take();
            Ok(None)
        }
    }
}
