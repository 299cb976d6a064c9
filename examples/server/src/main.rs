//! `pci-vault-server`: see the crate README for flags, environment variables and endpoints.

use std::process::ExitCode;

use clap::Parser as _;
use pci_vault_server::config::{Args, Tool};
use pci_vault_server::metrics::Metrics;
use pci_vault_server::server::{init_logging, run};
use pci_vault_server::tools;

/// Requests make many small, short-lived allocations across the runtime's threads, where
/// glibc's allocator was a fifth of the server's instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match &args.command {
        Some(Tool::AuditRef { session_ids }) => {
            return tools::audit_ref(args.audit_key_file.as_deref(), session_ids);
        }
        Some(Tool::HsmCreateKey) => return tools::hsm_create_key(args.key_source.as_deref()),
        None => {}
    }
    let metrics = Metrics::new();
    init_logging(args.log_format, &metrics);
    match run(args, metrics).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the server could not run");
            ExitCode::FAILURE
        }
    }
}
