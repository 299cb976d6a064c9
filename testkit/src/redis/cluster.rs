//! A Redis Cluster of real `redis-server` nodes on loopback.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::server::{RedisServer, free_port, program};

/// A Redis Cluster of real `redis-server` nodes on loopback, each with its own directory
/// and ports, stopped with its nodes.
#[derive(Debug)]
pub struct RedisCluster {
    /// The nodes, masters only.
    pub nodes: Vec<RedisServer>,
}

fn cluster_node(extra: &[&str]) -> RedisServer {
    let bus_port = free_port().to_string();
    let mut args = vec![
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-port",
        bus_port.as_str(),
        "--cluster-node-timeout",
        "5000",
    ];
    args.extend_from_slice(extra);
    RedisServer::start(&args)
}

impl RedisCluster {
    /// Three masters (no replicas), formed with `redis-cli --cluster create`; node `i` gets
    /// the extra arguments `extra[i]`, if any.
    pub fn start(extra: &[&[&str]]) -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|i| cluster_node(extra.get(i).copied().unwrap_or_default()))
            .collect();
        let output = Command::new(program("redis-cli", "redis-tools"))
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_ok();
        cluster
    }

    /// One master holding every slot: the cheapest real cluster, for tests that need one
    /// of their own (e.g. to stop it).
    pub fn single_node(extra: &[&str]) -> Self {
        let node = cluster_node(extra);
        let _: () = node.query(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
        let cluster = RedisCluster { nodes: vec![node] };
        cluster.wait_ok();
        cluster
    }

    /// A 3-master cluster shared by every test of the calling test binary. Its nodes stop
    /// when the test binary ends (see [`RedisServer`]).
    pub fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| RedisCluster::start(&[]))
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &self.nodes {
            loop {
                let info: String = node.query(&["CLUSTER", "INFO"]);
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not form: {info}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Every node's URL, to use as seeds.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}
