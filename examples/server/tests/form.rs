//! The customer side against the real binary: the form page and its
//! headers, languages, the neutral page, the HTML and JSON submissions, the Origin check,
//! escaping, and the form rate limit.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

mod common;

use common::{CVC, NAME, Options, PAN, TestServer, card_fields, encode, good_form, header, pin_of};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

const FORM_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The headers every customer page carries.
fn assert_page_headers(response: &Response) {
    assert_eq!(header(response, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(response, "content-security-policy"), FORM_CSP);
    assert_eq!(header(response, "cache-control"), "no-store");
    assert_eq!(header(response, "referrer-policy"), "no-referrer");
    assert_eq!(header(response, "x-content-type-options"), "nosniff");
    assert_eq!(header(response, "x-frame-options"), "DENY");
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
}

async fn get_page(server: &TestServer, id: &str, lang: Option<&str>) -> (StatusCode, String) {
    let mut request = server.client.get(server.url(&format!("/forms/{id}")));
    if let Some(lang) = lang {
        request = request.header("accept-language", lang);
    }
    let response = request.send().await.unwrap();
    assert_page_headers(&response);
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn form_page_is_accessible_self_contained_and_read_only() {
    let server = TestServer::start("form-page");
    let id = server.create_id().await;
    let (status, page) = get_page(&server, &id, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<html lang=\"en\">"));
    for (name, autocomplete) in [
        ("card_number", "cc-number"),
        ("expiry", "cc-exp"),
        ("cvc", "cc-csc"),
        ("cardholder_name", "cc-name"),
    ] {
        assert!(page.contains(&format!("<label for=\"{name}\">")), "{name}");
        let input = page
            .split("<input ")
            .find(|i| i.starts_with(&format!("id=\"{name}\" name=\"{name}\"")))
            .unwrap_or_else(|| panic!("no input {name}"));
        assert!(
            input.contains(&format!("autocomplete=\"{autocomplete}\"")),
            "{input}"
        );
        assert!(input.contains(" required"), "{input}");
        if name == "card_number" || name == "cvc" {
            assert!(input.contains("inputmode=\"numeric\""), "{input}");
        }
    }
    assert!(page.contains("<form method=\"post\""));
    assert!(page.contains("name=\"viewport\""));
    // No script, no third-party asset.
    assert!(!page.contains("<script"));
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http") && !page.contains("//"),
        "{page}"
    );
    assert!(page.contains("href=\"../assets/style.css\""));

    // GET and HEAD, however often, change nothing.
    for _ in 0..3 {
        assert_eq!(get_page(&server, &id, None).await.0, StatusCode::OK);
        let head = server
            .client
            .head(server.url(&format!("/forms/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::OK);
    }
    let (_, view) = server.status(&id).await;
    assert_eq!(view["state"], "pending");

    let css = server.get("/assets/style.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(header(&css, "content-type"), "text/css; charset=utf-8");
    server.stop(&[&id]);
}

#[tokio::test]
async fn languages_follow_accept_language() {
    let server = TestServer::start("form-languages");
    let id = server.create_id().await;
    for (accept, lang, label) in [
        (Some("de-DE,de;q=0.9,en;q=0.8"), "de", "Kartennummer"),
        (Some("en-GB,en;q=0.9"), "en", "Card number"),
        (Some("fr-FR, de;q=0.5"), "de", "Kartennummer"),
        (Some("fr"), "en", "Card number"),
        (None, "en", "Card number"),
    ] {
        let mut request = server.client.get(server.url(&format!("/forms/{id}")));
        if let Some(accept) = accept {
            request = request.header("accept-language", accept);
        }
        let response = request.send().await.unwrap();
        assert_eq!(header(&response, "content-language"), lang);
        assert_eq!(header(&response, "vary"), "Accept-Language");
        let page = response.text().await.unwrap();
        assert!(
            page.contains(&format!("<html lang=\"{lang}\">")),
            "{accept:?}"
        );
        assert!(page.contains(label), "{accept:?}");
    }
    let (status, page) = get_page(&server, "A".repeat(43).as_str(), Some("de")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("Link nicht verfügbar"));
    server.stop(&[&id]);
}

#[tokio::test]
async fn unknown_expired_and_used_links_get_the_same_neutral_page() {
    let server = TestServer::start("form-neutral");
    let (_, reference) = get_page(&server, &"A".repeat(43), None).await;
    assert!(reference.contains("This link is not valid"));

    let expired = server.create(json!({"ttl_seconds": 1})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let submitted = server.create_id().await;
    server.submit_card(&submitted).await;
    let revealed = server.create_id().await;
    let pin = server.submit_card(&revealed).await;
    assert_eq!(server.reveal(&revealed, &pin).await.0, StatusCode::OK);
    let cancelled = server.create_id().await;
    server
        .agent_call(
            reqwest::Method::DELETE,
            &format!("/v1/sessions/{cancelled}"),
            None,
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;

    for id in [
        expired.as_str(),
        &submitted,
        &revealed,
        &cancelled,
        "short",
        "%00",
        &"*".repeat(43),
        &"x".repeat(5000),
    ] {
        let (status, page) = get_page(&server, id, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(page, reference, "the page differs for {id}");
    }
    // A submission to a used link gets the same page.
    let response = server
        .post_form(&submitted, Some(&server.base), None, good_form())
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_page_headers(&response);
    assert_eq!(response.text().await.unwrap(), reference);
    server.stop(&[&expired, &submitted, &revealed, &cancelled]);
}

#[tokio::test]
async fn html_submission_shows_the_pin_that_reveals_the_form() {
    let server = TestServer::start("form-submit-html");
    let id = server.create_id().await;
    let response = server
        .post_form(&id, Some(&server.base), None, good_form())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_page_headers(&response);
    let page = response.text().await.unwrap();
    let pin = pin_of(&page);
    server.remember_secret(&pin);
    assert_eq!(pin.len(), 6);
    assert!(pin.bytes().all(|b| b.is_ascii_digit()));
    assert!(
        !page.contains(PAN) && !page.contains(CVC),
        "the PIN page repeats card data"
    );
    let (status, revealed) = server.reveal(&id, &pin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revealed["fields"]["card_number"], PAN);
    assert_eq!(revealed["fields"]["cardholder_name"], NAME);

    // German PIN page.
    let id2 = server.create_id().await;
    let response = server
        .client
        .post(server.url(&format!("/forms/{id2}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &server.base)
        .header("accept-language", "de")
        .body(good_form())
        .send()
        .await
        .unwrap();
    let page = response.text().await.unwrap();
    server.remember_secret(&pin_of(&page));
    assert!(page.contains("Nennen Sie dem Mitarbeiter diese PIN"));
    server.stop(&[&id, &id2]);
}

#[tokio::test]
async fn form_posts_must_come_from_the_public_origin() {
    let server = TestServer::start("form-origin");
    let id = server.create_id().await;
    let other_port = server.base.replace("127.0.0.1:", "127.0.0.1:1");
    for (origin, site) in [
        (None, None),
        (None, Some("same-origin")),
        (Some("https://evil.example"), Some("cross-site")),
        (Some("https://evil.example"), Some("same-origin")),
        (Some(other_port.as_str()), None),
        (Some("null"), None),
        (Some("null"), Some("cross-site")),
        (Some("null"), Some("same-site")),
    ] {
        let response = server.post_form(&id, origin, site, good_form()).await;
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{origin:?} {site:?}"
        );
        assert_page_headers(&response);
        let page = response.text().await.unwrap();
        assert!(page.contains("can only be sent from its own page"));
    }
    let (_, view) = server.status(&id).await;
    assert_eq!(
        view["state"], "pending",
        "a refused POST changed the session"
    );

    // Under Referrer-Policy: no-referrer a browser sends Origin: null with Sec-Fetch-Site.
    let response = server
        .post_form(&id, Some("null"), Some("same-origin"), good_form())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    server.remember_secret(&pin_of(&response.text().await.unwrap()));
    server.stop(&[&id]);
}

#[tokio::test]
async fn invalid_fields_show_the_form_again_without_echoing_card_data() {
    let server = TestServer::start("form-invalid");
    let id = server.create_id().await;
    let bad_pan = "4242424242424241";
    let body = encode(&[
        ("card_number", bad_pan),
        ("expiry", "13/30"),
        ("cvc", "73"),
        ("cardholder_name", "Ada \"><script>alert(1)</script>"),
    ]);
    let response = server.post_form(&id, Some(&server.base), None, body).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_page_headers(&response);
    let page = response.text().await.unwrap();
    assert!(!page.contains(bad_pan), "the card number was echoed");
    assert!(
        !page.contains("value=\"73\""),
        "the security code was echoed"
    );
    assert!(page.contains("value=\"13/30\""), "the expiry was not kept");
    assert!(!page.contains("<script>"), "unescaped input");
    assert!(
        page.contains("&#34;&#62;&#60;script&#62;") || page.contains("&quot;&gt;&lt;script&gt;"),
        "{page}"
    );
    assert!(page.contains("role=\"alert\""));
    for (field, message) in [
        ("card_number", "This card number is not valid"),
        ("expiry", "The month must be 01 to 12"),
        ("cvc", "The security code has the wrong number of digits"),
    ] {
        assert!(
            page.contains(&format!("id=\"{field}-error\">{message}")),
            "{field}"
        );
        assert!(
            page.contains(&format!("href=\"#{field}\"")),
            "{field} not in the summary"
        );
    }
    assert!(page.contains("aria-invalid=\"true\""));

    // Empty fields are named as required, in German too.
    let response = server
        .client
        .post(server.url(&format!("/forms/{id}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &server.base)
        .header("accept-language", "de")
        .body("card_number=&expiry=&cvc=&cardholder_name=")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert_eq!(page.matches("Bitte füllen Sie dieses Feld aus.").count(), 8);

    // Unreadable bodies: the form again, 400.
    for body in ["cvc=1&cvc=2", "unknown_field=1"] {
        let response = server
            .post_form(&id, Some(&server.base), None, body.to_owned())
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        assert!(response.text().await.unwrap().contains("could not be read"));
    }
    let (_, view) = server.status(&id).await;
    assert_eq!(view["state"], "pending");
    server.stop(&[&id]);
}

#[tokio::test]
async fn json_submission_and_its_errors() {
    let server = TestServer::start("form-submit-json");
    let id = server.create_id().await;

    let (status, body) = server
        .submit_json(
            &id,
            json!({"card_number": "4242424242424241", "expiry": "01/20", "cvc": "1"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "VALIDATION_FAILED");
    assert_eq!(
        body["error"]["fields"],
        json!([
            {"field": "card_number", "reason": "luhn"},
            {"field": "expiry", "reason": "expired"},
            {"field": "cvc", "reason": "cvc_length"},
            {"field": "cardholder_name", "reason": "required"},
        ])
    );
    assert!(!body.to_string().contains("4242424242424241"));

    let (status, body) = server.submit_json(&id, card_fields()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["pin"].as_str().unwrap().len(), 6);
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    let (status, body) = server.submit_json(&id, card_fields()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("ALREADY_SUBMITTED"))
    );

    let (status, body) = server.submit_json(&"A".repeat(43), card_fields()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("NOT_FOUND"))
    );
    let (status, body) = server.submit_json("not-an-id", card_fields()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("INVALID_ARGUMENT"))
    );

    let fresh = server.create_id().await;
    let url = server.url(&format!("/forms/{fresh}"));
    let cases: [(&str, String, StatusCode); 7] = [
        ("application/json", "{".to_owned(), StatusCode::BAD_REQUEST),
        (
            "application/json",
            json!({"fields": {"card_number": 4242}}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            json!({"card_number": PAN}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            json!({"fields": card_fields(), "extra": 1}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            json!({"fields": {"pin": "1"}}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "text/plain",
            "card_number=1".to_owned(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "application/json",
            format!(
                "{{\"fields\": {{\"cardholder_name\": \"{}\"}}}}",
                "x".repeat(70_000)
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (content_type, body, expected) in cases {
        let response = server
            .client
            .post(&url)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            expected,
            "{}",
            &body[..body.len().min(80)]
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "INVALID_ARGUMENT");
        assert!(!error.to_string().contains("4242"));
    }
    let (_, view) = server.status(&fresh).await;
    assert_eq!(view["state"], "pending");
    server.stop(&[&id, &fresh]);
}

#[tokio::test]
async fn form_submissions_are_rate_limited_per_client() {
    let server = TestServer::start_with(
        "form-rate-limit",
        Options {
            args: vec!["--form-rate-limit", "2"],
            ..Options::default()
        },
    );
    let id = server.create_id().await;
    for _ in 0..2 {
        let response = server
            .post_form(&id, Some(&server.base), None, "cvc=".to_owned())
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let response = server
        .post_form(&id, Some(&server.base), None, good_form())
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&response, "retry-after").parse::<u64>().unwrap() >= 1);
    assert_page_headers(&response);
    let (status, body) = server.submit_json(&id, card_fields()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("RATE_LIMITED"))
    );
    let (_, view) = server.status(&id).await;
    assert_eq!(view["state"], "pending");
    server.stop(&[&id]);
}

/// Each load of the page reads the session through the key provider: loads share the
/// form's allowance, and past it the client gets the rate-limit page, not the store.
#[tokio::test]
async fn form_page_loads_are_rate_limited_per_client() {
    let server = TestServer::start_with(
        "form-page-rate-limit",
        Options {
            args: vec!["--form-rate-limit", "3"],
            ..Options::default()
        },
    );
    let id = server.create_id().await;
    for _ in 0..3 {
        let (status, _) = get_page(&server, &id, None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let response = server
        .client
        .get(server.url(&format!("/forms/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&response, "retry-after").parse::<u64>().unwrap() >= 1);
    assert_page_headers(&response);
    assert!(header(&response, "content-type").starts_with("text/html"));
    let metrics = server.get("/metrics").await.text().await.unwrap();
    let unwraps = "pci_vault_backend_call_duration_seconds_count{component=\"key_provider\",operation=\"unwrap\"} 3";
    assert!(metrics.contains(unwraps), "{metrics}");
    server.stop(&[&id]);
}

#[tokio::test]
async fn custom_fields_are_rendered_and_optional_text_kept() {
    let server = TestServer::start("form-custom-fields");
    let created = server
        .create(json!({"fields": ["card_number", "expiry", "cvc", "cardholder_name", "postcode"]}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, page) = get_page(&server, &id, None).await;
    assert!(page.contains("<label for=\"postcode\">postcode</label>"));
    let body = encode(&[
        ("card_number", "1"),
        ("expiry", "12/34"),
        ("cvc", CVC),
        ("cardholder_name", NAME),
        ("postcode", "SW1A 1AA"),
    ]);
    let response = server.post_form(&id, Some(&server.base), None, body).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(page.contains("value=\"SW1A 1AA\""));
    server.stop(&[&id]);
}

#[tokio::test]
async fn hostile_requests_get_clear_answers_and_change_nothing() {
    let server = TestServer::start("form-hostile");
    let id = server.create_id().await;
    let url = server.url(&format!("/forms/{id}"));

    // Bytes that are not UTF-8, NULs and control characters in the page's form.
    let mut body = b"card_number=%FF%FE&expiry=%00%00&cvc=\x01&cardholder_name=".to_vec();
    body.extend_from_slice(&[0xff, 0xfe, b'%', b'Z']);
    let response = server
        .client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &server.base)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("could not be read"));

    // Deeply nested JSON, a huge number, a NUL in a name.
    for body in [
        format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
        format!("{{\"fields\": {{\"cvc\": {}}}}}", "9".repeat(5000)),
        "{\"fields\": {\"cvc\\u0000\": \"1\"}}".to_owned(),
    ] {
        let response = server
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    // A huge, malformed Accept-Language; odd content types; an encoded path.
    let response = server
        .client
        .get(&url)
        .header("accept-language", "de;q=x,".repeat(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for content_type in [
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "*/*",
    ] {
        let response = server
            .client
            .post(&url)
            .header("content-type", content_type)
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
    }
    for path in [
        "/forms/%FF%FE",
        "/forms/..%2F..%2Fetc%2Fpasswd",
        "/forms/a/b",
    ] {
        let status = server.get(path).await.status();
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, view) = server.status(&id).await;
    assert_eq!(view["state"], "pending");

    // The server is still healthy after all of it.
    assert_eq!(server.get("/healthz").await.status(), StatusCode::OK);
    server.stop(&[&id]);
}
