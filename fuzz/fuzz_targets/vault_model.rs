//! The vault against a reference model: arbitrary sequences of create / submit / reveal
//! (right, wrong, other session's and other-length PINs) / cancel / status / clock steps /
//! calls on unknown ids, from two "processes" (two vaults on one store) and from another
//! tenant, plus races whose interleaving the fuzzer chooses.
//!
//! Sequential calls must answer exactly what the model of `docs/CONTRACTS.md` says (state, error
//! code, attempts left, revealed values, audit events). Races are checked against the
//! invariants of `docs/CONTRACTS.md`: one reveal, at most `max_attempts` PIN evaluations, no
//! submission over another, a consistent end state, one audit event per call. After every
//! step the store holds exactly the live sessions, terminal records hold no sealed data,
//! and no clear card data or key is ever in the store.

#![no_main]

use std::future::Future;
use std::pin::Pin as StdPin;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pci_vault::audit::{AuditAction, AuditEvent, AuditOutcome, MemoryAuditSink};
use pci_vault::clock::from_millis;
use pci_vault::conformance::{amex_form, visa_form};
use pci_vault::internal::SealedRecord;
use pci_vault::{
    Actor, Clock, Error, ErrorCode, ExposeSecret, FormInput, FormSpec, Pin, SessionId,
    SessionOptions, SessionState, SessionStatus, Tenant, Vault,
};
use pci_vault_fuzz::{Fixture, GRACE, Observed, StoredSession, has_digit_run};

#[derive(Arbitrary, Debug)]
struct Scenario {
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Create {
        acme: bool,
        pin_length: u8,
        max_attempts: u8,
        ttl: u8,
    },
    Submit {
        session: u8,
        form: Submission,
        process_b: bool,
    },
    Reveal {
        session: u8,
        guess: Guess,
        stranger: bool,
        process_b: bool,
    },
    Cancel {
        session: u8,
        stranger: bool,
        process_b: bool,
    },
    Status {
        session: u8,
        stranger: bool,
    },
    Advance {
        tenths: u16,
    },
    Race {
        session: u8,
        contenders: Vec<Contender>,
        schedule: Vec<u8>,
        faults: Vec<u8>,
    },
    Unknown {
        call: u8,
    },
    /// One operation whose writes meet the faults a plan names (see `Fault::from_byte`).
    Faulty {
        op: FaultyOp,
        faults: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FaultyOp {
    Create {
        acme: bool,
        max_attempts: u8,
        ttl: u8,
    },
    Submit {
        session: u8,
        form: Submission,
        process_b: bool,
    },
    Reveal {
        session: u8,
        guess: Guess,
        process_b: bool,
    },
    Cancel {
        session: u8,
        process_b: bool,
    },
    Status {
        session: u8,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Submission {
    Visa,
    Amex,
    BadLuhn,
    AmexShortCvc,
    Expired,
    MissingName,
    UnknownField,
    Repeated,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Guess {
    Right,
    Wrong { digits: u64, len: u8 },
    OtherSession(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Contender {
    Reveal {
        guess: Guess,
        stranger: bool,
        process_b: bool,
    },
    Cancel {
        stranger: bool,
        process_b: bool,
    },
    Submit(Submission),
    Status,
}

type Values = Vec<(&'static str, &'static str)>;

fn visa_values() -> Values {
    vec![
        ("card_number", "4242424242424242"),
        ("expiry", "12/39"),
        ("cvc", "123"),
        ("cardholder_name", "Ada Lovelace"),
    ]
}

fn amex_values() -> Values {
    vec![
        ("card_number", "378282246310005"),
        ("expiry", "07/38"),
        ("cvc", "7391"),
        ("cardholder_name", "Grace Hopper"),
    ]
}

/// What a submission from a `Pending` session must give.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Stored(Values, &'static str),
    Fields(&'static str, &'static str),
    InvalidArgument,
}

impl Submission {
    fn form(self) -> FormInput {
        let visa = |pan: &str, expiry: &str| {
            FormInput::new()
                .with("card_number", pan)
                .with("expiry", expiry)
                .with("cvc", "123")
        };
        match self {
            Submission::Visa => visa_form(),
            Submission::Amex => amex_form(),
            Submission::BadLuhn => {
                visa("4242 4242 4242 4241", "12/2039").with("cardholder_name", "Ada Lovelace")
            }
            Submission::AmexShortCvc => FormInput::new()
                .with("card_number", "378282246310005")
                .with("expiry", "07/38")
                .with("cvc", "739")
                .with("cardholder_name", "Grace Hopper"),
            // The clock starts in June 2030 and only moves forward.
            Submission::Expired => {
                visa("4242424242424242", "05/30").with("cardholder_name", "Ada Lovelace")
            }
            Submission::MissingName => visa("4242424242424242", "12/39"),
            Submission::UnknownField => visa_form().with("iban", "DE00"),
            Submission::Repeated => visa_form().with("cvc", "123"),
        }
    }

    fn verdict(self) -> Verdict {
        match self {
            Submission::Visa => Verdict::Stored(visa_values(), "424242******4242"),
            Submission::Amex => Verdict::Stored(amex_values(), "378282*****0005"),
            Submission::BadLuhn => Verdict::Fields("card_number", "luhn"),
            Submission::AmexShortCvc => Verdict::Fields("cvc", "cvc_length"),
            Submission::Expired => Verdict::Fields("expiry", "expired"),
            Submission::MissingName => Verdict::Fields("cardholder_name", "required"),
            Submission::UnknownField | Submission::Repeated => Verdict::InvalidArgument,
        }
    }

    fn is_valid(self) -> bool {
        matches!(self.verdict(), Verdict::Stored(..))
    }
}

/// The model of one session.
struct Tracked {
    id: SessionId,
    key: String,
    tenant: Tenant,
    expires_at: i64,
    max_attempts: u8,
    state: SessionState,
    used: u8,
    submitted: bool,
    pin: Option<Pin>,
    card: Option<(Values, &'static str)>,
    created_len: usize,
}

impl Tracked {
    /// Whether the model knows everything the exact checks need: not a submitted session
    /// whose PIN was lost with an unanswered submit, or whose attempts are all taken with
    /// their outcome lost.
    fn clean(&self) -> bool {
        !(self.state == SessionState::Submitted
            && (self.pin.is_none() || self.used >= self.max_attempts))
    }

    fn attempts_left(&self) -> u8 {
        if self.state == SessionState::Locked {
            0
        } else {
            self.max_attempts - self.used
        }
    }

    /// The tenant an agent-side call acts for: the session's own, or another.
    fn acting(&self, stranger: bool) -> Tenant {
        if stranger {
            self.stranger()
        } else {
            self.tenant.clone()
        }
    }

    fn stranger(&self) -> Tenant {
        if self.tenant == Tenant::default() {
            acme()
        } else {
            Tenant::default()
        }
    }
}

fn acme() -> Tenant {
    Tenant::new("acme").unwrap_or_else(|e| panic!("{e}"))
}

struct World {
    fx: Fixture,
    /// Sessions whose creation applied but was never answered: only their keys and expiry.
    orphans: Vec<(String, i64)>,
    a: (Vault, std::sync::Arc<MemoryAuditSink>),
    b: (Vault, std::sync::Arc<MemoryAuditSink>),
    sessions: Vec<Tracked>,
}

/// One expected audit event: action, outcome, acting tenant, actor, attempts left.
type Event = (AuditAction, AuditOutcome, Tenant, Actor, Option<u8>);

impl World {
    fn now(&self) -> i64 {
        self.fx.clock.now_millis()
    }

    /// Runs an operation that meets no fault: it always ends.
    fn call<F: Future>(&self, fut: F) -> F::Output {
        self.fx
            .run_one(fut)
            .unwrap_or_else(|| panic!("an operation died with no fault injected"))
    }

    fn vault(&self, process_b: bool, tenant: &Tenant) -> Vault {
        let v = if process_b { &self.b.0 } else { &self.a.0 };
        v.for_tenant(tenant.clone())
    }

    fn pick(&self, i: u8) -> Option<usize> {
        (!self.sessions.is_empty()).then(|| usize::from(i) % self.sessions.len())
    }

    fn audit(&self) -> Vec<AuditEvent> {
        let mut events = self.a.1.take();
        events.extend(self.b.1.take());
        events
    }

    fn expect_audit(&self, want: &[Event]) {
        let got: Vec<Event> = self
            .audit()
            .into_iter()
            .map(|e| (e.action, e.outcome, e.tenant, e.actor, e.attempts_left))
            .collect();
        assert_eq!(got, want, "audit events");
    }

    fn guess(&self, guess: Guess, t: &Tracked) -> Pin {
        let text = match guess {
            Guess::Right => t
                .pin
                .as_ref()
                .map_or_else(|| "000000".to_owned(), |p| p.expose_secret().to_owned()),
            Guess::Wrong { digits, len } => {
                let len = 4 + usize::from(len % 9);
                format!("{digits:020}")[..len].to_owned()
            }
            Guess::OtherSession(k) => self
                .pick(k)
                .and_then(|k| self.sessions[k].pin.as_ref())
                .map_or_else(|| "0000".to_owned(), |p| p.expose_secret().to_owned()),
        };
        Pin::parse(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The store holds exactly the live sessions; a record carries sealed data exactly
    /// while its session is `Submitted`.
    fn check_store(&self) {
        let now = self.now();
        let entries = self.fx.entries();
        let live: Vec<&Tracked> = self
            .sessions
            .iter()
            .filter(|t| now < t.expires_at)
            .collect();
        let orphans = self.orphans.iter().filter(|(_, e)| now < *e).count();
        assert_eq!(entries.len(), live.len() + orphans, "entries in the store");
        for t in live {
            let (_, bytes) = entries
                .iter()
                .find(|(k, _)| *k == t.key)
                .unwrap_or_else(|| panic!("a live session has no record"));
            let record = SealedRecord::decode(bytes).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(record.tenant(), &t.tenant);
            if t.state == SessionState::Submitted {
                assert!(
                    bytes.len() > t.created_len + 4 * 28,
                    "sealed fields missing"
                );
            } else {
                assert_eq!(
                    bytes.len(),
                    t.created_len,
                    "a {} record holds data",
                    t.state
                );
            }
        }
    }
}

fn code<T>(r: &Result<T, Error>) -> Option<ErrorCode> {
    r.as_ref().err().map(Error::code)
}

fuzz_target!(|scenario: Scenario| {
    let fx = Fixture::new();
    let a = fx.vault();
    let b = fx.vault();
    let mut world = World {
        fx,
        orphans: Vec::new(),
        a,
        b,
        sessions: Vec::new(),
    };
    for op in scenario.ops.into_iter().take(64) {
        step(&mut world, op);
        let _ = world.fx.scheduled.settle();
        world.check_store();
    }
    world.fx.assert_store_holds_no(&[
        "4242424242424242",
        "4242 4242 4242 4242",
        "378282246310005",
        "Ada Lovelace",
        "Grace Hopper",
    ]);
});

fn step(w: &mut World, op: Op) {
    match op {
        Op::Create {
            acme: other,
            pin_length,
            max_attempts,
            ttl,
        } => create(w, other, pin_length, max_attempts, ttl),
        Op::Submit {
            session,
            form,
            process_b,
        } => {
            if let Some(i) = w.pick(session) {
                submit(w, i, form, process_b);
            }
        }
        Op::Reveal {
            session,
            guess,
            stranger,
            process_b,
        } => {
            if let Some(i) = w.pick(session) {
                if stranger || w.sessions[i].clean() {
                    reveal(w, i, guess, stranger, process_b);
                } else {
                    session_op(w, i, Kind::Reveal(guess), process_b, Vec::new());
                }
            }
        }
        Op::Cancel {
            session,
            stranger,
            process_b,
        } => {
            if let Some(i) = w.pick(session) {
                cancel(w, i, stranger, process_b);
            }
        }
        Op::Status { session, stranger } => {
            if let Some(i) = w.pick(session) {
                if !stranger && !w.sessions[i].clean() {
                    session_op(w, i, Kind::Status, false, Vec::new());
                    return;
                }
                let t = &w.sessions[i];
                let tenant = t.acting(stranger);
                let got = w.call(w.vault(false, &tenant).status(&t.id));
                expect_status(w, i, stranger, &got);
                w.expect_audit(&[]);
            }
        }
        Op::Advance { tenths } => {
            w.fx.clock
                .advance(Duration::from_millis(u64::from(tenths) * 100))
        }
        Op::Race {
            session,
            contenders,
            schedule,
            faults,
        } => {
            if let Some(i) = w.pick(session) {
                race(w, i, &contenders, schedule, faults);
            }
        }
        Op::Unknown { call } => unknown(w, call),
        Op::Faulty { op, faults } => faulty(w, op, faults),
    }
}

fn create(w: &mut World, other: bool, pin_length: u8, max_attempts: u8, ttl: u8) {
    if w.sessions.len() >= 8 {
        return;
    }
    let tenant = if other { acme() } else { Tenant::default() };
    let ttl_secs: u64 = match ttl {
        0 => 0,
        255 => 86_401,
        t if t < 128 => u64::from(t),
        t => u64::from(t - 127) * 60,
    };
    let options = SessionOptions::default()
        .with_pin_length(3 + pin_length % 11)
        .with_max_attempts(max_attempts % 12)
        .with_ttl(Duration::from_secs(ttl_secs));
    let valid = (4..=12).contains(&options.pin_length)
        && (1..=10).contains(&options.max_attempts)
        && (1..=86_400).contains(&ttl_secs);
    let before = w.fx.entries();
    let now = w.now();
    match w.call(w.vault(false, &tenant).create_session(&options)) {
        Ok(ticket) => {
            assert!(valid, "created a session with options out of range");
            let expires_at = now + i64::try_from(ttl_secs * 1000).unwrap_or(i64::MAX);
            assert_eq!(ticket.expires_at, from_millis(expires_at));
            let after = w.fx.entries();
            let key = Fixture::new_key(&before, &after);
            let created_len = w.fx.raw(&key).len();
            w.expect_audit(&[(
                AuditAction::Created,
                AuditOutcome::Success,
                tenant.clone(),
                Actor::Agent,
                None,
            )]);
            w.sessions.push(Tracked {
                id: ticket.id,
                key,
                tenant,
                expires_at,
                max_attempts: options.max_attempts,
                state: SessionState::Pending,
                used: 0,
                submitted: false,
                pin: None,
                card: None,
                created_len,
            });
        }
        Err(e) => {
            assert!(!valid, "create failed: {e:?}");
            assert_eq!(e.code(), ErrorCode::InvalidArgument);
            assert_eq!(w.fx.entries(), before);
            w.expect_audit(&[]);
        }
    }
}

fn submit(w: &mut World, i: usize, form: Submission, process_b: bool) {
    let now = w.now();
    let t = &w.sessions[i];
    let tenant = t.tenant.clone();
    let got = w.call(w.vault(process_b, &tenant).submit(&t.id, &form.form()));
    if now >= t.expires_at {
        assert_eq!(code(&got), Some(ErrorCode::NotFound));
        w.expect_audit(&[]);
        return;
    }
    let refused = |code| {
        (
            code,
            vec![(
                AuditAction::Submitted,
                AuditOutcome::Failure(code),
                tenant.clone(),
                Actor::Customer,
                None,
            )],
        )
    };
    let (want, events) = match t.state {
        SessionState::Pending => match form.verdict() {
            Verdict::Stored(values, masked) => {
                let receipt = got.unwrap_or_else(|e| panic!("submit failed: {e:?}"));
                assert_eq!(receipt.expires_at, from_millis(t.expires_at));
                w.expect_audit(&[(
                    AuditAction::Submitted,
                    AuditOutcome::Success,
                    tenant.clone(),
                    Actor::Customer,
                    None,
                )]);
                let t = &mut w.sessions[i];
                t.state = SessionState::Submitted;
                t.submitted = true;
                t.pin = Some(receipt.pin);
                t.card = Some((values, masked));
                return;
            }
            Verdict::Fields(field, reason) => {
                match &got {
                    Err(Error::ValidationFailed { fields }) => {
                        let fields: Vec<(&str, &str)> = fields
                            .iter()
                            .map(|f| (f.field.as_str(), f.reason.as_str()))
                            .collect();
                        assert_eq!(fields, [(field, reason)]);
                    }
                    other => panic!("expected VALIDATION_FAILED, got {other:?}"),
                }
                refused(ErrorCode::ValidationFailed)
            }
            Verdict::InvalidArgument => refused(ErrorCode::InvalidArgument),
        },
        SessionState::Cancelled => refused(ErrorCode::Cancelled),
        _ => refused(ErrorCode::AlreadySubmitted),
    };
    assert_eq!(code(&got), Some(want), "submit in state {}", t.state);
    w.expect_audit(&events);
}

fn reveal(w: &mut World, i: usize, guess: Guess, stranger: bool, process_b: bool) {
    let now = w.now();
    let t = &w.sessions[i];
    let tenant = t.acting(stranger);
    let pin = w.guess(guess, t);
    let got = w
        .call(w.vault(process_b, &tenant).reveal(&t.id, &pin))
        .map(|form| {
            let values: Vec<(String, String)> = form
                .iter()
                .map(|(n, v)| (n.to_owned(), v.expose_secret().to_owned()))
                .collect();
            (values, form.card().map(|c| c.masked_number.clone()))
        });
    if got.is_ok() {
        assert_tombstone_stored(&w.fx, &t.key);
    }
    let failed = |code, left| {
        vec![(
            AuditAction::Revealed,
            AuditOutcome::Failure(code),
            tenant.clone(),
            Actor::Agent,
            left,
        )]
    };
    let (want, events): (Option<ErrorCode>, Vec<Event>) = if now >= t.expires_at || stranger {
        (Some(ErrorCode::NotFound), failed(ErrorCode::NotFound, None))
    } else {
        match t.state {
            SessionState::Pending => (
                Some(ErrorCode::NotSubmitted),
                failed(ErrorCode::NotSubmitted, None),
            ),
            SessionState::Revealed => (
                Some(ErrorCode::AlreadyRevealed),
                failed(ErrorCode::AlreadyRevealed, None),
            ),
            SessionState::Cancelled => (
                Some(ErrorCode::Cancelled),
                failed(ErrorCode::Cancelled, None),
            ),
            SessionState::Locked => (Some(ErrorCode::Locked), failed(ErrorCode::Locked, Some(0))),
            SessionState::Submitted => {
                let right = t.pin.as_ref().is_some_and(|p| p == &pin);
                let left = t.max_attempts - t.used - 1;
                let (values, masked) = t.card.clone().unwrap_or_else(|| panic!("no card"));
                let t = &mut w.sessions[i];
                t.used += 1;
                if right {
                    t.state = SessionState::Revealed;
                    let (got_values, got_masked) =
                        got.unwrap_or_else(|e| panic!("reveal failed: {e:?}"));
                    let want: Vec<(String, String)> = values
                        .iter()
                        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                        .collect();
                    assert_eq!(got_values, want);
                    assert_eq!(got_masked.as_deref(), Some(masked));
                    w.expect_audit(&[(
                        AuditAction::Revealed,
                        AuditOutcome::Success,
                        tenant,
                        Actor::Agent,
                        None,
                    )]);
                    return;
                }
                if left > 0 {
                    match &got {
                        Err(Error::WrongPin { attempts_left }) => {
                            assert_eq!(*attempts_left, left)
                        }
                        other => panic!("expected WRONG_PIN, got {:?}", code(other)),
                    }
                    (
                        Some(ErrorCode::WrongPin),
                        failed(ErrorCode::WrongPin, Some(left)),
                    )
                } else {
                    t.state = SessionState::Locked;
                    let mut events = vec![(
                        AuditAction::Locked,
                        AuditOutcome::Success,
                        tenant.clone(),
                        Actor::Agent,
                        Some(0),
                    )];
                    events.extend(failed(ErrorCode::Locked, Some(0)));
                    (Some(ErrorCode::Locked), events)
                }
            }
        }
    };
    assert_eq!(code(&got), want, "reveal");
    w.expect_audit(&events);
}

fn cancel(w: &mut World, i: usize, stranger: bool, process_b: bool) {
    let now = w.now();
    let t = &w.sessions[i];
    let tenant = t.acting(stranger);
    let got = w.call(w.vault(process_b, &tenant).cancel(&t.id));
    let want = if now >= t.expires_at || stranger {
        Some(ErrorCode::NotFound)
    } else {
        match t.state {
            SessionState::Revealed => Some(ErrorCode::AlreadyRevealed),
            SessionState::Locked => Some(ErrorCode::Locked),
            _ => None,
        }
    };
    assert_eq!(code(&got), want, "cancel in state {}", t.state);
    let outcome = want.map_or(AuditOutcome::Success, AuditOutcome::Failure);
    w.expect_audit(&[(AuditAction::Cancelled, outcome, tenant, Actor::Agent, None)]);
    if want.is_none() {
        w.sessions[i].state = SessionState::Cancelled;
    }
}

fn expect_status(w: &World, i: usize, stranger: bool, got: &Result<SessionStatus, Error>) {
    let t = &w.sessions[i];
    if w.now() >= t.expires_at || stranger {
        assert_eq!(code(got), Some(ErrorCode::NotFound));
        return;
    }
    let status = got.as_ref().unwrap_or_else(|e| panic!("status: {e:?}"));
    assert_eq!(status.state, t.state);
    assert_eq!(status.attempts_left, t.attempts_left());
    assert_eq!(status.expires_at, from_millis(t.expires_at));
    assert_eq!(status.submitted_at.is_some(), t.submitted);
    assert!(status.metadata.is_empty());
    assert_eq!(status.form, FormSpec::default());
}

fn unknown(w: &mut World, call: u8) {
    let id = SessionId::generate();
    let vault = w.vault(call & 4 != 0, &Tenant::default());
    let before = w.fx.entries();
    let pin = Pin::parse("123456").unwrap_or_else(|e| panic!("{e}"));
    let (got, events) = match call % 4 {
        0 => (w.call(vault.status(&id)).map(|_| ()), vec![]),
        1 => (w.call(vault.submit(&id, &visa_form())).map(|_| ()), vec![]),
        2 => (
            w.call(vault.reveal(&id, &pin)).map(|_| ()),
            vec![AuditAction::Revealed],
        ),
        _ => (w.call(vault.cancel(&id)), vec![AuditAction::Cancelled]),
    };
    assert_eq!(code(&got), Some(ErrorCode::NotFound));
    assert_eq!(w.fx.entries(), before);
    let events: Vec<Event> = events
        .into_iter()
        .map(|action| {
            (
                action,
                AuditOutcome::Failure(ErrorCode::NotFound),
                Tenant::default(),
                Actor::Agent,
                None,
            )
        })
        .collect();
    w.expect_audit(&events);
}

/// What one contender of a race got.
enum Got {
    Reveal {
        owner: bool,
        pin: Pin,
        result: Result<Values, Error>,
    },
    Cancel {
        owner: bool,
        result: Result<(), Error>,
    },
    Submit {
        form: Submission,
        result: Result<Pin, Error>,
    },
    Status(Result<SessionStatus, Error>),
}

fn race(w: &mut World, i: usize, contenders: &[Contender], schedule: Vec<u8>, faults: Vec<u8>) {
    let contenders = &contenders[..contenders.len().min(6)];
    let now = w.now();
    let t = &w.sessions[i];
    let clean_before = t.clean();
    let stored_before = w.fx.stored(&t.key);
    let expired = now >= t.expires_at;
    let (state_before, used_before, left_before) = match t.state {
        SessionState::Pending => (t.state, 0, t.max_attempts),
        s => (s, t.used, t.attempts_left()),
    };
    let card_before = t.card.clone();

    let mut futures: Vec<StdPin<Box<dyn Future<Output = Got> + '_>>> = Vec::new();
    for c in contenders {
        let id = t.id.clone();
        match *c {
            Contender::Reveal {
                guess,
                stranger,
                process_b,
            } => {
                let tenant = t.acting(stranger);
                let vault = w.vault(process_b, &tenant);
                let pin = w.guess(guess, t);
                let fx = &w.fx;
                let key = t.key.clone();
                futures.push(Box::pin(async move {
                    let result = vault.reveal(&id, &pin).await.map(|f| card_values_of(&f));
                    if result.is_ok() {
                        assert_tombstone_stored(fx, &key);
                    }
                    Got::Reveal {
                        owner: !stranger,
                        pin,
                        result,
                    }
                }));
            }
            Contender::Cancel {
                stranger,
                process_b,
            } => {
                let tenant = t.acting(stranger);
                let vault = w.vault(process_b, &tenant);
                futures.push(Box::pin(async move {
                    Got::Cancel {
                        owner: !stranger,
                        result: vault.cancel(&id).await,
                    }
                }));
            }
            Contender::Submit(form) => {
                let vault = w.vault(false, &t.tenant);
                futures.push(Box::pin(async move {
                    Got::Submit {
                        form,
                        result: vault.submit(&id, &form.form()).await.map(|r| r.pin),
                    }
                }));
            }
            Contender::Status => {
                let vault = w.vault(true, &t.tenant);
                futures.push(Box::pin(
                    async move { Got::Status(vault.status(&id).await) },
                ));
            }
        }
    }
    w.fx.scheduled.set_schedule(schedule);
    w.fx.scheduled.set_faults(faults);
    let crashable = futures
        .into_iter()
        .enumerate()
        .map(|(k, f)| w.fx.crashable(k, f));
    let results = w.fx.run(futures::future::join_all(crashable));
    w.fx.scheduled.set_schedule(Vec::new());
    let observed = w.fx.scheduled.settle();
    for got in results.iter().flatten() {
        got.assert_no_secret();
    }
    let expired_during = !expired && w.now() >= t.expires_at;
    if observed.faults > 0 || !clean_before || expired_during {
        race_relaxed(w, i, contenders, &results, &observed, stored_before);
        return;
    }
    let results: Vec<Got> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| panic!("a contender died with no fault injected")))
        .collect();
    let events = w.audit();

    if expired {
        for got in &results {
            let c = match got {
                Got::Reveal { result, .. } => code(result),
                Got::Cancel { result, .. } => code(result),
                Got::Submit { result, .. } => code(result),
                Got::Status(result) => code(result),
            };
            assert_eq!(c, Some(ErrorCode::NotFound), "a call on an expired session");
        }
        return;
    }

    let mut reveals = 0usize;
    let mut revealed: Vec<(&Values, &Pin)> = Vec::new();
    let mut wrong_left: Vec<u8> = Vec::new();
    let mut locked_answers = 0usize;
    let mut cancels = 0usize;
    let mut cancelled_ok = 0usize;
    let mut submits = 0usize;
    let mut stored: Vec<(&Pin, Submission)> = Vec::new();
    for got in &results {
        match got {
            Got::Reveal { owner, pin, result } => {
                reveals += 1;
                if !owner {
                    assert_eq!(
                        code(result),
                        Some(ErrorCode::NotFound),
                        "a stranger's reveal"
                    );
                    continue;
                }
                match result {
                    Ok(values) => revealed.push((values, pin)),
                    Err(Error::WrongPin { attempts_left }) => wrong_left.push(*attempts_left),
                    Err(Error::Locked) => locked_answers += 1,
                    Err(e) => assert!(
                        matches!(
                            e.code(),
                            ErrorCode::AlreadyRevealed
                                | ErrorCode::NotSubmitted
                                | ErrorCode::Cancelled
                        ),
                        "reveal answered {e:?}"
                    ),
                }
            }
            Got::Cancel { owner, result } => {
                cancels += 1;
                if !owner {
                    assert_eq!(
                        code(result),
                        Some(ErrorCode::NotFound),
                        "a stranger's cancel"
                    );
                    continue;
                }
                match result {
                    Ok(()) => cancelled_ok += 1,
                    Err(e) => assert!(
                        matches!(e.code(), ErrorCode::AlreadyRevealed | ErrorCode::Locked),
                        "cancel answered {e:?}"
                    ),
                }
            }
            Got::Submit { form, result } => {
                submits += 1;
                match result {
                    Ok(pin) => {
                        assert!(form.is_valid(), "an invalid form was stored");
                        stored.push((pin, *form));
                    }
                    Err(e) => {
                        let allowed = match e.code() {
                            ErrorCode::AlreadySubmitted | ErrorCode::Cancelled => true,
                            ErrorCode::ValidationFailed => {
                                matches!(form.verdict(), Verdict::Fields(..))
                            }
                            ErrorCode::InvalidArgument => {
                                form.verdict() == Verdict::InvalidArgument
                            }
                            _ => false,
                        };
                        assert!(allowed, "submit of {form:?} answered {e:?}");
                    }
                }
            }
            Got::Status(result) => {
                let status = result.as_ref().unwrap_or_else(|e| panic!("status: {e:?}"));
                assert_eq!(status.expires_at, from_millis(t.expires_at));
            }
        }
    }

    let status = w
        .call(w.a.0.for_tenant(t.tenant.clone()).status(&t.id))
        .unwrap_or_else(|e| panic!("status after the race: {e:?}"));
    let after = status.state;

    // One submission, one reveal.
    assert!(stored.len() <= 1, "two submissions were stored");
    assert!(revealed.len() <= 1, "the form was revealed twice");
    if state_before != SessionState::Pending {
        assert!(stored.is_empty(), "a submission overwrote another");
    }
    if let Some((values, pin)) = revealed.first() {
        let want = match state_before {
            SessionState::Submitted => card_before.as_ref().map(|(want, _)| want.clone()),
            // A submission in this race was revealed: possible only with the PIN it handed
            // out, which a guess made before the race matches by chance (another session's
            // PIN, or the placeholder guess, when PINs are short).
            SessionState::Pending => {
                let (stored_pin, form) = stored.first().unwrap_or_else(|| panic!("no submission"));
                assert_eq!(
                    pin.expose_secret(),
                    stored_pin.expose_secret(),
                    "a reveal opened a fresh submission without its PIN"
                );
                match form.verdict() {
                    Verdict::Stored(values, _) => Some(values),
                    _ => None,
                }
            }
            other => panic!("a reveal succeeded on a {other:?} session"),
        };
        let want = want.unwrap_or_else(|| panic!("no card"));
        assert_eq!(**values, want, "the reveal returned another form");
        assert_eq!(after, SessionState::Revealed);
    }
    if cancelled_ok > 0 {
        assert_eq!(after, SessionState::Cancelled);
    }
    match after {
        SessionState::Pending => {
            assert_eq!(state_before, SessionState::Pending);
            assert!(stored.is_empty());
        }
        SessionState::Submitted => {
            assert!(state_before == SessionState::Submitted || stored.len() == 1);
        }
        SessionState::Revealed => {
            if state_before != SessionState::Revealed {
                assert_eq!(revealed.len(), 1, "revealed, but nobody was given the form");
            }
        }
        SessionState::Cancelled => {
            assert!(state_before == SessionState::Cancelled || cancelled_ok > 0);
        }
        SessionState::Locked => {
            assert!(state_before == SessionState::Locked || locked_answers > 0);
        }
    }

    // Bounded attempts: each WRONG_PIN answer names a distinct count below the allowance,
    // and no more guesses were evaluated than attempts were taken.
    let mut distinct = wrong_left.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        wrong_left.len(),
        "two guesses took the same attempt"
    );
    assert!(
        wrong_left.iter().all(|&l| l >= 1 && l < left_before),
        "WRONG_PIN counts {wrong_left:?} with {left_before} left before"
    );
    if matches!(after, SessionState::Submitted | SessionState::Revealed) {
        let used_after = t.max_attempts - status.attempts_left;
        assert!(used_after >= used_before, "an attempt was given back");
        let taken = usize::from(used_after - used_before);
        // Every PIN compared took an attempt, also one compared while the winner's
        // tombstone was being written (vault/tests/fault_repro.rs).
        assert!(wrong_left.len() + revealed.len() <= taken);
        assert!(taken <= reveals);
    }

    // One audit event per call, one lock event per lock.
    let count = |action, outcome: Option<AuditOutcome>| {
        events
            .iter()
            .filter(|e| e.action == action && outcome.is_none_or(|o| e.outcome == o))
            .count()
    };
    assert_eq!(count(AuditAction::Revealed, None), reveals);
    assert_eq!(
        count(AuditAction::Revealed, Some(AuditOutcome::Success)),
        revealed.len()
    );
    assert_eq!(count(AuditAction::Cancelled, None), cancels);
    assert_eq!(count(AuditAction::Submitted, None), submits);
    let newly_locked = after == SessionState::Locked && state_before != SessionState::Locked;
    assert_eq!(count(AuditAction::Locked, None), usize::from(newly_locked));

    // The model follows the store.
    let stored = stored.first().map(|(pin, form)| ((*pin).clone(), *form));
    let t = &mut w.sessions[i];
    t.state = after;
    if let Some((pin, form)) = stored {
        t.submitted = true;
        t.pin = Some(pin);
        if let Verdict::Stored(values, masked) = form.verdict() {
            t.card = Some((values, masked));
        }
    }
    t.used = if after == SessionState::Locked {
        t.max_attempts
    } else {
        t.max_attempts - status.attempts_left
    };
    assert_eq!(status.submitted_at.is_some(), t.submitted);
}

/// The revealed fields, as `Values` when they are one of the two cards the target submits.
fn card_values_of(form: &pci_vault::RevealedForm) -> Values {
    let mut out = Values::new();
    for (name, value) in form.iter() {
        let known = visa_values()
            .into_iter()
            .chain(amex_values())
            .find(|(n, v)| *n == name && *v == value.expose_secret())
            .unwrap_or_else(|| panic!("the reveal returned a value that was never submitted"));
        out.push(known);
    }
    out
}

/// At most once: a form leaves the vault only when the store holds its `Revealed`
/// tombstone.
fn assert_tombstone_stored(fx: &Fixture, key: &str) {
    let state = fx.stored(key).map(|s| s.state());
    assert_eq!(
        state,
        Some(SessionState::Revealed),
        "a form was returned while the store holds no Revealed tombstone"
    );
}

/// No error message carries a secret: no run of three digits (a card number, a security
/// code or a PIN echoed), no cardholder name.
fn assert_no_secret_in_error(e: &Error) {
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(
            !has_digit_run(&text, 3),
            "an error message holds digits: {text}"
        );
        for name in ["Ada Lovelace", "Grace Hopper"] {
            assert!(
                !text.contains(name),
                "an error message holds a name: {text}"
            );
        }
    }
}

impl Got {
    fn assert_no_secret(&self) {
        let e = match self {
            Got::Reveal { result, .. } => result.as_ref().err(),
            Got::Cancel { result, .. } => result.as_ref().err(),
            Got::Submit { result, .. } => result.as_ref().err(),
            Got::Status(result) => result.as_ref().err(),
        };
        if let Some(e) = e {
            assert_no_secret_in_error(e);
        }
    }
}

/// A session operation whose outcome the model learns from the store.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Submit(Submission),
    Reveal(Guess),
    Cancel,
    Status,
}

/// Whether an answer naming a state (`ALREADY_REVEALED`, `LOCKED`, `CANCELLED`) agrees
/// with the state the store ends in. Those states are final, so the store still holds
/// them at the end of the step (unless the session expired).
fn assert_consistent(e: &Error, after: Option<SessionState>, what: &str) {
    let Some(after) = after else { return };
    let named = match e.code() {
        ErrorCode::AlreadyRevealed => SessionState::Revealed,
        ErrorCode::Locked => SessionState::Locked,
        ErrorCode::Cancelled => SessionState::Cancelled,
        _ => return,
    };
    assert_eq!(after, named, "{what} answered {:?}", e.code());
}

fn faulty(w: &mut World, op: FaultyOp, faults: Vec<u8>) {
    match op {
        FaultyOp::Create {
            acme: other,
            max_attempts,
            ttl,
        } => faulty_create(w, other, max_attempts, ttl, faults),
        FaultyOp::Submit {
            session,
            form,
            process_b,
        } => {
            if let Some(i) = w.pick(session) {
                session_op(w, i, Kind::Submit(form), process_b, faults);
            }
        }
        FaultyOp::Reveal {
            session,
            guess,
            process_b,
        } => {
            if let Some(i) = w.pick(session) {
                session_op(w, i, Kind::Reveal(guess), process_b, faults);
            }
        }
        FaultyOp::Cancel { session, process_b } => {
            if let Some(i) = w.pick(session) {
                session_op(w, i, Kind::Cancel, process_b, faults);
            }
        }
        FaultyOp::Status { session } => {
            if let Some(i) = w.pick(session) {
                session_op(w, i, Kind::Status, false, faults);
            }
        }
    }
}

fn faulty_create(w: &mut World, other: bool, max_attempts: u8, ttl: u8, faults: Vec<u8>) {
    if w.sessions.len() >= 8 {
        return;
    }
    let tenant = if other { acme() } else { Tenant::default() };
    let options = SessionOptions::default()
        .with_pin_length(4)
        .with_max_attempts(1 + max_attempts % 10)
        .with_ttl(Duration::from_secs(1 + u64::from(ttl) * 30));
    let before = w.fx.entries();
    w.fx.scheduled.set_faults(faults);
    let got =
        w.fx.run_one(w.vault(false, &tenant).create_session(&options));
    let _ = w.fx.scheduled.settle();
    let after = w.fx.entries();
    let new: Vec<&(String, Vec<u8>)> = after
        .iter()
        .filter(|(k, _)| !before.iter().any(|(b, _)| b == k))
        .collect();
    assert!(new.len() <= 1, "one create stored {} sessions", new.len());
    let events = w.audit();
    match got {
        Some(Ok(ticket)) => {
            let (key, bytes) = new
                .first()
                .unwrap_or_else(|| panic!("a created session is not stored"));
            assert_eq!(events.len(), 1, "audit events of a create");
            assert_eq!(events[0].action, AuditAction::Created);
            w.sessions.push(Tracked {
                id: ticket.id,
                key: key.clone(),
                tenant,
                expires_at: pci_vault::clock::to_millis(ticket.expires_at),
                max_attempts: options.max_attempts,
                state: SessionState::Pending,
                used: 0,
                submitted: false,
                pin: None,
                card: None,
                created_len: bytes.len(),
            });
        }
        // The outcome is unknown to the caller: the session may exist, without its id.
        Some(Err(Error::StoreUnavailable(_))) | None => {
            if let Some(e) = got.as_ref().and_then(|r| r.as_ref().err()) {
                assert_no_secret_in_error(e);
            }
            assert!(events.is_empty(), "an unfinished create was audited");
            if let Some((key, bytes)) = new.first() {
                let header =
                    pci_vault_fuzz::header(bytes).unwrap_or_else(|| panic!("not a record"));
                w.orphans.push((key.clone(), header.expires_at));
            }
        }
        Some(Err(e)) => panic!("create answered {e:?}"),
    }
}

/// Runs `kind` on session `i` from its owner, with `faults`, and checks it against what
/// the store holds before and after; then the model learns the session from the store.
fn session_op(w: &mut World, i: usize, kind: Kind, process_b: bool, faults: Vec<u8>) {
    let t = &w.sessions[i];
    let key = t.key.clone();
    let before = w.fx.stored(&key);
    let now_before = w.now();
    let vault = w.vault(process_b, &t.tenant);
    let pin = match kind {
        Kind::Reveal(guess) => Some(w.guess(guess, t)),
        _ => None,
    };
    w.fx.scheduled.set_faults(faults);
    // What the operation answered: `None` when its process died.
    let (answer, got_pin, got_values, got_status): (Option<Result<(), Error>>, _, _, _) = match kind
    {
        Kind::Submit(form) => match w.fx.run_one(vault.submit(&t.id, &form.form())) {
            None => (None, None, None, None),
            Some(Ok(r)) => (Some(Ok(())), Some(r.pin), None, None),
            Some(Err(e)) => (Some(Err(e)), None, None, None),
        },
        Kind::Reveal(_) => {
            let pin = pin.as_ref().unwrap_or_else(|| panic!("no guess"));
            match w.fx.run_one(vault.reveal(&t.id, pin)) {
                None => (None, None, None, None),
                Some(Ok(form)) => {
                    assert_tombstone_stored(&w.fx, &key);
                    (Some(Ok(())), None, Some(card_values_of(&form)), None)
                }
                Some(Err(e)) => (Some(Err(e)), None, None, None),
            }
        }
        Kind::Cancel => (w.fx.run_one(vault.cancel(&t.id)), None, None, None),
        Kind::Status => match w.fx.run_one(vault.status(&t.id)) {
            None => (None, None, None, None),
            Some(Ok(status)) => (Some(Ok(())), None, None, Some(status)),
            Some(Err(e)) => (Some(Err(e)), None, None, None),
        },
    };
    let observed = w.fx.scheduled.settle();
    let after = w.fx.stored(&key);
    let expired = w.now() >= t.expires_at;
    let events = w.audit();
    let count = |action: AuditAction| events.iter().filter(|e| e.action == action).count();
    let mine = |state: SessionState| {
        observed
            .applied
            .iter()
            .any(|a| a.caller == Some(0) && a.key == key && a.state == Some(state))
    };
    let state_before = before.as_ref().map(StoredSession::state);
    let state_after = after.as_ref().map(StoredSession::state);
    let crashed = answer.is_none();
    let error = answer.as_ref().and_then(|r| r.as_ref().err());
    if let Some(e) = error {
        assert_no_secret_in_error(e);
        assert_consistent(e, state_after, &format!("{kind:?}"));
        if e.code() == ErrorCode::NotFound {
            assert!(
                before.is_none() || expired,
                "{kind:?} of a live session: NOT_FOUND"
            );
        }
    }
    let unknown = crashed || matches!(error, Some(Error::StoreUnavailable(_)));
    let mut card = None;
    match kind {
        Kind::Submit(form) => {
            // The customer's own applied submit answers its PIN (or that its outcome is
            // unknown), never ALREADY_SUBMITTED.
            if mine(SessionState::Submitted) {
                assert!(form.is_valid(), "an invalid form was stored");
                assert_eq!(state_before, Some(SessionState::Pending));
                assert!(
                    got_pin.is_some() || unknown,
                    "a submit that applied answered {error:?}"
                );
                card = Some(form);
            } else {
                assert!(
                    got_pin.is_none(),
                    "a submit answered a PIN it did not store"
                );
            }
            if state_before == Some(SessionState::Pending) {
                assert!(
                    !matches!(error, Some(Error::AlreadySubmitted)),
                    "a submit on a pending session nobody else wrote answered ALREADY_SUBMITTED"
                );
            }
            if !crashed {
                let audited = match &error {
                    None => 1,
                    Some(e)
                        if matches!(
                            e.code(),
                            ErrorCode::StoreUnavailable | ErrorCode::NotFound
                        ) =>
                    {
                        0
                    }
                    Some(_) => 1,
                };
                assert_eq!(
                    count(AuditAction::Submitted),
                    audited,
                    "submit audit events"
                );
            }
        }
        Kind::Reveal(_) => {
            let t = &w.sessions[i];
            let right = t.pin.as_ref().zip(pin.as_ref()).map(|(a, b)| a == b);
            if let Some(values) = &got_values {
                assert_eq!(state_before, Some(SessionState::Submitted));
                assert!(
                    mine(SessionState::Revealed),
                    "revealed without writing the tombstone"
                );
                assert_ne!(right, Some(false), "a wrong PIN revealed the form");
                let (want, _) = t.card.clone().unwrap_or_else(|| panic!("no card"));
                assert_eq!(*values, want, "the reveal returned another form");
            }
            if let Some(&Error::WrongPin { attempts_left }) = error {
                assert_ne!(right, Some(true), "the right PIN answered WRONG_PIN");
                let before = before.as_ref().unwrap_or_else(|| panic!("no record"));
                let after = after.as_ref().unwrap_or_else(|| panic!("no record"));
                assert_eq!(
                    after.used(),
                    before.used() + 1,
                    "one wrong PIN, one attempt"
                );
                assert_eq!(attempts_left, t.max_attempts - after.used());
            }
            if crashed {
                assert!(count(AuditAction::Revealed) == 0);
            } else {
                assert_eq!(count(AuditAction::Revealed), 1, "reveal audit events");
            }
            let locks = count(AuditAction::Locked);
            assert!(
                locks <= usize::from(mine(SessionState::Locked)),
                "a lock audited twice"
            );
            if matches!(error, Some(Error::Locked)) && mine(SessionState::Locked) {
                assert_eq!(locks, 1, "a lock not audited");
            }
            // No stranded session: a reveal that got an answer leaves none behind.
            if !unknown && !expired {
                assert!(
                    !after.as_ref().is_some_and(StoredSession::all_taken),
                    "a reveal answered {error:?} and left the session submitted with no attempt left"
                );
            }
        }
        Kind::Cancel => {
            if !crashed {
                assert_eq!(count(AuditAction::Cancelled), 1, "cancel audit events");
            }
            if matches!(answer, Some(Ok(()))) {
                assert_eq!(
                    state_after.filter(|_| !expired),
                    (!expired).then_some(SessionState::Cancelled)
                );
            }
        }
        Kind::Status => {
            if let Some(status) = &got_status {
                assert!(
                    Some(status.state) == state_before || Some(status.state) == state_after,
                    "status {} with {state_before:?} before and {state_after:?} after",
                    status.state
                );
            }
            assert!(count(AuditAction::Locked) <= usize::from(mine(SessionState::Locked)));
            // A status after the grace period finishes a stranded session.
            if let Some(b) = &before
                && b.all_taken()
                && now_before >= b.finish_after(GRACE)
                && observed.faults == 0
                && !expired
            {
                assert!(
                    !after.as_ref().is_some_and(StoredSession::all_taken),
                    "a status past the grace period left a stranded session"
                );
            }
        }
    }
    if state_before == Some(SessionState::Pending)
        && state_after == Some(SessionState::Submitted)
        && card.is_none()
    {
        panic!("a session was submitted by nobody");
    }
    let t = &mut w.sessions[i];
    if let Some(pin) = got_pin {
        t.pin = Some(pin);
    } else if card.is_some() {
        t.pin = None;
    }
    if let Some(form) = card
        && let Verdict::Stored(values, masked) = form.verdict()
    {
        t.card = Some((values, masked));
    }
    learn(t, after.as_ref());
}

/// The model takes the session as the store holds it.
fn learn(t: &mut Tracked, stored: Option<&StoredSession>) {
    let Some(stored) = stored else { return };
    t.state = stored.state();
    t.used = stored.used();
    t.submitted = stored.header.submitted;
}

/// A race after which the exact checks do not apply (a fault fired, a session's PIN or last
/// outcome was unknown, or it expired while the race slept): every answer is checked
/// against what the store holds, and the model learns the session from the store.
fn race_relaxed(
    w: &mut World,
    i: usize,
    contenders: &[Contender],
    results: &[Option<Got>],
    observed: &Observed,
    before: Option<StoredSession>,
) {
    let key = w.sessions[i].key.clone();
    let after = w.fx.stored(&key);
    let state_before = before.as_ref().map(StoredSession::state);
    let state_after = after.as_ref().map(StoredSession::state);
    let events = w.audit();
    let count = |action: AuditAction, outcome: Option<AuditOutcome>| {
        events
            .iter()
            .filter(|e| e.action == action && outcome.is_none_or(|o| e.outcome == o))
            .count()
    };
    let wrote = |k: usize, state: SessionState| {
        observed
            .applied
            .iter()
            .any(|a| a.caller == Some(k) && a.key == key && a.state == Some(state))
    };
    let mut revealed = 0usize;
    let mut reveals = 0usize;
    let mut wrong_left = Vec::new();
    let mut submitted_by = Vec::new();
    let mut new_pin = None;
    for (k, got) in results.iter().enumerate() {
        let crashed = got.is_none();
        let Some(got) = got else {
            if wrote(k, SessionState::Submitted) {
                submitted_by.push(k);
            }
            continue;
        };
        match got {
            Got::Reveal { owner, result, .. } => {
                reveals += 1;
                if !owner {
                    // A stranger's guess takes no attempt, but its claim is a write that
                    // may go unanswered.
                    assert!(
                        matches!(
                            code(result),
                            Some(ErrorCode::NotFound | ErrorCode::StoreUnavailable)
                        ),
                        "a stranger's reveal answered {:?}",
                        code(result)
                    );
                    continue;
                }
                match result {
                    Ok(values) => {
                        revealed += 1;
                        assert!(
                            wrote(k, SessionState::Revealed),
                            "revealed without a tombstone"
                        );
                        let t = &w.sessions[i];
                        if let Some((want, _)) = &t.card
                            && state_before == Some(SessionState::Submitted)
                        {
                            assert_eq!(values, want, "the reveal returned another form");
                        }
                    }
                    Err(Error::WrongPin { attempts_left }) => wrong_left.push(*attempts_left),
                    Err(e) => assert_consistent(e, state_after, "a reveal"),
                }
            }
            Got::Cancel { owner, result } => {
                if !owner {
                    assert_eq!(
                        code(result),
                        Some(ErrorCode::NotFound),
                        "a stranger's cancel"
                    );
                    continue;
                }
                match result {
                    Ok(()) => assert!(
                        state_after.is_none() || state_after == Some(SessionState::Cancelled),
                        "a cancel succeeded and the store holds {state_after:?}"
                    ),
                    Err(e) => assert_consistent(e, state_after, "a cancel"),
                }
            }
            Got::Submit { form, result } => {
                let applied = wrote(k, SessionState::Submitted);
                if applied {
                    submitted_by.push(k);
                    assert!(form.is_valid(), "an invalid form was stored");
                }
                match result {
                    Ok(pin) => {
                        assert!(applied, "a submit answered a PIN it did not store");
                        new_pin = Some((pin.clone(), *form));
                    }
                    Err(Error::StoreUnavailable(_)) => {}
                    Err(e) => {
                        // Even when another caller replaced the submitted record before
                        // the vault repeated its unanswered write, the customer's own
                        // submission is never reported as someone else's
                        // (vault/tests/fault_repro.rs).
                        assert!(
                            !applied,
                            "the customer's own applied submit answered {:?}",
                            e.code()
                        );
                        assert_consistent(e, state_after, "a submit");
                    }
                }
                let _ = crashed;
            }
            Got::Status(result) => {
                if let Ok(status) = result {
                    assert_eq!(status.expires_at, from_millis(w.sessions[i].expires_at));
                }
            }
        }
    }
    assert!(revealed <= 1, "the form was revealed twice");
    assert!(submitted_by.len() <= 1, "two submissions were stored");
    if state_before != Some(SessionState::Pending) {
        assert!(submitted_by.is_empty(), "a submission overwrote another");
    }
    let mut distinct = wrong_left.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        wrong_left.len(),
        "two guesses took the same attempt"
    );
    assert!(count(AuditAction::Revealed, None) <= reveals);
    assert_eq!(
        count(AuditAction::Revealed, Some(AuditOutcome::Success)),
        revealed
    );
    assert!(
        count(AuditAction::Locked, None) <= 1,
        "a lock audited twice"
    );

    // The form of the one stored submission, whether or not its contender lived to answer.
    let submitted = submitted_by.first().and_then(|k| match contenders[*k] {
        Contender::Submit(form) => Some(form),
        _ => None,
    });
    let t = &mut w.sessions[i];
    if let Some(form) = submitted {
        t.pin = new_pin.map(|(pin, _)| pin);
        if let Verdict::Stored(values, masked) = form.verdict() {
            t.card = Some((values, masked));
        }
    } else {
        assert!(
            !(state_before == Some(SessionState::Pending)
                && state_after == Some(SessionState::Submitted)),
            "a session was submitted by no contender"
        );
    }
    learn(t, after.as_ref());
}
