//! Stopping cleanly: the signal that ends long-lived answers (event streams) when the
//! server shuts down, and the vault operations still running, which the process waits for
//! before it exits.
//!
//! An operation that changes a session runs to its end in a task of its own
//! ([`pci_vault_config::to_completion`]), also after its request is gone: a client that
//! went away, a request timeout. When `main` returns, the runtime drops every task still
//! running, so such an operation could be stopped between its write and its audit event.
//! The server therefore runs them through [`Shutdown::to_completion`], which counts them,
//! and waits at shutdown until none is left ([`Shutdown::wait_idle`]), then for the webhook
//! events still queued ([`Shutdown::finish_work`]), within the grace period.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pci_vault_webhooks::Webhooks;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// The server's shutdown state: cheap to clone, shared by every handler.
#[derive(Clone)]
pub struct Shutdown(Arc<Inner>);

struct Inner {
    /// When the grace period ends; `None` until the shutdown begins.
    deadline: watch::Sender<Option<Instant>>,
    /// Vault operations running now.
    in_flight: AtomicUsize,
    /// Woken when `in_flight` drops to zero.
    idle: Notify,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("started", &self.is_started())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown(Arc::new(Inner {
            deadline: watch::Sender::new(None),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
        }))
    }
}

/// Counts one operation for as long as it lives: dropped when the operation ends, or when
/// its task is dropped.
struct InFlight(Arc<Inner>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Shutdown {
    /// A server that is not shutting down.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown: event streams end, and the process may wait for operations
    /// until `grace` from now. A second call changes nothing.
    pub fn begin(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        self.0.deadline.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(deadline);
            }
            first
        });
    }

    /// Whether the shutdown has begun.
    pub fn is_started(&self) -> bool {
        self.0.deadline.borrow().is_some()
    }

    /// When the grace period ends, once the shutdown has begun.
    pub fn deadline(&self) -> Option<Instant> {
        *self.0.deadline.borrow()
    }

    /// Resolves once the shutdown has begun (at once if it has).
    pub async fn started(&self) {
        let mut deadline = self.0.deadline.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = deadline.wait_for(Option::is_some).await;
    }

    /// Vault operations running now.
    pub fn in_flight(&self) -> usize {
        self.0.in_flight.load(Ordering::Acquire)
    }

    /// [`pci_vault_config::to_completion`], counted until the operation ends, so that the
    /// process can wait for it at shutdown.
    ///
    /// # Errors
    /// The operation's own, or `STORE_UNAVAILABLE` when the runtime shut down first.
    pub async fn to_completion<T, F>(&self, operation: F) -> pci_vault::Result<T>
    where
        T: Send + 'static,
        F: Future<Output = pci_vault::Result<T>> + Send + 'static,
    {
        // Counted before the task is spawned, so a shutdown never sees it missing; the
        // guard travels with the operation and is dropped where the operation ends.
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        let counted = InFlight(Arc::clone(&self.0));
        pci_vault_config::to_completion(async move {
            let outcome = operation.await;
            drop(counted);
            outcome
        })
        .await
    }

    /// Resolves once no operation is running.
    pub async fn wait_idle(&self) {
        loop {
            let idle = self.0.idle.notified();
            tokio::pin!(idle);
            // Registered before the count is read: a drop to zero in between still wakes it.
            idle.as_mut().enable();
            if self.in_flight() == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// How often the shutdown looks at the webhook backlog: its count notifies nobody.
const BACKLOG_CHECK: Duration = Duration::from_millis(100);

impl Shutdown {
    /// After the listeners closed, and until the grace period ends: lets the vault
    /// operations still running end (a reveal whose client went away, still waiting for
    /// Redis or the key provider, stores its outcome and its audit event), then the webhook
    /// events queued reach their receivers. What is left at the deadline is dropped when
    /// the process exits, and logged (as counts).
    pub async fn finish_work(&self, webhooks: &Webhooks) {
        let deadline = self.deadline().unwrap_or_else(Instant::now);
        self.wait_for_operations(deadline).await;
        if webhooks.is_enabled() {
            wait_for_webhooks(webhooks, deadline).await;
        }
    }

    async fn wait_for_operations(&self, deadline: Instant) {
        let operations = self.in_flight();
        if operations == 0 {
            return;
        }
        tracing::info!(operations, "waiting for vault operations still running");
        if tokio::time::timeout_at(deadline, self.wait_idle())
            .await
            .is_err()
        {
            tracing::warn!(
                operations = self.in_flight(),
                "the grace period ended with vault operations still running; they are stopped"
            );
        }
    }
}

async fn wait_for_webhooks(webhooks: &Webhooks, deadline: Instant) {
    // An operation that just ended has published its event; the session's watch enqueues
    // it a moment later, so the first look comes after one interval.
    let mut checks = tokio::time::interval_at(Instant::now() + BACKLOG_CHECK, BACKLOG_CHECK);
    let mut announced = false;
    loop {
        tokio::select! {
            _ = checks.tick() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
        let pending = webhooks.pending();
        if pending == 0 {
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                events = pending,
                "the grace period ended with webhook events not delivered; they are lost"
            );
            return;
        }
        if !std::mem::replace(&mut announced, true) {
            tracing::info!(events = pending, "waiting for webhook deliveries");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_operation_is_counted_until_it_ends_even_when_its_caller_gives_up() {
        let shutdown = Shutdown::new();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let running = shutdown.clone();
        let caller = tokio::spawn(async move {
            running
                .to_completion(async move {
                    let _ = released.await;
                    Ok(())
                })
                .await
        });
        while shutdown.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        // The caller stops waiting; the operation goes on and is still counted.
        caller.abort();
        let _ = caller.await;
        assert_eq!(shutdown.in_flight(), 1);
        let waiting = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { shutdown.wait_idle().await }
        });
        release.send(()).unwrap();
        waiting.await.unwrap();
        assert_eq!(shutdown.in_flight(), 0);
    }

    #[tokio::test]
    async fn started_resolves_once_the_shutdown_begins() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.is_started());
        assert!(shutdown.deadline().is_none());
        let waiting = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { shutdown.started().await }
        });
        shutdown.begin(Duration::from_secs(30));
        waiting.await.unwrap();
        let deadline = shutdown.deadline().unwrap();
        // A second signal keeps the first deadline.
        shutdown.begin(Duration::from_secs(3600));
        assert_eq!(shutdown.deadline(), Some(deadline));
        // Already begun: at once.
        shutdown.started().await;
    }
}
