//! Two vaults in two OS processes sharing one redis-server: the invariants hold across
//! processes, not just across tasks.
//!
//! The second process is this test binary run again with `PCI_VAULT_REDIS_WORKER_URL` set:
//! it then opens its own `Vault` on that Redis, with the same key material (the
//! conformance keyring), and runs the commands it reads on stdin, one per line, answering
//! each with one line on stdout. Both processes start their share of a race within
//! microseconds of each other. This binary has its own `main` (`harness = false`) so the
//! worker role is not a test of its own.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a `harness = false` target is not `cfg(test)`, so clippy.toml's test allowances do not reach it"
)]

use std::sync::Arc;

use pci_vault::conformance::{test_keyring, visa_form};
use pci_vault::{Error, ExposeSecret, Pin, SessionId, SessionOptions, SessionState, Vault};
use pci_vault_redis::{RedisOptions, RedisStore};
use pci_vault_testkit::harness::Selection;
use pci_vault_testkit::process::{Worker, serve};
use pci_vault_testkit::redis::RedisServer;

const WORKER_URL: &str = "PCI_VAULT_REDIS_WORKER_URL";

async fn open_vault(url: &str) -> Vault {
    let store = RedisStore::connect(RedisOptions::new(url)).await.unwrap();
    Vault::builder(Arc::new(store), Arc::new(test_keyring()))
        .build()
        .unwrap()
}

/// One reveal's outcome as a word: `ok`, an error code, or `WRONG_PIN:<attempts left>`.
fn outcome(result: &pci_vault::Result<pci_vault::RevealedForm>) -> String {
    match result {
        Ok(form) => {
            assert_eq!(
                form.get("card_number").unwrap().expose_secret(),
                "4242424242424242"
            );
            "ok".to_owned()
        }
        Err(Error::WrongPin { attempts_left }) => format!("WRONG_PIN:{attempts_left}"),
        Err(e) => e.code().as_str().to_owned(),
    }
}

/// `n` concurrent reveals of `id` with `pin`, each its own task.
async fn reveals(vault: &Vault, id: &SessionId, pin: &Pin, n: usize) -> Vec<String> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (vault, id, pin) = (vault.clone(), id.clone(), pin.clone());
            tokio::spawn(async move { outcome(&vault.reveal(&id, &pin).await) })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

// ----- the second process -----

/// Answers, one line each:
/// - `submit ID` → `pin PIN`
/// - `reveal ID PIN N` → the N outcomes, space-separated
/// - `status ID` → `state STATE ATTEMPTS_LEFT`
fn worker(url: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let vault = runtime.block_on(open_vault(url));
    serve(|words| {
        let id = SessionId::parse(words[1]).unwrap();
        runtime.block_on(async {
            match words[0] {
                "submit" => {
                    let receipt = vault.submit(&id, &visa_form()).await.unwrap();
                    format!("pin {}", receipt.pin.expose_secret())
                }
                "reveal" => {
                    let pin = Pin::parse(words[2]).unwrap();
                    reveals(&vault, &id, &pin, words[3].parse().unwrap())
                        .await
                        .join(" ")
                }
                "status" => {
                    let status = vault.status(&id).await.unwrap();
                    format!("state {} {}", status.state, status.attempts_left)
                }
                other => panic!("unknown command {other}"),
            }
        })
    });
}

// ----- the first process -----

async fn submitted_session(vault: &Vault) -> (SessionId, Pin) {
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = vault.submit(&ticket.id, &visa_form()).await.unwrap();
    (ticket.id, receipt.pin)
}

/// Created in this process, submitted in the other, revealed here; each process sees the
/// other's writes.
async fn create_here_submit_there_reveal_here(server: &RedisServer) {
    let vault = open_vault(&server.url()).await;
    let mut other = Worker::start(WORKER_URL, &server.url()).await;
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    other.send(&format!("submit {}", ticket.id)).await;
    let answer = other.answer().await;
    let pin = Pin::parse(answer.strip_prefix("pin ").unwrap()).unwrap();
    assert_eq!(
        vault.status(&ticket.id).await.unwrap().state,
        SessionState::Submitted
    );
    let form = vault.reveal(&ticket.id, &pin).await.unwrap();
    assert_eq!(form.card().unwrap().masked_number, "424242******4242");
    other.send(&format!("status {}", ticket.id)).await;
    // (The reveal took one attempt before it compared the PIN, as every reveal does.)
    assert_eq!(other.answer().await, "state revealed 4");
    other.stop().await;
}

/// 100 concurrent correct reveals, 50 in each process, in 3 rounds: exactly one form is
/// returned each round, every other reveal answers `ALREADY_REVEALED` (never `LOCKED`:
/// a reveal that finds every attempt taken waits for the ones in flight and reports the
/// state that won), and the session ends revealed.
async fn one_reveal_among_100_across_two_processes(server: &RedisServer) {
    let vault = open_vault(&server.url()).await;
    let mut other = Worker::start(WORKER_URL, &server.url()).await;
    let mut won_there = 0;
    for _ in 0..3 {
        let (id, pin) = submitted_session(&vault).await;
        other
            .send(&format!("reveal {id} {} 50", pin.expose_secret()))
            .await;
        let here = reveals(&vault, &id, &pin, 50).await;
        let there: Vec<String> = other.answer().await.split(' ').map(str::to_owned).collect();
        assert_eq!((here.len(), there.len()), (50, 50));
        let all: Vec<&String> = here.iter().chain(&there).collect();
        assert_eq!(
            all.iter().filter(|o| o.as_str() == "ok").count(),
            1,
            "here {here:?}, there {there:?}"
        );
        assert_eq!(
            all.iter()
                .filter(|o| o.as_str() == "ALREADY_REVEALED")
                .count(),
            99,
            "here {here:?}, there {there:?}"
        );
        won_there += usize::from(there.iter().any(|o| o == "ok"));
        assert_eq!(
            vault.status(&id).await.unwrap().state,
            SessionState::Revealed
        );
    }
    eprintln!("  the other process won {won_there} of 3 rounds");
    other.stop().await;
}

/// 50 concurrent wrong PINs, 25 in each process, in 3 rounds: exactly 4 are answered
/// `WRONG_PIN` (4, 3, 2, 1 attempts left, once each), the other 46 `LOCKED`, so no more
/// than `max_attempts` (5) were evaluated; the right PIN is refused after.
async fn at_most_max_attempts_among_50_wrong_pins_across_two_processes(server: &RedisServer) {
    let vault = open_vault(&server.url()).await;
    let mut other = Worker::start(WORKER_URL, &server.url()).await;
    for _ in 0..3 {
        let (id, pin) = submitted_session(&vault).await;
        let digits = if pin.expose_secret() == "000000" {
            "111111"
        } else {
            "000000"
        };
        let wrong = Pin::parse(digits).unwrap();
        other.send(&format!("reveal {id} {digits} 25")).await;
        let here = reveals(&vault, &id, &wrong, 25).await;
        let there: Vec<String> = other.answer().await.split(' ').map(str::to_owned).collect();
        let all: Vec<&String> = here.iter().chain(&there).collect();
        assert_eq!(all.len(), 50);
        let mut left: Vec<&str> = all
            .iter()
            .filter_map(|o| o.strip_prefix("WRONG_PIN:"))
            .collect();
        left.sort_unstable();
        assert_eq!(left, ["1", "2", "3", "4"], "here {here:?}, there {there:?}");
        assert_eq!(
            all.iter().filter(|o| o.as_str() == "LOCKED").count(),
            46,
            "here {here:?}, there {there:?}"
        );
        assert_eq!(
            vault.reveal(&id, &pin).await.unwrap_err().code(),
            pci_vault::ErrorCode::Locked
        );
        other.send(&format!("status {id}")).await;
        assert_eq!(other.answer().await, "state locked 0");
    }
    other.stop().await;
}

fn main() {
    if let Ok(url) = std::env::var(WORKER_URL) {
        worker(&url);
        return;
    }
    let tests = Selection::from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let mut server = None;
    macro_rules! run {
        ($($name:ident),*) => {$(
            tests.run(stringify!($name), || {
                let server = server.get_or_insert_with(|| RedisServer::start(&[]));
                runtime.block_on($name(server));
            });
        )*};
    }
    run!(
        create_here_submit_there_reveal_here,
        one_reveal_among_100_across_two_processes,
        at_most_max_attempts_among_50_wrong_pins_across_two_processes
    );
}
