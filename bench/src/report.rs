//! What a run measured, as text or JSON.

use std::time::Duration;

use serde_json::json;

use crate::probes::CpuUsed;

/// Latency per cycle.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Latency {
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
}

/// The measurements of one run.
pub(crate) struct RunResult {
    pub(crate) cycles: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) elapsed: Duration,
    pub(crate) latency: Latency,
    pub(crate) cpu: CpuUsed,
    /// Peak resident memory of the process under test (server, Node), when it is separate.
    pub(crate) peak_rss: Option<u64>,
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
        let (r, l) = (&self.result, &self.result.latency);
        json!({
            "target": self.target,
            "concurrency": self.concurrency,
            "seconds": r.elapsed.as_secs_f64(),
            "cycles": r.cycles,
            "errors": r.errors,
            "first_error": r.first_error,
            "cycles_per_second": self.per_second(),
            "latency_us": { "p50": l.p50_us, "p99": l.p99_us, "max": l.max_us },
            "client_cpu_seconds": r.cpu.client.map(|d| d.as_secs_f64()),
            "client_cpu_us_per_cycle": self.per_cycle_us(r.cpu.client),
            "server_cpu_seconds": r.cpu.server.map(|d| d.as_secs_f64()),
            "server_cpu_us_per_cycle": self.per_cycle_us(r.cpu.server),
            "redis_cpu_seconds": r.cpu.redis.map(|d| d.as_secs_f64()),
            "redis_cpu_us_per_cycle": self.per_cycle_us(r.cpu.redis),
            "peak_rss_bytes": r.peak_rss,
        })
        .to_string()
    }

    pub(crate) fn to_text(&self) -> String {
        let (r, l) = (&self.result, &self.result.latency);
        let cpu = |label: &str, d: Option<Duration>| match (d, self.per_cycle_us(d)) {
            (Some(d), Some(per)) => {
                format!(", {label} CPU {:.2} s ({per:.1} µs/cycle)", d.as_secs_f64())
            }
            _ => String::new(),
        };
        let rss = r
            .peak_rss
            .map(|b| format!(", peak RSS {:.1} MiB", b as f64 / 1048576.0))
            .unwrap_or_default();
        let error = r
            .first_error
            .as_ref()
            .map(|e| format!(" (first error: {e})"))
            .unwrap_or_default();
        format!(
            "{} c={}: {:.0} cycles/s ({} cycles, {} errors{error}, {:.1} s); per cycle p50 {} µs, p99 {} µs, max {} µs{}{}{}{rss}",
            self.target,
            self.concurrency,
            self.per_second(),
            r.cycles,
            r.errors,
            r.elapsed.as_secs_f64(),
            l.p50_us,
            l.p99_us,
            l.max_us,
            cpu("client", r.cpu.client),
            cpu("server", r.cpu.server),
            cpu("redis-server", r.cpu.redis),
        )
    }
}
