//! The webhooks' metrics, for the host to register in its Prometheus registry: labelled by
//! tenant (the configured ones only, so the label set stays bounded) and by outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    tenant: String,
    outcome: &'static str,
}

/// Counters of queued events, their final outcomes and every attempt.
#[derive(Clone, Debug, Default)]
pub struct WebhookMetrics {
    queued: Family<TenantLabels, Counter>,
    finished: Family<OutcomeLabels, Counter>,
    attempts: Family<OutcomeLabels, Counter>,
    /// Events in a queue or being delivered, every tenant together.
    pending: Arc<AtomicU64>,
}

/// Counts one queued event as pending until its delivery ends, however it ends.
pub(super) struct Pending(Arc<AtomicU64>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl WebhookMetrics {
    /// Fresh counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the counters to `registry`: `webhook_events_queued`, `webhook_events` and
    /// `webhook_attempts` (counters, so exposed with `_total`), under the registry's prefix.
    /// The log line of a full queue names `pci_vault_webhook_events_total`: register them
    /// in a registry prefixed `pci_vault`, as the example server does.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "webhook_events_queued",
            "Session events accepted into a tenant's webhook queue",
            self.queued.clone(),
        );
        registry.register(
            "webhook_events",
            "Webhook events by final outcome: delivered, rejected (a 4xx or 3xx answer), \
             refused (address guard), exhausted (every attempt failed), queue_full, invalid, \
             stopped",
            self.finished.clone(),
        );
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by result: accepted, retryable_status, final_status, \
             timeout, network, refused",
            self.attempts.clone(),
        );
    }

    /// Creates `tenant`'s series at zero, so dashboards see them before the first event.
    pub(super) fn init(&self, tenant: &str) {
        self.queued_count(tenant);
        for outcome in ["delivered", "exhausted", "queue_full"] {
            self.count(tenant, outcome);
        }
    }

    /// An event entered `tenant`'s queue: pending until the [`Pending`] its delivery takes
    /// is dropped.
    pub(super) fn queued(&self, tenant: &str) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        self.queued
            .get_or_create(&TenantLabels {
                tenant: tenant.to_owned(),
            })
            .inc();
    }

    /// Taken by the delivery of one queued event, for as long as it runs.
    pub(super) fn delivering(&self) -> Pending {
        Pending(Arc::clone(&self.pending))
    }

    /// Events waiting in a queue or being delivered, every tenant together: what a host
    /// that stops waits for.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    pub(super) fn finished(&self, tenant: &str, outcome: &'static str) {
        self.finished
            .get_or_create(&OutcomeLabels {
                tenant: tenant.to_owned(),
                outcome,
            })
            .inc();
    }

    pub(super) fn attempt(&self, tenant: &str, outcome: &'static str) {
        self.attempts
            .get_or_create(&OutcomeLabels {
                tenant: tenant.to_owned(),
                outcome,
            })
            .inc();
    }

    /// How many events of `tenant` ended with `outcome` (see the `webhook_events` help).
    pub fn count(&self, tenant: &str, outcome: &'static str) -> u64 {
        self.finished
            .get_or_create(&OutcomeLabels {
                tenant: tenant.to_owned(),
                outcome,
            })
            .get()
    }

    /// How many attempts to `tenant`'s receiver had `result`.
    pub fn attempts(&self, tenant: &str, result: &'static str) -> u64 {
        self.attempts
            .get_or_create(&OutcomeLabels {
                tenant: tenant.to_owned(),
                outcome: result,
            })
            .get()
    }

    /// How many events of `tenant` entered its queue.
    pub fn queued_count(&self, tenant: &str) -> u64 {
        self.queued
            .get_or_create(&TenantLabels {
                tenant: tenant.to_owned(),
            })
            .get()
    }
}
