//! Reveal: one claim per guess, the PIN compared only once the claim is stored.
//!
//! A guess first takes a claim on the session's entry, in the same atomic store step that
//! reads it ([`crate::store::EphemeralStore::claim`]): the claim's place is the attempt's
//! number, so at most `max_attempts` PINs are ever compared, whatever the concurrency.
//! Then, in this order:
//!
//! - right PIN: the `Revealed` tombstone replaces the record, and the form is returned only
//!   once that write is known to be stored;
//! - wrong PIN with attempts left: `WRONG_PIN`, no further write (the claim counts it);
//! - wrong PIN on the last attempt: the `Locked` tombstone replaces the record.
//!
//! A guess that finds every attempt taken compares nothing. While the session is still
//! `Submitted`, a guess in flight will store its outcome: it waits for it (at most the
//! grace period after the latest attempt) and reports the state that won. A session whose
//! attempts are all taken and whose outcome was never stored (a lost write, a process that
//! died between its two steps) is finished as `Locked` by the next caller once the grace
//! period has passed.

use std::time::{Duration, Instant};

use secrecy::SecretString;

use super::Inner;
use super::ops::{Loaded, MAX_ROUNDS, contention, key_for, not_revealable};
use super::write::Written;
use crate::audit::{Actor, AuditAction, AuditOutcome};
use crate::crypto::SessionCrypto;
use crate::error::{Error, ErrorCode, Result};
use crate::events::{PublishedEvent, SessionEventKind};
use crate::form::{CardSummary, FormSpec, RevealedForm};
use crate::pin::Pin;
use crate::record::SealedRecord;
use crate::session::{SessionId, SessionOptions, SessionState};
use crate::store::{Claim, Version};
use crate::tenant::Tenant;

/// Claims one entry may hold: enough for the largest `max_attempts`. Claims past a
/// session's own `max_attempts` are kept but never compare a PIN.
const CLAIM_LIMIT: u8 = SessionOptions::MAX_ATTEMPTS;

/// First pause while waiting for a guess in flight; it doubles up to [`MAX_WAIT_PAUSE`].
const FIRST_WAIT_PAUSE: Duration = Duration::from_millis(2);
const MAX_WAIT_PAUSE: Duration = Duration::from_millis(100);

pub(super) async fn reveal(
    inner: &Inner,
    tenant: &Tenant,
    id: &SessionId,
    pin: &Pin,
) -> Result<RevealedForm> {
    let outcome = reveal_inner(inner, tenant, id, pin).await;
    let (audit_outcome, attempts_left) = match &outcome {
        Ok(_) => (AuditOutcome::Success, None),
        Err(Error::Locked) => (AuditOutcome::Failure(ErrorCode::Locked), Some(0)),
        Err(e @ Error::WrongPin { attempts_left }) => {
            (AuditOutcome::Failure(e.code()), Some(*attempts_left))
        }
        Err(e) => (AuditOutcome::Failure(e.code()), None),
    };
    inner.audit(
        AuditAction::Revealed,
        audit_outcome,
        id,
        tenant,
        Actor::Agent,
        attempts_left,
    );
    outcome
}

async fn reveal_inner(
    inner: &Inner,
    tenant: &Tenant,
    id: &SessionId,
    pin: &Pin,
) -> Result<RevealedForm> {
    let key = key_for(id);

    // 1. Take an attempt, durably, in the same step that reads the record.
    let claim = Claim {
        id: Version::random().0,
        at_millis: inner.clock.now_millis(),
    };
    let claimed = inner
        .claim_entry(
            &key,
            claim,
            CLAIM_LIMIT,
            &SealedRecord::submitted_prefix(tenant),
        )
        .await?
        .ok_or(Error::NotFound)?;
    let loaded = match inner.open_entry(claimed.entry, id, Some(tenant)).await {
        Ok(loaded) => loaded,
        Err(e) => {
            // Nothing was compared (the key provider failed, the record did not
            // authenticate, it expired): the claim is given back if no later one follows
            // it, so a key provider outage does not use up the session's attempts. If it
            // cannot be given back, it stays counted.
            if claimed.slot.is_some() {
                let _ = inner.release_entry(&key, claim.id).await;
            }
            return Err(e);
        }
    };
    if loaded.record.state != SessionState::Submitted {
        return Err(not_revealable(loaded.record.state));
    }
    let attempt = claimed
        .slot
        .map(|slot| loaded.record.attempts_used.saturating_add(slot))
        .filter(|n| *n <= loaded.record.max_attempts);
    let Some(attempt) = attempt else {
        return Err(await_outcome(inner, &key, id, tenant, loaded).await);
    };

    // 2. Compare, in constant time, now that the attempt is counted.
    let verifier = loaded.record.pin_verifier.ok_or(Error::IntegrityError)?;
    if loaded
        .crypto
        .verify_pin(pin.expose_secret().as_bytes(), &verifier)
    {
        let form = open_form(&loaded.record, &loaded.crypto)?;
        // At most once: the form leaves only when its tombstone is known to be stored.
        end_session(inner, &key, id, tenant, &loaded, SessionState::Revealed).await?;
        return Ok(form);
    }
    let attempts_left = loaded.record.max_attempts - attempt;
    if attempts_left > 0 {
        // The attempt is counted (the claim); the event follows the comparison. Delivery
        // is at most once: a watcher that misses it sees the attempts left on the next.
        let event = PublishedEvent::new(
            SessionEventKind::RevealFailed,
            SessionState::Submitted,
            attempts_left,
            inner.clock.now_millis(),
        );
        if let Err(e) = inner.store.publish(&key, &event.seal(&loaded.crypto)).await {
            tracing::debug!(target: "pci_vault", code = %e.code(), "reveal_failed event not published");
        }
        return Err(Error::WrongPin { attempts_left });
    }
    end_session(inner, &key, id, tenant, &loaded, SessionState::Locked).await?;
    audit_locked(inner, id, tenant);
    Err(Error::Locked)
}

fn audit_locked(inner: &Inner, id: &SessionId, tenant: &Tenant) {
    inner.audit(
        AuditAction::Locked,
        AuditOutcome::Success,
        id,
        tenant,
        Actor::Agent,
        Some(0),
    );
}

/// Replaces the submitted record `loaded` with a tombstone in state `end`, destroying its
/// data. `Ok` only when that write is known to be stored; when another write got there
/// first, the state that won, as the error an agent gets for it.
async fn end_session(
    inner: &Inner,
    key: &str,
    id: &SessionId,
    tenant: &Tenant,
    loaded: &Loaded,
    end: SessionState,
) -> Result<()> {
    let tombstone = loaded.tombstone(end);
    let event = PublishedEvent::new(
        SessionEventKind::of_state(end),
        end,
        tombstone.attempts_left().min(loaded.attempts_left()),
        inner.clock.now_millis(),
    );
    let written = inner
        .replace_entry(
            key,
            loaded.version,
            Version::random(),
            &tombstone.encode(&loaded.crypto),
            &event.seal(&loaded.crypto),
        )
        .await?;
    if written == Written::Applied {
        return Ok(());
    }
    // Only a tombstone replaces a submitted record: report the one that won.
    let now = inner.load(key, id, Some(tenant)).await?;
    Err(not_revealable(now.record.state))
}

/// The time after which a submitted session whose attempts are all taken is finished as
/// locked: the grace period after its latest counted attempt, in ms since the epoch.
fn finish_after(inner: &Inner, loaded: &Loaded) -> i64 {
    let counted = usize::from(
        loaded
            .record
            .max_attempts
            .saturating_sub(loaded.record.attempts_used),
    );
    let latest = loaded
        .claims
        .iter()
        .take(counted)
        .map(|c| c.at_millis)
        .max()
        .unwrap_or(i64::MIN);
    let grace = i64::try_from(inner.attempt_grace.as_millis()).unwrap_or(i64::MAX);
    latest.saturating_add(grace)
}

/// Whether `loaded` is a submitted session whose attempts are all taken, the latest more
/// than the grace period ago: its outcome was lost and nobody will store it.
pub(super) fn is_stranded(inner: &Inner, loaded: &Loaded) -> bool {
    loaded.record.state == SessionState::Submitted
        && loaded.attempts_left() == 0
        && inner.clock.now_millis() >= finish_after(inner, loaded)
}

/// Finishes a stranded session as `Locked` and audits the lock; returns the session as it
/// then is.
pub(super) async fn finish_stranded(
    inner: &Inner,
    key: &str,
    id: &SessionId,
    tenant: &Tenant,
    loaded: &Loaded,
) -> Result<Loaded> {
    match end_session(inner, key, id, tenant, loaded, SessionState::Locked).await {
        Ok(()) => audit_locked(inner, id, tenant),
        // Another caller stored the outcome first.
        Err(Error::AlreadyRevealed | Error::Locked | Error::Cancelled | Error::NotSubmitted) => {}
        Err(e) => return Err(e),
    }
    inner.load(key, id, Some(tenant)).await
}

/// A guess that found every attempt taken: waits for the guesses in flight to store their
/// outcome and returns the state that won as an error (`ALREADY_REVEALED`, `LOCKED`, …).
/// After the grace period, a session still submitted is finished as locked.
async fn await_outcome(
    inner: &Inner,
    key: &str,
    id: &SessionId,
    tenant: &Tenant,
    mut loaded: Loaded,
) -> Error {
    let deadline = finish_after(inner, &loaded);
    let started = Instant::now();
    let mut pause = FIRST_WAIT_PAUSE;
    for _ in 0..MAX_ROUNDS * 16 {
        if loaded.record.state != SessionState::Submitted {
            return not_revealable(loaded.record.state);
        }
        // The grace period is read on the vault's clock; the real time waited bounds the
        // wait as well, so a clock that does not move cannot hold a caller forever.
        if inner.clock.now_millis() >= deadline || started.elapsed() >= inner.attempt_grace {
            return match finish_stranded(inner, key, id, tenant, &loaded).await {
                Ok(now) => not_revealable(now.record.state),
                Err(e) => e,
            };
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_WAIT_PAUSE);
        loaded = match inner.load(key, id, Some(tenant)).await {
            Ok(now) => now,
            Err(e) => return e,
        };
    }
    contention()
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
            card = CardSummary::of(&text);
        }
        fields.push((spec.name().to_owned(), SecretString::from(text)));
    }
    Ok(RevealedForm { fields, card })
}
