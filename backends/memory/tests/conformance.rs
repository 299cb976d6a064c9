//! The whole conformance suite against the memory store: once directly, once through an
//! extra `Arc<dyn EphemeralStore>` layer, and the memory store's own bounds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pci_vault::conformance::Harness;
use pci_vault::{Clock, EphemeralStore, ManualClock};
use pci_vault_memory::{MemoryLimits, MemoryStore};

/// A memory store and the manual clock it expires entries by.
struct MemoryHarness {
    store: Arc<dyn EphemeralStore>,
    clock: Arc<ManualClock>,
}

impl MemoryHarness {
    /// A fresh store on a fresh manual clock.
    fn new() -> Self {
        let clock = Arc::new(ManualClock::starting_now());
        let store = Arc::new(MemoryStore::with_clock(
            MemoryLimits::default(),
            clock.clone(),
        ));
        MemoryHarness { store, clock }
    }

    /// The same store behind one more `Arc<dyn EphemeralStore>`, so every call goes through
    /// the forwarding implementation.
    fn through_dyn_arc() -> Self {
        let h = MemoryHarness::new();
        let layered: Arc<dyn EphemeralStore> = Arc::new(h.store.clone());
        MemoryHarness {
            store: layered,
            clock: h.clock,
        }
    }
}

#[async_trait]
impl Harness for MemoryHarness {
    fn store(&self) -> Arc<dyn EphemeralStore> {
        self.store.clone()
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    async fn bounded_store(&self) -> Option<Arc<dyn EphemeralStore>> {
        let limits = MemoryLimits {
            max_entries: 3,
            ..MemoryLimits::default()
        };
        Some(Arc::new(MemoryStore::with_clock(
            limits,
            self.clock.clone(),
        )))
    }
}

mod memory {
    use super::MemoryHarness;
    pci_vault::conformance_tests!(MemoryHarness::new());
}

mod memory_through_dyn_arc {
    use super::MemoryHarness;
    pci_vault::conformance_tests!(MemoryHarness::through_dyn_arc());
}
