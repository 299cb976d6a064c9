//! A key provider written in a host language (a JavaScript object, a Python class): the
//! checks every binding applies to what such a provider answers, and the time it may take.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use pci_vault::{DataKey, Error, KeyId, KeyProvider, Result, WrappedKey};
use zeroize::Zeroizing;

/// The calls into a host's provider, as a binding makes them. Each returns what the host
/// answered, or the error the binding made of a failure (never the host's own text when
/// it could hold key material); [`HostProvider`] checks the answers and bounds the time.
#[async_trait]
pub trait HostCalls: Send + Sync {
    /// Asks the host to wrap `data_key` (32 bytes) bound to `aad`: the id of the key that
    /// wrapped it, and the host's ciphertext.
    async fn wrap(&self, data_key: Zeroizing<Vec<u8>>, aad: Vec<u8>) -> Result<(String, Vec<u8>)>;

    /// Asks the host to unwrap `wrapped` with the same `aad`: the data key, or `None` when
    /// the host says the ciphertext or `aad` does not authenticate.
    async fn unwrap(
        &self,
        wrapped: &WrappedKey,
        aad: Vec<u8>,
    ) -> Result<Option<Zeroizing<Vec<u8>>>>;
}

/// A host's key provider as the vault's [`KeyProvider`]: every call is bounded by a
/// timeout, and every answer is checked (a key id the vault can store, a ciphertext of at
/// most [`WrappedKey::MAX_CIPHERTEXT_LEN`] bytes, a 32-byte data key). A call that takes
/// too long is `KEY_UNAVAILABLE`; what the host answers later is dropped (a data key wiped).
pub struct HostProvider<C> {
    calls: C,
    name: &'static str,
    timeout: Duration,
}

/// [`HostProvider::DEFAULT_TIMEOUT`], for code that does not name the host's calls.
pub(crate) const DEFAULT_HOST_TIMEOUT: Duration = Duration::from_secs(5);

impl<C: HostCalls> HostProvider<C> {
    /// Time a call may take unless the host says otherwise.
    pub const DEFAULT_TIMEOUT: Duration = DEFAULT_HOST_TIMEOUT;
    /// Longest time a host may allow a call.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

    /// `calls`, named `name` in error messages (`"the JavaScript key provider"`), each
    /// bounded by `timeout` ([`Self::DEFAULT_TIMEOUT`] when `None`).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when `timeout` is not 1 ms to 60 s.
    pub fn new(calls: C, name: &'static str, timeout: Option<Duration>) -> Result<Self> {
        let timeout = timeout.unwrap_or(Self::DEFAULT_TIMEOUT);
        if timeout < Duration::from_millis(1) || timeout > Self::MAX_TIMEOUT {
            return Err(Error::InvalidArgument(
                "a key provider's timeout is 1 to 60000 ms",
            ));
        }
        Ok(HostProvider {
            calls,
            name,
            timeout,
        })
    }

    /// The time a call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn bounded<T>(&self, what: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(Error::key_unavailable(format!(
                    "{}'s {what} did not settle within {} ms",
                    self.name,
                    self.timeout.as_millis()
                )))
            })
    }
}

#[async_trait]
impl<C: HostCalls> KeyProvider for HostProvider<C> {
    async fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<WrappedKey> {
        let data_key = Zeroizing::new(dek.expose_secret().to_vec());
        let (key_id, ciphertext) = self
            .bounded("wrap", self.calls.wrap(data_key, aad.to_vec()))
            .await?;
        let key_id = KeyId::new(key_id).map_err(|_| {
            Error::key_unavailable(format!(
                "{} returned a key id that is not 1-64 characters of A-Z a-z 0-9 . _ : / -",
                self.name
            ))
        })?;
        if ciphertext.len() > WrappedKey::MAX_CIPHERTEXT_LEN {
            return Err(Error::key_unavailable(format!(
                "{} returned a wrapped key longer than 1 KiB",
                self.name
            )));
        }
        Ok(WrappedKey { key_id, ciphertext })
    }

    async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey> {
        let clear = self
            .bounded("unwrap", self.calls.unwrap(wrapped, aad.to_vec()))
            .await?
            .ok_or(Error::IntegrityError)?;
        DataKey::from_slice(&clear).map_err(|_| {
            Error::key_unavailable(format!(
                "{} returned a data key that is not 32 bytes",
                self.name
            ))
        })
    }
}

impl<C> fmt::Debug for HostProvider<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostProvider")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use pci_vault::ErrorCode;

    use super::*;

    /// Answers what it is told to, after `delay`.
    struct Scripted {
        delay: Duration,
        wrap: Mutex<Option<(String, Vec<u8>)>>,
        unwrap: Mutex<Option<Option<Vec<u8>>>>,
    }

    #[async_trait]
    impl HostCalls for Scripted {
        async fn wrap(&self, _: Zeroizing<Vec<u8>>, _: Vec<u8>) -> Result<(String, Vec<u8>)> {
            tokio::time::sleep(self.delay).await;
            let answer = self.wrap.lock().unwrap_or_else(|e| e.into_inner()).take();
            answer.ok_or_else(|| Error::key_unavailable("no answer"))
        }

        async fn unwrap(&self, _: &WrappedKey, _: Vec<u8>) -> Result<Option<Zeroizing<Vec<u8>>>> {
            tokio::time::sleep(self.delay).await;
            let answer = self.unwrap.lock().unwrap_or_else(|e| e.into_inner()).take();
            Ok(answer.flatten().map(Zeroizing::new))
        }
    }

    fn provider(
        delay_ms: u64,
        wrap: (&str, usize),
        unwrap: Option<Vec<u8>>,
    ) -> HostProvider<Scripted> {
        let calls = Scripted {
            delay: Duration::from_millis(delay_ms),
            wrap: Mutex::new(Some((wrap.0.to_owned(), vec![7; wrap.1]))),
            unwrap: Mutex::new(Some(unwrap)),
        };
        HostProvider::new(calls, "the test provider", Some(Duration::from_millis(100)))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn wrapped() -> WrappedKey {
        WrappedKey {
            key_id: KeyId::new("k1").unwrap_or_else(|e| panic!("{e}")),
            ciphertext: vec![1; 8],
        }
    }

    #[tokio::test]
    async fn answers_are_checked() {
        let dek = DataKey::generate();
        let ok = provider(0, ("kms:k1", 40), Some(vec![9; 32]));
        let wrapped_key = ok
            .wrap(&dek, b"aad")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(wrapped_key.key_id.as_str(), "kms:k1");
        assert!(ok.unwrap(&wrapped(), b"aad").await.is_ok());

        for (bad, expected) in [
            (provider(0, ("k 1", 40), None), "key id"),
            (provider(0, ("k1", 1025), None), "longer than 1 KiB"),
        ] {
            let err = bad.wrap(&dek, b"aad").await.unwrap_err();
            assert_eq!(err.code(), ErrorCode::KeyUnavailable);
            assert!(err.to_string().contains(expected), "{err}");
            assert!(err.to_string().contains("the test provider"), "{err}");
        }
        let short = provider(0, ("k1", 40), Some(vec![9; 31]));
        let err = short.unwrap(&wrapped(), b"aad").await.unwrap_err();
        assert!(err.to_string().contains("not 32 bytes"), "{err}");
        let refused = provider(0, ("k1", 40), None);
        let err = refused.unwrap(&wrapped(), b"aad").await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::IntegrityError);
    }

    #[tokio::test]
    async fn a_slow_call_is_key_unavailable_at_the_timeout() {
        let slow = provider(2_000, ("k1", 40), Some(vec![9; 32]));
        let started = std::time::Instant::now();
        let err = slow.wrap(&DataKey::generate(), b"aad").await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::KeyUnavailable);
        assert!(
            err.to_string()
                .contains("wrap did not settle within 100 ms"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        let err = slow.unwrap(&wrapped(), b"aad").await.unwrap_err();
        assert!(
            err.to_string()
                .contains("unwrap did not settle within 100 ms"),
            "{err}"
        );
    }

    #[test]
    fn the_timeout_is_bounded() {
        let calls = || Scripted {
            delay: Duration::ZERO,
            wrap: Mutex::new(None),
            unwrap: Mutex::new(None),
        };
        for bad in [Duration::ZERO, Duration::from_millis(60_001)] {
            let err = HostProvider::new(calls(), "p", Some(bad)).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidArgument);
        }
        let default = HostProvider::new(calls(), "p", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(default.timeout(), Duration::from_secs(5));
    }
}
