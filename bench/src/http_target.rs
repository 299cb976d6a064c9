//! Full cycles over HTTP against the example server (`pci-vault-server`), started by this
//! driver on a free loopback port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::drive::{Plan, drive};
use crate::probes::{Probes, RedisCpu, peak_rss};
use crate::report::RunResult;

const CARD: &str = "4242424242424242";
const API_KEY: &str = "bench-api-key-0123456789abcdef";

/// The server process; killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(bin: &str, store: &str) -> Result<Server, String> {
    let mut child = Command::new(bin)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--store",
            store,
            "--api-keys",
            API_KEY,
        ])
        .args([
            "--form-rate-limit",
            "4000000000",
            "--reveal-rate-limit",
            "4000000000",
        ])
        .args([
            "--memory-max-entries",
            "50000000",
            "--memory-max-bytes",
            "17179869184",
        ])
        .env("RUST_LOG", "warn")
        .env_remove("PCI_VAULT_KEYS")
        .env_remove("PCI_VAULT_API_KEYS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {bin}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let base = loop {
        let line = lines
            .next()
            .ok_or("the server exited at start")?
            .map_err(|e| e.to_string())?;
        if let Some(url) = line.strip_prefix("pci-vault-server listening on ") {
            break url.trim().to_owned();
        }
        if Instant::now() > deadline {
            return Err("the server did not start".into());
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(Server { child, base })
}

async fn cycle(client: &reqwest::Client, base: &str, ttl: u64) -> Result<(), String> {
    let fail = |step: &str, e: reqwest::Error| format!("{step}: {e}");
    let created: Value = client
        .post(format!("{base}/v1/sessions"))
        .bearer_auth(API_KEY)
        .json(&json!({ "ttl_seconds": ttl }))
        .send()
        .await
        .map_err(|e| fail("create", e))?
        .error_for_status()
        .map_err(|e| fail("create", e))?
        .json()
        .await
        .map_err(|e| fail("create", e))?;
    let id = created
        .pointer("/id")
        .and_then(Value::as_str)
        .ok_or("create: no id")?;
    let fields = json!({ "fields": {
        "card_number": CARD, "expiry": "12/34", "cvc": "123", "cardholder_name": "Ada Lovelace" } });
    let receipt: Value = client
        .post(format!("{base}/forms/{id}"))
        .json(&fields)
        .send()
        .await
        .map_err(|e| fail("submit", e))?
        .error_for_status()
        .map_err(|e| fail("submit", e))?
        .json()
        .await
        .map_err(|e| fail("submit", e))?;
    let pin = receipt
        .pointer("/pin")
        .and_then(Value::as_str)
        .ok_or("submit: no pin")?;
    let form: Value = client
        .post(format!("{base}/v1/sessions/{id}/reveal"))
        .bearer_auth(API_KEY)
        .json(&json!({ "pin": pin }))
        .send()
        .await
        .map_err(|e| fail("reveal", e))?
        .error_for_status()
        .map_err(|e| fail("reveal", e))?
        .json()
        .await
        .map_err(|e| fail("reveal", e))?;
    let field = |name: &str| {
        form.pointer(&format!("/fields/{name}"))
            .and_then(Value::as_str)
    };
    if field("card_number") == Some(CARD) && field("cvc") == Some("123") {
        Ok(())
    } else {
        Err("reveal returned other values".into())
    }
}

pub(crate) async fn run(
    plan: &Plan,
    bin: &str,
    redis_url: Option<&str>,
) -> Result<RunResult, String> {
    let server = start_server(bin, redis_url.unwrap_or("memory"))?;
    // reqwest is built without a default TLS provider; the driver speaks plain HTTP, but
    // the client still needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let redis = match redis_url {
        Some(url) => Some(RedisCpu::connect(url).await?),
        None => None,
    };
    let probes = Probes {
        redis,
        server_pid: Some(server.child.id()),
    };
    let (client, base, ttl) = (client, Arc::new(server.base.clone()), plan.ttl.as_secs());
    let one = move || {
        let (client, base) = (client.clone(), base.clone());
        async move { cycle(&client, &base, ttl).await }
    };
    let mut result = drive(plan, one, &probes).await?;
    result.peak_rss = peak_rss(&server.child.id().to_string());
    Ok(result)
}
