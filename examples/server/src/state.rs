//! What every handler shares.

use std::sync::Arc;

use pci_vault::Vault;

use crate::auth::ApiKeys;
use crate::config::PublicUrl;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimit;
use crate::webhooks::Webhooks;

/// The server's shared state: cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    vault: Vault,
    api_keys: ApiKeys,
    public_url: PublicUrl,
    form_limit: RateLimit,
    reveal_limit: RateLimit,
    metrics: Metrics,
    webhooks: Webhooks,
}

impl AppState {
    /// The state of a server.
    pub fn new(
        vault: Vault,
        api_keys: ApiKeys,
        public_url: PublicUrl,
        form_limit: RateLimit,
        reveal_limit: RateLimit,
        metrics: Metrics,
        webhooks: Webhooks,
    ) -> Self {
        AppState(Arc::new(Shared {
            vault,
            api_keys,
            public_url,
            form_limit,
            reveal_limit,
            metrics,
            webhooks,
        }))
    }

    /// The vault, acting for the default tenant.
    pub fn vault(&self) -> &Vault {
        &self.0.vault
    }

    /// The configured API keys.
    pub fn api_keys(&self) -> &ApiKeys {
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

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The webhooks: where operations announce session events.
    pub fn webhooks(&self) -> &Webhooks {
        &self.0.webhooks
    }
}
