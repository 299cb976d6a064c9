//! Time limits on a request: its body must arrive within the body timeout, and the whole
//! request must be answered within the request timeout. Together with hyper's header
//! timeout and the connection limit ([`crate::listener`]) they keep slow clients from
//! holding connections open indefinitely.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;

/// The time limits of every request.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the end of the headers to the last byte of the body.
    pub body: Duration,
    /// From the end of the headers to the response.
    pub request: Duration,
}

/// When the request's body must have arrived, for extractors to tell a timeout from
/// another read error.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub Instant);

impl BodyDeadline {
    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.0
    }
}

/// The error a body reports once its deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the body timeout")]
pub struct BodyTimedOut;

/// A request body that fails once its deadline passes, however steadily bytes arrive.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))));
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: bounds the body's arrival and the whole request's time. A body that misses
/// its deadline is answered 408 `REQUEST_TIMEOUT` (by the extractor that reads it); a
/// request not answered in time, 503 `REQUEST_TIMEOUT` — an operation cut off this way may
/// or may not have taken effect, as when a client disconnects.
pub async fn limit(State(timeouts): State<Timeouts>, request: Request, next: Next) -> Response {
    let deadline = Instant::now() + timeouts.body;
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(BodyDeadline(deadline));
    let body = Body::new(DeadlineBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep_until(deadline)),
    });
    let request = Request::from_parts(parts, body);
    match tokio::time::timeout(timeouts.request, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                timeout_seconds = timeouts.request.as_secs(),
                "request timed out"
            );
            ApiError::RequestTimeout.into_response()
        }
    }
}
