//! What every handler shares.

use std::sync::Arc;

use pci_vault::{Error, SessionId, SessionState, SessionStatus, Tenant, Vault};

use crate::auth::ApiKeys;
use crate::config::PublicUrl;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimit;

/// The server's shared state: cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    vault: Vault,
    api_keys: ApiKeys,
    tenants: Vec<Tenant>,
    public_url: PublicUrl,
    form_limit: RateLimit,
    reveal_limit: RateLimit,
    metrics: Metrics,
}

/// What the customer's form page may know about a session: its form, while it is pending.
#[derive(Debug)]
pub enum FormLookup {
    /// The session waits for the form.
    Pending(SessionStatus),
    /// Unknown, expired, or no longer pending: the neutral page.
    Gone,
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
    ) -> Self {
        let tenants = api_keys.tenants();
        AppState(Arc::new(Shared {
            vault,
            api_keys,
            tenants,
            public_url,
            form_limit,
            reveal_limit,
            metrics,
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

    /// Finds a session for the customer's form page, without changing it.
    ///
    /// The vault answers `status` per tenant, and a customer's link does not say its
    /// tenant, so each tenant an API key acts for is asked in turn (one store read each;
    /// another tenant's record is refused before any key is used).
    ///
    /// # Errors
    /// Store, key and integrity failures; `NOT_FOUND` is [`FormLookup::Gone`].
    pub async fn lookup_form(&self, id: &SessionId) -> Result<FormLookup, Error> {
        for tenant in &self.0.tenants {
            match self.0.vault.for_tenant(tenant.clone()).status(id).await {
                Ok(status) if status.state == SessionState::Pending => {
                    return Ok(FormLookup::Pending(status));
                }
                Ok(_) => return Ok(FormLookup::Gone),
                Err(Error::NotFound) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(FormLookup::Gone)
    }
}
