//! The server settings that make a vault unsafe, read at connect where the ACL allows it.

use std::time::Duration;

use crate::connection::Connection;

/// One setting as read from every node: `(node, value)`, the node empty for a single node.
type Readings = Vec<(String, Option<String>)>;

/// Reads `save`, `appendonly` and `maxmemory-policy` from every node and returns one
/// sentence per unsafe setting, naming the cluster nodes that have it. A server that does
/// not let the user run `CONFIG GET` is reported at `info` level and yields no warning: the
/// deployer must then check the settings themselves.
pub(crate) async fn unsafe_settings(conn: &Connection, timeout: Duration) -> Vec<String> {
    let read = |name: &'static str| async move {
        match tokio::time::timeout(timeout, conn.config_get_each_node(name)).await {
            Ok(Ok(readings)) => readings,
            _ => Readings::new(),
        }
    };
    let save = read("save").await;
    let appendonly = read("appendonly").await;
    let policy = read("maxmemory-policy").await;
    if [&save, &appendonly, &policy]
        .iter()
        .all(|readings| readings.iter().all(|(_, value)| value.is_none()))
    {
        tracing::info!(
            target: "pci_vault_redis",
            "cannot read the Redis settings (CONFIG GET is not allowed or not answered); \
             check persistence and the eviction policy yourself (see the pci-vault-redis README)"
        );
        return Vec::new();
    }
    let mut warnings = Vec::new();
    if let Some((value, on)) = unsafe_on(&save, |v| !v.trim().is_empty()) {
        warnings.push(format!(
            "Redis persistence is on (save \"{value}\"){on}: sealed records are written to RDB \
             snapshots on disk and outlive their TTL there, and a restart loads the last \
             snapshot, bringing back sessions revealed since as unrevealed; set save \"\" for \
             the vault's Redis"
        ));
    }
    if let Some((_, on)) = unsafe_on(&appendonly, |v| v == "yes") {
        warnings.push(format!(
            "Redis persistence is on (appendonly yes){on}: sealed records are written to the \
             append-only file on disk, and a restart may load it without its last writes, \
             bringing back sessions revealed since as unrevealed; set appendonly no for the \
             vault's Redis"
        ));
    }
    if let Some((policy, on)) = unsafe_on(&policy, |v| v != "noeviction") {
        warnings.push(format!(
            "Redis maxmemory-policy is {policy}{on}: under memory pressure Redis silently evicts \
             sessions (a customer's submitted card disappears before the reveal); set \
             maxmemory-policy noeviction so a full server answers CAPACITY_EXCEEDED instead"
        ));
    }
    warnings
}

/// The first unsafe value and, for a cluster, " on NODE, NODE" naming every node that has an
/// unsafe value; `None` when no node does.
fn unsafe_on(readings: &Readings, is_unsafe: impl Fn(&str) -> bool) -> Option<(String, String)> {
    let bad: Vec<(&str, &str)> = readings
        .iter()
        .filter_map(|(node, value)| {
            value
                .as_deref()
                .filter(|v| is_unsafe(v))
                .map(|v| (node.as_str(), v))
        })
        .collect();
    let (_, first) = bad.first()?;
    let nodes: Vec<&str> = bad
        .iter()
        .map(|(node, _)| *node)
        .filter(|node| !node.is_empty())
        .collect();
    let on = if nodes.is_empty() {
        String::new()
    } else {
        format!(" on {}", nodes.join(", "))
    };
    Some(((*first).to_owned(), on))
}
