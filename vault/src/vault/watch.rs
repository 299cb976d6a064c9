//! Watching one session: its state first, then every event as it happens, to the end.
//!
//! A watch subscribes to the session's events, then reads the session, then streams: the
//! state it read comes first, and every event published after the subscription follows,
//! so nothing is missed between the read and the stream. Events already reflected in the
//! state read are dropped, so each change is reported once: a state event (`submitted`,
//! `revealed`, `locked`, `cancelled`) only when it moves the session forward, a
//! `reveal_failed` only when it lowers the attempts left, an `opened` once by its id.
//!
//! When the subscription is lost (the store restarted, the connection dropped, the
//! subscriber fell behind), the watch subscribes again, reads the state again and reports
//! a state it had not reported yet, then streams again. It reads the state every
//! [`RESYNC_EVERY`] too, so a subscription that stays silent while the store moves on (a
//! hung connection) costs at most that delay. No write happens at expiry: the watch
//! reports `expired` when the session's `expires_at` passes on the vault's clock, or when
//! the session is gone and that time has passed. The key provider unwraps the session's
//! data key once: later reads reuse it while the record holds the same wrapped key, so a
//! watch on a KMS or an HSM makes no call every [`RESYNC_EVERY`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::ops::{KnownKey, key_for};
use super::{Inner, Vault};
use crate::crypto::SessionCrypto;
use crate::error::{Error, Result};
use crate::events::{PublishedEvent, SessionEvent, SessionEventKind, from_state};
use crate::session::{SessionId, SessionState};
use crate::store::EventSubscription;
use crate::tenant::Tenant;

/// How often a watch reads the session's state even when events arrive.
pub(crate) const RESYNC_EVERY: Duration = Duration::from_secs(15);

/// First pause before subscribing again after a failure; it doubles up to
/// [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(50);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// Event ids remembered to drop a repeated `opened`.
const SEEN_IDS: usize = 32;

impl Vault {
    /// Watches one of this tenant's sessions: [`SessionWatch::next`] yields the session's
    /// current state first (as the event that led to it: `created` for a pending
    /// session), then each event as it happens, and ends after a terminal one
    /// (`revealed`, `locked`, `cancelled`, `expired`). Events come from every process
    /// sharing the store.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown, expired or other tenant's session; `STORE_UNAVAILABLE`
    /// when the store cannot subscribe (or delivers no events); `INTEGRITY_ERROR`;
    /// `KEY_UNAVAILABLE`.
    pub async fn watch(&self, id: &SessionId) -> Result<SessionWatch> {
        let mut watch = SessionWatch {
            inner: Arc::clone(&self.inner),
            tenant: self.tenant.clone(),
            id: id.clone(),
            subscription: None,
            crypto: None,
            known: None,
            expires_at: i64::MAX,
            state: None,
            lowest_attempts_left: u8::MAX,
            seen: VecDeque::new(),
            ready: VecDeque::new(),
            finished: false,
            retry_pause: FIRST_RETRY_PAUSE,
        };
        watch.subscribe_and_read().await?;
        Ok(watch)
    }
}

/// The events of one session, in order (see [`Vault::watch`]). Drop it to stop watching.
pub struct SessionWatch {
    inner: Arc<Inner>,
    tenant: Tenant,
    id: SessionId,
    subscription: Option<Box<dyn EventSubscription>>,
    /// The session's keys, from the latest read: they check the events' tags.
    crypto: Option<SessionCrypto>,
    /// The data key of the latest read: a read of a record that still holds its wrapped
    /// key (every read but the first, in practice) does not ask the key provider again.
    known: Option<KnownKey>,
    expires_at: i64,
    /// The last state reported.
    state: Option<SessionState>,
    /// The attempts left of the last `reveal_failed` reported (or read).
    lowest_attempts_left: u8,
    seen: VecDeque<crate::events::EventId>,
    ready: VecDeque<SessionEvent>,
    finished: bool,
    retry_pause: Duration,
}

impl std::fmt::Debug for SessionWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionWatch")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("state", &self.state)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl SessionWatch {
    /// The session watched.
    pub fn session(&self) -> &SessionId {
        &self.id
    }

    /// The next event, waiting for it; `None` after the terminal event. An error ends the
    /// watch too: `NOT_FOUND` when the session disappeared before its time (the store lost
    /// it), `INTEGRITY_ERROR` or `KEY_UNAVAILABLE` when it can no longer be read. A store
    /// that is down is waited for, until the session's time runs out.
    pub async fn next(&mut self) -> Option<Result<SessionEvent>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                if event.kind.is_terminal() {
                    self.finished = true;
                    self.ready.clear();
                    self.subscription = None;
                }
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            if self.inner.clock.now_millis() >= self.expires_at {
                self.report_expired();
                continue;
            }
            let wait = RESYNC_EVERY.min(self.until_expiry());
            let Some(subscription) = self.subscription.as_mut() else {
                match self.subscribe_and_read().await {
                    Ok(()) => self.retry_pause = FIRST_RETRY_PAUSE,
                    Err(e) => {
                        if let Some(end) = self.fail(e) {
                            return Some(Err(end));
                        }
                        tokio::time::sleep(self.retry_pause.min(self.until_expiry())).await;
                        self.retry_pause = (self.retry_pause * 2).min(MAX_RETRY_PAUSE);
                    }
                }
                continue;
            };
            match tokio::time::timeout(wait, subscription.next()).await {
                Ok(Some(bytes)) => self.accept(&bytes),
                Ok(None) => {
                    tracing::debug!(target: "pci_vault", "session event subscription lost; subscribing again");
                    self.subscription = None;
                }
                Err(_) => {
                    if let Err(e) = self.read().await
                        && let Some(end) = self.fail(e)
                    {
                        return Some(Err(end));
                    }
                }
            }
        }
    }

    /// Real time until the session expires by the vault's clock, at least 1 ms.
    fn until_expiry(&self) -> Duration {
        let left = self
            .expires_at
            .saturating_sub(self.inner.clock.now_millis())
            .max(1);
        Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX))
    }

    /// Decides what a failed read means: `Some` ends the watch with that error; `None`
    /// means try again later (the store is down, or the session may still come back).
    fn fail(&mut self, e: Error) -> Option<Error> {
        match e {
            Error::StoreUnavailable(_) | Error::CapacityExceeded => {
                self.subscription = None;
                None
            }
            Error::NotFound if self.inner.clock.now_millis() >= self.expires_at => {
                self.report_expired();
                None
            }
            e => {
                self.finished = true;
                self.subscription = None;
                Some(e)
            }
        }
    }

    fn report_expired(&mut self) {
        let state = self.state.unwrap_or(SessionState::Pending);
        self.ready.push_back(from_state(
            SessionEventKind::Expired,
            &self.id,
            &self.tenant,
            state,
            self.lowest_attempts_left,
            self.inner.clock.now(),
        ));
    }

    /// Subscribes, then reads the state: anything that happens after the read is
    /// published after the subscription, so it reaches this watch.
    async fn subscribe_and_read(&mut self) -> Result<()> {
        let key = key_for(&self.id);
        self.subscription = Some(self.inner.store.subscribe(&key).await?);
        self.read().await
    }

    /// Reads the session and reports its state if it is one not reported yet.
    async fn read(&mut self) -> Result<()> {
        let key = key_for(&self.id);
        let stored = self.inner.store.load(&key).await?.ok_or(Error::NotFound)?;
        let loaded = self
            .inner
            .open_entry_knowing(stored, &self.id, Some(&self.tenant), self.known.as_ref())
            .await?;
        self.expires_at = loaded.record.expires_at;
        let state = loaded.record.state;
        let attempts_left = loaded.attempts_left();
        if self.state.is_none() {
            // The attempts a reveal has claimed count from the start; a later
            // `reveal_failed` reports a lower number.
            self.lowest_attempts_left = attempts_left;
        }
        if self
            .state
            .is_none_or(|reported| rank(state) > rank(reported))
        {
            let at = match (state, loaded.record.submitted_at) {
                (SessionState::Submitted, Some(at)) => crate::clock::from_millis(at),
                _ => self.inner.clock.now(),
            };
            self.state = Some(state);
            self.ready.push_back(from_state(
                SessionEventKind::of_state(state),
                &self.id,
                &self.tenant,
                state,
                attempts_left,
                at,
            ));
        }
        self.known = Some(loaded.known_key());
        self.crypto = Some(loaded.crypto);
        Ok(())
    }

    /// Reports a published event unless it was forged, is a repeat, or is already
    /// reflected in what was reported.
    fn accept(&mut self, bytes: &[u8]) {
        let Some(crypto) = &self.crypto else {
            return;
        };
        let Some(event) = PublishedEvent::open(bytes, crypto) else {
            tracing::warn!(target: "pci_vault", "dropped a session event that did not authenticate");
            return;
        };
        if self.seen.contains(&event.id) {
            return;
        }
        if self.seen.len() == SEEN_IDS {
            self.seen.pop_front();
        }
        self.seen.push_back(event.id);
        let reported = self.state.unwrap_or(SessionState::Pending);
        let new = match event.kind {
            SessionEventKind::Opened => reported == SessionState::Pending,
            SessionEventKind::RevealFailed => {
                reported == SessionState::Submitted
                    && event.attempts_left < self.lowest_attempts_left
            }
            SessionEventKind::Submitted
            | SessionEventKind::Revealed
            | SessionEventKind::Locked
            | SessionEventKind::Cancelled => rank(event.state) > rank(reported),
            _ => false,
        };
        if !new {
            return;
        }
        if event.kind == SessionEventKind::RevealFailed {
            self.lowest_attempts_left = event.attempts_left;
        } else if event.kind != SessionEventKind::Opened {
            self.state = Some(event.state);
        }
        self.ready
            .push_back(event.into_event(&self.id, &self.tenant));
    }
}

/// How far along its life a state is: a session only moves to a higher rank.
fn rank(state: SessionState) -> u8 {
    match state {
        SessionState::Pending => 0,
        SessionState::Submitted => 1,
        SessionState::Revealed | SessionState::Cancelled | SessionState::Locked => 2,
    }
}
