//! What the server reloads while it runs: the API key file and the TLS certificate and key,
//! read again when their content changes ([`crate::watch`]), each outcome logged and counted.

use std::path::PathBuf;
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;

use crate::metrics::ReloadSource;
use crate::server::ServeError;
use crate::state::AppState;
use crate::watch::{RELOAD_INTERVAL, WatchedFiles};

/// The TLS certificate and key files, and the configuration served from them.
#[derive(Clone)]
pub(crate) struct TlsFiles {
    pub(crate) config: RustlsConfig,
    files: Arc<std::sync::Mutex<WatchedFiles>>,
}

/// Largest certificate chain or key file accepted.
const MAX_PEM_LEN: u64 = 1024 * 1024;

impl TlsFiles {
    pub(crate) async fn load(cert: PathBuf, key: PathBuf) -> Result<Self, ServeError> {
        let mut files = WatchedFiles::new(vec![cert, key], MAX_PEM_LEN);
        let contents = files
            .changed()
            .map_err(crate::server::io("reading the TLS certificate and key"))?
            .unwrap_or_default();
        let [cert, key] = contents.as_slice() else {
            return Err(ServeError::Io {
                context: "reading the TLS certificate and key",
                source: std::io::Error::other("the files were not read"),
            });
        };
        let config = RustlsConfig::from_pem(cert.to_vec(), key.to_vec())
            .await
            .map_err(crate::server::io("reading the TLS certificate and key"))?;
        Ok(TlsFiles {
            config,
            files: Arc::new(std::sync::Mutex::new(files)),
        })
    }

    /// Serves the files' new certificate and key if they changed and load; `None` when
    /// they did not change.
    async fn reload(&self) -> Option<std::io::Result<()>> {
        let changed = self
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .changed();
        match changed {
            Ok(None) => None,
            Ok(Some(contents)) => match contents.as_slice() {
                [cert, key] => Some(
                    self.config
                        .reload_from_pem(cert.to_vec(), key.to_vec())
                        .await,
                ),
                _ => Some(Err(std::io::Error::other("the files were not read"))),
            },
            Err(e) => Some(Err(e)),
        }
    }
}

/// Every [`RELOAD_INTERVAL`]: reloads the API key file and the TLS files when they change,
/// and forgets idle clients of the limit on failed authentications.
pub(crate) fn spawn_maintenance(state: AppState, tls: Option<TlsFiles>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RELOAD_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        loop {
            tick.tick().await;
            ticks += 1;
            let metrics = state.metrics();
            match state.api_keys().reload() {
                None => {}
                Some(Ok(count)) => {
                    metrics.reloaded(ReloadSource::ApiKeys, true);
                    tracing::info!(keys = count, "reloaded the API key file");
                }
                Some(Err(e)) => {
                    metrics.reloaded(ReloadSource::ApiKeys, false);
                    tracing::error!(error = %e, "keeping the previous API keys: the API key file does not load");
                }
            }
            if let Some(tls) = &tls {
                match tls.reload().await {
                    None => {}
                    Some(Ok(())) => {
                        metrics.reloaded(ReloadSource::Tls, true);
                        tracing::info!("reloaded the TLS certificate and key");
                    }
                    Some(Err(e)) => {
                        metrics.reloaded(ReloadSource::Tls, false);
                        tracing::error!(error = %e, "keeping the previous TLS certificate: the new files do not load");
                    }
                }
            }
            if ticks.is_multiple_of(30) {
                state.auth_failures().forget_idle();
            }
        }
    });
}
