//! Where sessions are kept: the one store string parser, and opening the store.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use pci_vault::{EphemeralStore, Error, Result, SystemClock};
use pci_vault_memory::{MemoryLimits, MemoryStore};
use pci_vault_redis::{MinReplicas, RedisOptions, RedisStore};

/// The store of a [`VaultConfig`](crate::VaultConfig). New stores (and new ways to reach
/// Redis) become new variants.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per opened vault, read once by `open()`: boxing the Redis options \
              would save a few hundred bytes once and cost every front-end a `Box::new`"
)]
pub enum StoreConfig {
    /// In this process, within these bounds.
    Memory(MemoryLimits),
    /// Redis: one node, or the seed nodes of a cluster. `Debug` hides passwords.
    Redis(RedisOptions),
}

const STORE_SYNTAX: &str = "a store is `memory`, `memory?max_entries=N&max_bytes=N`, a redis:// or \
                            rediss:// URL, or a comma-separated list of them";
const MEMORY_OPTIONS: &str =
    "memory store options are max_entries and max_bytes, whole numbers of at least 1";
const REDIS_OPTIONS: &str = "Redis store options are min_replicas (1-64) and \
                             min_replicas_timeout_ms (with min_replicas), whole numbers of at \
                             least 1";
/// How long writes wait for `min_replicas` when the store string does not say.
const DEFAULT_MIN_REPLICAS_TIMEOUT: Duration = Duration::from_millis(500);

impl StoreConfig {
    /// Parses a store string: `memory` (any case), `memory?max_entries=N&max_bytes=N`, a
    /// `redis://` or `rediss://` URL, or several comma-separated URLs (the seed nodes of a
    /// cluster, by the Redis store's own rule, [`RedisOptions::from_list`]). A Redis store
    /// string may end in `?min_replicas=N[&min_replicas_timeout_ms=N]` (default 500 ms):
    /// the replicas that must acknowledge every write ([`RedisOptions::min_replicas`]).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for anything else; the message never repeats the text.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let (name, query) = text.split_once('?').unwrap_or((text, ""));
        if name.eq_ignore_ascii_case("memory") {
            return query_settings(query, Query::Memory)?
                .apply(StoreConfig::Memory(MemoryLimits::default()));
        }
        let (list, query) = text.rsplit_once('?').unwrap_or((text, ""));
        let options = RedisOptions::from_list(list);
        let redis_urls = !options.urls.is_empty()
            && options
                .urls
                .iter()
                .all(|u| u.starts_with("redis://") || u.starts_with("rediss://"));
        if redis_urls {
            query_settings(query, Query::Redis)?.apply(StoreConfig::Redis(options))
        } else {
            Err(Error::InvalidArgument(STORE_SYNTAX))
        }
    }

    /// Redis at `urls`: one URL is a single node, several are cluster seeds (the rule of
    /// [`StoreConfig::parse`], for hosts that give the URLs as a list).
    pub fn redis<S: AsRef<str>>(urls: impl IntoIterator<Item = S>) -> Self {
        let list: Vec<String> = urls.into_iter().map(|u| u.as_ref().to_owned()).collect();
        StoreConfig::Redis(RedisOptions::from_list(&list.join(",")))
    }

    /// The store for logs and tests, without credentials: `memory (N entries, N bytes)` or
    /// `redis (single node|cluster[, TLS], N URL(s)[, writes wait for N replica(s), N ms])`.
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Memory(limits) => format!(
                "memory ({} entries, {} bytes)",
                limits.max_entries, limits.max_bytes
            ),
            StoreConfig::Redis(options) => format!(
                "redis ({}{}, {} URL(s){})",
                if options.cluster {
                    "cluster"
                } else {
                    "single node"
                },
                if options.is_tls() { ", TLS" } else { "" },
                options.urls.len(),
                options.min_replicas.map_or(String::new(), |min| format!(
                    ", writes wait for {} replica(s), {} ms",
                    min.count,
                    min.timeout.as_millis()
                )),
            ),
        }
    }

    /// How long a PIN attempt's outcome may still be on its way to this store: twice a
    /// Redis store's operation timeout (`None` for the memory store, which keeps the
    /// vault's default).
    pub(crate) fn attempt_grace(&self) -> Option<std::time::Duration> {
        match self {
            StoreConfig::Memory(_) => None,
            StoreConfig::Redis(options) => Some((options.timeout * 2).clamp(
                std::time::Duration::from_millis(1),
                pci_vault::VaultBuilder::MAX_ATTEMPT_GRACE,
            )),
        }
    }

    /// Checks what can be checked without I/O.
    pub(crate) fn check(&self) -> Result<()> {
        match self {
            StoreConfig::Memory(limits) if limits.max_entries == 0 || limits.max_bytes == 0 => {
                Err(Error::InvalidArgument("memory store limits are at least 1"))
            }
            _ => Ok(()),
        }
    }

    /// Opens the store; returns it, the unsafe server settings it found and, for the memory
    /// store, a gauge of its occupancy.
    pub(crate) async fn open(
        self,
    ) -> Result<(Arc<dyn EphemeralStore>, Vec<String>, Option<MemoryGauge>)> {
        Ok(match self {
            StoreConfig::Memory(limits) => {
                let store = Arc::new(MemoryStore::with_clock(limits, Arc::new(SystemClock)));
                (store.clone(), Vec::new(), Some(MemoryGauge(store)))
            }
            StoreConfig::Redis(options) => {
                let store = RedisStore::connect(options).await?;
                let warnings = store.server_warnings().to_vec();
                (Arc::new(store), warnings, None)
            }
        })
    }
}

/// Store settings a host gives beside its store string, each optional: a binding's store
/// object, a server's flags. [`StoreSettings::apply`] puts them over a parsed
/// [`StoreConfig`], so every front-end tunes a store the same way; the store checks the
/// ranges when it opens. A memory setting on a Redis store, or a Redis setting on the
/// memory store, is refused rather than ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreSettings {
    /// Memory: most live entries.
    pub max_entries: Option<u64>,
    /// Memory: most bytes of keys, values and overhead.
    pub max_bytes: Option<u64>,
    /// Redis: whether the URLs name a cluster. Unset, several URLs do; `false` with
    /// several URLs is refused when the store opens.
    pub cluster: Option<bool>,
    /// Redis: prefix of every key.
    pub key_prefix: Option<String>,
    /// Redis: longest wait for one operation, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Redis: longest wait to connect at open, in milliseconds.
    pub connect_timeout_ms: Option<u64>,
    /// Redis over TLS: a PEM file of the CA(s) that sign the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// Redis over TLS: a PEM client certificate, with [`client_key_file`](Self::client_key_file).
    pub client_cert_file: Option<PathBuf>,
    /// Redis over TLS: the PEM private key of [`client_cert_file`](Self::client_cert_file).
    pub client_key_file: Option<PathBuf>,
    /// Redis: replicas that must acknowledge every write.
    pub min_replicas: Option<u64>,
    /// Redis: longest wait for them, in milliseconds (with `min_replicas`; default 500).
    pub min_replicas_timeout_ms: Option<u64>,
}

impl StoreSettings {
    /// No settings: [`StoreSettings::apply`] returns the store unchanged.
    pub fn new() -> Self {
        StoreSettings::default()
    }

    /// `store` with every setting given here.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for a setting of another kind of store, a client certificate
    /// without its key (or the reverse), or a replica wait without replicas.
    pub fn apply(self, mut store: StoreConfig) -> Result<StoreConfig> {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let millis = Duration::from_millis;
        match &mut store {
            StoreConfig::Memory(limits) => {
                if self.has_redis_settings() {
                    return Err(Error::InvalidArgument("Redis settings need a Redis store"));
                }
                if let Some(n) = self.max_entries {
                    limits.max_entries = size(n);
                }
                if let Some(n) = self.max_bytes {
                    limits.max_bytes = size(n);
                }
            }
            StoreConfig::Redis(options) => {
                if self.max_entries.is_some() || self.max_bytes.is_some() {
                    return Err(Error::InvalidArgument(
                        "memory store bounds need the memory store",
                    ));
                }
                if let Some(cluster) = self.cluster {
                    options.cluster = cluster;
                }
                if let Some(prefix) = self.key_prefix {
                    options.key_prefix = prefix;
                }
                if let Some(ms) = self.timeout_ms {
                    options.timeout = millis(ms);
                }
                if let Some(ms) = self.connect_timeout_ms {
                    options.connect_timeout = millis(ms);
                }
                if self.ca_file.is_some() {
                    options.ca_file = self.ca_file;
                }
                match (self.client_cert_file, self.client_key_file) {
                    (Some(cert), Some(key)) => options.client_cert = Some((cert, key)),
                    (None, None) => {}
                    _ => {
                        return Err(Error::InvalidArgument(
                            "a client certificate and its key go together",
                        ));
                    }
                }
                match (self.min_replicas, self.min_replicas_timeout_ms) {
                    (None, None) => {}
                    (None, Some(_)) => return Err(Error::InvalidArgument(REDIS_OPTIONS)),
                    (Some(count), ms) => {
                        options.min_replicas = Some(MinReplicas::new(
                            u32::try_from(count).unwrap_or(u32::MAX),
                            ms.map_or(DEFAULT_MIN_REPLICAS_TIMEOUT, millis),
                        ));
                    }
                }
            }
        }
        Ok(store)
    }

    fn has_redis_settings(&self) -> bool {
        self.cluster.is_some()
            || self.key_prefix.is_some()
            || self.timeout_ms.is_some()
            || self.connect_timeout_ms.is_some()
            || self.ca_file.is_some()
            || self.client_cert_file.is_some()
            || self.client_key_file.is_some()
            || self.min_replicas.is_some()
            || self.min_replicas_timeout_ms.is_some()
    }
}

/// How full a memory store is, against its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryUsage {
    /// Entries held (live sessions and tombstones; expired ones not yet purged included).
    pub entries: usize,
    /// Bytes they are counted at.
    pub bytes: usize,
    /// The bounds.
    pub limits: MemoryLimits,
}

/// Reads the occupancy of an opened memory store, for a host's metrics.
#[derive(Clone)]
pub struct MemoryGauge(Arc<MemoryStore>);

impl MemoryGauge {
    /// The store's occupancy now.
    pub fn usage(&self) -> MemoryUsage {
        let (entries, bytes) = self.0.usage();
        MemoryUsage {
            entries,
            bytes,
            limits: self.0.limits(),
        }
    }
}

impl fmt::Debug for MemoryGauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MemoryGauge").field(&self.usage()).finish()
    }
}

impl Default for StoreConfig {
    /// The memory store with its default bounds.
    fn default() -> Self {
        StoreConfig::Memory(MemoryLimits::default())
    }
}

impl FromStr for StoreConfig {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        StoreConfig::parse(text)
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreConfig::Memory(limits) => f.debug_tuple("Memory").field(limits).finish(),
            // `RedisOptions`' own `Debug` redacts passwords.
            StoreConfig::Redis(options) => f.debug_tuple("Redis").field(options).finish(),
        }
    }
}

/// Which store a store string's query belongs to.
#[derive(Clone, Copy)]
enum Query {
    /// `memory?max_entries=N&max_bytes=N`
    Memory,
    /// `redis://…?min_replicas=N&min_replicas_timeout_ms=N`
    Redis,
}

/// The settings of a store string's query: whole numbers of at least 1, each named once,
/// only the names its store takes; else `INVALID_ARGUMENT` naming what the store takes.
fn query_settings(query: &str, store: Query) -> Result<StoreSettings> {
    let message = match store {
        Query::Memory => MEMORY_OPTIONS,
        Query::Redis => REDIS_OPTIONS,
    };
    let mut settings = StoreSettings::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or(Error::InvalidArgument(message))?;
        let value = value
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or(Error::InvalidArgument(message))?;
        let slot = match (store, key) {
            (Query::Memory, "max_entries") => &mut settings.max_entries,
            (Query::Memory, "max_bytes") => &mut settings.max_bytes,
            (Query::Redis, "min_replicas") => &mut settings.min_replicas,
            (Query::Redis, "min_replicas_timeout_ms") => &mut settings.min_replicas_timeout_ms,
            _ => return Err(Error::InvalidArgument(message)),
        };
        if slot.replace(value).is_some() {
            return Err(Error::InvalidArgument(message));
        }
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{StoreConfig, StoreSettings};
    use pci_vault::ErrorCode;
    use pci_vault_redis::MinReplicas;

    #[test]
    fn the_attempt_grace_is_twice_the_redis_timeout() {
        assert_eq!(StoreConfig::parse("memory").unwrap().attempt_grace(), None);
        let mut redis = StoreConfig::parse("redis://127.0.0.1:6379").unwrap();
        assert_eq!(redis.attempt_grace(), Some(Duration::from_secs(4)));
        if let StoreConfig::Redis(options) = &mut redis {
            options.timeout = Duration::from_millis(300);
        }
        assert_eq!(redis.attempt_grace(), Some(Duration::from_millis(600)));
        if let StoreConfig::Redis(options) = &mut redis {
            options.timeout = Duration::from_secs(45);
        }
        assert_eq!(redis.attempt_grace(), Some(Duration::from_secs(60)));
    }

    #[test]
    fn settings_reach_their_store_and_no_other() {
        let mut memory = StoreSettings::new();
        memory.max_entries = Some(7);
        match memory.clone().apply(StoreConfig::parse("memory").unwrap()) {
            Ok(StoreConfig::Memory(limits)) => assert_eq!(limits.max_entries, 7),
            other => panic!("{other:?}"),
        }
        let redis_store = || StoreConfig::parse("redis://127.0.0.1:1").unwrap();
        let err = memory.apply(redis_store()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);

        let mut redis = StoreSettings::new();
        redis.key_prefix = Some("t:".into());
        redis.timeout_ms = Some(900);
        redis.min_replicas = Some(2);
        match redis.clone().apply(redis_store()) {
            Ok(StoreConfig::Redis(options)) => {
                assert_eq!(options.key_prefix, "t:");
                assert_eq!(options.timeout, Duration::from_millis(900));
                assert_eq!(
                    options.min_replicas,
                    Some(MinReplicas::new(2, Duration::from_millis(500)))
                );
            }
            other => panic!("{other:?}"),
        }
        let err = redis
            .apply(StoreConfig::parse("memory").unwrap())
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);

        // An explicit `false` is kept, for the store to refuse several URLs.
        let mut not_a_cluster = StoreSettings::new();
        not_a_cluster.cluster = Some(false);
        match not_a_cluster.apply(StoreConfig::parse("redis://a:1,redis://b:2").unwrap()) {
            Ok(StoreConfig::Redis(options)) => assert!(!options.cluster),
            other => panic!("{other:?}"),
        }

        let mut half_pair = StoreSettings::new();
        half_pair.client_cert_file = Some("/c.pem".into());
        assert!(half_pair.apply(redis_store()).is_err());
        let mut wait_alone = StoreSettings::new();
        wait_alone.min_replicas_timeout_ms = Some(100);
        assert!(wait_alone.apply(redis_store()).is_err());
    }
}
