//! Regression tests for two flaws the `vault_model` fuzz target found.
//!
//! First, with store faults: a customer's submit whose write applied, but whose reply was lost, answers
//! `ALREADY_SUBMITTED` or `CANCELLED` when another writer replaces the submitted record
//! before the vault repeats the write.
//!
//! The repeat then meets another version, answers `Conflict`, and `submit` takes the
//! conflict for someone else's submission: it reloads, finds a tombstone and answers as if
//! the session had been submitted or cancelled by somebody else. The customer never sees
//! the PIN of the submission that was stored, and the audit trail records a refused submit
//! for a submission that happened. The contract (`EphemeralStore`, "every write's outcome
//! is known, or reported as unknown") asks for the PIN or `STORE_UNAVAILABLE`.
//!
//! Second, in a race with no fault: a wrong guess that takes its attempt after the right
//! guess's claim, and is compared before the `Revealed` tombstone is written, is dropped
//! from the count: the tombstone records the attempts the winner saw, and replacing the
//! record drops the claims (see `revealed_tombstone_counts_a_concurrent_wrong_guess`).
//!
//! Fixed: a submit whose write went unanswered and then meets another writer answers
//! `STORE_UNAVAILABLE` (its outcome is unknown), and a replace keeps the entry's claims, so a
//! tombstone still counts every attempt taken.

#![cfg(feature = "conformance")]
#![expect(
    clippy::unwrap_used,
    reason = "a test: a failed setup step should stop it where it happened"
)]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use pci_vault::conformance::{test_keyring, visa_form};
use pci_vault::store::EventSubscription;
use pci_vault::{
    CasOutcome, Claim, Claimed, EphemeralStore, Error, ErrorCode, Pin, Result, SessionId,
    SessionOptions, Vault, Version, Versioned,
};
use pci_vault_memory::MemoryStore;

/// What another caller does while the reply of the submit's write is lost.
#[derive(Debug, Clone, Copy)]
enum Meanwhile {
    /// The agent cancels the session.
    Cancel,
    /// A guess with a wrong PIN takes the only attempt and locks the session.
    WrongPin,
}

/// A memory store that applies the first write of a submitted record (state byte 2), then,
/// before answering, lets another caller act, and answers `STORE_UNAVAILABLE`: a reply lost
/// while someone else writes.
#[derive(Debug)]
struct LostSubmitReply {
    inner: MemoryStore,
    meanwhile: Meanwhile,
    vault: OnceLock<Vault>,
    session: Mutex<Option<SessionId>>,
    fired: Mutex<bool>,
}

#[async_trait]
impl EphemeralStore for LostSubmitReply {
    async fn create(
        &self,
        key: &str,
        v: Version,
        value: &[u8],
        ttl: Duration,
    ) -> Result<CasOutcome> {
        self.inner.create(key, v, value, ttl).await
    }

    async fn load(&self, key: &str) -> Result<Option<Versioned>> {
        self.inner.load(key).await
    }

    async fn replace(
        &self,
        key: &str,
        expected: Version,
        v: Version,
        value: &[u8],
    ) -> Result<CasOutcome> {
        let out = self.inner.replace(key, expected, v, value).await?;
        let submitted = value.get(4) == Some(&2);
        let first = submitted && !std::mem::replace(&mut *self.fired.lock().unwrap(), true);
        if !first {
            return Ok(out);
        }
        assert!(
            matches!(out, CasOutcome::Applied(_)),
            "the submit's write applied"
        );
        let vault = self.vault.get().unwrap();
        let id = self.session.lock().unwrap().clone().unwrap();
        match self.meanwhile {
            Meanwhile::Cancel => vault.cancel(&id).await.unwrap(),
            Meanwhile::WrongPin => {
                let wrong = Pin::parse("0000000000").unwrap();
                let got = vault.reveal(&id, &wrong).await;
                // 10 random digits equal 0000000000 with probability 1e-10.
                assert_eq!(got.err().map(|e| e.code()), Some(ErrorCode::Locked));
            }
        }
        Err(Error::store_unavailable("reply lost"))
    }

    /// Through [`replace`](EphemeralStore::replace), so the fault above applies to every
    /// state change; these tests watch no events, so none is published.
    async fn replace_and_publish(
        &self,
        key: &str,
        expected: Version,
        v: Version,
        value: &[u8],
        _event: &[u8],
    ) -> Result<CasOutcome> {
        self.replace(key, expected, v, value).await
    }

    async fn publish(&self, _key: &str, _event: &[u8]) -> Result<()> {
        Ok(())
    }

    async fn subscribe(&self, _key: &str) -> Result<Box<dyn EventSubscription>> {
        Err(Error::store_unavailable(
            "this test store delivers no events",
        ))
    }

    async fn delete(&self, key: &str, expected: Version) -> Result<CasOutcome> {
        self.inner.delete(key, expected).await
    }

    async fn claim(
        &self,
        key: &str,
        c: Claim,
        limit: u8,
        prefix: &[u8],
    ) -> Result<Option<Claimed>> {
        self.inner.claim(key, c, limit, prefix).await
    }

    async fn release(&self, key: &str, id: u64) -> Result<bool> {
        self.inner.release(key, id).await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}

/// What the customer's submit answers when its applied write's reply is lost while
/// `meanwhile` happens.
async fn submit_with_lost_reply(meanwhile: Meanwhile) -> Result<(), Error> {
    let store = Arc::new(LostSubmitReply {
        inner: MemoryStore::new(),
        meanwhile,
        vault: OnceLock::new(),
        session: Mutex::new(None),
        fired: Mutex::new(false),
    });
    let vault = Vault::builder(store.clone(), Arc::new(test_keyring()))
        .build()
        .unwrap();
    store.vault.set(vault.clone()).unwrap();
    let options = SessionOptions::default()
        .with_pin_length(10)
        .with_max_attempts(1);
    let ticket = vault.create_session(&options).await.unwrap();
    *store.session.lock().unwrap() = Some(ticket.id.clone());
    vault.submit(&ticket.id, &visa_form()).await.map(|_| ())
}

fn assert_own_submit_answer(got: Result<(), Error>) {
    if let Err(e) = got {
        assert_eq!(
            e.code(),
            ErrorCode::StoreUnavailable,
            "the customer's own applied submit answered {:?}",
            e.code()
        );
    }
}

#[tokio::test]

async fn applied_submit_then_locked_answers_already_submitted() {
    assert_own_submit_answer(submit_with_lost_reply(Meanwhile::WrongPin).await);
}

#[tokio::test]

async fn applied_submit_then_cancelled_answers_cancelled() {
    assert_own_submit_answer(submit_with_lost_reply(Meanwhile::Cancel).await);
}

/// A memory store that, when the right PIN's `Revealed` tombstone (state byte 3) is about
/// to be written, first lets a wrong guess run to its answer: a guess that took its attempt
/// after the winner's.
#[derive(Debug)]
struct WrongGuessBeforeTombstone {
    inner: MemoryStore,
    vault: OnceLock<Vault>,
    session: Mutex<Option<SessionId>>,
    fired: Mutex<bool>,
}

#[async_trait]
impl EphemeralStore for WrongGuessBeforeTombstone {
    async fn create(
        &self,
        key: &str,
        v: Version,
        value: &[u8],
        ttl: Duration,
    ) -> Result<CasOutcome> {
        self.inner.create(key, v, value, ttl).await
    }

    async fn load(&self, key: &str) -> Result<Option<Versioned>> {
        self.inner.load(key).await
    }

    async fn replace(
        &self,
        key: &str,
        expected: Version,
        v: Version,
        value: &[u8],
    ) -> Result<CasOutcome> {
        let revealed = value.get(4) == Some(&3);
        if revealed && !std::mem::replace(&mut *self.fired.lock().unwrap(), true) {
            let vault = self.vault.get().unwrap();
            let id = self.session.lock().unwrap().clone().unwrap();
            let wrong = Pin::parse("0000000000").unwrap();
            let got = vault.reveal(&id, &wrong).await;
            assert_eq!(got.err().map(|e| e.code()), Some(ErrorCode::WrongPin));
        }
        self.inner.replace(key, expected, v, value).await
    }

    /// Through [`replace`](EphemeralStore::replace), so the fault above applies to every
    /// state change; these tests watch no events, so none is published.
    async fn replace_and_publish(
        &self,
        key: &str,
        expected: Version,
        v: Version,
        value: &[u8],
        _event: &[u8],
    ) -> Result<CasOutcome> {
        self.replace(key, expected, v, value).await
    }

    async fn publish(&self, _key: &str, _event: &[u8]) -> Result<()> {
        Ok(())
    }

    async fn subscribe(&self, _key: &str) -> Result<Box<dyn EventSubscription>> {
        Err(Error::store_unavailable(
            "this test store delivers no events",
        ))
    }

    async fn delete(&self, key: &str, expected: Version) -> Result<CasOutcome> {
        self.inner.delete(key, expected).await
    }

    async fn claim(
        &self,
        key: &str,
        c: Claim,
        limit: u8,
        prefix: &[u8],
    ) -> Result<Option<Claimed>> {
        self.inner.claim(key, c, limit, prefix).await
    }

    async fn release(&self, key: &str, id: u64) -> Result<bool> {
        self.inner.release(key, id).await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}

/// Two PINs are compared (the right one, then a wrong one that took the second attempt
/// before the tombstone was written), but the `Revealed` tombstone counts only the
/// attempts the winner saw: status reports 2 of 3 attempts left instead of 1, and the
/// wrong guess's attempt is gone from the record.
#[tokio::test]

async fn revealed_tombstone_counts_a_concurrent_wrong_guess() {
    let store = Arc::new(WrongGuessBeforeTombstone {
        inner: MemoryStore::new(),
        vault: OnceLock::new(),
        session: Mutex::new(None),
        fired: Mutex::new(false),
    });
    let vault = Vault::builder(store.clone(), Arc::new(test_keyring()))
        .build()
        .unwrap();
    store.vault.set(vault.clone()).unwrap();
    let options = SessionOptions::default()
        .with_pin_length(10)
        .with_max_attempts(3);
    let ticket = vault.create_session(&options).await.unwrap();
    *store.session.lock().unwrap() = Some(ticket.id.clone());
    let receipt = vault.submit(&ticket.id, &visa_form()).await.unwrap();
    vault.reveal(&ticket.id, &receipt.pin).await.unwrap();
    let status = vault.status(&ticket.id).await.unwrap();
    assert_eq!(
        status.attempts_left, 1,
        "two PINs were compared on a session that allows three"
    );
}
