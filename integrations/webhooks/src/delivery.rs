//! One tenant's delivery queue: takes queued events, POSTs each to the receiver, retries
//! with backoff, and counts how each ended.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pci_vault::SessionEventKind;
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};
use reqwest::{Certificate, Client, StatusCode};
use tokio::sync::{Semaphore, mpsc};

use super::config::{DeliverySettings, TenantEndpoint, WebhookConfigError};
use super::guard::{GuardedResolver, ResolveError};
use super::metrics::WebhookMetrics;
use super::signing::{IDEMPOTENCY_KEY_HEADER, SIGNATURE_HEADER, signature_header};

/// Most bytes of a receiver's answer that are read (and thrown away).
pub(super) const MAX_RESPONSE_BYTES: usize = 4096;

/// An event waiting for delivery: its body is serialized once, so every attempt sends the
/// same bytes.
pub(super) struct Queued {
    pub(super) id: String,
    pub(super) kind: SessionEventKind,
    pub(super) body: Bytes,
}

/// The CA certificates of the `ca_file` setting.
pub(super) fn extra_roots(path: Option<&Path>) -> Result<Vec<Certificate>, WebhookConfigError> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let pem = std::fs::read(path).map_err(|_| WebhookConfigError::CaFile("cannot be read"))?;
    let roots = Certificate::from_pem_bundle(&pem)
        .map_err(|_| WebhookConfigError::CaFile("not a PEM bundle of certificates"))?;
    if roots.is_empty() {
        return Err(WebhookConfigError::CaFile("holds no certificate"));
    }
    Ok(roots)
}

/// A tenant's receiver, its client and settings.
pub(super) struct TenantWorker {
    endpoint: Arc<TenantEndpoint>,
    client: Client,
    settings: DeliverySettings,
    metrics: WebhookMetrics,
}

impl TenantWorker {
    pub(super) fn new(
        endpoint: TenantEndpoint,
        settings: &DeliverySettings,
        development: bool,
        roots: &[Certificate],
        metrics: WebhookMetrics,
    ) -> Result<Self, WebhookConfigError> {
        // ring is the one rustls crypto provider compiled in; it may be installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let resolver = GuardedResolver::new(endpoint.host(), endpoint.rule(development));
        let client = Client::builder()
            // Every name goes through the guard; the configured host is the only one
            // it resolves.
            .dns_resolver(resolver)
            // A proxy from the environment would connect on our behalf, past the guard.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .https_only(endpoint.url.scheme() == "https")
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(settings.max_in_flight)
            .referer(false)
            .tls_certs_merge(roots.iter().cloned())
            .build()
            .map_err(|_| WebhookConfigError::Client("cannot be built"))?;
        Ok(TenantWorker {
            endpoint: Arc::new(endpoint),
            client,
            settings: settings.clone(),
            metrics,
        })
    }

    /// Delivers queued events until every handle to the queue is gone. At most
    /// `max_in_flight` deliveries run at once (waits between attempts included); further
    /// events wait in the queue, where the capacity bounds them.
    pub(super) async fn run(self, mut queue: mpsc::Receiver<Queued>) {
        let slots = Arc::new(Semaphore::new(self.settings.max_in_flight));
        let this = Arc::new(self);
        loop {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let Some(event) = queue.recv().await else {
                return;
            };
            let this = Arc::clone(&this);
            tokio::spawn(async move {
                this.deliver(event).await;
                drop(slot);
            });
        }
    }

    async fn deliver(&self, event: Queued) {
        let _pending = self.metrics.delivering();
        let tenant = self.endpoint.tenant.as_str();
        let max = self.settings.max_attempts;
        for attempt in 1..=max {
            let result = self.attempt(&event).await;
            self.metrics.attempt(tenant, result.label());
            let log = |message: &str| {
                tracing::warn!(
                    tenant,
                    host = self.endpoint.host(),
                    event_id = %event.id,
                    kind = event.kind.as_str(),
                    attempt,
                    max_attempts = max,
                    result = result.label(),
                    status = result.status(),
                    "{message}"
                );
            };
            match result {
                Attempt::Accepted(_) => {
                    self.metrics.finished(tenant, "delivered");
                    tracing::debug!(
                        tenant,
                        event_id = %event.id,
                        kind = event.kind.as_str(),
                        attempt,
                        "webhook delivered"
                    );
                    return;
                }
                Attempt::FinalStatus(_) => {
                    self.metrics.finished(tenant, "rejected");
                    log("the webhook receiver refused the event; it is not retried");
                    return;
                }
                Attempt::Refused => {
                    self.metrics.finished(tenant, "refused");
                    log("the webhook receiver's address is not allowed; the event was dropped");
                    return;
                }
                Attempt::Retryable { retry_after, .. } => {
                    if attempt == max {
                        self.metrics.finished(tenant, "exhausted");
                        log("every webhook attempt failed; the event was dropped");
                        return;
                    }
                    log("a webhook attempt failed; it will be retried");
                    let random = getrandom::u64().unwrap_or(0);
                    tokio::time::sleep(backoff(&self.settings, attempt, retry_after, random)).await;
                }
            }
        }
    }

    async fn attempt(&self, event: &Queued) -> Attempt {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signature = signature_header(&self.endpoint.secret, now, &event.body);
        let request = self
            .client
            .post(self.endpoint.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE))
            .header(IDEMPOTENCY_KEY_HEADER, event.id.as_str())
            .header(SIGNATURE_HEADER, signature)
            .body(event.body.clone());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) if refused_by_guard(&error) => return Attempt::Refused,
            Err(error) if error.is_timeout() => return Attempt::retry("timeout", None),
            Err(_) => return Attempt::retry("network", None),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Read a little of the answer, so a small one leaves the connection reusable;
        // never more.
        let mut read = 0usize;
        while read <= MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
        drop(response);
        if status.is_success() {
            Attempt::Accepted(status)
        } else if status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
        {
            Attempt::Retryable {
                label: "retryable_status",
                status: Some(status),
                retry_after,
            }
        } else {
            Attempt::FinalStatus(status)
        }
    }
}

/// The wait after failed attempt number `attempt` (1-based): the initial backoff doubled
/// per further attempt, capped; half of it fixed and half drawn from `random` ("equal
/// jitter"), so the retries of many events spread out. A receiver's `Retry-After` (capped
/// the same way) lengthens it.
fn backoff(
    settings: &DeliverySettings,
    attempt: u32,
    retry_after: Option<Duration>,
    random: u64,
) -> Duration {
    let doubled = settings
        .initial_backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let base = doubled.min(settings.max_backoff);
    let half = base / 2;
    let span = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    let jitter = Duration::from_nanos(random.checked_rem(span.saturating_add(1)).unwrap_or(0));
    let wait = half + jitter;
    match retry_after {
        Some(asked) => wait.max(asked.min(settings.max_backoff)),
        None => wait,
    }
}

const USER_AGENT_VALUE: &str = concat!("pci-vault-webhooks/", env!("CARGO_PKG_VERSION"));

/// Whether the guard refused the connection (then a retry would be refused too).
fn refused_by_guard(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(ResolveError::Refused(_)) = e.downcast_ref::<ResolveError>() {
            return true;
        }
        source = e.source();
    }
    false
}

enum Attempt {
    Accepted(StatusCode),
    FinalStatus(StatusCode),
    Refused,
    Retryable {
        label: &'static str,
        status: Option<StatusCode>,
        retry_after: Option<Duration>,
    },
}

impl Attempt {
    fn retry(label: &'static str, status: Option<StatusCode>) -> Self {
        Attempt::Retryable {
            label,
            status,
            retry_after: None,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Attempt::Accepted(_) => "accepted",
            Attempt::FinalStatus(_) => "final_status",
            Attempt::Refused => "refused",
            Attempt::Retryable { label, .. } => label,
        }
    }

    fn status(&self) -> Option<u16> {
        match self {
            Attempt::Accepted(s) | Attempt::FinalStatus(s) => Some(s.as_u16()),
            Attempt::Retryable { status, .. } => status.map(|s| s.as_u16()),
            Attempt::Refused => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let settings = DeliverySettings {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            ..DeliverySettings::default()
        };
        let secs = Duration::from_secs_f64;
        for (attempt, base) in [
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (4, 8.0),
            (5, 10.0),
            (40, 10.0),
        ] {
            assert_eq!(
                backoff(&settings, attempt, None, 0),
                secs(base / 2.0),
                "{attempt}"
            );
            for random in [1, 12345, 987_654_321_012, u64::MAX / 3] {
                let wait = backoff(&settings, attempt, None, random);
                assert!(
                    wait >= secs(base / 2.0) && wait <= secs(base),
                    "{attempt}: {wait:?}"
                );
            }
        }
        assert_eq!(
            backoff(&settings, 1, Some(Duration::from_secs(7)), 0),
            Duration::from_secs(7)
        );
        assert_eq!(
            backoff(&settings, 1, Some(Duration::from_secs(900)), 0),
            Duration::from_secs(10)
        );
        assert_eq!(
            backoff(&settings, 4, Some(Duration::from_secs(1)), 0),
            Duration::from_secs(4)
        );
    }
}
