//! Vault calls that run to their end even when their caller stops waiting.

use std::future::Future;

use pci_vault::{Error, Result};
use tracing::Instrument;

/// Runs `operation` (a vault call) to its end on the current tokio runtime, even if the
/// caller stops waiting for it, and answers its outcome.
///
/// A vault operation records its audit event once its write is stored. An operation whose
/// future is dropped half-way (an HTTP request whose client went away or whose timeout
/// fired, a Python call cancelled by `asyncio`) can leave a change stored without its audit
/// event. Hosts that may drop calls run the ones that change a session through this: the
/// operation goes on in a task of its own, and an outcome nobody waits for any more is
/// dropped, which wipes what it holds.
///
/// The task runs in the caller's `tracing` span, so what the operation logs (its audit
/// event, with the tracing sink) keeps the caller's context: the request, the API key. A
/// panic in `operation` is resumed in the caller. Must run inside a tokio runtime.
///
/// # Errors
/// The operation's own, or `STORE_UNAVAILABLE` when the runtime shut down before the
/// operation ended.
pub async fn to_completion<T, F>(operation: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    match tokio::spawn(operation.in_current_span()).await {
        Ok(outcome) => outcome,
        Err(stopped) => match stopped.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => Err(Error::store_unavailable(
                "the operation was stopped: the runtime is shutting down",
            )),
        },
    }
}
