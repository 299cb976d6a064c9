//! The fault proxy against a real redis-server, through redis-rs's multiplexed connection:
//! it forwards, loses a reply after the server applied the command, holds replies, delays
//! every round trip and drops connections.

#![cfg(test)]

use std::time::{Duration, Instant};

use pci_vault_testkit::proxy::FaultProxy;
use pci_vault_testkit::redis::RedisServer;
use redis::AsyncCommands as _;
use redis::aio::MultiplexedConnection;

/// A multiplexed connection through `proxy`, giving up on a reply after `timeout`.
async fn through(proxy: &FaultProxy, timeout: Duration) -> MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(timeout));
    redis::Client::open(proxy.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

#[tokio::test]
async fn forwards_both_ways_and_counts_replies() {
    let server = RedisServer::start(&[]);
    let proxy = FaultProxy::start(server.addr());
    let mut conn = through(&proxy, Duration::from_secs(5)).await;
    let before = proxy.replies();
    let _: () = conn.set("k", "v".repeat(100_000)).await.unwrap();
    let value: String = conn.get("k").await.unwrap();
    assert_eq!(value.len(), 100_000);
    assert_eq!(proxy.replies() - before, 2);
    assert_eq!(proxy.connections(), 1);
}

#[tokio::test]
async fn a_reset_reply_was_applied_but_never_seen() {
    let server = RedisServer::start(&[]);
    let proxy = FaultProxy::start(server.addr());
    let mut conn = through(&proxy, Duration::from_secs(5)).await;
    proxy.reset_on_reply(1);
    let lost: redis::RedisResult<()> = conn.set("applied", "yes").await;
    let err = lost.expect_err("the reply was lost");
    assert!(
        err.is_io_error() || err.is_connection_dropped(),
        "not a connection error: {err:?}"
    );
    assert_eq!(proxy.resets(), 1);
    // The server applied it: a fresh connection, direct or through the proxy, sees it.
    let direct: String = server.query(&["GET", "applied"]);
    assert_eq!(direct, "yes");
    let mut fresh = through(&proxy, Duration::from_secs(5)).await;
    let again: String = fresh.get("applied").await.unwrap();
    assert_eq!(again, "yes");
    assert_eq!(proxy.resets(), 1, "the reset fires once");
}

#[tokio::test]
async fn the_nth_reply_is_the_one_lost() {
    let server = RedisServer::start(&[]);
    let proxy = FaultProxy::start(server.addr());
    let mut conn = through(&proxy, Duration::from_secs(5)).await;
    proxy.reset_on_reply(3);
    let _: () = conn.set("a", 1).await.unwrap();
    let _: () = conn.set("b", 2).await.unwrap();
    let third: redis::RedisResult<()> = conn.set("c", 3).await;
    assert!(third.is_err());
    let c: i64 = server.query(&["GET", "c"]);
    assert_eq!(c, 3);
}

#[tokio::test]
async fn stalled_replies_time_out_and_the_command_still_applies() {
    let server = RedisServer::start(&[]);
    let proxy = FaultProxy::start(server.addr());
    let mut conn = through(&proxy, Duration::from_millis(200)).await;
    proxy.stall_replies(Duration::from_millis(800));
    let started = Instant::now();
    let timed_out: redis::RedisResult<()> = conn.set("late", "yes").await;
    let err = timed_out.expect_err("the reply is held past the timeout");
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(700));
    let direct: String = server.query(&["GET", "late"]);
    assert_eq!(direct, "yes", "the request reached the server at once");
    // Once the stall ends, the connection works again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut fresh = through(&proxy, Duration::from_secs(5)).await;
    let _: () = fresh.set("after", 1).await.unwrap();
}

#[tokio::test]
async fn a_stall_ended_early_releases_the_reply() {
    let server = RedisServer::start(&[]);
    let proxy = FaultProxy::start(server.addr());
    let mut conn = through(&proxy, Duration::from_secs(5)).await;
    proxy.stall_replies(Duration::from_secs(60));
    let release = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.end_stall();
    };
    let started = Instant::now();
    let (reply, ()) = tokio::join!(conn.set::<_, _, ()>("k", "v"), release);
    reply.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

/// The mean round trip of `n` `PING`s.
async fn mean_ping(conn: &mut MultiplexedConnection, n: u32) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        let _: String = redis::cmd("PING").query_async(conn).await.unwrap();
    }
    started.elapsed() / n
}

#[tokio::test]
async fn a_delay_lengthens_every_round_trip() {
    let server = RedisServer::start(&[]);
    let proxy = FaultProxy::start(server.addr());
    let mut conn = through(&proxy, Duration::from_secs(5)).await;
    proxy.set_delay(Duration::from_millis(5));
    let slow = mean_ping(&mut conn, 10).await;
    assert!(slow >= Duration::from_millis(10), "{slow:?}");
    proxy.set_delay(Duration::from_micros(250));
    let emulated = mean_ping(&mut conn, 200).await;
    assert!(
        emulated >= Duration::from_micros(500) && emulated < Duration::from_millis(5),
        "sub-millisecond delays are not rounded up to the timer's tick: {emulated:?}"
    );
    proxy.set_delay(Duration::ZERO);
    let plain = mean_ping(&mut conn, 200).await;
    assert!(plain < emulated, "{plain:?} vs {emulated:?}");
}

#[tokio::test]
async fn refused_connections_come_back_after_the_outage() {
    let server = RedisServer::start(&[]);
    let proxy = FaultProxy::start(server.addr());
    let mut conn = through(&proxy, Duration::from_secs(2)).await;
    let _: () = conn.set("k", 1).await.unwrap();
    proxy.refuse_connections(Duration::from_millis(600));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let dropped: redis::RedisResult<i64> = conn.get("k").await;
    assert!(dropped.is_err(), "the open connection was dropped");
    let refused = redis::Client::open(proxy.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await;
    assert!(refused.is_err(), "a new connection is refused meanwhile");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut back = through(&proxy, Duration::from_secs(5)).await;
    let k: i64 = back.get("k").await.unwrap();
    assert_eq!(k, 1);
}
