//! Test harness: runs the real `pci-vault-server` binary on a free loopback port, talks to
//! it over HTTP, and on stop checks that it shut down cleanly and that its log holds none
//! of the secrets the test handled.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a part of its helpers (so `expect` would be unfulfilled in some)"
)]

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

/// The API key every test server gets for the default tenant.
pub const KEY: &str = "test-key-default-0123456789";
/// A second tenant's key.
pub const ACME_KEY: &str = "test-key-acme-0123456789abc";

/// A card that passes every check, and values that go with it.
pub use pci_vault_testkit::cards::{CVC, EXPIRY, NAME, PAN, PAN_SPACED};
pub use pci_vault_testkit::secrets::contains_number;

/// The stable code of an error body (`{"error": {"code": …}}`); panics on another body.
/// A keyring every test server of one run can share (`PCI_VAULT_KEYS`), so processes on one
/// store open each other's sessions.
pub fn shared_keys() -> String {
    use base64::Engine as _;
    format!(
        "k1:{}",
        base64::engine::general_purpose::STANDARD.encode([42u8; 32])
    )
}

pub fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

pub fn card_fields() -> Value {
    json!({"card_number": PAN_SPACED, "expiry": EXPIRY, "cvc": CVC, "cardholder_name": NAME})
}

/// Where test logs go: `$PCI_VAULT_TEST_LOGS/server-tests`, or `.test-run/logs/server-tests`
/// at the workspace root.
pub fn log_dir() -> PathBuf {
    let base = std::env::var_os("PCI_VAULT_TEST_LOGS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.test-run/logs"));
    let dir = base.join("server-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct TestServer {
    child: Option<Child>,
    pub base: String,
    pub log_path: PathBuf,
    pub client: reqwest::Client,
    secrets: Mutex<Vec<String>>,
}

pub struct Options<'a> {
    pub args: Vec<&'a str>,
    pub env: Vec<(&'a str, &'a str)>,
    /// Pass `--api-keys` (default true).
    pub api_keys: bool,
    /// Extra root certificate for TLS.
    pub root_cert: Option<&'a str>,
    /// A limit of open file descriptors for the server process (`ulimit -n`).
    pub fd_limit: Option<u32>,
    /// `--listen` (default `127.0.0.1:0`).
    pub listen: &'a str,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            args: Vec::new(),
            env: Vec::new(),
            api_keys: true,
            root_cert: None,
            fd_limit: None,
            listen: "127.0.0.1:0",
        }
    }
}

pub fn client(root_cert: Option<&str>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30));
    if let Some(pem) = root_cert {
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject as _;
        let cert = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        roots.add(cert).unwrap();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        builder = builder.tls_backend_preconfigured(config);
    }
    builder.build().unwrap()
}

impl TestServer {
    /// A server with the test API keys, JSON logs and generous rate limits (on form
    /// posts, reveals and failed authentications).
    pub fn start(name: &str) -> Self {
        Self::start_with(name, Options::default())
    }

    pub fn start_with(name: &str, options: Options<'_>) -> Self {
        let log_path = log_dir().join(format!("{name}.log"));
        let log = File::create(&log_path).unwrap();
        let bin = env!("CARGO_BIN_EXE_pci-vault-server");
        let mut command = match options.fd_limit {
            // The shell sets the limit and becomes the server (same process id).
            Some(limit) => {
                let mut c = Command::new("sh");
                c.args([
                    "-c",
                    &format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
                    bin,
                ]);
                c
            }
            None => Command::new(bin),
        };
        command
            .args(["--listen", options.listen, "--log-format", "json"])
            .env("PCI_VAULT_FORM_RATE_LIMIT", "10000")
            .env("PCI_VAULT_REVEAL_RATE_LIMIT", "10000")
            .env("PCI_VAULT_AUTH_FAILURE_LIMIT", "10000")
            .env_remove("PCI_VAULT_KEYS")
            .env_remove("PCI_VAULT_API_KEYS")
            .env_remove("PCI_VAULT_STORE")
            .env_remove("PCI_VAULT_PUBLIC_URL")
            .env("RUST_LOG", "debug,hyper=info,h2=info,rustls=info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        if options.api_keys {
            command.args(["--api-keys", &format!("{KEY},acme={ACME_KEY}")]);
        }
        command.args(&options.args);
        for (k, v) in &options.env {
            command.env(k, v);
        }
        let child = command.spawn().unwrap();
        let mut server = TestServer {
            child: Some(child),
            base: String::new(),
            log_path,
            client: client(options.root_cert),
            secrets: Mutex::new(Vec::new()),
        };
        server.base = server.wait_for_listening();
        server
    }

    fn wait_for_listening(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            if let Some(line) = log
                .lines()
                .find(|l| l.starts_with("pci-vault-server listening on "))
            {
                return line["pci-vault-server listening on ".len()..]
                    .trim()
                    .to_owned();
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the server exited with {status} before listening:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "the server did not start:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap()
    }

    /// A PIN (or other number) the log must never contain. It is also written to
    /// `.test-run/seen-pins/`, so the test command's log check looks for it in every log
    /// of the run.
    pub fn remember_secret(&self, secret: &str) {
        self.secrets.lock().unwrap().push(secret.to_owned());
        let dir = log_dir().join("../../seen-pins");
        std::fs::create_dir_all(&dir).unwrap();
        let name = self
            .log_path
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{name}.txt")))
            .unwrap();
        std::io::Write::write_all(&mut file, format!("{secret}\n").as_bytes()).unwrap();
    }

    /// `GET path`, no credentials.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Posts the page's own form (urlencoded) with the given `Origin` and
    /// `Sec-Fetch-Site` headers.
    pub async fn post_form(
        &self,
        id: &str,
        origin: Option<&str>,
        sec_fetch_site: Option<&str>,
        body: String,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(&format!("/forms/{id}")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(site) = sec_fetch_site {
            request = request.header("sec-fetch-site", site);
        }
        request.send().await.unwrap()
    }

    pub async fn create(&self, body: Value) -> Value {
        self.create_as(KEY, body).await
    }

    pub async fn create_as(&self, key: &str, body: Value) -> Value {
        let response = self
            .client
            .post(self.url("/v1/sessions"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    pub async fn create_id(&self) -> String {
        self.create(json!({})).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Submits JSON fields; returns status and body.
    pub async fn submit_json(&self, id: &str, fields: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(&format!("/forms/{id}")))
            .json(&json!({ "fields": fields }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        if let Some(pin) = body["pin"].as_str() {
            self.remember_secret(pin);
        }
        (status, body)
    }

    /// Submits the standard card and returns the PIN.
    pub async fn submit_card(&self, id: &str) -> String {
        let (status, body) = self.submit_json(id, card_fields()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["pin"].as_str().unwrap().to_owned()
    }

    pub async fn status(&self, id: &str) -> (StatusCode, Value) {
        self.agent_call(reqwest::Method::GET, &format!("/v1/sessions/{id}"), None)
            .await
    }

    pub async fn reveal(&self, id: &str, pin: &str) -> (StatusCode, Value) {
        self.agent_call(
            reqwest::Method::POST,
            &format!("/v1/sessions/{id}/reveal"),
            Some(json!({ "pin": pin })),
        )
        .await
    }

    pub async fn agent_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path)).bearer_auth(KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, body)
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the server process.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().unwrap();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Whether the server process has exited (it is then reaped by [`Self::wait_stopped`]).
    pub fn has_exited(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_some()
    }

    /// Sends SIGTERM, waits for a clean exit, and checks the log: it holds no remembered
    /// secret, no test card number, and no full session id of `ids`.
    pub fn stop(self, ids: &[&str]) -> String {
        self.signal("TERM");
        self.wait_stopped(ids)
    }

    /// [`Self::stop`] after SIGTERM was sent already ([`Self::signal`]).
    pub fn wait_stopped(mut self, ids: &[&str]) -> String {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = self.log();
        assert!(status.success(), "the server exited with {status}:\n{log}");
        assert!(
            log.contains("\"shutting down\"") && log.contains("\"stopped\""),
            "{log}"
        );
        assert_no_secrets(&log, &self.secrets.lock().unwrap());
        for id in ids {
            assert!(!log.contains(id), "a full session id reached the log");
        }
        log
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn assert_no_secrets(log: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !contains_number(log, secret),
            "a secret the test handled reached the log"
        );
    }
    for pan in [PAN, PAN_SPACED, "378282246310005", "5555555555554444"] {
        assert!(!log.contains(pan), "a card number reached the log");
    }
    assert!(!log.contains(NAME), "a cardholder name reached the log");
}

/// An urlencoded body of `fields`.
pub fn encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let v: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The standard card as the page's form sends it.
pub fn good_form() -> String {
    encode(&[
        ("card_number", PAN_SPACED),
        ("expiry", EXPIRY),
        ("cvc", CVC),
        ("cardholder_name", NAME),
    ])
}

/// The text of the element with `id="pin"` on a PIN page.
pub fn pin_of(page: &str) -> String {
    let start = page.find("id=\"pin\">").expect("no #pin") + "id=\"pin\">".len();
    let end = start + page[start..].find('<').unwrap();
    page[start..end].to_owned()
}

pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}
