//! The store's watches share one subscriber connection: many watches cost Redis one
//! connection, a channel is unsubscribed when its last watch ends, and a connection that is
//! killed or hangs is replaced without any watch missing a state change.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

use std::sync::Arc;
use std::time::{Duration, Instant};

use pci_vault::conformance::{test_keyring, visa_form};
use pci_vault::{SessionEventKind, SessionOptions, SessionWatch, Ticket, Vault};
use pci_vault_redis::{RedisOptions, RedisStore};
use pci_vault_testkit::proxy::FaultProxy;
use pci_vault_testkit::redis::RedisServer;

async fn vault_on(options: RedisOptions) -> Vault {
    let store = RedisStore::connect(options).await.unwrap();
    Vault::builder(Arc::new(store), Arc::new(test_keyring()))
        .build()
        .unwrap()
}

/// A redis-server of its own, an admin connection to it, and a vault on it.
async fn server_and_vault() -> (RedisServer, redis::aio::MultiplexedConnection, Vault) {
    let server = RedisServer::start(&[]);
    let admin = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let vault = vault_on(RedisOptions::new(server.url())).await;
    (server, admin, vault)
}

/// The next event of `watch`, within 5 s.
async fn next_kind(watch: &mut SessionWatch) -> SessionEventKind {
    tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("an event within 5 s")
        .expect("the watch goes on")
        .expect("no error")
        .kind
}

/// Client connections in pub/sub mode.
async fn subscriber_connections(mut admin: redis::aio::MultiplexedConnection) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .unwrap();
    list.lines().count()
}

async fn subscribed_channels(mut admin: redis::aio::MultiplexedConnection) -> usize {
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .query_async(&mut admin)
        .await
        .unwrap();
    channels.len()
}

/// Waits up to 5 s for `count` to reach `want`.
async fn until_count<F, Fut>(want: usize, mut count: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = usize>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = count().await;
    while last != want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        last = count().await;
    }
    assert_eq!(last, want);
}

async fn watched_sessions(vault: &Vault, n: usize) -> Vec<(Ticket, SessionWatch)> {
    let mut watched = Vec::new();
    for _ in 0..n {
        let ticket = vault
            .create_session(&SessionOptions::default())
            .await
            .unwrap();
        let mut watch = vault.watch(&ticket.id).await.unwrap();
        assert_eq!(next_kind(&mut watch).await, SessionEventKind::Created);
        watched.push((ticket, watch));
    }
    watched
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watches_share_one_connection_and_each_channel_ends_with_its_last_watch() {
    let (_server, admin, vault) = server_and_vault().await;
    let mut watched = watched_sessions(&vault, 40).await;
    assert_eq!(subscriber_connections(admin.clone()).await, 1);
    until_count(40, || subscribed_channels(admin.clone())).await;

    // A second watch of the same session shares the channel.
    let first = watched[0].0.id.clone();
    let mut again = vault.watch(&first).await.unwrap();
    assert_eq!(next_kind(&mut again).await, SessionEventKind::Created);
    assert_eq!(subscribed_channels(admin.clone()).await, 40);

    for (ticket, watch) in &mut watched {
        vault.submit(&ticket.id, &visa_form()).await.unwrap();
        assert_eq!(next_kind(watch).await, SessionEventKind::Submitted);
    }
    assert_eq!(next_kind(&mut again).await, SessionEventKind::Submitted);

    // The first session's channel stays while one of its two watches does.
    watched.truncate(1);
    until_count(1, || subscribed_channels(admin.clone())).await;
    drop(watched);
    vault.cancel(&first).await.unwrap();
    assert_eq!(next_kind(&mut again).await, SessionEventKind::Cancelled);
    drop(again);
    until_count(0, || subscribed_channels(admin.clone())).await;

    // A connection with no channel left is still the one the next watch uses.
    let mut later = watched_sessions(&vault, 1).await;
    assert_eq!(subscriber_connections(admin.clone()).await, 1);
    let (ticket, watch) = &mut later[0];
    vault.cancel(&ticket.id).await.unwrap();
    assert_eq!(next_kind(watch).await, SessionEventKind::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_subscriber_connection_is_replaced_and_no_watch_misses_a_change() {
    let (_server, admin, vault) = server_and_vault().await;
    let mut watched = watched_sessions(&vault, 10).await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin.clone())
        .await
        .unwrap();
    assert_eq!(killed, 1, "one connection carried every subscription");
    // Submitted while the watches may have no subscription: each learns it, from the
    // event or from the state it reads when it subscribes again.
    for (ticket, _) in &watched {
        vault.submit(&ticket.id, &visa_form()).await.unwrap();
    }
    for (_, watch) in &mut watched {
        assert_eq!(next_kind(watch).await, SessionEventKind::Submitted);
    }
    until_count(1, || subscriber_connections(admin.clone())).await;
    until_count(10, || subscribed_channels(admin.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_connection_that_hangs_is_not_used_again() {
    let server = RedisServer::start(&[]);
    let proxy = FaultProxy::start(server.addr());
    let options = RedisOptions::new(proxy.url())
        .with_timeout(Duration::from_millis(300))
        .with_connect_timeout(Duration::from_millis(1_000));
    let vault = vault_on(options).await;
    let mut watched = watched_sessions(&vault, 1).await;
    let late = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let other = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();

    // Nothing comes back: a new watch's SUBSCRIBE gets no answer within the connect
    // timeout on the connection in use, nor on the new one it tries next.
    let connections = proxy.connections();
    proxy.stall_replies(Duration::from_secs(30));
    assert!(vault.watch(&late.id).await.is_err());
    proxy.end_stall();
    assert!(
        proxy.connections() > connections,
        "a second connection was tried"
    );

    // Replies held for 1.5 s: the SUBSCRIBE on the connection in use times out after 1 s,
    // that connection is given up, and the SUBSCRIBE sent again on a new connection is
    // answered once the hold ends: the watch starts.
    let mut watch = vault.watch(&late.id).await.unwrap();
    assert_eq!(next_kind(&mut watch).await, SessionEventKind::Created);
    proxy.stall_replies(Duration::from_millis(1_500));
    let mut held = vault.watch(&other.id).await.unwrap();
    assert_eq!(next_kind(&mut held).await, SessionEventKind::Created);

    // The watches that were on given-up connections follow on the new one.
    let (ticket, first) = &mut watched[0];
    vault.submit(&ticket.id, &visa_form()).await.unwrap();
    assert_eq!(next_kind(first).await, SessionEventKind::Submitted);
    vault.submit(&late.id, &visa_form()).await.unwrap();
    assert_eq!(next_kind(&mut watch).await, SessionEventKind::Submitted);
    vault.submit(&other.id, &visa_form()).await.unwrap();
    assert_eq!(next_kind(&mut held).await, SessionEventKind::Submitted);
}
