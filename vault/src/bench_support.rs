//! Internals for the criterion benchmarks in `vault/benches` (feature `bench`), reached
//! through [`crate::internal`]. Not a public API: nothing here is stable, and nothing here
//! should be used by a program.

#![expect(missing_docs, clippy::expect_used, reason = "benchmark plumbing")]

use std::time::SystemTime;

use crate::crypto::{SessionCrypto, dek_wrap_aad};
use crate::form::{FormInput, FormSpec};
use crate::keys::{DataKey, Keyring};
use crate::record::SealedRecord;
use crate::session::{SessionId, SessionOptions, SessionState};
use crate::tenant::Tenant;

/// A submitted record of the default form and the keys to seal and open it.
pub struct RecordFixture {
    keyring: Keyring,
    tenant: Tenant,
    id: SessionId,
    record: SealedRecord,
    crypto: SessionCrypto,
}

pub fn card_form() -> FormInput {
    FormInput::new()
        .with("card_number", "4242 4242 4242 4242")
        .with("expiry", "12/34")
        .with("cvc", "123")
        .with("cardholder_name", "Ada Lovelace")
}

impl RecordFixture {
    pub fn new() -> Self {
        let keyring = Keyring::ephemeral();
        let (tenant, id, dek) = (
            Tenant::default(),
            SessionId::generate(),
            DataKey::generate(),
        );
        let wrapped = keyring
            .wrap_now(&dek, dek_wrap_aad(&tenant, &id).as_slice())
            .expect("wrap");
        let crypto = SessionCrypto::new(&dek, &tenant, &id);
        let mut record =
            SealedRecord::pending(tenant.clone(), 1_000, &SessionOptions::default(), wrapped);
        let values = FormSpec::default()
            .validate(&card_form(), SystemTime::now())
            .expect("valid form");
        record.state = SessionState::Submitted;
        record.submitted_at = Some(2_000);
        record.pin_verifier = Some(crypto.pin_verifier(b"123456"));
        record.sealed_fields = values
            .iter()
            .map(|(n, v)| (n.clone(), crypto.seal_field(n, v.as_bytes())))
            .collect();
        RecordFixture {
            keyring,
            tenant,
            id,
            record,
            crypto,
        }
    }

    /// Seals the four fields and encodes and authenticates the record, as `submit` does.
    pub fn seal(&self) -> Vec<u8> {
        let values = FormSpec::default()
            .validate(&card_form(), SystemTime::now())
            .expect("valid form");
        let record = SealedRecord {
            sealed_fields: values
                .iter()
                .map(|(n, v)| (n.clone(), self.crypto.seal_field(n, v.as_bytes())))
                .collect(),
            ..self.record.clone()
        };
        record.encode(&self.crypto)
    }

    /// Decodes, unwraps the data key, checks the tag and opens every field, as `reveal` does.
    pub fn open(&self, bytes: &[u8]) -> usize {
        let unverified = SealedRecord::decode(bytes).expect("decode");
        let dek = self
            .keyring
            .unwrap_now(
                unverified.wrapped_dek(),
                dek_wrap_aad(&self.tenant, &self.id).as_slice(),
            )
            .expect("unwrap");
        let crypto = SessionCrypto::new(&dek, &self.tenant, &self.id);
        let record = unverified.verify(&crypto).expect("verify");
        record
            .sealed_fields
            .iter()
            .map(|(n, sealed)| crypto.open_field(n, sealed).expect("open").len())
            .sum()
    }

    /// The PIN verifier of `pin` (HMAC-SHA256 under the session's PIN key).
    pub fn pin_verifier(&self, pin: &[u8]) -> [u8; 32] {
        self.crypto.pin_verifier(pin)
    }

    /// Checks `pin` against the stored verifier, in constant time.
    pub fn verify_pin(&self, pin: &[u8]) -> bool {
        self.record
            .pin_verifier
            .as_ref()
            .is_some_and(|v| self.crypto.verify_pin(pin, v))
    }

    /// Validates the default four-field form, as `submit` does first.
    pub fn validate_form(input: &FormInput) -> usize {
        FormSpec::default()
            .validate(input, SystemTime::now())
            .map(|v| v.len())
            .unwrap_or(0)
    }
}

impl Default for RecordFixture {
    fn default() -> Self {
        RecordFixture::new()
    }
}
