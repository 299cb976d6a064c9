//! The whole conformance suite against real redis-server processes: a single node and a
//! TLS node (one per test, on a free loopback port), and a 3-master Redis Cluster shared by
//! every test of this binary (forming a cluster takes seconds; each test connects its own
//! cluster client and uses its own random keys).

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pci_vault::conformance::Harness;
use pci_vault::{Clock, EphemeralStore, SystemClock};
use pci_vault_redis::{RedisOptions, RedisStore};
use pci_vault_testkit::redis::{self as testkit, RedisCluster, RedisServer, TlsFiles};
use pci_vault_testkit::vaults::{round_trip, vault_on};

/// The backend's README, whose recommended ACL rules the tests grant.
const README: &str = include_str!("../README.md");

/// Which kind of deployment a harness runs against.
enum Deployment {
    Single,
    Tls(Box<TlsFiles>),
    Cluster,
}

/// A store on real Redis; time passes for real (Redis expires keys by its own clock).
struct RedisHarness {
    store: Arc<RedisStore>,
    deployment: Deployment,
    /// The servers this harness started (the shared cluster lives on its own).
    servers: Mutex<Vec<RedisServer>>,
}

impl RedisHarness {
    async fn single() -> Self {
        let server = RedisServer::start(&[]);
        let store = RedisStore::connect(RedisOptions::new(server.url()))
            .await
            .unwrap();
        Self::new(store, Deployment::Single, vec![server])
    }

    async fn tls() -> Self {
        let certs = TlsFiles::generate();
        let server = RedisServer::start_tls(&certs, false, &[]);
        let store = RedisStore::connect(tls_options(&server, &certs))
            .await
            .unwrap();
        Self::new(store, Deployment::Tls(Box::new(certs)), vec![server])
    }

    async fn cluster() -> Self {
        let cluster = RedisCluster::shared();
        let store = RedisStore::connect(RedisOptions::cluster(cluster.urls()))
            .await
            .unwrap();
        assert!(store.server_warnings().is_empty());
        Self::new(store, Deployment::Cluster, Vec::new())
    }

    fn new(store: RedisStore, deployment: Deployment, servers: Vec<RedisServer>) -> Self {
        RedisHarness {
            store: Arc::new(store),
            deployment,
            servers: Mutex::new(servers),
        }
    }

    /// A fresh server of the same kind as this harness's, and options to reach it.
    fn another_server(&self) -> (RedisServer, RedisOptions) {
        match &self.deployment {
            Deployment::Tls(certs) => {
                let server = RedisServer::start_tls(certs, false, &[]);
                let options = tls_options(&server, certs);
                (server, options)
            }
            Deployment::Single | Deployment::Cluster => {
                let server = RedisServer::start(&[]);
                let options = RedisOptions::new(server.url());
                (server, options)
            }
        }
    }
}

fn tls_options(server: &RedisServer, certs: &TlsFiles) -> RedisOptions {
    RedisOptions::new(server.url()).with_ca_file(certs.ca.clone())
}

#[async_trait]
impl Harness for RedisHarness {
    fn store(&self) -> Arc<dyn EphemeralStore> {
        self.store.clone()
    }

    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }

    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }

    /// A node whose `maxmemory` (with `noeviction`) is set, once connected, to 64 KiB
    /// above what it uses: a few dozen sessions fill it.
    async fn bounded_store(&self) -> Option<Arc<dyn EphemeralStore>> {
        if matches!(self.deployment, Deployment::Cluster) {
            return None; // the single node and tests/faults.rs cover CAPACITY_EXCEEDED
        }
        let (server, options) = self.another_server();
        let store = RedisStore::connect(options).await.unwrap();
        testkit::limit_memory(&mut server.admin().await, 64 * 1024).await;
        self.servers.lock().unwrap().push(server);
        Some(Arc::new(store))
    }

    /// A server that is started, connected to, then killed: every call must fail fast.
    async fn unreachable_store(&self) -> Option<Arc<dyn EphemeralStore>> {
        let timeout = Duration::from_millis(500);
        if matches!(self.deployment, Deployment::Cluster) {
            let mut cluster = RedisCluster::single_node(&[]);
            let options = RedisOptions::cluster(cluster.urls()).with_timeout(timeout);
            let store = RedisStore::connect(options).await.unwrap();
            cluster.nodes[0].kill();
            return Some(Arc::new(store));
        }
        let (mut server, options) = self.another_server();
        let store = RedisStore::connect(options.with_timeout(timeout))
            .await
            .unwrap();
        server.kill();
        Some(Arc::new(store))
    }
}

mod single_node {
    use super::RedisHarness;
    pci_vault::conformance_tests!(RedisHarness::single().await);
}

mod tls_node {
    use super::RedisHarness;
    pci_vault::conformance_tests!(RedisHarness::tls().await);
}

mod cluster {
    use super::RedisHarness;
    pci_vault::conformance_tests!(RedisHarness::cluster().await);
}

/// Sessions of one vault land on every master of the cluster (the hash tag keeps each
/// session in one slot, not all sessions in one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_spreads_sessions_over_every_master() {
    let cluster = RedisCluster::shared();
    let store =
        RedisStore::connect(RedisOptions::cluster(cluster.urls()).with_key_prefix("spread-test:"))
            .await
            .unwrap();
    let vault = vault_on(store);
    for _ in 0..30 {
        vault
            .create_session(&pci_vault::SessionOptions::default())
            .await
            .unwrap();
    }
    for node in &cluster.nodes {
        let mut admin = node.admin().await;
        let keys: Vec<String> = testkit::run(&mut admin, &["KEYS", "spread-test:*"]).await;
        assert!(!keys.is_empty(), "no session on node {}", node.port);
    }
}

/// The README's ACL rules plus `+cluster|slots` run the store on a cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_runs_with_the_readme_acl_user() {
    let cluster = RedisCluster::shared();
    let mut rules = testkit::readme_acl_rules(README);
    rules.push("+cluster|slots".into());
    for node in &cluster.nodes {
        testkit::acl_user(&mut node.admin().await, "vault", "pw-cluster-1", &rules).await;
    }
    let urls = cluster
        .nodes
        .iter()
        .map(|n| format!("redis://vault:pw-cluster-1@127.0.0.1:{}", n.port));
    let store = RedisStore::connect(RedisOptions::cluster(urls))
        .await
        .unwrap();
    round_trip(&vault_on(store)).await;
}
