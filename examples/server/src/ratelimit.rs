//! Per-client rate limits (GCRA, from `governor`), keyed by the client's IP address (the
//! TCP peer, or the address a trusted proxy forwarded: [`crate::client`]); and the limit on
//! failed authentications.
//!
//! IPv6 clients are keyed by their /64 network, since one host commonly holds a whole /64.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::http::header::RETRY_AFTER;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::context::ClientAddr;
use crate::error::ApiError;
use crate::extract::body_kind;
use crate::pages::{self, Message};
use crate::request::BodyKind;
use crate::state::AppState;

/// Middleware of every rate-limited route: takes one request of the client's allowance
/// before anything else runs (before the body is read and before the API key is checked, so
/// key guessing is limited too). A refused request is counted in the metrics and answered
/// `429 RATE_LIMITED` with `Retry-After`; the form page (its GET, and its own form's POST)
/// gets that message as a page.
pub async fn enforce(
    State((state, limit)): State<(AppState, RateLimit)>,
    Extension(client): Extension<ClientAddr>,
    request: Request,
    next: Next,
) -> Response {
    let Err(refused) = limit.check(client.0) else {
        return next.run(request).await;
    };
    state.metrics().rate_limited(limit.name());
    let answer = refused.into_response();
    let page_request = matches!(*request.method(), Method::GET | Method::HEAD);
    if !page_request && body_kind(request.headers()) != Some(BodyKind::Form) {
        return answer;
    }
    let mut page = pages::message_page(
        crate::customer::lang_of(request.headers()),
        Message::RateLimited,
    );
    if let Some(wait) = answer.headers().get(RETRY_AFTER) {
        page.headers_mut().insert(RETRY_AFTER, wait.clone());
    }
    page
}

/// A limit of requests per minute per client, with a burst of the same size.
#[derive(Clone)]
pub struct RateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    name: &'static str,
}

impl RateLimit {
    /// `per_minute` requests a minute per client; `name` labels it in metrics.
    pub fn per_minute(name: &'static str, per_minute: NonZeroU32) -> Self {
        RateLimit {
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
            name,
        }
    }

    /// The limit's name, for metrics and logs.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Takes one request of `client`'s allowance.
    ///
    /// # Errors
    /// [`ApiError::RateLimited`] with the whole seconds until the next request is allowed.
    pub fn check(&self, client: IpAddr) -> Result<(), ApiError> {
        self.limiter
            .check_key(&key_of(client))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                ApiError::RateLimited {
                    retry_after: retry_after.max(1),
                }
            })
    }

    /// Forgets clients whose allowance is full again, so the table stays as small as the
    /// set of recent clients. Call it periodically.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Runs [`RateLimit::forget_idle`] every `period` until the process ends.
    pub fn spawn_cleanup(&self, period: Duration) {
        let limit = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                limit.forget_idle();
            }
        });
    }
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RateLimit").field(&self.name()).finish()
    }
}

/// A limit on failed authentications per client: `per_minute` failures, then one more each
/// `60 / per_minute` seconds (GCRA). A client past it is refused before its key is looked
/// at, so the answers stop telling a guess from a hit.
///
/// The check, the key comparison and the count happen under one lock
/// ([`AuthFailures::authenticate`]), so concurrent guesses cannot all pass the check before
/// any of them is counted.
pub struct AuthFailures {
    table: Mutex<FailureTable>,
    interval: Duration,
    burst: Duration,
}

/// Per client: when its allowance is whole again (GCRA's theoretical arrival time).
#[derive(Default)]
struct FailureTable {
    clients: HashMap<IpAddr, Instant>,
    /// When a full table was last cleared of clients whose allowance is whole again.
    purged: Option<Instant>,
}

/// Most clients the failure table holds. A full table forgets the clients whose allowance
/// is whole again, at most once per [`PURGE_EVERY`] (a scan of the whole table); while it
/// is still full, the failures of clients it does not hold are not counted, so neither its
/// memory nor the time a failure takes grows with the number of addresses an attacker
/// uses. Every client it holds stays limited.
const MAX_FAILING_CLIENTS: usize = 100_000;

/// Least time between two scans of a full failure table.
const PURGE_EVERY: Duration = Duration::from_secs(1);

impl AuthFailures {
    /// `per_minute` failed authentications a minute per client, with a burst of the same
    /// size.
    pub fn per_minute(per_minute: NonZeroU32) -> Self {
        let interval = Duration::from_secs(60) / per_minute.get();
        AuthFailures {
            table: Mutex::new(FailureTable::default()),
            interval,
            burst: interval * per_minute.get(),
        }
    }

    /// Runs `check` (which compares the presented key) for `client` unless the client is
    /// past its limit, and counts a failure when `check` returns `None`.
    ///
    /// # Errors
    /// [`ApiError::RateLimited`] when the client is past its limit (before or by this
    /// failure), [`ApiError::Unauthorized`] for a failure within it.
    pub fn authenticate<T>(
        &self,
        client: IpAddr,
        check: impl FnOnce() -> Option<T>,
    ) -> Result<T, ApiError> {
        let key = key_of(client);
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let tat = table.clients.get(&key).copied().filter(|t| *t > now);
        if let Some(tat) = tat {
            // The allowance has room for one more failure while tat - now + interval <= burst.
            if tat + self.interval > now + self.burst {
                return Err(self.refused(tat, now));
            }
        }
        if let Some(found) = check() {
            return Ok(found);
        }
        let FailureTable { clients, purged } = &mut *table;
        if clients.len() >= MAX_FAILING_CLIENTS && purged.is_none_or(|p| now >= p + PURGE_EVERY) {
            clients.retain(|_, t| *t > now);
            *purged = Some(now);
        }
        if clients.len() < MAX_FAILING_CLIENTS || clients.contains_key(&key) {
            clients.insert(key, tat.unwrap_or(now) + self.interval);
        }
        Err(ApiError::Unauthorized)
    }

    fn refused(&self, tat: Instant, now: Instant) -> ApiError {
        let wait = (tat + self.interval).saturating_duration_since(now + self.burst);
        ApiError::RateLimited {
            retry_after: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
        }
    }

    /// Forgets clients whose allowance is whole again. Call it periodically.
    pub fn forget_idle(&self) {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.clients.retain(|_, t| *t > now);
        table.clients.shrink_to_fit();
    }
}

impl std::fmt::Debug for AuthFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFailures")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

fn key_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_refuses_with_retry_after() {
        let limit = RateLimit::per_minute("test", NonZeroU32::new(3).unwrap());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            limit.check(a).unwrap();
        }
        match limit.check(a) {
            Err(ApiError::RateLimited { retry_after }) => {
                assert!((1..=20).contains(&retry_after), "{retry_after}")
            }
            other => panic!("{other:?}"),
        }
        limit.check(b).unwrap();
    }

    #[test]
    fn failures_are_limited_and_successes_are_not_counted() {
        let limit = AuthFailures::per_minute(NonZeroU32::new(3).unwrap());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(limit.authenticate(a, || Some(1)).unwrap(), 1);
        }
        for _ in 0..3 {
            assert!(matches!(
                limit.authenticate(a, || None::<()>),
                Err(ApiError::Unauthorized)
            ));
        }
        let mut called = false;
        match limit.authenticate(a, || {
            called = true;
            Some(())
        }) {
            Err(ApiError::RateLimited { retry_after }) => {
                assert!((1..=20).contains(&retry_after), "{retry_after}")
            }
            other => panic!("{other:?}"),
        }
        assert!(!called, "a blocked client's key was compared");
        assert!(
            limit
                .authenticate("192.0.2.2".parse().unwrap(), || Some(()))
                .is_ok()
        );
    }

    #[test]
    fn a_full_failure_table_stays_bounded_and_keeps_limiting_its_clients() {
        let limit = AuthFailures::per_minute(NonZeroU32::new(1).unwrap());
        let tracked: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(matches!(
            limit.authenticate(tracked, || None::<()>),
            Err(ApiError::Unauthorized)
        ));
        for i in 1..MAX_FAILING_CLIENTS + 10 {
            let bits = u32::try_from(i).unwrap() | 0x0a00_0000;
            let client = IpAddr::V4(std::net::Ipv4Addr::from(bits));
            let _ = limit.authenticate(client, || None::<()>);
        }
        let held = |limit: &AuthFailures| limit.table.lock().unwrap().clients.len();
        assert_eq!(held(&limit), MAX_FAILING_CLIENTS);
        // A client it holds is still refused before its key is compared...
        let mut compared = false;
        let refused = limit.authenticate(tracked, || {
            compared = true;
            Some(())
        });
        assert!(matches!(refused, Err(ApiError::RateLimited { .. })));
        assert!(!compared);
        // ... a new one is answered, not added, and a right key still works.
        let new: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(matches!(
            limit.authenticate(new, || None::<()>),
            Err(ApiError::Unauthorized)
        ));
        assert_eq!(held(&limit), MAX_FAILING_CLIENTS);
        assert!(limit.authenticate(new, || Some(())).is_ok());
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let limit = RateLimit::per_minute("test", NonZeroU32::new(1).unwrap());
        limit.check("2001:db8::1".parse().unwrap()).unwrap();
        assert!(limit.check("2001:db8::2".parse().unwrap()).is_err());
        limit.check("2001:db8:0:1::1".parse().unwrap()).unwrap();
        limit.check("::ffff:192.0.2.9".parse().unwrap()).unwrap();
        assert!(limit.check("192.0.2.9".parse().unwrap()).is_err());
    }
}
