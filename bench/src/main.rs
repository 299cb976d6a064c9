//! `pci-vault-load`: drives full cycles (create → submit → reveal, checking the revealed
//! values) for a fixed time at a fixed concurrency, and reports cycles/s, latency per cycle
//! (p50/p99/max) and the CPU time of the client and of `redis-server`.
//!
//! ```sh
//! pci-vault-load --target rust-memory --concurrency 1 --duration 10
//! pci-vault-load --target rust-redis --redis-url redis://127.0.0.1:6391 --concurrency 64 --json
//! ```

#![allow(
    clippy::print_stdout,
    reason = "a command-line tool that prints its report"
)]

mod cpu;
mod report;
mod rust_target;

use std::time::Duration;

use clap::{Parser, ValueEnum};

/// What to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// The Rust API in this process, on the memory store.
    RustMemory,
    /// The Rust API in this process, on Redis (`--redis-url`).
    RustRedis,
}

/// Runs full create → submit → reveal cycles and reports throughput and latency.
#[derive(Debug, Parser)]
#[command(name = "pci-vault-load", version)]
struct Args {
    /// What to drive.
    #[arg(long, value_enum)]
    target: Target,
    /// Cycles in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds to run before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Tokio worker threads of this process.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Redis URL for the Redis targets.
    #[arg(long, env = "PCI_VAULT_BENCH_REDIS_URL")]
    redis_url: Option<String>,
    /// Session TTL in seconds (sessions of finished cycles stay as tombstones until then).
    #[arg(long, default_value_t = 5)]
    ttl: u64,
    /// Print the result as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    if args.concurrency == 0 || args.duration <= 0.0 || args.threads == 0 {
        return Err("concurrency, duration and threads must be positive".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let plan = rust_target::Plan {
        concurrency: args.concurrency,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
        ttl: Duration::from_secs(args.ttl),
    };
    let result = runtime.block_on(async {
        match args.target {
            Target::RustMemory => rust_target::run_memory(&plan).await,
            Target::RustRedis => {
                let url = args
                    .redis_url
                    .as_deref()
                    .ok_or("--redis-url is required for rust-redis")?;
                rust_target::run_redis(&plan, url).await
            }
        }
    })?;
    let name = args
        .target
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    let report = report::Report::new(&name, args.concurrency, result);
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.to_text());
    }
    Ok(())
}
