//! Someone who can read and write the store (a Redis user, a backup, a compromised
//! replica) against the real `Vault` on the memory store.
//!
//! The conformance suite already proves, for a submitted record through `status` and
//! `reveal`: one bit flipped in each byte, a few truncations and extensions, a sealed field
//! moved between sessions or fields (re-authenticated with crate internals), a record moved
//! between two sessions of one tenant, a record retagged to another tenant, and an unknown
//! key id in the keyring (`conformance::integrity::*`, `conformance::errors::*`). This suite
//! widens that to records of every state, through every operation, with the whole store
//! compared byte for byte before and after each call, and to what an attacker can do
//! without any key: recompute the unkeyed checksum, rewrite the key id, swap records across
//! states and tenants, write an expired record back, or replay an older one.

#![cfg(feature = "conformance")]
#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

mod support;

use std::sync::Arc;
use std::time::Duration;

use pci_vault::conformance::{TEST_KEK, amex_form, vault_on, visa_form};
use pci_vault::{
    CasOutcome, EphemeralStore, ErrorCode, KeyEncryptionKey, KeyId, Keyring, Pin, SessionId,
    SessionOptions, SessionState, Tenant, Vault,
};
use support::{CHECKSUM_LEN, Fixture, fix_checksum};

/// A session, the key of its record and its PIN (a dummy one before submission).
struct Session {
    id: SessionId,
    key: String,
    pin: Pin,
    tenant: Tenant,
    state: SessionState,
}

async fn session_in(fx: &Fixture, vault: &Vault, state: SessionState) -> Session {
    let (id, key) = fx.session(vault, &SessionOptions::default()).await;
    let mut pin = Pin::parse("000000").unwrap();
    if state != SessionState::Pending && state != SessionState::Cancelled {
        pin = vault.submit(&id, &visa_form()).await.unwrap().pin;
    }
    match state {
        SessionState::Revealed => drop(vault.reveal(&id, &pin).await.unwrap()),
        SessionState::Cancelled => vault.cancel(&id).await.unwrap(),
        SessionState::Locked => {
            for _ in 0..5 {
                let _ = vault.reveal(&id, &Pin::parse("99999").unwrap()).await;
            }
        }
        _ => {}
    }
    assert_eq!(vault.status(&id).await.unwrap().state, state);
    Session {
        id,
        key,
        pin,
        tenant: vault.tenant().clone(),
        state,
    }
}

/// Calls every operation on `s` and returns their error codes (status, submit, reveal with
/// the right PIN, cancel); panics if one succeeds or if any call changed the store.
async fn every_operation_fails(fx: &Fixture, vault: &Vault, s: &Session) -> [ErrorCode; 4] {
    let before = fx.snapshot();
    let agent = vault.for_tenant(s.tenant.clone());
    let results = [
        agent.status(&s.id).await.map(|_| ()),
        agent.submit(&s.id, &amex_form()).await.map(|_| ()),
        agent.reveal(&s.id, &s.pin).await.map(|_| ()),
        agent.cancel(&s.id).await,
    ];
    assert_eq!(fx.snapshot(), before, "a call on an altered record wrote");
    results.map(|r| r.expect_err("an altered record was used").code())
}

async fn all_states(fx: &Fixture, vault: &Vault) -> Vec<Session> {
    let mut sessions = Vec::new();
    for state in [
        SessionState::Pending,
        SessionState::Submitted,
        SessionState::Revealed,
        SessionState::Cancelled,
        SessionState::Locked,
    ] {
        sessions.push(session_in(fx, vault, state).await);
    }
    sessions
}

#[tokio::test]
async fn every_byte_flipped_in_every_state_fails_every_operation() {
    let fx = Fixture::new();
    let (vault, _) = fx.vault();
    for s in all_states(&fx, &vault).await {
        let original = fx.raw(&s.key).await;
        for i in 0..original.len() {
            for mask in [0x01u8 << (i % 8), 0xFF] {
                let mut bytes = original.clone();
                bytes[i] ^= mask;
                fx.overwrite(&s.key, &bytes).await;
                let codes = every_operation_fails(&fx, &vault, &s).await;
                assert_eq!(
                    codes,
                    [ErrorCode::IntegrityError; 4],
                    "{} record, byte {i}",
                    s.state
                );
            }
        }
        // Put back, the record is as it was: nothing was counted or lost.
        fx.overwrite(&s.key, &original).await;
        let status = vault.status(&s.id).await.unwrap();
        assert_eq!(status.state, s.state);
    }
}

#[tokio::test]
async fn every_truncation_and_extension_fails_every_operation() {
    let fx = Fixture::new();
    let (vault, _) = fx.vault();
    let sessions = [
        session_in(&fx, &vault, SessionState::Pending).await,
        session_in(&fx, &vault, SessionState::Submitted).await,
    ];
    for s in &sessions {
        let original = fx.raw(&s.key).await;
        let n = original.len();
        let mut cases: Vec<Vec<u8>> = (0..n).map(|len| original[..len].to_vec()).collect();
        for extra in 1..=64 {
            cases.push([original.as_slice(), &vec![0u8; extra]].concat());
            cases.push([original.as_slice(), &original[..extra]].concat());
        }
        cases.push(original.repeat(2));
        // The same again with the checksum recomputed, as an attacker can.
        let fixed: Vec<Vec<u8>> = cases
            .iter()
            .filter(|c| c.len() >= CHECKSUM_LEN)
            .map(|c| {
                let mut c = c.clone();
                fix_checksum(&mut c);
                c
            })
            .collect();
        for bytes in cases.into_iter().chain(fixed) {
            if bytes == original {
                continue;
            }
            fx.overwrite(&s.key, &bytes).await;
            let codes = every_operation_fails(&fx, &vault, s).await;
            assert_eq!(
                codes,
                [ErrorCode::IntegrityError; 4],
                "{} record cut or extended to {} bytes",
                s.state,
                bytes.len()
            );
        }
        fx.overwrite(&s.key, &original).await;
    }
    assert!(
        vault
            .reveal(&sessions[1].id, &sessions[1].pin)
            .await
            .is_ok()
    );
}

/// Every byte of a submitted record changed and the unkeyed checksum recomputed: the
/// record tag refuses the change, except where an earlier check answers first. A changed
/// tenant makes agent-side calls answer `NOT_FOUND` (the tenant is compared before the tag
/// is checked, see docs/SECURITY.md) and a changed key id `KEY_UNAVAILABLE`; neither opens
/// anything or writes.
#[tokio::test]
async fn edits_behind_a_recomputed_checksum_never_open() {
    let fx = Fixture::new();
    let (vault, _) = fx.vault();
    let s = session_in(&fx, &vault, SessionState::Submitted).await;
    let original = fx.raw(&s.key).await;
    let tenant = 6..6 + usize::from(original[5]);
    assert_eq!(&original[tenant.clone()], b"default");
    let at = original
        .windows(14)
        .position(|w| w == b"conformance-k1")
        .unwrap();
    let key_id = at..at + 14;
    let mut seen = std::collections::HashSet::new();
    for i in 0..original.len() - CHECKSUM_LEN {
        for mask in [0x01u8, 0x20, 0xFF] {
            let mut bytes = original.clone();
            bytes[i] ^= mask;
            fix_checksum(&mut bytes);
            fx.overwrite(&s.key, &bytes).await;
            let [status, submit, reveal, cancel] = every_operation_fails(&fx, &vault, &s).await;
            assert_eq!(status, reveal, "byte {i}");
            assert_eq!(status, cancel, "byte {i}");
            seen.insert(status);
            let allowed: &[ErrorCode] = if tenant.contains(&i) {
                &[ErrorCode::NotFound, ErrorCode::IntegrityError]
            } else if key_id.contains(&i) {
                &[ErrorCode::KeyUnavailable, ErrorCode::IntegrityError]
            } else {
                &[ErrorCode::IntegrityError]
            };
            assert!(allowed.contains(&status), "byte {i}: {status}");
            let customer = if status == ErrorCode::NotFound {
                ErrorCode::IntegrityError
            } else {
                status
            };
            assert_eq!(submit, customer, "byte {i}");
        }
    }
    assert!(seen.contains(&ErrorCode::NotFound) && seen.contains(&ErrorCode::KeyUnavailable));
    fx.overwrite(&s.key, &original).await;
    assert!(vault.reveal(&s.id, &s.pin).await.is_ok());
}

#[tokio::test]
async fn key_id_rewritten_to_an_unknown_or_another_key_never_opens() {
    let fx = Fixture::new();
    let k1 = KeyId::new("conformance-k1").unwrap();
    let k2 = KeyId::new("conformance-k2").unwrap();
    let rotated = Keyring::new(
        k1.clone(),
        [
            (k1, KeyEncryptionKey::from_bytes(&TEST_KEK).unwrap()),
            (k2, KeyEncryptionKey::generate()),
        ],
    )
    .unwrap();
    let (vault, _) = vault_on(fx.store.clone(), &fx, Arc::new(rotated));
    let s = session_in(&fx, &vault, SessionState::Submitted).await;
    let original = fx.raw(&s.key).await;
    let at = original
        .windows(14)
        .position(|w| w == b"conformance-k1")
        .unwrap();
    for (id, want) in [
        (b"conformance-k9", ErrorCode::KeyUnavailable),
        (b"conformance-k2", ErrorCode::IntegrityError),
    ] {
        let mut bytes = original.clone();
        bytes[at..at + 14].copy_from_slice(id);
        fix_checksum(&mut bytes);
        fx.overwrite(&s.key, &bytes).await;
        let codes = every_operation_fails(&fx, &vault, &s).await;
        assert_eq!(codes, [want; 4], "key id {}", String::from_utf8_lossy(id));
    }
    fx.overwrite(&s.key, &original).await;
    assert!(vault.reveal(&s.id, &s.pin).await.is_ok());
}

#[tokio::test]
async fn records_moved_between_sessions_states_and_tenants_never_open() {
    let fx = Fixture::new();
    let (vault, _) = fx.vault();
    let acme = vault.for_tenant(Tenant::new("acme").unwrap());
    let mut sessions = all_states(&fx, &vault).await;
    sessions.push(session_in(&fx, &acme, SessionState::Pending).await);
    sessions.push(session_in(&fx, &acme, SessionState::Submitted).await);
    let records: Vec<Vec<u8>> = {
        let mut out = Vec::new();
        for s in &sessions {
            out.push(fx.raw(&s.key).await);
        }
        out
    };
    for (y, target) in sessions.iter().enumerate() {
        for (x, donor) in sessions.iter().enumerate().filter(|&(x, _)| x != y) {
            fx.overwrite(&target.key, &records[x]).await;
            let [status, submit, reveal, cancel] = every_operation_fails(&fx, &vault, target).await;
            let agent = if donor.tenant == target.tenant {
                ErrorCode::IntegrityError
            } else {
                ErrorCode::NotFound
            };
            assert_eq!(
                [status, submit, reveal, cancel],
                [agent, ErrorCode::IntegrityError, agent, agent],
                "{} record of {} under a {} session of {}",
                donor.state,
                donor.tenant,
                target.state,
                target.tenant
            );
        }
        fx.overwrite(&target.key, &records[y]).await;
    }
    // Every session is intact afterwards.
    for s in &sessions {
        let agent = vault.for_tenant(s.tenant.clone());
        assert_eq!(agent.status(&s.id).await.unwrap().state, s.state);
    }
}

/// A record saved before its session expired and written back afterwards, with a fresh
/// TTL, is still expired: the record carries its own `expires_at`, under the tag.
#[tokio::test]
async fn an_expired_record_written_back_is_not_found() {
    let fx = Fixture::new();
    let (vault, _) = fx.vault();
    let short = SessionOptions::default().with_ttl(Duration::from_secs(60));
    let (id, key) = fx.session(&vault, &short).await;
    let pin = vault.submit(&id, &visa_form()).await.unwrap().pin;
    let saved = fx.raw(&key).await;
    fx.clock.advance(Duration::from_secs(61));
    assert!(fx.store.load(&key).await.unwrap().is_none());
    assert!(matches!(
        fx.store
            .create(
                &key,
                pci_vault::Version::random(),
                &saved,
                Duration::from_secs(3600)
            )
            .await
            .unwrap(),
        CasOutcome::Applied(_)
    ));
    let s = Session {
        id,
        key,
        pin,
        tenant: Tenant::default(),
        state: SessionState::Submitted,
    };
    let codes = every_operation_fails(&fx, &vault, &s).await;
    assert_eq!(codes, [ErrorCode::NotFound; 4]);
}

/// RESIDUAL RISK, pinned down so that it stays documented: a store writer who saved an
/// earlier, authentic record of the same session can write it back within the TTL. That
/// gives back the attempts taken by wrong PINs (and, after a reveal, the sealed data, to
/// whoever also has the PIN). Every record is authentic on its own; telling an old one from
/// the current one needs state the store cannot forge (docs/SECURITY.md, "Residual risks").
/// If the vault learns to detect rollback, this test fails: update the threat model then.
#[tokio::test]
async fn rollback_by_a_store_writer_is_a_residual_risk() {
    let fx = Fixture::new();
    let (vault, _) = fx.vault();
    let s = session_in(&fx, &vault, SessionState::Submitted).await;
    let saved = fx.raw(&s.key).await;
    for _ in 0..3 {
        let _ = vault.reveal(&s.id, &Pin::parse("99999").unwrap()).await;
    }
    assert_eq!(vault.status(&s.id).await.unwrap().attempts_left, 2);
    // The attempts are claims beside the record: writing the record back keeps them...
    fx.overwrite(&s.key, &saved).await;
    assert_eq!(vault.status(&s.id).await.unwrap().attempts_left, 2);
    // ...but a store writer can also write the whole entry anew, without them.
    fx.rewrite(&s.key, &saved).await;
    assert_eq!(vault.status(&s.id).await.unwrap().attempts_left, 5);
    assert!(vault.reveal(&s.id, &s.pin).await.is_ok());
    fx.rewrite(&s.key, &saved).await;
    assert!(vault.reveal(&s.id, &s.pin).await.is_ok());
}
