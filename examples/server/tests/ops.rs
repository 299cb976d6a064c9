//! Operations and configuration against the real binary: health,
//! readiness, metrics, the OpenAPI document, the agent console and its CSP, structured
//! logs, development mode, TLS with HSTS, key sources, and start-up errors that never
//! print key material.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

mod common;

use std::process::Command;

use base64::Engine as _;
use common::{KEY, Options, TestServer, header, log_dir};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = TestServer::start("ops-health");
    let response = server.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    let response = server.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ready"})
    );

    let id = server.create_id().await;
    let pin = server.submit_card(&id).await;
    assert_eq!(server.reveal(&id, "000000").await.0.as_u16() / 100, 4);
    let _ = server.reveal(&id, &pin).await;

    let response = server.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header(&response, "content-type").starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    for expected in [
        "pci_vault_http_requests_total{route=\"/v1/sessions\",method=\"POST\",status=\"201\"} 1",
        "pci_vault_http_requests_total{route=\"/forms/{id}\",method=\"POST\",status=\"200\"} 1",
        "pci_vault_vault_operations_total{action=\"created\",outcome=\"success\"} 1",
        "pci_vault_vault_operations_total{action=\"submitted\",outcome=\"success\"} 1",
        "pci_vault_vault_operations_total{action=\"revealed\",outcome=\"success\"} 1",
        "pci_vault_http_request_duration_seconds_bucket",
        "pci_vault_key_wraps{key_id=\"dev\"} 1",
        "pci_vault_key_rotation_due{key_id=\"dev\"} 0",
        "# EOF",
    ] {
        assert!(text.contains(expected), "missing {expected}:\n{text}");
    }
    assert!(!text.contains(&id), "a session id reached the metrics");
    server.stop(&[&id]);
}

#[tokio::test]
async fn openapi_document_describes_every_route() {
    let server = TestServer::start("ops-openapi");
    let response = server.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/json");
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/v1/sessions", &["post"][..]),
        ("/v1/sessions/{id}", &["get", "delete"]),
        ("/v1/sessions/{id}/reveal", &["post"]),
        ("/forms/{id}", &["get", "post"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
    ] {
        for method in methods {
            assert!(paths[path][method].is_object(), "{method} {path}");
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
    for code in pci_vault::ErrorCode::ALL {
        assert!(
            codes.as_array().unwrap().contains(&json!(code.as_str())),
            "{code}"
        );
    }
    for code in ["UNAUTHORIZED", "RATE_LIMITED"] {
        assert!(codes.as_array().unwrap().contains(&json!(code)));
    }
    let reveal_responses = doc["paths"]["/v1/sessions/{id}/reveal"]["post"]["responses"]
        .as_object()
        .unwrap();
    for status in [
        "200", "400", "401", "403", "404", "409", "410", "423", "429",
    ] {
        assert!(reveal_responses.contains_key(status), "reveal {status}");
    }
    server.stop(&[]);
}

#[tokio::test]
async fn agent_console_loads_its_script_from_this_origin_only() {
    let server = TestServer::start("ops-console");
    let response = server.get("/agent").await;
    assert_eq!(response.status(), StatusCode::OK);
    let csp = header(&response, "content-security-policy").to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(header(&response, "cache-control"), "no-store");
    let page = response.text().await.unwrap();
    assert!(page.contains("<script src=\"assets/agent.js\" defer></script>"));
    assert_eq!(
        page.matches("<script").count(),
        1,
        "inline script on the console"
    );
    assert!(
        !page.contains(" on") || !page.contains("onclick="),
        "inline handlers"
    );

    let script = server.get("/assets/agent.js").await;
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(
        header(&script, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(header(&script, "x-content-type-options"), "nosniff");
    assert!(script.text().await.unwrap().contains("v1/sessions"));

    let root = server.get("/").await;
    assert_eq!(root.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&root, "location"), "agent");
    server.stop(&[]);
}

#[tokio::test]
async fn logs_are_json_lines_with_route_templates_only() {
    let server = TestServer::start("ops-logs");
    let id = server.create_id().await;
    let _ = server.get(&format!("/forms/{id}")).await;
    let pin = server.submit_card(&id).await;
    let _ = server.reveal(&id, &pin).await;
    let log = server.stop(&[&id]);
    let mut requests = 0;
    let mut audits = 0;
    for line in log.lines().filter(|l| l.starts_with('{')) {
        let event: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            event["timestamp"].is_string() && event["level"].is_string(),
            "{line}"
        );
        if event["message"] == "request" {
            requests += 1;
            let route = event["route"].as_str().unwrap();
            assert!(route.starts_with('/') || route == "unmatched", "{route}");
        }
        if event["message"] == "audit" {
            audits += 1;
            assert_eq!(event["session_ref"].as_str().unwrap().len(), 32);
        }
    }
    assert!(
        requests >= 4 && audits >= 3,
        "{requests} requests, {audits} audits:\n{log}"
    );
    assert!(log.contains("\"route\":\"/forms/{id}\""));
}

#[tokio::test]
async fn development_mode_prints_a_working_key_and_curl_example() {
    let server = TestServer::start_with(
        "ops-development",
        Options {
            api_keys: false,
            ..Options::default()
        },
    );
    let log = server.log();
    let key_line = log
        .lines()
        .find(|l| l.contains("development API key"))
        .expect("no development key printed");
    let key = key_line.rsplit(' ').next().unwrap().to_owned();
    assert_eq!(key.len(), 43);
    assert!(log.contains(&format!(
        "curl -s -X POST -H 'Authorization: Bearer {key}' {}/v1/sessions",
        server.base
    )));
    assert!(log.contains(&format!("agent console:  {}/agent", server.base)));
    assert!(
        log.contains("ephemeral development key"),
        "no warning about the development key"
    );
    let try_link = log
        .lines()
        .find(|l| l.contains("a link to try now"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .to_owned();
    let page = server.client.get(&try_link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);

    // The printed key works; the test key of the other servers does not.
    let response = server
        .client
        .post(server.url("/v1/sessions"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = server
        .client
        .post(server.url("/v1/sessions"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let log = server.stop(&[]);
    // The key is printed once, in the banner, never in a log line.
    assert_eq!(log.matches(key.as_str()).count(), 3, "{log}");
}

/// Runs the server on every address with `args` and `env`, expecting it to refuse to start;
/// returns what it printed. A server that starts instead is stopped and fails the test.
fn refused_on_every_address(args: &[&str], env: &[(&str, &str)]) -> String {
    let path = log_dir().join("ops-development-refused.log");
    let out = std::fs::File::create(&path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pci-vault-server"))
        .args(["--listen", "0.0.0.0:0"])
        .args(args)
        .env_remove("PCI_VAULT_KEYS")
        .env_remove("PCI_VAULT_API_KEYS")
        .env_remove("PCI_VAULT_KEY_SOURCE")
        .env_remove("PCI_VAULT_DEVELOPMENT")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        status.is_some_and(|s| !s.success()),
        "{args:?} started:\n{text}"
    );
    // Refused before anything is printed: no development key reaches the output.
    assert!(!text.contains("listening on"), "{text}");
    assert!(!text.contains("development API key ("), "{text}");
    text
}

/// On an address other than loopback (a container's 0.0.0.0) the development fallbacks
/// need `--development`: the development API key would be printed to standard output, which
/// is the container's log. The message names what is missing.
#[tokio::test]
async fn development_credentials_off_loopback_need_the_development_flag() {
    let out = refused_on_every_address(&[], &[]);
    assert!(
        out.contains("--listen 0.0.0.0:0 is not a loopback address"),
        "{out}"
    );
    assert!(
        out.contains("--api-keys-file") && out.contains("--keys-file"),
        "{out}"
    );
    assert!(out.contains("--development"), "{out}");

    // With API keys, only the keys are missing; and the other way round.
    let out = refused_on_every_address(&["--api-keys", KEY], &[]);
    assert!(
        out.contains("--keys-file") && !out.contains("--api-keys-file"),
        "{out}"
    );
    assert!(!out.contains(KEY), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("keyring");
    let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    std::fs::write(&keyring, format!("k1:{key}\n")).unwrap();
    let keys_file = keyring.to_str().unwrap();
    let out = refused_on_every_address(&["--keys-file", keys_file], &[]);
    assert!(
        out.contains("--api-keys-file") && !out.contains("--keys-file"),
        "{out}"
    );
    // A development key source named outright is a development fallback too.
    let out = refused_on_every_address(&["--api-keys", KEY, "--key-source", "development"], &[]);
    assert!(out.contains("--keys-file"), "{out}");
    // PCI_VAULT_DEVELOPMENT=false is no permission.
    let out = refused_on_every_address(&[], &[("PCI_VAULT_DEVELOPMENT", "false")]);
    assert!(out.contains("--development"), "{out}");

    // Configured, it starts there.
    let mut configured = TestServer::start_with(
        "ops-public-configured",
        Options {
            listen: "0.0.0.0:0",
            args: vec!["--keys-file", keys_file],
            ..Options::default()
        },
    );
    configured.remember_secret(&key);
    configured.base = configured.base.replace("0.0.0.0", "127.0.0.1");
    let id = configured.create_id().await;
    let log = configured.stop(&[&id]);
    assert!(!log.contains("development"), "{log}");

    // With --development (flag or variable) it starts with the development fallbacks, and
    // says so in the log.
    for (name, args, env) in [
        ("ops-public-development-flag", vec!["--development"], vec![]),
        (
            "ops-public-development-env",
            vec![],
            vec![("PCI_VAULT_DEVELOPMENT", "true")],
        ),
    ] {
        let mut server = TestServer::start_with(
            name,
            Options {
                listen: "0.0.0.0:0",
                api_keys: false,
                args,
                env,
                ..Options::default()
            },
        );
        server.base = server.base.replace("0.0.0.0", "127.0.0.1");
        let log = server.log();
        let key = log
            .lines()
            .find(|l| l.contains("development API key"))
            .and_then(|l| l.rsplit(' ').next())
            .expect("no development key printed")
            .to_owned();
        let response = server
            .client
            .post(server.url("/v1/sessions"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{name}");
        let log = server.stop(&[]);
        assert!(
            log.contains("development credentials on an address other than loopback"),
            "{name}: {log}"
        );
    }
}

#[tokio::test]
async fn tls_serves_https_with_hsts() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let cert_pem = cert.cert.pem();
    let server = TestServer::start_with(
        "ops-tls",
        Options {
            args: vec![
                "--tls-cert",
                cert_path.to_str().unwrap(),
                "--tls-key",
                key_path.to_str().unwrap(),
            ],
            root_cert: Some(&cert_pem),
            ..Options::default()
        },
    );
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let base = server.base.replace("127.0.0.1", "localhost");
    let created = server
        .client
        .post(format!("{base}/v1/sessions"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(
        header(&created, "strict-transport-security"),
        "max-age=31536000"
    );
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = server
        .client
        .get(format!("{base}/forms/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        header(&page, "strict-transport-security"),
        "max-age=31536000"
    );
    // Plain HTTP on the TLS port is refused.
    let plain = common::client(None)
        .get(base.replace("https://", "http://") + "/healthz")
        .send()
        .await;
    assert!(plain.map(|r| r.status() != StatusCode::OK).unwrap_or(true));
    server.stop(&[&id]);
}

#[tokio::test]
async fn keys_from_a_file_or_the_environment() {
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keyring");
    std::fs::write(&file, format!("k1:{key}\n")).unwrap();
    let keyring_env = format!("k1:{key}");
    for (name, options) in [
        (
            "ops-keys-file",
            Options {
                args: vec!["--keys-file", file.to_str().unwrap()],
                ..Options::default()
            },
        ),
        (
            "ops-keys-env",
            Options {
                env: vec![("PCI_VAULT_KEYS", keyring_env.as_str())],
                ..Options::default()
            },
        ),
    ] {
        let server = TestServer::start_with(name, options);
        let id = server.create_id().await;
        let pin = server.submit_card(&id).await;
        assert_eq!(server.reveal(&id, &pin).await.0, StatusCode::OK);
        let log = server.stop(&[&id]);
        assert!(!log.contains("ephemeral development key"), "{name}");
        assert!(!log.contains(&key), "{name}: the key reached the log");
    }
}

fn run_failing(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_pci-vault-server"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("PCI_VAULT_KEYS")
        .env_remove("PCI_VAULT_API_KEYS")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(!output.status.success(), "{args:?} started");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(log_dir().join("ops-config-errors.log"), &text).unwrap();
    text
}

#[test]
fn bad_configuration_fails_at_start_without_printing_secrets() {
    let secret = "sup3r-s3cret-api-key-value";
    let out = run_failing(
        &[
            "--api-keys",
            &format!("{secret},bad tenant=another-long-key-1"),
        ],
        &[],
    );
    assert!(out.contains("--api-keys: API key entry 2"), "{out}");
    assert!(!out.contains(secret), "{out}");

    let out = run_failing(&[], &[("PCI_VAULT_API_KEYS", "short")]);
    assert!(
        out.contains("API key entry 1: a key is 16-256 characters"),
        "{out}"
    );

    let zeros = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
    let out = run_failing(&[], &[("PCI_VAULT_KEYS", &format!("k1:{zeros}"))]);
    assert!(
        out.contains("PCI_VAULT_KEYS") && out.contains("all zeros"),
        "{out}"
    );
    assert!(!out.contains(&zeros), "{out}");

    let out = run_failing(&["--keys-file", "/nonexistent/keyring"], &[]);
    assert!(out.contains("/nonexistent/keyring"), "{out}");

    let out = run_failing(&["--store", "postgres://db"], &[]);
    assert!(out.contains("--store"), "{out}");
    let out = run_failing(&["--public-url", "ftp://x"], &[]);
    assert!(
        out.contains("--public-url: the scheme must be http or https"),
        "{out}"
    );
    let out = run_failing(&["--tls-cert", "/nonexistent.pem"], &[]);
    assert!(out.contains("--tls-key"), "{out}");
    let out = run_failing(
        &[
            "--tls-cert",
            "/nonexistent.pem",
            "--tls-key",
            "/nonexistent.key",
        ],
        &[],
    );
    assert!(out.contains("TLS"), "{out}");
    let out = run_failing(&["--form-rate-limit", "0"], &[]);
    assert!(out.contains("--form-rate-limit"), "{out}");
}

#[test]
fn help_lists_every_flag_and_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_pci-vault-server"))
        .arg("--help")
        .env("PCI_VAULT_API_KEYS", "a-secret-key-in-the-environment")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for (flag, var) in [
        ("--listen", "PCI_VAULT_LISTEN"),
        ("--public-url", "PCI_VAULT_PUBLIC_URL"),
        ("--store", "PCI_VAULT_STORE"),
        ("--keys-file", "PCI_VAULT_KEYS_FILE"),
        ("--api-keys", "PCI_VAULT_API_KEYS"),
        ("--tls-cert", "PCI_VAULT_TLS_CERT"),
        ("--tls-key", "PCI_VAULT_TLS_KEY"),
        ("--form-rate-limit", "PCI_VAULT_FORM_RATE_LIMIT"),
        ("--reveal-rate-limit", "PCI_VAULT_REVEAL_RATE_LIMIT"),
        ("--log-format", "PCI_VAULT_LOG_FORMAT"),
        ("--shutdown-grace", "PCI_VAULT_SHUTDOWN_GRACE"),
        ("--development", "PCI_VAULT_DEVELOPMENT"),
    ] {
        assert!(help.contains(flag) && help.contains(var), "{flag} {var}");
    }
    assert!(help.contains("PCI_VAULT_KEYS"));
    assert!(
        !help.contains("a-secret-key-in-the-environment"),
        "--help printed an API key"
    );
}

/// `--key-source` selects the keys by one string, and the wrap count per key id reaches the
/// metrics and, at the warning limit, the log.
#[tokio::test]
async fn key_source_flag_and_wrap_warning() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keyring");
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    std::fs::write(&keys, format!("ops-k1:{key}\n")).unwrap();
    let source = format!("file:{}", keys.display());
    let server = TestServer::start_with(
        "ops-key-source",
        Options {
            args: vec!["--key-source", &source, "--key-wrap-warning-limit", "2"],
            ..Options::default()
        },
    );
    server.remember_secret(&key);
    let first = server.create_id().await;
    let text = server.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains("pci_vault_key_wraps{key_id=\"ops-k1\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("pci_vault_key_rotation_due{key_id=\"ops-k1\"} 0"),
        "{text}"
    );
    let second = server.create_id().await;
    let text = server.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains("pci_vault_key_wraps{key_id=\"ops-k1\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("pci_vault_key_rotation_due{key_id=\"ops-k1\"} 1"),
        "{text}"
    );
    let log = server.log();
    assert!(
        log.contains("key-encryption key ops-k1 has wrapped 2 data keys"),
        "{log}"
    );
    server.stop(&[&first, &second]);
}

/// A malformed `--key-source` stops the server at start, without repeating the text.
#[test]
fn a_malformed_key_source_stops_the_server() {
    let out = Command::new(env!("CARGO_BIN_EXE_pci-vault-server"))
        .args(["--listen", "127.0.0.1:0", "--key-source", "vault:hunter2"])
        .env_remove("PCI_VAULT_KEYS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a key source is"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
