//! `pci-vault-load`: drives full cycles (create → submit → reveal, checking the revealed
//! values) for a fixed time at a fixed concurrency, and reports cycles/s, latency per cycle
//! (p50/p99/max) and the CPU time of the client and of `redis-server`.
//!
//! ```sh
//! pci-vault-load --target rust-memory --concurrency 1 --duration 10
//! pci-vault-load --target rust-redis --redis-url redis://127.0.0.1:6391 --concurrency 64 --json
//! pci-vault-load --target node-memory --concurrency 64        # needs the built Node binding
//! pci-vault-load --target http-memory --concurrency 64        # needs a release pci-vault-server
//! pci-vault-load --target rust-redis --redis-url redis://127.0.0.1:6391 --min-replicas 1
//! pci-vault-load --target rust-redis --redis-url redis://127.0.0.1:6391 --round-trips 200
//! ```
//!
//! `--round-trips N` measures nothing itself: it runs N operations of each kind one after
//! another (creates; create + submit; full cycles; create + submit + one wrong PIN), printing
//! `mark NAME` before and `end NAME` after each batch and waiting for a line on stdin after
//! each print, so that `bench/compare.py` can read the counters of a proxy in front of Redis
//! between them.

#![expect(
    clippy::print_stdout,
    reason = "a command-line tool that prints its report"
)]

mod drive;
mod footprint;
mod http_target;
mod node_target;
mod probes;
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
    /// The Node binding in a Node.js process (`bench/node/load.mjs`), on the memory store.
    NodeMemory,
    /// The Node binding in a Node.js process, on Redis.
    NodeRedis,
    /// The example server over HTTP (started by this driver), on the memory store.
    HttpMemory,
    /// The example server over HTTP, on Redis.
    HttpRedis,
    /// Not a load: bytes per submitted session in the memory store (`--sessions` of them).
    MemoryFootprint,
    /// Not a load: bytes per submitted session in Redis.
    RedisFootprint,
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
    /// The example server binary for the HTTP targets.
    #[arg(long, default_value = "target/release/pci-vault-server")]
    server_bin: String,
    /// For the HTTP targets: drive a server that is already running at this URL (with the
    /// driver's API key and lifted rate limits) instead of starting one.
    #[arg(long)]
    server_url: Option<String>,
    /// The Node load script for the Node targets.
    #[arg(long, default_value = "bench/node/load.mjs")]
    node_script: String,
    /// Sessions to store for the footprint targets.
    #[arg(long, default_value_t = 100_000)]
    sessions: usize,
    /// For `rust-redis`: replicas that must acknowledge every write (`WAIT`, pipelined with
    /// the write); 0 = the default, no wait.
    #[arg(long, default_value_t = 0)]
    min_replicas: u32,
    /// For `--min-replicas`: the longest wait for the replicas, in milliseconds.
    #[arg(long, default_value_t = 500)]
    min_replicas_timeout_ms: u64,
    /// For `rust-redis`: instead of a timed run, run N operations of each kind at
    /// concurrency 1 between marks (see the crate documentation).
    #[arg(long)]
    round_trips: Option<usize>,
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
    let plan = drive::Plan {
        concurrency: args.concurrency,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
        ttl: Duration::from_secs(args.ttl),
    };
    let redis = || {
        args.redis_url
            .as_deref()
            .ok_or("--redis-url is required for the Redis targets")
    };
    let server = match &args.server_url {
        Some(url) => http_target::ServerSpec::Running(url.clone()),
        None => http_target::ServerSpec::Start(args.server_bin.clone()),
    };
    let footprint = match args.target {
        Target::MemoryFootprint => Some(runtime.block_on(footprint::memory(args.sessions))),
        Target::RedisFootprint => Some(runtime.block_on(footprint::redis(redis()?, args.sessions))),
        _ => None,
    };
    let min_replicas = (args.min_replicas > 0).then(|| {
        pci_vault_redis::MinReplicas::new(
            args.min_replicas,
            Duration::from_millis(args.min_replicas_timeout_ms),
        )
    });
    if let Some(per_batch) = args.round_trips {
        if args.target != Target::RustRedis {
            return Err("--round-trips is for --target rust-redis".into());
        }
        return runtime.block_on(rust_target::round_trips(
            redis()?,
            min_replicas,
            per_batch,
            plan.ttl,
        ));
    }
    if let Some(report) = footprint {
        println!("{}", report?);
        return Ok(());
    }
    let result = runtime.block_on(async {
        match args.target {
            Target::RustMemory => rust_target::run_memory(&plan).await,
            Target::RustRedis => rust_target::run_redis(&plan, redis()?, min_replicas).await,
            Target::NodeMemory => node_target::run(&plan, &args.node_script, None).await,
            Target::NodeRedis => node_target::run(&plan, &args.node_script, Some(redis()?)).await,
            Target::HttpMemory => http_target::run(&plan, &server, None).await,
            Target::HttpRedis => http_target::run(&plan, &server, Some(redis()?)).await,
            Target::MemoryFootprint | Target::RedisFootprint => unreachable!("handled above"),
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
