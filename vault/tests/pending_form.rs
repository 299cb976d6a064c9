//! The customer's read of a pending session's form: found by id alone, whatever tenant the
//! vault acts for, and only while the session waits for the form.

#![cfg(feature = "conformance")]
#![expect(
    clippy::expect_used,
    reason = "test code: a failed setup ends the test"
)]

use std::sync::Arc;

use pci_vault::conformance::visa_form;
use pci_vault::{FormSpec, Keyring, SessionId, SessionOptions, SessionOverrides, Tenant, Vault};
use pci_vault_memory::MemoryStore;

fn vault() -> Vault {
    Vault::builder(Arc::new(MemoryStore::new()), Arc::new(Keyring::ephemeral()))
        .build()
        .expect("a vault on the memory store")
}

#[tokio::test]
async fn pending_forms_are_found_by_id_alone_until_submitted() {
    let vault = vault();
    let acme = vault.for_tenant(Tenant::new("acme").expect("a tenant name"));
    let mut overrides = SessionOverrides::new();
    overrides.fields = Some(vec!["card_number".into(), "order_ref".into()]);
    let options = overrides
        .apply(&SessionOptions::default())
        .expect("valid options");
    let ticket = acme.create_session(&options).await.expect("created");

    let form = vault.pending_form(&ticket.id).await.expect("read");
    assert_eq!(form, Some(options.form.clone()));

    let default_form = vault
        .create_session(&SessionOptions::default())
        .await
        .expect("created");
    vault
        .submit(&default_form.id, &visa_form())
        .await
        .expect("submitted");
    assert_eq!(
        vault.pending_form(&default_form.id).await.expect("read"),
        None
    );
    assert_eq!(
        vault
            .pending_form(&SessionId::generate())
            .await
            .expect("read"),
        None
    );
    assert_ne!(options.form, FormSpec::default());
}
