//! Session events on Redis pub/sub.
//!
//! An entry's events go to the channel `{key_prefix}{<store key>}:events`: the Redis key
//! with a suffix, so it carries the entry's hash tag and is covered by an ACL channel rule
//! on the key prefix (`&pci-vault:*`). The replace script `PUBLISH`es its event after its
//! `SET`, inside the script, so the event goes out if, and only if, that write happens —
//! never on a conflict, never again on a repeated call. Redis runs the script atomically,
//! so subscribers get events in the order of the writes.
//!
//! The store's watches share one subscriber connection ([`crate::subscriber`]), opened
//! at connect: to the single node, to the primary the sentinels name, or
//! to the first cluster seed that answers. In a Redis Cluster, `PUBLISH` is broadcast over the
//! cluster bus to every node, so a subscriber on any node receives every event; the cost
//! is one cluster-bus message per node for each event, a handful per session. (Sharded
//! pub/sub, `SPUBLISH`, would keep an event within its slot's shard, but needs a
//! subscriber per shard that follows slot moves; the few events of a session do not need
//! it.) A lost connection ends its subscriptions; each watch subscribes again and reads
//! the state, so a restarted or failed-over server loses no state change, only the
//! informative events (`opened`, `reveal_failed`) published while it was away.

use async_trait::async_trait;
use pci_vault::{EventSubscription, Result};
use redis::Client;

use crate::RedisStore;
use crate::connection::{Connection, tls_certificates};
use crate::errors::{at_connect, during_operation};
use crate::subscriber::RedisSubscription;

#[async_trait]
impl EventSubscription for RedisSubscription {
    async fn next(&mut self) -> Option<Vec<u8>> {
        RedisSubscription::next(self).await
    }
}

impl RedisStore {
    /// The channel of the entry under the Redis key `redis_key`.
    pub(crate) fn channel(redis_key: &str) -> String {
        format!("{redis_key}:events")
    }

    /// The clients a subscriber may connect through, in the order to try them.
    pub(crate) async fn subscriber_clients(&self) -> Result<Vec<Client>> {
        let options = &self.options;
        let servers = options.redacted_urls();
        if let Connection::Sentinel(sentinel) = &self.conn {
            let client = sentinel
                .primary_client()
                .await
                .map_err(|e| during_operation("subscribe", &e))?;
            return Ok(vec![client]);
        }
        let certs = tls_certificates(options)?;
        options
            .urls
            .iter()
            .map(|url| {
                match &certs {
                    Some(certs) => Client::build_with_tls(url.as_str(), certs.clone()),
                    None => Client::open(url.as_str()),
                }
                .map_err(|e| at_connect(&e, &servers))
            })
            .collect()
    }

    /// Subscribes to `channel` on the store's subscriber connection
    /// ([`crate::subscriber`]). A refusal by the ACL is reported as at connect, naming the
    /// permission.
    pub(crate) async fn subscribe_to(&self, channel: &str) -> Result<RedisSubscription> {
        self.subscriber.subscribe(self, channel).await
    }
}
