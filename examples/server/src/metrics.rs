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
use pci_vault_config::{Call, KeyUsage, MemoryGauge, Observer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tracing_subscriber::Layer;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    source: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    component: &'static str,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallErrorLabels {
    component: &'static str,
    operation: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    profile: &'static str,
}

type Durations = Family<RouteLabels, Histogram, fn() -> Histogram>;
type CallDurations = Family<CallLabels, Histogram, fn() -> Histogram>;

/// The server's metrics and their registry.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    memory: Arc<OnceLock<MemoryGauge>>,
    requests: Family<RequestLabels, Counter>,
    durations: Durations,
    outcomes: Family<OutcomeLabels, Counter>,
    rate_limited: Family<LimitLabels, Counter>,
    webhooks: pci_vault_webhooks::WebhookMetrics,
    connections: Family<ListenerLabels, Gauge>,
    auth_failures: Family<AuthLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    calls: CallDurations,
    call_errors: Family<CallErrorLabels, Counter>,
    key_wraps: Family<KeyLabels, Gauge>,
    key_rotation_due: Family<KeyLabels, Gauge>,
    key_usage: OnceLock<Arc<KeyUsage>>,
}

/// What a reload reloaded, for [`Metrics::reloaded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadSource {
    /// The keyring of `--keys-file` (reloaded by the key provider).
    Keyring,
    /// The API key file.
    ApiKeys,
    /// The TLS certificate and key.
    Tls,
}

impl ReloadSource {
    fn as_str(self) -> &'static str {
        match self {
            ReloadSource::Keyring => "keyring",
            ReloadSource::ApiKeys => "api_keys",
            ReloadSource::Tls => "tls",
        }
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// From 50 µs (a memory store) to about 3 s (a Redis timeout).
fn call_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

impl Metrics {
    /// A fresh registry with every metric of the server.
    pub fn new() -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(crate::process::ProcessCollector));
        let memory = Arc::new(OnceLock::new());
        root.register_collector(Box::new(MemoryCollector(Arc::clone(&memory))));
        let registry = root.sub_registry_with_prefix("pci_vault");
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
        let webhooks = pci_vault_webhooks::WebhookMetrics::new();
        webhooks.register(registry);
        let connections = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "open_connections",
            "Connections open now, by listener (main or admin)",
            connections.clone(),
        );
        let auth_failures = Family::<AuthLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Agent requests refused for a missing or wrong API key (unauthorized), or because \
             the client is past its limit of failed authentications (rate_limited)",
            auth_failures.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "reloads",
            "Reloads of changed files by source (keyring, api_keys, tls) and outcome (success, \
             failure); after a failure the previous material stays in use",
            reloads.clone(),
        );
        let calls: CallDurations = Family::new_with_constructor(call_histogram);
        registry.register(
            "backend_call_duration_seconds",
            "Time of each call to the store or the key provider, by component and operation",
            calls.clone(),
        );
        let call_errors = Family::<CallErrorLabels, Counter>::default();
        registry.register(
            "backend_call_errors",
            "Calls to the store or the key provider that failed, by component, operation and \
             error code",
            call_errors.clone(),
        );
        registry.register(
            "build",
            "The server's version and build profile",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                profile: if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                },
            }),
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
            registry: root,
            memory,
            requests,
            durations,
            outcomes,
            rate_limited,
            webhooks,
            connections,
            auth_failures,
            reloads,
            calls,
            call_errors,
            key_wraps,
            key_rotation_due,
            key_usage: OnceLock::new(),
        }))
    }

    /// Reports the wrap counts of `usage` (the opened vault's) from now on.
    pub fn watch_key_usage(&self, usage: Arc<KeyUsage>) {
        let _ = self.0.key_usage.set(usage);
    }

    /// Reports the memory store's occupancy from now on (once; later calls are ignored).
    pub fn watch_memory_store(&self, gauge: MemoryGauge) {
        let _ = self.0.memory.set(gauge);
    }

    /// The gauge of open connections of the listener named `listener`.
    pub fn open_connections(&self, listener: &'static str) -> Gauge {
        self.0
            .connections
            .get_or_create(&ListenerLabels { listener })
            .clone()
    }

    /// Counts an agent request refused by authentication: `unauthorized` or
    /// `rate_limited`.
    pub fn auth_failure(&self, outcome: &'static str) {
        self.0
            .auth_failures
            .get_or_create(&AuthLabels { outcome })
            .inc();
    }

    /// Counts a reload of `source`, successful or not.
    pub fn reloaded(&self, source: ReloadSource, success: bool) {
        self.0
            .reloads
            .get_or_create(&ReloadLabels {
                source: source.as_str(),
                outcome: if success { "success" } else { "failure" },
            })
            .inc();
    }

    /// A log layer that counts the key provider's keyring reloads, which it reports only
    /// as log events (target `pci_vault_keys::reload`: "reloaded the keyring" at INFO, a
    /// refused reload at ERROR). It sees every event, whatever the log level.
    pub fn keyring_reload_layer<S>(&self) -> impl Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        KeyringReloads(self.clone()).with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.target() == KEYRING_RELOAD_TARGET
        }))
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

    /// The webhooks' counters.
    pub fn webhooks(&self) -> &pci_vault_webhooks::WebhookMetrics {
        &self.0.webhooks
    }

    /// An observer of the store's and the key provider's calls, for
    /// [`pci_vault_config::VaultConfig::observer`].
    pub fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(CallObserver(self.clone()))
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
struct CallObserver(Metrics);

impl Observer for CallObserver {
    fn observe(&self, call: Call) {
        let metrics = &self.0.0;
        let labels = CallLabels {
            component: call.component,
            operation: call.operation,
        };
        metrics
            .calls
            .get_or_create(&labels)
            .observe(call.elapsed.as_secs_f64());
        if let Some(code) = call.error {
            metrics
                .call_errors
                .get_or_create(&CallErrorLabels {
                    component: call.component,
                    operation: call.operation,
                    code: code.as_str(),
                })
                .inc();
        }
    }
}

/// The memory store's occupancy and bounds, read at each scrape.
#[derive(Debug)]
struct MemoryCollector(Arc<OnceLock<MemoryGauge>>);

impl Collector for MemoryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(gauge) = self.0.get() else {
            return Ok(());
        };
        let usage = gauge.usage();
        for (name, help, value) in [
            (
                "pci_vault_memory_store_entries",
                "Entries the memory store holds (live sessions and tombstones)",
                usage.entries,
            ),
            (
                "pci_vault_memory_store_max_entries",
                "Most entries the memory store holds; past it, CAPACITY_EXCEEDED",
                usage.limits.max_entries,
            ),
            (
                "pci_vault_memory_store_bytes",
                "Bytes the memory store's entries are counted at",
                usage.bytes,
            ),
            (
                "pci_vault_memory_store_max_bytes",
                "Most bytes the memory store holds; past it, CAPACITY_EXCEEDED",
                usage.limits.max_bytes,
            ),
        ] {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(metric)?;
        }
        Ok(())
    }
}

struct KeyringReloads(Metrics);

impl<S: tracing::Subscriber> Layer<S> for KeyringReloads {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let metadata = event.metadata();
        if metadata.target() != KEYRING_RELOAD_TARGET {
            return;
        }
        match *metadata.level() {
            tracing::Level::INFO => self.0.reloaded(ReloadSource::Keyring, true),
            tracing::Level::ERROR => self.0.reloaded(ReloadSource::Keyring, false),
            _ => {}
        }
    }
}

/// Where the key provider logs its keyring reloads.
const KEYRING_RELOAD_TARGET: &str = "pci_vault_keys::reload";

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
    const ROUTES: [&str; 14] = [
        "/",
        "/forms/{id}",
        "/v1/sessions",
        "/v1/sessions/{id}",
        "/v1/sessions/{id}/reveal",
        "/v1/sessions/{id}/events",
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
