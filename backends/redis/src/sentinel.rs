//! A connection to the primary that Redis Sentinel names, that follows a failover.
//!
//! redis-rs finds the primary through the sentinels (`SENTINEL MASTERS`, then `ROLE` on the
//! node) but keeps no connection to it. This keeps one multiplexed connection to the
//! primary it found, and drops it on the first sign that the node may no longer be the
//! primary: a connection error, a timeout, or a `READONLY` / `MASTERDOWN` reply. The call
//! that saw the sign fails (the vault repeats a write, which is idempotent); the next call
//! asks the sentinels again.
//!
//! The connection does not reconnect by itself (unlike a `ConnectionManager`): after a
//! failover the old primary comes back as a replica, and a silent reconnection to it
//! would serve stale reads.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisError, RedisResult};

use crate::options::{RedisOptions, SentinelOptions};
use pci_vault::{Error, Result};

/// The current primary's connection and the number of the discovery that found it.
type Current = Option<(u64, MultiplexedConnection)>;

/// A connection to the primary that the sentinels name.
pub(crate) struct SentinelConnection {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Current>,
    discoveries: Mutex<u64>,
    config: AsyncConnectionConfig,
    /// Longest wait for one call, a little under the store's timeout, so that this layer,
    /// not the store's own timeout, sees a hung primary and drops its connection.
    call_timeout: Duration,
}

/// Whether `e` may mean the node is no longer the primary, or no longer reachable.
fn ends_connection(e: &RedisError) -> bool {
    matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
        || e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
}

impl SentinelConnection {
    /// A client of the sentinels in `options`; connects nothing yet.
    pub(crate) fn new(
        options: &RedisOptions,
        sentinel: &SentinelOptions,
        certs: Option<redis::TlsCertificates>,
    ) -> Result<Self> {
        let bad_url = |_| {
            Error::InvalidArgument(
                "a Sentinel URL is redis://[user:password@]host:port or rediss://...",
            )
        };
        let mut addrs: Vec<ConnectionAddr> = Vec::new();
        let mut sentinel_auth: Option<(Option<String>, Option<String>)> = None;
        for url in &options.urls {
            let info = url.as_str().into_connection_info().map_err(bad_url)?;
            let redis = info.redis_settings();
            if sentinel_auth.is_none() && (redis.username().is_some() || redis.password().is_some())
            {
                sentinel_auth = Some((
                    redis.username().map(str::to_owned),
                    redis.password().map(str::to_owned),
                ));
            }
            addrs.push(info.addr().clone());
        }
        let mut builder =
            SentinelClientBuilder::new(addrs, &sentinel.master_name, SentinelServerType::Master)
                .map_err(bad_url)?;
        if let Some((user, password)) = sentinel_auth {
            if let Some(user) = user {
                builder = builder.set_client_to_sentinel_username(user);
            }
            if let Some(password) = password {
                builder = builder.set_client_to_sentinel_password(password);
            }
        }
        if let Some(user) = &sentinel.username {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = &sentinel.password {
            builder = builder.set_client_to_redis_password(password);
        }
        if options.is_tls() {
            builder = builder.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
            if let Some(certs) = certs {
                builder = builder
                    .set_client_to_sentinel_certificates(certs.clone())
                    .set_client_to_redis_certificates(certs);
            }
        }
        let client = builder.build().map_err(|_| {
            Error::InvalidArgument(
                "the CA file, client certificate or client key holds no valid PEM certificate or key",
            )
        })?;
        let call_timeout = options.timeout.saturating_sub(options.timeout / 10);
        Ok(SentinelConnection {
            sentinels: tokio::sync::Mutex::new(client),
            current: Mutex::new(None),
            discoveries: Mutex::new(0),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(options.connect_timeout.min(options.timeout)))
                .set_response_timeout(Some(call_timeout)),
            call_timeout,
        })
    }

    fn current(&self) -> Current {
        self.current.lock().map_or(None, |c| c.clone())
    }

    /// The current primary's connection, asking the sentinels for the primary when there
    /// is none. One caller asks; the others wait for its answer.
    pub(crate) async fn primary(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let mut sentinels = self.sentinels.lock().await;
        if let Some(current) = self.current() {
            return Ok(current);
        }
        // Asks the sentinels, then checks with ROLE that the node they name is a primary.
        let client = sentinels.async_get_client().await?;
        let conn = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let discovery = match self.discoveries.lock() {
            Ok(mut n) => {
                *n += 1;
                *n
            }
            Err(_) => 0,
        };
        if let Ok(mut current) = self.current.lock() {
            *current = Some((discovery, conn.clone()));
        }
        tracing::debug!(target: "pci_vault_redis", discovery, "connected to the primary named by the sentinels");
        Ok((discovery, conn))
    }

    /// A client of the primary the sentinels name now, for a connection of its own (a
    /// subscription).
    pub(crate) async fn primary_client(&self) -> RedisResult<redis::Client> {
        self.sentinels.lock().await.async_get_client().await
    }

    /// Drops the connection found by `discovery`, unless a later one replaced it.
    fn forget(&self, discovery: u64) {
        if let Ok(mut current) = self.current.lock()
            && current.as_ref().is_some_and(|(n, _)| *n == discovery)
        {
            tracing::info!(
                target: "pci_vault_redis",
                "the Redis primary stopped answering as a primary; asking the sentinels again"
            );
            *current = None;
        }
    }

    /// Runs `call` on the primary's connection, dropping that connection when the call
    /// shows it may no longer lead to the primary.
    pub(crate) async fn run<T, F, Fut>(&self, call: F) -> RedisResult<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let (discovery, conn) = self.primary().await?;
        match tokio::time::timeout(self.call_timeout, call(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if ends_connection(&e) {
                    self.forget(discovery);
                }
                Err(e)
            }
            Err(_) => {
                self.forget(discovery);
                Err(RedisError::from(std::io::Error::from(
                    std::io::ErrorKind::TimedOut,
                )))
            }
        }
    }
}
