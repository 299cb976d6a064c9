//! A primary with one replica, for tests of what a failover keeps and loses.

use super::server::RedisServer;

/// A primary and one replica of it (`--replicaof`), on loopback. Replication is
/// asynchronous, as Redis's always is: a write the primary acknowledged may not have
/// reached the replica yet; [`RedisServer::wait_in_sync`] and `WAIT` tell when it has.
#[derive(Debug)]
pub struct PrimaryReplica {
    /// The node that is the primary at start.
    pub primary: RedisServer,
    /// The node that replicates it at start.
    pub replica: RedisServer,
}

impl PrimaryReplica {
    /// Starts both nodes (each with `extra` arguments) and waits until the replica has
    /// finished its first synchronisation.
    pub fn start(extra: &[&str]) -> Self {
        let primary = RedisServer::start(extra);
        let replica = RedisServer::start_replica_of(&primary, extra);
        replica.wait_in_sync(&primary);
        PrimaryReplica { primary, replica }
    }

    /// Promotes the replica (`REPLICAOF NO ONE`), as an operator's manual failover would.
    /// The old primary keeps running as a primary of its own unless the test stops it or
    /// makes it a replica ([`RedisServer::replicate`]).
    pub fn promote_replica(&self) {
        self.replica.promote();
    }
}
