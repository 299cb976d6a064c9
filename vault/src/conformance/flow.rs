//! The whole flow, state by state.

use std::time::{Duration, SystemTime};

use secrecy::ExposeSecret;

use super::{Harness, TEST_KEK, amex_form, vault, visa_form};
use crate::audit::{AuditAction, AuditOutcome};
use crate::error::{Error, ErrorCode};
use crate::form::{FieldKind, FieldSpec, FormInput, FormSpec};
use crate::pin::Pin;
use crate::session::{Metadata, SessionOptions, SessionState, SessionStatus};
use crate::tenant::Tenant;
use crate::vault::ops::key_for;

fn code<T: std::fmt::Debug>(r: crate::Result<T>) -> ErrorCode {
    r.expect_err("expected an error").code()
}

/// A PIN of the right length that is not `right` (each digit moved up by one).
pub fn wrong_pin(right: &Pin) -> Pin {
    let flipped: String = right
        .expose_secret()
        .bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
        .collect();
    Pin::parse(&flipped).unwrap()
}

/// `status` of a submitted session carries the card's brand and masked number (first 6,
/// last 4) and nothing more of the card: before submit and once the session has ended, no
/// summary; a form without a card number has none either.
pub async fn status_shows_the_masked_card_once_submitted(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    assert_eq!(vault.status(&ticket.id).await.unwrap().card, None);
    let receipt = vault.submit(&ticket.id, &visa_form()).await.unwrap();
    let status = vault.status(&ticket.id).await.unwrap();
    assert_eq!(
        status.card_view(),
        Some(("visa", "424242******4242".to_owned()))
    );
    // The times are not derived from the card, and their digits could match a secret
    // by chance, so they are left out of what is searched.
    let untimed = SessionStatus {
        created_at: SystemTime::UNIX_EPOCH,
        submitted_at: None,
        expires_at: SystemTime::UNIX_EPOCH,
        ..status
    };
    let shown = format!("{untimed:?}");
    for secret in [
        "4242424242424242",
        "12/39",
        "123,",
        "Ada",
        receipt.pin.expose_secret(),
    ] {
        assert!(
            !shown.contains(secret),
            "status shows more than the summary"
        );
    }
    vault.reveal(&ticket.id, &receipt.pin).await.unwrap();
    assert_eq!(vault.status(&ticket.id).await.unwrap().card, None);

    let amex = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    vault.submit(&amex.id, &amex_form()).await.unwrap();
    assert_eq!(
        vault.status(&amex.id).await.unwrap().card_view(),
        Some(("amex", "378282*****0005".to_owned()))
    );
    vault.cancel(&amex.id).await.unwrap();
    assert_eq!(vault.status(&amex.id).await.unwrap().card, None);

    let no_card = SessionOptions {
        form: FormSpec::new(vec![
            FieldSpec::new("account_holder", FieldKind::Text, true).unwrap(),
        ])
        .unwrap(),
        ..SessionOptions::default()
    };
    let text_only = vault.create_session(&no_card).await.unwrap();
    vault
        .submit(
            &text_only.id,
            &FormInput::new().with("account_holder", "Ada"),
        )
        .await
        .unwrap();
    let status = vault.status(&text_only.id).await.unwrap();
    assert_eq!(status.state, SessionState::Submitted);
    assert_eq!(status.card, None);
}

/// create → pending → submit → submitted → reveal (clear values, brand, mask) → revealed;
/// a second reveal is `ALREADY_REVEALED` and a second submit `ALREADY_SUBMITTED`.
pub async fn whole_flow_reveals_once(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let options = SessionOptions {
        metadata: Metadata::new([("conversation", "c-42")]).unwrap(),
        ..SessionOptions::default()
    };
    let ticket = vault.create_session(&options).await.unwrap();
    assert_eq!(ticket.id.to_string().len(), 43);
    let status = vault.status(&ticket.id).await.unwrap();
    assert_eq!(status.state, SessionState::Pending);
    assert_eq!(status.attempts_left, 5);
    assert_eq!(status.metadata.get("conversation"), Some("c-42"));
    assert_eq!(status.submitted_at, None);
    assert_eq!(status.expires_at, ticket.expires_at);
    assert_eq!(
        code(
            vault
                .reveal(&ticket.id, &Pin::parse("123456").unwrap())
                .await
        ),
        ErrorCode::NotSubmitted
    );

    let receipt = vault.submit(&ticket.id, &visa_form()).await.unwrap();
    assert_eq!(receipt.pin.expose_secret().len(), 6);
    assert_eq!(receipt.expires_at, ticket.expires_at);
    let status = vault.status(&ticket.id).await.unwrap();
    assert_eq!(status.state, SessionState::Submitted);
    assert!(status.submitted_at.is_some());
    assert_eq!(
        code(vault.submit(&ticket.id, &visa_form()).await),
        ErrorCode::AlreadySubmitted
    );

    let form = vault.reveal(&ticket.id, &receipt.pin).await.unwrap();
    let value = |name: &str| form.get(name).unwrap().expose_secret().to_owned();
    assert_eq!(value("card_number"), "4242424242424242");
    assert_eq!(value("expiry"), "12/39");
    assert_eq!(value("cvc"), "123");
    assert_eq!(value("cardholder_name"), "Ada Lovelace");
    let card = form.card().unwrap();
    assert_eq!(card.brand.as_str(), "visa");
    assert_eq!(card.masked_number, "424242******4242");

    assert_eq!(
        code(vault.reveal(&ticket.id, &receipt.pin).await),
        ErrorCode::AlreadyRevealed
    );
    assert_eq!(
        code(vault.submit(&ticket.id, &visa_form()).await),
        ErrorCode::AlreadySubmitted
    );
    assert_eq!(
        code(vault.cancel(&ticket.id).await),
        ErrorCode::AlreadyRevealed
    );
    let status = vault.status(&ticket.id).await.unwrap();
    assert_eq!(status.state, SessionState::Revealed);
    assert_eq!(status.metadata.get("conversation"), Some("c-42"));
}

/// With `max_attempts = 5`, wrong PINs 1–4 answer `WRONG_PIN` with 4, 3, 2, 1 left; the
/// fifth answers `LOCKED`, and so does every later call, the right PIN included.
pub async fn wrong_pins_count_down_then_lock(h: &dyn Harness) {
    let (vault, audit) = vault(h);
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = vault.submit(&ticket.id, &visa_form()).await.unwrap();
    let wrong = wrong_pin(&receipt.pin);
    for expected_left in [4u8, 3, 2, 1] {
        match vault.reveal(&ticket.id, &wrong).await {
            Err(Error::WrongPin { attempts_left }) => assert_eq!(attempts_left, expected_left),
            other => panic!("expected WRONG_PIN, got {other:?}"),
        }
        assert_eq!(
            vault.status(&ticket.id).await.unwrap().attempts_left,
            expected_left
        );
    }
    assert_eq!(
        code(vault.reveal(&ticket.id, &wrong).await),
        ErrorCode::Locked
    );
    assert_eq!(
        code(vault.reveal(&ticket.id, &receipt.pin).await),
        ErrorCode::Locked
    );
    // A PIN of another length counts like any wrong PIN and is refused the same way.
    assert_eq!(
        code(vault.reveal(&ticket.id, &Pin::parse("1234").unwrap()).await),
        ErrorCode::Locked
    );
    let status = vault.status(&ticket.id).await.unwrap();
    assert_eq!(
        (status.state, status.attempts_left),
        (SessionState::Locked, 0)
    );
    assert_eq!(code(vault.cancel(&ticket.id).await), ErrorCode::Locked);

    let events = audit.take();
    let locks = events
        .iter()
        .filter(|e| e.action == AuditAction::Locked)
        .count();
    assert_eq!(locks, 1);
    let wrong_pins = events
        .iter()
        .filter(|e| e.outcome == AuditOutcome::Failure(ErrorCode::WrongPin))
        .map(|e| e.attempts_left.unwrap())
        .collect::<Vec<_>>();
    assert_eq!(wrong_pins, [4, 3, 2, 1]);

    // One attempt allowed: the first wrong PIN locks.
    let one = SessionOptions {
        max_attempts: 1,
        ..SessionOptions::default()
    };
    let ticket = vault.create_session(&one).await.unwrap();
    let receipt = vault.submit(&ticket.id, &visa_form()).await.unwrap();
    assert_eq!(
        code(vault.reveal(&ticket.id, &wrong_pin(&receipt.pin)).await),
        ErrorCode::Locked
    );
}

/// After `expires_at` every operation answers `NOT_FOUND`, whatever the state.
pub async fn expiry_follows_the_clock(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let short = SessionOptions {
        ttl: Duration::from_secs(1),
        ..SessionOptions::default()
    };
    let pending = vault.create_session(&short).await.unwrap();
    let submitted = vault.create_session(&short).await.unwrap();
    let receipt = vault.submit(&submitted.id, &visa_form()).await.unwrap();
    let long = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    h.advance(Duration::from_millis(1_200)).await;
    for id in [&pending.id, &submitted.id] {
        assert_eq!(code(vault.status(id).await), ErrorCode::NotFound);
        assert_eq!(
            code(vault.submit(id, &visa_form()).await),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(vault.reveal(id, &receipt.pin).await),
            ErrorCode::NotFound
        );
        assert_eq!(code(vault.cancel(id).await), ErrorCode::NotFound);
    }
    assert_eq!(
        vault.status(&long.id).await.unwrap().state,
        SessionState::Pending
    );
}

/// Cancel destroys the data and leaves a tombstone: later calls say `CANCELLED`.
pub async fn cancel_leaves_a_tombstone(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let pending = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    vault.cancel(&pending.id).await.unwrap();
    assert_eq!(
        code(vault.submit(&pending.id, &visa_form()).await),
        ErrorCode::Cancelled
    );
    vault.cancel(&pending.id).await.unwrap();

    let submitted = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = vault.submit(&submitted.id, &visa_form()).await.unwrap();
    vault.cancel(&submitted.id).await.unwrap();
    assert_eq!(
        code(vault.reveal(&submitted.id, &receipt.pin).await),
        ErrorCode::Cancelled
    );
    assert_eq!(
        vault.status(&submitted.id).await.unwrap().state,
        SessionState::Cancelled
    );

    let stored = h
        .store()
        .load(&key_for(&submitted.id))
        .await
        .unwrap()
        .unwrap()
        .value;
    let record = crate::record::SealedRecord::decode(&stored).unwrap();
    let loaded = vault
        .inner
        .load(&key_for(&submitted.id), &submitted.id, None)
        .await
        .unwrap();
    assert!(loaded.record.sealed_fields.is_empty() && loaded.record.pin_verifier.is_none());
    assert_eq!(record.tenant(), &Tenant::default());
}

/// Another tenant's agent gets `NOT_FOUND` for status, reveal and cancel; the customer's
/// submit finds the session by id alone.
pub async fn other_tenants_see_not_found(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let acme = vault.for_tenant(Tenant::new("acme").unwrap());
    let globex = vault.for_tenant(Tenant::new("globex").unwrap());
    let ticket = acme
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    assert_eq!(code(globex.status(&ticket.id).await), ErrorCode::NotFound);
    assert_eq!(code(vault.status(&ticket.id).await), ErrorCode::NotFound);
    let receipt = globex.submit(&ticket.id, &visa_form()).await.unwrap();
    assert_eq!(
        code(globex.reveal(&ticket.id, &receipt.pin).await),
        ErrorCode::NotFound
    );
    assert_eq!(code(globex.cancel(&ticket.id).await), ErrorCode::NotFound);
    // The other tenant's attempts took nothing from the session.
    assert_eq!(acme.status(&ticket.id).await.unwrap().attempts_left, 5);
    assert!(acme.reveal(&ticket.id, &receipt.pin).await.is_ok());
}

/// A form with a custom text field and an optional field round-trips; the PIN length and
/// TTL options are honoured.
pub async fn custom_forms_round_trip(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let form = FormSpec::new(vec![
        FieldSpec::named("card_number").unwrap(),
        FieldSpec::named("expiry").unwrap(),
        FieldSpec::new("postcode", FieldKind::Text, true).unwrap(),
        FieldSpec::new("note", FieldKind::Text, false).unwrap(),
    ])
    .unwrap();
    let options = SessionOptions {
        form,
        pin_length: 10,
        ttl: Duration::from_secs(60),
        ..SessionOptions::default()
    };
    let ticket = vault.create_session(&options).await.unwrap();
    let input = FormInput::new()
        .with("card_number", "5555555555554444")
        .with("expiry", "01/2040")
        .with("postcode", "10115 Berlin");
    let receipt = vault.submit(&ticket.id, &input).await.unwrap();
    assert_eq!(receipt.pin.expose_secret().len(), 10);
    let revealed = vault.reveal(&ticket.id, &receipt.pin).await.unwrap();
    let fields: Vec<(&str, &str)> = revealed
        .iter()
        .map(|(n, v)| (n, v.expose_secret()))
        .collect();
    assert_eq!(
        fields,
        [
            ("card_number", "5555555555554444"),
            ("expiry", "01/40"),
            ("postcode", "10115 Berlin")
        ]
    );
    assert_eq!(revealed.card().unwrap().brand.as_str(), "mastercard");
}

/// After a submit, the stored record holds no PAN, CVC, name, PIN, data key or
/// key-encryption key, in clear or in common encodings.
pub async fn store_holds_no_secrets(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let ticket = vault
        .create_session(&SessionOptions {
            pin_length: 12,
            ..SessionOptions::default()
        })
        .await
        .unwrap();
    let receipt = vault.submit(&ticket.id, &amex_form()).await.unwrap();
    let key = key_for(&ticket.id);
    let stored = h.store().load(&key).await.unwrap().unwrap().value;
    let loaded = vault.inner.load(&key, &ticket.id, None).await.unwrap();
    let aad = crate::crypto::dek_wrap_aad(&Tenant::default(), &ticket.id);
    let dek = vault
        .inner
        .keys
        .unwrap(&loaded.record.wrapped_dek, aad.as_slice())
        .await
        .unwrap();

    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("PAN", b"378282246310005".to_vec()),
        ("PAN tail", b"8224631000".to_vec()),
        ("CVC", b"7391".to_vec()),
        ("name", b"Grace Hopper".to_vec()),
        ("PIN", receipt.pin.expose_secret().as_bytes().to_vec()),
        ("data key", dek.expose_secret().to_vec()),
        ("key-encryption key", TEST_KEK.to_vec()),
    ];
    assert_no_secret_in(&stored, &secrets);
    assert_no_secret_in(key.as_bytes(), &secrets);
    // The id itself is not the key either: listing the store does not give out the links.
    assert!(!key.contains(&ticket.id.to_string()));
}

/// Panics when `haystack` contains any secret in clear, as hex, as base64, or as UTF-16.
pub fn assert_no_secret_in(haystack: &[u8], secrets: &[(&str, Vec<u8>)]) {
    use base64::Engine as _;
    for (what, secret) in secrets {
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let utf16: Vec<u8> = secret.iter().flat_map(|&b| [b, 0]).collect();
        let forms = [
            secret.clone(),
            hex.as_bytes().to_vec(),
            hex.to_uppercase().into_bytes(),
            base64::engine::general_purpose::STANDARD_NO_PAD
                .encode(secret)
                .into_bytes(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(secret)
                .into_bytes(),
            utf16,
        ];
        for form in forms {
            assert!(
                !haystack.windows(form.len()).any(|w| w == form.as_slice()),
                "the store holds the {what}"
            );
        }
    }
}

/// Audit events name the session by a keyed hash, never by its id, and carry no secret.
pub async fn audit_events_carry_no_id_or_secret(h: &dyn Harness) {
    let (vault, audit) = vault(h);
    let twelve = SessionOptions {
        pin_length: 12,
        ..SessionOptions::default()
    };
    let ticket = vault.create_session(&twelve).await.unwrap();
    let receipt = vault.submit(&ticket.id, &visa_form()).await.unwrap();
    let _ = vault.reveal(&ticket.id, &wrong_pin(&receipt.pin)).await;
    vault.reveal(&ticket.id, &receipt.pin).await.unwrap();
    let events = audit.take();
    let actions: Vec<_> = events.iter().map(|e| (e.action, e.outcome)).collect();
    assert_eq!(
        actions,
        [
            (AuditAction::Created, AuditOutcome::Success),
            (AuditAction::Submitted, AuditOutcome::Success),
            (
                AuditAction::Revealed,
                AuditOutcome::Failure(ErrorCode::WrongPin)
            ),
            (AuditAction::Revealed, AuditOutcome::Success),
        ]
    );
    let refs: std::collections::HashSet<_> = events.iter().map(|e| e.session_ref.clone()).collect();
    assert_eq!(refs.len(), 1, "every event names the same session");
    let text = format!("{events:?}");
    for secret in [
        ticket.id.to_string().as_str(),
        "4242424242424242",
        receipt.pin.expose_secret(),
    ] {
        assert!(!text.contains(secret), "audit events contain a secret");
    }
}
