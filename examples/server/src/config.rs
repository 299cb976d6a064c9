//! Configuration by flags and environment variables, and what is built from it: the
//! vault (through `pci_vault_config`, the one composition root), the API keys and the
//! public URL.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::Uri;
use clap::{Parser, ValueEnum};
use pci_vault::{ErrorCode, SessionOverrides};
use pci_vault_config::{KeySource, OpenedVault, RedisOptions, StoreConfig, VaultConfig};

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

    /// Session store: `memory` (bounds as `memory?max_entries=N&max_bytes=N`, or the two
    /// flags below), or `redis://…`, `rediss://…`, or a comma-separated list of cluster seed
    /// URLs.
    #[arg(long, env = "PCI_VAULT_STORE", default_value = "memory")]
    pub store: String,

    /// Most sessions the memory store holds (live ones and tombstones); beyond it, creating
    /// a session answers 503 CAPACITY_EXCEEDED.
    /// Default: the store string's `max_entries`, else 100000.
    #[arg(long, env = "PCI_VAULT_MEMORY_MAX_ENTRIES")]
    pub memory_max_entries: Option<usize>,

    /// Most bytes the memory store holds (sealed records, keys and bookkeeping).
    /// Default: the store string's `max_bytes`, else 256 MiB.
    #[arg(long, env = "PCI_VAULT_MEMORY_MAX_BYTES")]
    pub memory_max_bytes: Option<usize>,

    /// Prefix of every Redis key the store writes.
    #[arg(long, env = "PCI_VAULT_REDIS_KEY_PREFIX", default_value = RedisOptions::DEFAULT_KEY_PREFIX)]
    pub redis_key_prefix: String,

    /// PEM file of the CA(s) that sign the Redis server's certificate (`rediss://`), instead
    /// of the system roots.
    #[arg(long, env = "PCI_VAULT_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,

    /// Default lifetime of a session's link and data, in seconds (1–86400).
    #[arg(long, env = "PCI_VAULT_SESSION_TTL_SECONDS")]
    pub session_ttl_seconds: Option<u64>,

    /// Default number of PIN digits (4–12).
    #[arg(long, env = "PCI_VAULT_SESSION_PIN_LENGTH")]
    pub session_pin_length: Option<u64>,

    /// Default number of wrong PINs before a session locks (1–10).
    #[arg(long, env = "PCI_VAULT_SESSION_MAX_ATTEMPTS")]
    pub session_max_attempts: Option<u64>,

    /// Default fields of a session's form, comma-separated (default `card_number`,
    /// `expiry`, `cvc`, `cardholder_name`); other names are text fields.
    #[arg(long, env = "PCI_VAULT_SESSION_FIELDS", value_delimiter = ',')]
    pub session_fields: Option<Vec<String>>,

    /// Keyring file, or a directory with one file per key (a Kubernetes secret mount);
    /// reloaded when it changes. Without it, the keyring is read from PCI_VAULT_KEYS; with
    /// neither, an ephemeral development key is used (with a warning).
    #[arg(long, env = "PCI_VAULT_KEYS_FILE", conflicts_with = "key_source")]
    pub keys_file: Option<PathBuf>,

    /// Where the keys are, as one key-source string: `development`, `env:VAR`,
    /// `file:PATH`, `dir:PATH`, `pkcs11:module=…;token=…;key=…;pin-file=…` (an HSM) or
    /// `aws-kms:key=…;region=…` (AWS KMS); see docs/KEYS.md. Instead of --keys-file.
    #[arg(long, env = "PCI_VAULT_KEY_SOURCE")]
    pub key_source: Option<String>,

    /// Data keys a key-encryption key may wrap in this process before the server warns
    /// that it is due for rotation (a log line and the pci_vault_key_rotation_due metric).
    #[arg(long, env = "PCI_VAULT_KEY_WRAP_WARNING_LIMIT")]
    pub key_wrap_warning_limit: Option<u64>,

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
            .field(
                "key_source",
                &self
                    .key_source
                    .as_deref()
                    .map(|s| KeySource::parse(s).map(|k| k.describe())),
            )
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
    /// `--store` names no supported store, or the store cannot be reached.
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

    /// Where the keys come from: `--key-source`, else `--keys-file` (a file, or a
    /// directory of key files), else `PCI_VAULT_KEYS`, else a development key.
    ///
    /// # Errors
    /// [`ConfigError::Vault`] (`INVALID_ARGUMENT`) for a malformed `--key-source`.
    pub fn key_source(&self) -> Result<KeySource, ConfigError> {
        if let Some(text) = &self.key_source {
            return Ok(KeySource::parse(text)?);
        }
        Ok(match &self.keys_file {
            Some(path) if path.is_dir() => KeySource::Directory(path.clone()),
            Some(path) => KeySource::File(path.clone()),
            None if std::env::var_os(pci_vault_keys::DEFAULT_ENV_VAR).is_some() => {
                KeySource::Env(pci_vault_keys::DEFAULT_ENV_VAR.to_owned())
            }
            None => KeySource::Development,
        })
    }

    /// The vault's configuration: these flags read into the one [`VaultConfig`].
    ///
    /// # Errors
    /// [`ConfigError::Store`] when `--store` is malformed; [`ConfigError::Vault`] when
    /// `--key-source` is.
    pub fn vault_config(&self) -> Result<VaultConfig, ConfigError> {
        let mut store =
            StoreConfig::parse(&self.store).map_err(|e| ConfigError::Store(e.to_string()))?;
        match &mut store {
            StoreConfig::Memory(limits) => {
                limits.max_entries = self.memory_max_entries.unwrap_or(limits.max_entries);
                limits.max_bytes = self.memory_max_bytes.unwrap_or(limits.max_bytes);
            }
            StoreConfig::Redis(options) => {
                options.key_prefix.clone_from(&self.redis_key_prefix);
                options.ca_file.clone_from(&self.redis_ca_file);
            }
            _ => {}
        }
        let mut config = VaultConfig::new(store, self.key_source()?);
        if let Some(limit) = self.key_wrap_warning_limit {
            config.wrap_warning_limit = limit;
        }
        let mut defaults = SessionOverrides::new();
        defaults.ttl_seconds = self.session_ttl_seconds;
        defaults.pin_length = self.session_pin_length;
        defaults.max_attempts = self.session_max_attempts;
        defaults.fields.clone_from(&self.session_fields);
        config.session_defaults = defaults;
        Ok(config)
    }

    /// Opens the vault over the configured store and keys, counting outcomes in `metrics`.
    ///
    /// # Errors
    /// [`ConfigError::Store`] when the store is malformed or cannot be reached (the
    /// message never contains a password); [`ConfigError::Vault`] for keys that cannot be
    /// loaded and options out of range.
    pub async fn open_vault(
        &self,
        metrics: &Metrics,
    ) -> Result<(OpenedVault, String), ConfigError> {
        let mut config = self.vault_config()?;
        let store = config.store.describe();
        config.audit_sink = Some(metrics.audit_sink());
        let opened = config.open().await.map_err(|e| match e.code() {
            ErrorCode::StoreUnavailable => ConfigError::Store(e.to_string()),
            _ => ConfigError::Vault(e),
        })?;
        metrics.watch_key_usage(opened.key_usage.clone());
        Ok((opened, store))
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
}
