//! The context of each request: the client's address, a request id, and the log span that
//! carries both (and, once authenticated, the label of the API key) into every log line
//! the request causes, audit events included.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use crate::state::AppState;

/// The request id header, read from a trusted proxy and set on every response.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a trusted proxy.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The client's address: the TCP peer, or the address a trusted proxy forwarded. Rate
/// limits and logs use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The request's id, as sent back in `X-Request-Id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub HeaderValue);

/// Whether a request id taken from a proxy is one the logs can carry: 1–128 characters of
/// `A-Z a-z 0-9 . _ : -`.
pub fn is_well_formed(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A new request id: 128 random bits, 32 lowercase hex digits.
fn generate() -> HeaderValue {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        tracing::error!("the OS random source failed; the request id is not unique");
    }
    let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Middleware, outermost: finds the client's address and the request id, runs the request
/// in a `request` span carrying them, and sets `X-Request-Id` on the response.
pub async fn identify(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let proxies = state.trusted_proxies();
    let client = proxies.client(peer.ip(), request.headers());
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| proxies.contains(peer.ip()) && is_well_formed(v.as_bytes()))
        .cloned()
        .unwrap_or_else(generate);
    let span = tracing::info_span!(
        "request",
        request_id = %String::from_utf8_lossy(id.as_bytes()),
        client = %client,
        api_key = tracing::field::Empty,
    );
    request.extensions_mut().insert(ClientAddr(client));
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).instrument(span).await;
    response.headers_mut().insert(REQUEST_ID.clone(), id);
    response
}

/// Records the label of the API key that authenticated the current request in its span.
pub fn record_api_key(label: &str) {
    tracing::Span::current().record("api_key", label);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        assert!(is_well_formed(b"4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(is_well_formed(b"Root-1.abc_def:9"));
        assert!(!is_well_formed(b""));
        assert!(!is_well_formed(b"a b"));
        assert!(!is_well_formed(b"a\"b"));
        assert!(!is_well_formed(&[b'a'; 129]));
        let id = generate();
        assert_eq!(id.len(), 32);
        assert_ne!(id, generate());
    }
}
