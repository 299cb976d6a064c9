//! Signed webhooks: each tenant's session events, POSTed to the tenant's receiver.
//!
//! [`Webhooks::enqueue`] takes an event and returns at once: it never waits for the network
//! and never fails the operation that caused the event. Each tenant has its own bounded
//! queue and its own deliveries, so a slow or unreachable receiver delays nobody else's;
//! when a tenant's queue is full, the new event is dropped, counted and logged (without
//! the session id). A delivery is an HTTPS POST of the event as JSON, signed with the
//! tenant's secret ([`signing`]), carrying the event id as `Idempotency-Key`; it is retried
//! with exponential backoff and jitter on a network error, a timeout, 408, 429 or a 5xx,
//! up to a maximum number of attempts, then dropped and counted. Every connection goes
//! through the address guard ([`guard`]); no redirect is followed.
//!
//! The queue lives in this process: events waiting or in retry when it stops are lost.
//! Deliveries of one tenant run concurrently and may arrive out of order; `at` and `state`
//! tell a receiver which is newer, and the event id tells it what it has already seen.

pub mod config;
mod delivery;
pub mod feed;
pub mod guard;
mod metrics;
pub mod openapi;
pub mod signing;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pci_vault::{SessionId, SessionState, Tenant};
use serde::{Serialize, Serializer};
use tokio::sync::mpsc;
use utoipa::ToSchema;

pub use self::config::{WebhookConfig, WebhookConfigError};
pub use self::metrics::WebhookMetrics;

use self::delivery::{Queued, TenantWorker};

/// What happened to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEventKind {
    /// The customer submitted the form.
    Submitted,
    /// A wrong PIN; `attempts_left` says how many remain.
    RevealFailed,
    /// The form was revealed (once); its data is destroyed.
    Revealed,
    /// Too many wrong PINs; the data is destroyed.
    Locked,
    /// The agent cancelled the session; the data is destroyed.
    Cancelled,
    /// The session's time ran out.
    Expired,
    /// The form page was fetched. Informative only: link previews fetch pages too.
    Opened,
}

impl WebhookEventKind {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEventKind::Submitted => "submitted",
            WebhookEventKind::RevealFailed => "reveal_failed",
            WebhookEventKind::Revealed => "revealed",
            WebhookEventKind::Locked => "locked",
            WebhookEventKind::Cancelled => "cancelled",
            WebhookEventKind::Expired => "expired",
            WebhookEventKind::Opened => "opened",
        }
    }
}

/// A session event as the receiver gets it: the body of a delivery. It carries no card
/// data, no PIN and no secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "evt_3q2R6sYb0pXcVtE1n4mKfA",
    "kind": "reveal_failed",
    "session": "lRq4vXb2mC8u0TzQeYp7sWn1kJd5hGa9oFiLr3xE6yB",
    "tenant": "default",
    "state": "submitted",
    "at": "2026-11-30T14:05:09Z",
    "attempts_left": 4
}))]
pub struct WebhookEvent {
    /// Unique per event, the same on every attempt to deliver it (also sent as
    /// `Idempotency-Key`): 1–128 visible ASCII characters.
    pub id: String,
    /// What happened.
    pub kind: WebhookEventKind,
    /// The session id.
    #[serde(serialize_with = "as_display")]
    #[schema(value_type = String)]
    pub session: SessionId,
    /// The tenant the session belongs to.
    #[serde(serialize_with = "as_display")]
    #[schema(value_type = String)]
    pub tenant: Tenant,
    /// The session's state after the event.
    #[serde(serialize_with = "state_name")]
    #[schema(value_type = crate::api::StateName)]
    pub state: SessionState,
    /// When it happened (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: SystemTime,
    /// Wrong PINs still allowed; present on `reveal_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<u8>,
}

fn as_display<T: std::fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn state_name<S: Serializer>(state: &SessionState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(state.as_str())
}

fn rfc3339<S: Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::respond::rfc3339(*at))
}

/// Longest event id, in characters.
pub const MAX_EVENT_ID_LEN: usize = 128;

/// The handle operations use to announce events: cheap to clone; a no-op when no webhook
/// is configured.
#[derive(Clone, Default)]
pub struct Webhooks(Option<Arc<Queues>>);

struct Queues {
    by_tenant: HashMap<Tenant, TenantQueue>,
    metrics: WebhookMetrics,
}

struct TenantQueue {
    sender: mpsc::Sender<Queued>,
    /// Unix second of the last "queue full" warning: one per 10 s at most, so an overload
    /// does not flood the log (the metric counts every drop).
    last_full_warning: AtomicU64,
}

/// Seconds between two "queue full" warnings of one tenant.
const FULL_WARNING_INTERVAL_SECONDS: u64 = 10;

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenants: Vec<&str> = self
            .0
            .iter()
            .flat_map(|q| q.by_tenant.keys().map(Tenant::as_str))
            .collect();
        f.debug_struct("Webhooks")
            .field("tenants", &tenants)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// No webhooks: every event is ignored.
    pub fn disabled() -> Self {
        Webhooks(None)
    }

    /// Starts one delivery worker per configured tenant. Must run inside a Tokio runtime.
    ///
    /// # Errors
    /// [`WebhookConfigError`] when the CA file cannot be read or the HTTP client cannot be
    /// built.
    pub fn start(
        config: WebhookConfig,
        metrics: WebhookMetrics,
    ) -> Result<Self, WebhookConfigError> {
        let roots = delivery::extra_roots(config.ca_file.as_deref())?;
        let mut by_tenant = HashMap::with_capacity(config.endpoints.len());
        for endpoint in config.endpoints {
            let tenant = endpoint.tenant.clone();
            metrics.init(tenant.as_str());
            tracing::info!(
                tenant = %tenant,
                host = endpoint.host(),
                development = config.development,
                "webhooks configured"
            );
            let worker = TenantWorker::new(
                endpoint,
                &config.settings,
                config.development,
                &roots,
                metrics.clone(),
            )?;
            let (sender, receiver) = mpsc::channel(config.settings.queue_capacity);
            tokio::spawn(worker.run(receiver));
            let queue = TenantQueue {
                sender,
                last_full_warning: AtomicU64::new(0),
            };
            by_tenant.insert(tenant, queue);
        }
        if config.development {
            tracing::warn!(
                "webhooks development setting: receivers on loopback and private networks, \
                 and plain http to loopback, are allowed; never use it in production"
            );
        }
        Ok(Webhooks(Some(Arc::new(Queues { by_tenant, metrics }))))
    }

    /// Reads the webhooks file (if any) and starts the workers.
    ///
    /// # Errors
    /// [`WebhookConfigError`] for a file that cannot be read or is wrong.
    pub fn from_file(
        path: Option<&std::path::Path>,
        development: bool,
        metrics: WebhookMetrics,
    ) -> Result<Self, WebhookConfigError> {
        match path {
            Some(path) => Self::start(WebhookConfig::from_file(path, development)?, metrics),
            None => Ok(Self::disabled()),
        }
    }

    /// Whether `tenant` has a receiver.
    pub fn is_configured(&self, tenant: &Tenant) -> bool {
        self.0
            .as_ref()
            .is_some_and(|q| q.by_tenant.contains_key(tenant))
    }

    /// Queues `event` for its tenant's receiver and returns at once. An event of a tenant
    /// without a receiver is ignored; one that does not fit the tenant's queue, or whose
    /// id is not 1–128 visible ASCII characters, is dropped, counted and logged.
    pub fn enqueue(&self, event: WebhookEvent) {
        let Some(queues) = &self.0 else { return };
        let Some(queue) = queues.by_tenant.get(&event.tenant) else {
            return;
        };
        let tenant = event.tenant.as_str();
        let kind = event.kind.as_str();
        if event.id.is_empty()
            || event.id.len() > MAX_EVENT_ID_LEN
            || !event.id.bytes().all(|b| b.is_ascii_graphic())
        {
            queues.metrics.finished(tenant, "invalid");
            tracing::error!(
                tenant,
                kind,
                "a webhook event without a usable id was dropped"
            );
            return;
        }
        let body = match serde_json::to_vec(&event) {
            Ok(body) => Bytes::from(body),
            Err(_) => {
                queues.metrics.finished(tenant, "invalid");
                tracing::error!(tenant, kind, event_id = %event.id, "a webhook event did not serialize");
                return;
            }
        };
        let queued = Queued {
            id: event.id,
            kind: event.kind,
            body,
        };
        match queue.sender.try_send(queued) {
            Ok(()) => queues.metrics.queued(tenant),
            Err(mpsc::error::TrySendError::Full(queued)) => {
                queues.metrics.finished(tenant, "queue_full");
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let last = queue.last_full_warning.load(Ordering::Relaxed);
                if now.saturating_sub(last) >= FULL_WARNING_INTERVAL_SECONDS
                    && queue
                        .last_full_warning
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(
                        tenant,
                        kind,
                        event_id = %queued.id,
                        "the webhook queue is full; the event was dropped (and any other \
                         in the next 10 s, counted in pci_vault_webhook_events_total)"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(queued)) => {
                queues.metrics.finished(tenant, "stopped");
                tracing::error!(
                    tenant,
                    kind,
                    event_id = %queued.id,
                    "the webhook worker has stopped; the event was dropped"
                );
            }
        }
    }
}
