//! The measuring loop shared by the targets that run cycles from this process.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::probes::{CpuUsed, Probes};
use crate::report::{Latency, RunResult};

/// How long and how wide a run is.
pub(crate) struct Plan {
    pub(crate) concurrency: usize,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    pub(crate) ttl: Duration,
}

fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())
}

/// Runs `plan.concurrency` tasks, each calling `cycle` in a loop, for the warm-up and then
/// the measured phase; records the latency of each successful cycle of the measured phase in
/// microseconds, and reads `probes` at its start and end.
pub(crate) async fn drive<F, Fut>(
    plan: &Plan,
    cycle: F,
    probes: &Probes,
) -> Result<RunResult, String>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    cycle().await?;
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let yield_every = if plan.concurrency > 1 {
        Duration::ZERO
    } else {
        Duration::from_millis(1)
    };
    let mut tasks = Vec::with_capacity(plan.concurrency);
    for _ in 0..plan.concurrency {
        let cycle = cycle.clone();
        let (measuring, stop, errors) = (measuring.clone(), stop.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram()?;
            let mut first_error = None;
            let mut last_yield = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                let outcome = cycle().await;
                // A memory-store cycle never waits, so it never returns to the scheduler
                // on its own: without this, the workers would hold every thread, and the
                // timers that end the phases would never fire. With other workers, yield
                // after every cycle, as a host serving many callers would, so that the
                // latency includes the wait for the others (queueing, as in any server);
                // alone, once a millisecond is enough for the timers.
                if last_yield.elapsed() >= yield_every {
                    tokio::task::yield_now().await;
                    last_yield = Instant::now();
                }
                if !measuring.load(Ordering::Relaxed) {
                    continue;
                }
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
            Ok::<_, String>((hist, first_error))
        }));
    }
    tokio::time::sleep(plan.warmup).await;
    let before = probes.read().await;
    let started = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(plan.duration).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let after = probes.read().await;
    stop.store(true, Ordering::Relaxed);

    let mut latency = histogram()?;
    let mut first_error = None;
    for task in tasks {
        let (hist, err) = task.await.map_err(|e| e.to_string())??;
        latency.add(&hist).map_err(|e| e.to_string())?;
        if first_error.is_none() {
            first_error = err;
        }
    }
    Ok(RunResult {
        cycles: latency.len(),
        errors: errors.load(Ordering::Relaxed),
        first_error,
        elapsed,
        latency: Latency {
            p50_us: latency.value_at_quantile(0.50),
            p99_us: latency.value_at_quantile(0.99),
            max_us: latency.max(),
        },
        cpu: CpuUsed::between(&before, &after),
        peak_rss: None,
    })
}
