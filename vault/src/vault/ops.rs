//! Create, status, submit and cancel, as compare-and-set loops over the store; reveal is in
//! [`super::reveal`].
//!
//! Each operation loads the record, checks it (checksum, tenant, tag, expiry, state),
//! computes the next record and writes it back only if nobody wrote in between. Every
//! write carries a fresh random version, so its outcome is learned even when its reply is
//! lost (see [`super::write`]). A conflict means another caller changed the session: the
//! loop reloads and decides again from the new state. Conflicts come only from other
//! writers of the same session, and a session takes at most a handful of writes, so the
//! loops end quickly; [`MAX_ROUNDS`] bounds them anyway.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::write::Written;
use super::{Inner, Receipt};
use crate::audit::{Actor, AuditAction, AuditEvent, AuditOutcome};
use crate::clock::from_millis;
use crate::crypto::{SessionCrypto, dek_wrap_aad, store_key};
use crate::error::{Error, Result};
use crate::events::{PublishedEvent, SessionEventKind};
use crate::form::{CardSummary, FormInput, FormSpec};
use crate::keys::{DataKey, WrappedKey};
use crate::pin::Pin;
use crate::record::SealedRecord;
use crate::session::{SessionId, SessionOptions, SessionState, SessionStatus, Ticket};
use crate::store::{CasOutcome, Claim, Version, Versioned};
use crate::tenant::Tenant;

/// Most compare-and-set rounds an operation makes before it gives up.
pub(crate) const MAX_ROUNDS: usize = 64;

pub(crate) fn contention() -> Error {
    Error::store_unavailable("too many concurrent writes to one session")
}

/// A record read from the store and authenticated.
pub(crate) struct Loaded {
    pub(crate) record: SealedRecord,
    pub(crate) version: Version,
    pub(crate) claims: Vec<Claim>,
    pub(crate) crypto: SessionCrypto,
}

/// A session's data key with the wrapped key it was unwrapped from: what a reader of one
/// session keeps between reads, so that reading a record that still holds that wrapped key
/// asks the key provider nothing (with a KMS or an HSM, a call over the network).
pub(crate) struct KnownKey {
    wrapped: WrappedKey,
    dek: DataKey,
}

impl Loaded {
    /// The data key of this read, to pass to the next read of the same session.
    pub(crate) fn known_key(&self) -> KnownKey {
        KnownKey {
            wrapped: self.record.wrapped_dek.clone(),
            dek: self.crypto.data_key().clone(),
        }
    }

    /// PIN attempts taken: those counted in the record, and the claims taken on it since
    /// (a claim past `max_attempts` compared no PIN and is not an attempt).
    pub(crate) fn attempts_used(&self) -> u8 {
        let claimed = u8::try_from(self.claims.len()).unwrap_or(u8::MAX);
        self.record
            .attempts_used
            .saturating_add(claimed)
            .min(self.record.max_attempts)
    }

    /// Wrong PINs still allowed.
    pub(crate) fn attempts_left(&self) -> u8 {
        match self.record.state {
            SessionState::Locked => 0,
            _ => self.record.max_attempts - self.attempts_used(),
        }
    }

    /// The same session in the terminal state `end`, without any secret data. Its claims
    /// stay beside it in the store, so the attempts taken are still counted.
    pub(crate) fn tombstone(&self, end: SessionState) -> SealedRecord {
        self.record.tombstone(end)
    }
}

/// The store key of a session: base64url of [`store_key`], 43 characters, on the stack.
pub(crate) struct StoreKey([u8; 43]);

impl StoreKey {
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::ops::Deref for StoreKey {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

pub(crate) fn key_for(id: &SessionId) -> StoreKey {
    let mut text = [0u8; 43];
    // 32 bytes always encode to 43 unpadded base64 characters.
    let _ = URL_SAFE_NO_PAD.encode_slice(store_key(id), &mut text);
    StoreKey(text)
}

impl Inner {
    pub(crate) fn audit(
        &self,
        action: AuditAction,
        outcome: AuditOutcome,
        id: &SessionId,
        tenant: &Tenant,
        actor: Actor,
        attempts_left: Option<u8>,
    ) {
        self.audit.record(&AuditEvent {
            action,
            outcome,
            session_ref: self.audit_key.session_ref(id),
            tenant: tenant.clone(),
            actor,
            at: self.clock.now(),
            attempts_left,
        });
    }

    /// Loads, decodes and authenticates a session's record. `tenant` is the acting tenant
    /// for agent-side calls (another tenant's session is `NOT_FOUND`), `None` for the
    /// customer. An expired session is `NOT_FOUND` whether or not the store has evicted it.
    pub(crate) async fn load(
        &self,
        key: &str,
        id: &SessionId,
        tenant: Option<&Tenant>,
    ) -> Result<Loaded> {
        let stored = self.store.load(key).await?.ok_or(Error::NotFound)?;
        self.open_entry(stored, id, tenant).await
    }

    /// Decodes and authenticates an entry read from the store (see [`Inner::load`]).
    pub(crate) async fn open_entry(
        &self,
        stored: Versioned,
        id: &SessionId,
        tenant: Option<&Tenant>,
    ) -> Result<Loaded> {
        self.open_entry_knowing(stored, id, tenant, None).await
    }

    /// As [`Inner::open_entry`], given the data key of an earlier read of the session: when
    /// the entry still holds the wrapped key it came from, it is used without asking the
    /// key provider. The record is authenticated under it all the same.
    pub(crate) async fn open_entry_knowing(
        &self,
        stored: Versioned,
        id: &SessionId,
        tenant: Option<&Tenant>,
        known: Option<&KnownKey>,
    ) -> Result<Loaded> {
        let unverified = SealedRecord::decode(&stored.value)?;
        if tenant.is_some_and(|t| t != unverified.tenant()) {
            return Err(Error::NotFound);
        }
        let dek = match known {
            Some(known) if known.wrapped == *unverified.wrapped_dek() => known.dek.clone(),
            _ => {
                let aad = dek_wrap_aad(unverified.tenant(), id);
                self.keys
                    .unwrap(unverified.wrapped_dek(), aad.as_slice())
                    .await?
            }
        };
        let crypto = SessionCrypto::new(&dek, unverified.tenant(), id);
        let record = unverified.verify(&crypto)?;
        if self.clock.now_millis() >= record.expires_at {
            return Err(Error::NotFound);
        }
        Ok(Loaded {
            record,
            version: stored.version,
            claims: stored.claims,
            crypto,
        })
    }

    async fn wrap(&self, dek: &DataKey, tenant: &Tenant, id: &SessionId) -> Result<WrappedKey> {
        let wrapped = self
            .keys
            .wrap(dek, dek_wrap_aad(tenant, id).as_slice())
            .await?;
        if wrapped.ciphertext.len() > WrappedKey::MAX_CIPHERTEXT_LEN {
            return Err(Error::key_unavailable(
                "the key provider returned a wrapped key over 1 KiB",
            ));
        }
        Ok(wrapped)
    }
}

/// The error an agent-side call gets for a session that is not `Submitted`.
pub(crate) fn not_revealable(state: SessionState) -> Error {
    match state {
        SessionState::Pending => Error::NotSubmitted,
        SessionState::Revealed => Error::AlreadyRevealed,
        SessionState::Cancelled => Error::Cancelled,
        SessionState::Locked | SessionState::Submitted => Error::Locked,
    }
}

pub(super) async fn create_session(
    inner: &Inner,
    tenant: &Tenant,
    options: &SessionOptions,
) -> Result<Ticket> {
    options.validate()?;
    for _ in 0..MAX_ROUNDS {
        let id = SessionId::generate();
        let dek = DataKey::generate();
        let wrapped = inner.wrap(&dek, tenant, &id).await?;
        let crypto = SessionCrypto::new(&dek, tenant, &id);
        let record =
            SealedRecord::pending(tenant.clone(), inner.clock.now_millis(), options, wrapped);
        let bytes = record.encode(&crypto);
        // A 256-bit id collides only if the random source is broken; a new id is drawn then.
        if let CasOutcome::Applied(_) = inner
            .create_entry(&key_for(&id), Version::random(), &bytes, options.ttl)
            .await?
        {
            inner.audit(
                AuditAction::Created,
                AuditOutcome::Success,
                &id,
                tenant,
                Actor::Agent,
                None,
            );
            return Ok(Ticket {
                id,
                expires_at: from_millis(record.expires_at),
            });
        }
    }
    Err(contention())
}

pub(super) async fn status(
    inner: &Inner,
    tenant: &Tenant,
    id: &SessionId,
) -> Result<SessionStatus> {
    let key = key_for(id);
    let mut loaded = inner.load(&key, id, Some(tenant)).await?;
    if super::reveal::is_stranded(inner, &loaded) {
        // Every attempt was taken and none of them stored its outcome within the grace
        // period: the session is finished as locked. If that write fails, what was read
        // is reported; the next reveal finishes it.
        if let Ok(finished) = super::reveal::finish_stranded(inner, &key, id, tenant, &loaded).await
        {
            loaded = finished;
        }
    }
    let attempts_left = loaded.attempts_left();
    let Loaded { record, .. } = loaded;
    Ok(SessionStatus {
        state: record.state,
        created_at: from_millis(record.created_at),
        submitted_at: record.submitted_at.map(from_millis),
        expires_at: from_millis(record.expires_at),
        attempts_left,
        metadata: record.metadata,
        form: record.form,
        card: record.card,
    })
}

pub(super) async fn submit(inner: &Inner, id: &SessionId, input: &FormInput) -> Result<Receipt> {
    let key = key_for(id);
    for _ in 0..MAX_ROUNDS {
        let Loaded {
            record,
            version,
            crypto,
            ..
        } = inner.load(&key, id, None).await?;
        let outcome = submit_once(inner, &key, &record, version, &crypto, input).await;
        match outcome {
            Ok(Some(receipt)) => {
                inner.audit(
                    AuditAction::Submitted,
                    AuditOutcome::Success,
                    id,
                    &record.tenant,
                    Actor::Customer,
                    None,
                );
                return Ok(receipt);
            }
            Ok(None) => continue,
            Err(e) => {
                if !matches!(e, Error::StoreUnavailable(_)) {
                    inner.audit(
                        AuditAction::Submitted,
                        AuditOutcome::Failure(e.code()),
                        id,
                        &record.tenant,
                        Actor::Customer,
                        None,
                    );
                }
                return Err(e);
            }
        }
    }
    Err(contention())
}

/// One round of `submit`: `Ok(None)` when another writer got in first.
async fn submit_once(
    inner: &Inner,
    key: &str,
    record: &SealedRecord,
    version: Version,
    crypto: &SessionCrypto,
    input: &FormInput,
) -> Result<Option<Receipt>> {
    match record.state {
        SessionState::Pending => {}
        SessionState::Cancelled => return Err(Error::Cancelled),
        SessionState::Submitted | SessionState::Revealed | SessionState::Locked => {
            return Err(Error::AlreadySubmitted);
        }
    }
    let now = inner.clock.now();
    let values = record.form.validate(input, now)?;
    let pin = Pin::generate(record.pin_length)?;
    let card = values
        .iter()
        .find(|(name, _)| name.as_ref() == FormSpec::CARD_NUMBER)
        .and_then(|(_, digits)| CardSummary::of(digits));
    let submitted = SealedRecord {
        state: SessionState::Submitted,
        submitted_at: Some(crate::clock::to_millis(now)),
        pin_verifier: Some(crypto.pin_verifier(pin.expose_secret().as_bytes())),
        card,
        sealed_fields: values
            .iter()
            .map(|(name, value)| (name.clone(), crypto.seal_field(name, value.as_bytes())))
            .collect(),
        ..record.clone()
    };
    let event = PublishedEvent::new(
        SessionEventKind::Submitted,
        SessionState::Submitted,
        record.attempts_left(),
        crate::clock::to_millis(now),
    );
    match inner
        .replace_entry(
            key,
            version,
            Version::random(),
            &submitted.encode(crypto),
            &event.seal(crypto),
        )
        .await?
    {
        Written::Applied => Ok(Some(Receipt {
            pin,
            expires_at: from_millis(record.expires_at),
        })),
        // This submit may have been stored before the other write replaced it: the
        // customer's own submission must not be reported as somebody else's.
        Written::Conflict {
            after_unanswered: true,
        } => Err(Error::store_unavailable(
            "the store did not confirm the submission before the session changed; its outcome is unknown",
        )),
        Written::Conflict {
            after_unanswered: false,
        } => Ok(None),
    }
}

pub(super) async fn cancel(inner: &Inner, tenant: &Tenant, id: &SessionId) -> Result<()> {
    let key = key_for(id);
    let outcome = async {
        for _ in 0..MAX_ROUNDS {
            let loaded = inner.load(&key, id, Some(tenant)).await?;
            match loaded.record.state {
                SessionState::Pending | SessionState::Submitted => {}
                SessionState::Cancelled => return Ok(()),
                SessionState::Revealed => return Err(Error::AlreadyRevealed),
                SessionState::Locked => return Err(Error::Locked),
            }
            let tombstone = loaded.tombstone(SessionState::Cancelled);
            let event = PublishedEvent::new(
                SessionEventKind::Cancelled,
                SessionState::Cancelled,
                loaded.attempts_left(),
                inner.clock.now_millis(),
            );
            if let Written::Applied = inner
                .replace_entry(
                    &key,
                    loaded.version,
                    Version::random(),
                    &tombstone.encode(&loaded.crypto),
                    &event.seal(&loaded.crypto),
                )
                .await?
            {
                return Ok(());
            }
        }
        Err(contention())
    }
    .await;
    let audit_outcome = match &outcome {
        Ok(()) => AuditOutcome::Success,
        Err(e) => AuditOutcome::Failure(e.code()),
    };
    inner.audit(
        AuditAction::Cancelled,
        audit_outcome,
        id,
        tenant,
        Actor::Agent,
        None,
    );
    outcome
}
