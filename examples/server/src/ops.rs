//! Operations: liveness, readiness, metrics, the OpenAPI document, and the
//! static files of the pages.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use utoipa::openapi::RefOr;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::{ApiError, ErrorBody, documented_errors};
use crate::state::AppState;
use crate::webhooks::WebhookDocs;

/// The answer of `/healthz` and `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Alive", body = Health))
)]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// Readiness: the store answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses((status = 200, description = "Ready", body = Health), ReadyErrors)
)]
pub async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    state.vault().ping().await?;
    Ok(axum::Json(Health { status: "ready" }))
}

documented_errors! {
    /// The errors of `readyz`.
    ReadyErrors {
        codes: [StoreUnavailable],
        own: [],
    }
}

/// Prometheus metrics, in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "The metrics",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        state.metrics().encode(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
pub async fn openapi() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(json) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The OpenAPI document of the server, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "pci-vault server",
        description = "The customer's secure card form and the agent API of pci-vault. \
            Errors are {\"error\": {\"code\", \"message\"}} with the stable codes of the library.",
    ),
    paths(
        crate::api::create_session,
        crate::api::get_session,
        crate::api::reveal,
        crate::api::cancel,
        crate::events::session_events,
        crate::customer::form_page,
        crate::customer::submit,
        healthz,
        readyz,
        metrics,
        openapi,
    ),
    components(schemas(ErrorBody, crate::events::EventView)),
    modifiers(&BearerAuth, &SessionLinks, &WebhookDocs),
    tags(
        (name = "agent", description = "For the agent or bot: needs an API key"),
        (name = "customer", description = "For the customer: the link is the credential"),
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "webhooks", description = "Sent by the server to a tenant's receiver"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Links from a created session to the operations that take its id, so clients (and
/// stateful API testers) know where the id goes.
struct SessionLinks;

impl Modify for SessionLinks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(created) = openapi
            .paths
            .paths
            .get_mut("/v1/sessions")
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.responses.responses.get_mut("201"))
        else {
            return;
        };
        let RefOr::T(response) = created else { return };
        for (name, operation, description) in [
            ("GetSession", "get_session", "The session's state"),
            (
                "RevealSession",
                "reveal",
                "Reveal the form with the customer's PIN",
            ),
            ("CancelSession", "cancel", "Cancel the session"),
            ("FormPage", "form_page", "The customer's form"),
            ("SubmitForm", "submit", "Submit the customer's form"),
        ] {
            let link = LinkBuilder::new()
                .operation_id(operation)
                .parameter("id", "$response.body#/id")
                .description(description)
                .build();
            response.links.insert(name.to_owned(), RefOr::T(link));
        }
    }
}

/// The stylesheet of every page.
pub async fn style() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../assets/style.css"),
    )
}

/// The agent console's script.
pub async fn agent_script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/agent.js"),
    )
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        text,
    )
        .into_response()
}

/// No icon: an empty answer, so browsers stop asking without an error.
pub async fn favicon() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// The agent console page.
pub async fn agent_console() -> Response {
    crate::pages::agent_page()
}

/// `/` leads to the agent console.
pub async fn root() -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, HeaderValue::from_static("agent"))],
    )
        .into_response()
}

/// Any other path.
pub async fn no_route() -> ApiError {
    ApiError::NoRoute
}

/// A known path with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
