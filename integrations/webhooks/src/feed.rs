//! What feeds the webhooks: a watch on each session this process created or handled, for a
//! tenant with a receiver, until the session ends.
//!
//! A session's events are published through the store whichever process caused them (the
//! form server that took the submission, another replica that took the reveal), so any
//! process that watches the session sees them all. The process that created the session
//! follows it ([`follow`]). So does any other process that handled an agent's operation
//! on it while it was live ([`follow_live`]), so that a session whose creating process
//! stopped (a rolling deployment, a crash) is followed again by the next one an agent
//! reaches; and a process that revealed, or counted a wrong PIN, without following the
//! session announces that outcome itself ([`announce`]). None of this is on the
//! operation's path: the follow starts in a task of its own, after the operation.
//!
//! Several processes may therefore deliver the same event. Its id is the same in each
//! ([`delivery_id`]: derived from the session, the kind and, for `reveal_failed`, the
//! attempts left — each happens once in a session's life), so a receiver that keeps the
//! ids it has taken (`Idempotency-Key`) takes it once; the copies may differ in `at` (a
//! copy read from the session's state carries the time it was read). `opened` is delivered
//! once per process, the first time the link is opened: every load of the page (a reload,
//! a chat's link preview, someone looping on the link) announces one, and only the first
//! tells the receiver something.
//!
//! What is still lost: events of a session while no process follows it (its creating
//! process stopped and no agent operation reached another yet) collapse into its state
//! when one does, so a receiver may learn `revealed` without the `submitted` before it; a
//! `cancelled` or `locked` that happens then is not announced; and the customer's side
//! alone (the form page, the submission) does not start a follow, since it does not know
//! the tenant.

use std::time::SystemTime;

use pci_vault::{
    SessionEvent, SessionEventKind, SessionId, SessionState, SessionWatch, Tenant, Vault,
};
use sha2::{Digest as _, Sha256};

use super::{Following, WebhookEvent, Webhooks, is_delivered};

/// Starts delivering the events of `id`, which `vault` (acting for the session's tenant)
/// just created, when that tenant has a receiver. Returns at once.
pub fn follow(webhooks: &Webhooks, vault: &Vault, id: &SessionId) {
    start(webhooks, vault, id, true);
}

/// After an operation of `vault`'s tenant found `id` live (a status read, a wrong PIN, an
/// event stream): follows the session from this process too, unless it already does or the
/// tenant has no receiver. Returns at once; the watch starts in a task of its own. Its
/// first event, the state it reads, is delivered unless it is `created` or the session has
/// ended since (that end was announced by the process that caused it).
pub fn follow_live(webhooks: &Webhooks, vault: &Vault, id: &SessionId) {
    start(webhooks, vault, id, false);
}

/// Follows `id` in a task of its own, unless its tenant has no receiver or this process
/// follows it already. The watch's first event is the state it read: `created` for a
/// session just made (not delivered), else delivered unless the session has ended.
fn start(webhooks: &Webhooks, vault: &Vault, id: &SessionId, created_here: bool) {
    if !webhooks.is_configured(vault.tenant()) {
        return;
    }
    let Some(following) = webhooks.start_following(id, created_here) else {
        return;
    };
    let (webhooks, vault, id) = (webhooks.clone(), vault.clone(), id.clone());
    tokio::spawn(async move {
        let mut watch = match vault.watch(&id).await {
            Ok(watch) => watch,
            // Another process's session may have ended (and gone) meanwhile; one created
            // here may not.
            Err(e) if created_here => {
                tracing::warn!(code = %e.code(), "webhooks: cannot watch a new session; its events will not be delivered");
                return;
            }
            Err(_) => return,
        };
        // A new watch yields the state it read first, without waiting.
        match watch.next().await {
            Some(Ok(now)) if !now.kind.is_terminal() => {
                if let Some(event) = webhook_event(&now) {
                    webhooks.enqueue(event);
                }
            }
            _ => return,
        }
        deliver(watch, webhooks, following).await;
    });
}

/// The outcome of a reveal this process just made on `session` of `tenant` — `revealed`,
/// or `reveal_failed` with the attempts left — delivered at once, for a host that did not
/// follow the session when the reveal began ([`Webhooks::follows`]; a watch that did
/// delivers it): the process that created the session may have stopped. Another process
/// that follows it delivers the same event, under the same id.
pub fn announce(
    webhooks: &Webhooks,
    tenant: &Tenant,
    session: &SessionId,
    kind: SessionEventKind,
    attempts_left: u8,
) {
    let state = match kind {
        SessionEventKind::Revealed => SessionState::Revealed,
        SessionEventKind::RevealFailed => SessionState::Submitted,
        _ => return,
    };
    if !webhooks.is_configured(tenant) {
        return;
    }
    webhooks.enqueue(WebhookEvent {
        id: delivery_id(session, kind, attempts_left),
        kind,
        session: session.clone(),
        tenant: tenant.clone(),
        state,
        at: SystemTime::now(),
        attempts_left: (kind == SessionEventKind::RevealFailed).then_some(attempts_left),
    });
}

/// Enqueues each event of `watch` until it ends; `following` marks the session as
/// followed here until then.
async fn deliver(mut watch: SessionWatch, webhooks: Webhooks, following: Following) {
    let _following = following;
    let mut opened = false;
    while let Some(item) = watch.next().await {
        match item {
            Ok(event) => {
                if event.kind == SessionEventKind::Opened && std::mem::replace(&mut opened, true) {
                    continue;
                }
                if let Some(event) = webhook_event(&event) {
                    webhooks.enqueue(event);
                }
            }
            Err(e) => {
                tracing::warn!(code = %e.code(), "webhooks: a session's watch ended early; its later events will not be delivered");
                return;
            }
        }
    }
}

/// The delivery of a session event; `None` for `created`, which is the state a watch
/// starts from rather than something that happened.
pub fn webhook_event(event: &SessionEvent) -> Option<WebhookEvent> {
    let kind = event.kind;
    is_delivered(kind).then(|| WebhookEvent {
        id: delivery_id(&event.session, kind, event.attempts_left),
        kind,
        session: event.session.clone(),
        tenant: event.tenant.clone(),
        state: event.state,
        at: event.at,
        attempts_left: (kind == SessionEventKind::RevealFailed).then_some(event.attempts_left),
    })
}

/// The id a delivery of an event carries, the same in every process and whether the event
/// was published or read from the session's state: `evt_` and 32 hex digits of SHA-256 over
/// the session id, the kind and, for `reveal_failed`, the attempts left after it. Each of
/// these happens once in a session's life (the attempts left only go down), and the
/// session id is in the delivery anyway, so the id tells a receiver nothing more.
pub fn delivery_id(session: &SessionId, kind: SessionEventKind, attempts_left: u8) -> String {
    let mut hash = Sha256::new();
    hash.update(b"pci-vault webhook event\0");
    hash.update(session.to_string().as_bytes());
    hash.update(b"\0");
    hash.update(kind.as_str().as_bytes());
    if kind == SessionEventKind::RevealFailed {
        hash.update([0, attempts_left]);
    }
    let digest = hash.finalize();
    let hex: String = digest
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("evt_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_has_one_id_and_two_events_two() {
        use SessionEventKind::{RevealFailed, Revealed, Submitted};
        let (a, b) = (SessionId::generate(), SessionId::generate());
        let id = delivery_id(&a, Submitted, 5);
        assert!(id.starts_with("evt_") && id.len() == 36, "{id}");
        assert!(id[4..].bytes().all(|c| c.is_ascii_hexdigit()));
        // Read from the state later, a `submitted` has fewer attempts left: the same event.
        assert_eq!(id, delivery_id(&a, Submitted, 3));
        assert_ne!(id, delivery_id(&b, Submitted, 5));
        assert_ne!(id, delivery_id(&a, Revealed, 5));
        assert_eq!(
            delivery_id(&a, RevealFailed, 4),
            delivery_id(&a, RevealFailed, 4)
        );
        assert_ne!(
            delivery_id(&a, RevealFailed, 4),
            delivery_id(&a, RevealFailed, 3)
        );
    }
}
