//! Configuration by flags and environment variables (DESIGN §6.5), and what is built from
//! it: the vault, the API keys and the public URL.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Uri;
use clap::{Parser, ValueEnum};
use pci_vault::{EphemeralStore, KeyProvider, Vault};
use pci_vault_keys::KeySource;
use pci_vault_memory::{MemoryLimits, MemoryStore};
use pci_vault_redis::{RedisOptions, RedisStore};

use crate::auth::ApiKeys;
use crate::metrics::Metrics;

/// pci-vault example server: the customer's secure card form and the agent API.
///
/// With no configuration it listens on 127.0.0.1:8080 with the memory store, an
/// ephemeral development key and one random development API key, printed at start.
#[derive(Parser)]
#[command(name = "pci-vault-server", version, about, long_about = None)]
pub struct Args {
    /// Address and port to listen on.
    #[arg(long, env = "PCI_VAULT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The URL customers reach this server at (scheme, host, port, optional path prefix);
    /// form links are {public_url}/forms/{id} and a form POST must come from its origin.
    /// Default: http(s)://{listen}.
    #[arg(long, env = "PCI_VAULT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Session store: `memory`, or `redis://…`, `rediss://…`, or a comma-separated list of
    /// cluster seed URLs.
    #[arg(long, env = "PCI_VAULT_STORE", default_value = "memory")]
    pub store: String,

    /// Most sessions the memory store holds (live ones and tombstones); beyond it, creating
    /// a session answers 503 CAPACITY_EXCEEDED.
    #[arg(long, env = "PCI_VAULT_MEMORY_MAX_ENTRIES", default_value_t = MemoryLimits::default().max_entries)]
    pub memory_max_entries: usize,

    /// Most bytes the memory store holds (sealed records, keys and bookkeeping).
    #[arg(long, env = "PCI_VAULT_MEMORY_MAX_BYTES", default_value_t = MemoryLimits::default().max_bytes)]
    pub memory_max_bytes: usize,

    /// Prefix of every Redis key the store writes.
    #[arg(long, env = "PCI_VAULT_REDIS_KEY_PREFIX", default_value = RedisOptions::DEFAULT_KEY_PREFIX)]
    pub redis_key_prefix: String,

    /// PEM file of the CA(s) that sign the Redis server's certificate (`rediss://`), instead
    /// of the system roots.
    #[arg(long, env = "PCI_VAULT_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,

    /// Keyring file, or a directory with one file per key (a Kubernetes secret mount);
    /// reloaded when it changes. Without it, the keyring is read from PCI_VAULT_KEYS; with
    /// neither, an ephemeral development key is used (with a warning).
    #[arg(long, env = "PCI_VAULT_KEYS_FILE")]
    pub keys_file: Option<PathBuf>,

    /// Agent API keys, comma-separated; `tenant=key` binds a key to a tenant, a bare key
    /// acts for the default tenant. Without it, one random development key is printed at
    /// start.
    #[arg(long, env = "PCI_VAULT_API_KEYS", hide_env_values = true)]
    pub api_keys: Option<String>,

    /// PEM certificate chain: serve HTTPS (with HSTS) instead of HTTP. Needs --tls-key.
    #[arg(long, env = "PCI_VAULT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "PCI_VAULT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Form submissions allowed per minute per client IP address.
    #[arg(long, env = "PCI_VAULT_FORM_RATE_LIMIT", default_value = "30")]
    pub form_rate_limit: NonZeroU32,

    /// Reveal attempts allowed per minute per client IP address.
    #[arg(long, env = "PCI_VAULT_REVEAL_RATE_LIMIT", default_value = "30")]
    pub reveal_rate_limit: NonZeroU32,

    /// Log format on standard error. The level comes from RUST_LOG (default `info`).
    #[arg(long, env = "PCI_VAULT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Seconds to let requests in flight finish after SIGTERM or Ctrl-C.
    #[arg(long, env = "PCI_VAULT_SHUTDOWN_GRACE", default_value = "10")]
    pub shutdown_grace: u64,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("store", &"[see --store]")
            .field("keys_file", &self.keys_file)
            .field("api_keys", &self.api_keys.as_ref().map(|_| "[REDACTED]"))
            .field("tls_cert", &self.tls_cert)
            .finish_non_exhaustive()
    }
}

/// A configuration problem found at start. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--public-url` is not an http(s) URL of the expected shape.
    #[error("--public-url: {0}")]
    PublicUrl(&'static str),
    /// `--api-keys` is malformed.
    #[error("--api-keys: {0}")]
    ApiKeys(#[from] crate::auth::ApiKeysError),
    /// The keyring could not be loaded.
    #[error("keys: {0}")]
    Keys(#[from] pci_vault_keys::LoadError),
    /// `--store` names no supported store.
    #[error("--store: {0}")]
    Store(String),
    /// The vault refused its configuration.
    #[error("vault: {0}")]
    Vault(#[from] pci_vault::Error),
}

/// The URL customers reach the server at, and the origin their form POST must come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    base: String,
    origin: String,
    https: bool,
}

impl PublicUrl {
    /// Parses `http(s)://host[:port][/prefix]`; a trailing `/` is dropped.
    ///
    /// # Errors
    /// [`ConfigError::PublicUrl`] for another scheme, a missing host, user info, a query
    /// or a fragment.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let text = text.trim().trim_end_matches('/');
        if text.contains(['?', '#']) {
            return Err(ConfigError::PublicUrl("must not have a query or fragment"));
        }
        let uri: Uri = text
            .parse()
            .map_err(|_| ConfigError::PublicUrl("not a valid URL"))?;
        let https = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            _ => return Err(ConfigError::PublicUrl("the scheme must be http or https")),
        };
        let authority = uri
            .authority()
            .ok_or(ConfigError::PublicUrl("a host is required"))?;
        if authority.as_str().contains('@') {
            return Err(ConfigError::PublicUrl("must not contain user info"));
        }
        let host = authority.host().to_ascii_lowercase();
        if host.is_empty() {
            return Err(ConfigError::PublicUrl("a host is required"));
        }
        let default_port = if https { 443 } else { 80 };
        let origin = match authority.port_u16() {
            Some(port) if port != default_port => {
                format!("{}://{host}:{port}", if https { "https" } else { "http" })
            }
            _ => format!("{}://{host}", if https { "https" } else { "http" }),
        };
        let path = uri.path().trim_end_matches('/');
        Ok(PublicUrl {
            base: format!("{origin}{path}"),
            origin,
            https,
        })
    }

    /// The URL of a server listening on `addr`.
    pub fn for_listener(addr: SocketAddr, https: bool) -> Self {
        let scheme = if https { "https" } else { "http" };
        let origin = format!("{scheme}://{addr}");
        PublicUrl {
            base: origin.clone(),
            origin,
            https,
        }
    }

    /// The base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The origin (`scheme://host[:port]`) browsers send in `Origin`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether customers reach the server over HTTPS.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The customer's link for a session id.
    pub fn form_link(&self, id: &pci_vault::SessionId) -> String {
        format!("{}/forms/{id}", self.base)
    }

    /// Whether a browser's form POST comes from a page of this origin.
    ///
    /// The form page is served with `Referrer-Policy: no-referrer`, under which browsers
    /// send `Origin: null` even on a same-origin POST (Fetch, "append a request Origin
    /// header"). `null` is therefore taken only together with `Sec-Fetch-Site:
    /// same-origin`, a header a page cannot set. A missing `Origin` is refused.
    pub fn accepts_form_post(&self, origin: Option<&str>, sec_fetch_site: Option<&str>) -> bool {
        match origin.map(str::trim) {
            Some("null") => sec_fetch_site.is_some_and(|s| s.trim() == "same-origin"),
            Some(origin) => origin.eq_ignore_ascii_case(&self.origin),
            None => false,
        }
    }
}

/// Where the store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// In this process.
    Memory,
    /// Redis: one URL for a single node, several for cluster seeds. `Debug` hides passwords.
    Redis(RedisOptions),
}

impl StoreChoice {
    /// Parses `--store`.
    ///
    /// # Errors
    /// [`ConfigError::Store`] for anything but `memory` or `redis://` / `rediss://` URLs.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("memory") {
            return Ok(StoreChoice::Memory);
        }
        let options = RedisOptions::from_list(text);
        let redis_urls = !options.urls.is_empty()
            && options
                .urls
                .iter()
                .all(|u| u.starts_with("redis://") || u.starts_with("rediss://"));
        if redis_urls {
            Ok(StoreChoice::Redis(options))
        } else {
            Err(ConfigError::Store(
                "expected `memory`, a redis:// or rediss:// URL, or a comma-separated list of them"
                    .to_owned(),
            ))
        }
    }

    /// A description for logs, without credentials.
    pub fn describe(&self) -> String {
        match self {
            StoreChoice::Memory => "memory".to_owned(),
            StoreChoice::Redis(options) => format!(
                "redis ({}{}, {} URL(s))",
                if options.cluster {
                    "cluster"
                } else {
                    "single node"
                },
                if options.is_tls() { ", TLS" } else { "" },
                options.urls.len()
            ),
        }
    }
}

impl Args {
    /// The API keys: `--api-keys`, or one development key (returned to be printed).
    ///
    /// # Errors
    /// [`ConfigError::ApiKeys`] for a malformed list.
    pub fn api_keys(&self) -> Result<(ApiKeys, Option<secrecy::SecretString>), ConfigError> {
        match &self.api_keys {
            Some(text) => Ok((ApiKeys::parse(text)?, None)),
            None => {
                let (keys, key) = ApiKeys::development();
                Ok((keys, Some(key)))
            }
        }
    }

    /// Where the keys come from: `--keys-file` (a file, or a directory of key files),
    /// else `PCI_VAULT_KEYS`, else a development key.
    pub fn key_source(&self) -> KeySource {
        match &self.keys_file {
            Some(path) if path.is_dir() => KeySource::Directory(path.clone()),
            Some(path) => KeySource::File(path.clone()),
            None if std::env::var_os(pci_vault_keys::DEFAULT_ENV_VAR).is_some() => {
                KeySource::Env(pci_vault_keys::DEFAULT_ENV_VAR.to_owned())
            }
            None => KeySource::Development,
        }
    }

    /// The key provider of [`Args::key_source`].
    ///
    /// # Errors
    /// [`ConfigError::Keys`] when the source fails to load.
    pub fn key_provider(&self) -> Result<Arc<dyn KeyProvider>, ConfigError> {
        Ok(self.key_source().open()?)
    }

    /// The store named by `--store`, connected.
    ///
    /// # Errors
    /// [`ConfigError::Store`] when it is malformed or cannot be reached (the message
    /// never contains a password).
    pub async fn store(&self) -> Result<(Arc<dyn EphemeralStore>, StoreChoice), ConfigError> {
        let mut choice = StoreChoice::parse(&self.store)?;
        let store: Arc<dyn EphemeralStore> = match &mut choice {
            StoreChoice::Memory => {
                let limits = MemoryLimits {
                    max_entries: self.memory_max_entries,
                    max_bytes: self.memory_max_bytes,
                };
                Arc::new(MemoryStore::with_clock(
                    limits,
                    Arc::new(pci_vault::SystemClock),
                ))
            }
            StoreChoice::Redis(options) => {
                options.key_prefix.clone_from(&self.redis_key_prefix);
                options.ca_file.clone_from(&self.redis_ca_file);
                let store = RedisStore::connect(options.clone())
                    .await
                    .map_err(|e| ConfigError::Store(e.to_string()))?;
                Arc::new(store)
            }
        };
        Ok((store, choice))
    }

    /// The vault over the configured store and keys, counting outcomes in `metrics`.
    ///
    /// # Errors
    /// As [`Args::store`] and [`Args::key_provider`].
    pub async fn vault(&self, metrics: &Metrics) -> Result<(Vault, StoreChoice), ConfigError> {
        let keys = self.key_provider()?;
        let (store, choice) = self.store().await?;
        let vault = Vault::builder(store, keys)
            .audit_sink(metrics.audit_sink())
            .build()?;
        Ok((vault, choice))
    }

    /// The grace period for requests in flight at shutdown.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls() {
        let u = PublicUrl::parse("https://Pay.Example.com/").unwrap();
        assert_eq!(u.origin(), "https://pay.example.com");
        assert_eq!(u.base(), "https://pay.example.com");
        assert!(u.is_https());
        let u = PublicUrl::parse("https://pay.example.com:443/card/").unwrap();
        assert_eq!(u.origin(), "https://pay.example.com");
        assert_eq!(u.base(), "https://pay.example.com/card");
        let u = PublicUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(u.origin(), "http://127.0.0.1:8080");
        let u = PublicUrl::parse("http://[::1]:8080").unwrap();
        assert_eq!(u.origin(), "http://[::1]:8080");
        for bad in [
            "",
            "pay.example.com",
            "ftp://x",
            "https://",
            "https://u:p@x",
            "https://x/?a",
            "https://x/#a",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn form_post_origins() {
        let u = PublicUrl::parse("https://pay.example.com").unwrap();
        assert!(u.accepts_form_post(Some("https://pay.example.com"), None));
        assert!(u.accepts_form_post(Some("https://PAY.example.com"), Some("cross-site")));
        assert!(u.accepts_form_post(Some("null"), Some("same-origin")));
        assert!(!u.accepts_form_post(Some("null"), Some("cross-site")));
        assert!(!u.accepts_form_post(Some("null"), Some("same-site")));
        assert!(!u.accepts_form_post(Some("null"), None));
        assert!(!u.accepts_form_post(None, Some("same-origin")));
        assert!(!u.accepts_form_post(Some("https://evil.example"), Some("same-origin")));
        assert!(!u.accepts_form_post(Some("http://pay.example.com"), None));
        assert!(!u.accepts_form_post(Some("https://pay.example.com:8443"), None));
    }

    #[test]
    fn stores() {
        assert_eq!(StoreChoice::parse("memory").unwrap(), StoreChoice::Memory);
        assert_eq!(
            StoreChoice::parse("redis://a:1").unwrap(),
            StoreChoice::Redis(RedisOptions::new("redis://a:1"))
        );
        assert_eq!(
            StoreChoice::parse("rediss://a:1, rediss://b:2").unwrap(),
            StoreChoice::Redis(RedisOptions::cluster(["rediss://a:1", "rediss://b:2"]))
        );
        for bad in ["", "mem", "http://x", "redis://a,memory", ","] {
            assert!(StoreChoice::parse(bad).is_err(), "{bad}");
        }
        let choice = StoreChoice::parse("rediss://user:secret@a:1").unwrap();
        assert_eq!(choice.describe(), "redis (single node, TLS, 1 URL(s))");
        assert!(!format!("{choice:?}").contains("secret"));
    }
}
