//! Card fixtures: one valid card the suites submit, and every public test card number.
//!
//! The numbers are public test numbers that payment processors publish for sandbox
//! testing; none is a real account.

use std::sync::OnceLock;

/// A Visa test number that passes every check, as digits only.
pub const PAN: &str = "4242424242424242";
/// [`PAN`] as a customer types it, in groups of four.
pub const PAN_SPACED: &str = "4242 4242 4242 4242";
/// A security code for [`PAN`].
pub const CVC: &str = "737";
/// A cardholder name.
pub const NAME: &str = "Ada Lovelace";
/// An expiry date in the future (`MM/YY`).
pub const EXPIRY: &str = "12/34";

/// One public test card of `vault/tests/data/test-cards.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCard {
    /// The card brand (`visa`, `mastercard`, `amex`, ...).
    pub brand: String,
    /// The card number, digits only.
    pub number: String,
    /// How many digits its security code has.
    pub cvc_length: usize,
}

/// The valid public test cards every front-end's tests share (Node and Python read the
/// same file).
pub fn test_cards() -> &'static [TestCard] {
    static CARDS: OnceLock<Vec<TestCard>> = OnceLock::new();
    CARDS.get_or_init(|| {
        let json: serde_json::Value =
            serde_json::from_str(include_str!("../../vault/tests/data/test-cards.json")).unwrap();
        json["valid"]
            .as_array()
            .expect("test-cards.json has a `valid` array")
            .iter()
            .map(|card| TestCard {
                brand: card["brand"].as_str().unwrap().to_owned(),
                number: card["number"].as_str().unwrap().to_owned(),
                cvc_length: usize::try_from(card["cvc_length"].as_u64().unwrap()).unwrap(),
            })
            .collect()
    })
}
