//! A watch asks the key provider for its session's data key once: the reads it makes every
//! 15 s to catch up with a silent subscription reuse that key while the record holds the
//! same wrapped key. With a KMS or an HSM each unwrap is a call over the network, and a
//! server may watch many sessions at once.

#![cfg(feature = "conformance")]

use std::sync::Arc;
use std::time::Duration;

use pci_vault::conformance::faults::CountingStore;
use pci_vault::conformance::visa_form;
use pci_vault::{Keyring, SessionEventKind, SessionOptions, Vault};
use pci_vault_memory::MemoryStore;
use pci_vault_testkit::keys::RecordingProvider;

#[tokio::test(start_paused = true)]
async fn a_watch_unwraps_its_data_key_once_however_often_it_reads_the_session() {
    let store = Arc::new(CountingStore::new(Arc::new(MemoryStore::new())));
    let provider = Arc::new(RecordingProvider::new(Arc::new(Keyring::ephemeral())));
    let vault = Vault::builder(store.clone(), provider.clone())
        .build()
        .expect("a vault on the memory store");
    let unwraps = || {
        provider
            .calls()
            .iter()
            .filter(|call| call.dek_len == 0)
            .count()
    };

    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .expect("created");
    let mut watch = vault.watch(&ticket.id).await.expect("watching");
    let first = watch.next().await.expect("an event").expect("no error");
    assert_eq!(first.kind, SessionEventKind::Created);
    assert_eq!(unwraps(), 1, "the watch's first read unwraps the data key");
    store.take();

    // A minute of silence: the watch reads the session every 15 s (time is paused and
    // advances by itself while every task waits).
    let silent = tokio::time::timeout(Duration::from_secs(61), watch.next()).await;
    assert!(silent.is_err(), "no event while nothing happens");
    assert!(
        store.take() >= 4,
        "the watch read the session at least four times"
    );
    assert_eq!(unwraps(), 1, "those reads asked the key provider nothing");

    // The submitted record keeps its wrapped key: the submit unwraps it once, the watch's
    // later reads of the new record still do not.
    vault
        .submit(&ticket.id, &visa_form())
        .await
        .expect("submitted");
    let submitted = watch.next().await.expect("an event").expect("no error");
    assert_eq!(submitted.kind, SessionEventKind::Submitted);
    assert_eq!(unwraps(), 2, "the submit's own unwrap");
    let silent = tokio::time::timeout(Duration::from_secs(31), watch.next()).await;
    assert!(silent.is_err(), "no event while nothing happens");
    assert!(store.take() >= 2, "the watch read the submitted session");
    assert_eq!(unwraps(), 2, "with the data key it already had");
}
