#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod events;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use pci_vault::store::{Claim, Claimed, MAX_CLAIMS, MAX_EVENT_LEN, MAX_VALUE_LEN, is_valid_key};
use pci_vault::{
    CasOutcome, Clock, EphemeralStore, Error, EventSubscription, Result, SystemClock, Version,
    Versioned,
};

/// Bounds of a [`MemoryStore`].
///
/// Start from [`MemoryLimits::default`] and change what differs: new bounds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryLimits {
    /// Most live entries.
    pub max_entries: usize,
    /// Most bytes of keys and values together (plus a fixed overhead per entry).
    pub max_bytes: usize,
}

impl MemoryLimits {
    /// These limits with at most `max_entries` live entries.
    #[must_use]
    pub fn with_max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// These limits with at most `max_bytes` of keys, values and overhead.
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            max_entries: 100_000,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Bytes counted for an entry besides its key and value: the map slot, the expiry queue
/// slot (which holds a copy of the key) and bookkeeping.
const ENTRY_OVERHEAD: usize = 128;

/// Most expired entries one write purges, so no single call pays for a large backlog; a
/// write that finds the store full purges all of them.
const PURGE_PER_WRITE: usize = 64;

/// An in-memory, bounded, expiring [`EphemeralStore`].
///
/// Events reach the subscribers of this store, in this process, through one broadcast
/// channel: an event is sent while the write that carries it holds the store's lock, so
/// subscribers see events in the order of the writes.
pub struct MemoryStore {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    limits: MemoryLimits,
    events: tokio::sync::broadcast::Sender<events::Published>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// When each key expires, soonest first. A key that was deleted or re-created keeps a
    /// stale slot here until its time comes; purging checks the entry's own expiry.
    expiry: BinaryHeap<Reverse<(i64, String)>>,
    bytes: usize,
}

struct Entry {
    value: Vec<u8>,
    version: Version,
    claims: Vec<Claim>,
    expires_at: i64,
}

impl Entry {
    fn versioned(&self) -> Versioned {
        Versioned {
            value: self.value.clone(),
            version: self.version,
            claims: self.claims.clone(),
        }
    }
}

/// Bytes counted for one claim.
const CLAIM_COST: usize = std::mem::size_of::<Claim>();

fn cost(key: &str, value: &[u8]) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

impl State {
    fn live(&self, key: &str, now: i64) -> Option<&Entry> {
        self.entries.get(key).filter(|e| e.expires_at > now)
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= cost(key, &old.value) + old.claims.len() * CLAIM_COST;
        }
    }

    /// Removes up to `limit` expired entries, soonest first.
    fn purge_expired(&mut self, now: i64, limit: usize) {
        for _ in 0..limit {
            match self.expiry.peek() {
                Some(Reverse((at, _))) if *at <= now => {}
                _ => break,
            }
            let Some(Reverse((at, key))) = self.expiry.pop() else {
                break;
            };
            if self.entries.get(&key).is_some_and(|e| e.expires_at == at) {
                self.remove(&key);
            }
        }
        // Stale slots of deleted keys: rebuild the queue when they outnumber the live ones.
        if self.expiry.len() > 2 * self.entries.len() + 1024 {
            self.expiry = self
                .entries
                .iter()
                .map(|(k, e)| Reverse((e.expires_at, k.clone())))
                .collect();
        }
    }

    /// Purges some expired entries, and all of them when `need` more bytes or one more entry
    /// would not fit; then says whether it fits.
    fn make_room(
        &mut self,
        now: i64,
        limits: &MemoryLimits,
        new_entry: bool,
        need: usize,
    ) -> Result<()> {
        let fits = |s: &State| {
            (!new_entry || s.entries.len() < limits.max_entries)
                && s.bytes + need <= limits.max_bytes
        };
        self.purge_expired(now, PURGE_PER_WRITE);
        if !fits(self) {
            self.purge_expired(now, usize::MAX);
        }
        if fits(self) {
            Ok(())
        } else {
            Err(Error::CapacityExceeded)
        }
    }
}

impl MemoryStore {
    /// A store with the default limits, expiring entries by the system clock.
    pub fn new() -> Self {
        MemoryStore::with_clock(MemoryLimits::default(), Arc::new(SystemClock))
    }

    /// A store with the given limits, expiring entries by `clock`.
    pub fn with_clock(limits: MemoryLimits, clock: Arc<dyn Clock>) -> Self {
        MemoryStore {
            state: Mutex::new(State::default()),
            clock,
            limits,
            events: events::channel(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> MemoryLimits {
        self.limits
    }

    /// Entries held and the bytes they are counted at, expired ones not yet purged
    /// included.
    pub fn usage(&self) -> (usize, usize) {
        let state = self.lock();
        (state.entries.len(), state.bytes)
    }

    /// Every live entry as stored, for audits and tests: keys and sealed bytes. Not a public
    /// API: for this repository's tests, fuzz targets and footprint measurements.
    #[doc(hidden)]
    pub fn raw_entries(&self) -> Vec<(String, Vec<u8>)> {
        let now = self.clock.now_millis();
        self.lock()
            .entries
            .iter()
            .filter(|(_, e)| e.expires_at > now)
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect()
    }

    /// `replace`, sending `event` to the subscribers while the lock is held when this call
    /// stores `version`.
    fn replace_inner(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
        event: Option<&[u8]>,
    ) -> Result<CasOutcome> {
        check_args(key, value)?;
        if event.is_some_and(|e| e.len() > MAX_EVENT_LEN) {
            return Err(Error::InvalidArgument("an event is at most 1 KiB"));
        }
        let now = self.clock.now_millis();
        let mut state = self.lock();
        let Some(old) = state.live(key, now) else {
            return Ok(CasOutcome::Conflict);
        };
        if old.version == version {
            return Ok(CasOutcome::Applied(version));
        }
        if old.version != expected {
            return Ok(CasOutcome::Conflict);
        }
        let (old_cost, expires_at, claims) =
            (cost(key, &old.value), old.expires_at, old.claims.clone());
        // Only growth is refused: claims may have taken the store past its bound (they
        // always fit), and a write that does not grow the entry (a tombstone, a cancel) must
        // still go through, or a full store would strand its sessions.
        let growth = cost(key, value).saturating_sub(old_cost);
        if growth > 0 {
            state.make_room(now, &self.limits, false, growth)?;
        }
        state.bytes = state.bytes - old_cost + cost(key, value);
        state.entries.insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                version,
                claims,
                expires_at,
            },
        );
        if let Some(event) = event {
            // No subscriber is not an error.
            let _ = self.events.send((Arc::from(key), Arc::from(event)));
        }
        Ok(CasOutcome::Applied(version))
    }

    /// A poisoned lock means a panic inside one of the short sections below, none of which
    /// leaves the map half-changed; the state is still consistent, so it is used.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn check_args(key: &str, value: &[u8]) -> Result<()> {
    if !is_valid_key(key) {
        return Err(Error::InvalidArgument(
            "a store key is 1-128 characters of A-Z a-z 0-9 _ -",
        ));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::InvalidArgument("a stored value is at most 1 MiB"));
    }
    Ok(())
}

#[async_trait]
impl EphemeralStore for MemoryStore {
    async fn create(
        &self,
        key: &str,
        version: Version,
        value: &[u8],
        ttl: Duration,
    ) -> Result<CasOutcome> {
        check_args(key, value)?;
        let now = self.clock.now_millis();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        let mut state = self.lock();
        if let Some(live) = state.live(key, now) {
            return Ok(if live.version == version {
                CasOutcome::Applied(version)
            } else {
                CasOutcome::Conflict
            });
        }
        state.remove(key);
        state.make_room(now, &self.limits, true, cost(key, value))?;
        let expires_at = now.saturating_add(ttl_ms);
        state.bytes += cost(key, value);
        state.entries.insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                version,
                claims: Vec::new(),
                expires_at,
            },
        );
        state.expiry.push(Reverse((expires_at, key.to_owned())));
        Ok(CasOutcome::Applied(version))
    }

    async fn load(&self, key: &str) -> Result<Option<Versioned>> {
        let now = self.clock.now_millis();
        let state = self.lock();
        Ok(state.live(key, now).map(Entry::versioned))
    }

    async fn replace(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
    ) -> Result<CasOutcome> {
        self.replace_inner(key, expected, version, value, None)
    }

    async fn delete(&self, key: &str, expected: Version) -> Result<CasOutcome> {
        let now = self.clock.now_millis();
        let mut state = self.lock();
        match state.live(key, now) {
            Some(e) if e.version == expected => {
                state.remove(key);
                Ok(CasOutcome::Applied(expected))
            }
            _ => Ok(CasOutcome::Conflict),
        }
    }

    async fn claim(
        &self,
        key: &str,
        claim: Claim,
        limit: u8,
        prefix: &[u8],
    ) -> Result<Option<Claimed>> {
        check_args(key, &[])?;
        let now = self.clock.now_millis();
        let mut guard = self.lock();
        let State { entries, bytes, .. } = &mut *guard;
        let Some(entry) = entries.get_mut(key).filter(|e| e.expires_at > now) else {
            return Ok(None);
        };
        let held = entry.claims.iter().position(|c| c.id == claim.id);
        let slot = match held {
            Some(i) => Some(i + 1),
            None if entry.value.starts_with(prefix)
                && entry.claims.len() < usize::from(limit.min(MAX_CLAIMS)) =>
            {
                // A claim always fits: refusing one would stop reveals on a full store. It is
                // counted, and at most MAX_CLAIMS of them take an entry past its own cost.
                entry.claims.push(claim);
                *bytes += CLAIM_COST;
                Some(entry.claims.len())
            }
            None => None,
        };
        Ok(Some(Claimed {
            entry: entry.versioned(),
            slot: slot.and_then(|s| u8::try_from(s).ok()),
        }))
    }

    async fn release(&self, key: &str, id: u64) -> Result<bool> {
        check_args(key, &[])?;
        let now = self.clock.now_millis();
        let mut guard = self.lock();
        let State { entries, bytes, .. } = &mut *guard;
        let Some(entry) = entries.get_mut(key).filter(|e| e.expires_at > now) else {
            return Ok(true);
        };
        match entry.claims.iter().position(|c| c.id == id) {
            None => Ok(true),
            Some(i) if i + 1 == entry.claims.len() => {
                entry.claims.pop();
                *bytes -= CLAIM_COST;
                Ok(true)
            }
            Some(_) => Ok(false),
        }
    }

    async fn replace_and_publish(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
        event: &[u8],
    ) -> Result<CasOutcome> {
        self.replace_inner(key, expected, version, value, Some(event))
    }

    async fn publish(&self, key: &str, event: &[u8]) -> Result<()> {
        check_args(key, event)?;
        if event.len() > MAX_EVENT_LEN {
            return Err(Error::InvalidArgument("an event is at most 1 KiB"));
        }
        let _ = self.events.send((Arc::from(key), Arc::from(event)));
        Ok(())
    }

    async fn subscribe(&self, key: &str) -> Result<Box<dyn EventSubscription>> {
        check_args(key, &[])?;
        Ok(Box::new(events::MemorySubscription {
            key: Arc::from(key),
            receiver: self.events.subscribe(),
        }))
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
