//! What feeds the webhooks: a watch on each session this process created, for a tenant
//! with a receiver, from creation until the session ends.
//!
//! A session's events are published through the store whichever process caused them
//! (the form server that took the submission, another replica that took the reveal), so
//! the process that created the session sees them all and is the one that delivers them:
//! each event is enqueued once, by one process. If that process stops before the session
//! ends, the rest of the session's events are not delivered: a receiver that must not miss
//! one also reads the session's status. `opened` is delivered once, the first time the
//! link is opened: every load of the page (a reload, a chat's link preview, someone looping
//! on the link) announces one, and only the first tells the receiver something.

use pci_vault::{SessionEvent, SessionEventKind, SessionId, Vault};

use super::{WebhookEvent, Webhooks, is_delivered};

/// Starts delivering the events of `id`, which `vault` (acting for the session's tenant)
/// just created, when that tenant has a receiver. Returns at once.
pub fn follow(webhooks: &Webhooks, vault: &Vault, id: &SessionId) {
    if !webhooks.is_configured(vault.tenant()) {
        return;
    }
    let (webhooks, vault, id) = (webhooks.clone(), vault.clone(), id.clone());
    tokio::spawn(async move {
        let mut watch = match vault.watch(&id).await {
            Ok(watch) => watch,
            Err(e) => {
                tracing::warn!(code = %e.code(), "webhooks: cannot watch a new session; its events will not be delivered");
                return;
            }
        };
        let mut opened = false;
        while let Some(item) = watch.next().await {
            match item {
                Ok(event) => {
                    if event.kind == SessionEventKind::Opened
                        && std::mem::replace(&mut opened, true)
                    {
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
    });
}

/// The delivery of a session event; `None` for `created`, which is the state a watch
/// starts from rather than something that happened.
pub fn webhook_event(event: &SessionEvent) -> Option<WebhookEvent> {
    let kind = event.kind;
    is_delivered(kind).then(|| WebhookEvent {
        id: event.id.to_string(),
        kind,
        session: event.session.clone(),
        tenant: event.tenant.clone(),
        state: event.state,
        at: event.at,
        attempts_left: (kind == SessionEventKind::RevealFailed).then_some(event.attempts_left),
    })
}
