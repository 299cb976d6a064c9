//! Full cycles through the Node binding: `bench/node/load.mjs` runs them in a Node.js
//! process and reports them as JSON; this driver reads redis-server's CPU at the marks the
//! script prints around its measured phase.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::drive::Plan;
use crate::probes::{CpuUsed, RedisCpu};
use crate::report::{Latency, RunResult};

pub(crate) async fn run(
    plan: &Plan,
    script: &str,
    redis_url: Option<&str>,
) -> Result<RunResult, String> {
    let redis = match redis_url {
        Some(url) => Some(RedisCpu::connect(url).await?),
        None => None,
    };
    let mut child = Command::new("node")
        .arg(script)
        .args(["--store", redis_url.unwrap_or("memory")])
        .args(["--concurrency", &plan.concurrency.to_string()])
        .args(["--duration", &plan.duration.as_secs_f64().to_string()])
        .args(["--warmup", &plan.warmup.as_secs_f64().to_string()])
        .args(["--ttl", &plan.ttl.as_secs().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run node: {e}"))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (marks, mut marked) = tokio::sync::mpsc::unbounded_channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut other = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("measure-") {
                let _ = marks.send(line);
            } else {
                other.push_str(&line);
                other.push('\n');
            }
        }
        other
    });
    let mut readings = Vec::new();
    while let Some(mark) = marked.recv().await {
        let reading = match &redis {
            Some(r) => r.read().await,
            None => None,
        };
        readings.push((mark, reading));
    }
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .ok_or("no stdout")?
        .read_to_string(&mut stdout)
        .map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    let errors_text = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("node exited with {status}: {errors_text}"));
    }
    let v: Value =
        serde_json::from_str(&stdout).map_err(|e| format!("node printed no JSON: {e}"))?;
    let number = |path: &[&str]| {
        path.iter()
            .try_fold(&v, |v, k| v.get(k))
            .and_then(Value::as_f64)
    };
    let redis_cpu = match readings.as_slice() {
        [(a, Some(x)), (b, Some(y))] if a == "measure-start" && b == "measure-end" => {
            Some(y.saturating_sub(*x))
        }
        _ => None,
    };
    Ok(RunResult {
        cycles: number(&["cycles"]).unwrap_or(0.0) as u64,
        errors: number(&["errors"]).unwrap_or(0.0) as u64,
        first_error: v
            .get("first_error")
            .and_then(Value::as_str)
            .map(str::to_owned),
        elapsed: Duration::from_secs_f64(number(&["seconds"]).unwrap_or(0.0)),
        latency: Latency {
            p50_us: number(&["latency_us", "p50"]).unwrap_or(0.0) as u64,
            p99_us: number(&["latency_us", "p99"]).unwrap_or(0.0) as u64,
            max_us: number(&["latency_us", "max"]).unwrap_or(0.0) as u64,
        },
        cpu: CpuUsed {
            client: number(&["cpu_seconds"]).map(Duration::from_secs_f64),
            redis: redis_cpu,
            server: None,
        },
        peak_rss: number(&["node_rss_bytes"]).map(|b| b as u64),
    })
}
