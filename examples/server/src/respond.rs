//! Response bodies that carry secrets, and the wire format of times.

use std::time::SystemTime;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use zeroize::Zeroizing;

/// Bytes that are wiped when the last reference to them drops: the backing store of a
/// response body that holds card data or a PIN.
pub struct ZeroizingBytes(pub Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for ZeroizingBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A body over `bytes` that wipes them once sent.
pub fn secret_body(bytes: Zeroizing<Vec<u8>>) -> Body {
    Body::from(Bytes::from_owner(ZeroizingBytes(bytes)))
}

/// A JSON response whose serialized text is wiped once sent. `capacity` should cover the
/// whole text, so the buffer never grows (growing would leave an unwiped copy behind).
pub fn secret_json(status: StatusCode, value: &impl Serialize, capacity: usize) -> Response {
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    if serde_json::to_writer(&mut *bytes, value).is_err() {
        tracing::error!("a response failed to serialize");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut response = Response::new(secret_body(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A time as RFC 3339 in UTC, e.g. `2026-11-25T14:05:09Z`.
pub fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::from(at))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_rfc3339_utc_seconds() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_564_800_123);
        assert_eq!(rfc3339(at), "2026-11-25T00:00:00Z");
    }
}
