//! What every handler shares.

use std::num::NonZeroU32;
use std::sync::Arc;

use pci_vault::Vault;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::{ApiKeySet, ApiKeys};
use crate::client::TrustedProxies;
use crate::config::PublicUrl;
use crate::metrics::Metrics;
use crate::ratelimit::{AuthFailures, RateLimit};
use crate::shutdown::Shutdown;
use pci_vault_webhooks::Webhooks;

/// Failed authentications allowed per minute per client unless configured.
pub const DEFAULT_AUTH_FAILURE_LIMIT: NonZeroU32 = match NonZeroU32::new(10) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

/// Event streams open at once unless configured: half the main listener's default
/// connection limit.
pub const DEFAULT_MAX_EVENT_STREAMS: usize = 512;

/// The server's shared state: cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    vault: Vault,
    api_keys: Arc<ApiKeySet>,
    public_url: PublicUrl,
    form_limit: RateLimit,
    reveal_limit: RateLimit,
    auth_failures: AuthFailures,
    trusted_proxies: TrustedProxies,
    metrics: Metrics,
    webhooks: Webhooks,
    shutdown: Shutdown,
    /// One permit per open event stream.
    event_streams: Arc<Semaphore>,
}

/// What a deployment sets beyond the basics of [`AppState::new`].
#[derive(Debug)]
pub struct Hardening {
    /// The API keys, fixed or reloaded from a file.
    pub api_keys: Arc<ApiKeySet>,
    /// The limit on failed authentications per client.
    pub auth_failures: AuthFailures,
    /// The proxies whose forwarding headers are believed.
    pub trusted_proxies: TrustedProxies,
    /// Most event streams open at once, so that streams (which stay open) cannot take
    /// every connection the customers' forms need.
    pub max_event_streams: usize,
}

impl AppState {
    /// The state of a server with fixed API keys, no trusted proxy and the default limit on
    /// failed authentications.
    pub fn new(
        vault: Vault,
        api_keys: ApiKeys,
        public_url: PublicUrl,
        form_limit: RateLimit,
        reveal_limit: RateLimit,
        metrics: Metrics,
        webhooks: Webhooks,
    ) -> Self {
        let hardening = Hardening {
            api_keys: Arc::new(ApiKeySet::fixed(api_keys)),
            auth_failures: AuthFailures::per_minute(DEFAULT_AUTH_FAILURE_LIMIT),
            trusted_proxies: TrustedProxies::none(),
            max_event_streams: DEFAULT_MAX_EVENT_STREAMS,
        };
        Self::hardened(
            vault,
            public_url,
            form_limit,
            reveal_limit,
            metrics,
            webhooks,
            hardening,
        )
    }

    /// The state of a server with every option.
    pub fn hardened(
        vault: Vault,
        public_url: PublicUrl,
        form_limit: RateLimit,
        reveal_limit: RateLimit,
        metrics: Metrics,
        webhooks: Webhooks,
        hardening: Hardening,
    ) -> Self {
        AppState(Arc::new(Shared {
            vault,
            api_keys: hardening.api_keys,
            public_url,
            form_limit,
            reveal_limit,
            auth_failures: hardening.auth_failures,
            trusted_proxies: hardening.trusted_proxies,
            metrics,
            webhooks,
            shutdown: Shutdown::new(),
            event_streams: Arc::new(Semaphore::new(hardening.max_event_streams)),
        }))
    }

    /// The vault, acting for the default tenant.
    pub fn vault(&self) -> &Vault {
        &self.0.vault
    }

    /// The configured API keys.
    pub fn api_keys(&self) -> &Arc<ApiKeySet> {
        &self.0.api_keys
    }

    /// The public URL.
    pub fn public_url(&self) -> &PublicUrl {
        &self.0.public_url
    }

    /// The limit on form submissions.
    pub fn form_limit(&self) -> &RateLimit {
        &self.0.form_limit
    }

    /// The limit on reveal attempts.
    pub fn reveal_limit(&self) -> &RateLimit {
        &self.0.reveal_limit
    }

    /// The limit on failed authentications.
    pub fn auth_failures(&self) -> &AuthFailures {
        &self.0.auth_failures
    }

    /// The trusted proxies.
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.0.trusted_proxies
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The webhooks: where operations announce session events.
    pub fn webhooks(&self) -> &Webhooks {
        &self.0.webhooks
    }

    /// A permit for one more event stream, held as long as the stream is open; `None`
    /// when the most allowed are open.
    pub fn event_stream_permit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.0.event_streams).try_acquire_owned().ok()
    }

    /// The shutdown: its signal to event streams, and the vault operations still running.
    pub fn shutdown(&self) -> &Shutdown {
        &self.0.shutdown
    }
}
