//! The webhook in the OpenAPI document: the `webhooks` section's `sessionEvent`, the
//! request this server sends to a tenant's receiver. The delivery itself, and the event's
//! schema, are the `pci-vault-webhooks` crate's.

use utoipa::openapi::path::{PathItem, PathsBuilder};
use utoipa::{Modify, PartialSchema as _, Path as _, ToSchema as _};

use pci_vault_webhooks::WebhookEvent;

/// The request a tenant's receiver gets for each session event.
///
/// The receiver verifies `Pci-Vault-Signature` before trusting the body: `t=<unix
/// seconds>,v1=<hex>`, where `<hex>` is the lowercase hex HMAC-SHA256 keyed with the
/// tenant's secret over `<t>.<raw body>`; it rejects a `t` more than its tolerance (300 s
/// advised) from its clock, compares in constant time, and accepts when any `v1` entry
/// matches. It answers 2xx once it has taken the event. 408, 429 (`Retry-After` honoured)
/// and 5xx answers, timeouts and network errors are retried with exponential backoff; any
/// other answer, redirects included, ends the delivery. The same event may arrive more than
/// once: `Idempotency-Key` (the event id) is the same on every attempt and from every
/// server process that delivers it.
#[utoipa::path(
    post,
    path = "sessionEvent",
    operation_id = "session_event",
    tag = "webhooks",
    params(
        ("Pci-Vault-Signature" = String, Header,
            description = "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>",
            example = "t=1764511509,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"),
        ("Idempotency-Key" = String, Header,
            description = "The event id: the same on every attempt of one event, from every server"),
    ),
    request_body(content = WebhookEvent, content_type = "application/json"),
    responses(
        (status = 200, description = "Taken (any 2xx)"),
        (status = 429, description = "Retried later; `Retry-After` in seconds is honoured"),
        (status = 503, description = "Retried later (as every 5xx and 408)"),
    )
)]
#[expect(
    dead_code,
    reason = "describes a request the server sends; it is never routed"
)]
fn session_event() {}

/// Adds the `webhooks` section and the event's schema.
pub struct WebhookDocs;

impl Modify for WebhookDocs {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert(WebhookEvent::name().into_owned(), WebhookEvent::schema());
        let item = PathItem::new(
            utoipa::openapi::path::HttpMethod::Post,
            __path_session_event::operation(),
        );
        let webhooks = openapi
            .webhooks
            .take()
            .map_or_else(PathsBuilder::new, Into::into)
            .path(__path_session_event::path(), item);
        openapi.webhooks = Some(webhooks.build());
    }
}
