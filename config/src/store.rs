//! Where sessions are kept: the one store string parser, and opening the store.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use pci_vault::{EphemeralStore, Error, Result, SystemClock};
use pci_vault_memory::{MemoryLimits, MemoryStore};
use pci_vault_redis::{RedisOptions, RedisStore};

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

impl StoreConfig {
    /// Parses a store string: `memory` (any case), `memory?max_entries=N&max_bytes=N`, a
    /// `redis://` or `rediss://` URL, or several comma-separated URLs (the seed nodes of a
    /// cluster, by the Redis store's own rule, [`RedisOptions::from_list`]).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for anything else; the message never repeats the text.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let (name, query) = text.split_once('?').unwrap_or((text, ""));
        if name.eq_ignore_ascii_case("memory") {
            return memory_limits(query).map(StoreConfig::Memory);
        }
        let options = RedisOptions::from_list(text);
        let redis_urls = !options.urls.is_empty()
            && options
                .urls
                .iter()
                .all(|u| u.starts_with("redis://") || u.starts_with("rediss://"));
        if redis_urls {
            Ok(StoreConfig::Redis(options))
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
    /// `redis (single node|cluster[, TLS], N URL(s))`.
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Memory(limits) => format!(
                "memory ({} entries, {} bytes)",
                limits.max_entries, limits.max_bytes
            ),
            StoreConfig::Redis(options) => format!(
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

/// How full a memory store is, against its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The bounds of `memory?max_entries=N&max_bytes=N`; each is optional.
fn memory_limits(query: &str) -> Result<MemoryLimits> {
    let mut limits = MemoryLimits::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or(Error::InvalidArgument(MEMORY_OPTIONS))?;
        let value = value
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or(Error::InvalidArgument(MEMORY_OPTIONS))?;
        match key {
            "max_entries" => limits.max_entries = value,
            "max_bytes" => limits.max_bytes = value,
            _ => return Err(Error::InvalidArgument(MEMORY_OPTIONS)),
        }
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::StoreConfig;

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
}
