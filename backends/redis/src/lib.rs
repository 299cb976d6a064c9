#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod connection;
mod errors;
mod events;
mod options;
mod sentinel;
mod settings;
mod subscriber;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use pci_vault::store::{Claim, Claimed, MAX_CLAIMS, MAX_EVENT_LEN, MAX_VALUE_LEN, is_valid_key};
use pci_vault::{CasOutcome, EphemeralStore, Error, EventSubscription, Result, Version, Versioned};
use redis::Script;

use connection::Connection;
pub use options::{MinReplicas, RedisOptions, SentinelOptions};

/// Bytes of the version written in front of every stored value.
const VERSION_LEN: usize = 8;

/// Bytes of one claim in the header: its id and its time, 8 bytes each.
const CLAIM_LEN: usize = 16;

/// Creates the entry if the key is absent; answers 1 also when the key already holds this
/// version (a repeated create), 0 when it holds another.
///
/// A repeated write writes the entry again, unchanged: it may come on another connection
/// than the first (after a timeout or a reconnection), and a `WAIT` counts only what its own
/// connection wrote, so without a write of its own it would count replicas that never got
/// the first one (`min_replicas`). The same holds in the other write scripts. When the
/// server refuses that write (out of memory, too few replicas for `min-replicas-to-write`,
/// a failing snapshot), the repeat answers `PCIVAULTAGAIN`: whether the first try counts is
/// not known, and answering as the first try did would let the `WAIT` count replicas that
/// may not have it.
/// KEYS[1] = key; ARGV[1] = version; ARGV[2] = the stored string; ARGV[3] = TTL in ms.
const CREATE_LUA: &str = r"
local current = redis.call('GETRANGE', KEYS[1], 0, 7)
if current ~= '' then
  if current == ARGV[1] then
    local rewritten = redis.pcall('SET', KEYS[1], redis.call('GET', KEYS[1]), 'KEEPTTL')
    if type(rewritten) == 'table' and rewritten.err then
      return redis.error_reply('PCIVAULTAGAIN the repeated write was refused: ' .. rewritten.err)
    end
    return 1
  end
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// Replaces the value if the entry's version matches, keeping the TTL and the claims, and
/// then, when given, publishes the event on the entry's channel — only when this call
/// writes; answers 1 also when the key already holds the new version (a repeated replace,
/// which publishes nothing). Run as [`REPLACE_LUA`] first; when the server is full, as
/// [`REPLACE_WHEN_FULL_LUA`] — also for a repeat, whose rewrite a full server refuses to the
/// first script (`OOM`) and allows to the second. A repeat's rewrite refused otherwise
/// answers `PCIVAULTAGAIN`, as in [`CREATE_LUA`].
/// KEYS[1] = key; ARGV[1] = expected version; ARGV[2] = new version; ARGV[3] = the value;
/// ARGV[4], ARGV[5] (optional) = the channel and the event.
macro_rules! replace_body {
    () => {
        r"
local current = redis.call('GETRANGE', KEYS[1], 0, 7)
if current == ARGV[2] then
  local rewritten = redis.pcall('SET', KEYS[1], redis.call('GET', KEYS[1]), 'KEEPTTL')
  if type(rewritten) == 'table' and rewritten.err then
    if string.sub(rewritten.err, 1, 4) == 'OOM ' then return rewritten end
    return redis.error_reply('PCIVAULTAGAIN the repeated write was refused: ' .. rewritten.err)
  end
  return 1
end
if current == '' or current ~= ARGV[1] then return 0 end
local count = string.byte(redis.call('GETRANGE', KEYS[1], 8, 8))
if not count then return redis.error_reply('PCIVAULT the entry has no header') end
local claims = redis.call('GETRANGE', KEYS[1], 8, 8 + 16 * count)
local stored = ARGV[2] .. claims .. ARGV[3]
if shrink_only and #stored > #redis.call('GET', KEYS[1]) then
  return redis.error_reply('OOM the server is full and this write would grow the entry')
end
redis.call('SET', KEYS[1], stored, 'KEEPTTL')
if ARGV[5] then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return 1
"
    };
}

/// The replace script as every write runs it: a server at `maxmemory` refuses its write
/// (`OOM`).
const REPLACE_LUA: &str = concat!("local shrink_only = false", replace_body!());

/// The replace script for a server at `maxmemory`: it may write there (`allow-oom`, Redis
/// 7), but only what does not grow the entry — the tombstones of reveal, lock and cancel.
/// Growth still answers `OOM`. Without it a full server would strand its submitted
/// sessions: their cards could be neither revealed nor cancelled until they expired.
const REPLACE_WHEN_FULL_LUA: &str = concat!(
    "#!lua flags=allow-oom\nlocal shrink_only = true",
    replace_body!()
);

/// Deletes the value if its version matches. KEYS[1] = key; ARGV[1] = expected version.
const DELETE_LUA: &str = r"
if redis.call('GETRANGE', KEYS[1], 0, 7) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
";

/// Gives back a claim if it is the entry's latest, keeping the TTL. Answers 1 when the
/// entry no longer holds the claim (or is gone), 0 when a later claim keeps it in place.
/// It only shrinks the entry, so it runs on a server at `maxmemory` too (`allow-oom`).
/// KEYS[1] = key; ARGV[1] = claim id (8 bytes).
const RELEASE_LUA: &str = r"#!lua flags=allow-oom
local stored = redis.call('GET', KEYS[1])
if not stored then return 1 end
if #stored < 9 then return redis.error_reply('PCIVAULT the entry has no header') end
local count = string.byte(stored, 9)
for i = 0, count - 1 do
  if string.sub(stored, 10 + 16 * i, 17 + 16 * i) == ARGV[1] then
    if i ~= count - 1 then return 0 end
    local head = 9 + 16 * i
    stored = string.sub(stored, 1, 8) .. string.char(count - 1) .. string.sub(stored, 10, head)
      .. string.sub(stored, head + 17)
    redis.call('SET', KEYS[1], stored, 'KEEPTTL')
    return 1
  end
end
return 1
";

/// Reads the entry and takes a claim on it: appends the claim unless the entry holds it
/// already, holds `limit` claims or its value does not start with the prefix, keeping the
/// TTL. Answers false for an absent key, else { the stored string after the claim, the
/// claim's 1-based place or 0 when not taken }.
///
/// It runs on a server at `maxmemory` too (`allow-oom`): a claim adds 16 bytes, at most
/// [`MAX_CLAIMS`] times per entry, and refusing it would stop every reveal on a full
/// server.
/// KEYS[1] = key; ARGV[1] = claim id and time (16 bytes); ARGV[2] = limit; ARGV[3] = prefix.
const CLAIM_LUA: &str = r"#!lua flags=allow-oom
local stored = redis.call('GET', KEYS[1])
if not stored then return false end
if #stored < 9 then return redis.error_reply('PCIVAULT the entry has no header') end
local count = string.byte(stored, 9)
local id = string.sub(ARGV[1], 1, 8)
for i = 0, count - 1 do
  if string.sub(stored, 10 + 16 * i, 17 + 16 * i) == id then
    local rewritten = redis.pcall('SET', KEYS[1], stored, 'KEEPTTL')
    if type(rewritten) == 'table' and rewritten.err then
      return redis.error_reply('PCIVAULTAGAIN the repeated write was refused: ' .. rewritten.err)
    end
    return { stored, i + 1 }
  end
end
local head = 9 + 16 * count
if count >= tonumber(ARGV[2]) or string.sub(stored, head + 1, head + #ARGV[3]) ~= ARGV[3] then
  return { stored, 0 }
end
stored = string.sub(stored, 1, 8) .. string.char(count + 1) .. string.sub(stored, 10, head)
  .. ARGV[1] .. string.sub(stored, head + 1)
redis.call('SET', KEYS[1], stored, 'KEEPTTL')
return { stored, count + 1 }
";

/// A Redis (single node, TLS, ACL) or Redis Cluster [`EphemeralStore`].
///
/// Each session is one Redis string under `{key_prefix}{<store key>}` — the braces are a
/// hash tag, so everything of a session lives in one cluster slot. The string is the
/// writer's 8-byte version, a one-byte claim count, the claims (8-byte id and 8-byte time
/// each), then the sealed record. `load` is `GET`; `create`, `replace`, `delete` and `claim`
/// are Lua scripts (`EVALSHA`) that compare and write in one atomic step, and answer a
/// repeated write (same version, same claim id) as they answered the first, so a command
/// re-sent after a reset connection is harmless. Every operation has a timeout; the
/// connection reconnects by itself.
pub struct RedisStore {
    conn: Connection,
    options: RedisOptions,
    warnings: Vec<String>,
    scripts: Scripts,
    subscriber: subscriber::Subscriber,
}

/// The store's Lua scripts.
struct Scripts {
    create: Script,
    replace: Script,
    replace_when_full: Script,
    delete: Script,
    claim: Script,
    release: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            create: Script::new(CREATE_LUA),
            replace: Script::new(REPLACE_LUA),
            replace_when_full: Script::new(REPLACE_WHEN_FULL_LUA),
            delete: Script::new(DELETE_LUA),
            claim: Script::new(CLAIM_LUA),
            release: Script::new(RELEASE_LUA),
        }
    }

    fn all(&self) -> [&Script; 6] {
        [
            &self.create,
            &self.replace,
            &self.replace_when_full,
            &self.delete,
            &self.claim,
            &self.release,
        ]
    }
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
        let mut store = RedisStore {
            conn,
            options,
            warnings: Vec::new(),
            scripts: Scripts::new(),
            subscriber: subscriber::Subscriber::default(),
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
    /// `create`, `load`, `claim`, `replace` (both scripts) and `delete`, each of which must
    /// apply — so a missing ACL permission, a server without Lua, or a proxy that breaks the
    /// scripts is found at connect rather than on a customer's submit.
    async fn check_permissions(&self) -> Result<()> {
        let probe = format!(
            "{}{{pci-vault-acl-probe-{:016x}}}",
            self.options.key_prefix,
            Version::random().0
        );
        let (first, second) = (Version::random(), Version::random());
        let claim = Claim {
            id: Version::random().0,
            at_millis: 1,
        };
        let outcome = async {
            self.conn.ping().await?;
            // Loaded here, not only on a NOSCRIPT reply, so a user who may not load scripts
            // is found now rather than after the next server restart.
            for script in self.scripts.all() {
                self.conn.load_script(script).await?;
            }
            let created: i64 = self
                .conn
                .script(
                    &self.scripts.create,
                    &probe,
                    &create_args(first, b"probe", 10_000),
                )
                .await?;
            let loaded = self.conn.get(&probe).await?;
            let claimed: Option<(Vec<u8>, i64)> = self
                .conn
                .script(&self.scripts.claim, &probe, &claim_args(claim, 1, b"pro"))
                .await?;
            let mut args = replace_args(first, second, b"probe").to_vec();
            args.extend([Self::channel(&probe).into_bytes(), b"probe".to_vec()]);
            let replaced: i64 = self
                .conn
                .script(&self.scripts.replace, &probe, &args)
                .await?;
            // The script a full server's replaces run: its commands must be allowed too.
            let third = Version::random();
            let refilled: i64 = self
                .conn
                .script(
                    &self.scripts.replace_when_full,
                    &probe,
                    &replace_args(second, third, b"probe"),
                )
                .await?;
            self.conn.publish(&Self::channel(&probe), b"probe").await?;
            let delete_args = [third.0.to_be_bytes().to_vec()];
            // The last write goes the way every write goes with min_replicas — with its
            // WAIT — so a user without WAIT, or replicas that do not acknowledge, are found
            // now.
            let (deleted, acknowledged): (i64, Option<i64>) = match self.options.min_replicas {
                Some(min) => {
                    let (deleted, acknowledged) = self
                        .conn
                        .script_then_wait(&self.scripts.delete, &probe, &delete_args, min)
                        .await?;
                    (deleted, Some(acknowledged))
                }
                None => (
                    self.conn
                        .script(&self.scripts.delete, &probe, &delete_args)
                        .await?,
                    None,
                ),
            };
            let applied = created == 1
                && loaded.as_deref() == Some(stored_string(first, b"probe").as_slice())
                && claimed.is_some_and(|(_, slot)| slot == 1)
                && replaced == 1
                && refilled == 1
                && deleted == 1;
            Ok::<(bool, Option<i64>), redis::RedisError>((applied, acknowledged))
        };
        let wanted = self
            .options
            .min_replicas
            .map_or(0, |min| i64::from(min.count));
        let checked = match tokio::time::timeout(self.options.connect_timeout, outcome).await {
            Ok(Ok((true, Some(acknowledged)))) if acknowledged < wanted => {
                Err(Error::store_unavailable(format!(
                    "redis: {acknowledged} of {wanted} replicas acknowledged the store's test \
                     write; check that the replicas are up and replicating"
                )))
            }
            Ok(Ok((true, _))) => Ok(()),
            Ok(Ok((false, _))) => Err(Error::store_unavailable(
                "redis: the server did not apply the store's test writes (GET and the \
                 compare-and-set scripts); pci-vault needs Redis 7 or a compatible server with Lua",
            )),
            Ok(Err(e)) => Err(errors::at_connect(&e, &self.options.redacted_urls())),
            Err(_) => Err(Error::store_unavailable(format!(
                "redis: no answer within the connect timeout of {:?}",
                self.options.connect_timeout
            ))),
        };
        checked?;
        // Watches subscribe, and unsubscribe when they end, on a connection of their own:
        // checked now too.
        self.subscriber.check(self, &Self::channel(&probe)).await
    }

    /// Runs a write script on `key`. With [`RedisOptions::min_replicas`] the script and
    /// its `WAIT` travel in one pipeline, and a write that too few replicas acknowledged
    /// answers `STORE_UNAVAILABLE`: it applied on the primary, and a failover before the
    /// replicas have it could undo it, so it does not count yet (repeating it is safe).
    async fn write<T: redis::FromRedisValue>(
        &self,
        what: &str,
        script: &Script,
        key: &str,
        args: &[Vec<u8>],
    ) -> Result<T> {
        let Some(min) = self.options.min_replicas else {
            return self.timed(what, self.conn.script(script, key, args)).await;
        };
        let (reply, acknowledged) = self
            .timed(what, self.conn.script_then_wait(script, key, args, min))
            .await?;
        if acknowledged < i64::from(min.count) {
            return Err(Error::store_unavailable(format!(
                "redis: {what} applied on the primary, but {acknowledged} of {} replicas \
                 acknowledged it within {:?}",
                min.count, min.timeout
            )));
        }
        Ok(reply)
    }

    /// Runs the replace script; when the server is full, once more as the script that may
    /// write there what does not grow the entry. The first run wrote nothing: a server at
    /// `maxmemory` refuses a script's first write, and the replace script writes once.
    async fn replace_script(&self, key: &str, args: &[Vec<u8>]) -> Result<i64> {
        match self
            .write("replace", &self.scripts.replace, key, args)
            .await
        {
            Err(Error::CapacityExceeded) => {
                self.write("replace", &self.scripts.replace_when_full, key, args)
                    .await
            }
            answer => answer,
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

/// The string stored for a new entry: version, no claims, value.
fn stored_string(version: Version, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(VERSION_LEN + 1 + value.len());
    out.extend_from_slice(&version.0.to_be_bytes());
    out.push(0);
    out.extend_from_slice(value);
    out
}

fn create_args(version: Version, value: &[u8], ttl_ms: u64) -> [Vec<u8>; 3] {
    [
        version.0.to_be_bytes().to_vec(),
        stored_string(version, value),
        ttl_ms.to_string().into_bytes(),
    ]
}

fn replace_args(expected: Version, version: Version, value: &[u8]) -> [Vec<u8>; 3] {
    [
        expected.0.to_be_bytes().to_vec(),
        version.0.to_be_bytes().to_vec(),
        value.to_vec(),
    ]
}

fn claim_args(claim: Claim, limit: u8, prefix: &[u8]) -> [Vec<u8>; 3] {
    let mut packed = Vec::with_capacity(CLAIM_LEN);
    packed.extend_from_slice(&claim.id.to_be_bytes());
    packed.extend_from_slice(&claim.at_millis.to_be_bytes());
    [
        packed,
        limit.min(MAX_CLAIMS).to_string().into_bytes(),
        prefix.to_vec(),
    ]
}

/// Splits a stored string into version, claims and value. Anything malformed is an
/// integrity error: the store is not trusted.
fn parse_stored(mut raw: Vec<u8>) -> Result<Versioned> {
    let header = |raw: &[u8]| -> Option<(Version, Vec<Claim>, usize)> {
        let version = u64::from_be_bytes(raw.get(..VERSION_LEN)?.try_into().ok()?);
        let count = usize::from(*raw.get(VERSION_LEN)?);
        let claims_end = VERSION_LEN + 1 + count * CLAIM_LEN;
        let claims = raw
            .get(VERSION_LEN + 1..claims_end)?
            .chunks_exact(CLAIM_LEN)
            .map(|c| {
                let (id, at) = c.split_at(8);
                Some(Claim {
                    id: u64::from_be_bytes(id.try_into().ok()?),
                    at_millis: i64::from_be_bytes(at.try_into().ok()?),
                })
            })
            .collect::<Option<Vec<Claim>>>()?;
        Some((Version(version), claims, claims_end))
    };
    let (version, claims, value_start) = header(&raw).ok_or(Error::IntegrityError)?;
    let value = raw.split_off(value_start);
    Ok(Versioned {
        value,
        version,
        claims,
    })
}

fn outcome(applied: i64, version: Version) -> CasOutcome {
    if applied == 1 {
        CasOutcome::Applied(version)
    } else {
        CasOutcome::Conflict
    }
}

#[async_trait]
impl EphemeralStore for RedisStore {
    async fn create(
        &self,
        key: &str,
        version: Version,
        value: &[u8],
        ttl: Duration,
    ) -> Result<CasOutcome> {
        check_args(key, value)?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let applied: i64 = self
            .write(
                "create",
                &self.scripts.create,
                &self.redis_key(key),
                &create_args(version, value, ttl_ms),
            )
            .await?;
        Ok(outcome(applied, version))
    }

    async fn load(&self, key: &str) -> Result<Option<Versioned>> {
        check_args(key, &[])?;
        let raw: Option<Vec<u8>> = self
            .timed("load", self.conn.get(&self.redis_key(key)))
            .await?;
        raw.map(parse_stored).transpose()
    }

    async fn replace(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
    ) -> Result<CasOutcome> {
        check_args(key, value)?;
        let applied = self
            .replace_script(
                &self.redis_key(key),
                &replace_args(expected, version, value),
            )
            .await?;
        Ok(outcome(applied, version))
    }

    async fn delete(&self, key: &str, expected: Version) -> Result<CasOutcome> {
        check_args(key, &[])?;
        let args = [expected.0.to_be_bytes().to_vec()];
        let deleted: i64 = self
            .write("delete", &self.scripts.delete, &self.redis_key(key), &args)
            .await?;
        Ok(outcome(deleted, expected))
    }

    async fn claim(
        &self,
        key: &str,
        claim: Claim,
        limit: u8,
        prefix: &[u8],
    ) -> Result<Option<Claimed>> {
        check_args(key, prefix)?;
        let reply: Option<(Vec<u8>, i64)> = self
            .write(
                "claim",
                &self.scripts.claim,
                &self.redis_key(key),
                &claim_args(claim, limit, prefix),
            )
            .await?;
        let Some((raw, slot)) = reply else {
            return Ok(None);
        };
        let entry = parse_stored(raw)?;
        let slot = u8::try_from(slot).ok().filter(|s| *s > 0);
        if slot
            .is_some_and(|s| entry.claims.get(usize::from(s) - 1).map(|c| c.id) != Some(claim.id))
        {
            return Err(Error::IntegrityError);
        }
        Ok(Some(Claimed { entry, slot }))
    }

    async fn release(&self, key: &str, id: u64) -> Result<bool> {
        check_args(key, &[])?;
        let released: i64 = self
            .write(
                "release",
                &self.scripts.release,
                &self.redis_key(key),
                &[id.to_be_bytes().to_vec()],
            )
            .await?;
        Ok(released == 1)
    }

    async fn replace_and_publish(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
        event: &[u8],
    ) -> Result<CasOutcome> {
        check_args(key, value)?;
        check_event(event)?;
        let redis_key = self.redis_key(key);
        let channel = Self::channel(&redis_key);
        let mut args = replace_args(expected, version, value).to_vec();
        if self.options.min_replicas.is_some() {
            // The write counts only once the replicas have it, so its event goes out only
            // then: published by the script, it could announce a write that a failover
            // undoes. Published after the `WAIT`, on every try that answers `Applied` (a
            // repeat too: a watch reports a change once). A publish that fails does not
            // fail the write, which is stored and acknowledged: a reveal would otherwise
            // destroy the form without handing it out. Watches learn the change from their
            // next read of the state instead.
            let applied = self.replace_script(&redis_key, &args).await?;
            if applied == 1
                && let Err(e) = self
                    .timed("publish", self.conn.publish(&channel, event))
                    .await
            {
                tracing::warn!(
                    error = %e,
                    "redis: a stored write's event was not published; watches learn it from \
                     their next read"
                );
            }
            return Ok(outcome(applied, version));
        }
        args.extend([channel.into_bytes(), event.to_vec()]);
        let applied = self.replace_script(&redis_key, &args).await?;
        Ok(outcome(applied, version))
    }

    async fn publish(&self, key: &str, event: &[u8]) -> Result<()> {
        check_args(key, &[])?;
        check_event(event)?;
        let channel = Self::channel(&self.redis_key(key));
        self.timed("publish", self.conn.publish(&channel, event))
            .await
    }

    async fn subscribe(&self, key: &str) -> Result<Box<dyn EventSubscription>> {
        check_args(key, &[])?;
        let channel = Self::channel(&self.redis_key(key));
        Ok(Box::new(self.subscribe_to(&channel).await?))
    }

    async fn ping(&self) -> Result<()> {
        self.timed("ping", self.conn.ping()).await
    }
}

fn check_event(event: &[u8]) -> Result<()> {
    if event.len() > MAX_EVENT_LEN {
        return Err(Error::InvalidArgument("an event is at most 1 KiB"));
    }
    Ok(())
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}
