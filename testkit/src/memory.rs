//! The memory store as the conformance suite and the adversarial suites run it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use pci_vault::conformance::Harness;
use pci_vault::{Clock, EphemeralStore, ManualClock};
use pci_vault_memory::{MemoryLimits, MemoryStore};

/// 2031-01-15T10:00:00Z, as time since the Unix epoch: a fixed "now" for suites whose
/// results depend on the date. Far from a month's end.
pub const NOW: Duration = Duration::from_secs(1_926_237_600);

/// A memory store and the manual clock it expires entries by.
#[derive(Clone)]
pub struct MemoryHarness {
    /// The store, reachable as someone with access to the store would reach it.
    pub store: Arc<MemoryStore>,
    /// Its clock: time passes only when the test advances it.
    pub clock: Arc<ManualClock>,
    /// What [`Harness::store`] hands out: the store, or the store behind one more layer.
    handed_out: Arc<dyn EphemeralStore>,
}

impl MemoryHarness {
    /// A fresh store on a manual clock starting at the current time.
    pub fn new() -> Self {
        Self::on(Arc::new(ManualClock::starting_now()))
    }

    /// A fresh store on a manual clock starting at `now`.
    pub fn at(now: SystemTime) -> Self {
        Self::on(Arc::new(ManualClock::new(now)))
    }

    /// A fresh store at the fixed [`NOW`].
    pub fn at_fixed_now() -> Self {
        Self::at(UNIX_EPOCH + NOW)
    }

    fn on(clock: Arc<ManualClock>) -> Self {
        let store = Arc::new(MemoryStore::with_clock(
            MemoryLimits::default(),
            clock.clone(),
        ));
        MemoryHarness {
            handed_out: store.clone(),
            store,
            clock,
        }
    }

    /// A fresh store whose [`Harness::store`] is the store behind one more
    /// `Arc<dyn EphemeralStore>`, so that every call goes through the forwarding
    /// implementation.
    pub fn through_dyn_arc() -> Self {
        let harness = Self::new();
        let layered: Arc<dyn EphemeralStore> = harness.store.clone();
        MemoryHarness {
            handed_out: Arc::new(layered),
            ..harness
        }
    }
}

impl std::fmt::Debug for MemoryHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryHarness").finish_non_exhaustive()
    }
}

impl Default for MemoryHarness {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Harness for MemoryHarness {
    fn store(&self) -> Arc<dyn EphemeralStore> {
        self.handed_out.clone()
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    async fn bounded_store(&self) -> Option<Arc<dyn EphemeralStore>> {
        let limits = MemoryLimits::default().with_max_entries(3);
        Some(Arc::new(MemoryStore::with_clock(
            limits,
            self.clock.clone(),
        )))
    }
}
