//! Redis Sentinel on loopback: one primary, one replica and three sentinels.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::server::RedisServer;

/// How long the sentinels wait before they call an unresponsive primary down
/// (`down-after-milliseconds`).
pub const DOWN_AFTER: Duration = Duration::from_millis(1000);

/// `failover-timeout`: how long a failover may take before the sentinels give up on it,
/// and (twice it) how soon they may fail the same primary over again.
pub const FAILOVER_TIMEOUT: Duration = Duration::from_millis(3000);

/// How long [`RedisSentinels`] waits for the sentinels to agree on something.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A primary, its replica and three sentinels that monitor it under
/// [`MASTER_NAME`](Self::MASTER_NAME) with a quorum of two, a short
/// [`DOWN_AFTER`] and [`FAILOVER_TIMEOUT`]. Everything is stopped on drop.
///
/// The `primary` and `replica` fields name the nodes' roles at start; after a failover
/// [`current_primary`](Self::current_primary) says which is which.
#[derive(Debug)]
pub struct RedisSentinels {
    /// The data node that is the primary at start.
    pub primary: RedisServer,
    /// The data node that replicates it at start.
    pub replica: RedisServer,
    /// The three sentinels.
    pub sentinels: Vec<RedisServer>,
}

/// The fields of a `SENTINEL MASTER` or `SENTINEL REPLICAS` entry.
type Fields = HashMap<String, String>;

impl RedisSentinels {
    /// The name the sentinels monitor the primary under.
    pub const MASTER_NAME: &'static str = "pci-vault";

    /// Starts the data nodes (each with `extra` arguments) and the sentinels, and waits
    /// until the replica is in sync and every sentinel knows the replica and the two other
    /// sentinels, so that a failover (forced or after the primary fails) can start at once.
    pub fn start(extra: &[&str]) -> Self {
        let primary = RedisServer::start(extra);
        let replica = RedisServer::start_replica_of(&primary, extra);
        replica.wait_in_sync(&primary);
        let config = format!(
            "sentinel monitor {name} 127.0.0.1 {port} 2\n\
             sentinel down-after-milliseconds {name} {down}\n\
             sentinel failover-timeout {name} {failover}\n\
             sentinel parallel-syncs {name} 1\n",
            name = Self::MASTER_NAME,
            port = primary.port,
            down = DOWN_AFTER.as_millis(),
            failover = FAILOVER_TIMEOUT.as_millis(),
        );
        let sentinels = (0..3)
            .map(|_| RedisServer::start_sentinel(&config))
            .collect();
        let setup = RedisSentinels {
            primary,
            replica,
            sentinels,
        };
        setup.wait_until(
            "every sentinel knows the replica and the other sentinels",
            |s| {
                s.sentinels.iter().all(|sentinel| {
                    let master = master_fields(sentinel);
                    field(&master, "num-slaves") == "1"
                        && field(&master, "num-other-sentinels") == "2"
                }) && s.replica_known_by(&s.sentinels[0], s.replica.port)
            },
        );
        setup
    }

    /// The sentinels' URLs (`redis://127.0.0.1:PORT`), to find the primary through.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisServer::url).collect()
    }

    /// The port of the primary `sentinel` reports (`SENTINEL GET-MASTER-ADDR-BY-NAME`).
    pub fn primary_port_by(&self, sentinel: &RedisServer) -> u16 {
        let (_host, port): (String, u16) =
            sentinel.query(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::MASTER_NAME]);
        port
    }

    /// The data node the first sentinel reports as the primary.
    pub fn current_primary(&self) -> &RedisServer {
        let port = self.primary_port_by(&self.sentinels[0]);
        self.node(port)
    }

    /// The data node that is not [`current_primary`](Self::current_primary).
    pub fn current_replica(&self) -> &RedisServer {
        let primary = self.current_primary().port;
        if self.primary.port == primary {
            &self.replica
        } else {
            &self.primary
        }
    }

    /// The data node on `port`.
    pub fn node(&self, port: u16) -> &RedisServer {
        [&self.primary, &self.replica]
            .into_iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no data node on port {port}"))
    }

    /// Forces a failover (`SENTINEL FAILOVER`, on the first sentinel), waits until every
    /// sentinel reports the other data node as the primary and that node answers `ROLE`
    /// as a primary, and returns it. The old primary, if it runs, is turned into its
    /// replica by the sentinels (see [`wait_replica_follows`](Self::wait_replica_follows)).
    pub fn failover(&self) -> &RedisServer {
        let old = self.current_primary().port;
        let new = self.current_replica().port;
        self.wait_until("the first sentinel knows the replica in sync", |s| {
            s.replica_known_by(&s.sentinels[0], new)
        });
        let _: () = self.sentinels[0].query(&["SENTINEL", "FAILOVER", Self::MASTER_NAME]);
        self.wait_for_primary(new);
        assert_ne!(old, new);
        self.node(new)
    }

    /// Waits until every sentinel reports the data node on `port` as the primary and that
    /// node answers `ROLE` as a primary: after [`failover`](Self::failover), or after the
    /// test stopped, killed or froze the primary (which takes [`DOWN_AFTER`] and an
    /// election).
    pub fn wait_for_primary(&self, port: u16) {
        self.wait_until("the sentinels report the new primary", |s| {
            s.sentinels
                .iter()
                .all(|sentinel| s.primary_port_by(sentinel) == port)
                && s.node(port).role() == "master"
        });
    }

    /// Waits until the current replica replicates the current primary with its link up,
    /// e.g. until the sentinels have turned the old primary into a replica after a
    /// failover.
    pub fn wait_replica_follows(&self) {
        self.wait_until("the replica follows the new primary", |s| {
            let info: String = s.current_replica().query(&["INFO", "replication"]);
            let port = s.current_primary().port.to_string();
            info.contains("role:slave")
                && info.contains(&format!("master_port:{port}"))
                && info.contains("master_link_status:up")
        });
    }

    /// Whether `sentinel` lists the replica on `port` as a healthy replica with its link
    /// to the primary up.
    fn replica_known_by(&self, sentinel: &RedisServer, port: u16) -> bool {
        let replicas: Vec<Fields> = sentinel.query(&["SENTINEL", "REPLICAS", Self::MASTER_NAME]);
        let port = port.to_string();
        replicas.iter().any(|r| {
            field(r, "port") == port
                && field(r, "flags") == "slave"
                && field(r, "master-link-status") == "ok"
        })
    }

    fn wait_until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting until {what}; sentinel log:\n{}",
                self.sentinels[0].log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn master_fields(sentinel: &RedisServer) -> Fields {
    sentinel.query(&["SENTINEL", "MASTER", RedisSentinels::MASTER_NAME])
}

fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields.get(name).map_or("", String::as_str)
}
