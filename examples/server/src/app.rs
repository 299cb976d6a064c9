//! The router: every route, its limits and the headers every response carries.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

use crate::ratelimit::{RateLimit, enforce};
use crate::state::AppState;
use crate::{api, customer, events, headers, metrics, ops};

/// Largest request body, in bytes: a form of 32 fields of 1 KiB fits with room to spare.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole application. `https` adds HSTS (the server terminates TLS, or its public URL
/// is https).
pub fn router(state: AppState, https: bool) -> Router {
    let limited = |limit: &RateLimit| from_fn_with_state((state.clone(), limit.clone()), enforce);
    let reveal = post(api::reveal).route_layer(limited(state.reveal_limit()));
    let submit = post(customer::submit).route_layer(limited(state.form_limit()));
    let router = Router::new()
        .route("/", get(ops::root))
        .route("/forms/{id}", get(customer::form_page).merge(submit))
        .route("/v1/sessions", post(api::create_session))
        .route(
            "/v1/sessions/{id}",
            get(api::get_session).delete(api::cancel),
        )
        .route("/v1/sessions/{id}/reveal", reveal)
        .route("/v1/sessions/{id}/events", get(events::session_events))
        .route("/agent", get(ops::agent_console))
        .route("/assets/style.css", get(ops::style))
        .route("/assets/agent.js", get(ops::agent_script))
        .route("/favicon.ico", get(ops::favicon))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .fallback(ops::no_route)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn_with_state(state.clone(), metrics::observe))
        .with_state(state);
    headers::secure(router, https)
}
