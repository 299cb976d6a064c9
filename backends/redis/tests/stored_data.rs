//! What Redis holds and sees: no card data, PIN, key or session id in any key, value,
//! serialization or command, every key under the prefix with a TTL, and how many bytes a
//! submitted session takes.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use pci_vault::conformance::flow::assert_no_secret_in;
use pci_vault::conformance::{TEST_KEK, amex_form, visa_form};
use pci_vault::{Pin, SessionOptions, Vault};
use pci_vault_redis::{RedisOptions, RedisStore};
use pci_vault_testkit::redis::{self as testkit, RedisServer, StoredKey, scan_every_key};
use pci_vault_testkit::vaults::vault_on;

/// Every command the server executes, as `MONITOR` reports it, until `stop` is seen.
struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    async fn start(server: &RedisServer, stop: &'static str) -> Self {
        let monitor = redis::Client::open(server.url())
            .unwrap()
            .get_async_monitor()
            .await
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        let task = tokio::spawn(async move {
            let mut stream = monitor.into_on_message::<String>();
            while let Some(line) = stream.next().await {
                let done = line.contains(stop);
                seen.lock().unwrap().push(line);
                if done {
                    break;
                }
            }
        });
        Monitor { lines, task }
    }

    async fn finish(self) -> Vec<String> {
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("MONITOR never saw the end marker")
            .unwrap();
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

fn check_keys(keys: &[StoredKey], secrets: &[(&str, Vec<u8>)]) {
    for key in keys {
        assert!(
            key.name
                .starts_with(RedisOptions::DEFAULT_KEY_PREFIX.as_bytes()),
            "{key:?}"
        );
        assert!(key.pttl_ms > 0, "a key without a TTL: {key:?}");
        assert_eq!(key.kind, "string");
        assert_no_secret_in(&key.name, secrets);
        assert_no_secret_in(key.value.as_deref().unwrap_or_default(), secrets);
        assert_no_secret_in(&key.dump, secrets);
        assert_no_secret_in(key.encoding.as_bytes(), secrets);
    }
}

/// After a submit, a wrong PIN and a reveal, a `SCAN` of every key finds no PAN, CVC,
/// name, PIN, key-encryption key or session id in any key name, value, `DUMP` or
/// `OBJECT ENCODING`; and `MONITOR` shows no such bytes in any command the vault sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_never_holds_or_sees_a_secret() {
    const END: &str = "pci-vault-test-end-of-flow";
    let server = RedisServer::start(&[]);
    let monitor = Monitor::start(&server, END).await;
    let vault = vault_on(
        RedisStore::connect(RedisOptions::new(server.url()))
            .await
            .unwrap(),
    );
    let mut admin = server.admin().await;

    let ticket = vault
        .create_session(&SessionOptions::default().with_pin_length(12))
        .await
        .unwrap();
    let receipt = vault.submit(&ticket.id, &amex_form()).await.unwrap();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("PAN", b"378282246310005".to_vec()),
        ("PAN middle digits", b"8224631000".to_vec()),
        ("CVC", b"7391".to_vec()),
        ("cardholder name", b"Grace Hopper".to_vec()),
        ("PIN", receipt.pin.expose_secret().as_bytes().to_vec()),
        ("key-encryption key", TEST_KEK.to_vec()),
        ("session id", ticket.id.to_string().into_bytes()),
        ("session id bytes", ticket.id.as_bytes().to_vec()),
    ];

    let after_submit = scan_every_key(&mut admin).await;
    assert_eq!(after_submit.len(), 1, "{after_submit:?}");
    check_keys(&after_submit, &secrets);

    let wrong = Pin::parse("000000000000").unwrap();
    let _ = vault.reveal(&ticket.id, &wrong).await.unwrap_err();
    check_keys(&scan_every_key(&mut admin).await, &secrets);
    vault.reveal(&ticket.id, &receipt.pin).await.unwrap();
    let tombstone = scan_every_key(&mut admin).await;
    check_keys(&tombstone, &secrets);
    // The tombstone is smaller: the sealed fields are gone.
    assert!(
        tombstone[0].value.as_ref().unwrap().len() < after_submit[0].value.as_ref().unwrap().len()
    );

    let _: String = testkit::run(&mut admin, &["ECHO", END]).await;
    let commands = monitor.finish().await;
    assert!(
        commands.iter().any(|c| c.contains("\"SET\"")),
        "MONITOR saw no write: {commands:?}"
    );
    for line in &commands {
        // `1764030000.123456 [0 127.0.0.1:57391] "SET" "key" "value"`: the time and the
        // client's port are digits of their own (a 4-digit CVC would turn up by chance).
        let (_, command) = line.split_once("] ").unwrap();
        assert_no_secret_in(command.as_bytes(), &secrets);
    }
}

/// `MEMORY USAGE` of one submitted session (default form and options, Visa card) and the
/// growth of `used_memory` over 200 of them. The numbers are printed for the README; the
/// bounds catch a record that grows by accident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_per_submitted_session() {
    let server = RedisServer::start(&[]);
    let vault: Vault = vault_on(
        RedisStore::connect(RedisOptions::new(server.url()))
            .await
            .unwrap(),
    );
    let mut admin = server.admin().await;

    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    vault.submit(&ticket.id, &visa_form()).await.unwrap();
    let keys = scan_every_key(&mut admin).await;
    assert_eq!(keys.len(), 1);
    let name = String::from_utf8(keys[0].name.clone()).unwrap();
    let usage: u64 = testkit::run(&mut admin, &["MEMORY", "USAGE", &name, "SAMPLES", "0"]).await;
    let value_len = keys[0].value.as_ref().unwrap().len();

    const N: u64 = 200;
    let before = testkit::used_memory(&mut admin).await;
    for _ in 0..N {
        let ticket = vault
            .create_session(&SessionOptions::default())
            .await
            .unwrap();
        vault.submit(&ticket.id, &visa_form()).await.unwrap();
    }
    let per_session = (testkit::used_memory(&mut admin).await - before) / N;

    eprintln!(
        "a submitted session: value {value_len} bytes ({} encoding), MEMORY USAGE {usage} \
         bytes, used_memory growth {per_session} bytes per session over {N}",
        keys[0].encoding
    );
    assert!((400..1_500).contains(&value_len), "{value_len}");
    assert!(usage < 2_048, "{usage}");
    assert!(per_session < 2_048, "{per_session}");
}

/// An entry that something else wrote under a session's key (too short for the store's
/// header, or a key of another type) is INTEGRITY_ERROR for every operation, at once and
/// without retries: never "outcome unknown".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_written_by_something_else_is_an_integrity_error() {
    let server = RedisServer::start(&[]);
    let vault = vault_on(
        RedisStore::connect(RedisOptions::new(server.url()))
            .await
            .unwrap(),
    );
    let mut admin = server.admin().await;
    for overwrite in ["SET", "RPUSH"] {
        let ticket = vault
            .create_session(&SessionOptions::default())
            .await
            .unwrap();
        let receipt = vault.submit(&ticket.id, &visa_form()).await.unwrap();
        let keys = scan_every_key(&mut admin).await;
        let key = &keys.iter().find(|k| k.kind == "string").unwrap().name;
        let _: () = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut admin)
            .await
            .unwrap();
        let _: () = redis::cmd(overwrite)
            .arg(key)
            .arg("12345678")
            .query_async(&mut admin)
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let revealed = vault.reveal(&ticket.id, &receipt.pin).await.unwrap_err();
        assert_eq!(
            revealed.code(),
            pci_vault::ErrorCode::IntegrityError,
            "{overwrite}: {revealed}"
        );
        let status = vault.status(&ticket.id).await.unwrap_err();
        assert_eq!(
            status.code(),
            pci_vault::ErrorCode::IntegrityError,
            "{overwrite}: {status}"
        );
        let cancelled = vault.cancel(&ticket.id).await.unwrap_err();
        assert_eq!(
            cancelled.code(),
            pci_vault::ErrorCode::IntegrityError,
            "{overwrite}: {cancelled}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        let _: () = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut admin)
            .await
            .unwrap();
    }
}
