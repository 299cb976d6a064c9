//! Audit events to a JavaScript callback (`Vault.open({ onAudit })`).
//!
//! Node installs no `tracing` subscriber, so the core's default sink would drop every event;
//! with `onAudit` each event reaches the host, which writes it to its audit trail (PCI DSS
//! 10.2). Events carry a keyed hash of the session id, never the id, a value, a PIN or a
//! key.

use std::fmt;

use chrono::{DateTime, Utc};
use napi::bindgen_prelude::{FromNapiValue, Function, Object, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, ValueType};
use napi_derive::napi;
use pci_vault::{AuditEvent, AuditSink};

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
/// for it. The function does not keep the process alive; an exception it throws is dropped
/// (an audit callback must not be able to crash the process).
pub(crate) struct JsAuditSink {
    callback:
        ThreadsafeFunction<AuditRecord, Unknown<'static>, AuditRecord, napi::Status, false, true>,
}

impl JsAuditSink {
    /// Reads the `onAudit` option.
    pub(crate) fn read(value: Unknown<'_>) -> Arg<Self> {
        if value.get_type()? != ValueType::Function {
            return Err(Failure::type_error("options.onAudit", "a function"));
        }
        let function = Function::<AuditRecord, Unknown<'static>>::from_unknown(value)?;
        let callback = function
            .build_threadsafe_function::<AuditRecord>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        Ok(JsAuditSink { callback })
    }
}

impl AuditSink for JsAuditSink {
    fn record(&self, event: &AuditEvent) {
        // NonBlocking: the queue is unbounded, so the vault never waits on JavaScript.
        let _status = self.callback.call_with_return_value(
            AuditRecord::from(event),
            ThreadsafeFunctionCallMode::NonBlocking,
            |returned, env| {
                if let Ok(returned) = returned {
                    ignore_rejection(&env, returned);
                }
                Ok(())
            },
        );
    }
}

/// An `async` callback (or one that returns a Promise) that fails rejects its Promise, which
/// nobody awaits: Node would end the process on that unhandled rejection. A `catch` that
/// does nothing is attached, as an exception thrown by the callback is dropped.
fn ignore_rejection(env: &Env, returned: Unknown<'_>) {
    let attached = (|| -> napi::Result<()> {
        if returned.get_type()? != ValueType::Object {
            return Ok(());
        }
        let promise = Object::from_unknown(returned)?;
        let Some(catch) =
            promise.get::<Function<'_, Function<'_, (), ()>, Unknown<'_>>>("catch")?
        else {
            return Ok(());
        };
        let ignore: Function<'_, (), ()> =
            env.create_function_from_closure("ignore", |_| Ok(()))?;
        catch.apply(promise, ignore)?;
        Ok(())
    })();
    // A value without a usable `catch` (not a Promise) needs nothing.
    drop(attached);
}

impl fmt::Debug for JsAuditSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsAuditSink")
    }
}
