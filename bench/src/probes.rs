//! What a run measures besides latency: CPU time of processes and peak memory.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` (`sysconf(_SC_CLK_TCK)`; 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU time of process `pid` (`self` for this process), or `None` when it
/// cannot be read.
pub(crate) fn process_cpu(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) / TICKS_PER_SECOND))
}

/// Peak resident memory (`VmHWM`) of process `pid`, in bytes.
pub(crate) fn peak_rss(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
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

/// CPU counters read at the start and the end of the measured phase.
pub(crate) struct Probes {
    /// redis-server, when the target uses Redis.
    pub(crate) redis: Option<RedisCpu>,
    /// Another process of the target (the HTTP server), by pid.
    pub(crate) server_pid: Option<u32>,
}

/// One reading of every probe.
pub(crate) struct Reading {
    client: Option<Duration>,
    redis: Option<Duration>,
    server: Option<Duration>,
}

impl Probes {
    pub(crate) async fn read(&self) -> Reading {
        let redis = match &self.redis {
            Some(r) => r.read().await,
            None => None,
        };
        Reading {
            client: process_cpu("self"),
            redis,
            server: self
                .server_pid
                .and_then(|pid| process_cpu(&pid.to_string())),
        }
    }
}

/// CPU used between two readings.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CpuUsed {
    pub(crate) client: Option<Duration>,
    pub(crate) redis: Option<Duration>,
    pub(crate) server: Option<Duration>,
}

impl CpuUsed {
    pub(crate) fn between(a: &Reading, b: &Reading) -> Self {
        let diff =
            |x: Option<Duration>, y: Option<Duration>| x.zip(y).map(|(x, y)| y.saturating_sub(x));
        CpuUsed {
            client: diff(a.client, b.client),
            redis: diff(a.redis, b.redis),
            server: diff(a.server, b.server),
        }
    }
}
