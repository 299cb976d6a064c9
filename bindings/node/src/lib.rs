//! Node.js binding of pci-vault: the `Vault` class with a Promise API (napi-rs).
//!
//! A thin layer: [`args`] reads JavaScript arguments without trusting their types,
//! [`options`] turns `Vault.open`/`createSession` options into core options, [`vault`]
//! calls the core (at once, or on the binding's tokio runtime when it waits), [`results`]
//! shapes what the Promises resolve to, and [`errors`] is the one place where failures
//! become JavaScript errors with the stable codes; [`audit`] hands audit events to a
//! JavaScript callback; [`key_provider`] lets a JavaScript object wrap and unwrap data keys.
//! The package's README and `index.d.ts` document the JavaScript API;
//! `test/` exercises it from Node.
//!
//! The Rust side allocates with mimalloc: a cycle makes a few dozen small allocations,
//! and glibc's allocator was a tenth of its CPU time.

mod args;
mod audit;
mod errors;
mod key_provider;
mod options;
mod results;
mod vault;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
