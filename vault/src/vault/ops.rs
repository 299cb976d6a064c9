//! The five operations, as compare-and-set loops over the store.
//!
//! Each operation loads the record, checks it (checksum, tenant, tag, expiry, state),
//! computes the next record and writes it back only if nobody wrote in between. A conflict
//! means another caller changed the session: the loop reloads and decides again from the
//! new state. Conflicts come only from other writers of the same session, and a session
//! takes at most a handful of writes, so the loops end quickly; [`MAX_ROUNDS`] bounds them
//! anyway.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;

use super::{Inner, Receipt};
use crate::audit::{Actor, AuditAction, AuditEvent, AuditOutcome};
use crate::card::{Brand, mask_pan};
use crate::clock::from_millis;
use crate::crypto::{SessionCrypto, dek_wrap_aad, store_key};
use crate::error::{Error, Result};
use crate::form::{CardSummary, FormInput, FormSpec, RevealedForm};
use crate::keys::{DataKey, WrappedKey};
use crate::pin::Pin;
use crate::record::SealedRecord;
use crate::session::{SessionId, SessionOptions, SessionState, SessionStatus, Ticket};
use crate::store::{CasOutcome, Version};
use crate::tenant::Tenant;

/// Most compare-and-set rounds an operation makes before it gives up.
const MAX_ROUNDS: usize = 64;

fn contention() -> Error {
    Error::store_unavailable("too many concurrent writes to one session")
}

/// A record read from the store and authenticated.
pub(crate) struct Loaded {
    pub(crate) record: SealedRecord,
    pub(crate) version: Version,
    pub(crate) crypto: SessionCrypto,
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
    fn audit(
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
        let unverified = SealedRecord::decode(&stored.value)?;
        if tenant.is_some_and(|t| t != unverified.tenant()) {
            return Err(Error::NotFound);
        }
        let aad = dek_wrap_aad(unverified.tenant(), id);
        let dek = self
            .keys
            .unwrap(unverified.wrapped_dek(), aad.as_slice())
            .await?;
        let crypto = SessionCrypto::new(&dek, unverified.tenant(), id);
        let record = unverified.verify(&crypto)?;
        if self.clock.now_millis() >= record.expires_at {
            return Err(Error::NotFound);
        }
        Ok(Loaded {
            record,
            version: stored.version,
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
fn not_revealable(state: SessionState) -> Error {
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
            .store
            .create(&key_for(&id), &bytes, options.ttl)
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
    let Loaded { record, .. } = inner.load(&key_for(id), id, Some(tenant)).await?;
    Ok(SessionStatus {
        state: record.state,
        created_at: from_millis(record.created_at),
        submitted_at: record.submitted_at.map(from_millis),
        expires_at: from_millis(record.expires_at),
        attempts_left: record.attempts_left(),
        metadata: record.metadata.clone(),
        form: record.form.clone(),
    })
}

pub(super) async fn submit(inner: &Inner, id: &SessionId, input: &FormInput) -> Result<Receipt> {
    let key = key_for(id);
    for _ in 0..MAX_ROUNDS {
        let Loaded {
            record,
            version,
            crypto,
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
    let submitted = SealedRecord {
        state: SessionState::Submitted,
        submitted_at: Some(crate::clock::to_millis(now)),
        pin_verifier: Some(crypto.pin_verifier(pin.expose_secret().as_bytes())),
        sealed_fields: values
            .iter()
            .map(|(name, value)| (name.clone(), crypto.seal_field(name, value.as_bytes())))
            .collect(),
        ..record.clone()
    };
    match inner
        .store
        .replace(key, version, &submitted.encode(crypto))
        .await?
    {
        CasOutcome::Applied(_) => Ok(Some(Receipt {
            pin,
            expires_at: from_millis(record.expires_at),
        })),
        CasOutcome::Conflict => Ok(None),
    }
}

pub(super) async fn reveal(
    inner: &Inner,
    tenant: &Tenant,
    id: &SessionId,
    pin: &Pin,
) -> Result<RevealedForm> {
    let outcome = reveal_inner(inner, tenant, id, pin).await;
    match &outcome {
        Ok(_) => inner.audit(
            AuditAction::Revealed,
            AuditOutcome::Success,
            id,
            tenant,
            Actor::Agent,
            None,
        ),
        Err(Error::Locked) => inner.audit(
            AuditAction::Revealed,
            AuditOutcome::Failure(crate::ErrorCode::Locked),
            id,
            tenant,
            Actor::Agent,
            Some(0),
        ),
        Err(e @ Error::WrongPin { attempts_left }) => inner.audit(
            AuditAction::Revealed,
            AuditOutcome::Failure(e.code()),
            id,
            tenant,
            Actor::Agent,
            Some(*attempts_left),
        ),
        Err(e) => inner.audit(
            AuditAction::Revealed,
            AuditOutcome::Failure(e.code()),
            id,
            tenant,
            Actor::Agent,
            None,
        ),
    }
    outcome
}

async fn reveal_inner(
    inner: &Inner,
    tenant: &Tenant,
    id: &SessionId,
    pin: &Pin,
) -> Result<RevealedForm> {
    let key = key_for(id);

    // 1. Take one attempt, durably, before the PIN is looked at.
    let mut taken = None;
    for _ in 0..MAX_ROUNDS {
        let Loaded {
            record,
            version,
            crypto,
        } = inner.load(&key, id, Some(tenant)).await?;
        if record.state != SessionState::Submitted || record.attempts_used >= record.max_attempts {
            return Err(not_revealable(record.state));
        }
        let reserved = SealedRecord {
            attempts_used: record.attempts_used + 1,
            ..record
        };
        if let CasOutcome::Applied(v) = inner
            .store
            .replace(&key, version, &reserved.encode(&crypto))
            .await?
        {
            taken = Some(Loaded {
                record: reserved,
                version: v,
                crypto,
            });
            break;
        }
    }
    let Loaded {
        record,
        version,
        crypto,
    } = taken.ok_or_else(contention)?;

    // 2. Compare, in constant time.
    let verifier = record.pin_verifier.ok_or(Error::IntegrityError)?;
    if crypto.verify_pin(pin.expose_secret().as_bytes(), &verifier) {
        let form = open_form(&record, &crypto)?;
        end_session(
            inner,
            &key,
            id,
            tenant,
            record,
            version,
            &crypto,
            SessionState::Revealed,
        )
        .await?;
        return Ok(form);
    }
    let attempts_left = record.attempts_left();
    if attempts_left > 0 {
        return Err(Error::WrongPin { attempts_left });
    }
    end_session(
        inner,
        &key,
        id,
        tenant,
        record,
        version,
        &crypto,
        SessionState::Locked,
    )
    .await?;
    inner.audit(
        AuditAction::Locked,
        AuditOutcome::Success,
        id,
        tenant,
        Actor::Agent,
        Some(0),
    );
    Err(Error::Locked)
}

/// Replaces a submitted record with a tombstone in state `end`, destroying its data.
/// Other callers may have taken attempts since `version`; as long as the session is still
/// `Submitted` the transition stands, otherwise the state that won is reported.
#[allow(clippy::too_many_arguments)]
async fn end_session(
    inner: &Inner,
    key: &str,
    id: &SessionId,
    tenant: &Tenant,
    mut record: SealedRecord,
    mut version: Version,
    crypto: &SessionCrypto,
    end: SessionState,
) -> Result<()> {
    for _ in 0..MAX_ROUNDS {
        let tombstone = record.tombstone(end);
        if let CasOutcome::Applied(_) = inner
            .store
            .replace(key, version, &tombstone.encode(crypto))
            .await?
        {
            return Ok(());
        }
        let loaded = inner.load(key, id, Some(tenant)).await?;
        if loaded.record.state != SessionState::Submitted {
            return Err(not_revealable(loaded.record.state));
        }
        record = loaded.record;
        version = loaded.version;
    }
    Err(contention())
}

/// Opens every sealed field, in form order.
fn open_form(record: &SealedRecord, crypto: &SessionCrypto) -> Result<RevealedForm> {
    let mut fields = Vec::with_capacity(record.sealed_fields.len());
    let mut card = None;
    for spec in record.form.fields() {
        let Some((_, sealed)) = record.sealed_fields.iter().find(|(n, _)| n == spec.name()) else {
            continue;
        };
        let mut clear = crypto.open_field(spec.name(), sealed)?;
        let text =
            String::from_utf8(std::mem::take(&mut *clear)).map_err(|_| Error::IntegrityError)?;
        if spec.name() == FormSpec::CARD_NUMBER {
            card = Brand::detect(&text).map(|brand| CardSummary {
                brand,
                masked_number: mask_pan(&text),
            });
        }
        fields.push((spec.name().to_owned(), SecretString::from(text)));
    }
    Ok(RevealedForm { fields, card })
}

pub(super) async fn cancel(inner: &Inner, tenant: &Tenant, id: &SessionId) -> Result<()> {
    let key = key_for(id);
    let outcome = async {
        for _ in 0..MAX_ROUNDS {
            let Loaded {
                record,
                version,
                crypto,
            } = inner.load(&key, id, Some(tenant)).await?;
            match record.state {
                SessionState::Pending | SessionState::Submitted => {}
                SessionState::Cancelled => return Ok(()),
                SessionState::Revealed => return Err(Error::AlreadyRevealed),
                SessionState::Locked => return Err(Error::Locked),
            }
            let tombstone = record.tombstone(SessionState::Cancelled);
            if let CasOutcome::Applied(_) = inner
                .store
                .replace(&key, version, &tombstone.encode(&crypto))
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
