//! Replication and failover on real `redis-server` processes: a primary with a replica
//! that is promoted after a reveal, with and without `min_replicas`, a stopped replica, and
//! a Sentinel failover. Each test documents what a failover keeps and what it can lose.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

use std::time::{Duration, Instant};

use pci_vault::conformance::visa_form;
use pci_vault::store::{CasOutcome, Claim, EphemeralStore, Version};
use pci_vault::{ErrorCode, ExposeSecret, SessionOptions, Vault};
use pci_vault_redis::{MinReplicas, RedisOptions, RedisStore};
use pci_vault_testkit::redis::{PrimaryReplica, RedisSentinels, RedisServer, run};
use pci_vault_testkit::vaults::{round_trip, vault_on};

/// The operation timeout of these tests' stores.
const TIMEOUT: Duration = Duration::from_millis(800);

/// How long a write waits for its replica.
const WAIT: Duration = Duration::from_millis(300);

/// A primary and one replica of it, replicating before this returns.
async fn replicated() -> PrimaryReplica {
    tokio::task::block_in_place(|| PrimaryReplica::start(&[]))
}

/// Waits until `replica` is connected to `primary` and has synchronized.
fn wait_for_link(replica: &RedisServer, primary: &RedisServer) {
    tokio::task::block_in_place(|| replica.wait_in_sync(primary));
}

async fn vault(url: String, min_replicas: Option<MinReplicas>) -> Vault {
    let mut options = RedisOptions::new(url).with_timeout(TIMEOUT);
    options.min_replicas = min_replicas;
    vault_on(RedisStore::connect(options).await.unwrap())
}

fn one_replica() -> MinReplicas {
    MinReplicas::new(1, WAIT)
}

/// A store on `primary` whose writes wait for one replica.
async fn waiting_store(primary: &RedisServer) -> RedisStore {
    let options = RedisOptions::new(primary.url())
        .with_timeout(TIMEOUT)
        .with_min_replicas(one_replica());
    RedisStore::connect(options).await.unwrap()
}

fn assert_card(form: &pci_vault::RevealedForm) {
    assert_eq!(
        form.get("card_number").unwrap().expose_secret(),
        "4242424242424242"
    );
}

/// With `min_replicas = 1` a reveal counts only once the replica has its tombstone, so
/// the promoted replica answers `ALREADY_REVEALED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_replica_keeps_the_reveal_with_min_replicas() {
    let servers = replicated().await;
    let on_primary = vault(servers.primary.url(), Some(one_replica())).await;
    let ticket = on_primary
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = on_primary.submit(&ticket.id, &visa_form()).await.unwrap();
    assert_card(&on_primary.reveal(&ticket.id, &receipt.pin).await.unwrap());

    servers.replica.promote();
    let on_promoted = vault(servers.replica.url(), None).await;
    let again = on_promoted.reveal(&ticket.id, &receipt.pin).await;
    assert_eq!(
        again.unwrap_err().code(),
        ErrorCode::AlreadyRevealed,
        "the promoted replica lost the reveal"
    );
    // The promoted replica serves new sessions.
    round_trip(&on_promoted).await;
}

/// Without `min_replicas` a write counts once the primary has it. A replica that has not
/// applied the reveal's tombstone when it is promoted brings the submitted form back: it
/// can be revealed a second time. This test documents that loss — the reason for
/// `min_replicas` — and fails if it ever stops happening (then the README must change).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_min_replicas_a_failover_can_bring_a_revealed_form_back() {
    let servers = replicated().await;
    let on_primary = vault(servers.primary.url(), None).await;
    let ticket = on_primary
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = on_primary.submit(&ticket.id, &visa_form()).await.unwrap();
    let mut primary_admin = servers.primary.admin().await;
    let synced: i64 = run(&mut primary_admin, &["WAIT", "1", "2000"]).await;
    assert_eq!(synced, 1, "the replica did not get the submit");

    // The replica receives the replication stream but applies nothing: it lags, as a
    // replica on a slow link or a busy host does.
    let mut replica_admin = servers.replica.admin().await;
    let _: () = run(&mut replica_admin, &["CLIENT", "PAUSE", "60000", "WRITE"]).await;
    assert_card(&on_primary.reveal(&ticket.id, &receipt.pin).await.unwrap());
    // Promoted now, the replica drops what it received and did not apply.
    let _: () = run(&mut replica_admin, &["REPLICAOF", "NO", "ONE"]).await;
    let _: () = run(&mut replica_admin, &["CLIENT", "UNPAUSE"]).await;

    let on_promoted = vault(servers.replica.url(), None).await;
    let second = on_promoted
        .reveal(&ticket.id, &receipt.pin)
        .await
        .expect("the documented loss: the promoted replica still holds the submitted form");
    assert_card(&second);
}

/// With `min_replicas = 1` and the replica stopped, no write counts: every write answers
/// `STORE_UNAVAILABLE` within a bounded time, and no reveal returns the form, since its
/// tombstone is not on a replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_makes_writes_unavailable() {
    let mut servers = replicated().await;
    let on_primary = vault(servers.primary.url(), Some(one_replica())).await;
    let ticket = on_primary
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = on_primary.submit(&ticket.id, &visa_form()).await.unwrap();

    servers.replica.freeze();
    // A write is tried three times, each waiting for the replica; the vault stops there.
    let bound = 3 * WAIT + Duration::from_millis(700);
    let started = Instant::now();
    let created = on_primary.create_session(&SessionOptions::default()).await;
    assert_eq!(created.unwrap_err().code(), ErrorCode::StoreUnavailable);
    assert!(
        started.elapsed() < bound,
        "create took {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let revealed = on_primary.reveal(&ticket.id, &receipt.pin).await;
    let error = revealed.expect_err("a form was returned whose tombstone no replica has");
    assert_eq!(error.code(), ErrorCode::StoreUnavailable, "{error}");
    assert!(
        error.to_string().contains("replicas acknowledged"),
        "{error}"
    );
    assert!(
        started.elapsed() < bound,
        "reveal took {:?}",
        started.elapsed()
    );

    // Once the replica is back, the same vault works again.
    servers.replica.thaw();
    wait_for_link(&servers.replica, &servers.primary);
    round_trip(&on_primary).await;
}

/// A write repeated on another connection (the first try timed out, or the connection was
/// replaced) finds itself applied, and still waits for the replica: a `WAIT` counts only
/// what its own connection wrote, so without a write of its own the repeat would count a
/// replica that never got the first try, and a failover could undo a write reported as
/// acknowledged (a reveal's tombstone, a counted attempt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_repeated_on_another_connection_still_waits_for_the_replica() {
    let mut servers = replicated().await;
    let (first, second) = (
        waiting_store(&servers.primary).await,
        waiting_store(&servers.primary).await,
    );
    let minute = Duration::from_secs(60);
    let v0 = Version::random();
    let (v1, v2) = (Version::random(), Version::random());
    let claim = Claim {
        id: 7,
        at_millis: 1,
    };
    assert_eq!(
        first.create("created", v0, b"zero", minute).await.unwrap(),
        CasOutcome::Applied(v0)
    );
    assert_eq!(
        first.create("replaced", v0, b"zero", minute).await.unwrap(),
        CasOutcome::Applied(v0)
    );
    assert_eq!(
        first.create("claimed", v0, b"zero", minute).await.unwrap(),
        CasOutcome::Applied(v0)
    );

    servers.replica.freeze();
    // Each first try applies on the primary and is not acknowledged ...
    let unacknowledged = |result: pci_vault::Result<_>| {
        let error = result.expect_err("acknowledged by a frozen replica");
        assert_eq!(error.code(), ErrorCode::StoreUnavailable, "{error}");
    };
    unacknowledged(
        first
            .create("created-late", v1, b"one", minute)
            .await
            .map(drop),
    );
    unacknowledged(first.replace("replaced", v0, v1, b"one").await.map(drop));
    unacknowledged(first.claim("claimed", claim, 5, b"").await.map(drop));
    // ... and its repeat on another connection, which finds it applied, is not either.
    unacknowledged(
        second
            .create("created-late", v1, b"one", minute)
            .await
            .map(drop),
    );
    unacknowledged(second.replace("replaced", v0, v1, b"one").await.map(drop));
    unacknowledged(second.claim("claimed", claim, 5, b"").await.map(drop));

    servers.replica.thaw();
    wait_for_link(&servers.replica, &servers.primary);
    // Once the replica is back, the repeats are acknowledged and answer as the first tries.
    assert_eq!(
        second
            .create("created-late", v1, b"one", minute)
            .await
            .unwrap(),
        CasOutcome::Applied(v1)
    );
    assert_eq!(
        second.replace("replaced", v0, v1, b"one").await.unwrap(),
        CasOutcome::Applied(v1)
    );
    let claimed = second
        .claim("claimed", claim, 5, b"")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.slot, Some(1));
    // A different write still conflicts: the repeat changed nothing.
    assert_eq!(
        second.replace("replaced", v0, v2, b"two").await.unwrap(),
        CasOutcome::Conflict
    );
}

/// A repeat that finds its write applied writes it again so that its `WAIT` counts; when
/// the primary refuses that rewrite — here `min-replicas-to-write`, once the frozen
/// replica's lag is too long — the repeat is not acknowledged either, and says so. Where
/// `WAIT` counts only the connection's own writes, answering the repeat as the first try
/// did would let it count a replica that never got the write (Redis 7.0's `WAIT` also
/// waits for what other connections wrote before, which hides that there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_the_primary_refuses_to_write_again_is_not_acknowledged() {
    let mut servers = tokio::task::block_in_place(|| {
        PrimaryReplica::start(&[
            "--min-replicas-to-write",
            "1",
            "--min-replicas-max-lag",
            "8",
        ])
    });
    // The primary counts its replica as good once it has an acknowledgement from it,
    // which the replica sends every second: until then it refuses writes.
    let mut admin = servers.primary.admin().await;
    until_writes_are(&mut admin, true).await;
    let (first, second) = (
        waiting_store(&servers.primary).await,
        waiting_store(&servers.primary).await,
    );
    let minute = Duration::from_secs(60);
    let (v0, v1) = (Version::random(), Version::random());
    assert_eq!(
        first.create("replaced", v0, b"zero", minute).await.unwrap(),
        CasOutcome::Applied(v0)
    );

    servers.replica.freeze();
    // The first tries apply on the primary, well within the replica's allowed lag (8 s),
    // and are not acknowledged.
    for result in [
        first.create("created", v1, b"one", minute).await.map(drop),
        first.replace("replaced", v0, v1, b"one").await.map(drop),
    ] {
        let error = result.expect_err("acknowledged by a frozen replica");
        assert_eq!(error.code(), ErrorCode::StoreUnavailable, "{error}");
    }
    // Once the lag is too long the primary refuses every write.
    until_writes_are(&mut admin, false).await;
    // The repeats find their writes applied, may not write them again, and do not count.
    for result in [
        second.create("created", v1, b"one", minute).await.map(drop),
        second.replace("replaced", v0, v1, b"one").await.map(drop),
    ] {
        let error = result.expect_err("a repeat acknowledged without its rewrite");
        assert_eq!(error.code(), ErrorCode::StoreUnavailable, "{error}");
        assert!(
            error.to_string().contains("refused to write it again"),
            "not a repeat: {error}"
        );
    }

    servers.replica.thaw();
    wait_for_link(&servers.replica, &servers.primary);
    until_writes_are(&mut admin, true).await;
    assert_eq!(
        second.create("created", v1, b"one", minute).await.unwrap(),
        CasOutcome::Applied(v1)
    );
    assert_eq!(
        second.replace("replaced", v0, v1, b"one").await.unwrap(),
        CasOutcome::Applied(v1)
    );
}

/// Waits (up to 20 s) until the primary behind `admin` accepts writes, or refuses them.
async fn until_writes_are(admin: &mut redis::aio::MultiplexedConnection, accepted: bool) {
    let started = Instant::now();
    loop {
        let written = redis::cmd("SET")
            .arg("lag-probe")
            .arg("x")
            .query_async::<()>(admin)
            .await
            .is_ok();
        if written == accepted {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "writes never became {}",
            if accepted { "accepted" } else { "refused" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With `min_replicas` an event goes out only once the write counts: a replace the frozen
/// replica does not acknowledge publishes nothing (a failover could still undo it), and
/// its repeat, acknowledged once the replica is back, publishes the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_goes_out_only_once_the_replicas_have_the_write() {
    let mut servers = replicated().await;
    let store = waiting_store(&servers.primary).await;
    let minute = Duration::from_secs(60);
    let (v0, v1) = (Version::random(), Version::random());
    assert_eq!(
        store.create("watched", v0, b"zero", minute).await.unwrap(),
        CasOutcome::Applied(v0)
    );
    let mut events = store.subscribe("watched").await.unwrap();

    servers.replica.freeze();
    let error = store
        .replace_and_publish("watched", v0, v1, b"one", b"event")
        .await
        .expect_err("acknowledged by a frozen replica");
    assert_eq!(error.code(), ErrorCode::StoreUnavailable, "{error}");
    // A published event arrives within milliseconds on loopback.
    let early = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
    assert!(
        early.is_err(),
        "an event went out for an unacknowledged write"
    );

    servers.replica.thaw();
    wait_for_link(&servers.replica, &servers.primary);
    assert_eq!(
        store
            .replace_and_publish("watched", v0, v1, b"one", b"event")
            .await
            .unwrap(),
        CasOutcome::Applied(v1)
    );
    let event = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("no event once the write counted");
    assert_eq!(event.as_deref(), Some(&b"event"[..]));
}

/// With `min_replicas` an event is published by a command of its own after the write is
/// acknowledged; when that publish fails (here the ACL stops allowing it after connect),
/// the write still answers as stored: a reveal whose tombstone is stored hands out the
/// form rather than failing with the card already destroyed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_that_fails_after_an_acknowledged_write_does_not_fail_it() {
    let servers = replicated().await;
    let mut admin = servers.primary.admin().await;
    let mut rules = pci_vault_testkit::redis::readme_acl_rules(include_str!("../README.md"));
    rules.push("+wait".to_owned());
    pci_vault_testkit::redis::acl_user(&mut admin, "vault", "pw-p1", &rules).await;
    let url = format!("redis://vault:pw-p1@127.0.0.1:{}", servers.primary.port);
    let on_primary = vault(url, Some(one_replica())).await;

    rules.retain(|rule| rule != "+publish");
    pci_vault_testkit::redis::acl_user(&mut admin, "vault", "pw-p1", &rules).await;
    let ticket = on_primary
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = on_primary.submit(&ticket.id, &visa_form()).await.unwrap();
    assert_card(&on_primary.reveal(&ticket.id, &receipt.pin).await.unwrap());
    let again = on_primary.reveal(&ticket.id, &receipt.pin).await;
    assert_eq!(again.unwrap_err().code(), ErrorCode::AlreadyRevealed);
}

/// `min_replicas` is checked at connect: with no replica the test write is not
/// acknowledged, and the store refuses to open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refuses_min_replicas_without_replicas() {
    let lonely = RedisServer::start(&[]);
    let options = RedisOptions::new(lonely.url())
        .with_timeout(TIMEOUT)
        .with_min_replicas(one_replica());
    let error = RedisStore::connect(options).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::StoreUnavailable);
    assert!(
        error.to_string().contains("replicas acknowledged"),
        "{error}"
    );
}

/// Through Sentinel with `min_replicas = 1`: the primary is killed after a reveal, the
/// sentinels promote the replica, the old primary comes back as its replica, and the same
/// vault follows: the revealed session still answers `ALREADY_REVEALED` (the replica had
/// the tombstone before the reveal counted), and a new session's whole flow works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_keeps_the_reveal() {
    let mut setup = tokio::task::block_in_place(|| RedisSentinels::start(&[]));
    const MASTER: &str = RedisSentinels::MASTER_NAME;
    let sentinels = &setup.sentinels;
    let options = RedisOptions::from_list(&format!(
        "redis+sentinel://{}/{MASTER}",
        sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect::<Vec<_>>()
            .join(",")
    ))
    .with_timeout(TIMEOUT)
    .with_min_replicas(one_replica());
    let vault = vault_on(RedisStore::connect(options).await.unwrap());
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let receipt = vault.submit(&ticket.id, &visa_form()).await.unwrap();
    assert_card(&vault.reveal(&ticket.id, &receipt.pin).await.unwrap());

    let failover = Instant::now();
    setup.primary.kill();
    let new_primary = setup.replica.port;
    tokio::task::block_in_place(|| setup.wait_for_primary(new_primary));
    // Back with an empty data set (no persistence) as a replica of the new primary, so
    // writes can be acknowledged again. The sentinels would send this REPLICAOF too, but
    // only after their 15 s reconfiguration delay.
    setup.primary.restart();
    setup.primary.replicate(&setup.replica);
    wait_for_link(&setup.primary, &setup.replica);
    eprintln!("failover and resync took {:?}", failover.elapsed());

    // The first calls may still meet the dead primary's connection: they answer
    // STORE_UNAVAILABLE, and a later one asks the sentinels again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        match vault.reveal(&ticket.id, &receipt.pin).await {
            Err(e) if e.code() == ErrorCode::StoreUnavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other,
        }
    };
    assert_eq!(again.unwrap_err().code(), ErrorCode::AlreadyRevealed);
    round_trip(&vault).await;
}
