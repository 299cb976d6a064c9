//! Full cycles over HTTP against the example server (`pci-vault-server`), started by this
//! driver on a free loopback port (or already running). The client is lean on purpose — one
//! HTTP/1.1 keep-alive connection per concurrent cycle, bodies prepared once, small typed
//! JSON reads — so that on a shared machine the driver takes as little CPU from the server
//! as it can.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::drive::{Plan, drive};
use crate::probes::{Probes, RedisCpu, peak_rss};
use crate::report::RunResult;

const CARD: &str = "4242424242424242";
const API_KEY: &str = "bench-api-key-0123456789abcdef";
const AUTHORIZATION: &str = "Bearer bench-api-key-0123456789abcdef";
const SUBMIT_BODY: &str = r#"{"fields":{"card_number":"4242424242424242","expiry":"12/34","cvc":"123","cardholder_name":"Ada Lovelace"}}"#;

/// Which server to drive.
pub(crate) enum ServerSpec {
    /// Start this binary.
    Start(String),
    /// Use the server at this URL (`http://host:port`), started elsewhere with `--api-keys`
    /// set to the driver's key and lifted rate limits.
    Running(String),
}

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

/// One keep-alive connection.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

async fn connect(authority: &str) -> Result<Connection, String> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(Connection { sender })
}

impl Connection {
    async fn post<T: for<'de> Deserialize<'de>>(
        &mut self,
        step: &str,
        path: &str,
        agent: bool,
        body: Bytes,
    ) -> Result<T, String> {
        let mut request = Request::post(path)
            .header("content-type", "application/json")
            .header("host", "127.0.0.1");
        if agent {
            request = request.header("authorization", AUTHORIZATION);
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        self.sender
            .ready()
            .await
            .map_err(|e| format!("{step}: {e}"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("{step}: {e}"))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{step}: {e}"))?
            .to_bytes();
        if status != StatusCode::OK && status != StatusCode::CREATED {
            return Err(format!("{step}: HTTP {status}"));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("{step}: {e}"))
    }
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
struct Receipt {
    pin: String,
}

#[derive(Deserialize)]
struct Revealed {
    fields: RevealedFields,
}

#[derive(Deserialize)]
struct RevealedFields {
    card_number: String,
    cvc: String,
}

async fn cycle(conn: &mut Connection, create_body: &Bytes) -> Result<(), String> {
    let created: Created = conn
        .post("create", "/v1/sessions", true, create_body.clone())
        .await?;
    let receipt: Receipt = conn
        .post(
            "submit",
            &format!("/forms/{}", created.id),
            false,
            Bytes::from_static(SUBMIT_BODY.as_bytes()),
        )
        .await?;
    let reveal_body = Bytes::from(format!(r#"{{"pin":"{}"}}"#, receipt.pin));
    let form: Revealed = conn
        .post(
            "reveal",
            &format!("/v1/sessions/{}/reveal", created.id),
            true,
            reveal_body,
        )
        .await?;
    if form.fields.card_number == CARD && form.fields.cvc == "123" {
        Ok(())
    } else {
        Err("reveal returned other values".into())
    }
}

pub(crate) async fn run(
    plan: &Plan,
    spec: &ServerSpec,
    redis_url: Option<&str>,
) -> Result<RunResult, String> {
    let started = match spec {
        ServerSpec::Start(bin) => Some(start_server(bin, redis_url.unwrap_or("memory"))?),
        ServerSpec::Running(_) => None,
    };
    let base = match (spec, &started) {
        (_, Some(server)) => server.base.clone(),
        (ServerSpec::Running(url) | ServerSpec::Start(url), None) => {
            url.trim_end_matches('/').to_owned()
        }
    };
    let authority = base
        .strip_prefix("http://")
        .ok_or("the HTTP targets speak plain http://")?
        .to_owned();
    let pid = started.as_ref().map(|s| s.child.id());
    let redis = match redis_url {
        Some(url) => Some(RedisCpu::connect(url).await?),
        None => None,
    };
    let probes = Probes {
        redis,
        server_pid: pid,
    };
    // One connection per concurrent cycle: a pool the cycles take from and give back.
    let mut pool = Vec::with_capacity(plan.concurrency + 1);
    for _ in 0..=plan.concurrency {
        pool.push(connect(&authority).await?);
    }
    let pool = Arc::new(Mutex::new(pool));
    let create_body = Bytes::from(format!(r#"{{"ttl_seconds":{}}}"#, plan.ttl.as_secs()));
    let one = move || {
        let (pool, create_body) = (pool.clone(), create_body.clone());
        async move {
            let mut conn = pool.lock().await.pop().ok_or("no free connection")?;
            let outcome = cycle(&mut conn, &create_body).await;
            pool.lock().await.push(conn);
            outcome
        }
    };
    let mut result = drive(plan, one, &probes).await?;
    result.peak_rss = pid.and_then(|pid| peak_rss(&pid.to_string()));
    Ok(result)
}
