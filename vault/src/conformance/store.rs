//! The [`EphemeralStore`](crate::store::EphemeralStore) contract.

use std::sync::Arc;
use std::time::Duration;

use super::Harness;
use crate::store::{CasOutcome, EphemeralStore, Version};

/// A key no other test uses, so suites can share one server.
fn fresh_key(tag: &str) -> String {
    format!("conf-{tag}-{}", crate::session::SessionId::generate())
}

async fn must_create(
    store: &dyn EphemeralStore,
    key: &str,
    value: &[u8],
    ttl: Duration,
) -> Version {
    match store.create(key, value, ttl).await.expect("create") {
        CasOutcome::Applied(v) => v,
        CasOutcome::Conflict => panic!("create of a fresh key conflicted"),
    }
}

const MINUTE: Duration = Duration::from_secs(60);

/// `create` writes only when the key is absent, and `load` returns what it wrote.
pub async fn create_if_absent(h: &dyn Harness) {
    let store = h.store();
    let key = fresh_key("create");
    let v1 = must_create(&*store, &key, b"first", MINUTE).await;
    assert_eq!(
        store.create(&key, b"second", MINUTE).await.unwrap(),
        CasOutcome::Conflict
    );
    let got = store.load(&key).await.unwrap().expect("value present");
    assert_eq!(got.value, b"first");
    assert_eq!(got.version, v1);
}

/// An absent key loads as `None`.
pub async fn load_of_missing_key_is_none(h: &dyn Harness) {
    assert!(
        h.store()
            .load(&fresh_key("missing"))
            .await
            .unwrap()
            .is_none()
    );
}

/// `replace` succeeds with the current version, changes the version, and fails with a stale
/// one without changing the value.
pub async fn replace_needs_the_current_version(h: &dyn Harness) {
    let store = h.store();
    let key = fresh_key("replace");
    let v1 = must_create(&*store, &key, b"one", MINUTE).await;
    let CasOutcome::Applied(v2) = store.replace(&key, v1, b"two").await.unwrap() else {
        panic!("replace with the current version conflicted");
    };
    assert_ne!(v1, v2, "a write must change the version");
    assert_eq!(
        store.replace(&key, v1, b"three").await.unwrap(),
        CasOutcome::Conflict
    );
    let got = store.load(&key).await.unwrap().unwrap();
    assert_eq!((got.value.as_slice(), got.version), (&b"two"[..], v2));
}

/// `replace` of an absent key conflicts and creates nothing.
pub async fn replace_of_missing_key_conflicts(h: &dyn Harness) {
    let store = h.store();
    let key = fresh_key("replace-missing");
    assert_eq!(
        store.replace(&key, Version(1), b"x").await.unwrap(),
        CasOutcome::Conflict
    );
    assert_eq!(
        store.replace(&key, Version(0), b"x").await.unwrap(),
        CasOutcome::Conflict
    );
    assert!(store.load(&key).await.unwrap().is_none());
}

/// `replace` keeps the entry's remaining TTL rather than starting a new one.
pub async fn replace_keeps_the_ttl(h: &dyn Harness) {
    let store = h.store();
    let key = fresh_key("replace-ttl");
    let v1 = must_create(&*store, &key, b"one", Duration::from_millis(2_000)).await;
    h.advance(Duration::from_millis(1_000)).await;
    let CasOutcome::Applied(_) = store.replace(&key, v1, b"two").await.unwrap() else {
        panic!("replace conflicted");
    };
    h.advance(Duration::from_millis(1_300)).await;
    assert!(
        store.load(&key).await.unwrap().is_none(),
        "replace must not extend the TTL"
    );
}

/// `delete` needs the current version; a deleted key is absent and can be created again.
pub async fn delete_needs_the_current_version(h: &dyn Harness) {
    let store = h.store();
    let key = fresh_key("delete");
    let v1 = must_create(&*store, &key, b"one", MINUTE).await;
    let CasOutcome::Applied(v2) = store.replace(&key, v1, b"two").await.unwrap() else {
        panic!()
    };
    assert_eq!(store.delete(&key, v1).await.unwrap(), CasOutcome::Conflict);
    assert!(store.load(&key).await.unwrap().is_some());
    assert_eq!(
        store.delete(&key, v2).await.unwrap(),
        CasOutcome::Applied(v2)
    );
    assert!(store.load(&key).await.unwrap().is_none());
    assert_eq!(store.delete(&key, v2).await.unwrap(), CasOutcome::Conflict);
    must_create(&*store, &key, b"again", MINUTE).await;
}

/// After its TTL an entry is absent for every method, and the key can be created again.
pub async fn entries_expire_after_their_ttl(h: &dyn Harness) {
    let store = h.store();
    let key = fresh_key("ttl");
    let v1 = must_create(&*store, &key, b"short", Duration::from_millis(1_000)).await;
    assert!(store.load(&key).await.unwrap().is_some());
    h.advance(Duration::from_millis(1_300)).await;
    assert!(store.load(&key).await.unwrap().is_none());
    assert_eq!(
        store.replace(&key, v1, b"x").await.unwrap(),
        CasOutcome::Conflict
    );
    assert_eq!(store.delete(&key, v1).await.unwrap(), CasOutcome::Conflict);
    must_create(&*store, &key, b"again", MINUTE).await;
}

/// Writes to one key never touch another.
pub async fn keys_are_independent(h: &dyn Harness) {
    let store = h.store();
    let (a, b) = (fresh_key("a"), fresh_key("b"));
    let va = must_create(&*store, &a, b"A", MINUTE).await;
    must_create(&*store, &b, b"B", MINUTE).await;
    let CasOutcome::Applied(_) = store.replace(&a, va, b"A2").await.unwrap() else {
        panic!()
    };
    assert_eq!(store.load(&b).await.unwrap().unwrap().value, b"B");
    assert_eq!(store.load(&a).await.unwrap().unwrap().value, b"A2");
}

/// Values are bytes: every byte value and a 512 KiB value come back unchanged.
pub async fn binary_values_round_trip(h: &dyn Harness) {
    let store = h.store();
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let big: Vec<u8> = (0..512 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    for value in [all_bytes, big, Vec::new()] {
        let key = fresh_key("bytes");
        must_create(&*store, &key, &value, MINUTE).await;
        assert_eq!(store.load(&key).await.unwrap().unwrap().value, value);
    }
}

/// 32 concurrent creates of one key: exactly one wins.
pub async fn concurrent_creates_have_one_winner(h: &dyn Harness) {
    let store = h.store();
    let key = Arc::new(fresh_key("race-create"));
    let tasks: Vec<_> = (0..32u8)
        .map(|i| {
            let (store, key) = (Arc::clone(&store), Arc::clone(&key));
            tokio::spawn(async move { store.create(&key, &[i], MINUTE).await.unwrap() })
        })
        .collect();
    let outcomes = futures::future::join_all(tasks).await;
    let wins = outcomes
        .iter()
        .filter(|o| matches!(o.as_ref().unwrap(), CasOutcome::Applied(_)))
        .count();
    assert_eq!(wins, 1);
}

/// 32 concurrent replaces from the same version: exactly one wins, and its value is stored.
pub async fn concurrent_replaces_have_one_winner(h: &dyn Harness) {
    let store = h.store();
    let key = Arc::new(fresh_key("race-replace"));
    let v1 = must_create(&*store, &key, b"start", MINUTE).await;
    let tasks: Vec<_> = (0..32u8)
        .map(|i| {
            let (store, key) = (Arc::clone(&store), Arc::clone(&key));
            tokio::spawn(async move { (i, store.replace(&key, v1, &[i]).await.unwrap()) })
        })
        .collect();
    let outcomes: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<_> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, CasOutcome::Applied(_)))
        .collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(
        store.load(&key).await.unwrap().unwrap().value,
        [winners[0].0]
    );
}

/// 16 tasks each add 1 ten times with load/replace loops: the count ends at 160.
pub async fn concurrent_increments_lose_no_update(h: &dyn Harness) {
    let store = h.store();
    let key = Arc::new(fresh_key("counter"));
    must_create(&*store, &key, &0u64.to_be_bytes(), MINUTE).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, key) = (Arc::clone(&store), Arc::clone(&key));
            tokio::spawn(async move {
                for _ in 0..10 {
                    loop {
                        let cur = store.load(&key).await.unwrap().unwrap();
                        let n = u64::from_be_bytes(cur.value.as_slice().try_into().unwrap());
                        if let CasOutcome::Applied(_) = store
                            .replace(&key, cur.version, &(n + 1).to_be_bytes())
                            .await
                            .unwrap()
                        {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        t.unwrap();
    }
    let end = store.load(&key).await.unwrap().unwrap().value;
    assert_eq!(u64::from_be_bytes(end.as_slice().try_into().unwrap()), 160);
}

/// `ping` answers on a healthy store.
pub async fn ping_answers(h: &dyn Harness) {
    h.store().ping().await.unwrap();
}
