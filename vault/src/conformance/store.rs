//! The [`EphemeralStore`] contract.

use std::sync::Arc;
use std::time::Duration;

use super::Harness;
use crate::store::{CasOutcome, Claim, EphemeralStore, MAX_CLAIMS, Version};

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
    match store
        .create(key, Version::random(), value, ttl)
        .await
        .expect("create")
    {
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
        store
            .create(&key, Version::random(), b"second", MINUTE)
            .await
            .unwrap(),
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
    let CasOutcome::Applied(v2) = store
        .replace(&key, v1, Version::random(), b"two")
        .await
        .unwrap()
    else {
        panic!("replace with the current version conflicted");
    };
    assert_ne!(v1, v2, "a write must change the version");
    assert_eq!(
        store
            .replace(&key, v1, Version::random(), b"three")
            .await
            .unwrap(),
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
        store
            .replace(&key, Version(1), Version::random(), b"x")
            .await
            .unwrap(),
        CasOutcome::Conflict
    );
    assert_eq!(
        store
            .replace(&key, Version(0), Version::random(), b"x")
            .await
            .unwrap(),
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
    let CasOutcome::Applied(_) = store
        .replace(&key, v1, Version::random(), b"two")
        .await
        .unwrap()
    else {
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
    let CasOutcome::Applied(v2) = store
        .replace(&key, v1, Version::random(), b"two")
        .await
        .unwrap()
    else {
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
        store
            .replace(&key, v1, Version::random(), b"x")
            .await
            .unwrap(),
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
    let CasOutcome::Applied(_) = store
        .replace(&a, va, Version::random(), b"A2")
        .await
        .unwrap()
    else {
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
            tokio::spawn(async move {
                store
                    .create(&key, Version::random(), &[i], MINUTE)
                    .await
                    .unwrap()
            })
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
            tokio::spawn(async move {
                (
                    i,
                    store
                        .replace(&key, v1, Version::random(), &[i])
                        .await
                        .unwrap(),
                )
            })
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
                            .replace(&key, cur.version, Version::random(), &(n + 1).to_be_bytes())
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

/// A repeated `create` with the same version (a retry after a lost reply) answers
/// `Applied` and changes nothing; another version conflicts.
pub async fn repeated_create_is_applied_once(h: &dyn Harness) {
    let store = h.store();
    let key = fresh_key("create-again");
    let v1 = Version::random();
    for _ in 0..2 {
        assert_eq!(
            store.create(&key, v1, b"first", MINUTE).await.unwrap(),
            CasOutcome::Applied(v1)
        );
    }
    assert_eq!(
        store
            .create(&key, Version::random(), b"first", MINUTE)
            .await
            .unwrap(),
        CasOutcome::Conflict
    );
    let got = store.load(&key).await.unwrap().unwrap();
    assert_eq!((got.value.as_slice(), got.version), (&b"first"[..], v1));
}

/// A repeated `replace` with the same new version answers `Applied` even though the
/// expected version is gone, and changes nothing; once another write follows, the repeat
/// conflicts and writes nothing.
pub async fn repeated_replace_is_applied_once(h: &dyn Harness) {
    let store = h.store();
    let key = fresh_key("replace-again");
    let v1 = must_create(&*store, &key, b"one", MINUTE).await;
    let v2 = Version::random();
    for _ in 0..2 {
        assert_eq!(
            store.replace(&key, v1, v2, b"two").await.unwrap(),
            CasOutcome::Applied(v2)
        );
    }
    let v3 = Version::random();
    assert_eq!(
        store.replace(&key, v2, v3, b"three").await.unwrap(),
        CasOutcome::Applied(v3)
    );
    assert_eq!(
        store.replace(&key, v1, v2, b"two").await.unwrap(),
        CasOutcome::Conflict
    );
    let got = store.load(&key).await.unwrap().unwrap();
    assert_eq!((got.value.as_slice(), got.version), (&b"three"[..], v3));
}

/// `claim` reads the entry and appends claims up to the limit, in order, keeping value,
/// version and TTL; a repeated claim keeps its place; a full entry answers no place; an
/// absent key answers `None`.
pub async fn claims_are_counted_up_to_the_limit(h: &dyn Harness) {
    let store = h.store();
    let key = fresh_key("claims");
    assert!(
        store
            .claim(
                &key,
                Claim {
                    id: 1,
                    at_millis: 1
                },
                3,
                b""
            )
            .await
            .unwrap()
            .is_none()
    );
    let v1 = must_create(&*store, &key, b"value", Duration::from_millis(2_000)).await;
    let claims: Vec<Claim> = (0..4)
        .map(|i| Claim {
            id: Version::random().0,
            at_millis: 1_000 + i,
        })
        .collect();
    for (i, claim) in claims.iter().enumerate() {
        let got = store.claim(&key, *claim, 3, b"").await.unwrap().unwrap();
        assert_eq!(got.entry.value, b"value");
        assert_eq!(got.entry.version, v1, "a claim must not change the version");
        if i < 3 {
            assert_eq!(got.slot, Some(i as u8 + 1));
            assert_eq!(got.entry.claims, claims[..=i]);
        } else {
            assert_eq!(got.slot, None, "the limit is 3");
            assert_eq!(got.entry.claims, claims[..3]);
        }
    }
    let again = store.claim(&key, claims[1], 3, b"").await.unwrap().unwrap();
    assert_eq!(again.slot, Some(2), "a repeated claim keeps its place");
    assert_eq!(again.entry.claims.len(), 3);
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.claims, claims[..3]);
    h.advance(Duration::from_millis(2_300)).await;
    assert!(
        store
            .claim(&key, claims[3], 3, b"")
            .await
            .unwrap()
            .is_none(),
        "a claim must not extend the TTL"
    );
}

/// `replace` keeps the claims; a limit past [`MAX_CLAIMS`] holds [`MAX_CLAIMS`].
pub async fn replace_keeps_claims(h: &dyn Harness) {
    let store = h.store();
    let key = fresh_key("claims-replace");
    let v1 = must_create(&*store, &key, b"one", MINUTE).await;
    for i in 0..u64::from(MAX_CLAIMS) + 2 {
        let got = store
            .claim(
                &key,
                Claim {
                    id: i,
                    at_millis: 0,
                },
                u8::MAX,
                b"",
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.slot.is_some(), i < u64::from(MAX_CLAIMS));
    }
    let v2 = Version::random();
    assert_eq!(
        store.replace(&key, v1, v2, b"two").await.unwrap(),
        CasOutcome::Applied(v2)
    );
    let got = store.load(&key).await.unwrap().unwrap();
    assert_eq!(got.value, b"two");
    assert_eq!(got.claims.len(), usize::from(MAX_CLAIMS));
    assert!(got.claims.iter().enumerate().all(|(i, c)| c.id == i as u64));
    let claimed = store
        .claim(
            &key,
            Claim {
                id: 99,
                at_millis: 0,
            },
            u8::MAX,
            b"",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        claimed.slot, None,
        "the claims are still there: the entry is full"
    );
}

/// `release` gives back the latest claim only: an earlier one stays in place; a released or
/// unknown claim, or a missing key, answers `true`.
pub async fn release_gives_back_the_latest_claim_only(h: &dyn Harness) {
    let store = h.store();
    let key = fresh_key("claims-release");
    assert!(
        store.release(&key, 1).await.unwrap(),
        "a missing key holds no claim"
    );
    let v1 = must_create(&*store, &key, b"value", MINUTE).await;
    for id in [1, 2] {
        let claim = Claim { id, at_millis: 0 };
        store.claim(&key, claim, 5, b"").await.unwrap().unwrap();
    }
    assert!(
        !store.release(&key, 1).await.unwrap(),
        "claim 2 follows claim 1"
    );
    assert!(store.release(&key, 2).await.unwrap());
    assert!(store.release(&key, 2).await.unwrap(), "a repeated release");
    assert!(store.release(&key, 9).await.unwrap(), "an unknown claim");
    let got = store.load(&key).await.unwrap().unwrap();
    assert_eq!((got.version, got.value.as_slice()), (v1, &b"value"[..]));
    assert_eq!(
        got.claims,
        [Claim {
            id: 1,
            at_millis: 0
        }]
    );
    let again = store
        .claim(
            &key,
            Claim {
                id: 3,
                at_millis: 0,
            },
            5,
            b"",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.slot, Some(2), "the place given back is given again");
}

/// A claim is taken only on a value that starts with the given prefix; otherwise the entry
/// is read and nothing is taken.
pub async fn claims_need_the_prefix(h: &dyn Harness) {
    let store = h.store();
    let key = fresh_key("claims-prefix");
    must_create(&*store, &key, b"submitted:t1", MINUTE).await;
    for prefix in [&b"submitted:t2"[..], b"pending", b"submitted:t1-and-more"] {
        let got = store
            .claim(
                &key,
                Claim {
                    id: 7,
                    at_millis: 0,
                },
                5,
                prefix,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.slot, got.entry.value.as_slice()),
            (None, &b"submitted:t1"[..])
        );
        assert!(got.entry.claims.is_empty());
    }
    let got = store
        .claim(
            &key,
            Claim {
                id: 7,
                at_millis: 0,
            },
            5,
            b"submitted:t1",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.slot, Some(1));
}

/// 40 concurrent claims with a limit of 10: exactly ten places, each given once.
pub async fn concurrent_claims_take_each_place_once(h: &dyn Harness) {
    let store = h.store();
    let key = Arc::new(fresh_key("race-claim"));
    must_create(&*store, &key, b"value", MINUTE).await;
    let tasks: Vec<_> = (0..40u64)
        .map(|i| {
            let (store, key) = (Arc::clone(&store), Arc::clone(&key));
            tokio::spawn(async move {
                store
                    .claim(
                        &key,
                        Claim {
                            id: i,
                            at_millis: 0,
                        },
                        10,
                        b"",
                    )
                    .await
                    .unwrap()
                    .unwrap()
                    .slot
            })
        })
        .collect();
    let mut slots: Vec<u8> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter_map(Result::unwrap)
        .collect();
    slots.sort_unstable();
    assert_eq!(slots, (1..=10).collect::<Vec<u8>>());
}

/// `ping` answers on a healthy store.
pub async fn ping_answers(h: &dyn Harness) {
    h.store().ping().await.unwrap();
}
