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
mod audit_ref;
mod errors;
mod events;
mod key_provider;
mod key_usage;
mod options;
mod results;
mod vault;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The binding's tokio runtime: one worker thread. An operation that waits on Redis runs
/// there together with the connection's own task, so each round trip wakes one thread.
/// With napi's default of one worker per core, the worker that received a reply woke
/// another one for the task it had just made runnable, which then found nothing to do:
/// about twice the runtime's context switches per cycle. One worker is not the bound on
/// throughput: at 64 cycles in flight it uses about as much CPU per cycle as the
/// JavaScript thread (docs/BENCHMARKS.md).
///
/// It must be in place before Node registers the module (napi starts its runtime then),
/// so it is built by a constructor of the shared library. If it cannot be built, napi
/// builds its default runtime, as it does after an environment shut this one down.
#[napi_derive::module_init]
fn init_runtime() {
    if let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("pci-vault")
        .enable_all()
        .build()
    {
        napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
    }
}
