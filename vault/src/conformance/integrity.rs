//! Any change to a stored record is detected: `INTEGRITY_ERROR`, never wrong plaintext.

use super::{Harness, amex_form, vault, visa_form};
use crate::error::ErrorCode;
use crate::pin::Pin;
use crate::record::SealedRecord;
use crate::session::{SessionId, SessionOptions};
use crate::store::{CasOutcome, EphemeralStore, Version};
use crate::tenant::Tenant;
use crate::vault::Vault;
use crate::vault::ops::key_for;

async fn submitted(vault: &Vault, form: crate::form::FormInput) -> (SessionId, Pin) {
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = vault.submit(&ticket.id, &form).await.unwrap();
    (ticket.id, receipt.pin)
}

/// Replaces the session's record with `value`, keeping its TTL and claims, as a store
/// writer can.
async fn overwrite(store: &dyn EphemeralStore, key: &str, value: &[u8]) -> Version {
    let current = store.load(key).await.unwrap().unwrap();
    match store
        .replace(key, current.version, crate::Version::random(), value)
        .await
        .unwrap()
    {
        CasOutcome::Applied(v) => v,
        CasOutcome::Conflict => panic!("nobody else writes this session"),
    }
}

async fn assert_integrity_error(vault: &Vault, id: &SessionId, pin: &Pin, what: &str) {
    let status = vault.status(id).await;
    assert_eq!(
        status.map(|_| ()).unwrap_err().code(),
        ErrorCode::IntegrityError,
        "status after {what}"
    );
    let reveal = vault.reveal(id, pin).await;
    assert_eq!(
        reveal.map(|_| ()).unwrap_err().code(),
        ErrorCode::IntegrityError,
        "reveal after {what}"
    );
}

/// One bit flipped in each byte of a submitted record, in turn: status and reveal both
/// answer `INTEGRITY_ERROR` and change nothing; the untouched record still reveals.
pub async fn flipped_byte_anywhere_is_integrity_error(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let store = h.store();
    let (id, pin) = submitted(&vault, visa_form()).await;
    let key = key_for(&id);
    let original = store.load(&key).await.unwrap().unwrap().value;
    for i in 0..original.len() {
        let mut flipped = original.clone();
        flipped[i] ^= 1 << (i % 8);
        overwrite(&*store, &key, &flipped).await;
        assert_integrity_error(&vault, &id, &pin, &format!("flipping byte {i}")).await;
        assert_eq!(
            store.load(&key).await.unwrap().unwrap().value,
            flipped,
            "a failed call wrote"
        );
    }
    overwrite(&*store, &key, &original).await;
    assert_eq!(
        vault.status(&id).await.unwrap().attempts_left,
        5,
        "a guess on an altered record compares nothing and gives its attempt back"
    );
    assert!(vault.reveal(&id, &pin).await.is_ok());
}

/// Truncated, extended and empty records are `INTEGRITY_ERROR`.
pub async fn truncated_and_extended_records_are_integrity_errors(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let store = h.store();
    let (id, pin) = submitted(&vault, visa_form()).await;
    let key = key_for(&id);
    let original = store.load(&key).await.unwrap().unwrap().value;
    let n = original.len();
    let mut cases: Vec<(String, Vec<u8>)> = [0, 1, 8, n / 2, n - 9, n - 1]
        .into_iter()
        .map(|len| {
            (
                format!("truncating to {len} bytes"),
                original[..len].to_vec(),
            )
        })
        .collect();
    cases.push((
        "appending a byte".into(),
        [original.as_slice(), &[0]].concat(),
    ));
    cases.push((
        "appending 100 bytes".into(),
        [original.as_slice(), &[0xAA; 100]].concat(),
    ));
    cases.push(("doubling".into(), original.repeat(2)));
    for (what, bytes) in cases {
        overwrite(&*store, &key, &bytes).await;
        assert_integrity_error(&vault, &id, &pin, &what).await;
    }
    overwrite(&*store, &key, &original).await;
    assert!(vault.reveal(&id, &pin).await.is_ok());
}

/// A sealed field copied from session B into session A (with A's record re-authenticated,
/// as only someone holding A's data key could) does not open: the field's associated data
/// names its session.
pub async fn field_moved_between_sessions_is_integrity_error(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let store = h.store();
    let (a, pin_a) = submitted(&vault, visa_form()).await;
    let (b, _) = submitted(&vault, amex_form()).await;
    let la = vault.inner.load(&key_for(&a), &a, None).await.unwrap();
    let lb = vault.inner.load(&key_for(&b), &b, None).await.unwrap();
    let mut forged = la.record.clone();
    let from_b = lb
        .record
        .sealed_fields
        .iter()
        .find(|(n, _)| n == "card_number")
        .unwrap()
        .1
        .clone();
    forged
        .sealed_fields
        .iter_mut()
        .find(|(n, _)| n == "card_number")
        .unwrap()
        .1 = from_b;
    overwrite(&*store, &key_for(&a), &forged.encode(&la.crypto)).await;
    let err = vault.reveal(&a, &pin_a).await.map(|_| ()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::IntegrityError);
}

/// Two sealed fields of one session swapped (re-authenticated as above) do not open: the
/// associated data names the field.
pub async fn field_moved_between_fields_is_integrity_error(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let store = h.store();
    let (a, pin_a) = submitted(&vault, visa_form()).await;
    let la = vault.inner.load(&key_for(&a), &a, None).await.unwrap();
    let mut forged = la.record.clone();
    let pan = forged
        .sealed_fields
        .iter()
        .position(|(n, _)| n == "card_number")
        .unwrap();
    let cvc = forged
        .sealed_fields
        .iter()
        .position(|(n, _)| n == "cvc")
        .unwrap();
    let (x, y) = (
        forged.sealed_fields[pan].1.clone(),
        forged.sealed_fields[cvc].1.clone(),
    );
    forged.sealed_fields[pan].1 = y;
    forged.sealed_fields[cvc].1 = x;
    overwrite(&*store, &key_for(&a), &forged.encode(&la.crypto)).await;
    let err = vault.reveal(&a, &pin_a).await.map(|_| ()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::IntegrityError);
}

/// Session B's whole record copied under session A's key does not open as A.
pub async fn record_moved_between_sessions_is_integrity_error(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let store = h.store();
    let (a, pin_a) = submitted(&vault, visa_form()).await;
    let (b, pin_b) = submitted(&vault, visa_form()).await;
    let b_bytes = store.load(&key_for(&b)).await.unwrap().unwrap().value;
    overwrite(&*store, &key_for(&a), &b_bytes).await;
    assert_integrity_error(&vault, &a, &pin_a, "moving a record").await;
    assert_integrity_error(&vault, &a, &pin_b, "moving a record (B's PIN)").await;
}

/// A record re-authenticated to name another tenant does not open for that tenant: the
/// wrapped data key is bound to the original tenant.
pub async fn record_retagged_to_other_tenant_does_not_open(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let store = h.store();
    let (a, pin_a) = submitted(&vault, visa_form()).await;
    let la = vault.inner.load(&key_for(&a), &a, None).await.unwrap();
    let evil = Tenant::new("evil").unwrap();
    let forged = SealedRecord {
        tenant: evil.clone(),
        ..la.record.clone()
    };
    overwrite(&*store, &key_for(&a), &forged.encode(&la.crypto)).await;
    let evil_vault = vault.for_tenant(evil);
    assert_integrity_error(&evil_vault, &a, &pin_a, "retagging the tenant").await;
    assert_eq!(
        vault.status(&a).await.map(|_| ()).unwrap_err().code(),
        ErrorCode::NotFound
    );
}
