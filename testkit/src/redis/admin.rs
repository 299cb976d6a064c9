//! Commands a test runs as an administrator: memory limits, ACL users, every stored key.

use super::server::{RedisServer, command};

/// Sets `maxmemory` to `headroom` bytes above what the server uses now (`noeviction` is
/// already set): writes fail with `OOM` once that much more is stored.
pub async fn limit_memory(conn: &mut redis::aio::MultiplexedConnection, headroom: u64) {
    let used = used_memory(conn).await;
    let limit = (used + headroom).to_string();
    let _: () = run(conn, &["CONFIG", "SET", "maxmemory", &limit]).await;
}

/// `used_memory` from `INFO memory`.
pub async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = run(conn, &["INFO", "memory"]).await;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Runs a command on an admin connection and returns its reply.
pub async fn run<T: redis::FromRedisValue>(
    conn: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> T {
    command(args)
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

/// One key as Redis holds it: its name, type, encoding, remaining TTL, value (for a
/// string) and `DUMP` serialization.
#[derive(Debug)]
pub struct StoredKey {
    /// The key's name.
    pub name: Vec<u8>,
    /// Its type (`TYPE`): `string`, `hash`, ...
    pub kind: String,
    /// Its encoding (`OBJECT ENCODING`).
    pub encoding: String,
    /// Its remaining time to live in milliseconds (`PTTL`; -1 for none).
    pub pttl_ms: i64,
    /// Its value, for a string.
    pub value: Option<Vec<u8>>,
    /// Its `DUMP` serialization.
    pub dump: Vec<u8>,
}

/// Every key of the node `conn` is connected to, found with `SCAN`, with its value and encodings.
pub async fn scan_every_key(conn: &mut redis::aio::MultiplexedConnection) -> Vec<StoredKey> {
    let mut cursor: u64 = 0;
    let mut names: Vec<Vec<u8>> = Vec::new();
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        names.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    names.sort();
    names.dedup();
    let mut keys = Vec::new();
    for name in names {
        let kind: String = redis::cmd("TYPE")
            .arg(&name)
            .query_async(conn)
            .await
            .unwrap();
        if kind == "none" {
            continue; // expired between SCAN and now
        }
        let encoding: Option<String> = redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(&name)
            .query_async(conn)
            .await
            .unwrap();
        let pttl_ms: i64 = redis::cmd("PTTL")
            .arg(&name)
            .query_async(conn)
            .await
            .unwrap();
        let value: Option<Vec<u8>> = if kind == "string" {
            redis::cmd("GET")
                .arg(&name)
                .query_async(conn)
                .await
                .unwrap()
        } else {
            None
        };
        let dump: Option<Vec<u8>> = redis::cmd("DUMP")
            .arg(&name)
            .query_async(conn)
            .await
            .unwrap();
        keys.push(StoredKey {
            name,
            kind,
            encoding: encoding.unwrap_or_default(),
            pttl_ms,
            value,
            dump: dump.unwrap_or_default(),
        });
    }
    keys
}

/// Creates (or resets) ACL user `name` with password `password` and `rules`.
pub async fn acl_user(
    conn: &mut redis::aio::MultiplexedConnection,
    name: &str,
    password: &str,
    rules: &[String],
) {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER")
        .arg(name)
        .arg("reset")
        .arg("on")
        .arg(format!(">{password}"));
    for rule in rules {
        cmd.arg(rule);
    }
    let _: () = cmd
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("ACL SETUSER {name} {rules:?} failed: {e}"));
}

/// An admin connection as the default user, with its password.
pub async fn admin_with_password(
    server: &RedisServer,
    password: &str,
) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://:{password}@127.0.0.1:{}", server.port))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The ACL rules of the `user vault on ...` line of `readme` (the Redis backend's README
/// recommends them), without the user name, `on` and passwords: so the test grants the
/// documented rules, not a copy of them.
pub fn readme_acl_rules(readme: &str) -> Vec<String> {
    let line = readme
        .lines()
        .find(|l| l.starts_with("user vault on "))
        .expect("the README's recommended configuration has a `user vault on ...` line");
    let rules = line.split('#').next().unwrap_or_default();
    rules
        .split_whitespace()
        .skip(3) // user vault on
        .filter(|rule| !rule.starts_with('>'))
        .map(str::to_owned)
        .collect()
}
