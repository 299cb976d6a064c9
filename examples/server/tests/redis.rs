//! Two server processes on one real Redis: a session created on one is submitted on the
//! other and revealed on the first, and reveals racing across both processes open the
//! form once. Also: readiness and errors when Redis goes away.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

mod common;

use std::process::Command;

use common::{CVC, EXPIRY, NAME, Options, PAN, TestServer, log_dir, shared_keys};
use futures::future::join_all;
use pci_vault_testkit::redis::{RedisServer, free_port};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn on_redis<'a>(url: &'a str, keys: &'a str, prefix: &'a str) -> Options<'a> {
    Options {
        args: vec!["--store", url, "--redis-key-prefix", prefix],
        env: vec![("PCI_VAULT_KEYS", keys)],
        ..Options::default()
    }
}

#[tokio::test]
async fn two_servers_share_sessions_through_redis() {
    let redis = RedisServer::start(&[]);
    let keys = shared_keys();
    let first = TestServer::start_with("redis-first", on_redis(&redis.url(), &keys, "two:"));
    let second = TestServer::start_with("redis-second", on_redis(&redis.url(), &keys, "two:"));

    // Create on the first.
    let id = first.create_id().await;
    // The customer's page and submission go to the second.
    let page = second.get(&format!("/forms/{id}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let response = second
        .post_form(&id, Some(&second.base), None, common::good_form())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let pin = common::pin_of(&response.text().await.unwrap());
    first.remember_secret(&pin);
    second.remember_secret(&pin);

    // The first sees the submission and reveals it.
    let (_, view) = first.status(&id).await;
    assert_eq!(view["state"], "submitted");
    let (status, revealed) = first.reveal(&id, &pin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        revealed["fields"],
        json!({"card_number": PAN, "expiry": EXPIRY, "cvc": CVC, "cardholder_name": NAME})
    );
    // The second knows it is gone.
    let (status, body) = second.reveal(&id, &pin).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::GONE, Some("ALREADY_REVEALED"))
    );
    let page = second.get(&format!("/forms/{id}")).await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);

    // Reveals racing on both processes open a form once.
    let id = second.create_id().await;
    let pin = first.submit_card(&id).await;
    second.remember_secret(&pin);
    let results = join_all((0..20).map(|i| {
        let server = if i % 2 == 0 { &first } else { &second };
        server.reveal(&id, &pin)
    }))
    .await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{results:?}");
    // The others are told it is gone: ALREADY_REVEALED, or LOCKED when every attempt was
    // taken by reveals still in flight (as the conformance suite's concurrent reveals allow).
    assert!(
        results.iter().all(|(s, _)| *s == StatusCode::OK
            || *s == StatusCode::GONE
            || *s == StatusCode::LOCKED),
        "{:?}",
        results.iter().map(|(s, _)| *s).collect::<Vec<_>>()
    );

    first.stop(&[&id]);
    second.stop(&[&id]);
}

#[tokio::test]
async fn redis_outage_is_store_unavailable() {
    let mut redis = RedisServer::start(&[]);
    let keys = shared_keys();
    let server = TestServer::start_with("redis-outage", on_redis(&redis.url(), &keys, "outage:"));
    let id = server.create_id().await;
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);

    redis.kill();
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["error"]["code"], "STORE_UNAVAILABLE");
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "backend detail reached the client"
    );

    let (status, body) = server.status(&id).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("STORE_UNAVAILABLE"))
    );
    let page = server.get(&format!("/forms/{id}")).await;
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Temporarily unavailable")
    );
    let (status, _) = server.submit_json(&id, common::card_fields()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // The store's failures and latency are in the metrics.
    let metrics = server.get("/metrics").await.text().await.unwrap();
    for expected in [
        "pci_vault_backend_call_errors_total{component=\"store\",operation=\"ping\",code=\"STORE_UNAVAILABLE\"}",
        "pci_vault_backend_call_errors_total{component=\"store\",operation=\"load\",code=\"STORE_UNAVAILABLE\"}",
        "pci_vault_backend_call_duration_seconds_count{component=\"store\",operation=\"create\"} 1",
    ] {
        assert!(metrics.contains(expected), "missing {expected}:\n{metrics}");
    }
    // Liveness does not depend on the store.
    let live = server.get("/healthz").await;
    assert_eq!(live.status(), StatusCode::OK);
    server.stop(&[&id]);
}

/// A server on `redis` (a 1 s request timeout, and `extra` flags) with a submitted session,
/// whose reveal request has just timed out while Redis holds every write for 4 s (the
/// margin keeps a slow machine from reaching Redis after the pause): the reveal itself is
/// still running.
async fn timed_out_reveal(
    redis: &RedisServer,
    name: &str,
    extra: &[&'static str],
) -> (TestServer, String, String) {
    let (url, keys) = (redis.url(), shared_keys());
    let mut options = on_redis(&url, &keys, "timed-out:");
    options.args.extend(["--request-timeout-seconds", "1"]);
    options.args.extend(extra);
    let server = TestServer::start_with(name, options);
    let id = server.create_id().await;
    let pin = server.submit_card(&id).await;
    let paused = std::process::Command::new("redis-cli")
        .args(["-u", &url, "CLIENT", "PAUSE", "4000", "WRITE"])
        .output()
        .expect("redis-cli runs");
    assert!(paused.status.success(), "{paused:?}");
    let (status, body) = server.reveal(&id, &pin).await;
    assert_eq!(
        (status, common::error_code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "REQUEST_TIMEOUT"),
        "{body}"
    );
    (server, id, pin)
}

/// A reveal whose request times out while Redis holds every write still ends: the session
/// is revealed and the audit log has the event, although the agent got `REQUEST_TIMEOUT`
/// (the same holds for a client that goes away).
#[tokio::test]
async fn a_reveal_whose_request_times_out_still_ends_and_is_audited() {
    let redis = RedisServer::start(&[]);
    let (server, id, pin) = timed_out_reveal(&redis, "redis-request-timeout", &[]).await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, body) = server.status(&id).await;
        if body["state"] == "revealed" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never revealed: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let log = server.log();
    let revealed = log.lines().filter(|line| {
        line.contains("\"target\":\"pci_vault::audit\"")
            && line.contains("\"action\":\"revealed\"")
            && line.contains("\"outcome\":\"success\"")
    });
    assert_eq!(revealed.count(), 1, "{log}");
    // The request the time limit cut off is counted with its answer.
    let metrics = server.get("/metrics").await.text().await.unwrap();
    let counted = "pci_vault_http_requests_total{route=\"/v1/sessions/{id}/reveal\",method=\"POST\",status=\"503\"} 1";
    assert!(metrics.contains(counted), "{metrics}");
    server.stop(&[&id, &pin]);
}

/// SIGTERM while a reveal whose request timed out still waits for Redis: the process
/// waits for it (within its grace period) instead of exiting with the listeners and
/// dropping it with the runtime, so the reveal ends, stored and audited. A server started
/// afterwards on the same Redis finds the session revealed.
#[tokio::test]
async fn a_shutdown_waits_for_a_reveal_still_running() {
    let redis = RedisServer::start(&[]);
    let (server, id, pin) =
        timed_out_reveal(&redis, "redis-shutdown-drain", &["--shutdown-grace", "60"]).await;
    // No connection is open any more: the listeners close at once, the reveal is still
    // running.
    server.signal("TERM");
    let log = server.wait_stopped(&[&id, &pin]);
    let revealed = log.lines().filter(|line| {
        line.contains("\"target\":\"pci_vault::audit\"")
            && line.contains("\"action\":\"revealed\"")
            && line.contains("\"outcome\":\"success\"")
    });
    assert_eq!(revealed.count(), 1, "{log}");

    let (url, keys) = (redis.url(), shared_keys());
    let after = TestServer::start_with(
        "redis-shutdown-drain-after",
        on_redis(&url, &keys, "timed-out:"),
    );
    let (_, view) = after.status(&id).await;
    assert_eq!(view["state"], "revealed", "{view}");
    after.stop(&[&id, &pin]);
}

/// `--help` shows where each setting comes from, never a Redis password set in the
/// environment.
#[test]
fn help_does_not_show_the_redis_password_from_the_environment() {
    let output = Command::new(env!("CARGO_BIN_EXE_pci-vault-server"))
        .arg("--help")
        .env("PCI_VAULT_STORE", "redis://vault:s3cr3t-help@127.0.0.1:1")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("PCI_VAULT_STORE"), "{text}");
    assert!(!text.contains("s3cr3t-help"), "{text}");
}

/// Runs the server with `args` (and test API keys), expects it to exit with an error
/// before it serves, and returns what it printed; the text is also kept as `log`.
fn fails_to_start(args: &[&str], log: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_pci-vault-server"))
        .args(["--listen", "127.0.0.1:0", "--api-keys", common::KEY])
        .args(args)
        .env_remove("PCI_VAULT_KEYS")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(log_dir().join(log), &text).unwrap();
    text
}

#[test]
fn an_unreachable_redis_fails_at_start_without_its_password() {
    let store = format!("redis://app:hunter2-secret@127.0.0.1:{}", free_port());
    let text = fails_to_start(&["--store", &store], "redis-unreachable.log");
    assert!(text.contains("--store: store unavailable"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn a_store_whose_writes_no_replica_acknowledges_fails_at_start() {
    // A single node has no replica: a server that wants one for every write refuses to
    // start, saying so, rather than fail every write later.
    let redis = RedisServer::start(&[]);
    let store = format!("{}?min_replicas=1&min_replicas_timeout_ms=50", redis.url());
    let text = fails_to_start(&["--store", &store], "redis-min-replicas.log");
    assert!(
        text.contains("0 of 1 replicas acknowledged the store's test write"),
        "{text}"
    );
}

#[test]
fn memory_bounds_with_a_redis_store_are_refused_at_start() {
    let args = [
        "--store",
        "redis://127.0.0.1:1",
        "--memory-max-entries",
        "10",
    ];
    let text = fails_to_start(&args, "redis-memory-bounds.log");
    assert!(
        text.contains("memory store bounds need the memory store"),
        "{text}"
    );
}
