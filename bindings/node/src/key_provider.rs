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
//!   the ciphertext or `aad` does not authenticate (`INTEGRITY_ERROR`).
//!
//! Each call runs on the JavaScript thread as any callback does and is awaited from the
//! binding's runtime, so a slow provider never blocks the event loop (a provider that
//! computes synchronously for long does, as any JavaScript code). A call that does not
//! settle within the timeout, throws, rejects or returns something else is
//! `KEY_UNAVAILABLE`; the thrown value is not kept (it could hold anything, even key
//! material). The data key handed to `wrap` is a Buffer the JavaScript engine owns: the
//! provider should `dataKey.fill(0)` when done with it. The Buffer `unwrap` returns is
//! copied and then zeroed by the binding.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use napi::bindgen_prelude::JsObjectValue as _;
use napi::bindgen_prelude::{Buffer, FnArgs, FromNapiValue, Function, Object, Promise, Unknown};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{JsValue as _, ValueType};
use napi_derive::napi;
use pci_vault::{DataKey, Error, KeyId, Result, WrappedKey};
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
    /// does not authenticate.
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
type UnwrapFn = ThreadsafeFunction<
    FnArgs<(JsWrappedKey, Buffer)>,
    Promise<Option<Buffer>>,
    FnArgs<(JsWrappedKey, Buffer)>,
    napi::Status,
    false,
    true,
>;

/// A JavaScript key provider, as the vault's [`pci_vault::KeyProvider`].
pub(crate) struct JsKeyProvider {
    wrap: WrapFn,
    unwrap: UnwrapFn,
    timeout: Duration,
}

impl JsKeyProvider {
    /// Default time a call may take.
    pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Longest accepted `timeoutMs`.
    const MAX_TIMEOUT_MS: u64 = 60_000;

    /// Reads `keys.provider` (an object with `wrap` and `unwrap` methods, own or inherited)
    /// and `keys.timeoutMs`.
    pub(crate) fn read(value: Unknown<'_>, timeout: Option<Unknown<'_>>) -> Arg<Self> {
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
        let unwrap =
            Function::<FnArgs<(JsWrappedKey, Buffer)>, Promise<Option<Buffer>>>::from_unknown(
                asyncify.call(method("unwrap")?.bind(object)?.to_unknown())?,
            )?
            .build_threadsafe_function::<FnArgs<(JsWrappedKey, Buffer)>>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        let timeout = match timeout {
            None => Self::DEFAULT_TIMEOUT,
            Some(value) => {
                let ms = args::whole(value, "options.keys.timeoutMs")?;
                if !(1..=Self::MAX_TIMEOUT_MS).contains(&ms) {
                    return Err(Failure::invalid(
                        "options.keys.timeoutMs is a whole number from 1 to 60000",
                    ));
                }
                Duration::from_millis(ms)
            }
        };
        Ok(JsKeyProvider {
            wrap,
            unwrap,
            timeout,
        })
    }

    /// Awaits a call to the provider and the Promise it returns, within the timeout.
    async fn settle<T>(
        &self,
        what: &str,
        call: impl Future<Output = napi::Result<Promise<T>>>,
    ) -> Result<T>
    where
        T: FromNapiValue + Send + 'static,
    {
        let timeout = self.timeout;
        let outcome = napi::tokio::time::timeout(timeout, async {
            let promise = call.await?;
            promise.await
        })
        .await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            // The thrown or rejected value is not kept: it could hold anything.
            Ok(Err(_)) => Err(Error::key_unavailable(format!(
                "the JavaScript key provider's {what} threw, rejected or returned something else"
            ))),
            Err(_) => Err(Error::key_unavailable(format!(
                "the JavaScript key provider's {what} did not settle within {} ms",
                timeout.as_millis()
            ))),
        }
    }
}

#[async_trait]
impl pci_vault::KeyProvider for JsKeyProvider {
    async fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<WrappedKey> {
        let data_key = Buffer::from(dek.expose_secret().to_vec());
        let aad = Buffer::from(aad.to_vec());
        let wrapped = self
            .settle("wrap", self.wrap.call_async(FnArgs::from((data_key, aad))))
            .await?;
        let key_id = KeyId::new(wrapped.key_id).map_err(|_| {
            Error::key_unavailable(
                "the JavaScript key provider returned a key id that is not 1-64 characters of \
                 A-Z a-z 0-9 . _ : / -",
            )
        })?;
        if wrapped.ciphertext.len() > WrappedKey::MAX_CIPHERTEXT_LEN {
            return Err(Error::key_unavailable(
                "the JavaScript key provider returned a wrapped key longer than 1 KiB",
            ));
        }
        Ok(WrappedKey {
            key_id,
            ciphertext: wrapped.ciphertext.to_vec(),
        })
    }

    async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey> {
        let arg = JsWrappedKey {
            key_id: wrapped.key_id.as_str().to_owned(),
            ciphertext: Buffer::from(wrapped.ciphertext.clone()),
        };
        let aad = Buffer::from(aad.to_vec());
        let returned = self
            .settle("unwrap", self.unwrap.call_async(FnArgs::from((arg, aad))))
            .await?;
        let Some(mut returned) = returned else {
            return Err(Error::IntegrityError);
        };
        let clear = Zeroizing::new(returned.to_vec());
        // The provider handed the Buffer over: wipe the engine's copy too.
        let engine_copy: &mut [u8] = &mut returned;
        engine_copy.zeroize();
        DataKey::from_slice(&clear).map_err(|_| {
            Error::key_unavailable(
                "the JavaScript key provider returned a data key that is not 32 bytes",
            )
        })
    }
}

impl fmt::Debug for JsKeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsKeyProvider")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The key source of `keys: { provider, timeoutMs }`.
pub(crate) fn key_source(
    provider: Unknown<'_>,
    timeout: Option<Unknown<'_>>,
) -> Arg<pci_vault_config::KeySource> {
    let provider: Arc<dyn pci_vault::KeyProvider> =
        Arc::new(JsKeyProvider::read(provider, timeout)?);
    Ok(pci_vault_config::KeySource::Provider(provider))
}
