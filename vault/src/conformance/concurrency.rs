//! The invariants under concurrency: one reveal, bounded PIN attempts, no overwrite.
//!
//! Every contender is its own tokio task on a multi-threaded runtime, and the store is
//! wrapped in [`Interleaved`](super::Interleaved), so contenders really do load the same
//! version and race on the compare-and-set, even on the memory store.

use std::sync::Arc;

use super::flow::wrong_pin;
use super::{Harness, amex_form, interleaved_vault as vault, visa_form};
use crate::audit::{AuditAction, AuditOutcome};
use crate::error::{Error, ErrorCode};
use crate::form::FormInput;
use crate::session::{SessionOptions, SessionState};
use secrecy::ExposeSecret;

async fn join<T: Send + 'static>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("a contender task panicked"))
        .collect()
}

/// 32 concurrent reveals with the right PIN, on 10 sessions in turn: exactly one gets the
/// form; every other one is told it is gone (`ALREADY_REVEALED`, also when it found every
/// attempt in flight), never `LOCKED`.
pub async fn one_reveal_among_32_concurrent(h: &dyn Harness) {
    let (vault, audit) = vault(h);
    for _ in 0..10 {
        one_reveal_round(&vault, &audit).await;
    }
}

async fn one_reveal_round(vault: &crate::Vault, audit: &crate::audit::MemoryAuditSink) {
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = vault.submit(&ticket.id, &visa_form()).await.unwrap();
    let pin = Arc::new(receipt.pin);
    let tasks = (0..32)
        .map(|_| {
            let (vault, id, pin) = (vault.clone(), ticket.id.clone(), Arc::clone(&pin));
            tokio::spawn(async move {
                vault
                    .reveal(&id, &pin)
                    .await
                    .map(|f| f.get("card_number").unwrap().expose_secret().to_owned())
            })
        })
        .collect();
    let results = join(tasks).await;
    let wins: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(
        wins,
        ["4242424242424242"],
        "exactly one reveal must succeed"
    );
    for r in &results {
        if let Err(e) = r {
            assert!(e.code() == ErrorCode::AlreadyRevealed, "unexpected {e:?}");
        }
    }
    assert_eq!(
        vault.status(&ticket.id).await.unwrap().state,
        SessionState::Revealed
    );
    let successes = audit
        .take()
        .iter()
        .filter(|e| e.action == AuditAction::Revealed && e.outcome == AuditOutcome::Success)
        .count();
    assert_eq!(successes, 1);
}

/// 50 concurrent wrong guesses at a session allowing 5: exactly 4 are answered `WRONG_PIN`,
/// one locks the session, and the other 45 are answered `LOCKED` without their PIN being
/// compared. The right PIN then gets `LOCKED` too.
pub async fn at_most_max_attempts_among_50_wrong_guesses(h: &dyn Harness) {
    let (vault, audit) = vault(h);
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = vault.submit(&ticket.id, &visa_form()).await.unwrap();
    let wrong = Arc::new(wrong_pin(&receipt.pin));
    let tasks = (0..50)
        .map(|_| {
            let (vault, id, pin) = (vault.clone(), ticket.id.clone(), Arc::clone(&wrong));
            tokio::spawn(async move { vault.reveal(&id, &pin).await.map(|_| ()) })
        })
        .collect();
    let results = join(tasks).await;
    let mut left: Vec<u8> = results
        .iter()
        .filter_map(|r| match r {
            Err(Error::WrongPin { attempts_left }) => Some(*attempts_left),
            _ => None,
        })
        .collect();
    left.sort_unstable();
    assert_eq!(left, [1, 2, 3, 4], "each attempt is counted once, in order");
    let locked = results
        .iter()
        .filter(|r| matches!(r, Err(Error::Locked)))
        .count();
    assert_eq!(locked, 46);
    assert!(results.iter().all(|r| r.is_err()));

    let events = audit.take();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == AuditAction::Locked)
            .count(),
        1
    );
    let evaluated_wrong = events
        .iter()
        .filter(|e| e.outcome == AuditOutcome::Failure(ErrorCode::WrongPin))
        .count()
        + 1; // the guess that locked
    assert!(evaluated_wrong <= 5);
    assert_eq!(
        vault
            .reveal(&ticket.id, &receipt.pin)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::Locked
    );
    let status = vault.status(&ticket.id).await.unwrap();
    assert_eq!(
        (status.state, status.attempts_left),
        (SessionState::Locked, 0)
    );
}

/// 16 concurrent submits of different cards: exactly one is stored, the others get
/// `ALREADY_SUBMITTED`, and the reveal returns the winner's card with the winner's PIN.
pub async fn one_submit_among_16_concurrent(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let names = [
        "Ada",
        "Grace",
        "Alan",
        "Edsger",
        "Barbara",
        "Donald",
        "Frances",
        "John",
        "Margaret",
        "Ken",
        "Radia",
        "Tim",
        "Leslie",
        "Niklaus",
        "Hedy",
        "Katherine",
    ];
    let tasks = names
        .iter()
        .map(|&name| {
            let (vault, id) = (vault.clone(), ticket.id.clone());
            tokio::spawn(async move {
                let input = FormInput::new()
                    .with("card_number", "4242424242424242")
                    .with("expiry", "12/39")
                    .with("cvc", "123")
                    .with("cardholder_name", name);
                vault.submit(&id, &input).await.map(|r| (name, r.pin))
            })
        })
        .collect();
    let results = join(tasks).await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one submit must be stored");
    for r in &results {
        if let Err(e) = r {
            assert_eq!(e.code(), ErrorCode::AlreadySubmitted);
        }
    }
    let (name, pin) = winners[0];
    let form = vault.reveal(&ticket.id, pin).await.unwrap();
    assert_eq!(form.get("cardholder_name").unwrap().expose_secret(), *name);
}

/// Wrong guesses racing the right PIN: at most one reveal succeeds, no more than
/// `max_attempts` guesses are evaluated, and the session ends revealed or locked.
pub async fn wrong_guesses_racing_a_correct_reveal(h: &dyn Harness) {
    let (vault, _) = vault(h);
    for round in 0..5 {
        let ticket = vault
            .create_session(&SessionOptions::default())
            .await
            .unwrap();
        let receipt = vault.submit(&ticket.id, &amex_form()).await.unwrap();
        let right = Arc::new(receipt.pin.clone());
        let wrong = Arc::new(wrong_pin(&receipt.pin));
        let tasks = (0..20)
            .map(|i| {
                let pin = if i == round * 4 {
                    Arc::clone(&right)
                } else {
                    Arc::clone(&wrong)
                };
                let (vault, id) = (vault.clone(), ticket.id.clone());
                tokio::spawn(async move { vault.reveal(&id, &pin).await.map(|_| ()) })
            })
            .collect();
        let results = join(tasks).await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let wrong_answers = results
            .iter()
            .filter(|r| matches!(r, Err(Error::WrongPin { .. })))
            .count();
        assert!(ok <= 1);
        assert!(
            wrong_answers <= 4,
            "{wrong_answers} wrong PINs were evaluated"
        );
        let state = vault.status(&ticket.id).await.unwrap().state;
        match state {
            SessionState::Revealed => assert_eq!(ok, 1),
            SessionState::Locked => assert_eq!(ok, 0),
            other => panic!("session ended {other}"),
        }
    }
}
