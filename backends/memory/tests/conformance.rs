//! The whole conformance suite against the memory store: once directly, once through an
//! extra `Arc<dyn EphemeralStore>` layer, and the memory store's own bounds.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

use pci_vault_testkit::memory::MemoryHarness;

mod memory {
    use super::MemoryHarness;
    pci_vault::conformance_tests!(MemoryHarness::new());
}

mod memory_through_dyn_arc {
    use super::MemoryHarness;
    pci_vault::conformance_tests!(MemoryHarness::through_dyn_arc());
}
