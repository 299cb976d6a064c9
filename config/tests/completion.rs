//! `to_completion`: a vault call whose caller stops waiting still stores its change and
//! records its audit event; the same call dropped half-way without it records nothing.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pci_vault::{
    AuditAction, AuditEvent, AuditSink, DataKey, KeyEncryptionKey, KeyId, KeyProvider, Keyring,
    Result, SessionOptions, Vault, WrappedKey,
};
use pci_vault_config::to_completion;
use pci_vault_memory::MemoryStore;

/// Keys whose wrap takes a while, like a KMS call: the point where a caller gives up.
#[derive(Debug)]
struct SlowKeys(Keyring);

#[async_trait]
impl KeyProvider for SlowKeys {
    async fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<WrappedKey> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.0.wrap(dek, aad).await
    }

    async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey> {
        self.0.unwrap(wrapped, aad).await
    }
}

#[derive(Debug, Default)]
struct Events(Mutex<Vec<AuditAction>>);

impl AuditSink for Events {
    fn record(&self, event: &AuditEvent) {
        self.0.lock().unwrap().push(event.action);
    }
}

fn vault(events: &Arc<Events>) -> Vault {
    let id = KeyId::new("k1").unwrap();
    let keyring = Keyring::new(
        id.clone(),
        [(id, KeyEncryptionKey::from_bytes(&[7; 32]).unwrap())],
    )
    .unwrap();
    Vault::builder(Arc::new(MemoryStore::new()), Arc::new(SlowKeys(keyring)))
        .audit_sink(events.clone())
        .build()
        .unwrap()
}

async fn created_after_giving_up(run_to_completion: bool) -> usize {
    let events = Arc::new(Events::default());
    let vault = vault(&events);
    let creating = async move { vault.create_session(&SessionOptions::default()).await };
    let given_up = if run_to_completion {
        tokio::time::timeout(Duration::from_millis(50), to_completion(creating))
            .await
            .is_err()
    } else {
        tokio::time::timeout(Duration::from_millis(50), creating)
            .await
            .is_err()
    };
    assert!(given_up, "the caller was meant to stop waiting");
    tokio::time::sleep(Duration::from_millis(400)).await;
    events.0.lock().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_caller_stops_waiting_still_ends_and_is_audited() {
    assert_eq!(created_after_giving_up(true).await, 1);
}

/// What `to_completion` is for: the same call, dropped, never gets to its write or event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_stops_where_it_was() {
    assert_eq!(created_after_giving_up(false).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outcome_and_errors_come_back_as_they_are() {
    let events = Arc::new(Events::default());
    let vault = vault(&events);
    let probe = vault.clone();
    let ticket =
        to_completion(async move { vault.create_session(&SessionOptions::default()).await })
            .await
            .unwrap();
    assert_eq!(
        probe.status(&ticket.id).await.unwrap().state,
        pci_vault::SessionState::Pending
    );
    let error = to_completion(async { Err::<(), _>(pci_vault::Error::NotFound) })
        .await
        .unwrap_err();
    assert_eq!(error.code(), pci_vault::ErrorCode::NotFound);
    assert_eq!(*events.0.lock().unwrap(), vec![AuditAction::Created]);
}
