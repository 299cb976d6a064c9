#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod config;
mod pool;
mod token;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use pci_vault::{DataKey, Error, KeyId, KeyProvider, Result, WrappedKey};
use zeroize::Zeroizing;

pub use config::{PinSource, Pkcs11Config};
pub use token::create_key;

use pool::SessionPool;

/// The first byte of every wrapped key this provider writes: the format of the rest.
const FORMAT_V1: u8 = 1;
/// AES-GCM nonce length, in bytes.
const IV_LEN: usize = 12;
/// AES-GCM tag length, in bytes.
const TAG_LEN: usize = 16;
/// Length of a wrapped key: format byte, nonce, the encrypted 32-byte data key, tag.
const WRAPPED_LEN: usize = 1 + IV_LEN + 32 + TAG_LEN;
/// Longest wait for one call to the token, the wait for a free session included. A token
/// that stalls (a network HSM that stopped answering) then answers `KEY_UNAVAILABLE`
/// instead of holding the vault's operations for ever; the stalled call keeps its session
/// until the module returns.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound in front of the vault's associated data, so a ciphertext of this provider never
/// authenticates as anything else made with the same token key.
const AAD_LABEL: &[u8] = b"pci-vault pkcs11 wrap v1\0";

/// A key provider whose key-encryption keys live in a PKCS#11 token (an HSM) and never
/// leave it: data keys are encrypted and decrypted inside the token with `CKM_AES_GCM`.
///
/// The primary key wraps; the previous keys only unwrap. A record naming any other key id
/// is `KEY_UNAVAILABLE` without a call to the token. Every key is checked at open: an AES
/// key of 32 bytes, sensitive and not extractable.
///
/// Calls to the token run on tokio's blocking threads, on a pool of sessions (one call a
/// session at a time), so the async caller never waits on the token's thread.
#[derive(Clone)]
pub struct Pkcs11Provider {
    inner: Arc<Inner>,
}

struct Inner {
    token: String,
    primary: KeyId,
    /// Every key of the source and what it must allow: the primary first.
    wanted: Vec<(KeyId, token::Usage)>,
    /// The token's handle of each key, found again when the login is restored.
    keys: RwLock<BTreeMap<KeyId, ObjectHandle>>,
    pool: SessionPool,
}

impl Pkcs11Provider {
    /// Loads the module, finds the token, logs in with the PIN and checks every key.
    ///
    /// Blocks on the token: call it from a blocking context or at start
    /// ([`Pkcs11Provider::connect`] does it on a blocking thread).
    ///
    /// # Errors
    /// `KEY_UNAVAILABLE`, naming what is wrong and never the PIN: the module cannot be
    /// loaded, no token or several tokens have the label, the PIN is unreadable or wrong,
    /// the token does not support `CKM_AES_GCM`, a key is missing, ambiguous, not a 32-byte
    /// AES key, not sensitive or extractable.
    pub fn open(config: &Pkcs11Config) -> Result<Self> {
        let (pool, slot_label) = SessionPool::open(config)?;
        let wanted: Vec<(KeyId, token::Usage)> =
            std::iter::once((config.key.clone(), token::Usage::Wrap))
                .chain(
                    config
                        .previous
                        .iter()
                        .map(|id| (id.clone(), token::Usage::Unwrap)),
                )
                .collect();
        let session = pool.take()?;
        let keys = find_keys(session.session(), &slot_label, &wanted);
        pool.give_back(session, keys.is_ok());
        let keys = keys?;
        let inner = Inner {
            token: slot_label,
            primary: config.key.clone(),
            wanted,
            keys: RwLock::new(keys),
            pool,
        };
        inner.check_round_trip()?;
        Ok(Pkcs11Provider {
            inner: Arc::new(inner),
        })
    }

    /// [`Pkcs11Provider::open`] on a blocking thread.
    ///
    /// # Errors
    /// As [`Pkcs11Provider::open`].
    pub async fn connect(config: Pkcs11Config) -> Result<Self> {
        tokio::task::spawn_blocking(move || Pkcs11Provider::open(&config))
            .await
            .map_err(|_| Error::key_unavailable("opening the PKCS#11 token stopped unexpectedly"))?
    }

    /// The id (the token label of the key) that wraps new data keys.
    pub fn primary(&self) -> &KeyId {
        &self.inner.primary
    }

    /// Runs `op` with a session of the pool on a blocking thread, waiting at most
    /// [`CALL_TIMEOUT`].
    async fn with_session<T: Send + 'static>(
        &self,
        op: impl Fn(&Inner, &cryptoki::session::Session) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        within(CALL_TIMEOUT, &self.inner.token, self.call(op)).await
    }

    /// Runs `op` on a session of the pool. When it fails because the token lost the session
    /// or the login (a restarted or failed-over HSM, a logout), the login is restored — a new
    /// session, the PIN read again, the keys found again — and `op` runs once more.
    async fn call<T: Send + 'static>(
        &self,
        op: impl Fn(&Inner, &cryptoki::session::Session) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let permit = self.inner.pool.permit().await?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let seen = inner.pool.restorations();
            if inner.pool.is_stale() {
                // An earlier restoration did not succeed: the keys' handles may be wrong.
                inner.restore(seen)?;
                return inner.attempt(&op).0;
            }
            let (out, lost) = inner.attempt(&op);
            if !lost {
                return out;
            }
            tracing::warn!(
                target: "pci_vault",
                token = %inner.token,
                "the PKCS#11 token lost the session, the login or the keys' handles; logging in again"
            );
            inner.restore(seen)?;
            inner.attempt(&op).0
        })
        .await
        .map_err(|_| Error::key_unavailable("a PKCS#11 call stopped unexpectedly"))?
    }
}

/// Finds and checks every key of `wanted` on `session`.
fn find_keys(
    session: &Session,
    token: &str,
    wanted: &[(KeyId, token::Usage)],
) -> Result<BTreeMap<KeyId, ObjectHandle>> {
    let mut keys = BTreeMap::new();
    for (id, usage) in wanted {
        let handle = token::find_key(session, token, id, *usage)?;
        if keys.insert(id.clone(), handle).is_some() {
            return Err(Error::InvalidArgument(
                "a PKCS#11 key label appears twice in the key source",
            ));
        }
    }
    Ok(keys)
}

/// `call`'s outcome, or `KEY_UNAVAILABLE` when it takes longer than `limit`.
async fn within<T>(
    limit: Duration,
    token: &str,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(Error::key_unavailable(format!(
            "the PKCS#11 token {token:?} did not answer within {limit:?}"
        )))
    })
}

/// The associated data given to the token: a label, the key id and the vault's data.
fn token_aad(key_id: &KeyId, aad: &[u8]) -> Result<Vec<u8>> {
    let id = key_id.as_str().as_bytes();
    let id_len = u8::try_from(id.len())
        .map_err(|_| Error::InvalidArgument("a key id is at most 64 bytes"))?;
    let mut out = Vec::with_capacity(AAD_LABEL.len() + 1 + id.len() + aad.len());
    out.extend_from_slice(AAD_LABEL);
    out.push(id_len);
    out.extend_from_slice(id);
    out.extend_from_slice(aad);
    Ok(out)
}

#[async_trait]
impl KeyProvider for Pkcs11Provider {
    async fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<WrappedKey> {
        let plain = Zeroizing::new(*dek.expose_secret());
        let aad = aad.to_vec();
        let ciphertext = self
            .with_session(move |inner, session| inner.seal(session, &plain, &aad))
            .await?;
        Ok(WrappedKey {
            key_id: self.inner.primary.clone(),
            ciphertext,
        })
    }

    async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey> {
        // A key id this source does not hold needs no session.
        self.inner.handle(&wrapped.key_id)?;
        let (wrapped, aad) = (wrapped.clone(), aad.to_vec());
        let plain = self
            .with_session(move |inner, session| inner.unseal(session, &wrapped, &aad))
            .await?;
        DataKey::from_slice(&plain)
    }
}

impl Inner {
    /// Runs `op` on a session of the pool: its outcome, and whether it failed because the
    /// session, the login or the keys' handles are lost. A session whose call failed for
    /// another reason than the data is closed, not reused: the token may have dropped it.
    fn attempt<T>(&self, op: &impl Fn(&Inner, &Session) -> Result<T>) -> (Result<T>, bool) {
        let session = match self.pool.take() {
            Ok(session) => session,
            Err(e) => return (Err(e), false),
        };
        let out = op(self, session.session());
        let reusable = match &out {
            Ok(_) => true,
            Err(e) => e.code() == pci_vault::ErrorCode::IntegrityError,
        };
        let lost =
            !reusable && (pool::lost(session.session()) || !self.handles_valid(session.session()));
        self.pool.give_back(session, reusable);
        (out, lost)
    }

    /// Whether every key handle still names an object on the token: a restarted token may
    /// keep the login but not the handles.
    fn handles_valid(&self, session: &Session) -> bool {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.values().all(|handle| {
            session
                .get_attributes(*handle, &[cryptoki::object::AttributeType::KeyType])
                .is_ok()
        })
    }

    /// Restores the login (unless another call did since `seen`) and finds the keys again,
    /// on the new login's session, before the restoration counts: a restarted token may give
    /// them other handles.
    fn restore(&self, seen: u64) -> Result<()> {
        self.pool.restore(seen, |session| {
            let keys = find_keys(session, &self.token, &self.wanted)?;
            *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
            Ok(())
        })
    }

    /// Encrypts a data key with the primary key: the wrapped key's bytes (format, the IV the
    /// token used, ciphertext and tag).
    fn seal(&self, session: &Session, plain: &[u8; 32], aad: &[u8]) -> Result<Vec<u8>> {
        let id = &self.primary;
        let handle = self.handle(id)?;
        let token_aad = token_aad(id, aad)?;
        let mut iv = [0u8; IV_LEN];
        getrandom::fill(&mut iv)
            .map_err(|_| Error::key_unavailable("the operating system random source failed"))?;
        let (iv, sealed) = token::encrypt(session, &self.token, id, handle, iv, &token_aad, plain)?;
        if sealed.len() != 32 + TAG_LEN {
            return Err(Error::key_unavailable(
                "the PKCS#11 token returned a ciphertext of an unexpected length",
            ));
        }
        let mut ciphertext = Vec::with_capacity(WRAPPED_LEN);
        ciphertext.push(FORMAT_V1);
        ciphertext.extend_from_slice(&iv);
        ciphertext.extend_from_slice(&sealed);
        Ok(ciphertext)
    }

    /// The token's handle of key `id`; `KEY_UNAVAILABLE` for a key id this source does not
    /// hold.
    fn handle(&self, id: &KeyId) -> Result<ObjectHandle> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.get(id).copied().ok_or_else(|| {
            Error::key_unavailable(format!(
                "key id {:?} is neither the primary nor a previous key of this PKCS#11 key source",
                id.as_str()
            ))
        })
    }

    /// Decrypts a wrapped key with the key it names.
    fn unseal(
        &self,
        session: &Session,
        wrapped: &WrappedKey,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let id = &wrapped.key_id;
        let handle = self.handle(id)?;
        let bytes = &wrapped.ciphertext;
        if bytes.len() != WRAPPED_LEN || bytes.first() != Some(&FORMAT_V1) {
            return Err(Error::IntegrityError);
        }
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(bytes.get(1..=IV_LEN).ok_or(Error::IntegrityError)?);
        let sealed = bytes.get(1 + IV_LEN..).ok_or(Error::IntegrityError)?;
        let token_aad = token_aad(id, aad)?;
        token::decrypt(session, &self.token, id, handle, iv, &token_aad, sealed)
    }

    /// Wraps a random data key with the primary key and unwraps it again, at open: a token
    /// whose AES-GCM does not give back what it sealed (an IV it makes but does not write
    /// back, an output laid out otherwise) is refused before it seals any session's key.
    fn check_round_trip(&self) -> Result<()> {
        let mut probe = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut probe[..])
            .map_err(|_| Error::key_unavailable("the operating system random source failed"))?;
        let aad = b"pci-vault pkcs11 open check";
        let session = self.pool.take()?;
        let result = self
            .seal(session.session(), &probe, aad)
            .and_then(|ciphertext| {
                let wrapped = WrappedKey {
                    key_id: self.primary.clone(),
                    ciphertext,
                };
                self.unseal(session.session(), &wrapped, aad)
            });
        self.pool.give_back(session, result.is_ok());
        match result {
            Ok(plain) if plain.as_slice() == probe.as_slice() => Ok(()),
            Ok(_) | Err(Error::IntegrityError) => Err(Error::key_unavailable(format!(
                "the PKCS#11 token {:?} did not decrypt what it had just encrypted with key {:?}: \
                 its CKM_AES_GCM does not work the way this key source needs",
                self.token,
                self.primary.as_str()
            ))),
            Err(e) => Err(e),
        }
    }
}

impl fmt::Debug for Pkcs11Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Provider")
            .field("token", &self.inner.token)
            .field("primary", &self.inner.primary)
            .field(
                "key_ids",
                &self
                    .inner
                    .wanted
                    .iter()
                    .map(|(id, _)| id)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_call_that_does_not_answer_in_time_is_key_unavailable() {
        let stalled = within(CALL_TIMEOUT, "hsm", std::future::pending::<Result<()>>()).await;
        let error = stalled.unwrap_err();
        assert_eq!(error.code(), pci_vault::ErrorCode::KeyUnavailable);
        assert!(
            error.to_string().contains("did not answer within 10s"),
            "{error}"
        );
        let answered = within(CALL_TIMEOUT, "hsm", async { Ok(7) }).await;
        assert_eq!(answered.unwrap(), 7);
    }
}
