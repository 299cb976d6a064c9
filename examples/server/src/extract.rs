//! Extractors whose rejection is the API's own error, so a handler starts from valid
//! values: the session id of the path, a body that is wiped when dropped, and JSON read from
//! that body.

use std::ops::Deref;

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use pci_vault::SessionId;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;
use zeroize::Zeroize;

use crate::error::ApiError;
use crate::request::BodyKind;
use crate::timeouts::BodyDeadline;

/// A session id read from the `{id}` path segment, parsed and validated once.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path, names("id"))]
pub struct SessionIdPath(
    /// The session id: 43 characters of base64url.
    #[param(value_type = String, pattern = "^[A-Za-z0-9_-]{43}$")]
    pub SessionId,
);

impl<S: Send + Sync> FromRequestParts<S> for SessionIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::BadRequest("a session id is 43 characters of base64url"))?;
        Ok(SessionIdPath(SessionId::parse(&id)?))
    }
}

/// The request body, read whole; overwritten with zeros when dropped, if this is its only
/// reference (it is, for a body read whole by an extractor). `Debug` shows its length only:
/// it holds card data.
#[derive(Default)]
pub struct WipedBody(Bytes);

impl std::fmt::Debug for WipedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WipedBody({} bytes)", self.0.len())
    }
}

impl Deref for WipedBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for WipedBody {
    fn drop(&mut self) {
        if let Ok(mut owned) = std::mem::take(&mut self.0).try_into_mut() {
            owned.as_mut().zeroize();
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for WipedBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let deadline = request.extensions().get::<BodyDeadline>().copied();
        match Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(WipedBody(bytes)),
            Err(_) if deadline.is_some_and(|d| d.passed()) => Err(ApiError::BodyTimeout),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::PayloadTooLarge),
            Err(_) => Err(ApiError::BadRequest("the request body could not be read")),
        }
    }
}

/// How a request body is encoded, from its `Content-Type`.
pub fn body_kind(headers: &HeaderMap) -> Option<BodyKind> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(BodyKind::of)
}

/// An optional JSON body, read from a [`WipedBody`]: an empty body is `T::default()`, any
/// other must be `application/json` of `T`'s shape.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = body_kind(request.headers()) == Some(BodyKind::Json);
        let body = WipedBody::from_request(request, state).await?;
        if body.is_empty() {
            return Ok(Json(T::default()));
        }
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        serde_json::from_slice(&body).map(Json).map_err(|_| {
            ApiError::BadRequest("the body is not the JSON object this endpoint takes")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_length_of_a_body_never_its_content() {
        let body = WipedBody(Bytes::from_static(b"card_number=4242424242424242&cvc=123"));
        assert_eq!(format!("{body:?}"), "WipedBody(36 bytes)");
    }
}
