//! The `Vault` class: each method reads its arguments, runs the core operation (at once
//! when it does not wait, otherwise on the binding's tokio runtime) and settles a Promise. Nothing here decides anything about
//! sessions; that is the core's.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use napi::bindgen_prelude::{
    ClassInstance, FromNapiValue, Object, PromiseRaw, ToNapiValue, Unknown, ValueType,
    within_runtime_if_available,
};
use napi::{Env, Result};
use napi_derive::napi;
use pci_vault::{FormInput, FormSpec, Pin, RevealedForm, SessionId, Tenant};
use pci_vault_config::KeyUsage;

use crate::args::{self, Arg};
use crate::audit::AuditProgress;
use crate::errors::Failure;
use crate::events::{SessionEvents, Stop};
use crate::key_usage::KeyWrapCount;
use crate::options::{read_config, read_create_options};
use crate::results::{
    RevealedBuffers, RevealedFields, SessionStatus, SessionTicket, SubmitReceipt,
};

/// The one-time card-form vault. Open one with `Vault.open(options)` (there is no public
/// constructor: `new Vault()` throws) and share it: every method may be called
/// concurrently, from any number of callers and processes sharing the store; a form is
/// still revealed at most once.
///
/// Every method returns a Promise and never makes the JavaScript thread wait on the
/// network: an operation on the memory store completes at once (microseconds of CPU; a key
/// file source may also check its file, at most once per reload interval), one that waits
/// on Redis completes on the binding's own threads. A Promise rejects with an
/// `Error` whose `code` is one of the stable codes (`NOT_FOUND`, `ALREADY_SUBMITTED`,
/// `NOT_SUBMITTED`, `ALREADY_REVEALED`, `CANCELLED`, `LOCKED`, `WRONG_PIN`,
/// `VALIDATION_FAILED`, `INVALID_ARGUMENT`, `STORE_UNAVAILABLE`, `KEY_UNAVAILABLE`,
/// `INTEGRITY_ERROR`, `CAPACITY_EXCEEDED`). `WRONG_PIN` errors carry `attemptsLeft`;
/// `VALIDATION_FAILED` errors carry `fields: [{ field, reason }]`. An argument of the wrong
/// type rejects with a `TypeError` whose `code` is `INVALID_ARGUMENT`. No message contains
/// a field value, a PIN, a key or a session id.
#[napi]
pub struct Vault {
    inner: pci_vault::Vault,
    store_warnings: Arc<[String]>,
    /// The wrap counts of the keys; shared with `forTenant` vaults.
    key_usage: Arc<KeyUsage>,
    /// The `onAudit` callback's progress, if there is one; shared with `forTenant` vaults.
    audit: Option<Arc<AuditProgress>>,
}

#[napi]
impl Vault {
    /// Opens a vault: loads the keys, connects to the store (for Redis: checks that it
    /// answers and that the ACL allows every command) and applies the session defaults.
    ///
    /// Rejects with `KEY_UNAVAILABLE` when the keys cannot be loaded (the message names the
    /// source, never the key), `STORE_UNAVAILABLE` when Redis cannot be reached,
    /// `INVALID_ARGUMENT` for options out of range.
    #[napi(
        ts_args_type = "options: VaultOptions",
        ts_return_type = "Promise<Vault>"
    )]
    pub fn open<'env>(env: &'env Env, options: Unknown<'env>) -> Result<PromiseRaw<'env, Vault>> {
        let config = thrown_now(read_config(options))?;
        // Loading keys and connecting may read files and resolve names: never on the
        // JavaScript thread.
        settle_on_runtime(
            env,
            async move {
                let (config, audit) = config?;
                let opened = config.open().await?;
                Ok(Vault {
                    inner: opened.vault,
                    store_warnings: opened.store_warnings.into(),
                    key_usage: opened.key_usage,
                    audit,
                })
            },
            |_, vault| Ok(vault),
        )
    }

    /// The same vault, acting for another tenant on `createSession`, `status`, `reveal`
    /// and `cancel`. Throws a `TypeError`/`INVALID_ARGUMENT` error for a malformed name.
    #[napi(ts_args_type = "tenant: string")]
    pub fn for_tenant(&self, env: &Env, tenant: Unknown<'_>) -> Result<Vault> {
        let tenant = args::string(tenant, "tenant")
            .and_then(|name| Tenant::new(name).map_err(Failure::from));
        match tenant {
            Ok(tenant) => Ok(Vault {
                inner: self.inner.for_tenant(tenant),
                store_warnings: Arc::clone(&self.store_warnings),
                key_usage: Arc::clone(&self.key_usage),
                audit: self.audit.clone(),
            }),
            Err(failure) => Err(failure.into_js(env)),
        }
    }

    /// The tenant the agent-side methods act for.
    #[napi(getter)]
    pub fn tenant(&self) -> String {
        self.inner.tenant().as_str().to_owned()
    }

    /// The unsafe Redis settings `open` found (persistence on, an eviction policy that can
    /// silently drop sessions), one sentence each. Empty for the memory store, for a safe
    /// server, and when the ACL does not allow reading the settings. Log them at start.
    #[napi(getter)]
    pub fn store_warnings(&self) -> Vec<String> {
        self.store_warnings.to_vec()
    }

    /// How many data keys each key-encryption key has wrapped in this process, and whether
    /// one reached the wrap warning limit (2^30 per key): export it to monitoring and
    /// rotate a key before it is due. Key ids only, never key material.
    #[napi]
    pub fn key_usage(&self) -> Vec<KeyWrapCount> {
        self.key_usage
            .wraps()
            .into_iter()
            .map(KeyWrapCount::from)
            .collect()
    }

    /// Resolves once `onAudit` is done with every audit event recorded before the call: it
    /// has been called with each, and returned — when it returned a Promise, that Promise
    /// has settled. Resolves at once without `onAudit`. Await it before the process exits
    /// (`onAudit` does not keep the process alive), so no recorded event is lost.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn flush_audit<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let audit = self.audit.clone();
        settle_on_runtime(
            env,
            async move {
                if let Some(audit) = audit {
                    audit.flush().await;
                }
                Ok(())
            },
            |_, ()| Ok(()),
        )
    }

    /// How many audit events `onAudit` did not take since `open`: it threw, or the Promise
    /// it returned rejected. 0 without `onAudit`.
    #[napi]
    pub fn audit_failures(&self) -> i64 {
        let failures = self.audit.as_ref().map_or(0, |audit| audit.failures());
        i64::try_from(failures).unwrap_or(i64::MAX)
    }

    /// Creates a session and resolves to its id and expiry. The customer's link is
    /// `{publicBaseUrl}/forms/{id}`; send it only to that customer.
    #[napi(
        ts_args_type = "options?: CreateSessionOptions | null",
        ts_return_type = "Promise<SessionTicket>"
    )]
    pub fn create_session<'env>(
        &self,
        env: &'env Env,
        options: Option<Unknown<'env>>,
    ) -> Result<PromiseRaw<'env, SessionTicket>> {
        let options = thrown_now(read_create_options(options, self.inner.session_defaults()))?;
        let vault = self.inner.clone();
        settle(
            env,
            async move { Ok(vault.create_session(&options?).await?) },
            |_, ticket| Ok(SessionTicket::from(ticket)),
        )
    }

    /// What the agent may know about a session: state, times, attempts left, metadata.
    /// Never secret data.
    #[napi(ts_args_type = "id: string", ts_return_type = "Promise<SessionStatus>")]
    pub fn status<'env>(
        &self,
        env: &'env Env,
        id: Unknown<'env>,
    ) -> Result<PromiseRaw<'env, SessionStatus>> {
        let id = thrown_now(session_id(id))?;
        let vault = self.inner.clone();
        settle(
            env,
            async move { Ok(vault.status(&id?).await?) },
            |_, status| Ok(SessionStatus::from(status)),
        )
    }

    /// Watches a session's events: resolves to an async iterator that yields the session's
    /// current state first (as the event that led to it), then each event as it happens —
    /// from every process sharing the store — and ends after `revealed`, `locked`,
    /// `cancelled` or `expired`. `options.signal` (an `AbortSignal`) ends it early; so does
    /// leaving a `for await` loop. Rejects with `NOT_FOUND` for an unknown, expired or other
    /// tenant's session, `STORE_UNAVAILABLE` when the store cannot subscribe.
    #[napi(
        ts_args_type = "id: string, options?: { signal?: AbortSignal } | null",
        ts_return_type = "Promise<SessionEvents & AsyncIterableIterator<SessionEvent>>"
    )]
    pub fn watch<'env>(
        &self,
        env: &'env Env,
        id: Unknown<'env>,
        options: Option<Unknown<'env>>,
    ) -> Result<PromiseRaw<'env, ClassInstance<'env, SessionEvents>>> {
        let id = thrown_now(session_id(id))?;
        let signal = thrown_now(abort_signal(options))?;
        let vault = self.inner.clone();
        // Listening now, not once the watch has started: an abort in between still counts.
        let (stop, detach) = match signal {
            Ok(signal) => Stop::on_signal(env, signal)?,
            Err(failure) => return PromiseRaw::reject(env, failure.into_js(env)),
        };
        settle(
            env,
            async move {
                let watch = async { Ok::<_, Failure>(vault.watch(&id?).await?) };
                Ok(watch.await)
            },
            move |env, watch| match watch {
                Ok(watch) => SessionEvents::into_js(watch, stop, detach, env),
                Err(failure) => {
                    // No watch: the listener goes at once.
                    detach.run(env);
                    Err(failure.into_js(env))
                }
            },
        )
    }

    /// The customer's submission: `fields` maps each field name to its value (a string, or
    /// a `Buffer` of UTF-8 that you can wipe afterwards). Every field is validated before
    /// anything is stored; resolves to the PIN to show to the customer.
    ///
    /// Rejects with `VALIDATION_FAILED` (`err.fields` lists `{ field, reason }`),
    /// `INVALID_ARGUMENT` for a field the form does not have, `ALREADY_SUBMITTED`,
    /// `CANCELLED`, `NOT_FOUND`.
    #[napi(
        ts_args_type = "id: string, fields: Record<string, string | Buffer>",
        ts_return_type = "Promise<SubmitReceipt>"
    )]
    pub fn submit<'env>(
        &self,
        env: &'env Env,
        id: Unknown<'env>,
        fields: Unknown<'env>,
    ) -> Result<PromiseRaw<'env, SubmitReceipt<'env>>> {
        let input = thrown_now(session_id(id).and_then(|id| Ok((id, form_input(fields)?))))?;
        let vault = self.inner.clone();
        settle(
            env,
            async move {
                let (id, input) = input?;
                Ok(vault.submit(&id, &input).await?)
            },
            SubmitReceipt::new,
        )
    }

    /// Reveals the form once with the PIN the customer read out; the stored data is
    /// destroyed in the same step. Values come back as strings, which JavaScript cannot
    /// wipe: prefer `revealBuffers` when you can.
    ///
    /// Rejects with `WRONG_PIN` (`err.attemptsLeft`), `LOCKED` (the last allowed wrong PIN,
    /// and every call after it), `ALREADY_REVEALED`, `NOT_SUBMITTED`, `CANCELLED`,
    /// `NOT_FOUND`, `INVALID_ARGUMENT` when `pin` is not 4–12 digits.
    #[napi(
        ts_args_type = "id: string, pin: string",
        ts_return_type = "Promise<RevealedFields>"
    )]
    pub fn reveal<'env>(
        &self,
        env: &'env Env,
        id: Unknown<'env>,
        pin: Unknown<'env>,
    ) -> Result<PromiseRaw<'env, RevealedFields<'env>>> {
        self.reveal_into(env, id, pin, RevealedFields::new)
    }

    /// As `reveal`, with each value in a new `Buffer` of UTF-8 bytes: the only copy outside
    /// the vault, which `buffer.fill(0)` wipes once you are done.
    #[napi(
        ts_args_type = "id: string, pin: string",
        ts_return_type = "Promise<RevealedBuffers>"
    )]
    pub fn reveal_buffers<'env>(
        &self,
        env: &'env Env,
        id: Unknown<'env>,
        pin: Unknown<'env>,
    ) -> Result<PromiseRaw<'env, RevealedBuffers<'env>>> {
        self.reveal_into(env, id, pin, RevealedBuffers::new)
    }

    /// Cancels a pending or submitted session and destroys its data. Cancelling a cancelled
    /// session resolves again; a revealed or locked one rejects with its code.
    #[napi(ts_args_type = "id: string", ts_return_type = "Promise<void>")]
    pub fn cancel<'env>(&self, env: &'env Env, id: Unknown<'env>) -> Result<PromiseRaw<'env, ()>> {
        let id = thrown_now(session_id(id))?;
        let vault = self.inner.clone();
        settle(
            env,
            async move { Ok(vault.cancel(&id?).await?) },
            |_, ()| Ok(()),
        )
    }

    /// Resolves when the store answers; rejects with `STORE_UNAVAILABLE` otherwise.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn ping<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let vault = self.inner.clone();
        settle(env, async move { Ok(vault.ping().await?) }, |_, ()| Ok(()))
    }
}

impl Vault {
    /// `reveal` with `to_js` shaping the revealed form for JavaScript.
    fn reveal_into<'env, V, C>(
        &self,
        env: &'env Env,
        id: Unknown<'env>,
        pin: Unknown<'env>,
        to_js: C,
    ) -> Result<PromiseRaw<'env, V>>
    where
        V: ToNapiValue,
        C: FnOnce(&'env Env, RevealedForm) -> Result<V> + 'static,
    {
        let request = thrown_now(reveal_request(id, pin))?;
        let vault = self.inner.clone();
        settle(
            env,
            async move {
                let (id, pin) = request?;
                Ok(vault.reveal(&id, &pin).await?)
            },
            to_js,
        )
    }
}

/// Settles a Promise with `work`: `to_js` turns a success into a JavaScript value on the
/// JavaScript thread; a failure becomes a JavaScript error through [`Failure::into_js`],
/// the one error path of the binding.
///
/// `work` is polled once here, inside the runtime's context. An operation that does not
/// wait (every operation on the memory store: microseconds of CPU) settles its
/// Promise at once, which saves two thread hops that cost several times the operation
/// itself. One that waits (on Redis) moves to the runtime and settles
/// from there, so the JavaScript thread never waits on I/O.
pub(crate) fn settle<'env, T, V, W, C>(
    env: &'env Env,
    work: W,
    to_js: C,
) -> Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
    W: Future<Output = std::result::Result<T, Failure>> + Send + 'static,
    C: FnOnce(&'env Env, T) -> Result<V> + 'static,
{
    let mut work = Guarded::new(work);
    let first_poll = within_runtime_if_available(|| {
        std::pin::Pin::new(&mut work).poll(&mut Context::from_waker(Waker::noop()))
    });
    match first_poll {
        Poll::Ready(Ok(value)) => match to_js(env, value) {
            Ok(value) => PromiseRaw::resolve(env, value),
            Err(error) => PromiseRaw::reject(env, error),
        },
        Poll::Ready(Err(failure)) => PromiseRaw::reject(env, failure.into_js(env)),
        // Polled again on the runtime, with a waker that works: a pending future registers
        // the waker of its latest poll.
        Poll::Pending => spawn_settling(env, work, to_js),
    }
}

/// Runs `work` on the binding's tokio runtime and settles a Promise with it, as [`settle`].
fn settle_on_runtime<'env, T, V, W, C>(
    env: &'env Env,
    work: W,
    to_js: C,
) -> Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
    W: Future<Output = std::result::Result<T, Failure>> + Send + 'static,
    C: FnOnce(&'env Env, T) -> Result<V> + 'static,
{
    spawn_settling(env, Guarded::new(work), to_js)
}

fn spawn_settling<'env, T, V, W, C>(
    env: &'env Env,
    work: Guarded<W>,
    to_js: C,
) -> Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
    W: Future<Output = std::result::Result<T, Failure>> + Send + 'static,
    C: FnOnce(&'env Env, T) -> Result<V> + 'static,
{
    env.spawn_future_with_callback(
        async move { Ok(work.await) },
        move |env, outcome| match outcome {
            Ok(value) => to_js(env, value),
            Err(failure) => Err(failure.into_js(env)),
        },
    )
}

/// `work` with a panic in any of its polls made into [`Failure::panicked`]. A panic must
/// not unwind into Node (that aborts the process), and napi-rs would reject a panicked
/// task's Promise with an error without `code` (and with the panic's text): every
/// rejection goes through [`Failure`] instead.
struct Guarded<W>(std::pin::Pin<Box<W>>);

impl<W> Guarded<W> {
    fn new(work: W) -> Self {
        Guarded(Box::pin(work))
    }
}

impl<T, W> Future for Guarded<W>
where
    W: Future<Output = std::result::Result<T, Failure>>,
{
    type Output = W::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let work = self.get_mut().0.as_mut();
        panic::catch_unwind(AssertUnwindSafe(|| work.poll(cx)))
            .unwrap_or_else(|_| Poll::Ready(Err(Failure::panicked())))
    }
}

/// Lets an exception JavaScript threw while an argument was read (a getter, a `Proxy`)
/// propagate at once, as it would from any JavaScript function; every other failure is
/// kept to reject the Promise with.
fn thrown_now<T>(read: Arg<T>) -> Result<Arg<T>> {
    match read {
        Err(Failure::Js(error)) => Err(error),
        other => Ok(other),
    }
}

/// The `signal` of `watch`'s options, if any: an object with `aborted`,
/// `addEventListener` and `removeEventListener`, as an `AbortSignal` has.
fn abort_signal(options: Option<Unknown<'_>>) -> Arg<Option<Object<'_>>> {
    let Some(options) = options else {
        return Ok(None);
    };
    if matches!(
        options.get_type(),
        Ok(ValueType::Null | ValueType::Undefined)
    ) {
        return Ok(None);
    }
    let options = args::object(options, "options")?;
    let signal: Option<Unknown<'_>> = options.get("signal").map_err(Failure::Js)?;
    let Some(signal) = signal else {
        return Ok(None);
    };
    match signal.get_type()? {
        ValueType::Null | ValueType::Undefined => return Ok(None),
        ValueType::Object => {}
        _ => return Err(Failure::type_error("options.signal", "an AbortSignal")),
    }
    let signal = Object::from_unknown(signal)?;
    let method = |name: &str| -> Arg<bool> {
        Ok(signal
            .get::<Unknown<'_>>(name)
            .map_err(Failure::Js)?
            .is_some_and(|f| matches!(f.get_type(), Ok(ValueType::Function))))
    };
    let listens = method("addEventListener")? && method("removeEventListener")?;
    let knows = signal
        .get::<Unknown<'_>>("aborted")
        .map_err(Failure::Js)?
        .is_some_and(|a| matches!(a.get_type(), Ok(ValueType::Boolean)));
    if !(listens && knows) {
        return Err(Failure::type_error("options.signal", "an AbortSignal"));
    }
    Ok(Some(signal))
}

fn session_id(value: Unknown<'_>) -> Arg<SessionId> {
    Ok(SessionId::parse(&args::string(value, "id")?)?)
}

fn reveal_request(id: Unknown<'_>, pin: Unknown<'_>) -> Arg<(SessionId, Pin)> {
    let id = session_id(id)?;
    let pin = Pin::parse(&args::secret_string(pin, "pin")?)?;
    Ok((id, pin))
}

fn form_input(value: Unknown<'_>) -> Arg<FormInput> {
    let fields = args::object(value, "fields")?;
    let mut input = FormInput::new();
    for (name, value) in args::entries(
        &fields,
        FormSpec::MAX_FIELDS,
        "a submission has at most 32 fields",
    )? {
        let mut text = args::secret_text(value, &args::property_name("fields", &name))?;
        input.insert(name, std::mem::take(&mut *text));
    }
    Ok(input)
}
