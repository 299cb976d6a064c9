//! Starting and stopping: logging, binding, the start banner, TLS, graceful shutdown.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use hyper_util::rt::TokioExecutor;
use pci_vault::{ExposeSecret, SecretString, SessionOptions, Vault};
use tracing_subscriber::EnvFilter;

use crate::app::router;
use crate::config::{Args, LogFormat, PublicUrl};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimit;
use crate::state::AppState;
use crate::webhooks::Webhooks;

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

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> ServeError {
    move |source| ServeError::Io { context, source }
}

/// Installs the log subscriber: lines on standard error, text or JSON, level from
/// `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    if result.is_err() {
        tracing::debug!("a log subscriber was already installed");
    }
}

/// Runs the server until SIGTERM or Ctrl-C, then lets requests in flight finish.
///
/// # Errors
/// [`ServeError`] when the configuration is bad, the address cannot be bound, the TLS
/// files cannot be read, or serving fails.
pub async fn run(args: Args) -> Result<(), ServeError> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            // ring is the one crypto provider compiled in; another crate may have installed
            // one already, which is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(
                RustlsConfig::from_pem_file(cert, key)
                    .await
                    .map_err(io("reading the TLS certificate and key"))?,
            )
        }
        _ => None,
    };
    let metrics = Metrics::new();
    let (api_keys, development_key) = args.api_keys()?;
    let (opened, store) = args.open_vault(&metrics).await?;
    let vault = opened.vault;

    let listener = std::net::TcpListener::bind(args.listen).map_err(io("binding --listen"))?;
    let local = listener.local_addr().map_err(io("binding --listen"))?;
    let public_url = match &args.public_url {
        Some(url) => PublicUrl::parse(url)?,
        None => PublicUrl::for_listener(local, tls.is_some()),
    };

    warn_if_exposed(local, &public_url, tls.is_some(), args.public_url.is_some());

    let form_limit = RateLimit::per_minute("form", args.form_rate_limit);
    let reveal_limit = RateLimit::per_minute("reveal", args.reveal_rate_limit);
    form_limit.spawn_cleanup(Duration::from_secs(60));
    reveal_limit.spawn_cleanup(Duration::from_secs(60));

    let webhooks = Webhooks::from_file(
        args.webhooks_file.as_deref(),
        args.webhooks_development,
        metrics.webhooks().clone(),
    )
    .map_err(crate::config::ConfigError::from)?;
    let https = tls.is_some() || public_url.is_https();
    let state = AppState::new(
        vault.clone(),
        api_keys,
        public_url.clone(),
        form_limit,
        reveal_limit,
        metrics,
        webhooks,
    );
    let app = router(state, https).into_make_service_with_connect_info::<SocketAddr>();

    let handle = Handle::new();
    tokio::spawn(shutdown_on_signal(handle.clone(), args.shutdown_grace()));

    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(address = %local, scheme, store = %store, "listening");
    print_banner(
        &public_url,
        &store,
        local,
        scheme,
        development_key.as_ref(),
        &vault,
    )
    .await;

    match tls {
        Some(config) => {
            let mut server =
                axum_server::from_tcp_rustls(listener, config).map_err(io("listening"))?;
            limit_header_time(server.http_builder());
            server.handle(handle).serve(app).await
        }
        None => {
            let mut server = axum_server::from_tcp(listener).map_err(io("listening"))?;
            limit_header_time(server.http_builder());
            server.handle(handle).serve(app).await
        }
    }
    .map_err(io("serving"))?;
    tracing::info!("stopped");
    Ok(())
}

/// Longest time a client may take to send a request's headers (slow clients otherwise hold
/// connections open indefinitely).
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

async fn shutdown_on_signal(handle: Handle<SocketAddr>, grace: Duration) {
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
    handle.graceful_shutdown(Some(grace));
}

/// What a newcomer needs to try the flow: printed to standard output, not to the log.
/// The development API key is printed here and nowhere else.
#[allow(
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
