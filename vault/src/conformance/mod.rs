//! The conformance suite: plain async test functions that every store runs.
//!
//! [`store`] checks the [`EphemeralStore`] contract; [`flow`], [`concurrency`],
//! [`integrity`] and [`errors`] check the invariants of `docs/CONTRACTS.md` ("Invariants")
//! against a [`Vault`] built on the store. A backend's tests call
//! [`conformance_tests!`](crate::conformance_tests) with a harness, which expands to one
//! `#[tokio::test]` per function, so each shows by name in the test output:
//!
//! ```
//! // In a backend's `tests/conformance.rs`; `pci_vault_testkit` holds the harnesses of
//! // this repository's stores.
//! mod conformance {
//!     pci_vault::conformance_tests!(pci_vault_testkit::memory::MemoryHarness::new());
//! }
//! # fn main() {}
//! ```
//!
//! The functions panic on a broken invariant, like any test.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "the conformance suite is test code: a failed expectation is a test failure"
)]

pub mod concurrency;
pub mod errors;
pub mod events;
pub mod faults;
pub mod flow;
pub mod integrity;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::audit::MemoryAuditSink;
use crate::clock::Clock;
use crate::form::FormInput;
use crate::keys::{KeyEncryptionKey, KeyId, KeyProvider, Keyring};
use crate::store::EphemeralStore;
use crate::vault::Vault;

/// What the suite needs from a backend.
#[async_trait]
pub trait Harness: Send + Sync {
    /// The store under test. Every call returns the same store.
    fn store(&self) -> Arc<dyn EphemeralStore>;

    /// The clock the store expires entries by (the system clock for a server-side TTL).
    fn clock(&self) -> Arc<dyn Clock>;

    /// Lets `by` pass for both the store and the vault: moves a manual clock, or sleeps.
    async fn advance(&self, by: Duration);

    /// A store of the same backend that refuses new entries once it holds a few, if the
    /// backend can be bounded cheaply; `None` when a backend test covers
    /// `CAPACITY_EXCEEDED` instead.
    async fn bounded_store(&self) -> Option<Arc<dyn EphemeralStore>> {
        None
    }

    /// A store of the same backend that cannot be reached, if there is such a thing; `None`
    /// when the backend cannot fail (memory) or a backend test covers `STORE_UNAVAILABLE`.
    async fn unreachable_store(&self) -> Option<Arc<dyn EphemeralStore>> {
        None
    }

    /// The key provider the suite's vaults wrap data keys with: [`test_keyring`], unless
    /// the harness tests a key provider (an HSM, a KMS) on this store.
    fn keys(&self) -> Arc<dyn KeyProvider> {
        Arc::new(test_keyring())
    }

    /// The keys of [`Harness::keys`] after a rotation: a new primary wraps, the old key
    /// still unwraps what it wrapped.
    fn rotated_keys(&self) -> Arc<dyn KeyProvider> {
        let old = test_keyring();
        let new_id = KeyId::new("conformance-k2").unwrap();
        let old_kek = KeyEncryptionKey::from_bytes(&TEST_KEK).unwrap();
        Arc::new(
            Keyring::new(
                new_id.clone(),
                [
                    (new_id, KeyEncryptionKey::generate()),
                    (old.primary().clone(), old_kek),
                ],
            )
            .unwrap(),
        )
    }

    /// Keys of the same provider that do not know the id [`Harness::keys`] wraps under,
    /// while holding the same key material where the provider can say so (a keyring with
    /// the same bytes under another id): a trial decryption would open its records, a
    /// lookup by id must not.
    fn renamed_keys(&self) -> Arc<dyn KeyProvider> {
        Arc::new(Keyring::single(
            KeyId::new("renamed").unwrap(),
            KeyEncryptionKey::from_bytes(&TEST_KEK).unwrap(),
        ))
    }
}

/// The key-encryption key the suite's vaults use, fixed so a test can look for its bytes.
pub const TEST_KEK: [u8; 32] = *b"conformance-suite-kek-0123456789";

/// The suite's keyring: one key, `conformance-k1`.
pub fn test_keyring() -> Keyring {
    let id = KeyId::new("conformance-k1").unwrap_or_else(|_| unreachable!());
    let kek = KeyEncryptionKey::from_bytes(&TEST_KEK).unwrap_or_else(|_| unreachable!());
    Keyring::single(id, kek)
}

/// A vault on the harness's store, clock and keys, with an in-memory audit sink the test
/// can read.
pub fn vault(h: &dyn Harness) -> (Vault, Arc<MemoryAuditSink>) {
    vault_on(h.store(), h, h.keys())
}

/// A vault on `store` with the harness's clock and the given key provider.
pub fn vault_on(
    store: Arc<dyn EphemeralStore>,
    h: &dyn Harness,
    keys: Arc<dyn KeyProvider>,
) -> (Vault, Arc<MemoryAuditSink>) {
    let audit = Arc::new(MemoryAuditSink::new());
    let vault = Vault::builder(store, keys)
        .clock(h.clock())
        .audit_sink(audit.clone())
        .build()
        .unwrap_or_else(|e| panic!("building the test vault failed: {e}"));
    (vault, audit)
}

/// A store wrapper that yields to the scheduler a random number of times (0–3) before and
/// after every call, so that concurrent callers interleave between their load and their
/// compare-and-set in varied orders, even on a store whose calls never wait (memory). It
/// changes no behaviour of the store under it.
#[derive(Debug)]
pub struct Interleaved(pub Arc<dyn EphemeralStore>);

async fn jitter() {
    let mut byte = [0u8; 1];
    crate::crypto::fill_random(&mut byte);
    for _ in 0..(byte[0] % 4) {
        tokio::task::yield_now().await;
    }
}

#[async_trait]
impl EphemeralStore for Interleaved {
    async fn create(
        &self,
        key: &str,
        version: crate::Version,
        value: &[u8],
        ttl: Duration,
    ) -> crate::Result<crate::CasOutcome> {
        jitter().await;
        let out = self.0.create(key, version, value, ttl).await;
        jitter().await;
        out
    }

    async fn load(&self, key: &str) -> crate::Result<Option<crate::Versioned>> {
        jitter().await;
        let out = self.0.load(key).await;
        jitter().await;
        out
    }

    async fn replace(
        &self,
        key: &str,
        expected: crate::Version,
        version: crate::Version,
        value: &[u8],
    ) -> crate::Result<crate::CasOutcome> {
        jitter().await;
        let out = self.0.replace(key, expected, version, value).await;
        jitter().await;
        out
    }

    async fn replace_and_publish(
        &self,
        key: &str,
        expected: crate::Version,
        version: crate::Version,
        value: &[u8],
        event: &[u8],
    ) -> crate::Result<crate::CasOutcome> {
        jitter().await;
        let out = self
            .0
            .replace_and_publish(key, expected, version, value, event)
            .await;
        jitter().await;
        out
    }

    async fn publish(&self, key: &str, event: &[u8]) -> crate::Result<()> {
        self.0.publish(key, event).await
    }

    async fn subscribe(
        &self,
        key: &str,
    ) -> crate::Result<Box<dyn crate::store::EventSubscription>> {
        self.0.subscribe(key).await
    }

    async fn delete(
        &self,
        key: &str,
        expected: crate::Version,
    ) -> crate::Result<crate::CasOutcome> {
        jitter().await;
        let out = self.0.delete(key, expected).await;
        jitter().await;
        out
    }

    async fn claim(
        &self,
        key: &str,
        claim: crate::Claim,
        limit: u8,
        prefix: &[u8],
    ) -> crate::Result<Option<crate::Claimed>> {
        jitter().await;
        let out = self.0.claim(key, claim, limit, prefix).await;
        jitter().await;
        out
    }

    async fn release(&self, key: &str, id: u64) -> crate::Result<bool> {
        jitter().await;
        let out = self.0.release(key, id).await;
        jitter().await;
        out
    }

    async fn ping(&self) -> crate::Result<()> {
        self.0.ping().await
    }
}

/// A vault like [`vault`], on the harness's store wrapped in [`Interleaved`].
pub fn interleaved_vault(h: &dyn Harness) -> (Vault, Arc<MemoryAuditSink>) {
    vault_on(Arc::new(Interleaved(h.store())), h, h.keys())
}

/// A valid Visa submission.
pub fn visa_form() -> FormInput {
    FormInput::new()
        .with("card_number", "4242 4242 4242 4242")
        .with("expiry", "12/2039")
        .with("cvc", "123")
        .with("cardholder_name", "Ada Lovelace")
}

/// A valid Amex submission (4-digit security code).
pub fn amex_form() -> FormInput {
    FormInput::new()
        .with("card_number", "378282246310005")
        .with("expiry", "07/38")
        .with("cvc", "7391")
        .with("cardholder_name", "Grace Hopper")
}

/// Expands to one `#[tokio::test]` per conformance function, each building its own harness
/// from `$harness` (an expression, evaluated inside an async test, so `.await` is allowed).
///
/// The calling crate needs `tokio` (with `macros` and `rt-multi-thread`) as a
/// dev-dependency.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::__conformance_group!(store, $harness;
            create_if_absent, load_of_missing_key_is_none, replace_needs_the_current_version,
            replace_of_missing_key_conflicts, replace_keeps_the_ttl, delete_needs_the_current_version,
            entries_expire_after_their_ttl, keys_are_independent, binary_values_round_trip,
            concurrent_creates_have_one_winner, concurrent_replaces_have_one_winner,
            concurrent_increments_lose_no_update, repeated_create_is_applied_once,
            repeated_replace_is_applied_once, claims_are_counted_up_to_the_limit,
            replace_keeps_claims, claims_need_the_prefix, release_gives_back_the_latest_claim_only,
            concurrent_claims_take_each_place_once,
            ping_answers);
        $crate::__conformance_group!(flow, $harness;
            whole_flow_reveals_once, status_shows_the_masked_card_once_submitted, wrong_pins_count_down_then_lock, expiry_follows_the_clock,
            cancel_leaves_a_tombstone, other_tenants_see_not_found, custom_forms_round_trip,
            store_holds_no_secrets, audit_events_carry_no_id_or_secret);
        $crate::__conformance_group!(concurrency, $harness;
            one_reveal_among_32_concurrent, at_most_max_attempts_among_50_wrong_guesses,
            one_submit_among_16_concurrent, wrong_guesses_racing_a_correct_reveal);
        $crate::__conformance_group!(integrity, $harness;
            flipped_byte_anywhere_is_integrity_error, truncated_and_extended_records_are_integrity_errors,
            field_moved_between_sessions_is_integrity_error, field_moved_between_fields_is_integrity_error,
            record_moved_between_sessions_is_integrity_error, record_retagged_to_other_tenant_does_not_open);
        $crate::__conformance_group!(errors, $harness;
            every_error_code_is_reachable, a_full_store_finishes_its_sessions,
            rotation_keeps_sealed_records_readable,
            unknown_key_id_is_key_unavailable);
        $crate::__conformance_group!(events, $harness;
            events_are_published_with_their_write_only, watch_reports_each_event_once_in_order,
            late_watch_learns_the_state_first, watch_ends_at_cancel_and_expiry,
            forged_events_are_dropped);
        $crate::__conformance_group!(faults, $harness;
            every_write_of_every_operation_under_every_fault, a_full_cycle_takes_five_round_trips);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_group {
    ($group:ident, $harness:expr; $($name:ident),* $(,)?) => {
        mod $group {
            // `allow`, not `expect`: the glob is used when the harness expression names
            // something of the calling module, and unused when it is a full path.
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let harness = $harness;
                    $crate::conformance::$group::$name(&harness).await;
                }
            )*
        }
    };
}
