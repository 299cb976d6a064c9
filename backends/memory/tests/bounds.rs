//! The memory store's own promises: bounded capacity, expired entries purged, and no clear
//! secret anywhere in what it holds.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

use std::sync::Arc;
use std::time::Duration;

use pci_vault::conformance::{TEST_KEK, flow::assert_no_secret_in, test_keyring, visa_form};
use pci_vault::{CasOutcome, EphemeralStore, ErrorCode, ManualClock, SessionOptions, Vault};
use pci_vault_memory::{MemoryLimits, MemoryStore};

fn store(limits: MemoryLimits) -> (Arc<MemoryStore>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    (
        Arc::new(MemoryStore::with_clock(limits, clock.clone())),
        clock,
    )
}

#[tokio::test]
async fn entry_bound_gives_capacity_exceeded_and_frees_on_expiry() {
    let (store, clock) = store(MemoryLimits::default().with_max_entries(2));
    let ttl = Duration::from_secs(10);
    assert!(matches!(
        store
            .create("a", pci_vault::Version::random(), b"1", ttl)
            .await
            .unwrap(),
        CasOutcome::Applied(_)
    ));
    assert!(matches!(
        store
            .create("b", pci_vault::Version::random(), b"2", ttl)
            .await
            .unwrap(),
        CasOutcome::Applied(_)
    ));
    let err = store
        .create("c", pci_vault::Version::random(), b"3", ttl)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CapacityExceeded);
    // The failed write changed nothing.
    assert!(store.load("c").await.unwrap().is_none());
    assert_eq!(store.usage().0, 2);
    clock.advance(Duration::from_secs(11));
    assert!(matches!(
        store
            .create("c", pci_vault::Version::random(), b"3", ttl)
            .await
            .unwrap(),
        CasOutcome::Applied(_)
    ));
    assert_eq!(store.usage().0, 1);
}

#[tokio::test]
async fn byte_bound_covers_growth_by_replace() {
    let (store, _) = store(
        MemoryLimits::default()
            .with_max_entries(10)
            .with_max_bytes(1_000),
    );
    let v = match store
        .create(
            "k",
            pci_vault::Version::random(),
            &[0; 100],
            Duration::from_secs(10),
        )
        .await
        .unwrap()
    {
        CasOutcome::Applied(v) => v,
        CasOutcome::Conflict => unreachable!(),
    };
    let err = store
        .replace("k", v, pci_vault::Version::random(), &[0; 2_000])
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CapacityExceeded);
    assert_eq!(store.load("k").await.unwrap().unwrap().value.len(), 100);
    assert!(matches!(
        store
            .replace("k", v, pci_vault::Version::random(), &[1; 500])
            .await
            .unwrap(),
        CasOutcome::Applied(_)
    ));
}

/// Claims always fit, so they can take a full store past its bound; a replace that does
/// not grow its entry (a reveal's or a lock's tombstone, a cancel) still goes through, and
/// only one that grows is refused.
#[tokio::test]
async fn a_full_store_still_takes_writes_that_do_not_grow() {
    // Exactly one entry of a 100-byte value under a one-byte key.
    let (_, max_bytes) = {
        let probe = MemoryStore::new();
        let _: CasOutcome = probe
            .create(
                "k",
                pci_vault::Version::random(),
                &[0; 100],
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        probe.usage()
    };
    let (store, _) = store(MemoryLimits::default().with_max_bytes(max_bytes));
    let v0 = pci_vault::Version::random();
    assert_eq!(
        store
            .create("k", v0, &[0; 100], Duration::from_secs(10))
            .await
            .unwrap(),
        CasOutcome::Applied(v0)
    );
    let claim = pci_vault::Claim {
        id: 1,
        at_millis: 1,
    };
    let claimed = store.claim("k", claim, 5, b"").await.unwrap().unwrap();
    assert_eq!(claimed.slot, Some(1));
    assert!(
        store.usage().1 > max_bytes,
        "the claim took the store past its bound"
    );

    let grows = store
        .replace("k", v0, pci_vault::Version::random(), &[1; 150])
        .await
        .unwrap_err();
    assert_eq!(grows.code(), ErrorCode::CapacityExceeded);
    let v1 = pci_vault::Version::random();
    assert_eq!(
        store.replace("k", v0, v1, &[2; 100]).await.unwrap(),
        CasOutcome::Applied(v1)
    );
    let v2 = pci_vault::Version::random();
    assert_eq!(
        store.replace("k", v1, v2, &[3; 10]).await.unwrap(),
        CasOutcome::Applied(v2)
    );
    assert_eq!(store.load("k").await.unwrap().unwrap().value, vec![3; 10]);
}

#[tokio::test]
async fn expired_entries_are_purged_so_memory_does_not_grow() {
    let (store, clock) = store(MemoryLimits::default());
    for round in 0..5 {
        for i in 0..2_000 {
            let _ = store
                .create(
                    &format!("r{round}-{i}"),
                    pci_vault::Version::random(),
                    &[0; 256],
                    Duration::from_secs(1),
                )
                .await
                .unwrap();
        }
        clock.advance(Duration::from_secs(2));
    }
    // 10,000 entries were written; each write purged expired ones, so the store holds only
    // the last round (expired by now, purged by the next writes).
    let (entries, bytes) = store.usage();
    assert!(entries <= 2_000, "{entries} entries held");
    assert!(
        bytes <= entries * (256 + 128 + 16),
        "{bytes} bytes counted for {entries} entries"
    );
    for i in 0..10 {
        let _ = store
            .create(
                &format!("late-{i}"),
                pci_vault::Version::random(),
                &[0; 16],
                Duration::from_secs(1),
            )
            .await
            .unwrap();
    }
    let (after, _) = store.usage();
    assert_eq!(
        after,
        entries - 10 * 64 + 10,
        "each write purges up to 64 expired entries"
    );
}

#[tokio::test]
async fn malformed_keys_and_oversized_values_are_refused() {
    let (store, _) = store(MemoryLimits::default());
    for key in ["", "has space", "{tag}", "a\nb", &"k".repeat(129)] {
        assert_eq!(
            store
                .create(
                    key,
                    pci_vault::Version::random(),
                    b"x",
                    Duration::from_secs(1)
                )
                .await
                .unwrap_err()
                .code(),
            ErrorCode::InvalidArgument
        );
    }
    let huge = vec![0u8; 1024 * 1024 + 1];
    assert_eq!(
        store
            .create(
                "k",
                pci_vault::Version::random(),
                &huge,
                Duration::from_secs(1)
            )
            .await
            .unwrap_err()
            .code(),
        ErrorCode::InvalidArgument
    );
}

/// Dumps every stored record after submits and finds no PAN, CVC, name, PIN or key bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_of_every_record_holds_no_secret() {
    let (store, clock) = store(MemoryLimits::default());
    let vault = Vault::builder(store.clone(), Arc::new(test_keyring()))
        .clock(clock)
        .build()
        .unwrap();
    let mut pins = Vec::new();
    for _ in 0..20 {
        let options = SessionOptions::default().with_pin_length(12);
        let t = vault.create_session(&options).await.unwrap();
        pins.push(vault.submit(&t.id, &visa_form()).await.unwrap().pin);
    }
    let dump = store.raw_entries();
    assert_eq!(dump.len(), 20);
    let mut secrets: Vec<(&str, Vec<u8>)> = vec![
        ("PAN", b"4242424242424242".to_vec()),
        ("CVC and expiry", b"12/39".to_vec()),
        ("name", b"Ada Lovelace".to_vec()),
        ("key-encryption key", TEST_KEK.to_vec()),
    ];
    for pin in &pins {
        secrets.push(("PIN", pin.expose_secret().as_bytes().to_vec()));
    }
    for (key, value) in &dump {
        assert_no_secret_in(key.as_bytes(), &secrets);
        assert_no_secret_in(value, &secrets);
    }
}
