//! Faults of a real redis-server under a working vault: killed during a burst, frozen
//! (a hung server or a network partition), and full. Each gives its error code within the
//! configured timeout, reports no success that was not stored, and the same vault works
//! again once the server does.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pci_vault::conformance::visa_form;
use pci_vault::{
    Error, ErrorCode, ExposeSecret, Pin, SessionId, SessionOptions, SessionState, Vault,
};
use pci_vault_redis::{MinReplicas, RedisOptions, RedisStore};
use pci_vault_testkit::redis::{self as testkit, PrimaryReplica, RedisServer};
use pci_vault_testkit::vaults::vault_on;

/// The operation timeout of these tests' stores.
const TIMEOUT: Duration = Duration::from_millis(400);
/// How much longer than [`TIMEOUT`] a failing call may take: scheduling on a loaded 2-core
/// machine, and the successful store calls an operation makes before the one that fails.
const MARGIN: Duration = Duration::from_millis(300);

/// Longest a call may take on a store that does not answer: a write is tried three times
/// (its outcome may be unknown), with pauses of 20 and 40 ms between the tries.
const UNANSWERED: Duration = Duration::from_millis(3 * 400 + 60);

async fn connect(server: &RedisServer) -> Vault {
    let options = RedisOptions::new(server.url()).with_timeout(TIMEOUT);
    vault_on(RedisStore::connect(options).await.unwrap())
}

/// Waits until `vault` completes a whole flow again; returns how long that took.
async fn until_it_works(vault: &Vault) -> Duration {
    let started = Instant::now();
    loop {
        let attempt = async {
            let ticket = vault.create_session(&SessionOptions::default()).await?;
            let receipt = vault.submit(&ticket.id, &visa_form()).await?;
            vault.reveal(&ticket.id, &receipt.pin).await
        };
        match attempt.await {
            Ok(form) => {
                assert_eq!(
                    form.get("card_number").unwrap().expose_secret(),
                    "4242424242424242"
                );
                return started.elapsed();
            }
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::StoreUnavailable, "{e:?}");
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "the vault did not recover: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// What the burst saw: every success, and every failure with how long the call took.
#[derive(Default)]
struct Burst {
    /// Sessions whose creation was reported, and whose submit was not tried or failed.
    created: Vec<SessionId>,
    /// Sessions whose submit was reported, with their PIN.
    submitted: Vec<(SessionId, Pin)>,
    /// Sessions whose submit failed: the write may or may not have landed.
    unsure: Vec<SessionId>,
    failures: Vec<(ErrorCode, Duration)>,
    slowest_call: Duration,
    /// Successes reported after the server came back.
    successes_after_restart: usize,
}

/// `SIGKILL` during a burst of creates and submits: every call fails with
/// `STORE_UNAVAILABLE` within the timeout, every success reported before the kill was
/// stored, and the same vault works again once the server is back.
///
/// Redis without persistence forgets everything when killed, so "was stored" is checked
/// honestly this way: the server runs with `appendonly yes` and `appendfsync always`, so it
/// logs each write to disk before it answers, and restarts on the same port and directory,
/// reloading exactly what it acknowledged. Every session whose create or submit the vault
/// reported must then be there, in the reported state, with the reported PIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_server_fails_fast_loses_no_reported_success_and_recovers() {
    let mut server = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let vault = connect(&server).await;
    let stop = Arc::new(AtomicBool::new(false));
    let restarted = Arc::new(AtomicBool::new(false));
    let burst = Arc::new(Mutex::new(Burst::default()));

    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (vault, stop, restarted, burst) = (
                vault.clone(),
                stop.clone(),
                restarted.clone(),
                burst.clone(),
            );
            tokio::spawn(async move {
                let timed = |burst: &Mutex<Burst>, started: Instant| {
                    let took = started.elapsed();
                    let mut b = burst.lock().unwrap();
                    b.slowest_call = b.slowest_call.max(took);
                    took
                };
                while !stop.load(Ordering::Relaxed) {
                    let after_restart = restarted.load(Ordering::Relaxed);
                    let started = Instant::now();
                    let created = vault.create_session(&SessionOptions::default()).await;
                    let took = timed(&burst, started);
                    let ticket = match created {
                        Ok(ticket) => ticket,
                        Err(e) => {
                            burst.lock().unwrap().failures.push((e.code(), took));
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            continue;
                        }
                    };
                    let started = Instant::now();
                    let submitted = vault.submit(&ticket.id, &visa_form()).await;
                    let took = timed(&burst, started);
                    let mut b = burst.lock().unwrap();
                    match submitted {
                        Ok(receipt) => {
                            b.submitted.push((ticket.id, receipt.pin));
                            b.successes_after_restart += usize::from(after_restart);
                        }
                        Err(e) => {
                            b.failures.push((e.code(), took));
                            b.unsure.push(ticket.id);
                        }
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    server.restart();
    restarted.store(true, Ordering::Relaxed);
    let back = Instant::now();
    while burst.lock().unwrap().successes_after_restart < 20 {
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "the vault did not recover after the restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recovered_in = back.elapsed();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    let burst = std::mem::take(&mut *burst.lock().unwrap());
    assert!(
        !burst.failures.is_empty(),
        "the kill was not seen by any call"
    );
    for (code, took) in &burst.failures {
        assert_eq!(*code, ErrorCode::StoreUnavailable);
        assert!(*took <= UNANSWERED + MARGIN, "a failing call took {took:?}");
    }
    assert!(
        burst.slowest_call <= UNANSWERED + MARGIN,
        "a call took {:?}",
        burst.slowest_call
    );

    // Every reported success is in the restarted server, as reported.
    for (id, pin) in &burst.submitted {
        let form = vault.reveal(id, pin).await.unwrap();
        assert_eq!(
            form.get("card_number").unwrap().expose_secret(),
            "4242424242424242"
        );
    }
    for id in &burst.created {
        assert_eq!(vault.status(id).await.unwrap().state, SessionState::Pending);
    }
    // A failed submit is either not applied or applied whole; the session is never lost.
    for id in &burst.unsure {
        let state = vault.status(id).await.unwrap().state;
        assert!(
            matches!(state, SessionState::Pending | SessionState::Submitted),
            "{state}"
        );
    }
    eprintln!(
        "killed server: {} submits reported and verified after restart, {} failures \
         (all STORE_UNAVAILABLE), slowest call {:?} (timeout {TIMEOUT:?}), 20 successes \
         {recovered_in:?} after the restart",
        burst.submitted.len(),
        burst.failures.len(),
        burst.slowest_call,
    );
}

/// A server that stops answering (`SIGSTOP`: connections stay open, nothing comes back)
/// makes every kind of call fail with `STORE_UNAVAILABLE` after the timeout — not before,
/// not much later — and counts nothing; once it answers again the same vault works and the
/// session it held is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frozen_server_times_out_counts_nothing_and_recovers() {
    let mut server = RedisServer::start(&[]);
    let store = Arc::new(
        RedisStore::connect(RedisOptions::new(server.url()).with_timeout(TIMEOUT))
            .await
            .unwrap(),
    );
    let vault = Vault::builder(
        store.clone(),
        Arc::new(pci_vault::conformance::test_keyring()),
    )
    .build()
    .unwrap();
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = vault.submit(&ticket.id, &visa_form()).await.unwrap();
    let pending = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let wrong = Pin::parse("0000000").unwrap();

    server.freeze();
    let calls: Vec<_> = (0..4)
        .flat_map(|_| {
            let v = vault.clone();
            let (id, pending_id, wrong, store) = (
                ticket.id.clone(),
                pending.id.clone(),
                wrong.clone(),
                store.clone(),
            );
            let timed = |f: futures::future::BoxFuture<'static, pci_vault::Result<()>>| {
                tokio::spawn(async move {
                    let started = Instant::now();
                    let result = f.await;
                    (result, started.elapsed())
                })
            };
            let (v1, v2, v3, v4) = (v.clone(), v.clone(), v.clone(), v);
            let id2 = id.clone();
            vec![
                timed(Box::pin(async move {
                    v1.create_session(&SessionOptions::default())
                        .await
                        .map(drop)
                })),
                timed(Box::pin(async move { v2.status(&id).await.map(drop) })),
                timed(Box::pin(
                    async move { v3.reveal(&id2, &wrong).await.map(drop) },
                )),
                timed(Box::pin(async move {
                    v4.submit(&pending_id, &visa_form()).await.map(drop)
                })),
                timed(Box::pin(async move {
                    pci_vault::EphemeralStore::ping(&*store).await
                })),
            ]
        })
        .collect();
    for call in calls {
        let (result, took) = call.await.unwrap();
        match result {
            Err(Error::StoreUnavailable(message)) => {
                assert!(message.contains("timed out"), "{message}");
            }
            other => panic!("expected STORE_UNAVAILABLE, got {other:?}"),
        }
        assert!(
            took >= TIMEOUT - Duration::from_millis(20) && took <= UNANSWERED + MARGIN,
            "a call on a frozen server took {took:?} with a timeout of {TIMEOUT:?}"
        );
    }
    server.thaw();

    until_it_works(&vault).await;
    // The wrong PINs sent while frozen were never compared. Their claims reached the
    // server and may apply once it thaws: an unanswered guess may count as an attempt,
    // never more than one each, so the session is still submitted with an attempt left.
    let status = vault.status(&ticket.id).await.unwrap();
    assert_eq!(status.state, SessionState::Submitted);
    assert!(
        (1..=5).contains(&status.attempts_left),
        "{} attempts left after 4 unanswered guesses",
        status.attempts_left
    );
    assert_eq!(
        vault.status(&pending.id).await.unwrap().state,
        SessionState::Pending
    );
    let form = vault.reveal(&ticket.id, &receipt.pin).await.unwrap();
    assert_eq!(form.card().unwrap().masked_number, "424242******4242");
}

/// At `maxmemory` with `noeviction`, creates and submits answer `CAPACITY_EXCEEDED` and
/// write nothing, while what finishes a session still goes through: a wrong PIN is counted,
/// a right one reveals, a cancel ends a pending session. What was stored stays intact; with
/// room again, the refused submit goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_server_answers_capacity_exceeded_and_writes_nothing() {
    let server = RedisServer::start(&[]);
    fills_up_then_finishes(&server, connect(&server).await).await;
}

/// The same with `min_replicas`: each write and its `WAIT` travel in one pipeline, whose
/// errors reach the store differently from a lone command's; a full primary must answer
/// the same codes, and still finish its sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_primary_with_min_replicas_answers_the_same() {
    let servers = tokio::task::block_in_place(|| PrimaryReplica::start(&[]));
    let options = RedisOptions::new(servers.primary.url())
        .with_timeout(TIMEOUT)
        .with_min_replicas(MinReplicas::new(1, Duration::from_millis(200)));
    let vault = vault_on(RedisStore::connect(options).await.unwrap());
    fills_up_then_finishes(&servers.primary, vault).await;
}

async fn fills_up_then_finishes(server: &RedisServer, vault: Vault) {
    let mut admin = server.admin().await;
    let keys = |admin: &mut redis::aio::MultiplexedConnection| {
        let mut admin = admin.clone();
        async move { testkit::run::<u64>(&mut admin, &["DBSIZE"]).await }
    };
    let pending = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let to_cancel = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();

    // Fill it up the way traffic would.
    testkit::limit_memory(&mut admin, 128 * 1024).await;
    let mut created = 2u64;
    let mut submitted: Vec<(SessionId, Pin)> = Vec::new();
    let refused_create = loop {
        assert!(created < 5_000, "the server never filled up");
        let ticket = match vault.create_session(&SessionOptions::default()).await {
            Ok(ticket) => ticket,
            Err(e) => break e,
        };
        created += 1;
        match vault.submit(&ticket.id, &visa_form()).await {
            Ok(receipt) => submitted.push((ticket.id, receipt.pin)),
            Err(e) => {
                // Full between the create and the submit: nothing half-written.
                assert_eq!(e.code(), ErrorCode::CapacityExceeded, "{e:?}");
                assert_eq!(
                    vault.status(&ticket.id).await.unwrap().state,
                    SessionState::Pending
                );
            }
        }
    };
    assert_eq!(
        refused_create.code(),
        ErrorCode::CapacityExceeded,
        "{refused_create:?}"
    );
    assert!(
        submitted.len() > 10,
        "only {} sessions fit",
        submitted.len()
    );
    assert_eq!(
        keys(&mut admin).await,
        created,
        "a refused create left a key"
    );

    // From here on certainly full (Redis may free a few buffers of its own meanwhile).
    let _: () = testkit::run(&mut admin, &["CONFIG", "SET", "maxmemory", "1"]).await;
    let err = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CapacityExceeded, "{err:?}");
    assert_eq!(
        keys(&mut admin).await,
        created,
        "a refused create left a key"
    );
    let err = vault.submit(&pending.id, &visa_form()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::CapacityExceeded, "{err:?}");
    assert_eq!(
        vault.status(&pending.id).await.unwrap().state,
        SessionState::Pending
    );
    // Finishing a session does not grow it: a guess is counted, a right PIN reveals (the
    // form leaves only once its tombstone is stored), a cancel ends a pending session.
    let (id, pin) = submitted.remove(0);
    let wrong = Pin::parse("00000000").unwrap();
    let err = vault.reveal(&id, &wrong).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::WrongPin, "{err:?}");
    assert_eq!(vault.status(&id).await.unwrap().attempts_left, 4);
    let form = vault.reveal(&id, &pin).await.unwrap();
    assert_eq!(form.card().unwrap().masked_number, "424242******4242");
    assert_eq!(
        vault.status(&id).await.unwrap().state,
        SessionState::Revealed
    );
    vault.cancel(&to_cancel.id).await.unwrap();
    assert_eq!(
        vault.status(&to_cancel.id).await.unwrap().state,
        SessionState::Cancelled
    );
    let err = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CapacityExceeded, "{err:?}");

    // Room again: everything stored is intact and the same vault carries on.
    let _: () = testkit::run(&mut admin, &["CONFIG", "SET", "maxmemory", "0"]).await;
    for (id, pin) in &submitted {
        let form = vault.reveal(id, pin).await.unwrap();
        assert_eq!(form.card().unwrap().masked_number, "424242******4242");
    }
    vault.submit(&pending.id, &visa_form()).await.unwrap();
    until_it_works(&vault).await;
}
