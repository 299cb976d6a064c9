//! Faults injected into a real store, and the invariants that hold under each.
//!
//! [`FaultyStore`] wraps any store and, at a chosen write, loses the reply, fails before
//! applying, applies the write late, applies it twice, stops answering for good, or
//! "crashes" the caller (applies the write and never returns, as a process killed between
//! two writes). [`every_write_of_every_operation_under_every_fault`] runs each operation
//! with each fault at each of its writes and checks, after each run: no form revealed
//! twice; no form returned whose tombstone is not stored; no more PINs compared than
//! allowed; no session left submitted with every attempt used once the grace period is
//! over; a customer's own applied submit answers its PIN or `STORE_UNAVAILABLE`, never
//! `ALREADY_SUBMITTED`; every reveal and lock audited.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{Harness, visa_form};
use crate::audit::{AuditAction, AuditOutcome, MemoryAuditSink};
use crate::error::{Error, ErrorCode, Result};
use crate::pin::Pin;
use crate::session::{SessionOptions, SessionState};
use crate::store::{CasOutcome, Claim, Claimed, EphemeralStore, Version, Versioned};
use crate::vault::Vault;

/// What happens to the armed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The write applies; its reply is lost (`STORE_UNAVAILABLE`).
    LostReply,
    /// The write does not apply (`STORE_UNAVAILABLE`).
    FailBefore,
    /// `STORE_UNAVAILABLE` at once; the write applies after the caller's next store call.
    LateWrite,
    /// The write applies twice (a command re-sent by the client); the second reply is
    /// the answer.
    Duplicated,
    /// This write and every later one fail without applying until [`FaultyStore::heal`].
    Down,
    /// The write applies and the call never returns: the caller is gone.
    Crash,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 6] = [
        Fault::LostReply,
        Fault::FailBefore,
        Fault::LateWrite,
        Fault::Duplicated,
        Fault::Down,
        Fault::Crash,
    ];
}

/// One store write, kept to be applied again or later.
#[derive(Clone)]
enum Write {
    Create(String, Version, Vec<u8>, Duration),
    /// A replace, and the event it publishes when it is one of `replace_and_publish`.
    Replace(String, Version, Version, Vec<u8>, Option<Vec<u8>>),
    Delete(String, Version),
    Claim(String, Claim, u8, Vec<u8>),
    Release(String, u64),
}

/// The answer of a write, whatever its kind.
enum Answer {
    Cas(CasOutcome),
    Claimed(Option<Claimed>),
    Released(bool),
}

/// A store wrapper that injects one [`Fault`] at a chosen write.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn EphemeralStore>,
    plan: Mutex<Plan>,
    writes: AtomicUsize,
    down: AtomicBool,
    crashed: AtomicBool,
}

#[derive(Debug, Default)]
struct Plan {
    armed: Option<(usize, Fault)>,
    late: Vec<LateWrite>,
}

struct LateWrite(Write);

impl std::fmt::Debug for LateWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LateWrite")
    }
}

fn injected(what: &str) -> Error {
    Error::store_unavailable(format!("injected fault: {what}"))
}

impl FaultyStore {
    /// Wraps `inner`; no fault is armed.
    pub fn new(inner: Arc<dyn EphemeralStore>) -> Arc<Self> {
        Arc::new(FaultyStore {
            inner,
            plan: Mutex::new(Plan::default()),
            writes: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            crashed: AtomicBool::new(false),
        })
    }

    /// Injects `fault` at the write numbered `at` (0 is the next write).
    pub fn arm(&self, at: usize, fault: Fault) {
        let base = self.writes.load(Ordering::SeqCst);
        self.plan.lock().unwrap().armed = Some((base + at, fault));
    }

    /// Disarms a fault that has not fired yet.
    pub fn disarm(&self) {
        self.plan.lock().unwrap().armed = None;
    }

    /// Writes seen so far.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// Ends a [`Fault::Down`].
    pub fn heal(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// Whether a [`Fault::Crash`] happened.
    pub fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Applies every late write now.
    pub async fn land_late_writes(&self) {
        let late = std::mem::take(&mut self.plan.lock().unwrap().late);
        for LateWrite(write) in late {
            let _ = self.apply(&write).await;
        }
    }

    async fn apply(&self, write: &Write) -> Result<Answer> {
        Ok(match write {
            Write::Create(k, v, value, ttl) => {
                Answer::Cas(self.inner.create(k, *v, value, *ttl).await?)
            }
            Write::Replace(k, e, v, value, None) => {
                Answer::Cas(self.inner.replace(k, *e, *v, value).await?)
            }
            Write::Replace(k, e, v, value, Some(event)) => Answer::Cas(
                self.inner
                    .replace_and_publish(k, *e, *v, value, event)
                    .await?,
            ),
            Write::Delete(k, e) => Answer::Cas(self.inner.delete(k, *e).await?),
            Write::Claim(k, c, limit, prefix) => {
                Answer::Claimed(self.inner.claim(k, *c, *limit, prefix).await?)
            }
            Write::Release(k, id) => Answer::Released(self.inner.release(k, *id).await?),
        })
    }

    async fn write(&self, write: Write) -> Result<Answer> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        let fault = {
            let mut plan = self.plan.lock().unwrap();
            match plan.armed {
                Some((at, fault)) if at == n => {
                    plan.armed = None;
                    Some(fault)
                }
                _ => None,
            }
        };
        if self.down.load(Ordering::SeqCst) {
            return Err(injected("store down"));
        }
        let Some(fault) = fault else {
            let answer = self.apply(&write).await;
            self.land_late_writes().await;
            return answer;
        };
        match fault {
            Fault::LostReply => {
                self.apply(&write).await?;
                Err(injected("reply lost"))
            }
            Fault::FailBefore => Err(injected("not applied")),
            Fault::LateWrite => {
                self.plan.lock().unwrap().late.push(LateWrite(write));
                Err(injected("reply lost; the write lands later"))
            }
            Fault::Duplicated => {
                self.apply(&write).await?;
                self.apply(&write).await
            }
            Fault::Down => {
                self.down.store(true, Ordering::SeqCst);
                Err(injected("store down"))
            }
            Fault::Crash => {
                self.apply(&write).await?;
                self.crashed.store(true, Ordering::SeqCst);
                std::future::pending::<()>().await;
                unreachable!()
            }
        }
    }
}

fn cas(answer: Result<Answer>) -> Result<CasOutcome> {
    match answer? {
        Answer::Cas(outcome) => Ok(outcome),
        Answer::Claimed(_) | Answer::Released(_) => unreachable!(),
    }
}

#[async_trait]
impl EphemeralStore for FaultyStore {
    async fn create(
        &self,
        key: &str,
        version: Version,
        value: &[u8],
        ttl: Duration,
    ) -> Result<CasOutcome> {
        cas(self
            .write(Write::Create(key.into(), version, value.to_vec(), ttl))
            .await)
    }

    async fn load(&self, key: &str) -> Result<Option<Versioned>> {
        let loaded = self.inner.load(key).await;
        self.land_late_writes().await;
        loaded
    }

    async fn replace(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
    ) -> Result<CasOutcome> {
        cas(self
            .write(Write::Replace(
                key.into(),
                expected,
                version,
                value.to_vec(),
                None,
            ))
            .await)
    }

    /// The same faults as [`replace`](EphemeralStore::replace): a duplicated or late
    /// write reaches the store twice, which must publish once.
    async fn replace_and_publish(
        &self,
        key: &str,
        expected: Version,
        version: Version,
        value: &[u8],
        event: &[u8],
    ) -> Result<CasOutcome> {
        cas(self
            .write(Write::Replace(
                key.into(),
                expected,
                version,
                value.to_vec(),
                Some(event.to_vec()),
            ))
            .await)
    }

    async fn publish(&self, key: &str, event: &[u8]) -> Result<()> {
        self.inner.publish(key, event).await
    }

    async fn subscribe(&self, key: &str) -> Result<Box<dyn crate::store::EventSubscription>> {
        self.inner.subscribe(key).await
    }

    async fn delete(&self, key: &str, expected: Version) -> Result<CasOutcome> {
        cas(self.write(Write::Delete(key.into(), expected)).await)
    }

    async fn claim(
        &self,
        key: &str,
        claim: Claim,
        limit: u8,
        prefix: &[u8],
    ) -> Result<Option<Claimed>> {
        match self
            .write(Write::Claim(key.into(), claim, limit, prefix.to_vec()))
            .await?
        {
            Answer::Claimed(claimed) => Ok(claimed),
            Answer::Cas(_) | Answer::Released(_) => unreachable!(),
        }
    }

    async fn release(&self, key: &str, id: u64) -> Result<bool> {
        match self.write(Write::Release(key.into(), id)).await? {
            Answer::Released(released) => Ok(released),
            Answer::Cas(_) | Answer::Claimed(_) => unreachable!(),
        }
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}

/// The grace period of the vaults these tests build: short, so a store that expires by
/// real time (Redis) passes it quickly.
const GRACE: Duration = Duration::from_millis(300);

/// The operation a fault is injected into, on a session prepared for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `create_session`.
    Create,
    /// `submit` on a pending session.
    Submit,
    /// `reveal` with the right PIN.
    RevealRight,
    /// `reveal` with a wrong PIN, attempts left after it.
    RevealWrong,
    /// `reveal` with a wrong PIN on the last attempt.
    RevealLastWrong,
    /// `cancel` of a pending session.
    Cancel,
}

/// A session made ready for a [`Step`]: its id (none before a create) and its PIN (once
/// submitted).
#[derive(Debug, Default)]
pub struct Prepared {
    /// The session's id.
    pub id: Option<crate::session::SessionId>,
    /// Its PIN.
    pub pin: Option<Pin>,
}

impl Step {
    /// Every step.
    pub const ALL: [Step; 6] = [
        Step::Create,
        Step::Submit,
        Step::RevealRight,
        Step::RevealWrong,
        Step::RevealLastWrong,
        Step::Cancel,
    ];

    /// The options of the sessions the steps run on: two attempts, so one wrong PIN
    /// leaves the last.
    pub fn options() -> SessionOptions {
        SessionOptions {
            max_attempts: 2,
            ..SessionOptions::default()
        }
    }

    /// Creates (and submits, and guesses wrong once) what the step needs, without faults.
    pub async fn prepare(self, vault: &Vault) -> Prepared {
        let mut ready = Prepared::default();
        if self == Step::Create {
            return ready;
        }
        let ticket = vault.create_session(&Step::options()).await.unwrap();
        if !matches!(self, Step::Submit | Step::Cancel) {
            ready.pin = Some(vault.submit(&ticket.id, &visa_form()).await.unwrap().pin);
        }
        if self == Step::RevealLastWrong {
            let wrong = wrong_pin(ready.pin.as_ref().unwrap());
            let first = vault.reveal(&ticket.id, &wrong).await.map(|_| ());
            assert!(matches!(first, Err(Error::WrongPin { attempts_left: 1 })));
        }
        ready.id = Some(ticket.id);
        ready
    }

    /// Runs the step; a create records its id in `ready`. Answers the PIN of a submit.
    pub async fn run(self, vault: &Vault, ready: &mut Prepared) -> Result<Option<Pin>> {
        let id = ready.id.clone();
        let id = || id.as_ref().unwrap();
        match self {
            Step::Create => vault.create_session(&Step::options()).await.map(|t| {
                ready.id = Some(t.id);
                None
            }),
            Step::Submit => vault.submit(id(), &visa_form()).await.map(|r| Some(r.pin)),
            Step::RevealRight => vault
                .reveal(id(), ready.pin.as_ref().unwrap())
                .await
                .map(|_| None),
            Step::RevealWrong | Step::RevealLastWrong => vault
                .reveal(id(), &wrong_pin(ready.pin.as_ref().unwrap()))
                .await
                .map(|_| None),
            Step::Cancel => vault.cancel(id()).await.map(|()| None),
        }
    }

    /// Checks what the step answered under a fault against the state the session is in
    /// after it: an error is `STORE_UNAVAILABLE` or the step's own outcome (a wrong PIN's
    /// `WRONG_PIN`, the last one's `LOCKED`), and every success is stored.
    pub fn assert_truthful(self, answer: &Result<Option<Pin>>, state: SessionState, case: &str) {
        let own: &[ErrorCode] = match self {
            Step::RevealWrong => &[ErrorCode::WrongPin],
            Step::RevealLastWrong => &[ErrorCode::Locked],
            _ => &[],
        };
        if let Err(e) = answer {
            assert!(
                e.code() == ErrorCode::StoreUnavailable || own.contains(&e.code()),
                "{case}: answered {e:?}"
            );
        }
        let stored = match (self, answer) {
            (Step::Submit, Ok(Some(_))) => Some(SessionState::Submitted),
            (Step::RevealRight, Ok(_)) => Some(SessionState::Revealed),
            (Step::RevealLastWrong, Err(Error::Locked)) => Some(SessionState::Locked),
            (Step::Cancel, Ok(_)) => Some(SessionState::Cancelled),
            _ => None,
        };
        if let Some(stored) = stored {
            assert_eq!(state, stored, "{case}: an answer whose write is not stored");
        }
    }
}

/// What a faulted operation answered: `None` when its caller "crashed".
type Answered = Option<std::result::Result<Option<Pin>, Error>>;

struct Run {
    vault: Vault,
    faulty: Arc<FaultyStore>,
    audit: Arc<MemoryAuditSink>,
}

fn run_on(h: &dyn Harness) -> Run {
    let faulty = FaultyStore::new(h.store());
    let audit = Arc::new(MemoryAuditSink::new());
    let vault = Vault::builder(faulty.clone(), h.keys())
        .clock(h.clock())
        .audit_sink(audit.clone())
        .attempt_grace(GRACE)
        .build()
        .unwrap();
    Run {
        vault,
        faulty,
        audit,
    }
}

/// A PIN of the same length as `right` that differs in every digit.
pub fn wrong_pin(right: &Pin) -> Pin {
    let digits: String = right
        .expose_secret()
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    Pin::parse(&digits).unwrap()
}

/// Runs `step` with `fault` armed at its write `at`; checks the invariants. Returns the
/// number of writes `step` made.
async fn one_case(h: &dyn Harness, step: Step, fault: Option<(usize, Fault)>) -> usize {
    let Run {
        vault,
        faulty,
        audit,
    } = run_on(h);
    let case = format!("{step:?} with {fault:?}");
    let mut ready = step.prepare(&vault).await;
    let before = faulty.writes();
    if let Some((at, fault)) = fault {
        faulty.arm(at, fault);
    }
    let run = step.run(&vault, &mut ready);
    let crashed = async {
        while !faulty.crashed() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let answered: Answered = tokio::select! {
        answer = run => Some(answer),
        () = crashed => None,
        () = tokio::time::sleep(Duration::from_secs(20)) => panic!("{case}: hung"),
    };
    let writes = faulty.writes() - before;
    faulty.disarm();
    faulty.heal();
    faulty.land_late_writes().await;
    let Prepared { id, mut pin } = ready;
    let Some(id) = id else {
        // A create that never answered: nobody knows the id.
        assert!(
            matches!(answered, None | Some(Err(Error::StoreUnavailable(_)))),
            "{case}"
        );
        return writes;
    };

    let status = vault.status(&id).await.unwrap();
    if let Some(answer) = &answered {
        step.assert_truthful(answer, status.state, &case);
    }
    if let (Step::Submit, Some(Ok(Some(p)))) = (step, &answered) {
        pin = Some(p.clone());
    }

    // Past the grace period, nothing is left submitted with every attempt used.
    if status.state == SessionState::Submitted && status.attempts_left == 0 {
        h.advance(GRACE + Duration::from_millis(100)).await;
    }
    let status = vault.status(&id).await.unwrap();
    assert!(
        !(status.state == SessionState::Submitted && status.attempts_left == 0),
        "{case}: stranded"
    );

    // Afterwards the right PIN reveals at most once in all, and only a submitted session.
    let mut forms = usize::from(matches!(
        (step, &answered),
        (Step::RevealRight, Some(Ok(_)))
    ));
    if let Some(pin) = &pin {
        for _ in 0..2 {
            if vault.reveal(&id, pin).await.is_ok() {
                forms += 1;
            }
        }
    }
    assert!(forms <= 1, "{case}: {forms} forms revealed");
    let end = vault.status(&id).await.unwrap();
    if pin.is_some() && forms == 1 {
        assert_eq!(end.state, SessionState::Revealed, "{case}");
    }

    // Every form returned is audited as a reveal; a lock is audited unless its writer died.
    let events = audit.take();
    let reveals = events
        .iter()
        .filter(|e| e.action == AuditAction::Revealed && e.outcome == AuditOutcome::Success)
        .count();
    assert_eq!(reveals, forms, "{case}: reveals audited");
    if end.state == SessionState::Locked && !faulty.crashed() {
        assert!(
            events.iter().any(|e| e.action == AuditAction::Locked),
            "{case}: the lock is not audited"
        );
    }
    writes
}

/// Each operation — create, submit, reveal with the right PIN, a wrong PIN, the last wrong
/// PIN, cancel — with each [`Fault`] at each of its writes (and one more, so a fault after
/// the operation's last write changes nothing).
pub async fn every_write_of_every_operation_under_every_fault(h: &dyn Harness) {
    for step in Step::ALL {
        let writes = one_case(h, step, None).await;
        assert!((1..=2).contains(&writes), "{step:?} made {writes} writes");
        for at in 0..=writes {
            for fault in Fault::ALL {
                one_case(h, step, Some((at, fault))).await;
            }
        }
    }
}

/// A full cycle takes five store round trips: create 1, submit 2 (read, write and its
/// event), reveal 2 (read-and-claim, tombstone and its event). A wrong PIN with attempts
/// left takes two: the claim, then the `reveal_failed` event, which can only be published
/// once the claim's outcome is known (and is awaited, so it reaches watchers before any
/// later write's event).
pub async fn a_full_cycle_takes_five_round_trips(h: &dyn Harness) {
    let counting = Arc::new(CountingStore::new(h.store()));
    let (vault, _) = super::vault_on(counting.clone(), h, h.keys());
    let ticket = vault
        .create_session(&SessionOptions::default())
        .await
        .unwrap();
    assert_eq!(counting.take(), 1, "create");
    let pin = vault.submit(&ticket.id, &visa_form()).await.unwrap().pin;
    assert_eq!(counting.take(), 2, "submit");
    let wrong = vault.reveal(&ticket.id, &wrong_pin(&pin)).await.map(|_| ());
    assert!(matches!(wrong, Err(Error::WrongPin { .. })));
    assert_eq!(counting.take(), 2, "wrong PIN: claim, then publish");
    vault.reveal(&ticket.id, &pin).await.unwrap();
    assert_eq!(counting.take(), 2, "reveal");
}

/// A store that counts the calls made to it (every call but `subscribe` and `ping`), for
/// tests that check how often the vault reaches its store.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn EphemeralStore>,
    calls: AtomicUsize,
}

impl CountingStore {
    /// Counts the calls to `inner`.
    pub fn new(inner: Arc<dyn EphemeralStore>) -> Self {
        CountingStore {
            inner,
            calls: AtomicUsize::new(0),
        }
    }

    /// The calls counted since the last `take`.
    pub fn take(&self) -> usize {
        self.calls.swap(0, Ordering::SeqCst)
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl EphemeralStore for CountingStore {
    async fn create(&self, k: &str, v: Version, value: &[u8], ttl: Duration) -> Result<CasOutcome> {
        self.count();
        self.inner.create(k, v, value, ttl).await
    }

    async fn load(&self, k: &str) -> Result<Option<Versioned>> {
        self.count();
        self.inner.load(k).await
    }

    async fn replace(&self, k: &str, e: Version, v: Version, value: &[u8]) -> Result<CasOutcome> {
        self.count();
        self.inner.replace(k, e, v, value).await
    }

    async fn replace_and_publish(
        &self,
        k: &str,
        e: Version,
        v: Version,
        value: &[u8],
        event: &[u8],
    ) -> Result<CasOutcome> {
        self.count();
        self.inner.replace_and_publish(k, e, v, value, event).await
    }

    async fn publish(&self, k: &str, event: &[u8]) -> Result<()> {
        self.count();
        self.inner.publish(k, event).await
    }

    async fn subscribe(&self, k: &str) -> Result<Box<dyn crate::store::EventSubscription>> {
        self.inner.subscribe(k).await
    }

    async fn delete(&self, k: &str, e: Version) -> Result<CasOutcome> {
        self.count();
        self.inner.delete(k, e).await
    }

    async fn claim(&self, k: &str, c: Claim, limit: u8, prefix: &[u8]) -> Result<Option<Claimed>> {
        self.count();
        self.inner.claim(k, c, limit, prefix).await
    }

    async fn release(&self, k: &str, id: u64) -> Result<bool> {
        self.count();
        self.inner.release(k, id).await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}
