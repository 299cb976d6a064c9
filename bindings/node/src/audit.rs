//! Audit events to a JavaScript callback (`Vault.open({ onAudit })`).
//!
//! Node installs no `tracing` subscriber, so the core's default sink would drop every event;
//! with `onAudit` each event reaches the host, which writes it to its audit trail (PCI DSS
//! 10.2). Events carry a keyed hash of the session id, never the id, a value, a PIN or a
//! key.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use napi::bindgen_prelude::{FnArgs, FromNapiValue, Function, Object, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, JsValue as _, ValueType};
use napi_derive::napi;
use pci_vault::{AuditEvent, AuditSink};
use tokio::sync::watch;

use crate::args::Arg;
use crate::errors::Failure;

/// One audit event, as `onAudit` receives it.
#[napi(object, object_from_js = false, use_nullable = true)]
pub(crate) struct AuditRecord {
    /// What happened: `created`, `submitted`, `revealed`, `locked` or `cancelled`.
    #[napi(ts_type = "'created' | 'submitted' | 'revealed' | 'locked' | 'cancelled'")]
    pub action: String,
    /// `success`, or the stable error code the action failed with (e.g. `WRONG_PIN`).
    pub outcome: String,
    /// HMAC-SHA256 of the session id under the vault's audit key (first 16 bytes, hex):
    /// matches the events of one session without revealing its id.
    pub session_ref: String,
    /// The tenant the session belongs to.
    pub tenant: String,
    /// Who acted: `agent` or `customer`.
    #[napi(ts_type = "'agent' | 'customer'")]
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Wrong PINs still allowed, on reveal events; otherwise `null`.
    pub attempts_left: Option<u32>,
}

impl From<&AuditEvent> for AuditRecord {
    fn from(event: &AuditEvent) -> Self {
        AuditRecord {
            action: event.action.as_str().to_owned(),
            outcome: event.outcome.as_str().to_owned(),
            session_ref: event.session_ref.clone(),
            tenant: event.tenant.as_str().to_owned(),
            actor: event.actor.as_str().to_owned(),
            at: event.at.into(),
            attempts_left: event.attempts_left.map(u32::from),
        }
    }
}

/// Calls a JavaScript function with each event, on the JavaScript thread, without waiting
/// for it. The function does not keep the process alive; an exception it throws, or a
/// rejection of the Promise (or thenable) it returns, is counted and dropped (an audit
/// callback must not be able to crash the process).
pub(crate) struct JsAuditSink {
    callback:
        ThreadsafeFunction<AuditRecord, Unknown<'static>, AuditRecord, napi::Status, false, true>,
    progress: Arc<AuditProgress>,
}

impl JsAuditSink {
    /// Reads the `onAudit` option.
    pub(crate) fn read(value: Unknown<'_>) -> Arg<Self> {
        if value.get_type()? != ValueType::Function {
            return Err(Failure::type_error("options.onAudit", "a function"));
        }
        // Called through an async arrow function, so that whatever the callback does —
        // return a value, throw, return a thenable whose `then` getter or call throws — the
        // binding gets an engine Promise, and every such throw becomes its rejection. The
        // binding then never runs the host's `then` itself: an exception thrown there would
        // be left pending after the native call, which Node reports as uncaught (and which
        // ends the process under its strict policy for native modules).
        let env = Env::from_raw(value.value().env);
        let asyncify: Function<'_, Unknown<'_>, Unknown<'_>> =
            env.run_script("(onAudit) => async (event) => onAudit(event)")?;
        let function =
            Function::<AuditRecord, Unknown<'static>>::from_unknown(asyncify.call(value)?)?;
        let callback = function
            .build_threadsafe_function::<AuditRecord>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        Ok(JsAuditSink {
            callback,
            progress: Arc::new(AuditProgress::new()),
        })
    }

    /// What `flushAudit` and `auditFailures` read.
    pub(crate) fn progress(&self) -> Arc<AuditProgress> {
        Arc::clone(&self.progress)
    }
}

impl AuditSink for JsAuditSink {
    fn record(&self, event: &AuditEvent) {
        let seq = self.progress.begin();
        let progress = Arc::clone(&self.progress);
        // NonBlocking: the queue is unbounded, so the vault never waits on JavaScript.
        let status = self.callback.call_with_return_value(
            AuditRecord::from(event),
            ThreadsafeFunctionCallMode::NonBlocking,
            move |returned, env| {
                match returned {
                    Ok(returned) => end_when_settled(&env, returned, progress, seq),
                    Err(_) => progress.end(seq, true),
                }
                Ok(())
            },
        );
        if status != napi::Status::Ok {
            self.progress.end(seq, true);
        }
    }
}

/// Which audit events are still with `onAudit`, for `flushAudit`; and how many it did not
/// take.
pub(crate) struct AuditProgress {
    calls: Mutex<Calls>,
    /// The lowest number of an event still with `onAudit`, or the next number when none is.
    settled: watch::Sender<u64>,
    failures: AtomicU64,
}

#[derive(Default)]
struct Calls {
    next: u64,
    pending: BTreeSet<u64>,
}

impl AuditProgress {
    fn new() -> Self {
        AuditProgress {
            calls: Mutex::new(Calls::default()),
            settled: watch::Sender::new(0),
            failures: AtomicU64::new(0),
        }
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Numbers an event about to be handed over.
    fn begin(&self) -> u64 {
        let mut calls = self.calls();
        let seq = calls.next;
        calls.next += 1;
        calls.pending.insert(seq);
        seq
    }

    /// `onAudit` is done with event `seq`; `failed` when it threw or its Promise rejected.
    /// Only the first end of an event counts.
    fn end(&self, seq: u64, failed: bool) {
        let mut calls = self.calls();
        if !calls.pending.remove(&seq) {
            return;
        }
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        // Sent under the lock, so two ends never publish out of order.
        let settled = calls.pending.first().copied().unwrap_or(calls.next);
        self.settled.send_replace(settled);
    }

    /// Waits until `onAudit` is done with every event recorded before this call.
    pub(crate) async fn flush(&self) {
        let target = self.calls().next;
        let mut settled = self.settled.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = settled.wait_for(|lowest| *lowest >= target).await;
    }

    /// Events `onAudit` threw on, or whose Promise rejected, since `open`.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// Ends event `seq` when the Promise the wrapped `onAudit` returned settles. A rejection is
/// handled here: nobody else awaits that Promise, and Node would end the process on an
/// unhandled rejection.
fn end_when_settled(env: &Env, returned: Unknown<'_>, progress: Arc<AuditProgress>, seq: u64) {
    let attached = (|| -> napi::Result<bool> {
        if returned.get_type()? != ValueType::Object {
            return Ok(false);
        }
        let promise = Object::from_unknown(returned)?;
        let Some(then) = promise.get::<Then<'_>>("then")? else {
            return Ok(false);
        };
        let (on_ok, on_err) = (Arc::clone(&progress), Arc::clone(&progress));
        let fulfilled: Function<'_, (), ()> =
            env.create_function_from_closure("audited", move |_| {
                on_ok.end(seq, false);
                Ok(())
            })?;
        let rejected: Function<'_, (), ()> =
            env.create_function_from_closure("auditFailed", move |_| {
                on_err.end(seq, true);
                Ok(())
            })?;
        // Through a bound function's `call`, which clears an exception the call leaves
        // pending (only a host that replaced `Promise.prototype.then` could throw here).
        then.bind(promise)?
            .call(FnArgs::from((fulfilled, rejected)))?;
        Ok(true)
    })();
    // The wrapper always returns an engine Promise; one whose settling cannot be followed
    // may never have reached the audit trail, so it counts as not taken.
    if !matches!(attached, Ok(true)) {
        progress.end(seq, true);
    }
}

/// `Promise.prototype.then(onFulfilled, onRejected)`.
type Then<'a> = Function<'a, FnArgs<(Function<'a, (), ()>, Function<'a, (), ()>)>, Unknown<'a>>;

impl fmt::Debug for JsAuditSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsAuditSink")
    }
}
