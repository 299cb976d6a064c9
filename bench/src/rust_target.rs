//! Full cycles through the Rust API, in this process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use pci_vault::{EphemeralStore, ExposeSecret, FormInput, Keyring, SessionOptions, Vault};
use pci_vault_memory::{MemoryLimits, MemoryStore};
use pci_vault_redis::{RedisOptions, RedisStore};

use crate::cpu::process_cpu;
use crate::report::RunResult;

pub(crate) struct Plan {
    pub(crate) concurrency: usize,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    pub(crate) ttl: Duration,
}

const CARD: &str = "4242424242424242";

fn form() -> FormInput {
    FormInput::new()
        .with("card_number", CARD)
        .with("expiry", "12/34")
        .with("cvc", "123")
        .with("cardholder_name", "Ada Lovelace")
}

/// One full cycle; an error names the step that failed.
async fn cycle(vault: &Vault, options: &SessionOptions, input: &FormInput) -> Result<(), String> {
    let ticket = vault
        .create_session(options)
        .await
        .map_err(|e| format!("create: {}", e.code()))?;
    let receipt = vault
        .submit(&ticket.id, input)
        .await
        .map_err(|e| format!("submit: {}", e.code()))?;
    let form = vault
        .reveal(&ticket.id, &receipt.pin)
        .await
        .map_err(|e| format!("reveal: {}", e.code()))?;
    let ok = form
        .get("card_number")
        .is_some_and(|v| v.expose_secret() == CARD)
        && form.get("cvc").is_some_and(|v| v.expose_secret() == "123");
    if ok {
        Ok(())
    } else {
        Err("reveal returned other values".into())
    }
}

pub(crate) async fn run_memory(plan: &Plan) -> Result<RunResult, String> {
    let limits = MemoryLimits {
        max_entries: 50_000_000,
        max_bytes: 16 << 30,
    };
    let store = Arc::new(MemoryStore::with_clock(
        limits,
        Arc::new(pci_vault::SystemClock),
    ));
    run(plan, store, None).await
}

pub(crate) async fn run_redis(plan: &Plan, url: &str) -> Result<RunResult, String> {
    let store = RedisStore::connect(RedisOptions::new(url))
        .await
        .map_err(|e| e.to_string())?;
    let info = RedisCpu::connect(url).await?;
    run(plan, Arc::new(store), Some(info)).await
}

/// Reads redis-server's own CPU counters (`INFO cpu`).
pub(crate) struct RedisCpu(redis::aio::MultiplexedConnection);

impl RedisCpu {
    pub(crate) async fn connect(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        client
            .get_multiplexed_async_connection()
            .await
            .map(RedisCpu)
            .map_err(|e| e.to_string())
    }

    /// `used_cpu_user + used_cpu_sys` of the server.
    pub(crate) async fn read(&self) -> Option<Duration> {
        let text: String = redis::cmd("INFO")
            .arg("cpu")
            .query_async(&mut self.0.clone())
            .await
            .ok()?;
        let field = |name: &str| -> Option<f64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
        };
        Some(Duration::from_secs_f64(
            field("used_cpu_user")? + field("used_cpu_sys")?,
        ))
    }
}

async fn run(
    plan: &Plan,
    store: Arc<dyn EphemeralStore>,
    redis: Option<RedisCpu>,
) -> Result<RunResult, String> {
    let vault = Vault::builder(store, Arc::new(Keyring::ephemeral()))
        .build()
        .map_err(|e| e.to_string())?;
    let options = SessionOptions {
        ttl: plan.ttl,
        ..SessionOptions::default()
    };
    cycle(&vault, &options, &form()).await?;

    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(plan.concurrency);
    for _ in 0..plan.concurrency {
        let (vault, options) = (vault.clone(), options.clone());
        let (measuring, stop, errors) = (measuring.clone(), stop.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let input = form();
            let mut hist =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
            let mut first_error = None;
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                let outcome = cycle(&vault, &options, &input).await;
                if measuring.load(Ordering::Relaxed) {
                    match outcome {
                        Ok(()) => {
                            let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                            hist.saturating_record(us.max(1));
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
            Ok::<_, String>((hist, first_error))
        }));
    }
    tokio::time::sleep(plan.warmup).await;
    let redis0 = match &redis {
        Some(r) => r.read().await,
        None => None,
    };
    let cpu0 = process_cpu("self");
    let started = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(plan.duration).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu1 = process_cpu("self");
    let redis1 = match &redis {
        Some(r) => r.read().await,
        None => None,
    };
    stop.store(true, Ordering::Relaxed);

    let mut latency =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    let mut first_error = None;
    for task in tasks {
        let (hist, err) = task.await.map_err(|e| e.to_string())??;
        latency.add(&hist).map_err(|e| e.to_string())?;
        if first_error.is_none() {
            first_error = err;
        }
    }
    if let Some(e) = first_error {
        eprintln!("first error: {e}");
    }
    Ok(RunResult {
        cycles: latency.len(),
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        latency_us: latency,
        client_cpu: cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a)),
        redis_cpu: redis0.zip(redis1).map(|(a, b)| b.saturating_sub(a)),
    })
}
