//! The routers: every route, its limits and the headers every response carries; and the
//! admin listener's.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

use crate::ratelimit::{RateLimit, enforce};
use crate::state::AppState;
use crate::timeouts::{self, Timeouts};
use crate::{api, context, customer, events, headers, metrics, ops};

/// Largest request body, in bytes: a form of 32 fields of 1 KiB fits with room to spare.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Timeouts of a router built by [`router`]: the defaults of the server's flags.
pub const DEFAULT_TIMEOUTS: Timeouts = Timeouts {
    body: std::time::Duration::from_secs(10),
    request: std::time::Duration::from_secs(30),
};

/// The whole application, `/metrics` included, with the default timeouts. `https` adds
/// HSTS (the server terminates TLS, or its public URL is https).
pub fn router(state: AppState, https: bool) -> Router {
    main_router(state, https, DEFAULT_TIMEOUTS, true)
}

/// The main listener's application: customer, agent and operations routes; `/metrics`
/// only with `with_metrics` (without an admin listener).
pub fn main_router(state: AppState, https: bool, timeouts: Timeouts, with_metrics: bool) -> Router {
    let limited = |limit: &RateLimit| from_fn_with_state((state.clone(), limit.clone()), enforce);
    let reveal = post(api::reveal).route_layer(limited(state.reveal_limit()));
    // The form page's GET shares the POST's allowance: each load reads the session through
    // the key provider (a KMS or HSM call) and announces `opened`.
    let form = get(customer::form_page)
        .post(customer::submit)
        .route_layer(limited(state.form_limit()));
    let mut router = Router::new()
        .route("/", get(ops::root))
        .route("/forms/{id}", form)
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
        .route("/openapi.json", get(ops::openapi));
    if with_metrics {
        router = router.route("/metrics", get(ops::metrics));
    }
    let router = observed(router, &state, timeouts)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    headers::secure(router, https)
}

/// The admin listener's application: `/metrics`, `/healthz` and `/readyz`.
pub fn admin_router(state: AppState, timeouts: Timeouts) -> Router {
    let router = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));
    let router = observed(router, &state, timeouts)
        .layer(DefaultBodyLimit::max(1024))
        .with_state(state);
    headers::secure(router, false)
}

/// The layers every route runs in, innermost first: the time limits, metrics and the
/// request log line (outside the limits, so a request cut off by one is counted and logged
/// with its answer), and outermost the request's context (client address, request id,
/// span).
fn observed(router: Router<AppState>, state: &AppState, timeouts: Timeouts) -> Router<AppState> {
    router
        .fallback(ops::no_route)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(from_fn_with_state(timeouts, timeouts::limit))
        .layer(from_fn_with_state(state.clone(), metrics::observe))
        .layer(from_fn_with_state(state.clone(), context::identify))
}
