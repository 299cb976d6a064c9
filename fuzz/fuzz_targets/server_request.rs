//! The example server's request parsing: the customer's form body (urlencoded and JSON),
//! `Content-Type`, `Accept-Language`, the API key list and the public URL with its `Origin`
//! check; and, for some inputs, the whole `POST /forms/{id}` route of the real router.
//!
//! Nothing panics. A body is accepted exactly when a strict reference decoder accepts it,
//! and then the submission holds exactly the reference's field names and values, in order,
//! and survives a re-encoding unchanged. Duplicate names, unknown top-level JSON members,
//! more than 32 fields and bytes that are not UTF-8 are refused, with one of a fixed set of
//! messages (never the input). Through the router: a body over the size limit is 413, the
//! answer follows from the parser's verdict and the `Origin` check, the session changes
//! only on a 200, every response carries the security headers, and no error repeats a
//! submitted value.
//!
//! Input: one flag byte, then sections separated by two NUL bytes (easy to write as seeds):
//! content type, body, `Accept-Language`, API key list, public URL, `Origin`,
//! `Sec-Fetch-Site`, session id in the path (empty: a fresh pending session's).

#![no_main]

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use pci_vault::conformance::test_keyring;
use pci_vault::{ManualClock, SessionId, SessionOptions, SessionState, Vault};
use pci_vault_fuzz::{START, has_digit_run};
use pci_vault_memory::{MemoryLimits, MemoryStore};
use pci_vault_server::app::{MAX_BODY_BYTES, router};
use pci_vault_server::auth::ApiKeys;
use pci_vault_server::config::PublicUrl;
use pci_vault_server::i18n::Lang;
use pci_vault_server::metrics::Metrics;
use pci_vault_server::ratelimit::RateLimit;
use pci_vault_server::request::{BodyKind, MAX_ENTRIES, MalformedBody, Submission};
use pci_vault_server::state::AppState;
use pci_vault_webhooks::Webhooks;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use tower::ServiceExt as _;

/// Every message a refused body may carry (`request.rs`). A refusal names no input.
const BODY_MESSAGES: [&str; 5] = [
    "the body must be {\"fields\": {name: string}} with at most 32 distinct fields",
    "the body is not valid JSON",
    "a submission has at most 32 fields",
    "a field appears twice in the submission",
    "the form is not valid UTF-8",
];

/// The refusal of a malformed session id (`pci_vault::SessionId::parse`).
const ID_MESSAGE: &str = "invalid argument: a session id is 43 characters of base64url";

/// Every reason an API key list may be refused for (`auth.rs`).
const API_KEY_REASONS: [&str; 4] = [
    "a tenant is 1-64 characters from A-Z a-z 0-9 . _ -",
    "a key is 16-256 characters",
    "a key is visible ASCII without ',' or '='",
    "the same key is given twice",
];

/// Every reason a public URL may be refused for (`config.rs`).
const PUBLIC_URL_REASONS: [&str; 5] = [
    "must not have a query or fragment",
    "not a valid URL",
    "the scheme must be http or https",
    "a host is required",
    "must not contain user info",
];

/// Flag bits of the first byte.
const THROUGH_ROUTER: u8 = 1;
const OVERSIZED: u8 = 2;
const OWN_ORIGIN: u8 = 4;

/// The public URL of the router under test.
const SERVER_URL: &str = "https://pay.example.com";
const SERVER_API_KEY: &str = "fuzz-api-key-0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let sections: Vec<&[u8]> = split_sections(rest);
    let section = |i: usize| sections.get(i).copied().unwrap_or_default();
    let text = |i: usize| String::from_utf8_lossy(section(i)).into_owned();

    let content_type = text(0);
    let body = section(1);
    check_body_kind(&content_type);
    check_body(BodyKind::Form, body);
    check_body(BodyKind::Json, body);
    check_lang((!section(2).is_empty()).then(|| text(2)));
    check_api_keys(&text(3));
    check_public_url(&text(4), &text(5), &text(6));

    if flags & THROUGH_ROUTER != 0 {
        let mut body = body.to_vec();
        if flags & OVERSIZED != 0 {
            // Past the limit by 1 byte to 15 KiB, the rest padded with spaces.
            let over = 1 + usize::from(flags >> 4) * 1024;
            body.resize(body.len().max(MAX_BODY_BYTES + over), b' ');
        }
        let origin = if flags & OWN_ORIGIN != 0 {
            Some(SERVER_URL.to_owned())
        } else {
            Some(text(5)).filter(|o| !o.is_empty())
        };
        let request = FormPost {
            content_type,
            body,
            accept_language: Some(text(2)).filter(|l| !l.is_empty()),
            origin,
            sec_fetch_site: Some(text(6)).filter(|s| !s.is_empty()),
            id: Some(text(7)).filter(|i| !i.is_empty()),
        };
        request.check();
    }
});

fn split_sections(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 {
            out.push(&data[start..i]);
            i += 2;
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&data[start..]);
    out
}

// ---------------------------------------------------------------------------------------
// Content-Type

fn check_body_kind(content_type: &str) {
    let kind = BodyKind::of(content_type);
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let expected = match essence.as_str() {
        "application/json" => Some(BodyKind::Json),
        "application/x-www-form-urlencoded" => Some(BodyKind::Form),
        _ => None,
    };
    assert_eq!(kind, expected, "Content-Type {content_type:?}");
    // Parameters and letter case do not change the kind.
    assert_eq!(
        BodyKind::of(&format!("{content_type}; charset=utf-8")),
        kind
    );
    assert_eq!(BodyKind::of(&content_type.to_ascii_uppercase()), kind);
}

// ---------------------------------------------------------------------------------------
// Bodies

/// What a strict decoder makes of a body: the fields in order, or why it must be refused.
type Expected = Result<Vec<(String, String)>, &'static str>;

fn check_body(kind: BodyKind, body: &[u8]) {
    let parsed = Submission::parse(kind, body);
    let direct = match kind {
        BodyKind::Form => Submission::from_urlencoded(body),
        BodyKind::Json => Submission::from_json(body),
    };
    assert_eq!(parsed.is_ok(), direct.is_ok());
    let expected = match kind {
        BodyKind::Form => reference_form(body),
        BodyKind::Json => reference_json(body),
    };
    match (parsed, expected) {
        (Ok(submission), Ok(fields)) => {
            assert_holds_exactly(&submission, &fields);
            // Encoded again, the fields parse to the same submission.
            let again = match kind {
                BodyKind::Form => {
                    let mut encoder = form_urlencoded::Serializer::new(String::new());
                    for (name, value) in &fields {
                        encoder.append_pair(name, value);
                    }
                    Submission::from_urlencoded(encoder.finish().as_bytes())
                }
                BodyKind::Json => {
                    let mut object = String::from("{\"fields\":{");
                    for (i, (name, value)) in fields.iter().enumerate() {
                        if i > 0 {
                            object.push(',');
                        }
                        object.push_str(&json_string(name));
                        object.push(':');
                        object.push_str(&json_string(value));
                    }
                    object.push_str("}}");
                    Submission::from_json(object.as_bytes())
                }
            };
            match again {
                Ok(again) => assert_holds_exactly(&again, &fields),
                Err(e) => panic!("a re-encoded {kind:?} submission was refused: {e}"),
            }
        }
        (Err(e), Err(_)) => {
            assert!(BODY_MESSAGES.contains(&e.0), "unexpected message {:?}", e.0);
            assert_eq!(e.to_string(), e.0);
        }
        (Ok(submission), Err(why)) => {
            panic!("accepted a {kind:?} body that must be refused ({why}): {submission:?}")
        }
        (Err(e), Ok(fields)) => panic!(
            "refused a good {kind:?} body ({e}) with fields {:?}",
            fields.iter().map(|(n, _)| n).collect::<Vec<_>>()
        ),
    }
}

/// The submission has exactly `fields`: same names, same values, same order, and its
/// `Debug` names them without a value.
fn assert_holds_exactly(submission: &Submission, fields: &[(String, String)]) {
    assert_eq!(submission.len(), fields.len());
    assert_eq!(submission.is_empty(), fields.is_empty());
    for (name, value) in fields {
        assert_eq!(
            submission.value(name),
            Some(value.as_str()),
            "field {name:?}"
        );
    }
    assert_eq!(
        format!("{submission:?}"),
        format!("{:?}", Redacted(fields)),
        "order or redaction"
    );
    assert_eq!(submission.to_form_input().len(), fields.len());
}

/// How `Submission`'s `Debug` must look: the names in order, every value redacted.
struct Redacted<'a>(&'a [(String, String)]);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, _) in self.0 {
            map.entry(name, &"[REDACTED]");
        }
        map.finish()
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|e| panic!("serializing a string: {e}"))
}

/// `application/x-www-form-urlencoded` as the URL Standard decodes it, except that a name
/// or value whose bytes are not UTF-8 (or that holds U+FFFD, the mark of bytes already
/// lost) refuses the whole body instead of being repaired.
fn reference_form(body: &[u8]) -> Expected {
    let mut fields: Vec<(String, String)> = Vec::new();
    for piece in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match piece.iter().position(|&b| b == b'=') {
            Some(at) => (&piece[..at], &piece[at + 1..]),
            None => (piece, &[][..]),
        };
        let (Some(name), Some(value)) = (percent_decode(name), percent_decode(value)) else {
            return Err("not UTF-8");
        };
        push_field(&mut fields, name, value)?;
    }
    Ok(fields)
}

fn percent_decode(bytes: &[u8]) -> Option<String> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escaped = (b == b'%')
            .then(|| Some(hex(*bytes.get(i + 1)?)? * 16 + hex(*bytes.get(i + 2)?)?))
            .flatten();
        match escaped {
            Some(byte) => {
                out.push(u8::try_from(byte).unwrap_or_else(|_| panic!("two hex digits")));
                i += 3;
            }
            None => {
                out.push(if b == b'+' { b' ' } else { b });
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .ok()
        .filter(|s| !s.contains('\u{FFFD}'))
}

fn push_field(
    fields: &mut Vec<(String, String)>,
    name: String,
    value: String,
) -> Result<(), &'static str> {
    if fields.len() == MAX_ENTRIES {
        return Err("more than 32 fields");
    }
    if fields.iter().any(|(n, _)| *n == name) {
        return Err("a name twice");
    }
    fields.push((name, value));
    Ok(())
}

/// `{"fields": {name: string, ...}}`, read by a decoder that keeps every member, so that
/// duplicates are seen. serde_json does the lexing for both sides; this checks the shape.
/// serde's derived struct also reads a one-element array as the struct (`[{...}]`): that
/// is accepted too, the same way, and the reference follows it.
fn reference_json(body: &[u8]) -> Expected {
    let node: Node = serde_json::from_slice(body).map_err(|_| "not JSON")?;
    let members = match node {
        Node::Object(members) => members,
        Node::Array(mut items) if items.len() == 1 => match items.pop() {
            Some(fields) => vec![("fields".to_owned(), fields)],
            None => return Err("unreachable"),
        },
        _ => return Err("not an object"),
    };
    let mut found = None;
    for (key, value) in members {
        if key != "fields" {
            return Err("unknown member");
        }
        if found.replace(value).is_some() {
            return Err("fields twice");
        }
    }
    let Some(Node::Object(entries)) = found else {
        return Err("no fields object");
    };
    let mut fields = Vec::new();
    for (name, value) in entries {
        let Node::String(value) = value else {
            return Err("a value is not a string");
        };
        push_field(&mut fields, name, value)?;
    }
    Ok(fields)
}

/// A JSON value that keeps every object member, duplicates included.
enum Node {
    String(String),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    Other,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;

        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Other)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
                Ok(Node::String(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
                Ok(Node::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut members = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    members.push((key, map.next_value()?));
                }
                Ok(Node::Object(members))
            }
        }

        deserializer.deserialize_any(NodeVisitor)
    }
}

// ---------------------------------------------------------------------------------------
// Accept-Language, API keys, public URL

fn check_lang(header: Option<String>) {
    let lang = Lang::negotiate(header.as_deref());
    let Some(header) = header else {
        assert_eq!(lang, Lang::En);
        return;
    };
    if !header.to_ascii_lowercase().contains("de") {
        assert_eq!(lang, Lang::En, "German without a de range: {header:?}");
    }
    // A range with q=1 in front wins (the earlier one wins a tie, and nothing beats 1);
    // a range of another language at the end changes nothing.
    assert_eq!(Lang::negotiate(Some(&format!("de, {header}"))), Lang::De);
    assert_eq!(Lang::negotiate(Some(&format!("en-GB, {header}"))), Lang::En);
    assert_eq!(Lang::negotiate(Some(&format!("{header}, fr"))), lang);
    assert!(matches!(lang.tag(), "en" | "de"));
}

fn check_api_keys(text: &str) {
    let entries: Vec<&str> = text.split(',').collect();
    match ApiKeys::parse(text) {
        Ok(keys) => {
            assert_eq!(keys.len(), entries.len());
            assert!(!keys.is_empty());
            let debug = format!("{keys:?}");
            let pairs: Vec<(&str, &str)> = entries
                .iter()
                .map(|entry| {
                    let entry = entry.trim();
                    match entry.split_once('=') {
                        Some((tenant, key)) => (tenant.trim(), key.trim()),
                        None => ("default", entry),
                    }
                })
                .collect();
            for &(tenant, key) in &pairs {
                assert!((16..=256).contains(&key.len()));
                let found = keys.authenticate(key).map(|t| t.as_str().to_owned());
                assert_eq!(found.as_deref(), Some(tenant), "a key acts for its tenant");
                if !pairs.iter().any(|(t, _)| t.contains(key)) {
                    assert!(!debug.contains(key), "Debug shows a key");
                }
                // One character more or less is another key, unless it is configured too.
                for other in [format!("{key}x"), key[..key.len() - 1].to_owned()] {
                    if !pairs.iter().any(|(_, k)| *k == other) {
                        assert!(keys.authenticate(&other).is_none());
                    }
                }
            }
        }
        Err(e) => {
            assert!((1..=entries.len()).contains(&e.entry), "entry {}", e.entry);
            assert!(API_KEY_REASONS.contains(&e.reason), "{:?}", e.reason);
            assert_eq!(
                e.to_string(),
                format!("API key entry {}: {}", e.entry, e.reason)
            );
        }
    }
}

fn check_public_url(text: &str, origin: &str, sec_fetch_site: &str) {
    match PublicUrl::parse(text) {
        Ok(url) => {
            let scheme = if url.is_https() {
                "https://"
            } else {
                "http://"
            };
            assert!(url.origin().starts_with(scheme));
            assert!(url.origin().len() > scheme.len(), "no host");
            assert!(url.base().starts_with(url.origin()));
            assert!(!url.base().ends_with('/'));
            assert!(!url.base().contains(['?', '#']));
            assert!(!url.origin().contains('@'));
            // Its own base parses to the same URL. Not checked for a host with a bracket
            // that does not open it: the `http` crate takes `)[::1]` as an authority and
            // gives `)[` as its host, so the base is mangled. This is the operator's own
            // flag, and such a URL reaches no browser; see the fuzzing record.
            if !odd_brackets(text) {
                match PublicUrl::parse(url.base()) {
                    Ok(again) => assert_eq!(again, url),
                    Err(e) => panic!("{text:?} gives the base {:?}: {e}", url.base()),
                }
            }
            let id = SessionId::generate();
            assert_eq!(url.form_link(&id), format!("{}/forms/{id}", url.base()));
            check_origin(&url, origin, sec_fetch_site);
        }
        Err(e) => {
            let message = e.to_string();
            let reason = message
                .strip_prefix("--public-url: ")
                .unwrap_or_else(|| panic!("not a --public-url error: {message}"));
            assert!(PUBLIC_URL_REASONS.contains(&reason), "{reason:?}");
        }
    }
}

/// Whether the authority of `url` holds a `[` or `]` without starting with `[`.
fn odd_brackets(url: &str) -> bool {
    let rest = url.trim().split_once("://").map_or("", |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    authority.contains(['[', ']']) && !authority.starts_with('[')
}

/// A form POST is taken from the public origin itself (any letter case), or from `null`
/// with `Sec-Fetch-Site: same-origin`; never without an `Origin`.
fn check_origin(url: &PublicUrl, origin: &str, site: &str) {
    let site = Some(site).filter(|s| !s.is_empty());
    let expected = match origin.trim() {
        "null" => site.is_some_and(|s| s.trim() == "same-origin"),
        o => o.eq_ignore_ascii_case(url.origin()),
    };
    assert_eq!(url.accepts_form_post(Some(origin), site), expected);
    assert!(!url.accepts_form_post(None, site));
    assert!(!url.accepts_form_post(None, Some("same-origin")));
    assert!(url.accepts_form_post(Some(url.origin()), None));
    assert!(url.accepts_form_post(Some(&url.origin().to_ascii_uppercase()), site));
    assert!(url.accepts_form_post(Some("null"), Some("same-origin")));
}

// ---------------------------------------------------------------------------------------
// The router

/// One router for the whole run, on a memory store whose clock the target moves.
struct Server {
    runtime: tokio::runtime::Runtime,
    router: Router,
    vault: Vault,
    clock: Arc<ManualClock>,
    memory: Arc<MemoryStore>,
    public_url: PublicUrl,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        // Time on, paused: the router's body and request timeouts need a timer, and paused
        // time jumps over every wait, so a timeout fires only where a request really waits
        // that long.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let clock = Arc::new(ManualClock::new(std::time::UNIX_EPOCH + START));
        let memory = Arc::new(MemoryStore::with_clock(
            MemoryLimits::default(),
            clock.clone(),
        ));
        let metrics = Metrics::new();
        let vault = Vault::builder(memory.clone(), Arc::new(test_keyring()))
            .clock(clock.clone())
            .audit_sink(metrics.audit_sink())
            .build()
            .unwrap_or_else(|e| panic!("vault: {e}"));
        let api_keys = ApiKeys::parse(SERVER_API_KEY).unwrap_or_else(|e| panic!("API keys: {e}"));
        let public_url = PublicUrl::parse(SERVER_URL).unwrap_or_else(|e| panic!("URL: {e}"));
        let unlimited = std::num::NonZeroU32::MAX;
        let state = AppState::new(
            vault.clone(),
            api_keys,
            public_url.clone(),
            RateLimit::per_minute("form", unlimited),
            RateLimit::per_minute("reveal", unlimited),
            metrics,
            Webhooks::disabled(),
        );
        Server {
            runtime,
            router: router(state, true),
            vault,
            clock,
            memory,
            public_url,
        }
    })
}

struct FormPost {
    content_type: String,
    body: Vec<u8>,
    accept_language: Option<String>,
    origin: Option<String>,
    sec_fetch_site: Option<String>,
    /// The path segment; `None` is a fresh pending session's id.
    id: Option<String>,
}

impl FormPost {
    fn check(self) {
        let server = server();
        // Every earlier session has expired (TTL 1 s): the store holds only this one.
        server.clock.advance(Duration::from_millis(1001));
        let options = SessionOptions::default().with_ttl(Duration::from_secs(1));
        let ticket = server
            .runtime
            .block_on(server.vault.create_session(&options))
            .unwrap_or_else(|e| panic!("create_session: {e}"));
        assert!(
            server.memory.usage().0 <= 4,
            "expired sessions stay in the store"
        );
        let fresh = ticket.id.to_string();
        let path_id = self.id.clone().unwrap_or_else(|| fresh.clone());

        // Percent-encoded but for the id alphabet, so the handler sees exactly `path_id`.
        let mut request = Request::post(format!("/forms/{}", encode_path_segment(&path_id)));
        for (name, value) in [
            ("content-type", Some(&self.content_type)),
            ("accept-language", self.accept_language.as_ref()),
            ("origin", self.origin.as_ref()),
            ("sec-fetch-site", self.sec_fetch_site.as_ref()),
        ] {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                request = request.header(name, value.as_str());
            }
        }
        let peer: SocketAddr = ([192, 0, 2, 1], 40000).into();
        let Ok(request) = request
            .extension(ConnectInfo(peer))
            .body(Body::from(self.body.clone()))
        else {
            // Not a valid path or header value: no HTTP client could send it.
            return;
        };
        // The handler sees the headers as the `http` types keep them.
        let content_type = request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let kind = content_type.as_deref().and_then(BodyKind::of);
        let origin = header_text(&request, "origin");
        let site = header_text(&request, "sec-fetch-site");

        let response = server
            .runtime
            .block_on(server.router.clone().oneshot(request))
            .unwrap_or_else(|e| match e {});
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = server
            .runtime
            .block_on(axum::body::to_bytes(response.into_body(), 4 << 20))
            .unwrap_or_else(|e| panic!("reading the response: {e}"));
        let text = String::from_utf8_lossy(&bytes);

        for (name, value) in [
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
            ("strict-transport-security", "max-age=31536000"),
        ] {
            assert_eq!(
                headers.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{name} on a {status} response"
            );
        }
        let is_json = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));

        let same_id = path_id == fresh;
        let valid_id = SessionId::parse(&path_id).is_ok();
        let parsed = kind.map(|k| Submission::parse(k, &self.body));
        let expected: &[u16] = if self.body.len() > MAX_BODY_BYTES {
            &[413]
        } else {
            match (kind, &parsed) {
                (None, _) => &[415],
                (Some(BodyKind::Form), _)
                    if !server
                        .public_url
                        .accepts_form_post(origin.as_deref(), site.as_deref()) =>
                {
                    &[403]
                }
                (Some(BodyKind::Form), _) if !same_id => &[404],
                (Some(BodyKind::Form), Some(Err(_))) => &[400],
                (Some(BodyKind::Form), _) => &[200, 400, 422],
                (Some(BodyKind::Json), _) if !valid_id => &[400],
                (Some(BodyKind::Json), Some(Err(_))) => &[400],
                (Some(BodyKind::Json), _) if !same_id => &[404],
                (Some(BodyKind::Json), _) => &[200, 400, 422],
            }
        };
        assert!(
            expected.contains(&status.as_u16()),
            "{status} for a {kind:?} POST, expected one of {expected:?}: {text}"
        );
        // A JSON client gets JSON; the page's form gets HTML, except for the two answers
        // that come before the body is looked at.
        let json_expected = kind == Some(BodyKind::Json)
            || matches!(
                status,
                StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE
            );
        assert_eq!(is_json, json_expected, "{status}: {text}");
        if status == StatusCode::OK {
            // The PIN, and only for the customer: six digits in JSON, or the PIN page.
            if is_json {
                let value: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("200 is not JSON ({e}): {text}"));
                let pin = value["pin"].as_str().unwrap_or_default();
                assert!(
                    pin.len() == 6 && pin.bytes().all(|b| b.is_ascii_digit()),
                    "{text}"
                );
            } else {
                assert!(text.contains("id=\"pin\""), "200 without the PIN");
            }
        } else if is_json {
            check_json_error(status, &text, valid_id, &parsed);
        }

        // The session changed only if the answer says it was stored.
        let after = server
            .runtime
            .block_on(server.vault.status(&ticket.id))
            .unwrap_or_else(|e| panic!("status: {e}"));
        let stored = status == StatusCode::OK;
        let expected_state = if stored {
            SessionState::Submitted
        } else {
            SessionState::Pending
        };
        assert_eq!(after.state, expected_state, "after {status}");

        // No error repeats a value the customer sent. In JSON: no value with a run of
        // three digits (card numbers, codes), which no fixed message has. On the page's
        // own form, which shows the expiry and the name again on purpose and has a few
        // numbers of its own: never the card number or the security code.
        if !stored && let Some(Ok(submission)) = &parsed {
            for name in ["card_number", "cvc", "expiry", "cardholder_name"] {
                let Some(value) = submission.value(name).map(str::trim) else {
                    continue;
                };
                if !has_digit_run(value, 3) || path_id.contains(value) {
                    continue;
                }
                if is_json {
                    assert!(!text.contains(value), "{status} repeats the {name}");
                    continue;
                }
                let shown_on_purpose = ["expiry", "cardholder_name"]
                    .iter()
                    .filter_map(|n| submission.value(n))
                    .any(|v| v.contains(value));
                if matches!(name, "card_number" | "cvc") && !shown_on_purpose {
                    assert!(
                        !text.contains(&format!("value=\"{value}\"")),
                        "{status} fills in the {name}"
                    );
                    if has_digit_run(value, 5) {
                        assert!(!text.contains(value), "{status} repeats the {name}");
                    }
                }
            }
        }
    }
}

fn encode_path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn header_text(request: &Request<Body>, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `{"error": {"code", "message", ...}}` with the code of the status, and, for a body the
/// parser refused, the parser's fixed message.
fn check_json_error(
    status: StatusCode,
    text: &str,
    valid_id: bool,
    parsed: &Option<Result<Submission, MalformedBody>>,
) {
    let value: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{status} is not JSON ({e}): {text}"));
    let code = value["error"]["code"].as_str().unwrap_or_default();
    let message = value["error"]["message"].as_str().unwrap_or_default();
    let expected_code = match status.as_u16() {
        400 | 413 | 415 => "INVALID_ARGUMENT",
        404 => "NOT_FOUND",
        422 => "VALIDATION_FAILED",
        other => panic!("unexpected status {other}"),
    };
    assert_eq!(code, expected_code, "{text}");
    assert!(!message.is_empty());
    if status == StatusCode::BAD_REQUEST {
        if !valid_id {
            assert_eq!(message, ID_MESSAGE);
        } else if let Some(Err(e)) = parsed {
            assert_eq!(message, e.0);
        }
    }
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        let fields = value["error"]["fields"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!fields.is_empty(), "{text}");
        for field in fields {
            let name = field["field"].as_str().unwrap_or_default();
            assert!(
                matches!(name, "card_number" | "expiry" | "cvc" | "cardholder_name"),
                "{name:?} is no field of the form"
            );
        }
    }
}
