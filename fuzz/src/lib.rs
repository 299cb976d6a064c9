//! What the fuzz targets share: deterministic executors (a paused tokio runtime whose
//! virtual time the vault's clock follows), a store wrapper whose interleavings and faults
//! the fuzzer chooses, and access to the memory store's raw bytes, as someone
//! who can read and write the store would have.
//!
//! A fuzz target signals a broken invariant by panicking, so the targets and this module
//! use `assert!` and `panic!` freely.

#![forbid(unsafe_code)]

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use pci_vault::audit::MemoryAuditSink;
use pci_vault::conformance::{TEST_KEK, flow::assert_no_secret_in, test_keyring};
use pci_vault::{
    CasOutcome, Claim, Claimed, Clock, EphemeralStore, Keyring, ManualClock, Result, SessionState,
    Vault, Version, Versioned,
};
use pci_vault_memory::{MemoryLimits, MemoryStore};

pub use futures::executor::block_on;

thread_local! {
    /// The runtime [`run`] drives operations on: one per fuzzing thread.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap_or_else(|e| panic!("building the runtime failed: {e}"));
}

/// Runs a vault operation to its end on a current-thread tokio runtime with paused time:
/// the vault sleeps between the tries of an unanswered write and while it waits for a
/// guess in flight, and a paused clock lets those sleeps end at once. (`block_on` has no
/// timer; it serves store calls that never sleep.)
pub fn run<F: std::future::Future>(fut: F) -> F::Output {
    RUNTIME.with(|rt| rt.block_on(fut))
}

/// Where every target's clock starts: 2030-06-15T12:00:00Z.
pub const START: Duration = Duration::from_secs(1_907_755_200);

/// How long after a session's latest attempt every vault of a fixture waits for its
/// outcome before it finishes the session as locked.
pub const GRACE: Duration = Duration::from_secs(4);

/// Bytes of the unkeyed checksum that ends every sealed record: a big-endian CRC-32 of
/// everything before it (see `vault/src/record.rs`).
pub const CHECKSUM_LEN: usize = 4;

/// Replaces the last 4 bytes of `record` with the checksum of the bytes before them, as an
/// attacker who edits a stored record can: the checksum is unkeyed, so only the record tag
/// and the field AEADs stand between the edit and the vault.
pub fn fix_checksum(record: &mut [u8]) {
    let Some(body_len) = record.len().checked_sub(CHECKSUM_LEN) else {
        return;
    };
    let (body, checksum) = record.split_at_mut(body_len);
    checksum.copy_from_slice(&crc32fast::hash(body).to_be_bytes());
}

/// `body` followed by its checksum.
pub fn with_checksum(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + CHECKSUM_LEN);
    out.extend_from_slice(body);
    out.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
    out
}

/// A future that is pending once and wakes itself: a point where the executor switches to
/// another contender.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// What the store does to one write (create, replace, delete, claim), as the fuzz input
/// chooses: one byte of a fault plan per write, in the order the writes reach the store.
///
/// The faults are those a network store shows: a reply that is lost after the write
/// applied, a write that fails before it applies, a write that times out and applies later,
/// a command that the client sends twice, and a process killed between two writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The write applies and its answer arrives.
    None,
    /// The write applies; the caller gets `STORE_UNAVAILABLE`.
    LostReply,
    /// Nothing applies; the caller gets `STORE_UNAVAILABLE`.
    FailBefore,
    /// The caller gets `STORE_UNAVAILABLE` at once; the write applies when `after` more
    /// store calls (of any caller) have started, or at the end of the step when `after`
    /// is 0 or the calls never come.
    Late {
        /// Store calls to wait for.
        after: u8,
    },
    /// The write applies twice; the caller gets the second answer.
    Duplicate,
    /// The write applies, then the calling operation never returns: its process died.
    Crash,
}

impl Fault {
    /// The fault a plan byte names: the low three bits choose the kind (three of eight
    /// values are no fault), the next two how many calls a late write waits.
    pub fn from_byte(b: u8) -> Fault {
        match b % 8 {
            3 => Fault::LostReply,
            4 => Fault::FailBefore,
            5 => Fault::Late {
                after: (b >> 3) % 4,
            },
            6 => Fault::Duplicate,
            7 => Fault::Crash,
            _ => Fault::None,
        }
    }
}

/// One write, owned, so that it can be applied later or twice.
#[derive(Debug, Clone)]
enum Write {
    Create {
        key: String,
        version: Version,
        value: Vec<u8>,
        ttl: Duration,
    },
    Replace {
        key: String,
        expected: Version,
        version: Version,
        value: Vec<u8>,
    },
    Delete {
        key: String,
        expected: Version,
    },
    Claim {
        key: String,
        claim: Claim,
        limit: u8,
        prefix: Vec<u8>,
    },
    Release {
        key: String,
        id: u64,
    },
}

/// The answer to a [`Write`].
#[derive(Debug)]
enum Answer {
    Cas(CasOutcome),
    Claimed(Option<Claimed>),
    Released(bool),
}

/// A write that applied: who wrote it, where, and the session state byte it stored
/// (`None` for a delete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The caller (see [`Fixture::crashable`]); `None` outside any.
    pub caller: Option<usize>,
    /// The store key.
    pub key: String,
    /// The state byte of the stored record (see [`StoredSession::state`]).
    pub state: Option<SessionState>,
}

/// What the store saw during one step.
#[derive(Debug, Default)]
pub struct Observed {
    /// Faults that fired (not counting [`Fault::None`]).
    pub faults: usize,
    /// Callers whose operation was killed.
    pub crashed: Vec<usize>,
    /// Creates and replaces that applied, in order.
    pub applied: Vec<Applied>,
}

#[derive(Debug, Default)]
struct FaultState {
    plan: Vec<u8>,
    next: usize,
    /// Late writes: calls still to wait for (0 = the end of the step), the write, its caller.
    late: Vec<(u8, Write, Option<usize>)>,
    observed: Observed,
    /// Per store key: the session's `max_attempts` and the claims that were given a place
    /// that lets the vault compare a PIN. Kept for the life of the fixture.
    counted: HashMap<String, (u8, HashSet<u64>)>,
}

thread_local! {
    /// The caller whose future is being polled (see [`Fixture::crashable`]).
    static CALLER: Cell<Option<usize>> = const { Cell::new(None) };
}

fn caller() -> Option<usize> {
    CALLER.with(Cell::get)
}

/// A store wrapper that the fuzz input drives:
///
/// - it yields to the other contenders before and after every call, as many times (0–3)
///   as the next byte of a schedule says. Contenders joined on one task then interleave
///   between their load and their compare-and-set in an order that is a pure function of
///   the fuzz input, so every crash reproduces. (The conformance suite's `Interleaved`
///   draws its yields from the OS random source, which suits tests but not a fuzzer.)
/// - it applies to each write the [`Fault`] that the next byte of a fault plan names.
/// - it records what applied, so that a target can tell a caller's own write from another's,
///   and it checks on every claim that no session ever gives more places that let a PIN be
///   compared than its `max_attempts`.
#[derive(Debug)]
pub struct Scheduled {
    inner: Arc<dyn EphemeralStore>,
    schedule: Mutex<(Vec<u8>, usize)>,
    faults: Mutex<FaultState>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Scheduled {
    /// A wrapper that neither yields nor fails until it is given a schedule and a plan.
    pub fn new(inner: Arc<dyn EphemeralStore>) -> Self {
        Scheduled {
            inner,
            schedule: Mutex::new((Vec::new(), 0)),
            faults: Mutex::new(FaultState::default()),
        }
    }

    /// Starts a new schedule; when its bytes run out, calls stop yielding.
    pub fn set_schedule(&self, steps: Vec<u8>) {
        *lock(&self.schedule) = (steps, 0);
    }

    /// Starts a new fault plan, one byte per write; when its bytes run out, writes apply
    /// normally.
    pub fn set_faults(&self, plan: Vec<u8>) {
        let mut f = lock(&self.faults);
        f.plan = plan;
        f.next = 0;
    }

    /// Applies every late write still waiting (the end of a step: the late replies have
    /// all landed), stops the fault plan, and returns what the store saw since the last
    /// call.
    pub fn settle(&self) -> Observed {
        let late = {
            let mut f = lock(&self.faults);
            f.plan.clear();
            std::mem::take(&mut f.late)
        };
        for (_, write, who) in late {
            let _ = futures::executor::block_on(self.apply(&write, who));
        }
        std::mem::take(&mut lock(&self.faults).observed)
    }

    /// Whether `who`'s operation was killed in this step.
    pub fn crashed(&self, who: usize) -> bool {
        lock(&self.faults).observed.crashed.contains(&who)
    }

    async fn pause(&self) {
        let n = {
            let mut s = lock(&self.schedule);
            let n = s.0.get(s.1).copied().unwrap_or(0) % 4;
            s.1 += 1;
            n
        };
        for _ in 0..n {
            YieldNow(false).await;
        }
    }

    /// Starts a store call: counts down the late writes and applies those now due.
    async fn land_late(&self) {
        let due: Vec<(Write, Option<usize>)> = {
            let mut f = lock(&self.faults);
            let mut due = Vec::new();
            let mut kept = Vec::new();
            for (after, write, who) in std::mem::take(&mut f.late) {
                match after {
                    0 => kept.push((0, write, who)),
                    1 => due.push((write, who)),
                    n => kept.push((n - 1, write, who)),
                }
            }
            f.late = kept;
            due
        };
        for (write, who) in due {
            let _ = self.apply(&write, who).await;
        }
    }

    /// Applies `write` on the inner store for `who`, and records what applied.
    async fn apply(&self, write: &Write, who: Option<usize>) -> Result<Answer> {
        let answer = match write {
            Write::Create {
                key,
                version,
                value,
                ttl,
            } => Answer::Cas(self.inner.create(key, *version, value, *ttl).await?),
            Write::Replace {
                key,
                expected,
                version,
                value,
            } => Answer::Cas(self.inner.replace(key, *expected, *version, value).await?),
            Write::Delete { key, expected } => {
                Answer::Cas(self.inner.delete(key, *expected).await?)
            }
            Write::Claim {
                key,
                claim,
                limit,
                prefix,
            } => Answer::Claimed(self.inner.claim(key, *claim, *limit, prefix).await?),
            Write::Release { key, id } => Answer::Released(self.inner.release(key, *id).await?),
        };
        let mut f = lock(&self.faults);
        match (write, &answer) {
            (
                Write::Create { key, value, .. } | Write::Replace { key, value, .. },
                Answer::Cas(CasOutcome::Applied(_)),
            ) => f.observed.applied.push(Applied {
                caller: who,
                key: key.clone(),
                state: header(value).map(|h| h.state),
            }),
            (Write::Delete { key, .. }, Answer::Cas(CasOutcome::Applied(_))) => {
                f.observed.applied.push(Applied {
                    caller: who,
                    key: key.clone(),
                    state: None,
                })
            }
            (
                Write::Claim { key, claim, .. },
                Answer::Claimed(Some(Claimed {
                    entry,
                    slot: Some(slot),
                })),
            ) => {
                if let Some(h) = header(&entry.value)
                    && h.attempts_used.saturating_add(*slot) <= h.max_attempts
                {
                    let counted = f
                        .counted
                        .entry(key.clone())
                        .or_insert_with(|| (h.max_attempts, HashSet::new()));
                    counted.1.insert(claim.id);
                    assert!(
                        counted.1.len() <= usize::from(counted.0),
                        "{} claims let a PIN be compared on a session that allows {}",
                        counted.1.len(),
                        counted.0
                    );
                }
            }
            // A claim given back compared no PIN: its place may be taken again.
            (Write::Release { key, id }, Answer::Released(true)) => {
                if let Some(counted) = f.counted.get_mut(key) {
                    counted.1.remove(id);
                }
            }
            _ => {}
        }
        Ok(answer)
    }

    /// A write through the fault plan.
    async fn write(&self, write: Write) -> Result<Answer> {
        self.pause().await;
        self.land_late().await;
        let who = caller();
        let fault = {
            let mut f = lock(&self.faults);
            let fault = f
                .plan
                .get(f.next)
                .map_or(Fault::None, |b| Fault::from_byte(*b));
            f.next += 1;
            if fault != Fault::None {
                f.observed.faults += 1;
            }
            fault
        };
        let unanswered = || pci_vault::Error::store_unavailable("injected fault: no reply");
        let out = match fault {
            Fault::None => self.apply(&write, who).await,
            Fault::LostReply => {
                let _ = self.apply(&write, who).await;
                Err(unanswered())
            }
            Fault::FailBefore => Err(unanswered()),
            Fault::Late { after } => {
                lock(&self.faults).late.push((after, write, who));
                Err(unanswered())
            }
            Fault::Duplicate => {
                let _ = self.apply(&write, who).await;
                self.apply(&write, who).await
            }
            Fault::Crash => {
                let out = self.apply(&write, who).await;
                if let Some(who) = who {
                    lock(&self.faults).observed.crashed.push(who);
                    // The process is gone: nothing answers, and `Fixture::crashable` drops
                    // the caller's future before it is polled again.
                    std::future::pending::<()>().await;
                }
                out
            }
        };
        self.pause().await;
        out
    }
}

fn cas(answer: Result<Answer>) -> Result<CasOutcome> {
    match answer? {
        Answer::Cas(out) => Ok(out),
        Answer::Claimed(_) | Answer::Released(_) => {
            panic!("a compare-and-set answered as another write")
        }
    }
}

#[async_trait]
impl EphemeralStore for Scheduled {
    async fn create(
        &self,
        key: &str,
        version: Version,
        value: &[u8],
        ttl: Duration,
    ) -> Result<CasOutcome> {
        cas(self
            .write(Write::Create {
                key: key.to_owned(),
                version,
                value: value.to_vec(),
                ttl,
            })
            .await)
    }

    async fn load(&self, key: &str) -> Result<Option<Versioned>> {
        self.pause().await;
        self.land_late().await;
        let out = self.inner.load(key).await;
        self.pause().await;
        out
    }

    async fn replace(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
    ) -> Result<CasOutcome> {
        cas(self
            .write(Write::Replace {
                key: key.to_owned(),
                expected,
                version,
                value: value.to_vec(),
            })
            .await)
    }

    async fn delete(&self, key: &str, expected: Version) -> Result<CasOutcome> {
        cas(self
            .write(Write::Delete {
                key: key.to_owned(),
                expected,
            })
            .await)
    }

    async fn claim(
        &self,
        key: &str,
        claim: Claim,
        limit: u8,
        prefix: &[u8],
    ) -> Result<Option<Claimed>> {
        match self
            .write(Write::Claim {
                key: key.to_owned(),
                claim,
                limit,
                prefix: prefix.to_vec(),
            })
            .await?
        {
            Answer::Claimed(out) => Ok(out),
            _ => panic!("a claim answered as another write"),
        }
    }

    async fn release(&self, key: &str, id: u64) -> Result<bool> {
        match self
            .write(Write::Release {
                key: key.to_owned(),
                id,
            })
            .await?
        {
            Answer::Released(out) => Ok(out),
            _ => panic!("a release answered as another write"),
        }
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    /// Through [`replace`](EphemeralStore::replace), with its faults and pauses; the
    /// targets watch no events, so none is published.
    async fn replace_and_publish(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
        _event: &[u8],
    ) -> Result<CasOutcome> {
        self.replace(key, expected, version, value).await
    }

    async fn publish(&self, _key: &str, _event: &[u8]) -> Result<()> {
        Ok(())
    }

    async fn subscribe(&self, _key: &str) -> Result<Box<dyn pci_vault::store::EventSubscription>> {
        Err(pci_vault::Error::store_unavailable(
            "the fuzz store delivers no events",
        ))
    }
}

/// The clock of a fixture: a manual clock that the target moves, plus, while an operation
/// runs on the fixture's runtime, the (paused, virtual) time that the operation has slept
/// (retry pauses, waits for guesses in flight). That time is kept when the operation ends.
#[derive(Debug)]
pub struct FuzzClock {
    manual: ManualClock,
    op_start: Mutex<Option<tokio::time::Instant>>,
}

impl FuzzClock {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.manual.advance(by);
    }
}

impl Clock for FuzzClock {
    fn now(&self) -> SystemTime {
        let base = self.manual.now();
        match *lock(&self.op_start) {
            Some(start) => base + (tokio::time::Instant::now() - start),
            None => base,
        }
    }
}

/// The fixed part of a stored record's header, read from its bytes (see
/// `vault/src/record.rs`): what the store, as anyone who can read it, knows of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredHeader {
    /// The session's state.
    pub state: SessionState,
    /// When it expires, in ms since the epoch.
    pub expires_at: i64,
    /// Whether it was ever submitted.
    pub submitted: bool,
    /// Its attempt allowance.
    pub max_attempts: u8,
    /// Attempts counted in the record itself.
    pub attempts_used: u8,
}

/// Reads the header of a record; `None` for bytes that are not one.
pub fn header(bytes: &[u8]) -> Option<StoredHeader> {
    if bytes.get(..3)? != b"PVR" {
        return None;
    }
    let state = match *bytes.get(4)? {
        1 => SessionState::Pending,
        2 => SessionState::Submitted,
        3 => SessionState::Revealed,
        4 => SessionState::Cancelled,
        5 => SessionState::Locked,
        _ => return None,
    };
    let at = 6 + usize::from(*bytes.get(5)?);
    let i64_at = |o: usize| -> Option<i64> {
        Some(i64::from_be_bytes(bytes.get(o..o + 8)?.try_into().ok()?))
    };
    let expires_at = i64_at(at + 8)?;
    let submitted = i64_at(at + 16)? >= 0;
    let [_, max_attempts, attempts_used] = bytes.get(at + 24..at + 27)?.try_into().ok()?;
    Some(StoredHeader {
        state,
        expires_at,
        submitted,
        max_attempts,
        attempts_used,
    })
}

/// A session as the store holds it: its header and the claims taken on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The record's header.
    pub header: StoredHeader,
    /// The claims on the record, oldest first.
    pub claims: Vec<Claim>,
}

impl StoredSession {
    /// The session's state.
    pub fn state(&self) -> SessionState {
        self.header.state
    }

    /// Attempts taken, as the vault counts them: the record's own count and the claims
    /// beside it (a tombstone keeps the claims of its submitted record).
    pub fn used(&self) -> u8 {
        let h = &self.header;
        let claimed = u8::try_from(self.claims.len()).unwrap_or(u8::MAX);
        h.attempts_used.saturating_add(claimed).min(h.max_attempts)
    }

    /// A submitted session whose attempts are all taken: its outcome is on its way, or
    /// was lost.
    pub fn all_taken(&self) -> bool {
        self.header.state == SessionState::Submitted && self.used() >= self.header.max_attempts
    }

    /// When a vault with `grace` finishes this session as locked if it is still
    /// submitted: `grace` after its latest counted attempt.
    pub fn finish_after(&self, grace: Duration) -> i64 {
        let counted = usize::from(
            self.header
                .max_attempts
                .saturating_sub(self.header.attempts_used),
        );
        let latest = self
            .claims
            .iter()
            .take(counted)
            .map(|c| c.at_millis)
            .max()
            .unwrap_or(i64::MIN);
        latest.saturating_add(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX))
    }
}

/// One memory store on a manual clock, reachable raw (as an attacker with store access) and
/// through vaults (as the processes of a deployment).
pub struct Fixture {
    /// The store itself, for raw reads and writes.
    pub memory: Arc<MemoryStore>,
    /// The same store behind [`Scheduled`], which every vault of the fixture uses.
    pub scheduled: Arc<Scheduled>,
    /// The clock of the store and of every vault.
    pub clock: Arc<FuzzClock>,
    keyring: Arc<Keyring>,
    /// A current-thread runtime with paused time: a vault's sleeps (retry pauses, waits
    /// for guesses in flight) end at once, in virtual time that the clock follows.
    runtime: tokio::runtime::Runtime,
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}

impl Fixture {
    /// A fresh store with its clock at [`START`].
    pub fn new() -> Self {
        Fixture::at(UNIX_EPOCH + START)
    }

    /// A fresh store with its clock at `now`.
    pub fn at(now: SystemTime) -> Self {
        let clock = Arc::new(FuzzClock {
            manual: ManualClock::new(now),
            op_start: Mutex::new(None),
        });
        let memory = Arc::new(MemoryStore::with_clock(
            MemoryLimits::default(),
            clock.clone(),
        ));
        let scheduled = Arc::new(Scheduled::new(memory.clone()));
        Fixture {
            memory,
            scheduled,
            clock,
            keyring: Arc::new(test_keyring()),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap_or_else(|e| panic!("building the runtime failed: {e}")),
        }
    }

    /// Runs `fut` to its end on the fixture's runtime. The virtual time it slept moves the
    /// clock: the vault sees it pass while `fut` runs, and it stays passed afterwards.
    pub fn run<F: Future>(&self, fut: F) -> F::Output {
        let clock = self.clock.clone();
        self.runtime.block_on(async move {
            let start = tokio::time::Instant::now();
            *lock(&clock.op_start) = Some(start);
            let out = fut.await;
            *lock(&clock.op_start) = None;
            clock.manual.advance(tokio::time::Instant::now() - start);
            out
        })
    }

    /// Runs one operation as caller 0 (see [`Fixture::crashable`]); `None` when a fault
    /// killed it.
    pub fn run_one<F: Future>(&self, fut: F) -> Option<F::Output> {
        self.run(self.crashable(0, fut))
    }

    /// `fut` as the operation of caller `who` (a process, or one contender of a race):
    /// the store attributes `fut`'s writes to `who`, and a [`Fault::Crash`] on one of them
    /// drops `fut` where it stands and answers `None`, as a process killed between two
    /// writes.
    pub fn crashable<'a, F: Future + 'a>(
        &'a self,
        who: usize,
        fut: F,
    ) -> impl Future<Output = Option<F::Output>> + 'a {
        let mut fut = Some(Box::pin(fut));
        std::future::poll_fn(move |cx| {
            let Some(running) = fut.as_mut() else {
                return Poll::Ready(None);
            };
            let outer = CALLER.with(|c| c.replace(Some(who)));
            let polled = running.as_mut().poll(cx);
            CALLER.with(|c| c.set(outer));
            match polled {
                Poll::Ready(out) => Poll::Ready(Some(out)),
                Poll::Pending if self.scheduled.crashed(who) => {
                    fut = None;
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            }
        })
    }

    /// The session under `key` as the store holds it now; `None` when absent or expired.
    pub fn stored(&self, key: &str) -> Option<StoredSession> {
        let entry = block_on(self.memory.load(key)).unwrap_or_else(|e| panic!("load: {e}"))?;
        Some(StoredSession {
            header: header(&entry.value).unwrap_or_else(|| panic!("a stored value is no record")),
            claims: entry.claims,
        })
    }

    /// A vault on the fixture's store and clock with the conformance suite's keyring, and
    /// the in-memory audit sink it reports to. Each call is another "process": it shares the
    /// store and the key, and has its own audit key.
    pub fn vault(&self) -> (Vault, Arc<MemoryAuditSink>) {
        let audit = Arc::new(MemoryAuditSink::new());
        let vault = Vault::builder(self.scheduled.clone(), self.keyring.clone())
            .clock(self.clock.clone())
            .audit_sink(audit.clone())
            .attempt_grace(GRACE)
            .build()
            .unwrap_or_else(|e| panic!("building the vault failed: {e}"));
        (vault, audit)
    }

    /// Every live entry, sorted by key: the store as an attacker who can read it sees it.
    pub fn entries(&self) -> Vec<(String, Vec<u8>)> {
        let mut entries = self.memory.raw_entries();
        entries.sort();
        entries
    }

    /// The key of the one entry in `after` that is not in `before`.
    pub fn new_key(before: &[(String, Vec<u8>)], after: &[(String, Vec<u8>)]) -> String {
        let mut new = after
            .iter()
            .filter(|(k, _)| !before.iter().any(|(b, _)| b == k))
            .map(|(k, _)| k.clone());
        let key = new.next().unwrap_or_else(|| panic!("no new entry"));
        assert!(new.next().is_none(), "more than one new entry");
        key
    }

    /// The stored bytes under `key`.
    pub fn raw(&self, key: &str) -> Vec<u8> {
        let loaded = block_on(self.memory.load(key)).unwrap_or_else(|e| panic!("load: {e}"));
        loaded.unwrap_or_else(|| panic!("no entry")).value
    }

    /// Overwrites the value under `key` (keeping its TTL), as someone with write access to
    /// the store can.
    pub fn overwrite(&self, key: &str, value: &[u8]) {
        block_on(async {
            let current = self
                .memory
                .load(key)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let current = current.unwrap_or_else(|| panic!("no entry to overwrite"));
            match self
                .memory
                .replace(key, current.version, pci_vault::Version::random(), value)
                .await
            {
                Ok(CasOutcome::Applied(_)) => {}
                other => panic!("overwrite failed: {other:?}"),
            }
        });
        // A record planted by hand may belong to another session, with another
        // `max_attempts`: the count of comparing claims starts again for this key.
        lock(&self.scheduled.faults).counted.remove(key);
    }

    /// Panics when any stored byte string holds a clear secret (in the encodings the
    /// conformance suite looks for) or the key-encryption key.
    pub fn assert_store_holds_no(&self, secrets: &[&str]) {
        let mut all: Vec<(&str, Vec<u8>)> = secrets
            .iter()
            .map(|s| ("a clear secret", s.as_bytes().to_vec()))
            .collect();
        all.push(("the key-encryption key", TEST_KEK.to_vec()));
        for (key, value) in self.entries() {
            assert_no_secret_in(value.as_slice(), &all);
            assert_no_secret_in(key.as_bytes(), &all);
        }
    }
}

/// Whether `text` holds a run of three or more ASCII digits. The library's own messages
/// have at most two in a row ("32 fields", "4-12 digits"), so such a run in an error
/// message can only come from an echoed value: a card number, a security code, a PIN.
pub fn has_digit_run(text: &str, run: usize) -> bool {
    let mut n = 0;
    for b in text.bytes() {
        n = if b.is_ascii_digit() { n + 1 } else { 0 };
        if n >= run {
            return true;
        }
    }
    false
}
