#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod config;
mod delivery;
mod event;
pub mod feed;
pub mod guard;
mod metrics;
pub mod signing;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pci_vault::{SessionId, Tenant};
use tokio::sync::mpsc;

pub use self::config::{WebhookConfig, WebhookConfigError};
pub use self::event::{MAX_EVENT_ID_LEN, WebhookEvent, is_delivered};
pub use self::metrics::WebhookMetrics;

use self::delivery::{Queued, TenantWorker};

/// The handle operations use to announce events: cheap to clone; a no-op when no webhook
/// is configured.
#[derive(Clone, Default)]
pub struct Webhooks(Option<Arc<Queues>>);

struct Queues {
    by_tenant: HashMap<Tenant, TenantQueue>,
    metrics: WebhookMetrics,
    /// The sessions this process follows now ([`feed`]), each once.
    following: Mutex<HashSet<SessionId>>,
    /// Unix second of the last warning that the follow limit was reached.
    last_follow_warning: AtomicU64,
}

/// Most sessions one process follows at once besides those it created (always followed);
/// past it, a session another process created is not followed here too.
const MAX_FOLLOWED: usize = 100_000;

/// Seconds between two "following as many sessions as it may" warnings.
const FOLLOW_WARNING_INTERVAL_SECONDS: u64 = 60;

/// A session this process follows, until this is dropped (when its watch ends).
pub(crate) struct Following {
    queues: Arc<Queues>,
    id: SessionId,
}

impl Drop for Following {
    fn drop(&mut self) {
        self.queues.following().remove(&self.id);
    }
}

/// Whether a warning last given at the Unix second in `last` may be given again, at least
/// `interval` seconds later; if so, `last` becomes now (one caller wins a race).
fn due(last: &AtomicU64, interval: u64) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let before = last.load(Ordering::Relaxed);
    now.saturating_sub(before) >= interval
        && last
            .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

impl Queues {
    /// Says, at most once a minute, that sessions other processes created are not followed
    /// here any more.
    fn warn_follow_limit(&self) {
        if due(&self.last_follow_warning, FOLLOW_WARNING_INTERVAL_SECONDS) {
            tracing::warn!(
                "webhooks: this process follows {MAX_FOLLOWED} sessions; sessions other \
                 processes created are not followed here too until some end"
            );
        }
    }

    fn following(&self) -> std::sync::MutexGuard<'_, HashSet<SessionId>> {
        // Each step under the lock is one insert or removal: a poisoned set is whole.
        self.following
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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
        Ok(Webhooks(Some(Arc::new(Queues {
            by_tenant,
            metrics,
            following: Mutex::new(HashSet::new()),
            last_follow_warning: AtomicU64::new(0),
        }))))
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

    /// Whether any tenant has a receiver.
    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Events waiting in a queue or being delivered, every tenant together (0 without
    /// webhooks): a host that stops waits until none is left, within its grace period.
    pub fn pending(&self) -> u64 {
        self.0.as_ref().map_or(0, |queues| queues.metrics.pending())
    }

    /// Marks `id` as followed by this process; `None` when it already is, or, unless
    /// `created_here`, when this process follows as many sessions as it may.
    pub(crate) fn start_following(&self, id: &SessionId, created_here: bool) -> Option<Following> {
        let queues = self.0.as_ref()?;
        let mut following = queues.following();
        if following.contains(id) {
            return None;
        }
        if !created_here && following.len() >= MAX_FOLLOWED {
            drop(following);
            queues.warn_follow_limit();
            return None;
        }
        following.insert(id.clone());
        Some(Following {
            queues: Arc::clone(queues),
            id: id.clone(),
        })
    }

    /// Whether this process follows `id` now: then its watch delivers what happens to it.
    pub fn follows(&self, id: &SessionId) -> bool {
        self.0
            .as_ref()
            .is_some_and(|queues| queues.following().contains(id))
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
                if due(&queue.last_full_warning, FULL_WARNING_INTERVAL_SECONDS) {
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
