//! `GET /v1/sessions/{id}/events`: Server-Sent Events for the agent, against the real
//! server binary.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

mod common;

use std::time::Duration;

use common::{KEY, TestServer, error_code};
use reqwest::StatusCode;
use serde_json::Value;

/// An open event stream, read message by message.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
    /// Everything received, to check it for secrets.
    received: String,
}

/// One SSE message: its `event:`, `id:` and parsed `data:`.
#[derive(Debug)]
struct Message {
    event: String,
    id: String,
    data: Value,
}

impl EventStream {
    async fn open(server: &TestServer, id: &str) -> Self {
        Self::open_with(server, id, KEY).await
    }

    async fn open_with(server: &TestServer, id: &str, key: &str) -> Self {
        let response = Self::request(server, id, key).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            common::header(&response, "content-type"),
            "text/event-stream"
        );
        // The stream names the session: never kept by a cache, as every other answer.
        assert_eq!(common::header(&response, "cache-control"), "no-store");
        EventStream {
            response,
            buffer: String::new(),
            received: String::new(),
        }
    }

    /// The answer to a request for `id`'s stream with `key`, whatever its status.
    async fn request(server: &TestServer, id: &str, key: &str) -> reqwest::Response {
        server
            .client
            .get(server.url(&format!("/v1/sessions/{id}/events")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// The next message, skipping heartbeat comments; `None` when the stream ends.
    async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut message = Message {
                    event: String::new(),
                    id: String::new(),
                    data: Value::Null,
                };
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        message.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        message.id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        message.data = serde_json::from_str(v.trim()).unwrap();
                    }
                }
                if message.event.is_empty() {
                    continue; // a comment: the heartbeat
                }
                return Some(message);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("no message within 10 s")
                .unwrap()?;
            let text = std::str::from_utf8(&chunk).unwrap();
            self.buffer.push_str(text);
            self.received.push_str(text);
        }
    }
}

/// The stream gives the state first, then submitted, reveal_failed with the attempts
/// left, revealed — each once, with the same id in `id:` and the data — and ends; it holds
/// no card data and no PIN.
#[tokio::test]
async fn events_stream_from_the_state_to_the_reveal_and_end() {
    let server = TestServer::start("events-sse");
    let id = server.create_id().await;
    let mut stream = EventStream::open(&server, &id).await;
    let first = stream.next().await.unwrap();
    assert_eq!(first.event, "created");
    assert_eq!(first.data["type"], "created");
    assert_eq!(first.data["state"], "pending");
    assert_eq!(first.data["session_id"], id.as_str());
    assert_eq!(first.data["tenant"], "default");
    assert_eq!(first.data["from_state"], true);
    assert_eq!(first.data["id"], first.id.as_str());
    assert_eq!(first.id.len(), 32);

    // The customer's form page: informative `opened`.
    let page = server.get(&format!("/forms/{id}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let opened = stream.next().await.unwrap();
    assert_eq!(opened.event, "opened");

    let pin = server.submit_card(&id).await;
    server.remember_secret(&pin);
    let submitted = stream.next().await.unwrap();
    assert_eq!(
        (
            submitted.event.as_str(),
            &submitted.data["state"],
            &submitted.data["attempts_left"]
        ),
        ("submitted", &Value::from("submitted"), &Value::from(5))
    );
    assert_eq!(submitted.data["from_state"], false);

    let wrong = if pin == "000000" { "111111" } else { "000000" };
    let (status, _) = server.reveal(&id, wrong).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let failed = stream.next().await.unwrap();
    assert_eq!(
        (failed.event.as_str(), &failed.data["attempts_left"]),
        ("reveal_failed", &Value::from(4))
    );

    let (status, _) = server.reveal(&id, &pin).await;
    assert_eq!(status, StatusCode::OK);
    let revealed = stream.next().await.unwrap();
    assert_eq!(revealed.event, "revealed");
    assert_eq!(revealed.data["state"], "revealed");
    assert!(stream.next().await.is_none(), "the stream did not end");

    let ids = [
        &first.id,
        &opened.id,
        &submitted.id,
        &failed.id,
        &revealed.id,
    ];
    for (i, a) in ids.iter().enumerate() {
        assert!(!ids[i + 1..].contains(a), "two events share an id");
    }
    for secret in ["4242424242424242", "424242", "12/34", "Ada Lovelace", &pin] {
        assert!(
            !stream.received.contains(secret),
            "the event stream holds card data or the PIN"
        );
    }
    server.stop(&[&id]);
}

/// A stream opened after the submit starts with `submitted`; a cancel ends it.
#[tokio::test]
async fn a_late_stream_starts_from_submitted_and_ends_at_cancel() {
    let server = TestServer::start("events-late");
    let id = server.create_id().await;
    let pin = server.submit_card(&id).await;
    server.remember_secret(&pin);
    let mut stream = EventStream::open(&server, &id).await;
    let first = stream.next().await.unwrap();
    assert_eq!(
        (first.event.as_str(), &first.data["from_state"]),
        ("submitted", &Value::from(true))
    );
    let (status, _) = server
        .agent_call(reqwest::Method::DELETE, &format!("/v1/sessions/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(stream.next().await.unwrap().event, "cancelled");
    assert!(stream.next().await.is_none());
    server.stop(&[&id]);
}

/// A stream outlives no revocation: once its API key is removed from the API key file, the
/// stream ends with an `UNAUTHORIZED` error message within a few seconds, while a stream of
/// a key that stays goes on.
#[tokio::test]
async fn a_stream_ends_when_its_api_key_is_removed() {
    const OPS: &str = "ops-key-0123456789abcdef";
    const BOT: &str = "bot-key-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api-keys");
    let write_keys = |content: String| {
        // As a deployment tool does: a new file renamed over the old one.
        let tmp = dir.path().join("api-keys.tmp");
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    };
    write_keys(format!("ops:{OPS}\nbot:{BOT}\n"));
    let server = TestServer::start_with(
        "events-revoked",
        common::Options {
            args: vec!["--api-keys-file", path.to_str().unwrap()],
            api_keys: false,
            ..common::Options::default()
        },
    );
    let id = server.create_as(BOT, serde_json::json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut revoked = EventStream::open_with(&server, &id, OPS).await;
    let mut kept = EventStream::open_with(&server, &id, BOT).await;
    assert_eq!(revoked.next().await.unwrap().event, "created");
    assert_eq!(kept.next().await.unwrap().event, "created");

    write_keys(format!("bot:{BOT}\n"));
    let started = std::time::Instant::now();
    let last = revoked
        .next()
        .await
        .expect("the stream ended without a word");
    assert_eq!(last.event, "error");
    assert_eq!(error_code(&last.data), "UNAUTHORIZED");
    assert!(revoked.next().await.is_none(), "the stream went on");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "ended after {:?}",
        started.elapsed()
    );

    // Events after the revocation reach only the stream whose key stays.
    let page = server.get(&format!("/forms/{id}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(kept.next().await.unwrap().event, "opened");
    server.stop(&[&id]);
}

/// A server started with `args`, a new session, and two streams open on it (the first has
/// given its `created`).
async fn two_streams(
    name: &str,
    args: &[&'static str],
) -> (TestServer, String, EventStream, EventStream) {
    let server = TestServer::start_with(
        name,
        common::Options {
            args: args.to_vec(),
            ..common::Options::default()
        },
    );
    let id = server.create_id().await;
    let mut first = EventStream::open(&server, &id).await;
    let second = EventStream::open(&server, &id).await;
    assert_eq!(first.next().await.unwrap().event, "created");
    (server, id, first, second)
}

/// At shutdown an open stream ends at once with a last `shutdown` message, which is not an
/// `error`, and the body ends cleanly; the server then exits without waiting out its
/// grace period (600 s here: the harness gives it 20 s).
#[tokio::test]
async fn a_shutdown_ends_open_streams_with_a_last_message() {
    let (server, id, mut first, mut second) =
        two_streams("events-shutdown", &["--shutdown-grace", "600"]).await;
    assert_eq!(second.next().await.unwrap().event, "created");

    server.signal("TERM");
    for stream in [&mut first, &mut second] {
        let last = stream
            .next()
            .await
            .expect("the stream ended without a word");
        assert_eq!(last.event, "shutdown");
        assert_eq!(last.data["type"], "shutdown");
        assert!(last.data["message"].as_str().unwrap().contains("reconnect"));
        assert!(last.id.is_empty(), "{last:?}");
        // The end of the body, not a cut connection (which `next` reports as a panic).
        assert!(stream.next().await.is_none(), "the stream went on");
    }
    let log = server.wait_stopped(&[&id]);
    assert!(log.contains("\"grace_seconds\":600"), "{log}");
}

/// Without the API key: 401; an unknown session: 404; a malformed id: 400 — each before
/// any stream starts, as JSON errors.
#[tokio::test]
async fn event_stream_errors_come_before_the_stream() {
    let server = TestServer::start("events-errors");
    let id = server.create_id().await;
    let anonymous = server.get(&format!("/v1/sessions/{id}/events")).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let unknown = pci_vault::SessionId::generate().to_string();
    let (status, body) = server
        .agent_call(
            reqwest::Method::GET,
            &format!("/v1/sessions/{unknown}/events"),
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "NOT_FOUND")
    );
    let (status, body) = server
        .agent_call(reqwest::Method::GET, "/v1/sessions/not-an-id/events", None)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")
    );
    server.stop(&[&id]);
}

/// The OpenAPI document describes the stream.
#[tokio::test]
async fn openapi_describes_the_event_stream() {
    let server = TestServer::start("events-openapi");
    let doc: Value = server.get("/openapi.json").await.json().await.unwrap();
    let op = &doc["paths"]["/v1/sessions/{id}/events"]["get"];
    assert!(
        op["responses"]["200"]["content"]["text/event-stream"].is_object(),
        "{op}"
    );
    assert!(op["responses"]["404"].is_object());
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["EventView"]["properties"]["attempts_left"].is_object());
    assert!(schemas["EventMessage"]["properties"]["data"].is_object());
    // The last message of a shutdown is documented apart from an error.
    let event = schemas["EventMessage"]["properties"]["event"]["description"]
        .as_str()
        .unwrap();
    assert!(event.contains("`shutdown`"), "{event}");
    let kinds = schemas["KindName"]["enum"].as_array().unwrap();
    for kind in [
        "created",
        "opened",
        "submitted",
        "reveal_failed",
        "revealed",
        "locked",
        "cancelled",
        "expired",
    ] {
        assert!(
            kinds.iter().any(|v| v == kind),
            "{kind} missing from {kinds:?}"
        );
    }
    server.stop(&[]);
}

/// Event streams are bounded (`--max-event-streams`): past the bound a new stream answers
/// 503 `CAPACITY_EXCEEDED` while the customers' forms are still served, and a stream that
/// ends gives its place back.
#[tokio::test]
async fn event_streams_are_bounded_and_forms_still_load() {
    let (server, id, first, _second) =
        two_streams("events-bounded", &["--max-event-streams", "2"]).await;

    let refused = EventStream::request(&server, &id, KEY).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(error_code(&body), "CAPACITY_EXCEEDED");
    let page = server.get(&format!("/forms/{id}")).await;
    assert_eq!(page.status(), StatusCode::OK);

    // Closing a stream frees its place once the server sees the connection gone.
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = EventStream::request(&server, &id, KEY).await;
        if again.status() == StatusCode::OK {
            break;
        }
        assert_eq!(again.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            std::time::Instant::now() < deadline,
            "a closed stream kept its place"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
