//! `Debug` of every type that holds or guards a secret is redacted, and none of them has a
//! `Display` that could print one: PINs, data keys, key-encryption keys, keyrings, key
//! providers, form inputs, revealed forms, receipts, secret strings, wrapped keys, sealed
//! records, the vault, the store, errors, tickets and statuses.

#![cfg(feature = "conformance")]
#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

mod support;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pci_vault::internal::SealedRecord;
use pci_vault::{
    DataKey, ExposeSecret, FormInput, KeyEncryptionKey, KeyId, Keyring, Pin, RevealedForm,
    SecretString, SessionOptions, Vault, WrappedKey,
};
use pci_vault_keys::{KeyDirectory, KeyFile};
use pci_vault_memory::MemoryStore;
use pci_vault_testkit::secrets::{contains_token, encodings};
use support::{Fixture, TempDir};

const PAN: &str = "6011000990139424";
const PAN_AS_TYPED: &str = "6011 0009 9013 9424";
const CVC: &str = "628";
const NAME: &str = "Dorothy Vaughan";
const KEK: &[u8; 32] = b"redaction-test-kek-0123456789abc";

/// Fails if `text` shows any of `secrets` in any encoding, or the security code as a token.
fn assert_redacted(what: &str, text: &str, secrets: &[Vec<u8>]) {
    for secret in secrets {
        for form in encodings(secret) {
            assert!(!text.contains(&form), "{what} shows a secret: {text}");
        }
    }
    assert!(
        !contains_token(text, CVC),
        "{what} shows the security code: {text}"
    );
}

/// `{:?}` and `{:#?}` of a value.
macro_rules! debug {
    ($value:expr) => {
        format!("{:?}\n{:#?}", $value, $value)
    };
}

fn discover() -> FormInput {
    FormInput::new()
        .with("card_number", PAN_AS_TYPED)
        .with("expiry", "03/33")
        .with("cvc", CVC)
        .with("cardholder_name", NAME)
}

#[tokio::test]
async fn debug_of_every_secret_type_is_redacted() {
    let kek = KeyEncryptionKey::from_bytes(KEK).unwrap();
    let keyring = Keyring::single(KeyId::new("redaction-k1").unwrap(), kek.clone());
    let dek = DataKey::generate();
    let wrapped: WrappedKey = keyring.wrap_now(&dek, b"aad").unwrap();

    let fx = Fixture::new();
    let store = fx.store.clone();
    let vault = Vault::builder(store.clone(), Arc::new(keyring.clone()))
        .clock(fx.clock.clone())
        .build()
        .unwrap();
    let options = SessionOptions::default().with_pin_length(12);
    let (id, key) = fx.session(&vault, &options).await;
    let input = discover();
    let receipt = vault.submit(&id, &input).await.unwrap();
    let record = SealedRecord::decode(&fx.raw(&key).await).unwrap();
    let wrong = Pin::parse("000000000000").unwrap();
    let wrong_pin = vault.reveal(&id, &wrong).await.map(|_| ()).unwrap_err();
    let status = vault.status(&id).await.unwrap();
    let form: RevealedForm = vault.reveal(&id, &receipt.pin).await.unwrap();
    let pan: &SecretString = form.get("card_number").unwrap();
    assert_eq!(pan.expose_secret(), PAN);
    let invalid = vault
        .submit(
            &fx.session(&vault, &options).await.0,
            &discover().with("card_number", "6011 0009 9013 9425"),
        )
        .await
        .map(|_| ())
        .unwrap_err();
    let ticket = vault.create_session(&options).await.unwrap();

    let dir = TempDir::new("redaction");
    std::fs::write(
        dir.0.join("keyring"),
        format!("k1:{}\n", STANDARD.encode(KEK)),
    )
    .unwrap();
    let key_file = KeyFile::open(dir.0.join("keyring")).unwrap();
    let mounted = dir.0.join("mounted");
    std::fs::create_dir(&mounted).unwrap();
    std::fs::write(mounted.join("primary"), "k1").unwrap();
    std::fs::write(mounted.join("k1"), STANDARD.encode(KEK)).unwrap();
    let key_directory = KeyDirectory::open(&mounted).unwrap();

    let secrets: Vec<Vec<u8>> = vec![
        PAN.into(),
        PAN_AS_TYPED.into(),
        PAN[..10].into(),
        NAME.into(),
        receipt.pin.expose_secret().into(),
        KEK.to_vec(),
        dek.expose_secret().to_vec(),
        wrapped.ciphertext.clone(),
        id.to_string().into(),
    ];
    let cases = [
        ("Pin", debug!(receipt.pin)),
        ("Receipt", debug!(receipt)),
        ("DataKey", debug!(dek)),
        ("KeyEncryptionKey", debug!(kek)),
        ("Keyring", debug!(keyring)),
        ("WrappedKey", debug!(wrapped)),
        ("FormInput", debug!(input)),
        ("RevealedForm", debug!(form)),
        ("SecretString", debug!(pan)),
        ("SealedRecord", debug!(record)),
        ("Vault", debug!(vault)),
        ("MemoryStore", debug!(store)),
        ("KeyFile", debug!(key_file)),
        ("KeyDirectory", debug!(key_directory)),
        ("WRONG_PIN error", debug!(wrong_pin)),
        ("VALIDATION_FAILED error", debug!(invalid)),
        ("SessionStatus", debug!(status)),
        ("Ticket", debug!(ticket)),
        ("SessionId", debug!(id)),
    ];
    for (what, text) in &cases {
        assert_redacted(what, text, &secrets);
    }
    // The errors' messages, the one text of theirs meant for people.
    for (what, err) in [("WRONG_PIN", &wrong_pin), ("VALIDATION_FAILED", &invalid)] {
        assert_redacted(what, &err.to_string(), &secrets);
    }
    // Redacted, but still useful: names of fields, the mask, key ids.
    assert!(cases[7].1.contains("601100******9424") && cases[7].1.contains("cvc"));
    assert!(cases[4].1.contains("redaction-k1"));
    assert_eq!(cases[0].1, "Pin([REDACTED])\nPin([REDACTED])");
}

/// Whether a type implements `Display`, decided at compile time by method resolution
/// ("autoref specialization"): the impl for `Probe<T>` applies only when `T: Display`;
/// otherwise the call falls through to the impl for `&Probe<T>`.
struct Probe<T>(std::marker::PhantomData<T>);

trait ViaDisplay {
    fn has_display(&self) -> bool;
}

impl<T: std::fmt::Display> ViaDisplay for Probe<T> {
    fn has_display(&self) -> bool {
        true
    }
}

trait Fallback {
    fn has_display(&self) -> bool;
}

impl<T> Fallback for &Probe<T> {
    fn has_display(&self) -> bool {
        false
    }
}

macro_rules! has_display {
    ($t:ty) => {
        (&Probe::<$t>(std::marker::PhantomData)).has_display()
    };
}

#[test]
fn secret_types_have_no_display() {
    // The probe tells the two apart.
    assert!(has_display!(pci_vault::ErrorCode));
    assert!(!has_display!(Vec<u8>));
    // A `Display` added to any of these must first be shown to redact, here.
    let displayed = [
        ("Pin", has_display!(Pin)),
        ("Receipt", has_display!(pci_vault::Receipt)),
        ("DataKey", has_display!(DataKey)),
        ("KeyEncryptionKey", has_display!(KeyEncryptionKey)),
        ("Keyring", has_display!(Keyring)),
        ("WrappedKey", has_display!(WrappedKey)),
        ("FormInput", has_display!(FormInput)),
        ("RevealedForm", has_display!(RevealedForm)),
        ("SecretString", has_display!(SecretString)),
        ("SealedRecord", has_display!(SealedRecord)),
        (
            "UnverifiedRecord",
            has_display!(pci_vault::internal::UnverifiedRecord),
        ),
        ("Vault", has_display!(Vault)),
        ("MemoryStore", has_display!(MemoryStore)),
        ("KeyFile", has_display!(KeyFile)),
        ("KeyDirectory", has_display!(KeyDirectory)),
    ];
    for (name, yes) in displayed {
        assert!(!yes, "{name} implements Display");
    }
}
