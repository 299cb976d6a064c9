#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod connection;
mod errors;
mod options;
mod settings;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use pci_vault::store::{MAX_VALUE_LEN, is_valid_key};
use pci_vault::{CasOutcome, EphemeralStore, Error, Result, Version, Versioned};
use redis::Script;

use connection::Connection;
pub use options::RedisOptions;

/// Bytes of the version written in front of every stored value.
const VERSION_LEN: usize = 8;

/// Replaces the value if its version (the first 8 bytes) matches, keeping the TTL.
/// KEYS[1] = key; ARGV[1] = expected version; ARGV[2] = new version ‖ new value.
const REPLACE_LUA: &str = r"
if redis.call('GETRANGE', KEYS[1], 0, 7) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
";

/// Deletes the value if its version matches. KEYS[1] = key; ARGV[1] = expected version.
const DELETE_LUA: &str = r"
if redis.call('GETRANGE', KEYS[1], 0, 7) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
";

/// A Redis (single node, TLS, ACL) or Redis Cluster [`EphemeralStore`].
///
/// Each session is one Redis string under `{key_prefix}{<store key>}` — the braces are a
/// hash tag, so everything of a session lives in one cluster slot. The value is an 8-byte
/// version followed by the sealed record; every write draws a fresh random version, so a
/// stale version never matches by accident. `create` is `SET NX PX`, `load` is `GET`,
/// `replace` and `delete` are Lua scripts (`EVALSHA`) that compare the version and write in
/// one atomic step. Every operation has a timeout; the connection reconnects by itself.
pub struct RedisStore {
    conn: Connection,
    options: RedisOptions,
    warnings: Vec<String>,
    replace: Script,
    delete: Script,
}

impl RedisStore {
    /// Connects, checks that the server answers and what the ACL allows, and reads the
    /// server's settings where the ACL allows it, logging a warning for each unsafe one
    /// (see [`RedisStore::server_warnings`]).
    ///
    /// # Errors
    /// - `INVALID_ARGUMENT` for a malformed URL, prefix or option, or a CA file or client
    ///   certificate that is not PEM.
    /// - `STORE_UNAVAILABLE` when the server cannot be reached in `connect_timeout`, the
    ///   password or user is wrong, TLS fails (e.g. a certificate from another CA), or the ACL
    ///   user lacks a command the store needs. The message says which, and never shows the
    ///   password.
    /// - `CAPACITY_EXCEEDED` when the server is at `maxmemory` and refuses the check's write.
    pub async fn connect(options: RedisOptions) -> Result<RedisStore> {
        options.validate()?;
        let conn = Connection::open(&options).await?;
        let replace = Script::new(REPLACE_LUA);
        let delete = Script::new(DELETE_LUA);
        let mut store = RedisStore {
            conn,
            options,
            warnings: Vec::new(),
            replace,
            delete,
        };
        store.check_permissions().await?;
        store.warnings = settings::unsafe_settings(&store.conn, store.options.timeout).await;
        for warning in &store.warnings {
            tracing::warn!(target: "pci_vault_redis", "{warning}");
        }
        Ok(store)
    }

    /// The unsafe server settings found at connect (persistence on, an eviction policy that
    /// can drop sessions), one sentence each; empty when none was found or the ACL did not
    /// allow reading them.
    pub fn server_warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The options this store was opened with.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    /// The Redis key a store key is kept under.
    pub fn redis_key(&self, key: &str) -> String {
        format!("{}{{{}}}", self.options.key_prefix, key)
    }

    /// Runs every command the store needs once on a scratch key — the same paths as
    /// `create`, `load`, `replace` and `delete`, each of which must apply — so a missing ACL
    /// permission, a server without Lua, or a proxy that breaks the scripts is found at
    /// connect rather than on a customer's submit.
    async fn check_permissions(&self) -> Result<()> {
        let probe = format!(
            "{}{{pci-vault-acl-probe-{}}}",
            self.options.key_prefix,
            random_version_hex()
        );
        let (first, second) = (random_version(), random_version());
        let outcome = async {
            self.conn.ping().await?;
            // Loaded here, not only on a NOSCRIPT reply, so a user who may not load scripts
            // is found now rather than after the next server restart.
            self.conn.load_script(&self.replace).await?;
            self.conn.load_script(&self.delete).await?;
            let created = self
                .conn
                .set_nx_px(&probe, &versioned(first, b"probe"), 10_000)
                .await?;
            let loaded = self.conn.get(&probe).await?;
            let replaced: i64 = self
                .conn
                .script(
                    &self.replace,
                    &probe,
                    &[first.to_vec(), versioned(second, b"probe")],
                )
                .await?;
            let deleted: i64 = self
                .conn
                .script(&self.delete, &probe, &[second.to_vec()])
                .await?;
            Ok::<bool, redis::RedisError>(
                created.is_some()
                    && loaded.as_deref() == Some(versioned(first, b"probe").as_slice())
                    && replaced == 1
                    && deleted == 1,
            )
        };
        match tokio::time::timeout(self.options.connect_timeout, outcome).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(Error::store_unavailable(
                "redis: the server did not apply the store's test writes (SET NX PX, GET and the \
                 compare-and-set scripts); pci-vault needs Redis 7 or a compatible server with Lua",
            )),
            Ok(Err(e)) => Err(errors::at_connect(&e, &self.options.redacted_urls())),
            Err(_) => Err(Error::store_unavailable(format!(
                "redis: no answer within the connect timeout of {:?}",
                self.options.connect_timeout
            ))),
        }
    }

    async fn timed<T>(
        &self,
        what: &str,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.options.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(errors::during_operation(what, &e)),
            Err(_) => Err(Error::store_unavailable(format!(
                "redis: {what} timed out after {:?}",
                self.options.timeout
            ))),
        }
    }
}

fn random_version() -> [u8; VERSION_LEN] {
    let mut v = [0u8; VERSION_LEN];
    // A failing OS random source cannot produce safe versions; no write is attempted.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut v).expect("the operating system random source failed");
    v
}

fn random_version_hex() -> String {
    random_version()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check_args(key: &str, value: &[u8]) -> Result<()> {
    if !is_valid_key(key) {
        return Err(Error::InvalidArgument(
            "a store key is 1-128 characters of A-Z a-z 0-9 _ -",
        ));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::InvalidArgument("a stored value is at most 1 MiB"));
    }
    Ok(())
}

fn versioned(version: [u8; VERSION_LEN], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(VERSION_LEN + value.len());
    out.extend_from_slice(&version);
    out.extend_from_slice(value);
    out
}

#[async_trait]
impl EphemeralStore for RedisStore {
    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<CasOutcome> {
        check_args(key, value)?;
        let version = random_version();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let created: Option<()> = self
            .timed(
                "create",
                self.conn
                    .set_nx_px(&self.redis_key(key), &versioned(version, value), ttl_ms),
            )
            .await?;
        Ok(match created {
            Some(()) => CasOutcome::Applied(Version(u64::from_be_bytes(version))),
            None => CasOutcome::Conflict,
        })
    }

    async fn load(&self, key: &str) -> Result<Option<Versioned>> {
        if !is_valid_key(key) {
            return Err(Error::InvalidArgument(
                "a store key is 1-128 characters of A-Z a-z 0-9 _ -",
            ));
        }
        let raw: Option<Vec<u8>> = self
            .timed("load", self.conn.get(&self.redis_key(key)))
            .await?;
        let Some(mut raw) = raw else { return Ok(None) };
        if raw.len() < VERSION_LEN {
            return Err(Error::IntegrityError);
        }
        let value = raw.split_off(VERSION_LEN);
        let mut version = [0u8; VERSION_LEN];
        version.copy_from_slice(&raw);
        Ok(Some(Versioned {
            value,
            version: Version(u64::from_be_bytes(version)),
        }))
    }

    async fn replace(&self, key: &str, expected: Version, value: &[u8]) -> Result<CasOutcome> {
        check_args(key, value)?;
        let version = random_version();
        let args = [expected.0.to_be_bytes().to_vec(), versioned(version, value)];
        let applied: i64 = self
            .timed(
                "replace",
                self.conn.script(&self.replace, &self.redis_key(key), &args),
            )
            .await?;
        Ok(if applied == 1 {
            CasOutcome::Applied(Version(u64::from_be_bytes(version)))
        } else {
            CasOutcome::Conflict
        })
    }

    async fn delete(&self, key: &str, expected: Version) -> Result<CasOutcome> {
        check_args(key, &[])?;
        let args = [expected.0.to_be_bytes().to_vec()];
        let deleted: i64 = self
            .timed(
                "delete",
                self.conn.script(&self.delete, &self.redis_key(key), &args),
            )
            .await?;
        Ok(if deleted == 1 {
            CasOutcome::Applied(expected)
        } else {
            CasOutcome::Conflict
        })
    }

    async fn ping(&self) -> Result<()> {
        self.timed("ping", self.conn.ping()).await
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}
