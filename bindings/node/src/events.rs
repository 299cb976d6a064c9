//! `vault.watch(id, { signal })`: a session's events as an async iterator.
//!
//! The iterator is a class of its own rather than napi's generator support, whose
//! rejections can only carry napi's status names: here `next()` settles through the same
//! path as every `Vault` method, so a failure during the watch rejects with the stable
//! `err.code` (`NOT_FOUND`, `INTEGRITY_ERROR`, `KEY_UNAVAILABLE`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use napi::bindgen_prelude::{
    ClassInstance, FnArgs, Function, FunctionRef, JavaScriptClassExt, JsObjectValue, Object,
    PromiseRaw, Unknown,
};
use napi::{Env, Result};
use napi_derive::napi;
use pci_vault::{SessionEvent as CoreEvent, SessionWatch};
use tokio::sync::{Mutex, Notify};

use crate::errors::Failure;
use crate::vault::settle;

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

/// `EventTarget.addEventListener(type, listener, options)`.
type AddEventListener<'a> =
    Function<'a, FnArgs<(&'a str, Function<'a, (), ()>, Object<'a>)>, Unknown<'a>>;

/// `Function.prototype.bind` applied to `removeEventListener`: `(signal, type, listener)`.
type BindRemove<'a> =
    Function<'a, FnArgs<(Object<'a>, &'a str, Function<'a, (), ()>)>, Function<'a, (), ()>>;

/// Takes a watch's listener off its `AbortSignal` once the watch has ended, so a signal
/// shared by many watches (one per request, say) does not collect a listener for each.
/// Holds `signal.removeEventListener.bind(signal, 'abort', listener)`; runs it at most once,
/// on the JavaScript thread.
#[derive(Clone, Default)]
pub(crate) struct Detach(Arc<std::sync::Mutex<Option<FunctionRef<(), ()>>>>);

impl Detach {
    /// Removes the listener, if it is still there.
    pub(crate) fn run(&self, env: &Env) {
        let remove = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(remove) = remove {
            // What removing a listener could throw (a signal whose method was replaced) is
            // the host's: the watch has ended either way.
            if let Ok(remove) = remove.borrow_back(env) {
                let _ = remove.call(());
            }
        }
    }
}

/// What stops a watch: its `AbortSignal`, or the iterator's `return()`.
#[derive(Default)]
pub(crate) struct Stop {
    stopped: AtomicBool,
    notify: Notify,
}

impl Stop {
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// A stop that `signal` triggers: at once when it is already aborted, otherwise on its
    /// `abort` event, through a listener of its own (`{ once: true }`), so the host's
    /// `onabort` and other listeners stay as they are; and what takes that listener off
    /// again when the watch ends first.
    pub(crate) fn on_signal(env: &Env, signal: Option<Object<'_>>) -> Result<(Arc<Stop>, Detach)> {
        let stop = Arc::new(Stop::default());
        let detach = Detach::default();
        let Some(signal) = signal else {
            return Ok((stop, detach));
        };
        if signal.get::<bool>("aborted")?.unwrap_or(false) {
            stop.stop();
            return Ok((stop, detach));
        }
        let on_abort = Arc::clone(&stop);
        let listener: Function<'_, (), ()> =
            env.create_function_from_closure("abort", move |_| {
                on_abort.stop();
                Ok(())
            })?;
        // The remover first: once the listener is added, nothing here fails.
        let remove: Function<'_, (), ()> = signal.get_named_property("removeEventListener")?;
        let bind: BindRemove<'_> = remove.get_named_property("bind")?;
        let bound = bind
            .apply(remove, FnArgs::from((signal, "abort", listener)))?
            .create_ref()?;
        let mut once = Object::new(env)?;
        once.set("once", true)?;
        let add: AddEventListener<'_> = signal.get_named_property("addEventListener")?;
        add.apply(signal, FnArgs::from(("abort", listener, once)))?;
        *detach
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(bound);
        Ok((stop, detach))
    }
}

/// One step of the iteration, as the async iterator protocol has it: `{ value, done:
/// false }` for an event, `{ done: true }` at the end.
#[napi(object, object_from_js = false)]
pub struct SessionEventStep {
    /// The event; absent at the end.
    pub value: Option<SessionEvent>,
    /// True at the end.
    pub done: bool,
}

impl From<Option<CoreEvent>> for SessionEventStep {
    fn from(event: Option<CoreEvent>) -> Self {
        SessionEventStep {
            done: event.is_none(),
            value: event.map(SessionEvent::from),
        }
    }
}

/// A session's events: `for await (const event of events) { ... }`. The current state
/// comes first; the iteration ends after `revealed`, `locked`, `cancelled` or `expired`,
/// when the `AbortSignal` given to `watch` aborts, or when the loop is left. A failure
/// during the watch rejects `next()` with an `Error` whose `code` is a stable code, and
/// ends the watch.
#[napi]
pub struct SessionEvents {
    watch: Arc<Mutex<Option<SessionWatch>>>,
    stop: Arc<Stop>,
    detach: Detach,
}

impl SessionEvents {
    /// The iterator for `watch`, as JavaScript receives it: an instance that is its own
    /// async iterator (`events[Symbol.asyncIterator]()` returns `events`).
    pub(crate) fn into_js<'env>(
        watch: SessionWatch,
        stop: Arc<Stop>,
        detach: Detach,
        env: &'env Env,
    ) -> Result<ClassInstance<'env, SessionEvents>> {
        let events = SessionEvents {
            watch: Arc::new(Mutex::new(Some(watch))),
            stop,
            detach,
        };
        let mut instance = events.into_instance(env)?;
        let symbol: Unknown<'_> = env
            .get_global()?
            .get_named_property_unchecked::<Object<'_>>("Symbol")?
            .get_named_property("asyncIterator")?;
        let itself: Function<'_, (), Unknown<'_>> =
            env.create_function_from_closure("asyncIterator", |ctx| ctx.this::<Unknown<'_>>())?;
        instance.set_property(symbol, itself)?;
        Ok(instance)
    }
}

#[napi]
impl SessionEvents {
    /// The next event, waiting for it: `{ value, done: false }`, or `{ done: true }` once
    /// the watch has ended. Rejects with `NOT_FOUND` when the session disappeared before
    /// its time (the store lost it), `INTEGRITY_ERROR` or `KEY_UNAVAILABLE` when it can no
    /// longer be read; the watch ends then too.
    #[napi(ts_return_type = "Promise<IteratorResult<SessionEvent, undefined>>")]
    pub fn next<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, SessionEventStep>> {
        let (watch, stop) = (Arc::clone(&self.watch), Arc::clone(&self.stop));
        let detach = self.detach.clone();
        settle(
            env,
            async move {
                let mut slot = watch.lock().await;
                let Some(current) = slot.as_mut() else {
                    return Ok(Ok(None));
                };
                let stopped = stop.notify.notified();
                if stop.stopped.load(Ordering::SeqCst) {
                    *slot = None;
                    return Ok(Ok(None));
                }
                let next = tokio::select! {
                    next = current.next() => next,
                    () = stopped => None,
                };
                Ok(match next {
                    Some(Ok(event)) => Ok(Some(event)),
                    Some(Err(e)) => {
                        *slot = None;
                        Err(e.into())
                    }
                    None => {
                        *slot = None;
                        Ok(None)
                    }
                })
            },
            move |env, outcome: std::result::Result<Option<CoreEvent>, Failure>| {
                // The watch has ended unless an event came: its listener goes.
                if !matches!(outcome, Ok(Some(_))) {
                    detach.run(env);
                }
                match outcome {
                    Ok(event) => Ok(SessionEventStep::from(event)),
                    Err(failure) => Err(failure.into_js(env)),
                }
            },
        )
    }

    /// Ends the watch (what leaving a `for await` loop calls): resolves to `{ done: true }`
    /// once its subscription is released.
    #[napi(
        js_name = "return",
        ts_return_type = "Promise<IteratorResult<SessionEvent, undefined>>"
    )]
    pub fn finish<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, SessionEventStep>> {
        self.stop.stop();
        self.detach.run(env);
        let watch = Arc::clone(&self.watch);
        settle(
            env,
            async move {
                watch.lock().await.take();
                Ok(None)
            },
            |_, event| Ok(SessionEventStep::from(event)),
        )
    }
}
