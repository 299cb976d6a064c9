//! Real `redis-server` processes for the tests, on free loopback ports: single nodes (plain,
//! TLS, mutual TLS), a Redis Cluster, a primary with a replica, and Redis Sentinel; and the
//! administrator's commands the tests run on them.
//!
//! Every server runs in a temporary directory of its own, with the arguments of
//! `testkit/redis-flags.json` (loopback, no persistence, `noeviction`), and stops when the
//! value that started it is dropped or the test binary ends.

mod admin;
mod cluster;
mod replication;
mod sentinel;
mod server;
mod tls;

pub use admin::{
    StoredKey, acl_user, admin_with_password, limit_memory, readme_acl_rules, run, scan_every_key,
    used_memory,
};
pub use cluster::RedisCluster;
pub use replication::PrimaryReplica;
pub use sentinel::{DOWN_AFTER, FAILOVER_TIMEOUT, RedisSentinels};
pub use server::{RedisServer, free_port, redis_server_binary, shared_flags};
pub use tls::TlsFiles;
