//! Vaults on any store, with the key material every test and every process shares.

use std::sync::Arc;

use pci_vault::{EphemeralStore, ExposeSecret as _, SessionOptions, Vault};

/// A vault on `store` with the conformance suite's keyring (the same key material in every
/// test and every process), the system clock and no audit sink.
pub fn vault_on(store: impl EphemeralStore + 'static) -> Vault {
    Vault::builder(
        Arc::new(store),
        Arc::new(pci_vault::conformance::test_keyring()),
    )
    .build()
    .unwrap()
}

/// create → submit → reveal through `vault`, checking the revealed card number.
pub async fn round_trip(vault: &Vault) {
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = vault
        .submit(&ticket.id, &pci_vault::conformance::visa_form())
        .await
        .unwrap();
    let form = vault.reveal(&ticket.id, &receipt.pin).await.unwrap();
    assert_eq!(
        form.get("card_number").unwrap().expose_secret(),
        crate::cards::PAN
    );
}
