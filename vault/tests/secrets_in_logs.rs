//! Everything a host could log during a full flow, captured at TRACE level, holds no card
//! number, security code, PIN, key or session link.
//!
//! The test plays a careless host: a global `tracing` subscriber writes every event of
//! every thread into a buffer (as text and as JSON); the default audit sink reports through
//! it; every error is logged with `Display` and `Debug`; tickets, receipts, forms, statuses
//! and the vault itself are logged with `Debug`; the key file is rotated and then broken,
//! so the key source logs too; and a spawned task panics while holding a revealed form, a
//! receipt and a PIN, with a panic hook that logs panics, as services do. It is the only
//! test of its binary, because it installs the process-wide subscriber and panic hook.

#![cfg(feature = "conformance")]
#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pci_vault::{FormInput, Metadata, Pin, SessionId, SessionOptions, TracingAuditSink, Vault};
use pci_vault_keys::KeyFile;
use pci_vault_memory::MemoryStore;
use pci_vault_testkit::secrets::{contains_token, encodings};
use support::TempDir;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

/// A shared in-memory log.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

const PAN: &str = "371449635398431";
const PAN_AS_TYPED: &str = "3714 496353 98431";
const PAN_MISTYPED: &str = "3714 496353 98432";
const CVC: &str = "8352";
const NAME: &str = "Katherine Johnson";
const KEK: &[u8; 32] = b"log-capture-test-kek-0123456789!";
const KEK2: &[u8; 32] = b"log-capture-test-kek-rotated-key";

fn amex() -> FormInput {
    FormInput::new()
        .with("card_number", PAN_AS_TYPED)
        .with("expiry", "09/34")
        .with("cvc", CVC)
        .with("cardholder_name", NAME)
}

/// What the flow handled and the logs must not show.
struct Secrets {
    pins: Vec<String>,
    ids: Vec<String>,
}

#[test]
fn a_full_flow_with_a_panicking_task_logs_no_card_data_pin_or_key() {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(buffer.clone())
                .with_ansi(false)
                .with_thread_names(true)
                .with_file(true)
                .with_line_number(true)
                .without_time(),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(buffer.clone())
                .without_time(),
        )
        .with(tracing_subscriber::filter::LevelFilter::TRACE);
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(target: "panic", panic = %info, "a task panicked");
    }));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let secrets = runtime.block_on(flow());
    drop(runtime);
    std::panic::set_hook(previous_hook);

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    // The capture works: the audit trail, the key source, the errors and the panic are in.
    for expected in [
        "pci_vault::audit",
        "reloaded the keyring",
        "keeping the previous keyring",
        "WRONG_PIN",
        "VALIDATION_FAILED",
        "a task panicked",
        "tests/secrets_in_logs.rs",
        "371449*****8431",
    ] {
        assert!(logs.contains(expected), "the capture lacks {expected:?}");
    }
    // The mask may show; nothing beyond it may.
    let digits_beyond_the_mask = &PAN[..10];
    for (what, secret) in [
        ("PAN", PAN),
        ("PAN as typed", PAN_AS_TYPED),
        ("mistyped PAN", PAN_MISTYPED),
        ("mistyped PAN", &PAN_MISTYPED.replace(' ', "")),
        ("more of the PAN than the mask", digits_beyond_the_mask),
        ("cardholder name", NAME),
    ] {
        assert!(!logs.contains(secret), "the logs hold the {what}");
    }
    assert!(
        !contains_token(&logs, CVC),
        "the logs hold the security code"
    );
    for pin in &secrets.pins {
        assert_eq!(pin.len(), 12);
        assert!(!logs.contains(pin.as_str()), "the logs hold a PIN");
    }
    for id in &secrets.ids {
        assert!(!logs.contains(id.as_str()), "the logs hold a session link");
    }
    for key in [KEK, KEK2] {
        for form in encodings(key) {
            assert!(!logs.contains(&form), "the logs hold a key");
        }
    }
}

async fn flow() -> Secrets {
    let dir = TempDir::new("log-capture");
    let path = dir.0.join("keyring");
    std::fs::write(&path, format!("k1:{}\n", STANDARD.encode(KEK))).unwrap();
    let keys = Arc::new(KeyFile::with_check_interval(&path, Duration::ZERO).unwrap());
    tracing::debug!(?keys, "key source opened");
    let _development = pci_vault_keys::development_keyring();
    let vault = Vault::builder(Arc::new(MemoryStore::new()), keys.clone())
        .audit_sink(Arc::new(TracingAuditSink))
        .build()
        .unwrap();
    tracing::debug!(?vault, "vault built");
    let options = SessionOptions::default()
        .with_pin_length(12)
        .with_max_attempts(3)
        .with_metadata(Metadata::new([("conversation", "c-77")]).unwrap());
    let mut secrets = Secrets {
        pins: Vec::new(),
        ids: Vec::new(),
    };
    let log = |what: &str, result: Result<(), pci_vault::Error>| {
        if let Err(e) = result {
            tracing::warn!(error = %e, debug = ?e, code = %e.code(), "{what} failed");
        }
    };

    // Create; a mistyped card; the real one.
    let ticket = vault.create_session(&options).await.unwrap();
    tracing::info!(?ticket, "session created");
    secrets.ids.push(ticket.id.to_string());
    let mistyped = amex().with("card_number", PAN_MISTYPED);
    tracing::trace!(form = ?mistyped, "submitting");
    log(
        "a repeated field",
        vault.submit(&ticket.id, &mistyped).await.map(|_| ()),
    );
    let bad = FormInput::new()
        .with("card_number", PAN_MISTYPED)
        .with("expiry", "09/34")
        .with("cvc", CVC)
        .with("cardholder_name", NAME);
    log(
        "a mistyped card",
        vault.submit(&ticket.id, &bad).await.map(|_| ()),
    );
    let receipt = vault.submit(&ticket.id, &amex()).await.unwrap();
    tracing::info!(?receipt, "form submitted");
    secrets.pins.push(receipt.pin.expose_secret().to_owned());

    // Rotate the key file (the source logs the reload), then break it (it logs the error
    // and keeps the keys it has).
    std::fs::write(
        &path,
        format!(
            "k2:{}\nk1:{}\n",
            STANDARD.encode(KEK2),
            STANDARD.encode(KEK)
        ),
    )
    .unwrap();
    let status = vault.status(&ticket.id).await.unwrap();
    tracing::info!(?status, "status");
    std::fs::write(&path, format!("k3:{}x\n", STANDARD.encode(KEK2))).unwrap();
    log("status", vault.status(&ticket.id).await.map(|_| ()));

    // Wrong PINs, the right one, and the reveal again.
    let wrong = Pin::parse("000000000000").unwrap();
    log(
        "a wrong PIN",
        vault.reveal(&ticket.id, &wrong).await.map(|_| ()),
    );
    let form = vault.reveal(&ticket.id, &receipt.pin).await.unwrap();
    tracing::info!(?form, card = ?form.card(), "revealed");
    log(
        "a second reveal",
        vault.reveal(&ticket.id, &receipt.pin).await.map(|_| ()),
    );
    log("cancel", vault.cancel(&ticket.id).await);

    // A session locked by wrong PINs.
    let locked = vault.create_session(&options).await.unwrap();
    secrets.ids.push(locked.id.to_string());
    let locked_receipt = vault.submit(&locked.id, &amex()).await.unwrap();
    secrets
        .pins
        .push(locked_receipt.pin.expose_secret().to_owned());
    for _ in 0..4 {
        log(
            "a wrong PIN",
            vault.reveal(&locked.id, &wrong).await.map(|_| ()),
        );
    }
    log(
        "the right PIN, too late",
        vault
            .reveal(&locked.id, &locked_receipt.pin)
            .await
            .map(|_| ()),
    );
    log(
        "an unknown session",
        vault.status(&SessionId::generate()).await.map(|_| ()),
    );

    // A task that panics while it holds a revealed form, a receipt, the input and a PIN.
    let last = vault.create_session(&options).await.unwrap();
    secrets.ids.push(last.id.to_string());
    let task_pin = Arc::new(Mutex::new(String::new()));
    let task = tokio::spawn({
        let (vault, task_pin) = (vault.clone(), task_pin.clone());
        async move {
            let input = amex();
            let receipt = vault.submit(&last.id, &input).await.unwrap();
            let pin = receipt.pin.clone();
            task_pin.lock().unwrap().push_str(pin.expose_secret());
            let form = vault.reveal(&last.id, &pin).await.unwrap();
            let digits = pin.expose_secret().to_owned();
            tracing::trace!(?input, ?receipt, ?form, ?pin, "the task holds");
            if !digits.is_empty() {
                // What a failed assertion in the host's code would print.
                assert_eq!(receipt.pin, Pin::parse("111111111111").unwrap(), "{form:?}");
            }
            digits
        }
    });
    let joined = task.await;
    let err = joined.expect_err("the task panicked");
    tracing::error!(error = %err, debug = ?err, "the task failed");
    secrets.pins.push(task_pin.lock().unwrap().clone());
    drop(form);
    drop(dir);
    secrets
}
