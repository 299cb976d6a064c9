//! The webhooks file: per tenant, the receiver's URL and the secret that signs its
//! deliveries; and the delivery settings shared by every tenant.
//!
//! ```json
//! {
//!   "tenants": {
//!     "default": {"url": "https://hooks.example.com/pci-vault", "secret": "<32-256 characters>"},
//!     "acme":    {"url": "https://acme.example/pay-events",     "secret": "<32-256 characters>"}
//!   },
//!   "max_attempts": 5
//! }
//! ```
//!
//! Errors name the tenant and what is wrong, never a secret and never the URL (a receiver's
//! path often carries a token of its own).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pci_vault::Tenant;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use url::{Host, Url};
use zeroize::{Zeroize, Zeroizing};

use super::guard::{TargetRule, check_ip};

/// Shortest accepted signing secret, in characters (e.g. `openssl rand -hex 32` gives 64).
pub const MIN_SECRET_LEN: usize = 32;
/// Longest accepted signing secret, in characters.
pub const MAX_SECRET_LEN: usize = 256;

/// A tenant's signing secret: the HMAC-SHA256 key is its bytes exactly as written in the
/// file. Wiped when dropped; `Debug` never shows it.
pub struct WebhookSecret(Zeroizing<Vec<u8>>);

impl WebhookSecret {
    /// Takes a secret of 32–256 visible ASCII characters.
    ///
    /// # Errors
    /// What is wrong with it, without the secret.
    pub fn new(text: &str) -> Result<Self, &'static str> {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&text.len()) {
            return Err("a secret is 32-256 characters");
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a secret is visible ASCII characters");
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(text.len()));
        bytes.extend_from_slice(text.as_bytes());
        Ok(WebhookSecret(bytes))
    }

    /// The key bytes, for signing and verifying.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([REDACTED])")
    }
}

/// Reads the secret straight from the file's (wiped) text into a wiped buffer; a secret
/// with JSON escapes goes through a `String` that is wiped too.
impl<'de> Deserialize<'de> for WebhookSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;
        impl Visitor<'_> for SecretVisitor {
            type Value = WebhookSecret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret string")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<WebhookSecret, E> {
                WebhookSecret::new(text).map_err(E::custom)
            }
            fn visit_string<E: de::Error>(self, mut text: String) -> Result<WebhookSecret, E> {
                let secret = WebhookSecret::new(&text).map_err(E::custom);
                text.zeroize();
                secret
            }
        }
        deserializer.deserialize_str(SecretVisitor)
    }
}

/// Where one tenant's events go.
pub struct TenantEndpoint {
    /// The tenant.
    pub tenant: Tenant,
    /// The receiver: https, or (development setting) http to a loopback address.
    pub url: Url,
    /// The key that signs every delivery.
    pub secret: WebhookSecret,
}

impl TenantEndpoint {
    /// The receiver's host, for log lines: never the path or query, which may hold a token.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// The address rule every connection to this receiver obeys.
    pub fn rule(&self, development: bool) -> TargetRule {
        TargetRule {
            development,
            loopback_only: self.url.scheme() == "http",
        }
    }
}

impl fmt::Debug for TenantEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantEndpoint")
            .field("tenant", &self.tenant)
            .field("scheme", &self.url.scheme())
            .field("host", &self.host())
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

/// How deliveries are made; the same for every tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Events waiting per tenant; beyond it, new events are dropped and counted.
    pub queue_capacity: usize,
    /// Deliveries per tenant in progress at once (including their waits between attempts).
    pub max_in_flight: usize,
    /// Attempts per event, the first included; then the event is dropped and counted.
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubled after each further one.
    pub initial_backoff: Duration,
    /// Longest wait between two attempts (also caps a receiver's `Retry-After`).
    pub max_backoff: Duration,
    /// Longest time to set up a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Longest time for a whole attempt: connecting, sending, and the response.
    pub timeout: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            queue_capacity: 1024,
            max_in_flight: 4,
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The webhooks of a host: the endpoints by tenant and how to deliver.
#[derive(Debug)]
pub struct WebhookConfig {
    /// One receiver per tenant.
    pub endpoints: Vec<TenantEndpoint>,
    /// Delivery settings.
    pub settings: DeliverySettings,
    /// Whether loopback and private-network receivers, and http to loopback, are allowed.
    pub development: bool,
    /// PEM file of CA certificates trusted besides the system's, for receivers with a
    /// private CA.
    pub ca_file: Option<PathBuf>,
}

/// Why the webhooks file was refused. Never contains a secret or a receiver's URL.
#[derive(Debug, thiserror::Error)]
pub enum WebhookConfigError {
    /// The file cannot be read.
    #[error("cannot read the webhooks file: {0}")]
    Read(std::io::ErrorKind),
    /// The file is not valid JSON of the documented shape.
    #[error("the webhooks file is malformed at line {line}, column {column}: {reason}")]
    Malformed {
        /// Where.
        line: usize,
        /// Where.
        column: usize,
        /// What (serde's category, never the text it read).
        reason: &'static str,
    },
    /// A setting is out of range.
    #[error("the webhooks file: {0}")]
    Setting(&'static str),
    /// A tenant's entry is wrong.
    #[error("the webhooks file, tenant {tenant:?}: {reason}")]
    Tenant {
        /// The tenant name as written (tenant names are not secret).
        tenant: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The CA file cannot be used.
    #[error("the webhooks CA file: {0}")]
    CaFile(&'static str),
    /// The HTTP client could not be built.
    #[error("the webhooks HTTP client: {0}")]
    Client(&'static str),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    tenants: BTreeMap<String, TenantShape>,
    queue_capacity: Option<usize>,
    max_in_flight: Option<usize>,
    max_attempts: Option<u32>,
    initial_backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    timeout_ms: Option<u64>,
    ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantShape {
    url: String,
    secret: WebhookSecret,
}

impl WebhookConfig {
    /// Reads and checks the webhooks file. Warns when others than its owner may read it.
    ///
    /// # Errors
    /// [`WebhookConfigError`] for a file that cannot be read or is wrong.
    pub fn from_file(path: &Path, development: bool) -> Result<Self, WebhookConfigError> {
        warn_if_readable_by_others(path);
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| WebhookConfigError::Read(e.kind()))?,
        );
        Self::parse(&text, development)
    }

    /// Parses and checks the text of a webhooks file.
    ///
    /// # Errors
    /// [`WebhookConfigError`] for malformed JSON, an unknown member, a setting out of
    /// range, a bad tenant name, URL or secret.
    pub fn parse(text: &str, development: bool) -> Result<Self, WebhookConfigError> {
        let file: FileShape =
            serde_json::from_str(text).map_err(|e| WebhookConfigError::Malformed {
                line: e.line(),
                column: e.column(),
                reason: match e.classify() {
                    serde_json::error::Category::Io => "unreadable",
                    serde_json::error::Category::Syntax => "not JSON",
                    serde_json::error::Category::Eof => "it ends too early",
                    serde_json::error::Category::Data => {
                        "an unknown or missing member, a value of the wrong type, or a secret \
                         that is not 32-256 visible ASCII characters"
                    }
                },
            })?;
        let defaults = DeliverySettings::default();
        let ms =
            |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_millis);
        let settings = DeliverySettings {
            queue_capacity: file.queue_capacity.unwrap_or(defaults.queue_capacity),
            max_in_flight: file.max_in_flight.unwrap_or(defaults.max_in_flight),
            max_attempts: file.max_attempts.unwrap_or(defaults.max_attempts),
            initial_backoff: ms(file.initial_backoff_ms, defaults.initial_backoff),
            max_backoff: ms(file.max_backoff_ms, defaults.max_backoff),
            connect_timeout: ms(file.connect_timeout_ms, defaults.connect_timeout),
            timeout: ms(file.timeout_ms, defaults.timeout),
        };
        settings.check()?;
        let mut endpoints = Vec::with_capacity(file.tenants.len());
        for (name, entry) in file.tenants {
            let error = |reason| WebhookConfigError::Tenant {
                tenant: name.clone(),
                reason,
            };
            let tenant = Tenant::new(name.as_str())
                .map_err(|_| error("a tenant is 1-64 characters from A-Z a-z 0-9 . _ -"))?;
            let url = parse_receiver_url(&entry.url, development).map_err(error)?;
            endpoints.push(TenantEndpoint {
                tenant,
                url,
                secret: entry.secret,
            });
        }
        if endpoints.is_empty() {
            return Err(WebhookConfigError::Setting("`tenants` names no tenant"));
        }
        Ok(WebhookConfig {
            endpoints,
            settings,
            development,
            ca_file: file.ca_file,
        })
    }
}

impl DeliverySettings {
    fn check(&self) -> Result<(), WebhookConfigError> {
        let fail = |reason| Err(WebhookConfigError::Setting(reason));
        if !(1..=100_000).contains(&self.queue_capacity) {
            return fail("queue_capacity is 1-100000");
        }
        if !(1..=64).contains(&self.max_in_flight) {
            return fail("max_in_flight is 1-64");
        }
        if !(1..=20).contains(&self.max_attempts) {
            return fail("max_attempts is 1-20");
        }
        let ms = |d: Duration| d.as_millis();
        if !(1..=3_600_000).contains(&ms(self.initial_backoff)) {
            return fail("initial_backoff_ms is 1-3600000");
        }
        if !(ms(self.initial_backoff)..=3_600_000).contains(&ms(self.max_backoff)) {
            return fail("max_backoff_ms is initial_backoff_ms-3600000");
        }
        if !(1..=60_000).contains(&ms(self.connect_timeout)) {
            return fail("connect_timeout_ms is 1-60000");
        }
        if !(1..=300_000).contains(&ms(self.timeout)) {
            return fail("timeout_ms is 1-300000");
        }
        Ok(())
    }
}

/// Checks a receiver's URL: https (or, in development, http to loopback), a host, no user
/// info, no fragment; an IP address as host must be one webhooks may reach.
///
/// # Errors
/// What is wrong, without echoing the URL.
pub fn parse_receiver_url(text: &str, development: bool) -> Result<Url, &'static str> {
    let url = Url::parse(text.trim()).map_err(|_| "url: not a valid absolute URL")?;
    match url.scheme() {
        "https" => {}
        "http" if development => {}
        "http" => {
            return Err("url: must be https (http only with the development setting, to loopback)");
        }
        _ => return Err("url: the scheme must be https"),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("url: must not contain user info");
    }
    if url.fragment().is_some() {
        return Err("url: must not have a fragment");
    }
    let rule = TargetRule {
        development,
        loopback_only: url.scheme() == "http",
    };
    match url.host() {
        None => Err("url: a host is required"),
        // An address as host is fixed: check it now (the connection goes to it unresolved).
        Some(Host::Ipv4(ip)) => check_ip(ip.into(), rule)
            .map(|()| url.clone())
            .map_err(|e| e.reason()),
        Some(Host::Ipv6(ip)) => check_ip(ip.into(), rule)
            .map(|()| url.clone())
            .map_err(|e| e.reason()),
        Some(Host::Domain(_)) => Ok(url.clone()),
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "the webhooks file holds signing secrets and is readable by others than its owner; \
             chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_0123456789abcdef0123456789abcdef";

    fn file(url: &str) -> String {
        format!(r#"{{"tenants": {{"acme": {{"url": "{url}", "secret": "{SECRET}"}}}}}}"#)
    }

    #[test]
    fn a_good_file() {
        let config = WebhookConfig::parse(
            &format!(
                r#"{{"tenants": {{"default": {{"url": "https://hooks.example.com/x?token=t", "secret": "{SECRET}"}}}},
                    "max_attempts": 3, "initial_backoff_ms": 10, "timeout_ms": 500}}"#
            ),
            false,
        )
        .unwrap();
        assert_eq!(config.endpoints.len(), 1);
        let endpoint = &config.endpoints[0];
        assert_eq!(endpoint.tenant.as_str(), "default");
        assert_eq!(endpoint.host(), "hooks.example.com");
        assert_eq!(endpoint.secret.expose_bytes(), SECRET.as_bytes());
        assert_eq!(config.settings.max_attempts, 3);
        assert_eq!(config.settings.initial_backoff, Duration::from_millis(10));
        assert_eq!(config.settings.timeout, Duration::from_millis(500));
        assert_eq!(config.settings.queue_capacity, 1024);
        let debug = format!("{config:?}");
        assert!(
            !debug.contains(SECRET) && !debug.contains("token"),
            "{debug}"
        );
        assert!(debug.contains("REDACTED"));
    }

    #[test]
    fn bad_files_name_the_problem_and_never_the_secret_or_url() {
        let cases = [
            (file("http://hooks.example.com/token-xyz"), false),
            (file("ftp://hooks.example.com/token-xyz"), true),
            (file("https://user:pw@hooks.example.com/token-xyz"), false),
            (file("https://hooks.example.com/token-xyz#f"), false),
            (file("https://127.0.0.1/token-xyz"), false),
            (file("https://10.1.2.3/token-xyz"), false),
            (file("https://169.254.169.254/token-xyz"), true),
            (file("https://[::ffff:127.0.0.1]/token-xyz"), false),
            (file("http://2130706433/token-xyz"), false),
            (file("http://10.0.0.1/token-xyz"), true),
            (file("not a url token-xyz"), false),
            (
                format!(
                    r#"{{"tenants": {{"a b": {{"url": "https://x.example", "secret": "{SECRET}"}}}}}}"#
                ),
                false,
            ),
            (
                r#"{"tenants": {"a": {"url": "https://x.example", "secret": "short-token-xyz"}}}"#
                    .to_owned(),
                false,
            ),
            (
                format!(
                    r#"{{"tenants": {{"a": {{"url": "https://x.example", "secret": "{SECRET} x"}}}}}}"#
                ),
                false,
            ),
            (
                format!(
                    r#"{{"tenants": {{"a": {{"url": "https://x.example", "secret": "{SECRET}", "extra": 1}}}}}}"#
                ),
                false,
            ),
            (r#"{"tenants": {}}"#.to_owned(), false),
            (
                format!(
                    r#"{{"tenants": {{"a": {{"url": "https://x.example", "secret": "{SECRET}"}}}}, "max_attempts": 0}}"#
                ),
                false,
            ),
            (
                format!(
                    r#"{{"tenants": {{"a": {{"url": "https://x.example", "secret": "{SECRET}"}}}}, "initial_backoff_ms": 10, "max_backoff_ms": 5}}"#
                ),
                false,
            ),
            (
                format!("{{\"tenants\": {{\"a\": {{\"url\": \"https://x\", \"secret\": \"{SECRET}"),
                false,
            ),
        ];
        for (text, development) in cases {
            let error = WebhookConfig::parse(&text, development)
                .expect_err(&text)
                .to_string();
            assert!(!error.contains("token-xyz"), "{error}");
            assert!(!error.contains("0123456789abcdef"), "{error}");
        }
    }

    #[test]
    fn development_allows_http_and_local_receivers() {
        for url in [
            "http://127.0.0.1:9/hook",
            "http://[::1]:9/hook",
            "http://localhost:9/hook",
            "https://10.0.0.1/hook",
            "https://[fd00::1]/hook",
            "https://localhost/hook",
        ] {
            assert!(parse_receiver_url(url, true).is_ok(), "{url}");
        }
        for url in [
            "http://localhost:9/hook",
            "http://127.0.0.1:9/hook",
            "https://127.0.0.1/hook",
        ] {
            assert!(parse_receiver_url(url, false).is_err(), "{url}");
        }
        // The name is checked when it is resolved, at every delivery.
        assert!(parse_receiver_url("https://localhost/hook", false).is_ok());
    }
}
