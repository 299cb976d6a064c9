//! `pci-vault-server`: see the crate README for flags, environment variables and endpoints.

use std::process::ExitCode;

use clap::Parser as _;
use pci_vault_server::config::Args;
use pci_vault_server::server::{init_logging, run};

/// Requests make many small, short-lived allocations across the runtime's threads, where
/// glibc's allocator was a fifth of the server's instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the server could not run");
            ExitCode::FAILURE
        }
    }
}
