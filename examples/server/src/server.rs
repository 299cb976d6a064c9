//! Starting and stopping: logging, binding (with a connection limit), the admin listener,
//! the start banner, TLS (reloaded when its files change), graceful shutdown.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsAcceptor;
use hyper_util::rt::TokioExecutor;
use pci_vault::{ExposeSecret, SecretString, SessionOptions, Vault};
use tracing_subscriber::EnvFilter;

use crate::app::{admin_router, main_router};
use crate::config::{Args, LogFormat, PublicUrl};
use crate::listener::{self, LimitedListener, PeerAddr};
use crate::metrics::Metrics;
use crate::ratelimit::{AuthFailures, RateLimit};
use crate::reload::{TlsFiles, spawn_maintenance};
use crate::shutdown::Shutdown;
use crate::state::{AppState, Hardening};
use pci_vault_webhooks::Webhooks;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A configuration problem.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Binding, TLS files or serving failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> ServeError {
    move |source| ServeError::Io { context, source }
}

/// Installs the log subscriber: lines on standard error, text or JSON, level from
/// `RUST_LOG` (default `info`); each line within a request carries the request's span
/// (`request_id`, `client`, `api_key`). Keyring reloads are counted in `metrics`.
pub fn init_logging(format: LogFormat, metrics: &Metrics) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = match format {
        LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => lines
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
    };
    let result = tracing_subscriber::registry()
        .with(lines)
        .with(metrics.keyring_reload_layer())
        .try_init();
    if result.is_err() {
        tracing::debug!("a log subscriber was already installed");
    }
}

/// Runs the server until SIGTERM or Ctrl-C, then lets requests in flight finish.
///
/// # Errors
/// [`ServeError`] when the configuration is bad, the address cannot be bound, the TLS
/// files cannot be read, or serving fails.
pub async fn run(args: Args, metrics: Metrics) -> Result<(), ServeError> {
    // Before anything is opened or printed: a development API key on a public address
    // would be printed to standard output, which a container's log keeps.
    args.check_development()?;
    if args.shutdown_grace() < args.timeouts().request {
        tracing::warn!(
            "--shutdown-grace is shorter than --request-timeout-seconds: a request in flight \
             at shutdown may be cut off before its time limit"
        );
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            // ring is the one crypto provider compiled in; another crate may have installed
            // one already, which is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(TlsFiles::load(cert.clone(), key.clone()).await?)
        }
        _ => None,
    };
    let (api_keys, development_key) = args.api_keys()?;
    let api_keys = Arc::new(api_keys);
    let trusted_proxies = args.trusted_proxies()?;
    let (opened, store) = args.open_vault(&metrics).await?;
    if let Some(memory) = opened.memory {
        metrics.watch_memory_store(memory);
    }
    let vault = opened.vault;

    // Past the connection limit, new connections wait in the kernel's queue: as many as
    // the limit (the kernel caps it at net.core.somaxconn, 4096 by default).
    let backlog = args.max_connections.get().min(65_535);
    let listener = listener::bind(args.listen, backlog).map_err(io("binding --listen"))?;
    let local = listener.local_addr().map_err(io("binding --listen"))?;
    let admin = args
        .admin_listen
        .map(|addr| listener::bind(addr, backlog).map_err(io("binding --admin-listen")))
        .transpose()?;
    let public_url = match &args.public_url {
        Some(url) => PublicUrl::parse(url)?,
        None => PublicUrl::for_listener(local, tls.is_some()),
    };

    warn_if_exposed(local, &public_url, tls.is_some(), args.public_url.is_some());

    let form_limit = RateLimit::per_minute("form", args.form_rate_limit);
    let reveal_limit = RateLimit::per_minute("reveal", args.reveal_rate_limit);
    form_limit.spawn_cleanup(Duration::from_secs(60));
    reveal_limit.spawn_cleanup(Duration::from_secs(60));
    let auth_failures = AuthFailures::per_minute(args.auth_failure_limit);

    let webhooks = Webhooks::from_file(
        args.webhooks_file.as_deref(),
        args.webhooks_development,
        metrics.webhooks().clone(),
    )
    .map_err(crate::config::ConfigError::from)?;
    let https = tls.is_some() || public_url.is_https();
    let state = AppState::hardened(
        vault.clone(),
        public_url.clone(),
        form_limit,
        reveal_limit,
        metrics.clone(),
        webhooks.clone(),
        Hardening {
            api_keys: Arc::clone(&api_keys),
            auth_failures,
            trusted_proxies,
            max_event_streams: args.max_event_streams(),
        },
    );
    spawn_maintenance(state.clone(), tls.clone());
    let timeouts = args.timeouts();
    let app = main_router(state.clone(), https, timeouts, admin.is_none())
        .into_make_service_with_connect_info::<SocketAddr>();
    let max_connections = usize::try_from(args.max_connections.get()).unwrap_or(usize::MAX);
    // Longer than any request may take, so an answer being prepared never counts as idle.
    let idle_limit =
        LimitedListener::DEFAULT_IDLE_LIMIT.max(timeouts.request + HEADER_READ_TIMEOUT);
    let listener =
        LimitedListener::new(listener, max_connections, metrics.open_connections("main"))
            .map_err(io("listening"))?
            .with_idle_limit(idle_limit);

    let handle = Handle::new();
    let admin_handle = Handle::new();
    let shutdown = state.shutdown().clone();
    tokio::spawn(shutdown_on_signal(
        [handle.clone(), admin_handle.clone()],
        shutdown.clone(),
        args.shutdown_grace(),
    ));

    let admin_server = match admin {
        Some(admin) => {
            let admin_local = admin.local_addr().map_err(io("binding --admin-listen"))?;
            tracing::info!(address = %admin_local, "admin listener: /metrics, /healthz, /readyz");
            let admin = LimitedListener::new(
                admin,
                ADMIN_MAX_CONNECTIONS,
                metrics.open_connections("admin"),
            )
            .map_err(io("listening on --admin-listen"))?
            .with_idle_limit(idle_limit);
            let mut server = axum_server::Server::<PeerAddr>::from_listener(admin);
            limit_header_time(server.http_builder());
            let app =
                admin_router(state, timeouts).into_make_service_with_connect_info::<SocketAddr>();
            Some(tokio::spawn(
                server
                    .first_request_timeout(HEADER_READ_TIMEOUT)
                    .handle(admin_handle)
                    .serve(app),
            ))
        }
        None => None,
    };

    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(address = %local, scheme, store = %store, max_connections, "listening");
    print_banner(
        &public_url,
        &store,
        local,
        scheme,
        development_key.as_ref(),
        &vault,
    )
    .await;

    let mut server = axum_server::Server::<PeerAddr>::from_listener(listener);
    limit_header_time(server.http_builder());
    let server = server
        .first_request_timeout(HEADER_READ_TIMEOUT)
        .accept_error_handler(|_, e| tracing::warn!(error = %e, "accepting a connection failed"))
        .handle(handle);
    let served = match tls {
        Some(tls) => {
            let acceptor = RustlsAcceptor::new(tls.config).handshake_timeout(HEADER_READ_TIMEOUT);
            server.acceptor(acceptor).serve(app).await
        }
        None => server.serve(app).await,
    };
    served.map_err(io("serving"))?;
    if let Some(admin) = admin_server {
        match admin.await {
            Ok(result) => result.map_err(io("serving --admin-listen"))?,
            Err(_) => tracing::error!("the admin listener stopped abnormally"),
        }
    }
    shutdown.finish_work(&webhooks).await;
    tracing::info!("stopped");
    Ok(())
}

/// Most connections the admin listener holds open: enough for a few scrapers and probes.
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Longest time a client may take to send a request's headers (slow clients otherwise hold
/// connections open indefinitely), and to finish a TLS handshake.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);

fn limit_header_time(builder: &mut hyper_util::server::conn::auto::Builder<TokioExecutor>) {
    builder.http1().header_read_timeout(HEADER_READ_TIMEOUT);
}

/// Warns about configurations that send card data over the network in clear.
fn warn_if_exposed(local: SocketAddr, public_url: &PublicUrl, tls: bool, explicit_url: bool) {
    if !tls && !public_url.is_https() && !local.ip().is_loopback() {
        tracing::warn!(
            "serving plain HTTP on a non-loopback address: card data would cross the network \
             in clear; use --tls-cert/--tls-key, or a TLS proxy with an https --public-url"
        );
    }
    if !explicit_url && local.ip().is_unspecified() {
        tracing::warn!(
            "listening on an unspecified address without --public-url: links and the form's \
             Origin check use {}, which browsers cannot reach; set --public-url",
            public_url.origin()
        );
    }
}

async fn shutdown_on_signal(handles: [Handle<PeerAddr>; 2], shutdown: Shutdown, grace: Duration) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        () = term => {}
    }
    tracing::info!(grace_seconds = grace.as_secs(), "shutting down");
    // First the event streams: each ends with its `shutdown` message, so no open stream
    // holds the listeners' drain for the whole grace period.
    shutdown.begin(grace);
    for handle in handles {
        handle.graceful_shutdown(Some(grace));
    }
}

/// What a newcomer needs to try the flow: printed to standard output, not to the log.
/// The development API key is printed here and nowhere else.
#[expect(
    clippy::print_stdout,
    reason = "the start banner is for the person who started the server"
)]
async fn print_banner(
    public_url: &PublicUrl,
    store: &str,
    local: SocketAddr,
    scheme: &str,
    development_key: Option<&SecretString>,
    vault: &Vault,
) {
    let base = public_url.base();
    println!("pci-vault-server listening on {scheme}://{local}");
    println!("  store:          {store}");
    println!("  customer form:  {base}/forms/{{id}}");
    println!("  agent API:      {base}/v1/sessions");
    println!("  agent console:  {base}/agent");
    println!("  OpenAPI:        {base}/openapi.json");
    let Some(key) = development_key else {
        return;
    };
    let key = key.expose_secret();
    println!();
    println!("  development API key (this process only): {key}");
    if let Ok(ticket) = vault.create_session(&SessionOptions::default()).await {
        println!(
            "  a link to try now (valid 15 min):       {}",
            public_url.form_link(&ticket.id)
        );
    }
    println!();
    println!("  try it:");
    println!("    curl -s -X POST -H 'Authorization: Bearer {key}' {base}/v1/sessions");
    println!(
        "  then open the \"url\" it returns, fill in a public test card (examples/server/README.md), and:"
    );
    println!(
        "    curl -s -X POST -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\"
    );
    println!("         -d '{{\"pin\": \"<PIN from the page>\"}}' {base}/v1/sessions/<id>/reveal");
}
