//! The server as operators run it, against the real binary: slow clients are cut off and
//! cannot starve it, API-key guessing is limited on every agent route, audit references
//! match across processes that share an audit key, trusted proxies name the client, the
//! API key file and the TLS files reload, and the admin listener keeps `/metrics` apart.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{KEY, Options, TestServer, header};
use pci_vault_testkit::redis::RedisServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A well-formed session id that names no session.
const UNKNOWN_ID: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn host_port(base: &str) -> String {
    base.trim_start_matches("http://")
        .trim_start_matches("https://")
        .to_owned()
}

/// The JSON log lines of a server.
fn log_lines(server: &TestServer) -> Vec<Value> {
    server
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits up to `seconds` for `check` to hold.
async fn eventually(seconds: u64, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// A client that sends a form POST's headers, then its body one byte every 200 ms. Returns
/// the status line of the answer (empty when the connection closed without one) and when
/// it came; `None` when it could not connect within `connect_within`.
/// A client that sends a request head and then one byte of body every 200 ms (so an idle
/// timeout never fires), until the server closes the connection or 30 s pass. Returns all
/// the server answered, when it connected and when the connection ended.
async fn slow_body(addr: String, connect_within: Duration) -> Option<(String, Instant, Instant)> {
    let mut stream = tokio::time::timeout(connect_within, TcpStream::connect(&addr))
        .await
        .ok()?
        .ok()?;
    let connected = Instant::now();
    let head = format!(
        "POST /forms/{UNKNOWN_ID} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while connected.elapsed() < Duration::from_secs(30) {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                // The server may have answered and stopped reading: keep reading its answer.
                let _ = stream.write_all(b" ").await;
            }
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    Some((text, connected, Instant::now()))
}

#[tokio::test]
async fn a_slow_body_is_cut_off_at_the_body_timeout() {
    let server = TestServer::start_with(
        "hardening-slow-body",
        Options {
            args: vec!["--body-timeout-seconds", "2"],
            ..Options::default()
        },
    );
    let addr = host_port(&server.base);
    let (text, connected, ended) = slow_body(addr, Duration::from_secs(5))
        .await
        .expect("connected");
    let elapsed = ended - connected;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"REQUEST_TIMEOUT\""), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(
        text.to_ascii_lowercase().contains("x-request-id: "),
        "{text}"
    );
    assert!(
        (Duration::from_millis(1900)..Duration::from_secs(4)).contains(&elapsed),
        "{elapsed:?}"
    );
    // The connection was closed after the answer (the client read to its end, well before
    // its 30 s).
    assert_eq!(server.get("/healthz").await.status(), StatusCode::OK);
    server.stop(&[]);
}

#[tokio::test]
async fn the_server_stays_healthy_under_500_slow_connections() {
    // The body timeout is long enough for a loaded machine to open all 500 connections
    // before the first of them is cut off.
    let server = TestServer::start_with(
        "hardening-500-slow",
        Options {
            args: vec!["--body-timeout-seconds", "10"],
            ..Options::default()
        },
    );
    let addr = host_port(&server.base);
    let started = Instant::now();
    let attackers: Vec<_> = (0..500)
        .map(|_| tokio::spawn(slow_body(addr.clone(), Duration::from_secs(8))))
        .collect();
    // Once all 500 hold their connections, the server still answers.
    let mut open = 0;
    while started.elapsed() < Duration::from_secs(8) {
        let metrics = server.get("/metrics").await.text().await.unwrap();
        open = metric(&metrics, "pci_vault_open_connections{listener=\"main\"}");
        if open >= 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(open >= 500, "only {open} connections open after 8 s");
    for _ in 0..3 {
        let asked = Instant::now();
        let response = server.get("/healthz").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
        let id = server.create_id().await;
        assert_eq!(id.len(), 43);
    }
    // Every one of them is cut off at the body timeout, counted from its own connect.
    for attacker in attackers {
        let (status, connected, answered) = attacker.await.unwrap().expect("connected");
        assert!(status.starts_with("HTTP/1.1 408"), "{status:?}");
        let held = answered - connected;
        assert!(
            (Duration::from_millis(9500)..Duration::from_secs(14)).contains(&held),
            "{held:?}"
        );
    }
    assert!(
        eventually(5, async || {
            let metrics = server.get("/metrics").await.text().await.unwrap();
            metric(&metrics, "pci_vault_open_connections{listener=\"main\"}") <= 2
        })
        .await,
        "the slow connections stayed open"
    );
    server.stop(&[]);
}

#[tokio::test]
async fn a_burst_of_connections_waits_in_the_kernel_queue_while_the_server_is_busy() {
    // The server is stopped, so it accepts nothing: every handshake of the burst must fit in
    // the listen queue (as long as the connection limit, 1024 by default). A queue of 128
    // would drop the rest, and their clients would wait for retransmissions.
    let server = TestServer::start("hardening-listen-queue");
    let addr = host_port(&server.base);
    server.signal("STOP");
    let connects: Vec<_> = (0..600)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move {
                tokio::time::timeout(Duration::from_millis(900), TcpStream::connect(addr))
                    .await
                    .ok()
                    .and_then(Result::ok)
            })
        })
        .collect();
    let mut held = Vec::new();
    for connect in connects {
        held.extend(connect.await.unwrap());
    }
    server.signal("CONT");
    assert_eq!(held.len(), 600, "handshakes dropped by a full listen queue");
    drop(held);
    assert_eq!(server.get("/healthz").await.status(), StatusCode::OK);
    server.stop(&[]);
}

#[tokio::test]
async fn past_the_connection_limit_the_admin_listener_still_answers() {
    // 300 descriptors cannot hold 500 connections; the limit of 200 keeps the process
    // within them, and the admin listener answers while the main one is full.
    let server = TestServer::start_with(
        "hardening-connection-limit",
        Options {
            args: vec![
                "--body-timeout-seconds",
                "2",
                "--max-connections",
                "200",
                "--admin-listen",
                "127.0.0.1:0",
            ],
            fd_limit: Some(300),
            ..Options::default()
        },
    );
    let admin = admin_base(&server);
    let addr = host_port(&server.base);
    let attackers: Vec<_> = (0..500)
        .map(|_| tokio::spawn(slow_body(addr.clone(), Duration::from_secs(30))))
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let client = common::client(None);
    for _ in 0..5 {
        let asked = Instant::now();
        let response = client.get(format!("{admin}/healthz")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
        let metrics = client
            .get(format!("{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let open = metric(&metrics, "pci_vault_open_connections{listener=\"main\"}");
        assert!(open <= 200, "{open} open connections past the limit");
        let fds = metric(&metrics, "process_open_fds");
        assert!(fds < 300, "{fds} descriptors");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut answered = 0;
    for attacker in attackers {
        if let Some((status, _, _)) = attacker.await.unwrap() {
            assert!(
                status.is_empty() || status.starts_with("HTTP/1.1 408"),
                "{status:?}"
            );
            answered += 1;
        }
    }
    assert!(answered >= 200, "only {answered} connections were served");
    // The main listener serves again once the slow connections are gone.
    assert!(
        eventually(20, async || server
            .client
            .get(server.url("/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK))
        .await
    );
    let log = server.stop(&[]);
    assert!(
        !log.contains("Too many open files"),
        "the process ran out of descriptors"
    );
}

/// The value of a metric line `name value` in a scrape.
fn metric(scrape: &str, name: &str) -> u64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{scrape}")) as u64
}

/// `http://address` of the admin listener, from the server's log.
fn admin_base(server: &TestServer) -> String {
    let line = log_lines(server)
        .into_iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("admin listener"))
        })
        .expect("the admin listener's log line");
    format!("http://{}", line["address"].as_str().unwrap())
}

/// The agent routes, for an existing session `id`.
fn agent_routes(id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::POST, "/v1/sessions".to_owned(), Some(json!({}))),
        (Method::GET, format!("/v1/sessions/{id}"), None),
        (Method::DELETE, format!("/v1/sessions/{id}"), None),
        (
            Method::POST,
            format!("/v1/sessions/{id}/reveal"),
            Some(json!({"pin": "123456"})),
        ),
    ]
}

async fn call(
    server: &TestServer,
    (method, path, body): &(Method, String, Option<Value>),
    key: Option<&str>,
    client: &str,
) -> reqwest::Response {
    let mut request = server
        .client
        .request(method.clone(), server.url(path))
        .header("x-forwarded-for", client);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn api_key_guessing_reaches_429_on_every_agent_route() {
    let server = TestServer::start_with(
        "hardening-key-guessing",
        Options {
            args: vec![
                "--auth-failure-limit",
                "5",
                "--trusted-proxies",
                "127.0.0.1",
            ],
            ..Options::default()
        },
    );
    let id = server.create_id().await;
    for (n, route) in agent_routes(&id).iter().enumerate() {
        // Each route is guessed at from its own client, so each reaches the limit alone.
        let client = format!("198.51.100.{}", n + 1);
        for guess in 0..5 {
            let key = (guess % 2 == 0).then(|| format!("wrong-key-{guess}-0123456789"));
            let response = call(&server, route, key.as_deref(), &client).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{route:?}");
        }
        let response = call(&server, route, Some("wrong-key-x-0123456789"), &client).await;
        assert_eq!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{route:?}"
        );
        let wait: u64 = header(&response, "retry-after").parse().unwrap();
        assert!((1..=12).contains(&wait), "{wait}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "RATE_LIMITED");
        // Past the limit even the right key is refused: the answer no longer tells a
        // guess from a hit.
        let response = call(&server, route, Some(KEY), &client).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        // Another client is not affected.
        let response = call(&server, route, Some(KEY), "198.51.100.200").await;
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_ne!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        metric(
            &metrics,
            "pci_vault_auth_failures_total{outcome=\"unauthorized\"}"
        ),
        20
    );
    assert_eq!(
        metric(
            &metrics,
            "pci_vault_auth_failures_total{outcome=\"rate_limited\"}"
        ),
        8
    );
    let log = server.stop(&[&id]);
    assert!(
        !log.contains("wrong-key-"),
        "a presented key reached the log"
    );
}

/// The `session_ref` of the audit event `action` in a server's log, and the API key label
/// of its request.
fn audit_ref_of(server: &TestServer, action: &str) -> (String, Value) {
    let line = log_lines(server)
        .into_iter()
        .find(|l| l["target"] == "pci_vault::audit" && l["action"] == action)
        .unwrap_or_else(|| panic!("no {action} audit event:\n{}", server.log()));
    (
        line["session_ref"].as_str().unwrap().to_owned(),
        line["span"]["api_key"].clone(),
    )
}

#[tokio::test]
async fn two_processes_with_one_audit_key_log_one_reference() {
    let redis = RedisServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("audit-key");
    let audit_key = base64::engine::general_purpose::STANDARD.encode(rand_bytes());
    // What `openssl rand -base64 32` writes: the key and a newline.
    std::fs::write(&key_file, format!("  {audit_key}\n")).unwrap();
    let keys = format!(
        "k1:{}",
        base64::engine::general_purpose::STANDARD.encode([42u8; 32])
    );
    let url = redis.url();
    let options = || Options {
        args: vec![
            "--store",
            &url,
            "--audit-key-file",
            key_file.to_str().unwrap(),
            "--redis-key-prefix",
            "audit:",
        ],
        env: vec![("PCI_VAULT_KEYS", keys.as_str())],
        ..Options::default()
    };
    let first = TestServer::start_with("hardening-audit-first", options());
    let second = TestServer::start_with("hardening-audit-second", options());
    let id = first.create_id().await;
    let pin = second.submit_card(&id).await;
    first.remember_secret(&pin);
    let (status, _) = first.reveal(&id, &pin).await;
    assert_eq!(status, StatusCode::OK);

    let (created, created_by) = audit_ref_of(&first, "created");
    let (submitted, _) = audit_ref_of(&second, "submitted");
    let (revealed, revealed_by) = audit_ref_of(&first, "revealed");
    assert_eq!(created, submitted, "two processes, two references");
    assert_eq!(created, revealed);
    assert_eq!(created.len(), 32);
    assert_eq!(created_by, "key-1", "the audit event names the API key");
    assert_eq!(revealed_by, "key-1");

    // The operator's tool finds the same reference from the key and the id; the id is
    // read from standard input, so it never shows in the process list.
    let mut tool = Command::new(env!("CARGO_BIN_EXE_pci-vault-server"))
        .args(["audit-ref", "--audit-key-file", key_file.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tool.stdin
        .take()
        .unwrap()
        .write_all(format!("{id}\n").as_bytes())
        .unwrap();
    let output = tool.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8(output.stdout).unwrap().trim(), created);

    // A process without the key names the session otherwise.
    let stranger = TestServer::start_with(
        "hardening-audit-stranger",
        Options {
            args: vec!["--store", &url, "--redis-key-prefix", "audit:"],
            env: vec![("PCI_VAULT_KEYS", keys.as_str())],
            ..Options::default()
        },
    );
    let _ = stranger.status(&id).await;
    let _ = stranger.reveal(&id, "000000").await;
    let (other, _) = audit_ref_of(&stranger, "revealed");
    assert_ne!(other, created);

    // A key file that is not 32 bytes of base64 stops the start, naming the file only.
    std::fs::write(&key_file, "c2hvcnQ=\n").unwrap();
    let failed = Command::new(env!("CARGO_BIN_EXE_pci-vault-server"))
        .args(["--listen", "127.0.0.1:0", "--api-keys", KEY])
        .args(["--audit-key-file", key_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("--audit-key-file") && stderr.contains("32 bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("c2hvcnQ"), "{stderr}");

    first.stop(&[&id]);
    second.stop(&[&id]);
    stranger.stop(&[&id]);
}

fn rand_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

#[tokio::test]
async fn a_trusted_proxy_separates_its_clients_and_forged_headers_are_ignored() {
    let limited = |name, trusted| {
        TestServer::start_with(
            name,
            Options {
                args: vec!["--reveal-rate-limit", "3", "--trusted-proxies", trusted],
                ..Options::default()
            },
        )
    };
    let reveal = |server: &TestServer, id: &str, client: &str, request_id: &str| {
        server
            .client
            .post(server.url(&format!("/v1/sessions/{id}/reveal")))
            .bearer_auth(KEY)
            .header("x-forwarded-for", client)
            .header("x-request-id", request_id)
            .json(&json!({"pin": "123456"}))
            .send()
    };

    // Behind the proxy (the test's own address), each client has its own allowance.
    let behind = limited("hardening-proxy-trusted", "127.0.0.0/8, 10.0.0.0/8");
    let id = behind.create_id().await;
    for _ in 0..3 {
        let response = reveal(&behind, &id, "203.0.113.1, 10.1.1.1", "req-a")
            .await
            .unwrap();
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        // A well-formed id from a trusted proxy is kept.
        assert_eq!(header(&response, "x-request-id"), "req-a");
    }
    let response = reveal(&behind, &id, "203.0.113.1", "req-a").await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    // The client to the left of the first untrusted hop does not matter.
    let response = reveal(&behind, &id, "6.6.6.6, 203.0.113.1", "req-a")
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    for _ in 0..3 {
        let response = reveal(&behind, &id, "203.0.113.2", "req b").await.unwrap();
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        // A malformed one is replaced.
        let generated = header(&response, "x-request-id");
        assert_eq!(generated.len(), 32, "{generated}");
    }
    let clients: Vec<String> = log_lines(&behind)
        .iter()
        .filter(|l| l["message"] == "request" && l["route"] == "/v1/sessions/{id}/reveal")
        .map(|l| l["span"]["client"].as_str().unwrap().to_owned())
        .collect();
    assert!(clients.iter().any(|c| c == "203.0.113.1"), "{clients:?}");
    assert!(clients.iter().any(|c| c == "203.0.113.2"), "{clients:?}");
    assert!(
        log_lines(&behind)
            .iter()
            .any(|l| l["span"]["request_id"] == "req-a")
    );
    behind.stop(&[&id]);

    // A peer that is not a trusted proxy cannot choose its address by the header.
    let direct = limited("hardening-proxy-untrusted", "10.0.0.0/8");
    let id = direct.create_id().await;
    for n in 0..3 {
        let response = reveal(&direct, &id, &format!("203.0.113.{n}"), "req-c")
            .await
            .unwrap();
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        // Its request id is not taken either.
        assert_ne!(header(&response, "x-request-id"), "req-c");
    }
    let response = reveal(&direct, &id, "203.0.113.99", "req-c").await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        log_lines(&direct)
            .iter()
            .filter(|l| l["message"] == "request")
            .all(|l| l["span"]["client"] == "127.0.0.1")
    );
    direct.stop(&[&id]);
}

/// A byte outside ASCII that a client wrote into `X-Forwarded-For` spoils its own hop
/// only: the address the trusted proxy appended on the same line is still the client (its
/// own allowance, its address in the log), not the proxy.
#[tokio::test]
async fn a_garbled_forwarded_hop_leaves_the_proxys_client_in_place() {
    let server = TestServer::start_with(
        "hardening-proxy-garbled",
        Options {
            args: vec![
                "--reveal-rate-limit",
                "3",
                "--trusted-proxies",
                "127.0.0.0/8",
            ],
            ..Options::default()
        },
    );
    let id = server.create_id().await;
    let reveal = |forwarded: Option<reqwest::header::HeaderValue>| {
        let mut request = server
            .client
            .post(server.url(&format!("/v1/sessions/{id}/reveal")))
            .bearer_auth(KEY)
            .json(&json!({"pin": "123456"}));
        if let Some(forwarded) = forwarded {
            request = request.header("x-forwarded-for", forwarded);
        }
        request.send()
    };
    let garbled = || {
        Some(reqwest::header::HeaderValue::from_bytes(b"\xff\xfe nonsense, 203.0.113.7").unwrap())
    };
    for _ in 0..3 {
        let response = reveal(garbled()).await.unwrap();
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    // The allowance used was 203.0.113.7's: a clean header naming it is refused now ...
    let clean = reqwest::header::HeaderValue::from_static("203.0.113.7");
    let response = reveal(Some(clean)).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    // ... and the proxy's own allowance is untouched.
    let response = reveal(None).await.unwrap();
    assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let clients: Vec<String> = log_lines(&server)
        .iter()
        .filter(|l| l["message"] == "request" && l["route"] == "/v1/sessions/{id}/reveal")
        .map(|l| l["span"]["client"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        clients,
        [
            "203.0.113.7",
            "203.0.113.7",
            "203.0.113.7",
            "203.0.113.7",
            "127.0.0.1"
        ],
        "{clients:?}"
    );
    server.stop(&[&id]);
}

/// Replaces a file's content the way a deployment tool does: a new file renamed over it.
fn replace(path: &std::path::Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn agent_status(server: &TestServer, key: &str) -> StatusCode {
    server
        .client
        .post(server.url("/v1/sessions"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn the_api_key_file_reloads_adds_removes_and_keeps_old_keys_on_error() {
    const OPS: &str = "ops-key-0123456789abcdef";
    const BOT: &str = "bot-key-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    // A Kubernetes secret mount: the file is reached through a symlink that is swapped to
    // a new directory on update.
    let v1 = dir.path().join("..2026_v1");
    let v2 = dir.path().join("..2026_v2");
    std::fs::create_dir(&v1).unwrap();
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(v1.join("api-keys"), format!("# agents\nops:{OPS}\n")).unwrap();
    std::os::unix::fs::symlink(&v1, dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/api-keys", dir.path().join("api-keys")).unwrap();
    let path = dir.path().join("api-keys");
    let server = TestServer::start_with(
        "hardening-api-key-file",
        Options {
            args: vec!["--api-keys-file", path.to_str().unwrap()],
            api_keys: false,
            ..Options::default()
        },
    );
    assert_eq!(agent_status(&server, OPS).await, StatusCode::CREATED);
    assert_eq!(agent_status(&server, BOT).await, StatusCode::UNAUTHORIZED);

    // Add a key: the new directory's file gets the old one's modification time, so only
    // its content tells the change.
    let new = v2.join("api-keys");
    std::fs::write(&new, format!("ops:{OPS}\nbot:acme={BOT}\n")).unwrap();
    let old_time = std::fs::metadata(v1.join("api-keys"))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&new)
        .unwrap()
        .set_modified(old_time)
        .unwrap();
    std::os::unix::fs::symlink(&v2, dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    assert!(
        eventually(10, async || agent_status(&server, BOT).await
            == StatusCode::CREATED)
        .await
    );
    assert_eq!(agent_status(&server, OPS).await, StatusCode::CREATED);

    // Remove one.
    replace(&new, &format!("bot:acme={BOT}\n"));
    assert!(
        eventually(10, async || agent_status(&server, OPS).await
            == StatusCode::UNAUTHORIZED)
        .await
    );
    assert_eq!(agent_status(&server, BOT).await, StatusCode::CREATED);

    // A malformed file is refused whole: the keys in use stay.
    replace(&new, &format!("bot:acme={BOT}\nops {OPS}\n"));
    let refused = eventually(10, async || {
        server.log().contains("keeping the previous API keys")
    })
    .await;
    assert!(refused, "{}", server.log());
    assert_eq!(agent_status(&server, BOT).await, StatusCode::CREATED);
    assert_eq!(agent_status(&server, OPS).await, StatusCode::UNAUTHORIZED);

    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        metric(
            &metrics,
            "pci_vault_reloads_total{source=\"api_keys\",outcome=\"success\"}"
        ),
        2
    );
    assert_eq!(
        metric(
            &metrics,
            "pci_vault_reloads_total{source=\"api_keys\",outcome=\"failure\"}"
        ),
        1
    );
    // Requests name their key by label, the tenant of `bot` is acme.
    let lines = log_lines(&server);
    assert!(lines.iter().any(|l| l["span"]["api_key"] == "bot"));
    assert!(lines.iter().any(|l| l["span"]["api_key"] == "ops"));
    let log = server.stop(&[]);
    assert!(log.contains("line 2"), "the refusal names the line");
    assert!(
        !log.contains(OPS) && !log.contains(BOT),
        "a key reached the log"
    );
}

#[tokio::test]
async fn the_admin_listener_serves_metrics_and_health_apart() {
    let server = TestServer::start_with(
        "hardening-admin",
        Options {
            args: vec!["--admin-listen", "127.0.0.1:0"],
            ..Options::default()
        },
    );
    let admin = admin_base(&server);
    assert_ne!(admin, server.base);
    let client = common::client(None);
    // /metrics leaves the main listener; health stays on both.
    assert_eq!(server.get("/metrics").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(server.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(server.get("/readyz").await.status(), StatusCode::OK);
    let id = server.create_id().await;
    for path in ["/healthz", "/readyz"] {
        let response = client.get(format!("{admin}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&response, "x-request-id").len(), 32);
    }
    let response = client.get(format!("{admin}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    for expected in [
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_cpu_seconds_total ",
        "pci_vault_build_info{version=\"",
        "pci_vault_open_connections{listener=\"main\"}",
        "pci_vault_open_connections{listener=\"admin\"} 1",
        "pci_vault_memory_store_entries 1",
        "pci_vault_memory_store_max_entries 100000",
        "pci_vault_memory_store_max_bytes 268435456",
        "pci_vault_backend_call_duration_seconds_count{component=\"store\",operation=\"create\"} 1",
        "pci_vault_backend_call_duration_seconds_count{component=\"key_provider\",operation=\"wrap\"} 1",
        "pci_vault_backend_call_duration_seconds_count{component=\"store\",operation=\"ping\"}",
        "pci_vault_http_requests_total{route=\"/v1/sessions\",method=\"POST\",status=\"201\"} 1",
    ] {
        assert!(text.contains(expected), "missing {expected}:\n{text}");
    }
    assert!(metric(&text, "process_resident_memory_bytes") > 1_000_000);
    // The agent and customer routes are not on the admin listener.
    for path in ["/v1/sessions", &format!("/forms/{id}"), "/agent"] {
        let response = client.get(format!("{admin}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    server.stop(&[&id]);
}

#[tokio::test]
async fn tls_certificates_reload_when_their_files_change() {
    let first = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let second = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    std::fs::write(&cert_path, first.cert.pem()).unwrap();
    std::fs::write(&key_path, first.signing_key.serialize_pem()).unwrap();
    let first_pem = first.cert.pem();
    let server = TestServer::start_with(
        "hardening-tls-reload",
        Options {
            args: vec![
                "--tls-cert",
                cert_path.to_str().unwrap(),
                "--tls-key",
                key_path.to_str().unwrap(),
            ],
            root_cert: Some(&first_pem),
            ..Options::default()
        },
    );
    let base = server.base.replace("127.0.0.1", "localhost");
    let second_pem = second.cert.pem();
    let healthz = format!("{base}/healthz");
    // A new client for every request: a pooled connection would keep its first handshake.
    let served = async |pem: &str| common::client(Some(pem)).get(&healthz).send().await.is_ok();
    assert!(served(&first_pem).await);
    assert!(!served(&second_pem).await);

    // A half-written update (a new certificate with the old key) is refused and the old
    // certificate stays; once the key follows, the new pair is served.
    replace(&cert_path, &second.cert.pem());
    assert!(
        eventually(10, async || server
            .log()
            .contains("keeping the previous TLS certificate"))
        .await
    );
    assert!(served(&first_pem).await);
    replace(&key_path, &second.signing_key.serialize_pem());
    assert!(eventually(10, async || served(&second_pem).await).await);
    assert!(!served(&first_pem).await);
    let metrics = common::client(Some(&second_pem))
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(
            &metrics,
            "pci_vault_reloads_total{source=\"tls\",outcome=\"success\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &metrics,
            "pci_vault_reloads_total{source=\"tls\",outcome=\"failure\"}"
        ),
        1
    );
    server.stop(&[]);
}

#[tokio::test]
async fn keyring_reloads_are_counted() {
    let encode = |byte: u8| base64::engine::general_purpose::STANDARD.encode([byte; 32]);
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keyring");
    std::fs::write(&keys, format!("k1:{}\n", encode(1))).unwrap();
    let server = TestServer::start_with(
        "hardening-keyring-reload",
        Options {
            args: vec!["--keys-file", keys.to_str().unwrap()],
            ..Options::default()
        },
    );
    let reloads = async |outcome: &str| {
        let scrape = server.get("/metrics").await.text().await.unwrap();
        let name = format!("pci_vault_reloads_total{{source=\"keyring\",outcome=\"{outcome}\"}}");
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(name.as_str())?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    // The key provider looks at its file when a key is used, at most every 10 seconds.
    replace(&keys, &format!("k2:{}\nk1:{}\n", encode(2), encode(1)));
    assert!(
        eventually(25, async || {
            server.create_id().await;
            reloads("success").await == 1
        })
        .await
    );
    replace(&keys, "k3:not-a-key\n");
    assert!(
        eventually(25, async || {
            server.create_id().await;
            reloads("failure").await == 1
        })
        .await
    );
    assert_eq!(reloads("success").await, 1);
    server.stop(&[]);
}

/// `hsm-create-key` says what it needs and refuses a source that names no HSM key, with
/// no secret in what it prints (the Node and Python suites create their HSM key with it).
#[test]
fn hsm_create_key_needs_a_pkcs11_key_source() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pci-vault-server"))
            .args(args)
            .env_remove("PCI_VAULT_KEY_SOURCE")
            .output()
            .unwrap()
    };
    let missing = run(&["hsm-create-key"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("needs --key-source pkcs11:"));

    let not_an_hsm = run(&["hsm-create-key", "--key-source", "env:PCI_VAULT_KEYS"]);
    assert_eq!(not_an_hsm.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&not_an_hsm.stderr)
            .contains("only a pkcs11: key source names an HSM key to create")
    );

    let secret_pin = "pin-7f3a9c";
    let no_module = Command::new(env!("CARGO_BIN_EXE_pci-vault-server"))
        .args(["hsm-create-key", "--key-source"])
        .arg("pkcs11:module=/nonexistent/libpkcs11.so;token=t;key=k1;pin-env=HSM_TEST_PIN")
        .env("HSM_TEST_PIN", secret_pin)
        .output()
        .unwrap();
    assert_eq!(no_module.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&no_module.stderr);
    assert!(
        stderr.contains("/nonexistent/libpkcs11.so"),
        "names the module: {stderr}"
    );
    assert!(
        !stderr.contains(secret_pin),
        "the tool printed the PIN: {stderr}"
    );
    assert!(no_module.stdout.is_empty());
}
