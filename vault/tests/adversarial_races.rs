//! Races an attacker, or bad luck, can start against the real `Vault` on the memory store.
//!
//! The conformance suite already races 32 right-PIN reveals, 50 wrong guesses, 16 submits,
//! and wrong guesses against one right reveal, all through one vault
//! (`conformance::concurrency::*`). Here the contenders come from two vaults sharing the
//! store, as two processes would (each with its own keyring object and audit key), mixed
//! with another tenant holding the right PIN and with PINs of other sessions; cancel races
//! reveal and submit. Afterwards the audit trails of both processes are checked, and the
//! store's bytes: a session that ended keeps no sealed data.

#![cfg(feature = "conformance")]
#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

mod support;

use std::sync::Arc;

use pci_vault::audit::{AuditAction, AuditEvent, AuditOutcome, MemoryAuditSink};
use pci_vault::conformance::{Interleaved, amex_form, test_keyring, vault_on, visa_form};
use pci_vault::{Error, ErrorCode, Pin, SessionOptions, SessionState, Tenant, Vault};
use support::Fixture;

/// Two "processes": vaults on the same store, each with its own keyring object and audit
/// sink, both behind the conformance suite's `Interleaved` wrapper so that contenders
/// interleave between load and compare-and-set.
fn two_processes(fx: &Fixture) -> [(Vault, Arc<MemoryAuditSink>); 2] {
    let process = || {
        vault_on(
            Arc::new(Interleaved(fx.store.clone())),
            fx,
            Arc::new(test_keyring()),
        )
    };
    [process(), process()]
}

fn events(processes: &[(Vault, Arc<MemoryAuditSink>); 2]) -> Vec<AuditEvent> {
    processes.iter().flat_map(|(_, sink)| sink.take()).collect()
}

async fn join<T: Send + 'static>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("a contender panicked"));
    }
    out
}

/// The role of one contender, and what it got.
enum Contender {
    Right,
    Wrong,
    Stranger,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pin_guesses_from_two_processes_and_a_stranger_race_a_right_reveal() {
    let fx = Fixture::new();
    let processes = two_processes(&fx);
    let acme = Tenant::new("acme").unwrap();
    // Twelve digits, so that another session's PIN is never this one's by chance.
    let options = SessionOptions::default().with_pin_length(12);
    let (other, _) = fx.session(&processes[0].0, &options).await;
    let other_pin = processes[0]
        .0
        .submit(&other, &amex_form())
        .await
        .unwrap()
        .pin;
    for round in 0..40usize {
        let (id, key) = fx.session(&processes[0].0, &options).await;
        let created_len = fx.raw(&key).await.len();
        let pin = processes[1].0.submit(&id, &visa_form()).await.unwrap().pin;
        events(&processes);
        let wrong = Pin::parse("99999").unwrap();
        let mut roles = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..21usize {
            let (role, guess, tenant) = match i {
                _ if i == round % 21 => (Contender::Right, pin.clone(), Tenant::default()),
                _ if i % 7 == 3 => (Contender::Stranger, pin.clone(), acme.clone()),
                _ if i % 5 == 1 => (Contender::Wrong, other_pin.clone(), Tenant::default()),
                _ => (Contender::Wrong, wrong.clone(), Tenant::default()),
            };
            let vault = processes[i % 2].0.for_tenant(tenant);
            let id = id.clone();
            roles.push(role);
            tasks.push(tokio::spawn(async move {
                vault
                    .reveal(&id, &guess)
                    .await
                    .map(|form| form.card().cloned())
            }));
        }
        let results = join(tasks).await;

        let mut revealed = 0;
        let mut wrong_left = Vec::new();
        for (role, result) in roles.iter().zip(&results) {
            match (role, result) {
                (Contender::Stranger, r) => {
                    assert_eq!(r.as_ref().unwrap_err().code(), ErrorCode::NotFound)
                }
                (Contender::Right, Ok(card)) => {
                    assert_eq!(card.as_ref().unwrap().masked_number, "424242******4242");
                    revealed += 1;
                }
                (Contender::Wrong, Ok(_)) => panic!("a wrong PIN revealed the form"),
                (_, Err(Error::WrongPin { attempts_left })) => wrong_left.push(*attempts_left),
                (_, Err(e)) => assert!(
                    matches!(e.code(), ErrorCode::Locked | ErrorCode::AlreadyRevealed),
                    "{e:?}"
                ),
            }
        }
        let mut distinct = wrong_left.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            wrong_left.len(),
            "an attempt was counted twice"
        );
        assert!(wrong_left.iter().all(|l| (1..=4).contains(l)));

        let status = processes[0].0.status(&id).await.unwrap();
        let trail = events(&processes);
        let count = |f: &dyn Fn(&AuditEvent) -> bool| trail.iter().filter(|e| f(e)).count();
        match status.state {
            SessionState::Revealed => {
                assert_eq!(revealed, 1);
                // The strangers took nothing: every attempt taken is a guess of this tenant.
                let taken = usize::from(5 - status.attempts_left);
                assert!(wrong_left.len() < taken && taken <= 5);
            }
            SessionState::Locked => assert_eq!(revealed, 0),
            other => panic!("the session ended {other}"),
        }
        assert_eq!(count(&|e| e.action == AuditAction::Revealed), 21);
        assert_eq!(
            count(&|e| e.outcome == AuditOutcome::Success && e.action == AuditAction::Revealed),
            revealed
        );
        assert_eq!(
            count(&|e| e.action == AuditAction::Locked),
            usize::from(status.state == SessionState::Locked)
        );
        let strangers = roles
            .iter()
            .filter(|r| matches!(r, Contender::Stranger))
            .count();
        assert!(strangers >= 2);
        assert_eq!(
            count(&|e| e.tenant == acme && e.outcome == AuditOutcome::Failure(ErrorCode::NotFound)),
            strangers
        );
        assert_eq!(
            fx.raw(&key).await.len(),
            created_len,
            "sealed data left behind"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_racing_a_reveal_has_exactly_one_winner() {
    let fx = Fixture::new();
    let processes = two_processes(&fx);
    let mut wins = [0, 0];
    for _ in 0..100 {
        let (id, key) = fx
            .session(&processes[0].0, &SessionOptions::default())
            .await;
        let created_len = fx.raw(&key).await.len();
        let pin = processes[0].0.submit(&id, &visa_form()).await.unwrap().pin;
        let reveal = {
            let (vault, id) = (processes[0].0.clone(), id.clone());
            tokio::spawn(async move { vault.reveal(&id, &pin).await.map(|_| ()) })
        };
        let cancel = {
            let (vault, id) = (processes[1].0.clone(), id.clone());
            tokio::spawn(async move { vault.cancel(&id).await })
        };
        let (reveal, cancel) = (reveal.await.unwrap(), cancel.await.unwrap());
        let state = processes[1].0.status(&id).await.unwrap().state;
        match (reveal, cancel) {
            (Ok(()), Err(e)) => {
                assert_eq!(e.code(), ErrorCode::AlreadyRevealed);
                assert_eq!(state, SessionState::Revealed);
                wins[0] += 1;
            }
            (Err(e), Ok(())) => {
                assert_eq!(e.code(), ErrorCode::Cancelled);
                assert_eq!(state, SessionState::Cancelled);
                wins[1] += 1;
            }
            (r, c) => panic!("reveal {r:?} and cancel {c:?}: not one winner"),
        }
        assert_eq!(
            fx.raw(&key).await.len(),
            created_len,
            "sealed data left behind"
        );
    }
    assert_eq!(wins[0] + wins[1], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn submit_racing_a_cancel_always_ends_cancelled_without_data() {
    let fx = Fixture::new();
    let processes = two_processes(&fx);
    for _ in 0..100 {
        let (id, key) = fx
            .session(&processes[0].0, &SessionOptions::default())
            .await;
        let created_len = fx.raw(&key).await.len();
        let submit = {
            let (vault, id) = (processes[0].0.clone(), id.clone());
            tokio::spawn(async move { vault.submit(&id, &visa_form()).await.map(|r| r.pin) })
        };
        let cancel = {
            let (vault, id) = (processes[1].0.clone(), id.clone());
            tokio::spawn(async move { vault.cancel(&id).await })
        };
        let (submit, cancel) = (submit.await.unwrap(), cancel.await.unwrap());
        cancel.unwrap();
        let status = processes[0].0.status(&id).await.unwrap();
        assert_eq!(status.state, SessionState::Cancelled);
        match submit {
            // The customer submitted first; the cancel then destroyed the data.
            Ok(pin) => {
                assert!(status.submitted_at.is_some());
                let err = processes[1]
                    .0
                    .reveal(&id, &pin)
                    .await
                    .map(|_| ())
                    .unwrap_err();
                assert_eq!(err.code(), ErrorCode::Cancelled);
            }
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::Cancelled);
                assert!(status.submitted_at.is_none());
            }
        }
        assert_eq!(
            fx.raw(&key).await.len(),
            created_len,
            "sealed data left behind"
        );
    }
}
