//! Hostile HTTP requests against the real binary, where the other server tests stop:
//! session ids in every path that are over-long, non-ASCII or hold `{`, `*`, CR/LF or NUL;
//! PINs in other scripts' digits, with control characters, or the right one wrapped in
//! something; duplicate JSON members and unknown ones in every JSON body; bodies over the
//! size limit, also when streamed without a length, and exactly at it; card numbers in
//! full-width and Arabic-Indic digits; form bodies that are not UTF-8; one session's PIN
//! used on another.
//!
//! Each request must get its documented status and stable code, must not repeat what was
//! sent, and must change nothing: the sessions' status (state, attempts left, submission
//! time) is read before and after.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

mod common;

use std::time::Duration;

use common::{CVC, EXPIRY, KEY, NAME, PAN, TestServer, card_fields, encode, error_code};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The message of every malformed session id (the core's, or the server's when the path
/// is not even UTF-8).
const ID_MESSAGES: [&str; 2] = [
    "invalid argument: a session id is 43 characters of base64url",
    "a session id is 43 characters of base64url",
];
const PIN_MESSAGE: &str = "invalid argument: a PIN is 4-12 digits 0-9";
const REVEAL_BODY_MESSAGE: &str = "the body is not the JSON object this endpoint takes";

/// A marker in every hostile id, to look for in answers and in the log.
const MARK: &str = "Qz7Mark";

/// A Mastercard test number, to tell a second session's card from the first's.
const OTHER_PAN: &str = "5555555555554444";

/// `text` percent-encoded but for the base64url alphabet, so the server decodes exactly it.
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn message_of(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

/// What the agent sees of a session: everything that a request could change.
async fn view(server: &TestServer, id: &str) -> Value {
    let (status, view) = server.status(id).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    json!({
        "state": view["state"],
        "attempts_left": view["attempts_left"],
        "submitted_at": view["submitted_at"],
        "expires_at": view["expires_at"],
        "metadata": view["metadata"],
    })
}

/// Sends a request and returns its status and body text.
async fn send(request: reqwest::RequestBuilder) -> (StatusCode, String) {
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

fn json_of(status: StatusCode, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("{status} is not JSON: {text}"))
}

#[tokio::test]
async fn hostile_session_ids_in_every_path_are_refused_without_echo() {
    let server = TestServer::start("adversarial-ids");
    let pending = server.create_id().await;
    let submitted = server.create_id().await;
    let pin = server.submit_card(&submitted).await;
    let before = [
        view(&server, &pending).await,
        view(&server, &submitted).await,
    ];

    let pad = |prefix: &str, len: usize| {
        let mut id = prefix.to_owned();
        while id.chars().count() < len {
            id.push('A');
        }
        id
    };
    let ids = [
        pad(&format!("{{{MARK}}}"), 43),
        pad(&format!("{MARK}*"), 43),
        pad(&format!("{MARK}\r\nX-Injected: 1\r\n"), 43),
        pad(&format!("{MARK}\0"), 43),
        pad(&format!("{MARK}\t%00"), 43),
        pad(MARK, 42),
        pad(MARK, 44),
        pad(MARK, 4096),
        format!("{MARK}{}", "é".repeat(36)),
        format!("{MARK}{}", "Ａ".repeat(36)),
        format!("{MARK}{}", "٤".repeat(36)),
        pad(&format!("{MARK}/../../v1/sessions"), 43),
        // The real id with its last character changed to a look-alike or to base64's
        // padding, and with something around it.
        format!("{}\u{0430}", &submitted[..42]),
        format!("{}=", &submitted[..42]),
        format!("{submitted}="),
        format!("{submitted}\0"),
        format!("{submitted}\r\n"),
        format!(" {submitted}"),
    ];
    for id in &ids {
        let segment = path_segment(id);
        let api_calls = [
            (Method::GET, format!("/v1/sessions/{segment}"), None),
            (Method::DELETE, format!("/v1/sessions/{segment}"), None),
            (
                Method::POST,
                format!("/v1/sessions/{segment}/reveal"),
                Some(json!({ "pin": pin })),
            ),
        ];
        for (method, path, body) in api_calls {
            let mut request = server
                .client
                .request(method.clone(), server.url(&path))
                .bearer_auth(KEY);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let (status, text) = send(request).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {id:?}: {text}");
            let body = json_of(status, &text);
            assert_eq!(error_code(&body), "INVALID_ARGUMENT");
            assert!(ID_MESSAGES.contains(&message_of(&body)), "{text}");
            assert!(
                !text.contains(MARK) && !text.contains(&submitted[..36]),
                "{text}"
            );
        }

        // The customer's side: the neutral page, or INVALID_ARGUMENT for JSON.
        let form_path = format!("/forms/{segment}");
        let (status, page) = send(server.client.get(server.url(&form_path))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET form {id:?}");
        assert!(page.contains("Link not available") && !page.contains(MARK));
        let form_post = server
            .client
            .post(server.url(&form_path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", &server.base)
            .body(common::good_form());
        let (status, page) = send(form_post).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "POST form {id:?}");
        assert!(page.contains("Link not available") && !page.contains(MARK));
        let json_post = server
            .client
            .post(server.url(&form_path))
            .json(&json!({ "fields": card_fields() }));
        let (status, text) = send(json_post).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "POST JSON {id:?}");
        let body = json_of(status, &text);
        assert_eq!(error_code(&body), "INVALID_ARGUMENT");
        assert!(!text.contains(MARK) && !text.contains("4242"), "{text}");
    }

    // A path segment that is not UTF-8 once decoded.
    for path in ["/v1/sessions/%FF%FE", "/v1/sessions/%C0%AF/reveal"] {
        let request = server
            .client
            .request(
                if path.ends_with("reveal") {
                    Method::POST
                } else {
                    Method::GET
                },
                server.url(path),
            )
            .bearer_auth(KEY)
            .json(&json!({ "pin": pin }));
        let (status, text) = send(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {text}");
        assert_eq!(error_code(&json_of(status, &text)), "INVALID_ARGUMENT");
    }

    let after = [
        view(&server, &pending).await,
        view(&server, &submitted).await,
    ];
    assert_eq!(before, after, "a hostile id changed a session");
    server.remember_secret(&pin);
    let log = server.stop(&[&pending, &submitted]);
    assert!(!log.contains(MARK), "a hostile id reached the log");
}

#[tokio::test]
async fn hostile_pins_are_refused_before_they_take_an_attempt() {
    let server = TestServer::start("adversarial-pins");
    let id = server.create_id().await;
    let pin = server.submit_card(&id).await;
    server.remember_secret(&pin);
    let before = view(&server, &id).await;
    assert_eq!(before["attempts_left"], 5);

    let digits_in = |zero: char| -> String {
        pin.chars()
            .map(|d| {
                let offset = d.to_digit(10).unwrap();
                char::from_u32(zero as u32 + offset).unwrap()
            })
            .collect()
    };
    let string_pins = [
        digits_in('０'),
        digits_in('٠'),
        digits_in('۰'),
        digits_in('०'),
        format!("{}{}", &pin[..5], digits_in('０').chars().last().unwrap()),
        format!("{{{pin}}}"),
        format!("{pin}*"),
        "*".to_owned(),
        format!("{}\r\n{}", &pin[..3], &pin[3..]),
        format!("{pin}\0"),
        format!("\0{pin}"),
        format!("{}\u{200b}{}", &pin[..3], &pin[3..]),
        format!("{pin}0000000"),
        "7".repeat(10_000),
        format!("{pin}; DROP TABLE sessions"),
        format!("{pin}' OR '1'='1"),
        String::new(),
        "   ".to_owned(),
    ];
    for candidate in &string_pins {
        let (status, body) = server.reveal(&id, candidate).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
            "{candidate:?}"
        );
        assert_eq!(message_of(&body), PIN_MESSAGE);
        let text = body.to_string();
        assert!(!text.contains(&pin) && !text.contains("7777"), "{text}");
    }
    // A PIN that is not a string: an array, an object (as in query injection), a number.
    for body in [
        json!({ "pin": [pin] }),
        json!({ "pin": { "$ne": null } }),
        json!({ "pin": pin.parse::<u64>().unwrap() }),
        json!({ "pin": null }),
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
        assert!(!error.to_string().contains(&pin), "{error}");
    }

    assert_eq!(
        view(&server, &id).await,
        before,
        "a malformed PIN took an attempt"
    );
    let (status, revealed) = server.reveal(&id, &pin).await;
    assert_eq!(status, StatusCode::OK, "{revealed}");
    assert_eq!(revealed["fields"]["card_number"], PAN);
    server.stop(&[&id]);
}

#[tokio::test]
async fn duplicate_and_unknown_json_members_are_refused_and_change_nothing() {
    let server = TestServer::start("adversarial-json-members");
    let id = server.create_id().await;
    let pin = server.submit_card(&id).await;
    server.remember_secret(&pin);
    let wrong = if pin == "000000" { "111111" } else { "000000" };
    let fresh = server.create_id().await;
    let before = [view(&server, &id).await, view(&server, &fresh).await];

    let raw_post = |path: String, key: Option<&str>, body: String| {
        let mut request = server
            .client
            .post(server.url(&path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        send(request)
    };

    // Reveal: the right PIN in a duplicate member, or next to an unknown one, opens nothing
    // and takes no attempt.
    let reveal_path = format!("/v1/sessions/{id}/reveal");
    for body in [
        format!(r#"{{"pin":"{wrong}","pin":"{pin}"}}"#),
        format!(r#"{{"pin":"{pin}","pin":"{wrong}"}}"#),
        format!(r#"{{"pin":"{pin}","pin":"{pin}"}}"#),
        format!(r#"{{"pin":"{pin}","tenant":"acme"}}"#),
        format!(r#"{{"pin":"{pin}","PIN":"{pin}"}}"#),
        format!(r#"{{"Pin":"{pin}"}}"#),
        format!(r#"{{"pin":"{pin}","__proto__":{{"admin":true}}}}"#),
        format!(r#"{{"pin":"{pin}"}} {{"pin":"{pin}"}}"#),
    ] {
        let (status, text) = raw_post(reveal_path.clone(), Some(KEY), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
        let error = json_of(status, &text);
        assert_eq!(error_code(&error), "INVALID_ARGUMENT");
        assert_eq!(message_of(&error), REVEAL_BODY_MESSAGE);
        assert!(!text.contains(&pin), "{text}");
    }

    // Submit: a field twice (with two different cards), `fields` twice, an unknown member
    // beside `fields`, an unknown field inside it.
    let form_path = format!("/forms/{fresh}");
    let card = |pan: &str| {
        format!(
            r#""card_number":"{pan}","expiry":"{EXPIRY}","cvc":"{CVC}","cardholder_name":"{NAME}""#
        )
    };
    for body in [
        format!(
            r#"{{"fields":{{{},"card_number":"{OTHER_PAN}"}}}}"#,
            card(PAN)
        ),
        format!(
            r#"{{"fields":{{{}}},"fields":{{{}}}}}"#,
            card(PAN),
            card(OTHER_PAN)
        ),
        format!(r#"{{"fields":{{{}}},"fields":{{}}}}"#, card(PAN)),
        format!(r#"{{"fields":{{{}}},"pin":"123456"}}"#, card(PAN)),
        format!(r#"{{"fields":{{{},"__proto__":"x"}}}}"#, card(PAN)),
        format!(r#"{{"fields":{{{},"CVC":"999"}}}}"#, card(PAN)),
        format!(r#"{{"Fields":{{{}}}}}"#, card(PAN)),
    ] {
        let (status, text) = raw_post(form_path.clone(), None, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
        let error = json_of(status, &text);
        assert_eq!(error_code(&error), "INVALID_ARGUMENT");
        assert!(
            !text.contains(PAN) && !text.contains(OTHER_PAN) && !text.contains(CVC),
            "{text}"
        );
    }

    // Create: an option twice, an option in another letter case, an unknown one.
    for body in [
        r#"{"ttl_seconds":60,"ttl_seconds":86400}"#,
        r#"{"max_attempts":10,"max_attempts":1}"#,
        r#"{"fields":["cvc"],"fields":["card_number","expiry","cvc","cardholder_name"]}"#,
        r#"{"TTL_SECONDS":60}"#,
        r#"{"ttl_seconds":60,"tenant":"acme"}"#,
    ] {
        let (status, text) = raw_post("/v1/sessions".to_owned(), Some(KEY), body.to_owned()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
        assert_eq!(error_code(&json_of(status, &text)), "INVALID_ARGUMENT");
    }

    let after = [view(&server, &id).await, view(&server, &fresh).await];
    assert_eq!(before, after, "a refused body changed a session");
    // The refused submissions stored nothing: the right card is still accepted once.
    let (status, _) = server.submit_json(&fresh, card_fields()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, revealed) = server.reveal(&id, &pin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revealed["fields"]["card_number"], PAN);
    server.stop(&[&id, &fresh]);
}

/// Writes one raw HTTP/1.1 request and reads the status line of the answer.
async fn raw_status(server: &TestServer, head: &str, body: &[u8]) -> u16 {
    let address = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (and close) before the whole body is sent.
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 20 s");
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    status.parse().unwrap()
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_or_without_a_length() {
    let server = TestServer::start("adversarial-oversized");
    let id = server.create_id().await;
    let pin = server.submit_card(&id).await;
    server.remember_secret(&pin);
    let fresh = server.create_id().await;
    let before = [view(&server, &id).await, view(&server, &fresh).await];
    const LIMIT: usize = 64 * 1024;

    // A JSON submission exactly at the limit is read (its value is too long for the
    // vault); one byte more is refused before it is parsed.
    let sized = |len: usize| {
        let frame = r#"{"fields":{"cardholder_name":""}}"#;
        let mut body = String::from(r#"{"fields":{"cardholder_name":""#);
        body.push_str(&"x".repeat(len - frame.len()));
        body.push_str(r#""}}"#);
        assert_eq!(body.len(), len);
        body
    };
    let post_json = |body: String| {
        send(
            server
                .client
                .post(server.url(&format!("/forms/{fresh}")))
                .header("content-type", "application/json")
                .body(body),
        )
    };
    let (status, text) = post_json(sized(LIMIT)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    let error = json_of(status, &text);
    assert!(
        error["error"]["fields"]
            .as_array()
            .unwrap()
            .contains(&json!({"field": "cardholder_name", "reason": "too_long"})),
        "{text}"
    );
    let (status, text) = post_json(sized(LIMIT + 1)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert_eq!(error_code(&json_of(status, &text)), "INVALID_ARGUMENT");

    // The page's own form and the reveal, over the limit.
    let (status, text) = send(
        server
            .client
            .post(server.url(&format!("/forms/{fresh}")))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", &server.base)
            .body(format!(
                "{}&cardholder_name={}",
                common::good_form(),
                "x".repeat(LIMIT)
            )),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert_eq!(error_code(&json_of(status, &text)), "INVALID_ARGUMENT");
    let (status, text) = send(
        server
            .client
            .post(server.url(&format!("/v1/sessions/{id}/reveal")))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"pin":"{pin}","pad":"{}"}}"#,
                " ".repeat(LIMIT)
            )),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(!text.contains(&pin));

    // Streamed in chunks without a length, and under a length far over the limit: both
    // refused once the limit is passed. The client sends just past the limit and then
    // waits, so the answer cannot depend on bytes the server never reads.
    let host = server.base.trim_start_matches("http://").to_owned();
    let chunk = "y".repeat(8000);
    let opening = r#"{"fields":{"cardholder_name":""#;
    let mut chunked = format!("{:X}\r\n{opening}\r\n", opening.len()).into_bytes();
    let mut sent = opening.len();
    while sent <= LIMIT {
        chunked.extend_from_slice(format!("{:X}\r\n{chunk}\r\n", chunk.len()).as_bytes());
        sent += chunk.len();
    }
    let head = format!(
        "POST /forms/{fresh} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw_status(&server, &head, &chunked).await, 413);
    let head = format!(
        "POST /v1/sessions/{id}/reveal HTTP/1.1\r\nHost: {host}\r\n\
         Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n\
         Content-Length: 100000000\r\nConnection: close\r\n\r\n"
    );
    let body = format!(r#"{{"pin":"{pin}","pad":"{}"#, " ".repeat(LIMIT));
    assert_eq!(raw_status(&server, &head, body.as_bytes()).await, 413);

    let after = [view(&server, &id).await, view(&server, &fresh).await];
    assert_eq!(before, after, "an oversized body changed a session");
    assert_eq!(server.get("/healthz").await.status(), StatusCode::OK);
    server.stop(&[&id, &fresh]);
}

#[tokio::test]
async fn card_numbers_in_other_scripts_digits_are_refused() {
    let server = TestServer::start("adversarial-digits");
    let id = server.create_id().await;
    let before = view(&server, &id).await;
    let fields_with = |name: &str, value: &str| {
        let mut fields = card_fields();
        fields[name] = json!(value);
        fields
    };
    let cases = [
        ("card_number", "４２４２４２４２４２４２４２４２"),
        ("card_number", "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢"),
        ("card_number", "۴۲۴۲۴۲۴۲۴۲۴۲۴۲۴۲"),
        ("card_number", "4242 4242 4242 ４２４２"),
        ("card_number", "4242424242424٢42"),
        ("cvc", "７３７"),
        ("cvc", "٧٣٧"),
        ("expiry", "１２/３４"),
        ("expiry", "١٢/٣٤"),
    ];
    for (field, value) in cases {
        let (status, body) = server.submit_json(&id, fields_with(field, value)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field} {value}: {body}"
        );
        assert_eq!(error_code(&body), "VALIDATION_FAILED");
        let failed: Vec<&str> = body["error"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(failed, [field], "{value}: {body}");
        assert!(!body.to_string().contains(value), "{body}");

        // The page's own form: 422 again, the value not shown back.
        let mut form: Vec<(&str, &str)> = vec![
            ("card_number", PAN),
            ("expiry", EXPIRY),
            ("cvc", CVC),
            ("cardholder_name", NAME),
        ];
        for entry in &mut form {
            if entry.0 == field {
                entry.1 = value;
            }
        }
        let response = server
            .post_form(&id, Some(&server.base), None, encode(&form))
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = response.text().await.unwrap();
        if field != "expiry" {
            assert!(!page.contains(value), "the page shows the {field} back");
        }
        assert!(page.contains(&format!("id=\"{field}-error\"")), "{field}");
    }
    assert_eq!(view(&server, &id).await, before);
    // Nothing was stored: the same card in ASCII digits is taken.
    let pin = server.submit_card(&id).await;
    server.remember_secret(&pin);
    server.stop(&[&id]);
}

#[tokio::test]
async fn form_bodies_that_are_not_utf8_are_refused_not_repaired() {
    let server = TestServer::start("adversarial-utf8");
    let created = server
        .create(json!({"fields": ["card_number", "expiry", "cvc", "cardholder_name", "postcode"]}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let before = view(&server, &id).await;
    let good = common::good_form();
    for postcode in [
        &b"SW1A%FF1AA"[..],
        b"SW1A%C3%281AA",
        b"SW1A%ED%A0%801AA",
        b"SW1A\xff1AA",
        // U+FFFD itself: what a repaired body would hold.
        b"SW1A%EF%BF%BD1AA",
    ] {
        let mut body = format!("{good}&postcode=").into_bytes();
        body.extend_from_slice(postcode);
        let response = server
            .client
            .post(server.url(&format!("/forms/{id}")))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", &server.base)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(postcode)
        );
        assert!(response.text().await.unwrap().contains("could not be read"));
    }
    // JSON: a lone surrogate, and raw bytes that are not UTF-8 inside a string.
    let mut raw = br#"{"fields":{"postcode":"SW1A"#.to_vec();
    raw.extend_from_slice(b"\xff\"}}");
    for body in [br#"{"fields":{"postcode":"SW1A\ud800"}}"#.to_vec(), raw] {
        let (status, text) = send(
            server
                .client
                .post(server.url(&format!("/forms/{id}")))
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert_eq!(error_code(&json_of(status, &text)), "INVALID_ARGUMENT");
    }
    assert_eq!(view(&server, &id).await, before);

    // The same form in UTF-8 is stored and revealed exactly.
    let body = format!("{good}&postcode=SW1A%C2%A01AA");
    let response = server.post_form(&id, Some(&server.base), None, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let pin = common::pin_of(&response.text().await.unwrap());
    server.remember_secret(&pin);
    let (status, revealed) = server.reveal(&id, &pin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revealed["fields"]["postcode"], "SW1A\u{a0}1AA");
    server.stop(&[&id]);
}

#[tokio::test]
async fn a_pin_of_one_session_does_not_open_another() {
    let server = TestServer::start("adversarial-pin-swap");
    // Two sessions with different PINs (a third if the first two happen to match).
    let a = server.create_id().await;
    let pin_a = server.submit_card(&a).await;
    let (b, pin_b) = loop {
        let b = server.create_id().await;
        let mut fields = card_fields();
        fields["card_number"] = json!(OTHER_PAN);
        let (status, body) = server.submit_json(&b, fields).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let pin_b = body["pin"].as_str().unwrap().to_owned();
        if pin_b != pin_a {
            break (b, pin_b);
        }
    };
    server.remember_secret(&pin_a);
    server.remember_secret(&pin_b);

    let (status, body) = server.reveal(&b, &pin_a).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "WRONG_PIN")
    );
    assert_eq!(body["error"]["attempts_left"], 4);
    assert!(!body.to_string().contains(&pin_a));
    // A's session is untouched by the use of its PIN on B.
    let view_a = view(&server, &a).await;
    assert_eq!(
        (view_a["state"].as_str(), view_a["attempts_left"].as_u64()),
        (Some("submitted"), Some(5))
    );
    let (status, body) = server.reveal(&a, &pin_b).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "WRONG_PIN")
    );
    assert_eq!(view(&server, &b).await["attempts_left"], 4);
    assert_eq!(view(&server, &a).await["attempts_left"], 4);

    // Each PIN opens its own session, with its own card.
    let (status, revealed) = server.reveal(&b, &pin_b).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revealed["fields"]["card_number"], OTHER_PAN);
    let (status, revealed) = server.reveal(&a, &pin_a).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revealed["fields"]["card_number"], PAN);
    server.stop(&[&a, &b]);
}
