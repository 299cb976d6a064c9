//! Signed webhooks against real receivers on loopback (the development setting) and the
//! real router: retries until accepted with one idempotency key, signatures verified by
//! the README's Node and Python functions and rejected when replayed or altered, receivers
//! that never answer or do not listen, the address guard outside development, redirects,
//! TLS host names, proxies from the environment, the bounded queue, the logs, and the
//! binary's configuration.
//!
//! The server here runs in this process, so the test can hand events to
//! `Webhooks::enqueue` as the vault's session events do, while the same runtime serves
//! agent and customer requests.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

mod common;

use std::io::Write as _;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{ACME_KEY, KEY, card_fields};
use pci_vault::{SessionId, SessionState, Tenant};
use pci_vault_config::{KeySource, StoreConfig, VaultConfig};
use pci_vault_server::auth::ApiKeys;
use pci_vault_server::config::PublicUrl;
use pci_vault_server::metrics::Metrics;
use pci_vault_server::ratelimit::RateLimit;
use pci_vault_server::state::AppState;
use pci_vault_webhooks::config::WebhookSecret;
use pci_vault_webhooks::signing::{VerifyError, verify};
use pci_vault_webhooks::{WebhookConfig, WebhookEvent, WebhookMetrics, Webhooks};
use serde_json::{Value, json};

const SECRET: &str = "whsec_test_secret_0123456789abcdefABCDEF";
const OTHER_SECRET: &str = "whsec_other_secret_0123456789abcdefABCD";

// ---------------------------------------------------------------------------------------
// Logs: every line this process writes, to check no secret or session id reaches them.

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .json()
            .with_env_filter("debug,hyper=info,hyper_util=info,reqwest=info,rustls=info")
            .with_writer(move || writer.clone())
            .init();
        buffer
    })
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned()
}

/// The PINs the customer side handed out, which no log line may hold.
static PINS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn assert_clean_logs(ids: &[&str]) {
    let text = log_text();
    assert!(
        !text.contains(SECRET) && !text.contains(OTHER_SECRET),
        "a secret reached the log"
    );
    for id in ids {
        assert!(!text.contains(id), "a session id reached the log");
    }
    common::assert_no_secrets(&text, &PINS.lock().unwrap());
    let mut file =
        std::fs::File::create(common::log_dir().join("webhooks-in-process.log")).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

// ---------------------------------------------------------------------------------------
// Receivers.

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    headers: HeaderMap,
    body: Bytes,
    received_at: u64,
}

impl Delivery {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).unwrap().to_str().unwrap()
    }
}

#[derive(Clone, Default)]
struct Recorded {
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    /// Statuses of the first answers; every later one is 204.
    script: Arc<Mutex<Vec<Response>>>,
}

impl Recorded {
    fn all(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    async fn wait_for(&self, count: usize, within: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + within;
        loop {
            let all = self.all();
            if all.len() >= count {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} deliveries arrived",
                all.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn record(State(recorded): State<Recorded>, headers: HeaderMap, body: Bytes) -> Response {
    recorded.deliveries.lock().unwrap().push(Delivery {
        headers,
        body,
        received_at: unix_now(),
    });
    let mut script = recorded.script.lock().unwrap();
    if script.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        script.remove(0)
    }
}

/// An HTTP receiver on loopback answering `script` first, then 204.
async fn receiver(script: Vec<Response>) -> (String, Recorded) {
    let recorded = Recorded {
        script: Arc::new(Mutex::new(script)),
        ..Recorded::default()
    };
    let app = Router::new()
        .route("/hook", axum::routing::post(record))
        .with_state(recorded.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), recorded)
}

/// A listener that accepts connections and never reads or answers; counts them.
async fn silent_listener() -> (SocketAddr, Arc<Mutex<usize>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(Mutex::new(0usize));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            *count.lock().unwrap() += 1;
            held.push(socket);
        }
    });
    (addr, accepted)
}

/// A loopback port nobody listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------------------
// The server, in this process.

struct Server {
    base: String,
    client: reqwest::Client,
    webhooks: Webhooks,
    metrics: WebhookMetrics,
}

/// `tenants`: (tenant, url, secret); `settings`: extra members of the webhooks file.
async fn server(tenants: &[(&str, &str, &str)], settings: Value, development: bool) -> Server {
    let _ = logs();
    let mut file = settings;
    let mut map = serde_json::Map::new();
    for (tenant, url, secret) in tenants {
        map.insert((*tenant).to_owned(), json!({"url": url, "secret": secret}));
    }
    file["tenants"] = Value::Object(map);
    let config = WebhookConfig::parse(&file.to_string(), development).unwrap();
    let metrics = Metrics::new();
    let webhooks = Webhooks::start(config, metrics.webhooks().clone()).unwrap();
    let opened = VaultConfig::new(
        StoreConfig::parse("memory").unwrap(),
        KeySource::Development,
    )
    .open()
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limit = NonZeroU32::new(100_000).unwrap();
    let state = AppState::new(
        opened.vault,
        ApiKeys::parse(&format!("{KEY},acme={ACME_KEY}")).unwrap(),
        PublicUrl::for_listener(addr, false),
        RateLimit::per_minute("form", limit),
        RateLimit::per_minute("reveal", limit),
        metrics.clone(),
        webhooks.clone(),
    );
    let app = pci_vault_server::app::router(state, false)
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        base: format!("http://{addr}"),
        client: common::client(None),
        webhooks,
        metrics: metrics.webhooks().clone(),
    }
}

impl Server {
    /// Creates a session of the tenant `acme` (which has no receiver, so its own events
    /// are not delivered) and submits the test card over HTTP; returns its id.
    async fn submitted_session(&self) -> String {
        self.submitted_session_with(ACME_KEY).await
    }

    /// Creates a session with the API key `key` and submits the test card over HTTP;
    /// returns its id.
    async fn submitted_session_with(&self, key: &str) -> String {
        let id = self.created_session_with(key).await;
        let response = self
            .client
            .post(format!("{}/forms/{id}", self.base))
            .json(&json!({"fields": card_fields()}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        PINS.lock()
            .unwrap()
            .push(body["pin"].as_str().unwrap().to_owned());
        id
    }

    /// Creates a session with the API key `key`; returns its id.
    async fn created_session_with(&self, key: &str) -> String {
        let created: Value = self
            .client
            .post(format!("{}/v1/sessions", self.base))
            .bearer_auth(key)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        created["id"].as_str().unwrap().to_owned()
    }

    /// Asks to reveal `id` with `pin`; returns the status code.
    async fn reveal(&self, id: &str, pin: &str) -> StatusCode {
        self.client
            .post(format!("{}/v1/sessions/{id}/reveal", self.base))
            .bearer_auth(KEY)
            .json(&json!({"pin": pin}))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// The status of a session `submitted_session` created (tenant `acme`).
    async fn status(&self, id: &str) -> Value {
        let response = self
            .client
            .get(format!("{}/v1/sessions/{id}", self.base))
            .bearer_auth(ACME_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

fn event(id: &str, tenant: &str, session: &str) -> WebhookEvent {
    WebhookEvent {
        id: id.to_owned(),
        kind: pci_vault::SessionEventKind::Submitted,
        session: SessionId::parse(session).unwrap(),
        tenant: Tenant::new(tenant).unwrap(),
        state: SessionState::Submitted,
        at: SystemTime::now(),
        attempts_left: None,
    }
}

fn some_session() -> String {
    SessionId::generate().to_string()
}

fn fast_retries() -> Value {
    json!({"initial_backoff_ms": 20, "max_backoff_ms": 100, "connect_timeout_ms": 500, "timeout_ms": 1000})
}

async fn wait_for_count(metrics: &WebhookMetrics, tenant: &str, outcome: &'static str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while metrics.count(tenant, outcome) < n {
        assert!(
            Instant::now() < deadline,
            "{tenant}: {} of {n} events {outcome}",
            metrics.count(tenant, outcome)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The README's verify functions, run as written.

fn readme_block(marker: &str) -> String {
    let readme = include_str!("../README.md");
    let start = readme
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in the README"));
    let rest = &readme[start..];
    let open = rest.find("```").unwrap();
    let code_start = open + rest[open..].find('\n').unwrap() + 1;
    let close = code_start + rest[code_start..].find("```").unwrap();
    rest[code_start..close].to_owned()
}

/// Runs the README's Node and Python functions on each case (`header`, `body`, `now`) and
/// returns, for each, what both said (they must agree).
fn readme_verdicts(secret: &str, cases: &[(String, Vec<u8>, u64)]) -> Vec<bool> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let input: Vec<Value> = cases
        .iter()
        .map(|(header, body, now)| json!({"header": header, "body": b64.encode(body), "now": now}))
        .collect();
    let input = json!({"secret": secret, "cases": input}).to_string();
    let dir = tempfile::tempdir().unwrap();

    let node = dir.path().join("verify.js");
    std::fs::write(
        &node,
        format!(
            "{}\nconst input = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));\n\
             console.log(JSON.stringify(input.cases.map((c) => verifyPciVaultSignature(\
             input.secret, c.header, Buffer.from(c.body, 'base64'), 300, c.now))));\n",
            readme_block("<!-- verify-node -->")
        ),
    )
    .unwrap();
    let python = dir.path().join("verify.py");
    std::fs::write(
        &python,
        format!(
            "{}\nimport base64, json, sys\ninput = json.load(sys.stdin)\n\
             print(json.dumps([verify_pci_vault_signature(input['secret'], c['header'], \
             base64.b64decode(c['body']), 300, c['now']) for c in input['cases']]))\n",
            readme_block("<!-- verify-python -->")
        ),
    )
    .unwrap();
    let run = |program: &str, script: &std::path::Path| -> Vec<bool> {
        let mut child = std::process::Command::new(program)
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} (the test command installs it): {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{program} failed");
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let from_node = run("node", &node);
    let from_python = run("python3", &python);
    assert_eq!(
        from_node, from_python,
        "the Node and Python examples disagree"
    );
    from_node
}

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_the_event_once_accepted_and_verifies_it() {
    let (url, recorded) = receiver(vec![
        StatusCode::SERVICE_UNAVAILABLE.into_response(),
        (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")]).into_response(),
    ])
    .await;
    let server = server(&[("default", &url, SECRET)], fast_retries(), true).await;
    let session = server.submitted_session().await;
    server
        .webhooks
        .enqueue(event("evt_retry_1", "default", &session));

    let deliveries = recorded.wait_for(3, Duration::from_secs(10)).await;
    wait_for_count(&server.metrics, "default", "delivered", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorded.all().len(), 3, "an accepted event was sent again");
    assert_eq!(server.metrics.attempts("default", "retryable_status"), 2);
    assert_eq!(server.metrics.attempts("default", "accepted"), 1);
    assert_eq!(server.metrics.queued_count("default"), 1);
    assert_eq!(
        server.webhooks.pending(),
        0,
        "a delivered event is still pending"
    );

    let secret = WebhookSecret::new(SECRET).unwrap();
    for delivery in &deliveries {
        assert_eq!(delivery.header("idempotency-key"), "evt_retry_1");
        assert_eq!(delivery.header("content-type"), "application/json");
        assert!(
            delivery
                .header("user-agent")
                .starts_with("pci-vault-webhooks/")
        );
        assert_eq!(
            delivery.body, deliveries[0].body,
            "the body changed between attempts"
        );
        let signature = delivery.header("pci-vault-signature");
        assert_eq!(
            verify(
                &secret,
                signature,
                &delivery.body,
                delivery.received_at,
                300
            ),
            Ok(())
        );
        assert!(!signature.contains(SECRET));
    }
    // The body: exactly the documented members, no card data and no secret.
    let body: Value = serde_json::from_slice(&deliveries[2].body).unwrap();
    let members: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(members, ["at", "id", "kind", "session", "state", "tenant"]);
    assert_eq!(body["id"], "evt_retry_1");
    assert_eq!(body["kind"], "submitted");
    assert_eq!(body["session"], session.as_str());
    assert_eq!(body["tenant"], "default");
    assert_eq!(body["state"], "submitted");
    let text = String::from_utf8_lossy(&deliveries[2].body).into_owned();
    common::assert_no_secrets(&text, &[SECRET.to_owned()]);

    // A receiver that verifies: the delivery as received passes; replayed later, with its
    // body altered, or under another secret, it fails.
    let accepted = &deliveries[2];
    let header = accepted.header("pci-vault-signature").to_owned();
    let t: u64 = header[2..header.find(',').unwrap()].parse().unwrap();
    let mut altered = accepted.body.to_vec();
    let at = text.find("submitted").unwrap();
    altered[at..at + "submitted".len()].copy_from_slice(b"cancelled");
    assert_eq!(
        verify(&secret, &header, &accepted.body, t + 301, 300),
        Err(VerifyError::Stale)
    );
    assert_eq!(
        verify(&secret, &header, &altered, t, 300),
        Err(VerifyError::Mismatch)
    );
    let other = WebhookSecret::new(OTHER_SECRET).unwrap();
    assert_eq!(
        verify(&other, &header, &accepted.body, t, 300),
        Err(VerifyError::Mismatch)
    );

    let mut cases: Vec<(String, Vec<u8>, u64)> = deliveries
        .iter()
        .map(|d| {
            (
                d.header("pci-vault-signature").to_owned(),
                d.body.to_vec(),
                d.received_at,
            )
        })
        .collect();
    cases.push((header.clone(), accepted.body.to_vec(), t + 301));
    cases.push((header.clone(), accepted.body.to_vec(), t - 301));
    cases.push((header.clone(), altered, t));
    cases.push((
        header.replacen(&format!("t={t}"), &format!("t={}", t + 1), 1),
        accepted.body.to_vec(),
        t,
    ));
    cases.push((format!("t={t}"), accepted.body.to_vec(), t));
    assert_eq!(
        readme_verdicts(SECRET, &cases),
        [true, true, true, false, false, false, false, false]
    );
    assert_eq!(readme_verdicts(OTHER_SECRET, &cases[..1]), [false]);

    assert!(log_text().contains("a webhook attempt failed; it will be retried"));
    assert_clean_logs(&[&session]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_events_reach_its_tenants_receiver_once_each() {
    let (url, recorded) = receiver(Vec::new()).await;
    let server = server(&[("default", &url, SECRET)], fast_retries(), true).await;
    let session = server.submitted_session_with(KEY).await;
    let pin = PINS.lock().unwrap().last().unwrap().clone();
    let wrong = if pin.starts_with('0') { "1" } else { "0" }.repeat(pin.len());
    assert_eq!(server.reveal(&session, &wrong).await, StatusCode::FORBIDDEN);
    assert_eq!(server.reveal(&session, &pin).await, StatusCode::OK);

    let mut deliveries = recorded.wait_for(3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorded.all().len(), 3, "an event was delivered twice");
    // One tenant's deliveries run concurrently and may arrive in any order (the receiver
    // orders them by `at` and `state`): put them in the order the events happened.
    let rank = |d: &Delivery| {
        let body: Value = serde_json::from_slice(&d.body).unwrap();
        ["submitted", "reveal_failed", "revealed"]
            .iter()
            .position(|k| body["kind"] == *k)
    };
    deliveries.sort_by_key(rank);
    let secret = WebhookSecret::new(SECRET).unwrap();
    let mut ids = Vec::new();
    let bodies: Vec<Value> = deliveries
        .iter()
        .map(|d| {
            let signature = d.header("pci-vault-signature");
            assert_eq!(
                verify(&secret, signature, &d.body, d.received_at, 300),
                Ok(())
            );
            ids.push(d.header("idempotency-key").to_owned());
            serde_json::from_slice(&d.body).unwrap()
        })
        .collect();
    let kinds: Vec<&str> = bodies.iter().map(|b| b["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["submitted", "reveal_failed", "revealed"]);
    assert_eq!(bodies[1]["attempts_left"], 4);
    assert_eq!(bodies[1]["state"], "submitted");
    assert_eq!(bodies[2]["state"], "revealed");
    for (body, id) in bodies.iter().zip(&ids) {
        assert_eq!(body["session"], session.as_str());
        assert_eq!(body["tenant"], "default");
        assert_eq!(body["id"], id.as_str());
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "two events shared an id");
    for d in &deliveries {
        common::assert_no_secrets(&String::from_utf8_lossy(&d.body), &PINS.lock().unwrap());
    }
    assert_clean_logs(&[&session]);
}

/// A link opened again and again (reloads, link previews, a client looping on it) is
/// announced once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_opened_many_times_is_announced_once() {
    let (url, recorded) = receiver(Vec::new()).await;
    let server = server(&[("default", &url, SECRET)], fast_retries(), true).await;
    let id = server.created_session_with(KEY).await;
    for _ in 0..4 {
        let page = server
            .client
            .get(format!("{}/forms/{id}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
    }
    let cancelled = server
        .client
        .delete(format!("{}/v1/sessions/{id}", server.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::NO_CONTENT);
    recorded.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut kinds: Vec<String> = recorded
        .all()
        .iter()
        .map(|d| serde_json::from_slice::<Value>(&d.body).unwrap()["kind"].to_string())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["\"cancelled\"", "\"opened\""]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_receivers_never_block_operations_or_other_tenants() {
    let (silent, accepted) = silent_listener().await;
    let silent_url = format!("http://{silent}/hook");
    let closed_url = format!("http://127.0.0.1:{}/hook", closed_port());
    let (good_url, recorded) = receiver(Vec::new()).await;
    let settings = json!({
        "initial_backoff_ms": 50, "max_backoff_ms": 100, "connect_timeout_ms": 500,
        "timeout_ms": 3000, "max_attempts": 2, "queue_capacity": 16, "max_in_flight": 2
    });
    let server = server(
        &[
            ("default", &silent_url, SECRET),
            ("closed", &closed_url, SECRET),
            ("beta", &good_url, OTHER_SECRET),
        ],
        settings,
        true,
    )
    .await;

    // Fill the silent receiver's deliveries and queue, and the closed port's.
    let started = Instant::now();
    for i in 0..200 {
        server.webhooks.enqueue(event(
            &format!("evt_silent_{i}"),
            "default",
            &some_session(),
        ));
        server
            .webhooks
            .enqueue(event(&format!("evt_closed_{i}"), "closed", &some_session()));
    }
    let enqueue_time = started.elapsed();
    assert!(
        enqueue_time < Duration::from_millis(200),
        "400 enqueues took {enqueue_time:?}"
    );

    // Operations go on at their usual pace while those deliveries hang or fail.
    let mut ids = Vec::new();
    for i in 0..10 {
        let started = Instant::now();
        let id = server.submitted_session().await;
        let enqueued = Instant::now();
        server
            .webhooks
            .enqueue(event(&format!("evt_op_{i}"), "default", &id));
        assert!(
            enqueued.elapsed() < Duration::from_millis(5),
            "enqueue waited"
        );
        assert_eq!(server.status(&id).await["state"], "submitted");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "an operation took {took:?}");
        ids.push(id);
    }

    // Another tenant's receiver gets its event at once.
    let started = Instant::now();
    server
        .webhooks
        .enqueue(event("evt_beta_1", "beta", &some_session()));
    recorded.wait_for(1, Duration::from_secs(2)).await;
    assert!(started.elapsed() < Duration::from_secs(2));

    // The silent receiver holds `max_in_flight` connections; the queue dropped the rest.
    assert!(*accepted.lock().unwrap() >= 1);
    let dropped = server.metrics.count("default", "queue_full");
    let queued = server.metrics.queued_count("default");
    assert_eq!(dropped + queued, 210);
    assert!(queued <= 16 + 2 + 10, "{queued} queued");
    // The closed port fails fast: each event is tried twice, then dropped as exhausted.
    let acme_queued = server.metrics.queued_count("closed");
    wait_for_count(&server.metrics, "closed", "exhausted", acme_queued).await;
    assert_eq!(
        server.metrics.attempts("closed", "network"),
        2 * acme_queued
    );
    assert_eq!(
        server.metrics.count("closed", "queue_full") + acme_queued,
        200
    );
    // What the silent receiver holds, and what waits behind it, is pending until it is
    // exhausted.
    let pending = server.webhooks.pending();
    let given_up = server.metrics.count("default", "exhausted");
    assert!(
        pending + given_up >= queued,
        "{pending} pending and {given_up} given up of {queued} queued"
    );
    // The silent one times out (3 s a try, 2 tries), then exhausts too.
    wait_for_count(&server.metrics, "default", "exhausted", 1).await;
    assert!(server.metrics.attempts("default", "timeout") >= 2);

    let text = log_text();
    assert!(text.contains("the webhook queue is full; the event was dropped"));
    assert!(text.contains("every webhook attempt failed; the event was dropped"));
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_clean_logs(&ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_development_loopback_receivers_are_refused_before_connecting() {
    let (addr, accepted) = silent_listener().await;
    let url = format!("https://localhost:{}/hook", addr.port());
    let server = server(&[("default", &url, SECRET)], fast_retries(), false).await;
    server
        .webhooks
        .enqueue(event("evt_guard_1", "default", &some_session()));
    wait_for_count(&server.metrics, "default", "refused", 1).await;
    assert_eq!(
        server.metrics.attempts("default", "refused"),
        1,
        "a refused address was retried"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        *accepted.lock().unwrap(),
        0,
        "a connection reached a loopback receiver"
    );

    // Address hosts are refused when the file is read, in every spelling.
    for host in [
        "127.0.0.1",
        "2130706433",
        "0x7f000001",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "10.0.0.1",
        "169.254.169.254",
        "[fe80::1]",
        "[fd00::1]",
        "100.64.0.1",
        "0.0.0.0",
        "[::]",
    ] {
        let file = json!({"tenants": {"default": {"url": format!("https://{host}/hook"), "secret": SECRET}}});
        assert!(
            WebhookConfig::parse(&file.to_string(), false).is_err(),
            "{host}"
        );
    }
}

/// A receiver that accepts and then streams an answer without end: the delivery reads a
/// few KiB of it, counts the event delivered and moves on, well before the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_answer_is_not_read() {
    let sent = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&sent);
    let endless = move || {
        let counter = Arc::clone(&counter);
        async move {
            let chunks = futures::stream::repeat_with(move || {
                *counter.lock().unwrap() += 1024;
                Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 1024]))
            });
            axum::body::Body::from_stream(chunks)
        }
    };
    let app = Router::new().route("/hook", axum::routing::post(endless));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut settings = fast_retries();
    settings["timeout_ms"] = json!(20_000);
    let server = server(&[("default", &url, SECRET)], settings, true).await;
    let started = Instant::now();
    server
        .webhooks
        .enqueue(event("evt_endless_1", "default", &some_session()));
    wait_for_count(&server.metrics, "default", "delivered", 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // What the receiver produced is bounded by socket buffers, not by the answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let produced = *sent.lock().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        *sent.lock().unwrap(),
        produced,
        "the answer is still being read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    let (target_url, target) = receiver(Vec::new()).await;
    let redirect = (
        StatusCode::TEMPORARY_REDIRECT,
        [("location", target_url.clone())],
    )
        .into_response();
    let (url, recorded) = receiver(vec![redirect]).await;
    let server = server(&[("default", &url, SECRET)], fast_retries(), true).await;
    server
        .webhooks
        .enqueue(event("evt_redirect_1", "default", &some_session()));
    wait_for_count(&server.metrics, "default", "rejected", 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(recorded.all().len(), 1, "a redirect was retried");
    assert!(target.all().is_empty(), "a redirect was followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_answer_ends_the_delivery_and_408_is_retried() {
    let (url, recorded) = receiver(vec![
        StatusCode::REQUEST_TIMEOUT.into_response(),
        StatusCode::BAD_REQUEST.into_response(),
    ])
    .await;
    let server = server(&[("default", &url, SECRET)], fast_retries(), true).await;
    server
        .webhooks
        .enqueue(event("evt_4xx_1", "default", &some_session()));
    wait_for_count(&server.metrics, "default", "rejected", 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(recorded.all().len(), 2);
    assert_eq!(server.metrics.attempts("default", "final_status"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_the_configured_host_name() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let recorded = Recorded::default();
    let app = Router::new()
        .route("/hook", axum::routing::post(record))
        .with_state(recorded.clone());
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        cert.cert.pem().into_bytes(),
        cert.signing_key.serialize_pem().into_bytes(),
    )
    .await
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls_server = axum_server::from_tcp_rustls(listener, tls).unwrap();
    tokio::spawn(async move { tls_server.serve(app.into_make_service()).await });

    let mut settings = fast_retries();
    settings["ca_file"] = json!(ca);
    settings["max_attempts"] = json!(1);
    let by_name = format!("https://localhost:{port}/hook");
    // The certificate names `localhost` only: the same server by address must fail.
    let by_address = format!("https://127.0.0.1:{port}/hook");
    let server = server(
        &[("default", &by_name, SECRET), ("acme", &by_address, SECRET)],
        settings,
        true,
    )
    .await;
    server
        .webhooks
        .enqueue(event("evt_tls_1", "default", &some_session()));
    server
        .webhooks
        .enqueue(event("evt_tls_2", "acme", &some_session()));
    wait_for_count(&server.metrics, "default", "delivered", 1).await;
    wait_for_count(&server.metrics, "acme", "exhausted", 1).await;
    let all = recorded.all();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].header("idempotency-key"), "evt_tls_1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_and_events_without_a_receiver_are_ignored() {
    let (addr, _accepted) = silent_listener().await;
    let url = format!("http://{addr}/hook");
    let settings = json!({"queue_capacity": 3, "max_in_flight": 1, "timeout_ms": 5000});
    let server = server(&[("default", &url, SECRET)], settings, true).await;
    for i in 0..20 {
        server
            .webhooks
            .enqueue(event(&format!("evt_full_{i}"), "default", &some_session()));
    }
    let queued = server.metrics.queued_count("default");
    let dropped = server.metrics.count("default", "queue_full");
    assert_eq!(queued + dropped, 20);
    assert!((3..=4).contains(&queued), "{queued} queued");

    // A tenant without a receiver: nothing queued, nothing counted.
    server
        .webhooks
        .enqueue(event("evt_other_1", "acme", &some_session()));
    assert!(!server.webhooks.is_configured(&Tenant::new("acme").unwrap()));
    assert_eq!(server.metrics.queued_count("acme"), 0);
    // An id that cannot be a header is dropped and counted.
    server
        .webhooks
        .enqueue(event("evt bad\n", "default", &some_session()));
    assert_eq!(server.metrics.count("default", "invalid"), 1);
    // The disabled handle ignores everything.
    Webhooks::disabled().enqueue(event("evt_x", "default", &some_session()));
}

// ---------------------------------------------------------------------------------------
// The binary.

#[tokio::test]
async fn the_binary_reads_the_webhooks_file_and_documents_the_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("webhooks.json");
    std::fs::write(
        &file,
        json!({"tenants": {"default": {"url": "https://hooks.example.com/secret-path-token", "secret": SECRET}}})
            .to_string(),
    )
    .unwrap();
    let server = common::TestServer::start_with(
        "webhooks-binary",
        common::Options {
            args: vec!["--webhooks-file", file.to_str().unwrap()],
            ..common::Options::default()
        },
    );
    let document: Value = server.get("/openapi.json").await.json().await.unwrap();
    let webhook = &document["webhooks"]["sessionEvent"]["post"];
    let headers: Vec<&str> = webhook["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(headers, ["Pci-Vault-Signature", "Idempotency-Key"]);
    assert_eq!(
        webhook["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/WebhookEvent"
    );
    let schema = &document["components"]["schemas"]["WebhookEvent"];
    for member in [
        "id",
        "kind",
        "session",
        "tenant",
        "state",
        "at",
        "attempts_left",
    ] {
        assert!(
            schema["properties"][member].is_object(),
            "{member}: {schema}"
        );
    }
    let metrics = server.get("/metrics").await.text().await.unwrap();
    for series in [
        "pci_vault_webhook_events_queued_total{tenant=\"default\"} 0",
        "pci_vault_webhook_events_total{tenant=\"default\",outcome=\"queue_full\"} 0",
    ] {
        assert!(metrics.contains(series), "{metrics}");
    }
    let log = server.stop(&[]);
    assert!(log.contains("webhooks configured"));
    assert!(!log.contains(SECRET) && !log.contains("secret-path-token"));

    // A bad file stops the start with a message that names neither secret nor URL.
    std::fs::write(
        &file,
        json!({"tenants": {"default": {"url": "https://10.0.0.1/secret-path-token", "secret": SECRET}}})
            .to_string(),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pci-vault-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--webhooks-file",
            file.to_str().unwrap(),
        ])
        .env_remove("PCI_VAULT_WEBHOOKS_DEVELOPMENT")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("--webhooks-file") && text.contains("development setting"),
        "{text}"
    );
    assert!(
        !text.contains(SECRET) && !text.contains("secret-path-token"),
        "{text}"
    );
}

/// A webhooks file in `dir` that sends the tenant `default`'s events to `url`.
fn webhooks_file(dir: &tempfile::TempDir, url: &str) -> std::path::PathBuf {
    let file = dir.path().join("webhooks.json");
    std::fs::write(
        &file,
        json!({"tenants": {"default": {"url": url, "secret": SECRET}}}).to_string(),
    )
    .unwrap();
    file
}

/// A receiver that holds every request until `release` is notified, then answers 204;
/// `received` counts the requests that arrived.
async fn holding_receiver() -> (String, Arc<Mutex<usize>>, Arc<tokio::sync::Notify>) {
    let received = Arc::new(Mutex::new(0usize));
    let release = Arc::new(tokio::sync::Notify::new());
    let (count, gate) = (Arc::clone(&received), Arc::clone(&release));
    let app = Router::new().route(
        "/hook",
        axum::routing::post(move || async move {
            let released = gate.notified();
            *count.lock().unwrap() += 1;
            released.await;
            StatusCode::NO_CONTENT
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), received, release)
}

/// SIGTERM while a webhook delivery is in progress: the process waits for it (within its
/// grace period) instead of exiting with the listeners, and the receiver's answer ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_waits_for_webhook_deliveries_in_progress() {
    let (url, received, release) = holding_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let file = webhooks_file(&dir, &url);
    let mut server = common::TestServer::start_with(
        "webhooks-shutdown-drain",
        common::Options {
            args: vec![
                "--webhooks-file",
                file.to_str().unwrap(),
                "--webhooks-development",
                "--shutdown-grace",
                "60",
            ],
            ..common::Options::default()
        },
    );
    let id = server.create_id().await;
    server.submit_card(&id).await;
    // `submitted` is on its way: the receiver holds it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while *received.lock().unwrap() == 0 {
        assert!(Instant::now() < deadline, "no delivery arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    server.signal("TERM");
    // The server says it waits for the delivery, or (without that wait) it is gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.log().contains("\"waiting for webhook deliveries\"") && !server.has_exited() {
        assert!(
            Instant::now() < deadline,
            "the server neither waited nor exited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    release.notify_waiters();
    let log = server.wait_stopped(&[&id]);
    assert!(log.contains("\"webhook delivered\""), "{log}");
    assert!(!log.contains("not delivered"), "{log}");
    assert!(!log.contains(SECRET), "{log}");
}

/// One delivery to a receiver. `proxies_in_the_environment_are_not_used` runs it again in
/// a child process whose environment names a proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_goes_straight_to_the_receiver() {
    let (url, recorded) = receiver(Vec::new()).await;
    let server = server(&[("default", &url, SECRET)], fast_retries(), true).await;
    server
        .webhooks
        .enqueue(event("evt_direct_1", "default", &some_session()));
    wait_for_count(&server.metrics, "default", "delivered", 1).await;
    assert_eq!(recorded.all().len(), 1);
}

/// A proxy would connect on the server's behalf, past the address guard.
#[test]
fn proxies_in_the_environment_are_not_used() {
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_nonblocking(true).unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child.args([
        "--exact",
        "a_delivery_goes_straight_to_the_receiver",
        "--test-threads=1",
    ]);
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        child.env(name, &proxy_url);
    }
    let output = child
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert_eq!(
        proxy.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "a delivery went through the proxy"
    );
}

// ---------------------------------------------------------------------------------------
// Server processes on one Redis: the events of a session whose creating process stopped.

/// The kind and id of each delivery so far.
fn kinds_and_ids(recorded: &Recorded) -> Vec<(String, String)> {
    recorded
        .all()
        .iter()
        .map(|d| {
            let body: Value = serde_json::from_slice(&d.body).unwrap();
            let id = d.header("idempotency-key").to_owned();
            assert_eq!(body["id"], id.as_str());
            (body["kind"].as_str().unwrap().to_owned(), id)
        })
        .collect()
}

/// The creating process is killed; the customer submits on another, which alone does not
/// start a follow; an agent's status read there does, and the submission and then the
/// reveal reach the receiver. A session two processes follow is delivered by both under
/// one id, an ended session is not followed again, and a reveal on a process that follows
/// nothing is announced by that process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_receiver_after_the_creating_process_stops() {
    let (url, recorded) = receiver(Vec::new()).await;
    let redis = pci_vault_testkit::redis::RedisServer::start(&[]);
    let redis_url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let file = webhooks_file(&dir, &url);
    let keys = common::shared_keys();
    let options = || common::Options {
        args: vec![
            "--store",
            &redis_url,
            "--webhooks-file",
            file.to_str().unwrap(),
            "--webhooks-development",
        ],
        env: vec![("PCI_VAULT_KEYS", &keys)],
        ..common::Options::default()
    };
    let creator = common::TestServer::start_with("webhooks-creator", options());
    let other = common::TestServer::start_with("webhooks-other", options());

    let id = creator.create_id().await;
    drop(creator);
    let pin = other.submit_card(&id).await;
    other.remember_secret(&pin);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        recorded.all().is_empty(),
        "delivered with no process following"
    );

    let (status, view) = other.status(&id).await;
    assert_eq!(
        (status, view["state"].as_str()),
        (StatusCode::OK, Some("submitted"))
    );
    recorded.wait_for(1, Duration::from_secs(10)).await;
    let (status, _) = other.reveal(&id, &pin).await;
    assert_eq!(status, StatusCode::OK);
    recorded.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let delivered = kinds_and_ids(&recorded);
    let kinds: Vec<&str> = delivered.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["submitted", "revealed"]);
    assert_ne!(delivered[0].1, delivered[1].1);

    // Another process reads the ended session: nothing more is delivered.
    let third = common::TestServer::start_with("webhooks-third", options());
    let (status, view) = third.status(&id).await;
    assert_eq!(
        (status, view["state"].as_str()),
        (StatusCode::OK, Some("revealed"))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        recorded.all().len(),
        2,
        "an ended session was delivered again"
    );

    // Two processes follow one session (its creator, and one an agent read it on): each
    // delivers the submission, under the same id.
    let second = other.create_id().await;
    let (status, _) = third.status(&second).await;
    assert_eq!(status, StatusCode::OK);
    let pin = third.submit_card(&second).await;
    third.remember_secret(&pin);
    recorded.wait_for(4, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let delivered = kinds_and_ids(&recorded);
    assert_eq!(delivered.len(), 4, "{delivered:?}");
    assert_eq!(delivered[2].0, "submitted");
    assert_eq!(delivered[2], delivered[3], "one event, two ids");

    // A reveal on a process that does not follow the session (its creator is gone, and no
    // agent read it anywhere else) is announced by the process that made it.
    let fourth = common::TestServer::start_with("webhooks-fourth", options());
    let lone = third.create_id().await;
    drop(third);
    let pin = fourth.submit_card(&lone).await;
    fourth.remember_secret(&pin);
    let (status, _) = fourth.reveal(&lone, &pin).await;
    assert_eq!(status, StatusCode::OK);
    let deliveries = recorded.wait_for(5, Duration::from_secs(10)).await;
    let last: Value = serde_json::from_slice(&deliveries[4].body).unwrap();
    assert_eq!(
        (last["kind"].as_str(), last["session"].as_str()),
        (Some("revealed"), Some(lone.as_str()))
    );
}
