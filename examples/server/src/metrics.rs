//! Prometheus metrics (`/metrics`) and the per-request log line.
//!
//! Requests are labelled by their route template (`/v1/sessions/{id}`), never by the path
//! itself, so no session id reaches a metric label or a log line. Vault outcomes are
//! counted from the audit events, which the vault emits after each stored change.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use pci_vault::{AuditEvent, AuditSink, TracingAuditSink};
use pci_vault_config::KeyUsage;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    action: &'static str,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    key_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

type Durations = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The server's metrics and their registry.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Durations,
    outcomes: Family<OutcomeLabels, Counter>,
    rate_limited: Family<LimitLabels, Counter>,
    key_wraps: Family<KeyLabels, Gauge>,
    key_rotation_due: Family<KeyLabels, Gauge>,
    key_usage: OnceLock<Arc<KeyUsage>>,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    /// A fresh registry with every metric of the server.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pci_vault");
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: Durations = Family::new_with_constructor(duration_histogram);
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        let rate_limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route template, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            durations.clone(),
        );
        registry.register(
            "vault_operations",
            "Vault operations by action and outcome (an error code or success)",
            outcomes.clone(),
        );
        registry.register(
            "rate_limited_requests",
            "Requests refused by a per-client rate limit",
            rate_limited.clone(),
        );
        let key_wraps = Family::<KeyLabels, Gauge>::default();
        let key_rotation_due = Family::<KeyLabels, Gauge>::default();
        registry.register(
            "key_wraps",
            "Data keys wrapped by each key-encryption key in this process",
            key_wraps.clone(),
        );
        registry.register(
            "key_rotation_due",
            "1 when a key-encryption key reached the wrap warning limit: rotate it",
            key_rotation_due.clone(),
        );
        Metrics(Arc::new(Inner {
            registry,
            requests,
            durations,
            outcomes,
            rate_limited,
            key_wraps,
            key_rotation_due,
            key_usage: OnceLock::new(),
        }))
    }

    /// Reports the wrap counts of `usage` (the opened vault's) from now on.
    pub fn watch_key_usage(&self, usage: Arc<KeyUsage>) {
        let _ = self.0.key_usage.set(usage);
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        if let Some(usage) = self.0.key_usage.get() {
            for key in usage.wraps() {
                let labels = KeyLabels {
                    key_id: key.key_id.as_str().to_owned(),
                };
                let wraps = i64::try_from(key.wraps).unwrap_or(i64::MAX);
                self.0.key_wraps.get_or_create(&labels).set(wraps);
                self.0
                    .key_rotation_due
                    .get_or_create(&labels)
                    .set(i64::from(key.rotation_due));
            }
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.0.registry).is_err() {
            tracing::error!("could not encode the metrics");
        }
        out
    }

    /// Counts a request refused by the limit named `limit`.
    pub fn rate_limited(&self, limit: &'static str) {
        self.0
            .rate_limited
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// An audit sink that counts each event and hands it on to `tracing`.
    pub fn audit_sink(&self) -> Arc<dyn AuditSink> {
        Arc::new(CountingAuditSink(self.clone()))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct CountingAuditSink(Metrics);

impl AuditSink for CountingAuditSink {
    fn record(&self, event: &AuditEvent) {
        self.0
            .0
            .outcomes
            .get_or_create(&OutcomeLabels {
                action: event.action.as_str(),
                outcome: event.outcome.to_string(),
            })
            .inc();
        TracingAuditSink.record(event);
    }
}

/// The route templates the router knows, so labels are `&'static str` and bounded.
fn route_label(matched: Option<&MatchedPath>) -> &'static str {
    const ROUTES: [&str; 13] = [
        "/",
        "/forms/{id}",
        "/v1/sessions",
        "/v1/sessions/{id}",
        "/v1/sessions/{id}/reveal",
        "/agent",
        "/assets/style.css",
        "/assets/agent.js",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/favicon.ico",
    ];
    matched
        .and_then(|m| ROUTES.iter().find(|r| **r == m.as_str()))
        .copied()
        .unwrap_or("unmatched")
}

/// The method as a bounded label: extension methods are all `OTHER`.
fn method_label(method: &Method) -> &'static str {
    static METHODS: [Method; 7] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
    ];
    METHODS
        .iter()
        .find(|m| *m == method)
        .map_or("OTHER", Method::as_str)
}

/// Middleware: counts and times every request and writes one log line for it, with the
/// route template instead of the path.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = route_label(request.extensions().get::<MatchedPath>());
    let method = method_label(request.method());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let metrics = &state.metrics().0;
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status,
        })
        .inc();
    metrics
        .durations
        .get_or_create(&RouteLabels { route })
        .observe(elapsed.as_secs_f64());
    tracing::info!(
        target: "pci_vault_server::http",
        method,
        route,
        status,
        latency_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3,
        "request"
    );
    response
}
