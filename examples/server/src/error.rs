//! Errors of the HTTP API: one JSON shape with the stable codes of
//! [`pci_vault::ErrorCode`] and two of the server's own.
//!
//! ```json
//! {"error": {"code": "WRONG_PIN", "message": "wrong PIN; 3 attempt(s) left", "attempts_left": 3}}
//! ```
//!
//! Messages come from the core (which never puts a field value, PIN, key or session id in
//! them) or are fixed text here. Server-side failures (store, keys, integrity) answer with
//! a fixed message; their detail goes to the log only.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pci_vault::{Error, ErrorCode};
use serde::Serialize;
use std::collections::BTreeMap;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{Content, Ref, RefOr, Response as ApiResponse, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};

/// Every error the HTTP layer answers with.
#[derive(Debug)]
pub enum ApiError {
    /// An error of the vault, answered with its code and the status of [`status_of`].
    Vault(Error),
    /// The request itself is malformed (JSON, id, PIN, option): `INVALID_ARGUMENT`.
    BadRequest(&'static str),
    /// The body is over the size limit: 413, `INVALID_ARGUMENT`.
    PayloadTooLarge,
    /// The body has a content type this endpoint does not take: 415, `INVALID_ARGUMENT`.
    UnsupportedMediaType,
    /// No route for this path: 404, `NOT_FOUND`.
    NoRoute,
    /// The route exists but not for this method: 405, `INVALID_ARGUMENT`.
    MethodNotAllowed,
    /// A missing or wrong API key: 401, `UNAUTHORIZED`.
    Unauthorized,
    /// Too many requests from this client: 429, `RATE_LIMITED`, with `Retry-After`.
    RateLimited {
        /// Seconds until the next request is allowed.
        retry_after: u64,
    },
    /// The body did not arrive within the body timeout: 408, `REQUEST_TIMEOUT`; the
    /// connection is closed.
    BodyTimeout,
    /// The request was not answered within the request timeout: 503, `REQUEST_TIMEOUT`.
    RequestTimeout,
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Vault(e)
    }
}

/// The HTTP status of a vault error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::AlreadySubmitted | ErrorCode::NotSubmitted => StatusCode::CONFLICT,
        ErrorCode::AlreadyRevealed | ErrorCode::Cancelled => StatusCode::GONE,
        ErrorCode::Locked => StatusCode::LOCKED,
        ErrorCode::WrongPin => StatusCode::FORBIDDEN,
        ErrorCode::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorCode::StoreUnavailable | ErrorCode::CapacityExceeded => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: the library's, `UNAUTHORIZED`, `RATE_LIMITED` or `REQUEST_TIMEOUT`.
    #[schema(example = "WRONG_PIN")]
    pub code: WireCode,
    /// Human text. Never contains a field value, a PIN, a key or a session id.
    pub message: String,
    /// `WRONG_PIN` only: wrong PINs still allowed before the session locks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<u8>,
    /// `VALIDATION_FAILED` only: the failing fields and why; never their values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldErrorBody>>,
}

/// One invalid form field.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorBody {
    /// The field name, e.g. `card_number`.
    pub field: String,
    /// Why it was rejected, e.g. `luhn`, `expired`, `required`.
    pub reason: String,
}

/// A stable error code as it appears on the wire: one of the library's
/// ([`ErrorCode::as_str`]) or one of the server's own, `UNAUTHORIZED`, `RATE_LIMITED` and
/// `REQUEST_TIMEOUT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WireCode(&'static str);

impl WireCode {
    /// A missing or wrong API key.
    pub const UNAUTHORIZED: WireCode = WireCode("UNAUTHORIZED");
    /// Too many requests from one client.
    pub const RATE_LIMITED: WireCode = WireCode("RATE_LIMITED");
    /// The body or the whole request took longer than its timeout.
    pub const REQUEST_TIMEOUT: WireCode = WireCode("REQUEST_TIMEOUT");

    /// Every code a response can carry, for the OpenAPI document.
    pub fn all() -> impl Iterator<Item = WireCode> {
        ErrorCode::ALL.into_iter().map(WireCode::from).chain([
            WireCode::UNAUTHORIZED,
            WireCode::RATE_LIMITED,
            WireCode::REQUEST_TIMEOUT,
        ])
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl From<ErrorCode> for WireCode {
    fn from(code: ErrorCode) -> Self {
        WireCode(code.as_str())
    }
}

impl utoipa::PartialSchema for WireCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A stable error code: the library's, UNAUTHORIZED, RATE_LIMITED or REQUEST_TIMEOUT",
            ))
            .enum_values(Some(WireCode::all().map(WireCode::as_str)))
            .into()
    }
}

impl ToSchema for WireCode {
    fn name() -> std::borrow::Cow<'static, str> {
        "ErrorCode".into()
    }
}

impl ApiError {
    /// The status and stable code this error answers with: the one table that both the
    /// responses and the OpenAPI document read.
    pub fn status(&self) -> (StatusCode, WireCode) {
        let invalid = WireCode::from(ErrorCode::InvalidArgument);
        match self {
            ApiError::Vault(e) => (status_of(e.code()), e.code().into()),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, invalid),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, invalid),
            ApiError::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, invalid),
            ApiError::NoRoute => (StatusCode::NOT_FOUND, ErrorCode::NotFound.into()),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, invalid),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, WireCode::UNAUTHORIZED),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, WireCode::RATE_LIMITED),
            ApiError::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, WireCode::REQUEST_TIMEOUT),
            ApiError::RequestTimeout => {
                (StatusCode::SERVICE_UNAVAILABLE, WireCode::REQUEST_TIMEOUT)
            }
        }
    }

    /// The text a client sees; never a field value, a PIN, a key or a session id.
    fn message(&self) -> String {
        match self {
            ApiError::Vault(e) => public_message(e),
            ApiError::BadRequest(m) => (*m).to_owned(),
            ApiError::PayloadTooLarge => "the request body is too large".to_owned(),
            ApiError::UnsupportedMediaType => {
                "unsupported content type: send application/json".to_owned()
            }
            ApiError::NoRoute => "no such endpoint".to_owned(),
            ApiError::MethodNotAllowed => "method not allowed on this endpoint".to_owned(),
            ApiError::Unauthorized => {
                "a valid API key is required: Authorization: Bearer <key>".to_owned()
            }
            ApiError::RateLimited { retry_after } => {
                format!("too many requests; retry after {retry_after} s")
            }
            ApiError::BodyTimeout => {
                "the request body did not arrive within the body timeout".to_owned()
            }
            ApiError::RequestTimeout => {
                "the request was not answered within the request timeout; it may or may not \
                 have taken effect"
                    .to_owned()
            }
        }
    }

    /// The status and body of this error.
    pub fn parts(&self) -> (StatusCode, ErrorBody) {
        let (status, code) = self.status();
        let message = self.message();
        let vault = match self {
            ApiError::Vault(e) => Some(e),
            _ => None,
        };
        let attempts_left = vault.and_then(Error::attempts_left);
        let fields = vault.and_then(Error::field_problems).map(|fields| {
            fields
                .into_iter()
                .map(|(field, reason)| FieldErrorBody {
                    field,
                    reason: reason.to_owned(),
                })
                .collect()
        });
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message,
                attempts_left,
                fields,
            },
        };
        (status, body)
    }
}

/// The message a client sees. Failures on the server side get a fixed text and their
/// detail is logged, so a backend's wording never reaches a client.
fn public_message(e: &Error) -> String {
    match e.code() {
        ErrorCode::StoreUnavailable => {
            tracing::warn!(error = %e, "store unavailable");
            "the session store is unavailable; try again".to_owned()
        }
        ErrorCode::KeyUnavailable => {
            tracing::error!(error = %e, "key provider failed");
            "the key provider is unavailable".to_owned()
        }
        ErrorCode::IntegrityError => {
            tracing::error!(error = %e, "stored record failed its integrity check");
            "a stored record failed its integrity check".to_owned()
        }
        _ => e.to_string(),
    }
}

/// The OpenAPI error responses of an operation that fails with the vault's `codes` and the
/// server's `own` errors, one per status, from the same mapping that answers them
/// ([`ApiError::status`]). Statuses in `pages` are also answered with an HTML page.
pub fn error_responses(
    codes: &[ErrorCode],
    own: &[ApiError],
    pages: &[u16],
) -> BTreeMap<String, RefOr<ApiResponse>> {
    let mut statuses: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    let vault = codes
        .iter()
        .map(|&code| (status_of(code), code.to_string()));
    let server = own.iter().map(|e| {
        let (status, code) = e.status();
        match e {
            ApiError::PayloadTooLarge | ApiError::UnsupportedMediaType => {
                (status, format!("{}: {}", code.as_str(), e.message()))
            }
            _ => (status, code.as_str().to_owned()),
        }
    });
    for (status, text) in vault.chain(server) {
        let texts = statuses.entry(status.as_u16()).or_default();
        if !texts.contains(&text) {
            texts.push(text);
        }
    }
    let json = Content::new(Some(Ref::from_schema_name("ErrorBody")));
    let page = Content::new(Some(ObjectBuilder::new().schema_type(Type::String)));
    statuses
        .into_iter()
        .map(|(status, texts)| {
            let mut response = ResponseBuilder::new()
                .description(texts.join(" or "))
                .content("application/json", json.clone());
            if pages.contains(&status) {
                response = response.content("text/html", page.clone());
            }
            if status == StatusCode::TOO_MANY_REQUESTS.as_u16() {
                let wait = HeaderBuilder::new()
                    .schema(Some(<u64 as PartialSchema>::schema()))
                    .description(Some("Seconds to wait"));
                response = response.header("Retry-After", wait.build());
            }
            (status.to_string(), RefOr::T(response.build()))
        })
        .collect()
}

/// Declares a type whose OpenAPI responses are the [`error_responses`] of an operation: the
/// vault codes it fails with, the server's own errors, and the statuses it also answers with
/// an HTML page.
macro_rules! documented_errors {
    ($(#[$doc:meta])* $name:ident {
        codes: [$($code:ident),* $(,)?],
        own: [$($own:expr),* $(,)?]
        $(, pages: [$($page:literal),* $(,)?])? $(,)?
    }) => {
        $(#[$doc])*
        struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::Response>,
            > {
                $crate::error::error_responses(
                    &[$(pci_vault::ErrorCode::$code),*],
                    &[$($own),*],
                    &[$($($page),*)?],
                )
            }
        }
    };
}
pub(crate) use documented_errors;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.parts();
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::RateLimited { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            ApiError::BodyTimeout => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pci_vault::{FieldError, FieldReason};

    #[test]
    fn every_library_code_has_its_status() {
        let expected = [
            (ErrorCode::NotFound, 404),
            (ErrorCode::AlreadySubmitted, 409),
            (ErrorCode::NotSubmitted, 409),
            (ErrorCode::AlreadyRevealed, 410),
            (ErrorCode::Cancelled, 410),
            (ErrorCode::Locked, 423),
            (ErrorCode::WrongPin, 403),
            (ErrorCode::ValidationFailed, 422),
            (ErrorCode::InvalidArgument, 400),
            (ErrorCode::StoreUnavailable, 503),
            (ErrorCode::CapacityExceeded, 503),
            (ErrorCode::KeyUnavailable, 500),
            (ErrorCode::IntegrityError, 500),
        ];
        assert_eq!(expected.len(), ErrorCode::ALL.len());
        for (code, status) in expected {
            assert_eq!(status_of(code).as_u16(), status, "{code}");
        }
    }

    #[test]
    fn the_schema_lists_every_code_once() {
        let schema = serde_json::to_value(<WireCode as utoipa::PartialSchema>::schema()).unwrap();
        let listed: Vec<&str> = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let expected: Vec<&str> = ErrorCode::ALL
            .iter()
            .map(|c| c.as_str())
            .chain(["UNAUTHORIZED", "RATE_LIMITED", "REQUEST_TIMEOUT"])
            .collect();
        assert_eq!(listed, expected);
        assert_eq!(
            serde_json::to_value(WireCode::from(ErrorCode::WrongPin)).unwrap(),
            "WRONG_PIN"
        );
    }

    #[test]
    fn validation_errors_list_fields_and_reasons() {
        let e = ApiError::Vault(Error::ValidationFailed {
            fields: vec![FieldError::new("card_number", FieldReason::Luhn)],
        });
        let (status, body) = e.parts();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let json = serde_json::to_value(body).unwrap();
        assert_eq!(json["error"]["code"], "VALIDATION_FAILED");
        assert_eq!(json["error"]["fields"][0]["field"], "card_number");
        assert_eq!(json["error"]["fields"][0]["reason"], "luhn");
    }

    #[test]
    fn backend_detail_stays_out_of_the_response() {
        let e = ApiError::Vault(Error::store_unavailable("redis at 10.1.2.3:6379 refused"));
        let json = serde_json::to_string(&e.parts().1).unwrap();
        assert!(!json.contains("10.1.2.3"), "{json}");
    }
}
