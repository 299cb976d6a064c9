//! The launcher's topologies and controls against real processes: a node stopped, killed,
//! frozen and restarted; a replica promoted; a Sentinel failover; the shared flags applied.

#![cfg(test)]

use std::time::{Duration, Instant};

use pci_vault_testkit::redis::{
    PrimaryReplica, RedisCluster, RedisSentinels, RedisServer, TlsFiles,
};

#[test]
fn every_server_runs_with_the_shared_flags() {
    let server = RedisServer::start(&[]);
    let config: Vec<String> = server.query(&["CONFIG", "GET", "save"]);
    assert_eq!(config, ["save", ""]);
    let config: Vec<String> = server.query(&["CONFIG", "GET", "appendonly"]);
    assert_eq!(config, ["appendonly", "no"]);
    let config: Vec<String> = server.query(&["CONFIG", "GET", "maxmemory-policy"]);
    assert_eq!(config, ["maxmemory-policy", "noeviction"]);
    assert!(server.dir.is_dir());
}

#[test]
fn a_dropped_server_is_gone_with_its_directory() {
    let server = RedisServer::start(&[]);
    let (addr, dir) = (server.addr(), server.dir.clone());
    drop(server);
    assert!(std::net::TcpStream::connect(addr).is_err());
    assert!(!dir.exists());
}

#[test]
fn stop_kill_freeze_thaw_restart() {
    let mut server = RedisServer::start(&[]);
    server.freeze();
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::io::Write::write_all(&mut stream, b"PING\r\n").unwrap();
    let mut buf = [0; 16];
    assert!(
        std::io::Read::read(&mut stream, &mut buf).is_err(),
        "a frozen server answers nothing"
    );
    server.thaw();
    assert_eq!(server.query::<String>(&["PING"]), "PONG");

    server.stop();
    assert!(server.pid.is_none());
    assert!(std::net::TcpStream::connect(server.addr()).is_err());
    server.restart();
    assert_eq!(server.query::<String>(&["PING"]), "PONG");

    server.kill();
    assert!(std::net::TcpStream::connect(server.addr()).is_err());
    server.restart();
    assert_eq!(server.query::<String>(&["PING"]), "PONG");

    // A frozen server can be stopped too.
    server.freeze();
    server.stop();
}

#[test]
fn a_promoted_replica_keeps_what_it_received() {
    let pair = PrimaryReplica::start(&[]);
    assert_eq!(pair.primary.role(), "master");
    assert_eq!(pair.replica.role(), "slave");
    let _: () = pair.primary.query(&["SET", "replicated", "yes"]);
    pair.replica.wait_in_sync(&pair.primary);
    // Freeze the replica: what the primary writes now does not reach it.
    let mut pair = pair;
    pair.replica.freeze();
    let _: () = pair.primary.query(&["SET", "lost", "yes"]);
    pair.replica.thaw();
    pair.primary.kill();
    pair.promote_replica();
    assert_eq!(pair.replica.role(), "master");
    assert_eq!(pair.replica.query::<String>(&["GET", "replicated"]), "yes");
    let _: () = pair.replica.query(&["SET", "after", "promotion"]);
}

#[test]
fn a_stopped_replica_resynchronises_on_restart() {
    let mut pair = PrimaryReplica::start(&[]);
    pair.replica.stop();
    let _: () = pair.primary.query(&["SET", "while-down", "1"]);
    pair.replica.restart();
    pair.replica.wait_in_sync(&pair.primary);
    assert_eq!(pair.replica.query::<String>(&["GET", "while-down"]), "1");
}

#[test]
fn sentinel_failover_moves_the_primary() {
    let setup = RedisSentinels::start(&[]);
    assert_eq!(setup.current_primary().port, setup.primary.port);
    assert_eq!(setup.sentinel_urls().len(), 3);
    let _: () = setup.primary.query(&["SET", "before", "failover"]);
    setup.replica.wait_in_sync(&setup.primary);
    let started = Instant::now();
    let new = setup.failover();
    assert_eq!(new.port, setup.replica.port);
    assert_eq!(setup.current_primary().port, setup.replica.port);
    assert_eq!(new.query::<String>(&["GET", "before"]), "failover");
    setup.wait_replica_follows();
    assert_eq!(setup.primary.role(), "slave");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn sentinels_fail_over_a_killed_primary() {
    let mut setup = RedisSentinels::start(&[]);
    let replica = setup.replica.port;
    setup.primary.kill();
    setup.wait_for_primary(replica);
    assert_eq!(setup.replica.role(), "master");
}

#[test]
fn cluster_and_tls_nodes_start() {
    let cluster = RedisCluster::single_node(&[]);
    let info: String = cluster.nodes[0].query(&["CLUSTER", "INFO"]);
    assert!(info.contains("cluster_state:ok"));
    let certs = TlsFiles::generate();
    let tls = RedisServer::start_tls(&certs, true, &[]);
    assert!(tls.url().starts_with("rediss://"));
    assert_eq!(tls.query::<String>(&["PING"]), "PONG");
}
