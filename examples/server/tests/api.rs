//! The agent API against the real binary: every route, status code and
//! error body, API keys and tenants, rate limits, and the one-reveal and bounded-attempts
//! invariants under concurrent requests.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

mod common;

use std::time::{Duration, SystemTime};

use common::{
    ACME_KEY, CVC, EXPIRY, KEY, NAME, Options, PAN, TestServer, card_fields, error_code, header,
};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn parse_time(text: &Value) -> SystemTime {
    let t = time::OffsetDateTime::parse(
        text.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    SystemTime::from(t)
}

#[tokio::test]
async fn create_with_defaults_and_options() {
    let server = TestServer::start("api-create");
    let response = server
        .client
        .post(server.url("/v1/sessions"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let id_location = header(&response, "location").to_owned();
    assert_eq!(header(&response, "content-type"), "application/json");
    assert_eq!(header(&response, "cache-control"), "no-store");
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(id.len(), 43);
    assert_eq!(id_location, format!("/v1/sessions/{id}"));
    assert_eq!(created["url"], server.url(&format!("/forms/{id}")));
    assert_eq!(created["state"], "pending");
    let ttl = parse_time(&created["expires_at"])
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(
        ttl > Duration::from_secs(890) && ttl <= Duration::from_secs(900),
        "{ttl:?}"
    );

    let (status, view) = server.status(id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["state"], "pending");
    assert_eq!(view["attempts_left"], 5);
    assert_eq!(view["submitted_at"], Value::Null);
    assert_eq!(view["card"], Value::Null);
    assert_eq!(view["metadata"], json!({}));
    assert_eq!(
        view["fields"],
        json!(["card_number", "expiry", "cvc", "cardholder_name"])
    );

    let created = server
        .create(json!({
            "ttl_seconds": 60,
            "metadata": {"conversation": "c-42", "order": "A-1"},
            "fields": ["card_number", "expiry", "cvc", "cardholder_name", "order_ref"],
            "pin_length": 8,
            "max_attempts": 3,
        }))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let ttl = parse_time(&created["expires_at"])
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(ttl <= Duration::from_secs(60) && ttl > Duration::from_secs(50));
    let (_, view) = server.status(&id).await;
    assert_eq!(view["attempts_left"], 3);
    assert_eq!(
        view["metadata"],
        json!({"conversation": "c-42", "order": "A-1"})
    );
    assert_eq!(view["fields"][4], "order_ref");
    let mut fields = card_fields();
    fields["order_ref"] = json!("R-7");
    let (status, body) = server.submit_json(&id, fields).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let pin = body["pin"].as_str().unwrap().to_owned();
    assert_eq!(pin.len(), 8);
    let (status, revealed) = server.reveal(&id, &pin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revealed["fields"]["order_ref"], "R-7");
    server.stop(&[&id]);
}

#[tokio::test]
async fn create_refuses_bad_options_and_bodies() {
    let server = TestServer::start("api-create-errors");
    let bad = [
        json!({"ttl_seconds": 0}),
        json!({"ttl_seconds": 86401}),
        json!({"ttl_seconds": -1}),
        json!({"ttl_seconds": "900"}),
        json!({"pin_length": 3}),
        json!({"pin_length": 13}),
        json!({"max_attempts": 0}),
        json!({"max_attempts": 11}),
        json!({"metadata": {"note": "card 4242 4242 4242 4242"}}),
        json!({"metadata": {"": "x"}}),
        json!({"metadata": {"k": "x".repeat(257)}}),
        json!({"metadata": (0..17).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
        json!({"fields": []}),
        json!({"fields": ["Card Number"]}),
        json!({"fields": ["cvc", "cvc"]}),
        json!({"fields": (0..33).map(|i| format!("f{i}")).collect::<Vec<_>>()}),
        json!({"unknown": 1}),
        json!([1, 2]),
        json!("x"),
    ];
    for body in bad {
        let response = server
            .client
            .post(server.url("/v1/sessions"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error_code(&error), "INVALID_ARGUMENT", "{body}");
        assert!(!error["error"]["message"].as_str().unwrap().contains("4242"));
    }

    let not_json = server
        .client
        .post(server.url("/v1/sessions"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body("{\"ttl_seconds\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);

    let wrong_type = server
        .client
        .post(server.url("/v1/sessions"))
        .bearer_auth(KEY)
        .header("content-type", "text/plain")
        .body("ttl=5")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let error: Value = wrong_type.json().await.unwrap();
    assert_eq!(error_code(&error), "INVALID_ARGUMENT");

    let huge = server
        .client
        .post(server.url("/v1/sessions"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"metadata\": {{\"k\": \"{}\"}}}}",
            "x".repeat(70_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let error: Value = huge.json().await.unwrap();
    assert_eq!(error_code(&error), "INVALID_ARGUMENT");
    server.stop(&[]);
}

#[tokio::test]
async fn every_agent_route_needs_a_valid_key() {
    let server = TestServer::start("api-auth");
    let id = server.create_id().await;
    let routes = [
        (Method::POST, "/v1/sessions".to_owned()),
        (Method::GET, format!("/v1/sessions/{id}")),
        (Method::DELETE, format!("/v1/sessions/{id}")),
        (Method::POST, format!("/v1/sessions/{id}/reveal")),
    ];
    let bad_headers: [Option<&str>; 7] = [
        None,
        Some("Bearer wrong-key-0123456789abcdef"),
        Some("Bearer "),
        Some("Basic dGVzdDp0ZXN0"),
        Some("test-key-default-0123456789"),
        Some("Bearer test-key-default-012345678"),
        Some("Bearer test-key-default-0123456789x"),
    ];
    for (method, path) in &routes {
        for value in bad_headers {
            let mut request = server
                .client
                .request(method.clone(), server.url(path))
                .json(&json!({"pin": "123456"}));
            if let Some(value) = value {
                request = request.header("authorization", value);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {value:?}"
            );
            assert_eq!(header(&response, "www-authenticate"), "Bearer");
            let body: Value = response.json().await.unwrap();
            assert_eq!(error_code(&body), "UNAUTHORIZED");
        }
    }
    // Unauthorized calls changed nothing.
    let (status, view) = server.status(&id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["state"], "pending");
    server.stop(&[&id]);
}

#[tokio::test]
async fn tenants_do_not_see_each_others_sessions() {
    let server = TestServer::start("api-tenants");
    let default_id = server.create_id().await;
    let acme = server.create_as(ACME_KEY, json!({})).await;
    let acme_id = acme["id"].as_str().unwrap().to_owned();

    let as_acme = |method: Method, path: String| {
        server
            .client
            .request(method, server.url(&path))
            .bearer_auth(ACME_KEY)
            .json(&json!({"pin": "123456"}))
            .send()
    };
    for (method, path) in [
        (Method::GET, format!("/v1/sessions/{default_id}")),
        (Method::POST, format!("/v1/sessions/{default_id}/reveal")),
        (Method::DELETE, format!("/v1/sessions/{default_id}")),
    ] {
        let response = as_acme(method, path).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), "NOT_FOUND");
    }
    let (status, _) = server.status(&acme_id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The customer's link works whatever the tenant.
    let page = server.get(&format!("/forms/{acme_id}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let pin = server.submit_card(&acme_id).await;
    let response = as_acme(Method::GET, format!("/v1/sessions/{acme_id}"))
        .await
        .unwrap();
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["state"], "submitted");
    let (status, _) = server.reveal(&acme_id, &pin).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the default tenant revealed acme's form"
    );
    let revealed = server
        .client
        .post(server.url(&format!("/v1/sessions/{acme_id}/reveal")))
        .bearer_auth(ACME_KEY)
        .json(&json!({ "pin": pin }))
        .send()
        .await
        .unwrap();
    assert_eq!(revealed.status(), StatusCode::OK);
    // The default tenant's session is untouched.
    let (_, view) = server.status(&default_id).await;
    assert_eq!(view["state"], "pending");
    server.stop(&[&default_id, &acme_id]);
}

#[tokio::test]
async fn reveal_once_with_every_error_on_the_way() {
    let server = TestServer::start("api-reveal");
    let id = server.create_id().await;

    let (status, body) = server.reveal(&id, "123456").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "NOT_SUBMITTED")
    );

    let pin = server.submit_card(&id).await;
    assert_eq!(pin.len(), 6);
    assert!(pin.bytes().all(|b| b.is_ascii_digit()));
    let (_, view) = server.status(&id).await;
    assert_eq!(view["state"], "submitted");
    assert!(view["submitted_at"].is_string());
    assert_eq!(
        view["card"],
        serde_json::json!({"brand": "visa", "masked_number": "424242******4242"})
    );
    let mut rest = view.clone();
    rest["card"] = Value::Null;
    rest["id"] = Value::Null;
    for secret in ["4242", "12/", "Ada", &pin] {
        assert!(
            !rest.to_string().contains(secret),
            "status shows card data beyond the summary"
        );
    }

    let wrong = if pin == "000000" { "111111" } else { "000000" };
    let (status, body) = server.reveal(&id, wrong).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "WRONG_PIN")
    );
    assert_eq!(body["error"]["attempts_left"], 4);
    let (_, view) = server.status(&id).await;
    assert_eq!(view["attempts_left"], 4);

    for (pin_text, why) in [
        ("12a456", "letters"),
        ("123", "short"),
        ("1234567890123", "long"),
    ] {
        let (status, body) = server.reveal(&id, pin_text).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
            "{why}"
        );
    }
    for body in [
        json!({}),
        json!({"pin": 123456}),
        json!({"pin": "123456", "x": 1}),
        json!(null),
    ] {
        let (status, error) = server
            .agent_call(
                Method::POST,
                &format!("/v1/sessions/{id}/reveal"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            (status, error_code(&error)),
            (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
            "{body}"
        );
    }
    let empty = server
        .client
        .post(server.url(&format!("/v1/sessions/{id}/reveal")))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    // None of the malformed requests took an attempt.
    let (_, view) = server.status(&id).await;
    assert_eq!(view["attempts_left"], 4);

    let response = server
        .client
        .post(server.url(&format!("/v1/sessions/{id}/reveal")))
        .bearer_auth(KEY)
        .json(&json!({ "pin": pin }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "cache-control"), "no-store");
    let revealed: Value = response.json().await.unwrap();
    assert_eq!(revealed["id"], id.as_str());
    assert_eq!(
        revealed["fields"],
        json!({"card_number": PAN, "expiry": EXPIRY, "cvc": CVC, "cardholder_name": NAME})
    );
    assert_eq!(
        revealed["card"],
        json!({"brand": "visa", "masked_number": "424242******4242"})
    );

    let (status, body) = server.reveal(&id, &pin).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::GONE, "ALREADY_REVEALED")
    );
    let (_, view) = server.status(&id).await;
    assert_eq!(view["state"], "revealed");

    let unknown = "A".repeat(43);
    let (status, body) = server.reveal(&unknown, &pin).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "NOT_FOUND")
    );
    for malformed in ["short", "%2F%2E%2E", &"*".repeat(43)] {
        let (status, body) = server.status(malformed).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
            "{malformed}"
        );
    }
    server.stop(&[&id]);
}

#[tokio::test]
async fn wrong_pins_lock_the_session() {
    let server = TestServer::start("api-lock");
    let id = server.create_id().await;
    let pin = server.submit_card(&id).await;
    let wrong = if pin == "999999" { "888888" } else { "999999" };
    for left in [4, 3, 2, 1] {
        let (status, body) = server.reveal(&id, wrong).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"]["attempts_left"], left);
    }
    let (status, body) = server.reveal(&id, wrong).await;
    assert_eq!((status, error_code(&body)), (StatusCode::LOCKED, "LOCKED"));
    let (status, body) = server.reveal(&id, &pin).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::LOCKED, "LOCKED"),
        "the right PIN opened a locked session"
    );
    let (_, view) = server.status(&id).await;
    assert_eq!(
        (view["state"].as_str(), view["attempts_left"].as_u64()),
        (Some("locked"), Some(0))
    );
    let (status, body) = server
        .agent_call(Method::DELETE, &format!("/v1/sessions/{id}"), None)
        .await;
    assert_eq!((status, error_code(&body)), (StatusCode::LOCKED, "LOCKED"));
    server.stop(&[&id]);
}

#[tokio::test]
async fn cancel_destroys_and_is_idempotent() {
    let server = TestServer::start("api-cancel");
    let id = server.create_id().await;
    let pin = server.submit_card(&id).await;
    for _ in 0..2 {
        let (status, body) = server
            .agent_call(Method::DELETE, &format!("/v1/sessions/{id}"), None)
            .await;
        assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    }
    let (status, body) = server.reveal(&id, &pin).await;
    assert_eq!((status, error_code(&body)), (StatusCode::GONE, "CANCELLED"));
    let (_, view) = server.status(&id).await;
    assert_eq!(view["state"], "cancelled");
    let (status, body) = server.submit_json(&id, card_fields()).await;
    assert_eq!((status, error_code(&body)), (StatusCode::GONE, "CANCELLED"));

    let revealed = server.create_id().await;
    let pin = server.submit_card(&revealed).await;
    assert_eq!(server.reveal(&revealed, &pin).await.0, StatusCode::OK);
    let (status, body) = server
        .agent_call(Method::DELETE, &format!("/v1/sessions/{revealed}"), None)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::GONE, "ALREADY_REVEALED")
    );
    let (status, body) = server
        .agent_call(
            Method::DELETE,
            &format!("/v1/sessions/{}", "A".repeat(43)),
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "NOT_FOUND")
    );
    server.stop(&[&id, &revealed]);
}

#[tokio::test]
async fn expired_sessions_are_not_found() {
    let server = TestServer::start("api-expiry");
    let created = server.create(json!({"ttl_seconds": 1})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, body) = server.status(&id).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "NOT_FOUND")
    );
    let (status, body) = server.submit_json(&id, card_fields()).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "NOT_FOUND")
    );
    let page = server.get(&format!("/forms/{id}")).await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    server.stop(&[&id]);
}

#[tokio::test]
async fn a_full_memory_store_answers_capacity_exceeded() {
    let options = Options {
        args: vec!["--memory-max-entries", "2"],
        ..Options::default()
    };
    let server = TestServer::start_with("api-capacity", options);
    let first = server.create_id().await;
    let second = server.create_id().await;
    let response = server
        .agent_call(Method::POST, "/v1/sessions", Some(json!({})))
        .await;
    assert_eq!(response.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&response.1), "CAPACITY_EXCEEDED");
    // What was stored is untouched: both sessions still answer.
    for id in [&first, &second] {
        assert_eq!(server.status(id).await.0, StatusCode::OK);
    }
    server.stop(&[&first, &second]);
}

#[tokio::test]
async fn reveal_is_rate_limited_per_client_before_the_key_is_checked() {
    let server = TestServer::start_with(
        "api-reveal-rate-limit",
        Options {
            args: vec!["--reveal-rate-limit", "3"],
            ..Options::default()
        },
    );
    // The flag wins over the harness's generous PCI_VAULT_REVEAL_RATE_LIMIT.
    let id = server.create_id().await;
    for _ in 0..3 {
        let (status, _) = server.reveal(&id, "123456").await;
        assert_eq!(status, StatusCode::CONFLICT);
    }
    for key in [KEY, "no-such-key-0123456789"] {
        let response = server
            .client
            .post(server.url(&format!("/v1/sessions/{id}/reveal")))
            .bearer_auth(key)
            .json(&json!({"pin": "123456"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = header(&response, "retry-after").parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), "RATE_LIMITED");
    }
    // Other routes are not limited by it.
    assert_eq!(server.status(&id).await.0, StatusCode::OK);
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("pci_vault_rate_limited_requests_total{limit=\"reveal\"} 2"),
        "{metrics}"
    );
    server.stop(&[&id]);
}

#[tokio::test]
async fn concurrent_reveals_open_the_form_once() {
    let server = TestServer::start("api-concurrent-reveal");
    let id = server.create_id().await;
    let pin = server.submit_card(&id).await;
    let results = join_all((0..24).map(|_| server.reveal(&id, &pin))).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{results:?}");
    for (status, body) in &results {
        if *status != StatusCode::OK {
            assert_eq!(
                (*status, error_code(body)),
                (StatusCode::GONE, "ALREADY_REVEALED")
            );
        }
    }
    server.stop(&[&id]);
}

#[tokio::test]
async fn concurrent_wrong_pins_are_bounded_by_max_attempts() {
    let server = TestServer::start("api-concurrent-wrong-pins");
    let created = server.create(json!({"max_attempts": 4})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let pin = server.submit_card(&id).await;
    let wrong = if pin == "123123" { "321321" } else { "123123" };
    let results = join_all((0..30).map(|_| server.reveal(&id, wrong))).await;
    let wrong_pin = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::FORBIDDEN)
        .count();
    let locked = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::LOCKED)
        .count();
    assert_eq!(wrong_pin, 3, "{results:?}");
    assert_eq!(locked, 27, "{results:?}");
    let mut left: Vec<u64> = results
        .iter()
        .filter_map(|(_, b)| b["error"]["attempts_left"].as_u64())
        .collect();
    left.sort_unstable();
    assert_eq!(left, [1, 2, 3]);
    let (status, _) = server.reveal(&id, &pin).await;
    assert_eq!(status, StatusCode::LOCKED);
    server.stop(&[&id]);
}

#[tokio::test]
async fn concurrent_submissions_store_one_form() {
    let server = TestServer::start("api-concurrent-submit");
    let id = server.create_id().await;
    let results = join_all((0..16).map(|_| server.submit_json(&id, card_fields()))).await;
    let ok: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    for (status, body) in &results {
        if *status != StatusCode::OK {
            assert_eq!(
                (*status, error_code(body)),
                (StatusCode::CONFLICT, "ALREADY_SUBMITTED")
            );
        }
    }
    let pin = ok[0].1["pin"].as_str().unwrap().to_owned();
    assert_eq!(server.reveal(&id, &pin).await.0, StatusCode::OK);
    server.stop(&[&id]);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let server = TestServer::start("api-routes");
    let response = server.get("/v2/nothing").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "NOT_FOUND");
    let response = server
        .client
        .put(server.url("/v1/sessions"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "INVALID_ARGUMENT");
    server.stop(&[]);
}
