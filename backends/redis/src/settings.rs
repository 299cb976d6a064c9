//! The server settings that make a vault unsafe, read at connect where the ACL allows it.

use std::time::Duration;

use crate::connection::Connection;

/// Reads `save`, `appendonly` and `maxmemory-policy` and returns one sentence per unsafe
/// setting. A server that does not let the user run `CONFIG GET` is reported at `info`
/// level and yields no warning: the deployer must then check the settings themselves.
pub(crate) async fn unsafe_settings(conn: &Connection, timeout: Duration) -> Vec<String> {
    let mut warnings = Vec::new();
    let read = |name: &'static str| async move {
        match tokio::time::timeout(timeout, conn.config_get(name)).await {
            Ok(Ok(pair)) => pair.get(1).cloned(),
            _ => None,
        }
    };
    let (save, appendonly, policy) = (
        read("save").await,
        read("appendonly").await,
        read("maxmemory-policy").await,
    );
    if save.is_none() && appendonly.is_none() && policy.is_none() {
        tracing::info!(
            target: "pci_vault_redis",
            "cannot read the Redis settings (CONFIG GET is not allowed or not answered); \
             check persistence and the eviction policy yourself (see the pci-vault-redis README)"
        );
        return warnings;
    }
    if let Some(save) = save.filter(|s| !s.trim().is_empty()) {
        warnings.push(format!(
            "Redis persistence is on (save \"{save}\"): sealed records are written to RDB \
             snapshots on disk and outlive their TTL there; set save \"\" for the vault's Redis"
        ));
    }
    if appendonly.as_deref() == Some("yes") {
        warnings.push(
            "Redis persistence is on (appendonly yes): sealed records are written to the \
             append-only file on disk; set appendonly no for the vault's Redis"
                .to_owned(),
        );
    }
    if let Some(policy) = policy.filter(|p| p != "noeviction") {
        warnings.push(format!(
            "Redis maxmemory-policy is {policy}: under memory pressure Redis silently evicts \
             sessions (a customer's submitted card disappears before the reveal); set \
             maxmemory-policy noeviction so a full server answers CAPACITY_EXCEEDED instead"
        ));
    }
    warnings
}
