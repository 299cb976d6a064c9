//! Every error code the library produces is reachable, with the right code.

use std::time::Duration;

use super::flow::wrong_pin;
use super::{Harness, vault, vault_on, visa_form};
use crate::error::{Error, ErrorCode};
use crate::form::FormInput;
use crate::pin::Pin;
use crate::session::{SessionId, SessionOptions};

fn check(seen: &mut std::collections::HashSet<ErrorCode>, what: &str, got: Error, want: ErrorCode) {
    assert_eq!(got.code(), want, "{what}: {got:?}");
    seen.insert(want);
}

/// Drives the vault into each error and checks its code (and extra data). The store-level
/// codes (`CAPACITY_EXCEEDED`, `STORE_UNAVAILABLE`) are checked through the harness's
/// bounded and unreachable stores when the backend has them.
pub async fn every_error_code_is_reachable(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let mut seen = std::collections::HashSet::new();
    let unknown = SessionId::generate();
    check(
        &mut seen,
        "unknown id",
        vault.status(&unknown).await.unwrap_err(),
        ErrorCode::NotFound,
    );
    check(
        &mut seen,
        "malformed id",
        SessionId::parse("not-an-id").unwrap_err(),
        ErrorCode::InvalidArgument,
    );
    check(
        &mut seen,
        "malformed PIN",
        Pin::parse("12ab").unwrap_err(),
        ErrorCode::InvalidArgument,
    );
    let bad_ttl = SessionOptions {
        ttl: Duration::from_secs(90_000),
        ..SessionOptions::default()
    };
    check(
        &mut seen,
        "ttl out of range",
        vault.create_session(&bad_ttl).await.unwrap_err(),
        ErrorCode::InvalidArgument,
    );

    let t = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    check(
        &mut seen,
        "reveal before submit",
        vault
            .reveal(&t.id, &Pin::parse("000000").unwrap())
            .await
            .unwrap_err(),
        ErrorCode::NotSubmitted,
    );
    let bad = FormInput::new()
        .with("card_number", "4242424242424241")
        .with("expiry", "12/39")
        .with("cvc", "123")
        .with("cardholder_name", "A");
    match vault.submit(&t.id, &bad).await.unwrap_err() {
        Error::ValidationFailed { fields } => {
            assert_eq!(fields.len(), 1);
            assert_eq!(
                (fields[0].field.as_str(), fields[0].reason.as_str()),
                ("card_number", "luhn")
            );
            seen.insert(ErrorCode::ValidationFailed);
        }
        other => panic!("expected VALIDATION_FAILED, got {other:?}"),
    }
    check(
        &mut seen,
        "unknown field",
        vault
            .submit(&t.id, &visa_form().with("iban", "x"))
            .await
            .unwrap_err(),
        ErrorCode::InvalidArgument,
    );
    let receipt = vault.submit(&t.id, &visa_form()).await.unwrap();
    check(
        &mut seen,
        "second submit",
        vault.submit(&t.id, &visa_form()).await.unwrap_err(),
        ErrorCode::AlreadySubmitted,
    );
    match vault
        .reveal(&t.id, &wrong_pin(&receipt.pin))
        .await
        .unwrap_err()
    {
        Error::WrongPin { attempts_left } => {
            assert_eq!(attempts_left, 4);
            seen.insert(ErrorCode::WrongPin);
        }
        other => panic!("expected WRONG_PIN, got {other:?}"),
    }
    vault.reveal(&t.id, &receipt.pin).await.unwrap();
    check(
        &mut seen,
        "second reveal",
        vault.reveal(&t.id, &receipt.pin).await.unwrap_err(),
        ErrorCode::AlreadyRevealed,
    );

    let c = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    vault.cancel(&c.id).await.unwrap();
    check(
        &mut seen,
        "submit after cancel",
        vault.submit(&c.id, &visa_form()).await.unwrap_err(),
        ErrorCode::Cancelled,
    );

    let l = vault
        .create_session(&SessionOptions {
            max_attempts: 1,
            ..SessionOptions::default()
        })
        .await
        .unwrap();
    let lr = vault.submit(&l.id, &visa_form()).await.unwrap();
    check(
        &mut seen,
        "last wrong PIN",
        vault.reveal(&l.id, &wrong_pin(&lr.pin)).await.unwrap_err(),
        ErrorCode::Locked,
    );

    let (stranger, _) = vault_on(h.store(), h, h.renamed_keys());
    check(
        &mut seen,
        "unknown key id",
        stranger.status(&c.id).await.unwrap_err(),
        ErrorCode::KeyUnavailable,
    );

    let i = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let key = crate::vault::ops::key_for(&i.id);
    let store = h.store();
    let cur = store.load(&key).await.unwrap().unwrap();
    let mut bytes = cur.value.clone();
    bytes[10] ^= 0x40;
    let _ = store
        .replace(&key, cur.version, crate::Version::random(), &bytes)
        .await
        .unwrap();
    check(
        &mut seen,
        "altered record",
        vault.status(&i.id).await.unwrap_err(),
        ErrorCode::IntegrityError,
    );

    if let Some(bounded) = h.bounded_store().await {
        let (small, _) = vault_on(bounded, h, h.keys());
        let mut result = Ok(());
        for _ in 0..10_000 {
            if let Err(e) = small.create_session(&SessionOptions::default()).await {
                result = Err(e);
                break;
            }
        }
        check(
            &mut seen,
            "full store",
            result.unwrap_err(),
            ErrorCode::CapacityExceeded,
        );
    }
    if let Some(down) = h.unreachable_store().await {
        let (unreachable, _) = vault_on(down, h, h.keys());
        check(
            &mut seen,
            "store down",
            unreachable
                .create_session(&SessionOptions::default())
                .await
                .unwrap_err(),
            ErrorCode::StoreUnavailable,
        );
        check(
            &mut seen,
            "store down",
            unreachable.status(&t.id).await.unwrap_err(),
            ErrorCode::StoreUnavailable,
        );
    }

    let library_codes = ErrorCode::ALL.len();
    let store_codes = usize::from(h.bounded_store().await.is_none())
        + usize::from(h.unreachable_store().await.is_none());
    assert_eq!(
        seen.len() + store_codes,
        library_codes,
        "codes reached: {seen:?}"
    );
}

/// A full store refuses new sessions, yet still finishes the ones it holds: a wrong PIN is
/// counted, the right one reveals, a pending session cancels. Otherwise a full store would
/// strand every card already submitted until it expired.
pub async fn a_full_store_finishes_its_sessions(h: &dyn Harness) {
    let Some(bounded) = h.bounded_store().await else {
        return; // a backend without a bounded store tests this in its own suite
    };
    let (vault, _) = vault_on(bounded, h, h.keys());
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = vault.submit(&ticket.id, &visa_form()).await.unwrap();
    let pending = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let mut refused = None;
    for _ in 0..10_000 {
        if let Err(e) = vault.create_session(&SessionOptions::default()).await {
            refused = Some(e);
            break;
        }
    }
    let refused = refused.expect("the store never filled up");
    assert_eq!(refused.code(), ErrorCode::CapacityExceeded, "{refused:?}");

    let err = vault
        .reveal(&ticket.id, &wrong_pin(&receipt.pin))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::WrongPin, "{err:?}");
    let form = vault.reveal(&ticket.id, &receipt.pin).await.unwrap();
    assert_eq!(form.card().unwrap().masked_number, "424242******4242");
    vault.cancel(&pending.id).await.unwrap();
    assert_eq!(
        vault.status(&pending.id).await.unwrap().state,
        crate::session::SessionState::Cancelled
    );
}

/// A record sealed before a key rotation still reveals after it, through a vault whose
/// keyring has a new primary and keeps the old key for unwrapping only.
pub async fn rotation_keeps_sealed_records_readable(h: &dyn Harness) {
    let (before, _) = vault(h);
    let t = before
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = before.submit(&t.id, &visa_form()).await.unwrap();

    let (after, _) = vault_on(h.store(), h, h.rotated_keys());
    let form = after.reveal(&t.id, &receipt.pin).await.unwrap();
    assert_eq!(form.card().unwrap().masked_number, "424242******4242");

    // New sessions are wrapped with the new primary, which the old keyring cannot open.
    let fresh = after
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    assert_eq!(
        before.status(&fresh.id).await.unwrap_err().code(),
        ErrorCode::KeyUnavailable
    );
}

/// A record whose key id is not in the keyring answers `KEY_UNAVAILABLE`; the vault never
/// tries the other keys.
pub async fn unknown_key_id_is_key_unavailable(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let t = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    // Same key material under another id: a trial decryption would succeed, a lookup must
    // not.
    let (other, _) = vault_on(h.store(), h, h.renamed_keys());
    assert_eq!(
        other.status(&t.id).await.unwrap_err().code(),
        ErrorCode::KeyUnavailable
    );
    assert_eq!(
        other.submit(&t.id, &visa_form()).await.unwrap_err().code(),
        ErrorCode::KeyUnavailable
    );
    assert!(vault.status(&t.id).await.is_ok());
}
