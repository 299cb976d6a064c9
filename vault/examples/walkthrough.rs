//! Walks the whole flow on the memory store with a development key, printing each step.
//! Nothing secret is printed except the PIN (shown to the "customer") and the one reveal.
//!
//! ```sh
//! cargo run -p pci-vault --example walkthrough
//! ```

#![expect(clippy::print_stdout, reason = "an example that narrates the flow")]

use std::sync::Arc;

use pci_vault::{Error, ExposeSecret, FormInput, Keyring, Metadata, Pin, SessionOptions, Vault};
use pci_vault_memory::MemoryStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let vault =
        Vault::builder(Arc::new(MemoryStore::new()), Arc::new(Keyring::ephemeral())).build()?;

    println!("1. The agent asks for a payment link.");
    let options =
        SessionOptions::default().with_metadata(Metadata::new([("conversation", "demo-1")])?);
    let ticket = vault.create_session(&options).await?;
    println!("   link: http://127.0.0.1:8080/forms/{}", ticket.id);
    println!("   state: {}", vault.status(&ticket.id).await?.state);

    println!("2-3. The customer opens the link and enters a card.");
    let form = FormInput::new()
        .with("card_number", "4242 4242 4242 4242")
        .with("expiry", "12/34")
        .with("cvc", "123")
        .with("cardholder_name", "Ada Lovelace");

    println!("4. submit() validates, seals and stores the form.");
    let bad = FormInput::new().with("card_number", "4242 4242 4242 4241");
    if let Err(Error::ValidationFailed { fields }) = vault.submit(&ticket.id, &bad).await {
        for f in fields {
            println!("   (a first try is refused: {} -> {})", f.field, f.reason);
        }
    }
    let receipt = vault.submit(&ticket.id, &form).await?;
    println!("   state: {}", vault.status(&ticket.id).await?.state);

    println!(
        "5. The customer sees the PIN: {}",
        receipt.pin.expose_secret()
    );
    println!("6. The customer reads it out to the agent in the chat.");

    println!("7. The agent reveals the form once.");
    let wrong = Pin::parse("000000")?;
    if let Err(e) = vault.reveal(&ticket.id, &wrong).await {
        println!("   (a mistyped PIN: {} — {e})", e.code());
    }
    let revealed = vault.reveal(&ticket.id, &receipt.pin).await?;
    for (name, value) in revealed.iter() {
        println!("   {name}: {}", value.expose_secret());
    }
    if let Some(card) = revealed.card() {
        println!("   card: {} {}", card.brand, card.masked_number);
    }
    let again = vault.reveal(&ticket.id, &receipt.pin).await.map(|_| ());
    println!(
        "   a second reveal: {}",
        again.err().map(|e| e.code().as_str()).unwrap_or("?")
    );
    println!("   state: {}", vault.status(&ticket.id).await?.state);
    Ok(())
}
