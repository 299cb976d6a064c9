//! The whole conformance suite against a real redis-server (one per test, on a free
//! loopback port).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pci_vault::conformance::Harness;
use pci_vault::{Clock, EphemeralStore, SystemClock};
use pci_vault_redis::{RedisOptions, RedisStore};
use support::RedisServer;

/// A single redis-server; time passes for real (Redis expires keys by its own clock).
struct SingleNode {
    store: Arc<RedisStore>,
    _server: RedisServer,
}

impl SingleNode {
    async fn start() -> Self {
        let server = RedisServer::start(&[]);
        let store = RedisStore::connect(RedisOptions::new(server.url()))
            .await
            .unwrap();
        SingleNode {
            store: Arc::new(store),
            _server: server,
        }
    }
}

#[async_trait]
impl Harness for SingleNode {
    fn store(&self) -> Arc<dyn EphemeralStore> {
        self.store.clone()
    }

    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }

    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }

    async fn unreachable_store(&self) -> Option<Arc<dyn EphemeralStore>> {
        // A server that is started, connected to, then stopped: every call must fail fast.
        let mut server = RedisServer::start(&[]);
        let options = RedisOptions {
            timeout: Duration::from_millis(500),
            ..RedisOptions::new(server.url())
        };
        let store = RedisStore::connect(options).await.unwrap();
        server.kill();
        Some(Arc::new(store))
    }
}

mod single_node {
    use super::SingleNode;
    pci_vault::conformance_tests!(SingleNode::start().await);
}
