//! Session events across two OS processes sharing one redis-server: a watch in this process
//! sees what the other process does to a session, each event once, in order; a watch that
//! starts late learns the state first; a watch survives a Redis restart.
//!
//! The second process is this test binary run again with `PCI_VAULT_EVENTS_WORKER_URL`
//! set: it opens its own `Vault` on that Redis with the same key material and runs the
//! commands it reads on stdin, one per line, answering each with one line on stdout. This
//! binary has its own `main` (`harness = false`) so the worker role is not a test.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a `harness = false` target is not `cfg(test)`, so clippy.toml's test allowances do not reach it"
)]

use std::sync::Arc;
use std::time::Duration;

use pci_vault::conformance::{test_keyring, visa_form};
use pci_vault::{
    Error, Pin, SessionEvent, SessionEventKind, SessionId, SessionOptions, SessionState,
    SessionWatch, Vault,
};
use pci_vault_redis::{RedisOptions, RedisStore};
use pci_vault_testkit::harness::Selection;
use pci_vault_testkit::process::{Worker, serve};
use pci_vault_testkit::redis::RedisServer;

const WORKER_URL: &str = "PCI_VAULT_EVENTS_WORKER_URL";

async fn open_vault(url: &str) -> Vault {
    let store = RedisStore::connect(RedisOptions::new(url)).await.unwrap();
    Vault::builder(Arc::new(store), Arc::new(test_keyring()))
        .build()
        .unwrap()
}

// ----- the second process -----

/// Answers, one line each:
/// - `submit ID` → `pin PIN`
/// - `reveal ID PIN` → `ok`, `WRONG_PIN:<attempts left>` or an error code; a store that
///   is not back yet after a restart is tried again for up to 20 s
fn worker(url: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
                    let mut tries = 0;
                    loop {
                        match vault.reveal(&id, &pin).await {
                            Ok(_) => break "ok".to_owned(),
                            Err(Error::WrongPin { attempts_left }) => {
                                break format!("WRONG_PIN:{attempts_left}");
                            }
                            Err(Error::StoreUnavailable(_)) if tries < 100 => {
                                tries += 1;
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                            Err(e) => break e.code().as_str().to_owned(),
                        }
                    }
                }
                other => panic!("unknown command {other}"),
            }
        })
    });
}

// ----- the first process -----

/// The other process's two commands.
async fn submit_there(other: &mut Worker, id: &SessionId) -> Pin {
    let answer = other.ask(&format!("submit {id}")).await;
    Pin::parse(answer.strip_prefix("pin ").unwrap()).unwrap()
}

async fn reveal_there(other: &mut Worker, id: &SessionId, pin: &str) -> String {
    other.ask(&format!("reveal {id} {pin}")).await
}

async fn next(watch: &mut SessionWatch, within: Duration) -> SessionEvent {
    tokio::time::timeout(within, watch.next())
        .await
        .expect("no event in time")
        .expect("the watch ended early")
        .expect("the watch failed")
}

async fn ended(watch: &mut SessionWatch) {
    let end = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("the watch did not end");
    assert!(end.is_none(), "an event followed the terminal one: {end:?}");
}

fn wrong_digits(pin: &Pin) -> &'static str {
    if pin.expose_secret() == "000000" {
        "111111"
    } else {
        "000000"
    }
}

const SOON: Duration = Duration::from_secs(5);

/// A watch here; submit, a wrong PIN and the right one there: the watch sees `created`
/// (its state), then `submitted`, `reveal_failed` with 4 left and `revealed`, each once
/// and in order, then ends.
async fn a_watch_sees_the_other_process_submit_fail_and_reveal(server: &mut RedisServer) {
    let vault = open_vault(&server.url()).await;
    let mut other = Worker::start(WORKER_URL, &server.url()).await;
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let mut watch = vault.watch(&ticket.id).await.unwrap();
    assert_eq!(next(&mut watch, SOON).await.kind, SessionEventKind::Created);

    let pin = submit_there(&mut other, &ticket.id).await;
    let submitted = next(&mut watch, SOON).await;
    assert_eq!(
        (submitted.kind, submitted.from_state),
        (SessionEventKind::Submitted, false)
    );
    assert_eq!(
        reveal_there(&mut other, &ticket.id, wrong_digits(&pin)).await,
        "WRONG_PIN:4"
    );
    let failed = next(&mut watch, SOON).await;
    assert_eq!(
        (failed.kind, failed.attempts_left, failed.from_state),
        (SessionEventKind::RevealFailed, 4, false)
    );
    assert_eq!(
        reveal_there(&mut other, &ticket.id, pin.expose_secret()).await,
        "ok"
    );
    let revealed = next(&mut watch, SOON).await;
    assert_eq!(
        (revealed.kind, revealed.state),
        (SessionEventKind::Revealed, SessionState::Revealed)
    );
    ended(&mut watch).await;
    other.stop().await;
}

/// Submitted there before the watch here starts: the watch learns `submitted` first, from
/// the state, then sees the reveal.
async fn a_watch_started_after_submit_still_learns_it(server: &mut RedisServer) {
    let vault = open_vault(&server.url()).await;
    let mut other = Worker::start(WORKER_URL, &server.url()).await;
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let pin = submit_there(&mut other, &ticket.id).await;
    let mut watch = vault.watch(&ticket.id).await.unwrap();
    let first = next(&mut watch, SOON).await;
    assert_eq!(
        (first.kind, first.from_state),
        (SessionEventKind::Submitted, true)
    );
    assert_eq!(
        reveal_there(&mut other, &ticket.id, pin.expose_secret()).await,
        "ok"
    );
    assert_eq!(
        next(&mut watch, SOON).await.kind,
        SessionEventKind::Revealed
    );
    ended(&mut watch).await;
    other.stop().await;
}

/// Redis stops (saving its data, so the session outlives the restart) and starts again;
/// the other process reveals as soon as it can. The watch here, whose subscription the
/// restart cut, subscribes again and reports `revealed` — from the event or from the state
/// it reads again, whichever comes first — once, and ends.
async fn a_watch_recovers_after_a_redis_restart(server: &mut RedisServer) {
    let vault = open_vault(&server.url()).await;
    let mut other = Worker::start(WORKER_URL, &server.url()).await;
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let pin = submit_there(&mut other, &ticket.id).await;
    let mut watch = vault.watch(&ticket.id).await.unwrap();
    assert_eq!(
        next(&mut watch, SOON).await.kind,
        SessionEventKind::Submitted
    );
    let watching = tokio::spawn(async move {
        let event = next(&mut watch, Duration::from_secs(30)).await;
        ended(&mut watch).await;
        event
    });
    server.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    assert_eq!(
        reveal_there(&mut other, &ticket.id, pin.expose_secret()).await,
        "ok"
    );
    let event = watching.await.unwrap();
    assert_eq!(
        (event.kind, event.state),
        (SessionEventKind::Revealed, SessionState::Revealed)
    );
    eprintln!(
        "  after the restart the watch learned `revealed` {}",
        if event.from_state {
            "from the state"
        } else {
            "from the event"
        }
    );
    other.stop().await;
}

fn main() {
    if let Ok(url) = std::env::var(WORKER_URL) {
        worker(&url);
        return;
    }
    let tests = Selection::from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Saves its data on a clean stop, so a session outlives the restart test's restart.
    let mut server = None;
    macro_rules! run {
        ($($name:ident),*) => {$(
            tests.run(stringify!($name), || {
                let server = server.get_or_insert_with(|| RedisServer::start(&["--save", "3600 1"]));
                runtime.block_on($name(server));
            });
        )*};
    }
    run!(
        a_watch_sees_the_other_process_submit_fail_and_reveal,
        a_watch_started_after_submit_still_learns_it,
        a_watch_recovers_after_a_redis_restart
    );
}
