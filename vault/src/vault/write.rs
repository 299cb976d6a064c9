//! Store calls whose outcome is known.
//!
//! A store call that fails with `STORE_UNAVAILABLE` (a timeout, a reset connection) may
//! still have applied. Every write names a version, and every claim an id, that no other
//! write carries, and the store answers a repeated write as it answered the first one. So
//! the vault repeats the same call: `Applied` means this write is stored (now or from the
//! first try), `Conflict` means another writer's is. Only when no try gets an answer is
//! the outcome reported as unknown.

use std::future::Future;
use std::time::Duration;

use super::Inner;
use crate::error::{Error, Result};
use crate::store::{CasOutcome, Claim, Claimed, Version};

/// Tries of one write before its outcome is reported as unknown.
const WRITE_TRIES: u32 = 3;

/// Pause before the second try; each later try waits once more as long.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// The outcome of a compare-and-set whose earlier tries may have gone unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// This write is stored.
    Applied,
    /// Another write holds the entry. When `after_unanswered`, an earlier try of this write
    /// got no answer: it may have applied before the other write replaced it.
    Conflict { after_unanswered: bool },
}

/// Runs `call` until the store answers it, at most [`WRITE_TRIES`] times, and says whether
/// a try went unanswered first. `call` MUST repeat the same idempotent write (same version,
/// same claim id) each time.
async fn settled<T, F, Fut>(what: &str, mut call: F) -> Result<(T, bool)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut last = String::new();
    for attempt in 0..WRITE_TRIES {
        if attempt > 0 {
            tokio::time::sleep(RETRY_PAUSE * attempt).await;
        }
        match call().await {
            Err(Error::StoreUnavailable(detail)) => {
                tracing::debug!(target: "pci_vault", what, attempt, "store write unanswered: {detail}");
                last = detail;
            }
            answered => return answered.map(|a| (a, attempt > 0)),
        }
    }
    Err(Error::store_unavailable(format!(
        "the store did not confirm the {what}; its outcome is unknown ({last})"
    )))
}

impl Inner {
    /// Creates `key` at `version`, learning the outcome.
    pub(crate) async fn create_entry(
        &self,
        key: &str,
        version: Version,
        value: &[u8],
        ttl: Duration,
    ) -> Result<CasOutcome> {
        Ok(
            settled("create", || self.store.create(key, version, value, ttl))
                .await?
                .0,
        )
    }

    /// Replaces `key` at `expected` by `value` at `version`, publishing `event` in the
    /// same atomic step, learning the outcome. A repeated try publishes nothing again.
    pub(crate) async fn replace_entry(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
        event: &[u8],
    ) -> Result<Written> {
        let (outcome, after_unanswered) = settled("write", || {
            self.store
                .replace_and_publish(key, expected, version, value, event)
        })
        .await?;
        Ok(match outcome {
            CasOutcome::Applied(_) => Written::Applied,
            CasOutcome::Conflict => Written::Conflict { after_unanswered },
        })
    }

    /// Gives back the claim `id` on `key` if it is the latest; whether it is gone.
    pub(crate) async fn release_entry(&self, key: &str, id: u64) -> Result<bool> {
        Ok(settled("release", || self.store.release(key, id)).await?.0)
    }

    /// Takes `claim` on `key`, learning the outcome.
    pub(crate) async fn claim_entry(
        &self,
        key: &str,
        claim: Claim,
        limit: u8,
        prefix: &[u8],
    ) -> Result<Option<Claimed>> {
        Ok(
            settled("attempt", || self.store.claim(key, claim, limit, prefix))
                .await?
                .0,
        )
    }
}
