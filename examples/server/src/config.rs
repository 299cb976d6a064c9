//! Configuration by flags and environment variables, and what is built from it: the
//! vault (through `pci_vault_config`, the one composition root), the API keys, the trusted
//! proxies, the time limits and the public URL.

use std::io::Read as _;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::{Parser, Subcommand, ValueEnum};
use pci_vault::{ErrorCode, SessionOverrides};
use pci_vault_config::{KeySource, OpenedVault, StoreConfig, StoreSettings, VaultConfig};
use zeroize::Zeroizing;

use crate::auth::{ApiKeySet, ApiKeys};
use crate::client::{ForwardedHeader, TrustedProxies};
use crate::metrics::Metrics;
use crate::timeouts::Timeouts;

pub use crate::public_url::PublicUrl;

/// pci-vault example server: the customer's secure card form and the agent API.
///
/// With no configuration it listens on 127.0.0.1:8080 with the memory store, an
/// ephemeral development key and one random development API key, printed at start. On an
/// address other than loopback it refuses these development fallbacks unless
/// --development is given.
#[derive(Parser)]
#[command(name = "pci-vault-server", version, about, long_about = None)]
pub struct Args {
    /// A tool instead of the server.
    #[command(subcommand)]
    pub command: Option<Tool>,

    /// Address and port to listen on.
    #[arg(long, env = "PCI_VAULT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The URL customers reach this server at (scheme, host, port, optional path prefix);
    /// form links are {public_url}/forms/{id} and a form POST must come from its origin.
    /// Default: http(s)://{listen}.
    #[arg(long, env = "PCI_VAULT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Session store: `memory` (bounds as `memory?max_entries=N&max_bytes=N`, or the two
    /// flags below), or `redis://…`, `rediss://…`, a comma-separated list of cluster seed
    /// URLs, or `redis+sentinel://host:port[,host:port]/master`. A Redis store may end in
    /// `?min_replicas=N[&min_replicas_timeout_ms=N]`: replicas that must acknowledge every
    /// write (default wait 500 ms).
    #[arg(
        long,
        env = "PCI_VAULT_STORE",
        default_value = "memory",
        hide_env_values = true
    )]
    pub store: String,

    /// Most sessions the memory store holds (live ones and tombstones); beyond it, creating
    /// a session answers 503 CAPACITY_EXCEEDED.
    /// Default: the store string's `max_entries`, else 100000.
    #[arg(long, env = "PCI_VAULT_MEMORY_MAX_ENTRIES")]
    pub memory_max_entries: Option<u64>,

    /// Most bytes the memory store holds (sealed records, keys and bookkeeping).
    /// Default: the store string's `max_bytes`, else 256 MiB.
    #[arg(long, env = "PCI_VAULT_MEMORY_MAX_BYTES")]
    pub memory_max_bytes: Option<u64>,

    /// Prefix of every Redis key the store writes. Default: `pci-vault:`.
    #[arg(long, env = "PCI_VAULT_REDIS_KEY_PREFIX")]
    pub redis_key_prefix: Option<String>,

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
    #[arg(long, env = "PCI_VAULT_KEY_SOURCE", global = true)]
    pub key_source: Option<String>,

    /// Data keys a key-encryption key may wrap in this process before the server warns
    /// that it is due for rotation (a log line and the pci_vault_key_rotation_due metric).
    #[arg(long, env = "PCI_VAULT_KEY_WRAP_WARNING_LIMIT")]
    pub key_wrap_warning_limit: Option<u64>,

    /// Agent API keys, comma-separated; `tenant=key` binds a key to a tenant, a bare key
    /// acts for the default tenant; labelled key-1, key-2, ... in order. Without it or
    /// --api-keys-file, one random development key is printed at start.
    #[arg(long, env = "PCI_VAULT_API_KEYS", hide_env_values = true)]
    pub api_keys: Option<String>,

    /// File of agent API keys, one a line: `LABEL:KEY` or `LABEL:TENANT=KEY` (`#` comments
    /// and blank lines ignored); reloaded when its content changes. The label names the key
    /// in logs and audit events.
    #[arg(long, env = "PCI_VAULT_API_KEYS_FILE", conflicts_with = "api_keys")]
    pub api_keys_file: Option<PathBuf>,

    /// File holding the deployment's audit key: 32 bytes in standard base64 (`openssl rand
    /// -base64 32`). Every process of a deployment needs the same one, so their audit
    /// events name a session by the same reference. Without it, a random key per process.
    #[arg(long, env = "PCI_VAULT_AUDIT_KEY_FILE", global = true)]
    pub audit_key_file: Option<PathBuf>,

    /// Proxies whose forwarding header names the client, comma-separated IP addresses and
    /// CIDR networks. The client address (rate limits, logs) is read from that header only
    /// when the TCP peer is in this list.
    #[arg(long, env = "PCI_VAULT_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,

    /// The forwarding header the trusted proxies write.
    #[arg(long, env = "PCI_VAULT_FORWARDED_HEADER", value_enum, default_value_t = ForwardedHeader::XForwardedFor)]
    pub forwarded_header: ForwardedHeader,

    /// Address and port of the admin listener (plain HTTP) for /metrics, /healthz and
    /// /readyz; with it, /metrics leaves the main listener.
    #[arg(long, env = "PCI_VAULT_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// Seconds a request's body may take to arrive, from the end of its headers.
    #[arg(long, env = "PCI_VAULT_BODY_TIMEOUT_SECONDS", default_value = "10", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout_seconds: u64,

    /// Seconds a request may take to be answered, from the end of its headers.
    #[arg(long, env = "PCI_VAULT_REQUEST_TIMEOUT_SECONDS", default_value = "30", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_seconds: u64,

    /// Most connections open at once on the main listener; past it, new connections wait
    /// in the kernel's queue.
    #[arg(long, env = "PCI_VAULT_MAX_CONNECTIONS", default_value = "1024")]
    pub max_connections: NonZeroU32,

    /// Most agent event streams open at once (each holds a connection for as long as it
    /// follows its session); past it, a new stream answers 503 CAPACITY_EXCEEDED. Default:
    /// half of --max-connections, so streams never take the connections customers' forms
    /// need.
    #[arg(long, env = "PCI_VAULT_MAX_EVENT_STREAMS")]
    pub max_event_streams: Option<NonZeroU32>,

    /// Failed agent authentications (missing or wrong API key) allowed per minute per
    /// client; past it, every agent route answers 429.
    #[arg(long, env = "PCI_VAULT_AUTH_FAILURE_LIMIT", default_value = "10")]
    pub auth_failure_limit: NonZeroU32,

    /// PEM certificate chain: serve HTTPS (with HSTS) instead of HTTP. Needs --tls-key.
    #[arg(long, env = "PCI_VAULT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "PCI_VAULT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Form page loads and submissions allowed per minute per client IP address.
    #[arg(long, env = "PCI_VAULT_FORM_RATE_LIMIT", default_value = "30")]
    pub form_rate_limit: NonZeroU32,

    /// Reveal attempts allowed per minute per client IP address.
    #[arg(long, env = "PCI_VAULT_REVEAL_RATE_LIMIT", default_value = "30")]
    pub reveal_rate_limit: NonZeroU32,

    /// Log format on standard error. The level comes from RUST_LOG (default `info`).
    #[arg(long, env = "PCI_VAULT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Seconds to let requests in flight, the vault operations they started and queued
    /// webhooks finish after SIGTERM or Ctrl-C. Default: --request-timeout-seconds, so a
    /// request in flight gets its whole time limit.
    #[arg(long, env = "PCI_VAULT_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<u64>,

    /// Webhooks file (JSON): per tenant, the receiver's https URL and signing secret.
    #[arg(long, env = "PCI_VAULT_WEBHOOKS_FILE")]
    pub webhooks_file: Option<PathBuf>,

    /// Development only: webhooks may reach loopback and private-network receivers, and
    /// plain http on loopback.
    #[arg(long, env = "PCI_VAULT_WEBHOOKS_DEVELOPMENT")]
    pub webhooks_development: bool,

    /// Development only: start on a --listen address other than loopback with the
    /// development API key (printed to standard output) or the ephemeral development key.
    /// Without it the server refuses to.
    #[arg(long, env = "PCI_VAULT_DEVELOPMENT")]
    pub development: bool,
}

/// Tools that run instead of the server.
#[derive(Debug, Subcommand)]
pub enum Tool {
    /// Prints the audit reference of sessions: the `session_ref` their audit events carry
    /// under the key of --audit-key-file. Ids come from the arguments, or one a line from
    /// standard input (which keeps them out of the process list).
    AuditRef {
        /// Session ids (43 characters of base64url); none: read them from standard input.
        session_ids: Vec<String>,
    },
    /// Creates in the HSM the primary key of --key-source (a `pkcs11:` source, its `key=`):
    /// AES-256, sensitive, never extractable, encrypt and decrypt only. For a development
    /// token, or where the HSM vendor's tools are not at hand (docs/KEYS.md).
    HsmCreateKey,
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
            .field("api_keys_file", &self.api_keys_file)
            .field("audit_key_file", &self.audit_key_file)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("admin_listen", &self.admin_listen)
            .field("tls_cert", &self.tls_cert)
            .field("webhooks_file", &self.webhooks_file)
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
    /// `--api-keys-file` cannot be read or is malformed.
    #[error("--api-keys-file: {0}")]
    ApiKeysFile(#[from] crate::auth::ApiKeyFileError),
    /// `--audit-key-file` cannot be read or holds no 32-byte base64 key.
    #[error("--audit-key-file: {0}")]
    AuditKey(String),
    /// `--trusted-proxies` is malformed.
    #[error("--trusted-proxies: {0}")]
    TrustedProxies(#[from] crate::client::TrustedProxiesError),
    /// `--store` names no supported store, or the store cannot be reached.
    #[error("--store: {0}")]
    Store(String),
    /// The vault refused its configuration.
    #[error("vault: {0}")]
    Vault(#[from] pci_vault::Error),
    /// The webhooks file is wrong.
    #[error("--webhooks-file: {0}")]
    Webhooks(#[from] pci_vault_webhooks::WebhookConfigError),
    /// A development fallback on an address other hosts reach, without `--development`.
    #[error(
        "--listen {listen} is not a loopback address, and {missing}: configure them, or pass \
         --development (PCI_VAULT_DEVELOPMENT=true) to accept development credentials there"
    )]
    DevelopmentExposed {
        /// The `--listen` address.
        listen: SocketAddr,
        /// The options that would end the fallback, and what the fallback would be.
        missing: String,
    },
}

/// Largest audit key file accepted.
const MAX_AUDIT_KEY_FILE_LEN: u64 = 4096;

/// Reads an audit key file: 32 bytes in standard base64, surrounding whitespace ignored.
///
/// # Errors
/// [`ConfigError::AuditKey`] naming the file and what is wrong, never its content.
pub fn read_audit_key(path: &Path) -> Result<Zeroizing<Vec<u8>>, ConfigError> {
    let error = |what: String| ConfigError::AuditKey(format!("{}: {what}", path.display()));
    let file =
        std::fs::File::open(path).map_err(|e| error(format!("cannot be read: {}", e.kind())))?;
    let mut text = Zeroizing::new(Vec::new());
    file.take(MAX_AUDIT_KEY_FILE_LEN + 1)
        .read_to_end(&mut text)
        .map_err(|e| error(format!("cannot be read: {}", e.kind())))?;
    if text.len() as u64 > MAX_AUDIT_KEY_FILE_LEN {
        return Err(error("is larger than 4 KiB".to_owned()));
    }
    let key = Zeroizing::new(
        STANDARD
            .decode(text.trim_ascii())
            .map_err(|_| error("is not standard base64".to_owned()))?,
    );
    if key.len() != VaultConfig::AUDIT_KEY_LEN {
        return Err(error(
            "does not hold 32 bytes (make one with `openssl rand -base64 32`)".to_owned(),
        ));
    }
    Ok(key)
}

impl Args {
    /// The API keys: `--api-keys-file`, `--api-keys`, or one development key (returned to
    /// be printed).
    ///
    /// # Errors
    /// [`ConfigError::ApiKeys`] for a malformed list, [`ConfigError::ApiKeysFile`] for a
    /// file that cannot be read or is malformed.
    pub fn api_keys(&self) -> Result<(ApiKeySet, Option<secrecy::SecretString>), ConfigError> {
        if let Some(path) = &self.api_keys_file {
            return Ok((ApiKeySet::from_file(path)?, None));
        }
        match &self.api_keys {
            Some(text) => Ok((ApiKeySet::fixed(ApiKeys::parse(text)?), None)),
            None => {
                let (keys, key) = ApiKeys::development();
                Ok((ApiKeySet::fixed(keys), Some(key)))
            }
        }
    }

    /// The audit key of `--audit-key-file`, if given.
    ///
    /// # Errors
    /// [`ConfigError::AuditKey`] when the file cannot be read or holds no key.
    pub fn audit_key(&self) -> Result<Option<Zeroizing<Vec<u8>>>, ConfigError> {
        self.audit_key_file
            .as_deref()
            .map(read_audit_key)
            .transpose()
    }

    /// The trusted proxies of `--trusted-proxies`.
    ///
    /// # Errors
    /// [`ConfigError::TrustedProxies`] for a malformed list.
    pub fn trusted_proxies(&self) -> Result<TrustedProxies, ConfigError> {
        match &self.trusted_proxies {
            Some(text) => Ok(TrustedProxies::parse(text, self.forwarded_header)?),
            None => Ok(TrustedProxies::none()),
        }
    }

    /// The time limits of every request.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            body: Duration::from_secs(self.body_timeout_seconds),
            request: Duration::from_secs(self.request_timeout_seconds),
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
    /// [`ConfigError::Store`] when `--store` is malformed, [`ConfigError::AuditKey`] when
    /// the audit key file cannot be used, [`ConfigError::Vault`] when `--key-source` is
    /// malformed.
    pub fn vault_config(&self) -> Result<VaultConfig, ConfigError> {
        let mut settings = StoreSettings::new();
        settings.max_entries = self.memory_max_entries;
        settings.max_bytes = self.memory_max_bytes;
        settings.key_prefix.clone_from(&self.redis_key_prefix);
        settings.ca_file.clone_from(&self.redis_ca_file);
        let store = StoreConfig::parse(&self.store)
            .and_then(|store| settings.apply(store))
            .map_err(|e| ConfigError::Store(e.to_string()))?;
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
        config.audit_key = self.audit_key()?;
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
        config.observer = Some(metrics.observer());
        let opened = config.open().await.map_err(|e| match e.code() {
            ErrorCode::StoreUnavailable => ConfigError::Store(e.to_string()),
            _ => ConfigError::Vault(e),
        })?;
        metrics.watch_key_usage(opened.key_usage.clone());
        Ok((opened, store))
    }

    /// The most event streams open at once: `--max-event-streams`, else half of
    /// `--max-connections` (at least one).
    pub fn max_event_streams(&self) -> usize {
        let limit = self
            .max_event_streams
            .map_or((self.max_connections.get() / 2).max(1), NonZeroU32::get);
        usize::try_from(limit).unwrap_or(usize::MAX)
    }

    /// The grace period for requests in flight at shutdown: `--shutdown-grace`, else the
    /// request timeout.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace.unwrap_or(self.request_timeout_seconds))
    }

    /// The development fallbacks this configuration would use: the development API key,
    /// the development key. Each names the options that replace it.
    ///
    /// # Errors
    /// [`ConfigError::Vault`] (`INVALID_ARGUMENT`) for a malformed `--key-source`.
    fn development_fallbacks(&self) -> Result<Vec<&'static str>, ConfigError> {
        let mut fallbacks = Vec::new();
        if self.api_keys_file.is_none() && self.api_keys.is_none() {
            fallbacks.push(
                "no --api-keys-file or --api-keys is set (a development API key would be \
                 printed to standard output)",
            );
        }
        if matches!(self.key_source()?, KeySource::Development) {
            fallbacks.push(
                "no --keys-file, --key-source or PCI_VAULT_KEYS names the keys (an \
                 ephemeral development key would seal the sessions)",
            );
        }
        Ok(fallbacks)
    }

    /// Refuses the development fallbacks on a `--listen` address other than loopback,
    /// unless `--development` accepts them: there, the development API key printed at
    /// start lands in whatever keeps standard output (a container's log), and sessions
    /// sealed under a key of this process only are lost with it.
    ///
    /// # Errors
    /// [`ConfigError::DevelopmentExposed`] naming what is missing;
    /// [`ConfigError::Vault`] for a malformed `--key-source`.
    pub fn check_development(&self) -> Result<(), ConfigError> {
        if self.listen.ip().is_loopback() {
            return Ok(());
        }
        let fallbacks = self.development_fallbacks()?;
        if fallbacks.is_empty() {
            return Ok(());
        }
        if self.development {
            tracing::warn!(
                address = %self.listen,
                "--development: development credentials on an address other than loopback; \
                 never in production"
            );
            return Ok(());
        }
        Err(ConfigError::DevelopmentExposed {
            listen: self.listen,
            missing: fallbacks.join(", and "),
        })
    }
}
