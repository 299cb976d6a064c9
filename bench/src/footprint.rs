//! Bytes per stored session: fills a store with submitted sessions of the default form and
//! reports what the store holds per session.

use std::sync::Arc;
use std::time::Duration;

use pci_vault::{FormInput, Keyring, SessionOptions, SystemClock, Vault};
use pci_vault_memory::{MemoryLimits, MemoryStore};
use pci_vault_redis::{RedisOptions, RedisStore};
use serde_json::json;

use crate::probes::peak_rss;

fn form() -> FormInput {
    FormInput::new()
        .with("card_number", "4242424242424242")
        .with("expiry", "12/34")
        .with("cvc", "123")
        .with("cardholder_name", "Ada Lovelace")
}

async fn fill(vault: &Vault, sessions: usize) -> Result<(), String> {
    let options = SessionOptions::default().with_ttl(Duration::from_secs(600));
    let input = form();
    for _ in 0..sessions {
        let t = vault
            .create_session(&options)
            .await
            .map_err(|e| e.to_string())?;
        vault
            .submit(&t.id, &input)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The memory store: bytes it counts per session, and this process's RSS growth per session.
pub(crate) async fn memory(sessions: usize) -> Result<String, String> {
    let store = Arc::new(MemoryStore::with_clock(
        MemoryLimits::default()
            .with_max_entries(50_000_000)
            .with_max_bytes(16 << 30),
        Arc::new(SystemClock),
    ));
    let vault = Vault::builder(store.clone(), Arc::new(Keyring::ephemeral()))
        .build()
        .map_err(|e| e.to_string())?;
    let before = rss();
    fill(&vault, sessions).await?;
    let after = rss();
    let (entries, bytes) = store.usage();
    let record_bytes: usize = store.raw_entries().iter().map(|(_, v)| v.len()).sum();
    Ok(json!({
        "store": "memory",
        "sessions": entries,
        "record_bytes_per_session": record_bytes as f64 / entries.max(1) as f64,
        "counted_bytes_per_session": bytes as f64 / entries.max(1) as f64,
        "rss_bytes_per_session": after.saturating_sub(before) as f64 / sessions.max(1) as f64,
        "peak_rss_bytes": peak_rss("self"),
    })
    .to_string())
}

/// Redis: `used_memory` growth per session, and `MEMORY USAGE` of one key.
pub(crate) async fn redis(url: &str, sessions: usize) -> Result<String, String> {
    let prefix = format!("pci-vault-footprint-{}:", std::process::id());
    let options = RedisOptions::new(url).with_key_prefix(prefix.clone());
    let store = RedisStore::connect(options)
        .await
        .map_err(|e| e.to_string())?;
    let vault = Vault::builder(Arc::new(store), Arc::new(Keyring::ephemeral()))
        .build()
        .map_err(|e| e.to_string())?;
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let used = |text: String| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let before: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut con)
        .await
        .map_err(|e| e.to_string())?;
    fill(&vault, sessions).await?;
    let after: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut con)
        .await
        .map_err(|e| e.to_string())?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut con)
        .await
        .map_err(|e| e.to_string())?;
    let one: Option<u64> = match keys.first() {
        Some(k) => redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(k)
            .query_async(&mut con)
            .await
            .map_err(|e| e.to_string())?,
        None => None,
    };
    let value_len: Option<u64> = match keys.first() {
        Some(k) => redis::cmd("STRLEN")
            .arg(k)
            .query_async(&mut con)
            .await
            .map_err(|e| e.to_string())?,
        None => None,
    };
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut con)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(json!({
        "store": "redis",
        "sessions": keys.len(),
        "used_memory_bytes_per_session": used(after).saturating_sub(used(before)) as f64 / sessions.max(1) as f64,
        "memory_usage_of_one_key": one,
        "value_bytes": value_len,
    })
    .to_string())
}
