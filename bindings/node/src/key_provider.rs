//! A key provider written in JavaScript (`keys: { provider }`): the host's KMS or HSM
//! client wraps and unwraps the vault's data keys.
//!
//! The provider is an object with two methods, each returning a Promise (or a value):
//!
//! - `wrap(dataKey: Buffer, aad: Buffer) → { keyId: string, ciphertext: Buffer }`: wraps a
//!   fresh 32-byte data key, binding `aad`, and names the wrapping key (1–64 characters of
//!   `A-Z a-z 0-9 . _ : / -`; the ciphertext is at most 1 KiB).
//! - `unwrap({ keyId, ciphertext }, aad: Buffer) → Buffer | null`: returns the 32 bytes with
//!   exactly the key `keyId` names, never trying another; `null` when the key is known but
//!   the ciphertext or `aad` does not authenticate (`INTEGRITY_ERROR`). Only `null` means
//!   that: `undefined` (a forgotten `return`) is a provider bug, not tampering, and is
//!   `KEY_UNAVAILABLE` like any other value that is not a Buffer.
//!
//! Each call runs on the JavaScript thread as any callback does and is awaited from the
//! binding's runtime, so a slow provider never blocks the event loop (a provider that
//! computes synchronously for long does, as any JavaScript code). A call that does not
//! settle within the timeout, throws, rejects or returns something else is
//! `KEY_UNAVAILABLE`; the thrown value is not kept (it could hold anything, even key
//! material). The data key handed to `wrap` is a Buffer the JavaScript engine owns: the
//! provider should `dataKey.fill(0)` when done with it. The Buffer `unwrap` returns is
//! copied and then zeroed by the binding, also when it arrives after the timeout.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use napi::bindgen_prelude::JsObjectValue as _;
use napi::bindgen_prelude::{
    Buffer, Either, FnArgs, FromNapiValue, Function, Null, Object, Promise, Unknown,
};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{JsValue as _, ValueType};
use napi_derive::napi;
use pci_vault::{Error, Result, WrappedKey};
use pci_vault_keys::{HostCalls, HostProvider};
use tokio::sync::oneshot;
use zeroize::{Zeroize as _, Zeroizing};

use crate::args::{self, Arg};
use crate::errors::Failure;

/// What `wrap` resolves to, and what `unwrap` is given.
#[napi(object)]
pub(crate) struct JsWrappedKey {
    /// The id of the key that wrapped the data key.
    pub key_id: String,
    /// The provider's ciphertext, at most 1 KiB.
    pub ciphertext: Buffer,
}

/// A key provider written in JavaScript (`keys: { provider }`).
#[napi(object, object_from_js = false, object_to_js = false)]
#[expect(dead_code, reason = "declares the provider type in index.d.ts only")]
pub(crate) struct KeyProvider {
    /// Wraps a fresh 32-byte data key, binding `aad`; names the wrapping key in `keyId`.
    #[napi(ts_type = "(dataKey: Buffer, aad: Buffer) => Promise<JsWrappedKey>")]
    pub wrap: String,
    /// Unwraps with exactly the key `keyId` names; `null` when the ciphertext or `aad`
    /// does not authenticate. Only `null`: `undefined` is `KEY_UNAVAILABLE`.
    #[napi(ts_type = "(wrapped: JsWrappedKey, aad: Buffer) => Promise<Buffer | null>")]
    pub unwrap: String,
}

type WrapFn = ThreadsafeFunction<
    FnArgs<(Buffer, Buffer)>,
    Promise<JsWrappedKey>,
    FnArgs<(Buffer, Buffer)>,
    napi::Status,
    false,
    true,
>;
/// What `unwrap` resolves to: the key, or `null`. Anything else (`undefined` included)
/// fails the conversion, so the call is `KEY_UNAVAILABLE`.
type Unwrapped = Either<Buffer, Null>;

type UnwrapFn = ThreadsafeFunction<
    FnArgs<(JsWrappedKey, Buffer)>,
    Promise<Unwrapped>,
    FnArgs<(JsWrappedKey, Buffer)>,
    napi::Status,
    false,
    true,
>;

/// The calls into a JavaScript key provider; `HostProvider` bounds and checks them.
pub(crate) struct JsKeyProvider {
    wrap: WrapFn,
    /// Shared with the task each `unwrap` call runs in.
    unwrap: Arc<UnwrapFn>,
}

impl JsKeyProvider {
    /// Reads `keys.provider`: an object with `wrap` and `unwrap` methods, own or inherited.
    fn read(value: Unknown<'_>) -> Arg<Self> {
        const NAME: &str = "options.keys.provider";
        if value.get_type()? != ValueType::Object {
            return Err(Failure::type_error(
                NAME,
                "an object with wrap and unwrap methods",
            ));
        }
        let object = Object::from_unknown(value)?;
        let method = |name: &str| -> Arg<Function<'_, Unknown<'_>, Unknown<'_>>> {
            let value: Unknown<'_> = object.get_named_property(name)?;
            if value.get_type()? != ValueType::Function {
                return Err(Failure::type_error(
                    &format!("{NAME}.{name}"),
                    "a function returning a Promise",
                ));
            }
            Ok(Function::from_unknown(value)?)
        };
        // Bound to the provider, so class methods that use `this` work, and called through
        // an async arrow function, so a provider that throws synchronously (or returns a
        // plain value) gives a rejected (or resolved) Promise, never an uncaught exception.
        let env = napi::Env::from_raw(value.value().env);
        let asyncify: Function<'_, Unknown<'_>, Unknown<'_>> =
            env.run_script("(method) => async (...args) => method(...args)")?;
        let wrap = Function::<FnArgs<(Buffer, Buffer)>, Promise<JsWrappedKey>>::from_unknown(
            asyncify.call(method("wrap")?.bind(object)?.to_unknown())?,
        )?
        .build_threadsafe_function::<FnArgs<(Buffer, Buffer)>>()
        .callee_handled::<false>()
        .weak::<true>()
        .build()?;
        let unwrap = Function::<FnArgs<(JsWrappedKey, Buffer)>, Promise<Unwrapped>>::from_unknown(
            asyncify.call(method("unwrap")?.bind(object)?.to_unknown())?,
        )?
        .build_threadsafe_function::<FnArgs<(JsWrappedKey, Buffer)>>()
        .callee_handled::<false>()
        .weak::<true>()
        .build()?;
        Ok(JsKeyProvider {
            wrap,
            unwrap: Arc::new(unwrap),
        })
    }
}

/// Awaits a call to the provider and the Promise it returns. What was thrown or rejected
/// is not kept: it could hold anything.
async fn settle<T: FromNapiValue + Send + 'static>(
    what: &str,
    call: impl Future<Output = napi::Result<Promise<T>>>,
) -> Result<T> {
    let outcome = async { call.await?.await };
    outcome.await.map_err(|_| {
        Error::key_unavailable(format!(
            "the JavaScript key provider's {what} threw, rejected or returned something else"
        ))
    })
}

#[async_trait]
impl HostCalls for JsKeyProvider {
    async fn wrap(&self, data_key: Zeroizing<Vec<u8>>, aad: Vec<u8>) -> Result<(String, Vec<u8>)> {
        let args = FnArgs::from((Buffer::from(data_key.to_vec()), Buffer::from(aad)));
        let wrapped = settle("wrap", self.wrap.call_async(args)).await?;
        Ok((wrapped.key_id, wrapped.ciphertext.to_vec()))
    }

    async fn unwrap(
        &self,
        wrapped: &WrappedKey,
        aad: Vec<u8>,
    ) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let arg = JsWrappedKey {
            key_id: wrapped.key_id.as_str().to_owned(),
            ciphertext: Buffer::from(wrapped.ciphertext.clone()),
        };
        let args = FnArgs::from((arg, Buffer::from(aad)));
        let unwrap = Arc::clone(&self.unwrap);
        // The call and the wait for its Promise run in a task of their own: when the
        // provider's timeout drops this future, the task still takes (and wipes) the key
        // the provider resolves later, instead of leaving it in the engine's Buffer.
        // Bounded too, past the longest timeout a provider may have, so a Promise that never
        // settles does not keep a task for each call forever.
        let (answer, answered) = oneshot::channel();
        napi::bindgen_prelude::spawn(async move {
            let late = tokio::time::timeout(LATE_UNWRAP, settle("unwrap", unwrap.call_async(args)));
            let Ok(returned) = late.await else {
                return;
            };
            // Nobody waits any more after a timeout: the key is dropped, so wiped.
            let _ = answer.send(returned.map(take_key));
        });
        answered.await.map_err(|_| {
            Error::key_unavailable("the JavaScript key provider's unwrap was stopped")
        })?
    }
}

/// How long an `unwrap` task waits for the provider's Promise, whoever still waits for the
/// answer: twice the longest timeout a provider may be given.
const LATE_UNWRAP: std::time::Duration =
    HostProvider::<JsKeyProvider>::MAX_TIMEOUT.saturating_mul(2);

/// The key out of what `unwrap` resolved to: copied under `Zeroizing`, and the provider's
/// Buffer wiped, since the provider handed it over. `None` for `null`.
fn take_key(returned: Unwrapped) -> Option<Zeroizing<Vec<u8>>> {
    match returned {
        Either::A(mut buffer) => {
            let clear = Zeroizing::new(buffer.to_vec());
            let engine_copy: &mut [u8] = &mut buffer;
            engine_copy.zeroize();
            Some(clear)
        }
        Either::B(Null) => None,
    }
}

/// The key source of `keys: { provider, timeoutMs }`.
pub(crate) fn key_source(
    provider: Unknown<'_>,
    timeout: Option<Unknown<'_>>,
) -> Arg<pci_vault_config::KeySource> {
    let timeout = timeout
        .map(|value| args::whole(value, "options.keys.timeoutMs").map(Duration::from_millis))
        .transpose()?;
    let calls = JsKeyProvider::read(provider)?;
    let provider = HostProvider::new(calls, "the JavaScript key provider", timeout)?;
    Ok(pci_vault_config::KeySource::Provider(Arc::new(provider)))
}
