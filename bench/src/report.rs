//! What a run measured, as text or JSON.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;

/// The measurements of one run.
pub(crate) struct RunResult {
    pub(crate) cycles: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
    /// Latency per cycle, in microseconds.
    pub(crate) latency_us: Histogram<u64>,
    pub(crate) client_cpu: Option<Duration>,
    pub(crate) redis_cpu: Option<Duration>,
}

pub(crate) struct Report {
    target: String,
    concurrency: usize,
    result: RunResult,
}

impl Report {
    pub(crate) fn new(target: &str, concurrency: usize, result: RunResult) -> Self {
        Report {
            target: target.to_owned(),
            concurrency,
            result,
        }
    }

    fn per_second(&self) -> f64 {
        self.result.cycles as f64 / self.result.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    fn per_cycle_us(&self, cpu: Option<Duration>) -> Option<f64> {
        cpu.filter(|_| self.result.cycles > 0)
            .map(|c| c.as_secs_f64() * 1e6 / self.result.cycles as f64)
    }

    pub(crate) fn to_json(&self) -> String {
        let h = &self.result.latency_us;
        json!({
            "target": self.target,
            "concurrency": self.concurrency,
            "seconds": self.result.elapsed.as_secs_f64(),
            "cycles": self.result.cycles,
            "errors": self.result.errors,
            "cycles_per_second": self.per_second(),
            "latency_us": { "p50": h.value_at_quantile(0.50), "p99": h.value_at_quantile(0.99), "max": h.max() },
            "client_cpu_seconds": self.result.client_cpu.map(|d| d.as_secs_f64()),
            "client_cpu_us_per_cycle": self.per_cycle_us(self.result.client_cpu),
            "redis_cpu_seconds": self.result.redis_cpu.map(|d| d.as_secs_f64()),
            "redis_cpu_us_per_cycle": self.per_cycle_us(self.result.redis_cpu),
        })
        .to_string()
    }

    pub(crate) fn to_text(&self) -> String {
        let h = &self.result.latency_us;
        let cpu = |label: &str, d: Option<Duration>| match (d, self.per_cycle_us(d)) {
            (Some(d), Some(per)) => {
                format!(", {label} CPU {:.2} s ({per:.1} µs/cycle)", d.as_secs_f64())
            }
            _ => String::new(),
        };
        format!(
            "{} c={}: {:.0} cycles/s ({} cycles, {} errors, {:.1} s); per cycle p50 {} µs, p99 {} µs, max {} µs{}{}",
            self.target,
            self.concurrency,
            self.per_second(),
            self.result.cycles,
            self.result.errors,
            self.result.elapsed.as_secs_f64(),
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.99),
            h.max(),
            cpu("client", self.result.client_cpu),
            cpu("redis-server", self.result.redis_cpu),
        )
    }
}
