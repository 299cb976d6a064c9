//! One connection type over a single node, a cluster and a primary found through Sentinel.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{
    Client, ErrorKind, FromRedisValue, RedisResult, Script, ServerErrorKind, TlsCertificates, Value,
};

use crate::errors::at_connect;
use crate::options::{MinReplicas, RedisOptions, redact_url};
use crate::sentinel::SentinelConnection;
use pci_vault::{Error, Result};

/// A reconnecting connection to a single node, a cluster, or the primary the sentinels
/// name.
pub(crate) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Box<SentinelConnection>),
}

/// Runs `$body` with `$c` bound to a `&mut` connection of whichever kind `$conn` is.
macro_rules! on_connection {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            Connection::Single(c) => {
                let $c = &mut c.clone();
                $body.await
            }
            Connection::Cluster(c) => {
                let $c = &mut c.clone();
                $body.await
            }
            Connection::Sentinel(s) => {
                s.run(|mut conn| async move {
                    let $c = &mut conn;
                    $body.await
                })
                .await
            }
        }
    };
}

fn read_pem(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        // PEM text given where its file's path belongs (a client key, say) is not shown.
        let text = path.to_string_lossy();
        let shown = if text.contains("-----") || text.contains(['\n', '\r']) {
            "(a path that looks like PEM text, not shown)".into()
        } else {
            text
        };
        Error::store_unavailable(format!(
            "redis: cannot read the {what} {shown}: {}",
            e.kind()
        ))
    })
}

pub(crate) fn tls_certificates(options: &RedisOptions) -> Result<Option<TlsCertificates>> {
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

/// The redis crate builds its rustls client configuration with the process-wide crypto
/// provider, and rustls cannot pick one by itself when no provider or several are compiled
/// in (it would panic inside the connect). Installs ring as that provider unless the
/// application installed its own.
fn ensure_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // An error means another thread installed a provider first; that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl Connection {
    pub(crate) async fn open(options: &RedisOptions) -> Result<Self> {
        if options.is_tls() {
            ensure_tls_provider();
        }
        let certs = tls_certificates(options)?;
        for url in &options.urls {
            Client::open(url.as_str()).map_err(bad_url(url))?;
        }
        let bad_pem = |_| {
            Error::InvalidArgument(
                "the CA file, client certificate or client key holds no valid PEM certificate or key",
            )
        };
        let connecting = async {
            if let Some(sentinel) = &options.sentinel {
                let conn = SentinelConnection::new(options, sentinel, certs)?;
                conn.primary()
                    .await
                    .map_err(|e| at_connect(&e, &options.redacted_urls()))?;
                Ok(Connection::Sentinel(Box::new(conn)))
            } else if options.cluster {
                let mut builder = ClusterClient::builder(options.urls.iter().map(String::as_str))
                    .connection_timeout(options.connect_timeout)
                    .response_timeout(options.timeout)
                    .retries(2);
                if let Some(certs) = certs {
                    builder = builder.certs(certs);
                }
                let client = builder.build().map_err(bad_pem)?;
                let conn = client
                    .get_async_connection()
                    .await
                    .map_err(|e| at_connect(&e, &options.redacted_urls()))?;
                Ok(Connection::Cluster(conn))
            } else {
                let url = options.urls.first().map(String::as_str).unwrap_or_default();
                let client = match certs {
                    Some(certs) => Client::build_with_tls(url, certs).map_err(bad_pem)?,
                    None => Client::open(url).map_err(bad_url(url))?,
                };
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(Some(options.timeout))
                    .set_number_of_retries(2);
                let conn = ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(|e| at_connect(&e, &options.redacted_urls()))?;
                Ok(Connection::Single(conn))
            }
        };
        match tokio::time::timeout(options.connect_timeout, connecting).await {
            Ok(result) => result,
            Err(_) => Err(Error::store_unavailable(format!(
                "redis: no answer from {} within the connect timeout of {:?}",
                options.redacted_urls(),
                options.connect_timeout
            ))),
        }
    }

    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        on_connection!(self, |c| cmd.query_async(c))
    }

    pub(crate) async fn get(&self, key: &str) -> RedisResult<Option<Vec<u8>>> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    pub(crate) async fn publish(&self, channel: &str, event: &[u8]) -> RedisResult<()> {
        let _receivers: i64 = self
            .query(redis::cmd("PUBLISH").arg(channel).arg(event))
            .await?;
        Ok(())
    }

    pub(crate) async fn ping(&self) -> RedisResult<()> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }

    /// `CONFIG GET parameter` on every node — the one node, or every master and replica of
    /// a cluster, since each holds sessions — as `(node, value)` pairs. The node is empty for
    /// a single node; the value is `None` where the node refused (ACL) or did not answer.
    pub(crate) async fn config_get_each_node(
        &self,
        parameter: &str,
    ) -> RedisResult<Vec<(String, Option<String>)>> {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("GET").arg(parameter);
        let value_of = |reply: Value| {
            Vec::<String>::from_redis_value(reply)
                .ok()
                .and_then(|pair| pair.into_iter().nth(1))
        };
        match self {
            Connection::Single(_) | Connection::Sentinel(_) => {
                let reply: Value = self.query(&cmd).await?;
                Ok(vec![(String::new(), value_of(reply))])
            }
            Connection::Cluster(c) => {
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None));
                let replies = c.clone().route_command(cmd, routing).await?;
                let Value::Map(replies) = replies else {
                    return Ok(Vec::new());
                };
                let mut nodes: Vec<(String, Option<String>)> = replies
                    .into_iter()
                    .map(|(node, reply)| {
                        let node = String::from_redis_value(node).unwrap_or_default();
                        (node, value_of(reply))
                    })
                    .collect();
                nodes.sort();
                Ok(nodes)
            }
        }
    }

    /// `SCRIPT LOAD` of `script`, on every node of a cluster.
    pub(crate) async fn load_script(&self, script: &Script) -> RedisResult<()> {
        let _hash: String = on_connection!(self, |c| script.load_async(c))?;
        Ok(())
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
        on_connection!(self, |c| run(script, key, args, c))
    }

    /// Runs `script` on one key and `WAIT count timeout` in one pipeline — one round trip —
    /// on the connection of the key's primary, so the `WAIT` counts the replicas that have
    /// this write. Answers the script's reply and the number of replicas that
    /// acknowledged. On NOSCRIPT (a restarted or promoted server) loads the script and
    /// sends the pipeline again: the script is idempotent, and the first `EVALSHA` did not
    /// run.
    pub(crate) async fn script_then_wait<T: FromRedisValue>(
        &self,
        script: &Script,
        key: &str,
        args: &[Vec<u8>],
        wait: MinReplicas,
    ) -> RedisResult<(T, i64)> {
        async fn run<C: ConnectionLike, T: FromRedisValue>(
            script: &Script,
            key: &str,
            args: &[Vec<u8>],
            wait: MinReplicas,
            con: &mut C,
        ) -> RedisResult<(T, i64)> {
            let mut invocation = script.key(key);
            for arg in args {
                invocation.arg(arg.as_slice());
            }
            let mut pipe = redis::pipe();
            pipe.invoke_script(&invocation)
                .cmd("WAIT")
                .arg(wait.count)
                .arg(wait.timeout_ms());
            match pipe.query_async(con).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    script.load_async(con).await?;
                    pipe.query_async(con).await
                }
                answered => answered,
            }
        }
        on_connection!(self, |c| run(script, key, args, wait, c))
    }
}
