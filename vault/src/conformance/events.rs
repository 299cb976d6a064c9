//! Session events: the store's publish and subscribe contract, and a watch of a session.

use std::time::Duration;

use super::flow::wrong_pin;
use super::{Harness, vault, visa_form};
use crate::error::ErrorCode;
use crate::events::{SessionEvent, SessionEventKind};
use crate::session::{SessionOptions, SessionState};
use crate::store::{CasOutcome, EventSubscription, Version};
use crate::vault::SessionWatch;

/// Long enough for an event to cross a network store; short enough for a test.
const DELIVERY: Duration = Duration::from_secs(5);

/// How long a test waits to be sure that nothing more arrives.
const QUIET: Duration = Duration::from_millis(300);

async fn next_event(sub: &mut Box<dyn EventSubscription>) -> Vec<u8> {
    tokio::time::timeout(DELIVERY, sub.next())
        .await
        .expect("no event within the delivery time")
        .expect("the subscription was lost")
}

async fn nothing_more(sub: &mut Box<dyn EventSubscription>) {
    if let Ok(Some(event)) = tokio::time::timeout(QUIET, sub.next()).await {
        panic!("an unexpected event arrived: {} bytes", event.len());
    }
}

/// `replace_and_publish` publishes exactly when it stores its version: once, not on a
/// conflict, not again when repeated; `publish` delivers without a write; subscribers of
/// another key get nothing.
pub async fn events_are_published_with_their_write_only(h: &dyn Harness) {
    let store = h.store();
    let key = format!("events-{:016x}", Version::random().0);
    let other = format!("events-{:016x}", Version::random().0);
    let mut sub = store.subscribe(&key).await.unwrap();
    let mut other_sub = store.subscribe(&other).await.unwrap();
    let (v1, v2) = (Version::random(), Version::random());
    let _ = store
        .create(&key, v1, b"one", Duration::from_secs(60))
        .await
        .unwrap();

    let conflict = store
        .replace_and_publish(&key, Version::random(), v2, b"two", b"never")
        .await
        .unwrap();
    assert_eq!(conflict, CasOutcome::Conflict);
    let applied = store
        .replace_and_publish(&key, v1, v2, b"two", b"event-1")
        .await
        .unwrap();
    assert_eq!(applied, CasOutcome::Applied(v2));
    assert_eq!(next_event(&mut sub).await, b"event-1");
    let repeated = store
        .replace_and_publish(&key, v1, v2, b"two", b"event-1")
        .await
        .unwrap();
    assert_eq!(repeated, CasOutcome::Applied(v2));
    nothing_more(&mut sub).await;
    assert_eq!(store.load(&key).await.unwrap().unwrap().value, b"two");

    store.publish(&key, b"event-2").await.unwrap();
    assert_eq!(next_event(&mut sub).await, b"event-2");
    nothing_more(&mut other_sub).await;
}

async fn next(watch: &mut SessionWatch) -> SessionEvent {
    tokio::time::timeout(DELIVERY * 2, watch.next())
        .await
        .expect("no event within the delivery time")
        .expect("the watch ended early")
        .expect("the watch failed")
}

async fn ended(watch: &mut SessionWatch) {
    let end = tokio::time::timeout(DELIVERY, watch.next())
        .await
        .expect("the watch did not end after a terminal event");
    assert!(end.is_none(), "an event followed a terminal one");
}

/// A watch started before the customer opens the link sees the whole life of the session,
/// each event once and in order: created (its state), opened, submitted, reveal_failed
/// with the attempts left, revealed; then it ends.
pub async fn watch_reports_each_event_once_in_order(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let mut watch = vault.watch(&ticket.id).await.unwrap();
    let first = next(&mut watch).await;
    assert_eq!(
        (first.kind, first.state, first.from_state),
        (SessionEventKind::Created, SessionState::Pending, true)
    );
    assert_eq!(first.session, ticket.id);
    assert_eq!(first.tenant.as_str(), "default");

    assert!(vault.form_opened(&ticket.id).await.unwrap().is_some());
    let opened = next(&mut watch).await;
    assert_eq!(
        (opened.kind, opened.from_state),
        (SessionEventKind::Opened, false)
    );

    let receipt = vault.submit(&ticket.id, &visa_form()).await.unwrap();
    let submitted = next(&mut watch).await;
    assert_eq!(
        (submitted.kind, submitted.state, submitted.attempts_left),
        (SessionEventKind::Submitted, SessionState::Submitted, 5)
    );
    let wrong = vault
        .reveal(&ticket.id, &wrong_pin(&receipt.pin))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), ErrorCode::WrongPin);
    let failed = next(&mut watch).await;
    assert_eq!(
        (failed.kind, failed.attempts_left),
        (SessionEventKind::RevealFailed, 4)
    );
    vault.reveal(&ticket.id, &receipt.pin).await.unwrap();
    let revealed = next(&mut watch).await;
    assert_eq!(
        (revealed.kind, revealed.state),
        (SessionEventKind::Revealed, SessionState::Revealed)
    );
    ended(&mut watch).await;

    let ids = [first.id, opened.id, submitted.id, failed.id, revealed.id];
    for (i, id) in ids.iter().enumerate() {
        assert!(!ids[i + 1..].contains(id), "two events share an id");
    }
}

/// A watch started after the submission still learns it, first, from the state; a wrong
/// PIN that used the last attempt ends it with `locked`.
pub async fn late_watch_learns_the_state_first(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let options = SessionOptions {
        max_attempts: 2,
        ..SessionOptions::default()
    };
    let ticket = vault.create_session(&options).await.unwrap();
    let receipt = vault.submit(&ticket.id, &visa_form()).await.unwrap();
    let _ = vault.reveal(&ticket.id, &wrong_pin(&receipt.pin)).await;

    let mut watch = vault.watch(&ticket.id).await.unwrap();
    let first = next(&mut watch).await;
    assert_eq!(
        (first.kind, first.attempts_left, first.from_state),
        (SessionEventKind::Submitted, 1, true)
    );
    let _ = vault.reveal(&ticket.id, &wrong_pin(&receipt.pin)).await;
    let locked = next(&mut watch).await;
    assert_eq!(
        (locked.kind, locked.state, locked.attempts_left),
        (SessionEventKind::Locked, SessionState::Locked, 0)
    );
    ended(&mut watch).await;

    // A watch of an ended session reports its end and stops.
    let mut watch = vault.watch(&ticket.id).await.unwrap();
    assert_eq!(next(&mut watch).await.kind, SessionEventKind::Locked);
    ended(&mut watch).await;
}

/// `cancel` ends a watch with `cancelled`; a session whose time passes ends it with
/// `expired` although nothing is written at expiry; another tenant cannot watch.
pub async fn watch_ends_at_cancel_and_expiry(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let mut watch = vault.watch(&ticket.id).await.unwrap();
    assert_eq!(next(&mut watch).await.kind, SessionEventKind::Created);
    vault.cancel(&ticket.id).await.unwrap();
    assert_eq!(next(&mut watch).await.kind, SessionEventKind::Cancelled);
    ended(&mut watch).await;

    let other = vault.for_tenant(crate::Tenant::new("other").unwrap());
    assert_eq!(
        other.watch(&ticket.id).await.unwrap_err().code(),
        ErrorCode::NotFound
    );

    let short = SessionOptions {
        ttl: Duration::from_secs(1),
        ..SessionOptions::default()
    };
    let ticket = vault.create_session(&short).await.unwrap();
    vault.submit(&ticket.id, &visa_form()).await.unwrap();
    let mut watch = vault.watch(&ticket.id).await.unwrap();
    assert_eq!(next(&mut watch).await.kind, SessionEventKind::Submitted);
    h.advance(Duration::from_millis(1_100)).await;
    let expired = next(&mut watch).await;
    assert_eq!(
        (expired.kind, expired.state, expired.from_state),
        (SessionEventKind::Expired, SessionState::Submitted, true)
    );
    ended(&mut watch).await;
}

/// An event on the store that this session's keys did not seal (forged by someone who
/// can write the store, or another session's) is dropped, and the watch goes on.
pub async fn forged_events_are_dropped(h: &dyn Harness) {
    let (vault, _) = vault(h);
    let store = h.store();
    let a = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let b = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    let mut watch = vault.watch(&a.id).await.unwrap();
    assert_eq!(next(&mut watch).await.kind, SessionEventKind::Created);

    // B's real `submitted` event, replayed on A's channel.
    let key_b = crate::vault::ops::key_for(&b.id);
    let mut sub_b = store.subscribe(&key_b).await.unwrap();
    vault.submit(&b.id, &visa_form()).await.unwrap();
    let event_b = next_event(&mut sub_b).await;
    let key_a = crate::vault::ops::key_for(&a.id);
    store.publish(&key_a, &event_b).await.unwrap();
    store.publish(&key_a, b"not an event").await.unwrap();
    vault.cancel(&a.id).await.unwrap();
    let event = next(&mut watch).await;
    assert_eq!(event.kind, SessionEventKind::Cancelled, "{event:?}");
}
