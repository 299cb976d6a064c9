//! One connection type over a single node and a cluster.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, FromRedisValue, RedisResult, Script, TlsCertificates};

use crate::errors::at_connect;
use crate::options::{RedisOptions, redact_url};
use pci_vault::{Error, Result};

/// A reconnecting connection to a single node or a cluster. Cheap to clone per call.
pub(crate) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

fn read_pem(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::store_unavailable(format!(
            "redis: cannot read the {what} {}: {}",
            path.display(),
            e.kind()
        ))
    })
}

fn tls_certificates(options: &RedisOptions) -> Result<Option<TlsCertificates>> {
    if options.ca_file.is_none() && options.client_cert.is_none() {
        return Ok(None);
    }
    let root_cert = options
        .ca_file
        .as_deref()
        .map(|p| read_pem(p, "CA file"))
        .transpose()?;
    let client_tls = match &options.client_cert {
        Some((cert, key)) => Some(redis::ClientTlsConfig {
            client_cert: read_pem(cert, "client certificate")?,
            client_key: read_pem(key, "client key")?,
        }),
        None => None,
    };
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

fn bad_url(url: &str) -> impl FnOnce(redis::RedisError) -> Error + '_ {
    move |_| {
        tracing::error!(target: "pci_vault_redis", url = %redact_url(url), "malformed Redis URL");
        Error::InvalidArgument(
            "a Redis URL is redis://[user:password@]host[:port][/db] or rediss://...",
        )
    }
}

impl Connection {
    pub(crate) async fn open(options: &RedisOptions) -> Result<Self> {
        let certs = tls_certificates(options)?;
        let connecting = async {
            if options.cluster {
                let mut builder = ClusterClient::builder(options.urls.iter().map(String::as_str))
                    .connection_timeout(options.connect_timeout)
                    .response_timeout(options.timeout)
                    .retries(2);
                if let Some(certs) = certs {
                    builder = builder.certs(certs);
                }
                let first = options.urls.first().map(String::as_str).unwrap_or_default();
                let client = builder.build().map_err(bad_url(first))?;
                let conn = client
                    .get_async_connection()
                    .await
                    .map_err(|e| at_connect(&e))?;
                Ok(Connection::Cluster(conn))
            } else {
                let url = options.urls.first().map(String::as_str).unwrap_or_default();
                let client = match certs {
                    Some(certs) => Client::build_with_tls(url, certs),
                    None => Client::open(url),
                }
                .map_err(bad_url(url))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(Some(options.timeout))
                    .set_number_of_retries(2);
                let conn = ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(|e| at_connect(&e))?;
                Ok(Connection::Single(conn))
            }
        };
        match tokio::time::timeout(options.connect_timeout, connecting).await {
            Ok(result) => result,
            Err(_) => Err(Error::store_unavailable(format!(
                "redis: no answer from {} within the connect timeout of {:?}",
                options
                    .urls
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>()
                    .join(", "),
                options.connect_timeout
            ))),
        }
    }

    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        match self {
            Connection::Single(c) => cmd.query_async(&mut c.clone()).await,
            Connection::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        }
    }

    pub(crate) async fn get(&self, key: &str) -> RedisResult<Option<Vec<u8>>> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    /// `SET key value NX PX ttl_ms`: `Some(())` when written, `None` when the key exists.
    pub(crate) async fn set_nx_px(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: u64,
    ) -> RedisResult<Option<()>> {
        let reply: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms),
            )
            .await?;
        Ok(reply.map(|_| ()))
    }

    pub(crate) async fn del(&self, key: &str) -> RedisResult<()> {
        self.query(redis::cmd("DEL").arg(key)).await
    }

    pub(crate) async fn ping(&self) -> RedisResult<()> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }

    pub(crate) async fn config_get(&self, parameter: &str) -> RedisResult<Vec<String>> {
        self.query(redis::cmd("CONFIG").arg("GET").arg(parameter))
            .await
    }

    /// Runs `script` (EVALSHA, loading it on NOSCRIPT) on one key.
    pub(crate) async fn script<T: FromRedisValue>(
        &self,
        script: &Script,
        key: &str,
        args: &[Vec<u8>],
    ) -> RedisResult<T> {
        async fn run<C: ConnectionLike, T: FromRedisValue>(
            script: &Script,
            key: &str,
            args: &[Vec<u8>],
            con: &mut C,
        ) -> RedisResult<T> {
            let mut invocation = script.key(key);
            for arg in args {
                invocation.arg(arg.as_slice());
            }
            invocation.invoke_async(con).await
        }
        match self {
            Connection::Single(c) => run(script, key, args, &mut c.clone()).await,
            Connection::Cluster(c) => run(script, key, args, &mut c.clone()).await,
        }
    }
}
