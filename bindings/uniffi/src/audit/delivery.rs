//! How events reach the host's sink: one queue and one delivery task per opened vault, and
//! one gate for the whole process.
//!
//! # Never waiting for the host
//! The vault records an event synchronously, inside the operation; the host's method may be
//! slow (a network log shipper) or may raise. So [`HostAuditSink`] only puts the event on an
//! unbounded queue, and the vault's delivery task takes events off it in order and calls the
//! host on tokio's blocking pool, one call at a time. The operation never waits for the
//! host; an event the host raises on is counted and dropped, and the next one is delivered
//! as usual.
//!
//! # Never calling into a host that shuts down
//! Python ends a foreign thread that calls into it while the interpreter shuts down, and
//! that aborts the whole process. Two kinds of call can happen late:
//! - Releasing the host's object. The object is owned by the vault ([`HostAuditSink`]) and
//!   released on the host's own thread when the host releases the vault. The delivery task
//!   holds it weakly, upgrades it only for the batch it is handing over, and lets go of it
//!   before it answers a flush; if the vault goes away during a batch, the task leaks the
//!   object rather than release it from a Rust thread. So the task calls the host only
//!   while the vault is open: events still queued when the host releases the vault are
//!   dropped (`Vault.flush_audit` delivers them first).
//! - Handing over events. Every queued event holds a [`Pass`] at the process-wide [`Gate`];
//!   `stop_audit_delivery`, which the Python package calls at exit, waits (bounded) until no
//!   event is queued or being handed over, then closes the gate, after which no host sink
//!   is called again.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{AuditEvent, AuditSink};

/// Most events handed to the host in one trip to the blocking pool.
const MAX_BATCH: usize = 256;

/// Whether host sinks may still be called, and how many events are queued for them or being
/// handed over, over every vault that shares it (the whole process, outside tests).
pub(crate) struct Gate {
    state: Mutex<GateState>,
    settled: Condvar,
}

#[derive(Default)]
struct GateState {
    pending: usize,
    closed: bool,
}

impl Gate {
    /// The gate of every vault of this process.
    pub(crate) fn process() -> Arc<Gate> {
        static PROCESS: LazyLock<Arc<Gate>> = LazyLock::new(|| Arc::new(Gate::new()));
        Arc::clone(&PROCESS)
    }

    fn new() -> Self {
        Gate {
            state: Mutex::new(GateState::default()),
            settled: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, GateState> {
        // The state is two plain counters, consistent whatever panicked while holding them.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A pass for one more pending event, or `None` once the gate is closed.
    fn admit(self: &Arc<Self>) -> Option<Pass> {
        let mut state = self.state();
        if state.closed {
            return None;
        }
        state.pending += 1;
        Some(Pass(Arc::clone(self)))
    }

    fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Waits until no event is pending or `timeout` has passed, then closes the gate for
    /// good. Returns whether no event was pending any more.
    pub(crate) fn close(&self, timeout: Duration) -> bool {
        let (mut state, _) = self
            .settled
            .wait_timeout_while(self.state(), timeout, |state| state.pending > 0)
            .unwrap_or_else(PoisonError::into_inner);
        state.closed = true;
        state.pending == 0
    }
}

/// One pending event's place at its gate. Dropping it, whatever became of the event (handed
/// over, refused, skipped or dropped with its queue), settles it.
struct Pass(Arc<Gate>);

impl Drop for Pass {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.pending = state.pending.saturating_sub(1);
        drop(state);
        self.0.settled.notify_all();
    }
}

/// What the delivery task takes off the queue.
enum Delivery {
    /// An event for the host's sink, with its pass.
    Event(AuditEvent, Pass),
    /// Answered once every item queued before it has been handled.
    Flush(oneshot::Sender<()>),
}

/// The host's sink object, in an `Arc` of its own so that the delivery task can tell
/// whether it holds the last reference ([`Arc::into_inner`] needs a sized type).
struct HostObject(Arc<dyn AuditSink>);

/// The vault's side of a host [`AuditSink`]: queues each event for the delivery task and
/// returns at once. Owns the host's object; the delivery task only borrows it.
pub(crate) struct HostAuditSink {
    queue: mpsc::UnboundedSender<Delivery>,
    failures: Arc<AtomicU64>,
    gate: Arc<Gate>,
    /// The reference that keeps the host's object alive: see the module docs.
    _host: Arc<HostObject>,
}

impl HostAuditSink {
    /// Starts the delivery task for `host` on the current tokio runtime, behind the
    /// process's gate. The task ends once this value is dropped (with the last vault that
    /// uses it) and the batch it is handing over, if any, is done.
    pub(crate) fn start(host: Arc<dyn AuditSink>) -> Self {
        HostAuditSink::start_behind(host, Gate::process())
    }

    fn start_behind(host: Arc<dyn AuditSink>, gate: Arc<Gate>) -> Self {
        let host = Arc::new(HostObject(host));
        let (queue, events) = mpsc::unbounded_channel();
        let failures = Arc::new(AtomicU64::new(0));
        tokio::spawn(deliver(
            Arc::downgrade(&host),
            events,
            Arc::clone(&failures),
        ));
        HostAuditSink {
            queue,
            failures,
            gate,
            _host: host,
        }
    }

    /// Waits until every event recorded before this call has been handed to the host's sink
    /// (it returned or raised, or the gate was closed) and the delivery task has let go of
    /// the host's object.
    pub(crate) async fn flush(&self) {
        let (done, delivered) = oneshot::channel();
        if self.queue.send(Delivery::Flush(done)).is_ok() {
            // An error means the delivery task is gone: nothing is left to wait for.
            let _ = delivered.await;
        }
    }

    /// Events the host's sink did not take: it raised, or the gate was closed.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

impl pci_vault::AuditSink for HostAuditSink {
    fn record(&self, event: &pci_vault::AuditEvent) {
        let Some(pass) = self.gate.admit() else {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // A send fails only if the delivery task is gone; the pass settles with the event.
        if self
            .queue
            .send(Delivery::Event(AuditEvent::from(event), pass))
            .is_err()
        {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for HostAuditSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostAuditSink")
            .field("failures", &self.failures())
            .finish_non_exhaustive()
    }
}

/// Takes events off the queue in order and hands them to the host, one batch at a time on
/// the blocking pool (the host's method is a plain, possibly blocking call), so a slow sink
/// holds up only this task, never a vault operation. Ends once the vault is gone; what is
/// still queued is dropped with `queue`, settling its passes.
async fn deliver(
    host: Weak<HostObject>,
    mut queue: mpsc::UnboundedReceiver<Delivery>,
    failures: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let items = std::mem::take(&mut batch);
        let Some(host) = host.upgrade() else {
            // The vault, and with it the host's object, is gone: nobody waits on a flush
            // and the events cannot be handed over.
            break;
        };
        let failed = Arc::clone(&failures);
        let handed = tokio::task::spawn_blocking(move || {
            let flushes = hand_over(&host, items, &failed);
            if let Some(last) = Arc::into_inner(host) {
                // The vault went away during the batch: releasing the object here would
                // call into the host from this thread, maybe while it shuts down.
                std::mem::forget(last);
            }
            flushes
        });
        // The closure catches every panic, so this fails only if the runtime shuts down.
        let Ok(flushes) = handed.await else {
            break;
        };
        // Only now that the task holds no reference to the host's object: a flush lets the
        // host go on, and perhaps release the vault and exit.
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Hands the events of `items` to the host in order, while the vault is open and the gate
/// too, counting those it does not take; returns the flushes among them, to be answered
/// after the batch.
fn hand_over(
    host: &Arc<HostObject>,
    items: Vec<Delivery>,
    failures: &AtomicU64,
) -> Vec<oneshot::Sender<()>> {
    let mut flushes = Vec::new();
    for item in items {
        match item {
            Delivery::Event(event, pass) => {
                // Only this batch holds the object: the vault is gone, and nobody waits for
                // the rest of the batch. (Released a moment after this check, the vault
                // costs one more call, no more.)
                if Arc::strong_count(host) == 1 {
                    break;
                }
                // The gate cannot close while this pass is pending, unless its wait timed
                // out. A panic could only come from uniffi failing to read the host's
                // answer; it must not take the rest of the batch with it.
                let taken = !pass.0.is_closed()
                    && matches!(
                        catch_unwind(AssertUnwindSafe(|| host.0.record(event))),
                        Ok(Ok(()))
                    );
                if !taken {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                drop(pass);
            }
            Delivery::Flush(done) => flushes.push(done),
        }
    }
    flushes
}

#[cfg(test)]
mod tests {
    use super::super::AuditSinkError;
    use super::super::tests::core_event;
    use super::*;
    use pci_vault::AuditSink as _;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    /// Keeps the events it is given; raises on every `fail_every`-th; sleeps `delay` in
    /// each call; notes how many calls ever ran at once.
    #[derive(Default)]
    struct Recorder {
        events: Arc<Mutex<Vec<AuditEvent>>>,
        fail_every: usize,
        delay: Duration,
        inside: AtomicUsize,
        most_inside: AtomicUsize,
    }

    impl AuditSink for Recorder {
        fn record(&self, event: AuditEvent) -> Result<(), AuditSinkError> {
            let now = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_inside.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(self.delay);
            let n = {
                let mut events = self.events.lock().unwrap();
                events.push(event);
                events.len()
            };
            self.inside.fetch_sub(1, Ordering::SeqCst);
            if self.fail_every > 0 && n.is_multiple_of(self.fail_every) {
                return Err(AuditSinkError::Unavailable);
            }
            Ok(())
        }
    }

    fn slow(ms: u64) -> Recorder {
        Recorder {
            delay: Duration::from_millis(ms),
            ..Recorder::default()
        }
    }

    /// `core_event()` numbered `n` in its `attempts_left`.
    async fn numbered(n: u8) -> pci_vault::AuditEvent {
        let mut event = core_event().await;
        event.attempts_left = Some(n);
        event
    }

    /// Starts a sink behind a gate of the test's own (closing the process's gate would stop
    /// the other tests' sinks).
    fn start(host: Arc<Recorder>) -> (HostAuditSink, Arc<Gate>) {
        let gate = Arc::new(Gate::new());
        let sink = HostAuditSink::start_behind(host, Arc::clone(&gate));
        (sink, gate)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_sink_gets_every_event_in_order_without_holding_up_record() {
        let host = Arc::new(slow(20));
        let (sink, _gate) = start(Arc::clone(&host));
        let mut events = Vec::new();
        for n in 0..50 {
            events.push(numbered(n).await);
        }
        let started = Instant::now();
        for event in &events {
            sink.record(event);
        }
        // 50 calls of 20 ms take a second; queuing them takes next to nothing.
        assert!(started.elapsed() < Duration::from_millis(500));
        sink.flush().await;
        let seen: Vec<_> = host
            .events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.attempts_left)
            .collect();
        assert_eq!(seen, (0..50).map(Some).collect::<Vec<_>>());
        assert_eq!(host.most_inside.load(Ordering::SeqCst), 1);
        assert_eq!(sink.failures(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_the_sink_refuses_are_counted_and_later_ones_still_arrive() {
        let host = Arc::new(Recorder {
            fail_every: 3,
            ..Recorder::default()
        });
        let (sink, _gate) = start(Arc::clone(&host));
        for n in 0..30 {
            sink.record(&numbered(n).await);
        }
        sink.flush().await;
        assert_eq!(host.events.lock().unwrap().len(), 30);
        assert_eq!(sink.failures(), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_flush_the_host_is_released_by_whoever_drops_the_vault_side() {
        // Like a host object lifted by uniffi: the vault side holds the only reference.
        let host = Arc::new(Recorder::default());
        let released = Arc::downgrade(&host);
        let (sink, _gate) = start(host);
        for _ in 0..100 {
            sink.record(&core_event().await);
        }
        sink.flush().await;
        assert_eq!(released.strong_count(), 1);
        drop(sink);
        // Released right here, on this thread, not later on the delivery task's.
        assert_eq!(released.strong_count(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_vault_side_during_a_batch_stops_delivery_and_leaks_the_host() {
        let host = Arc::new(slow(100));
        let events = Arc::clone(&host.events);
        let released = Arc::downgrade(&host);
        let (sink, gate) = start(host);
        let event = core_event().await;
        for _ in 0..20 {
            sink.record(&event);
        }
        // During the first call (100 ms), whichever batches the events went out in.
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(sink);
        // The dropped events settle their passes: nothing is left pending at the gate.
        assert!(gate.close(Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The call in progress finished; the other events were not handed over, and the
        // delivery thread, holding the last reference, kept the host rather than release it.
        assert_eq!(events.lock().unwrap().len(), 1);
        assert_eq!(released.strong_count(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closing_the_gate_waits_for_queued_events_then_stops_every_call() {
        let host = Arc::new(slow(20));
        let (sink, gate) = start(Arc::clone(&host));
        let event = core_event().await;
        for _ in 0..10 {
            sink.record(&event);
        }
        let closing = tokio::task::spawn_blocking({
            let gate = Arc::clone(&gate);
            move || gate.close(Duration::from_secs(10))
        });
        assert!(
            closing.await.unwrap(),
            "the queued events were not all handed over"
        );
        assert_eq!(host.events.lock().unwrap().len(), 10);
        for _ in 0..5 {
            sink.record(&event);
        }
        sink.flush().await;
        assert_eq!(host.events.lock().unwrap().len(), 10);
        assert_eq!(sink.failures(), 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gate_that_times_out_closes_anyway_and_skips_what_is_queued() {
        let host = Arc::new(slow(200));
        let (sink, gate) = start(Arc::clone(&host));
        let event = core_event().await;
        for _ in 0..10 {
            sink.record(&event);
        }
        let started = Instant::now();
        let closing = tokio::task::spawn_blocking({
            let gate = Arc::clone(&gate);
            move || gate.close(Duration::from_millis(100))
        });
        assert!(!closing.await.unwrap());
        assert!(started.elapsed() < Duration::from_secs(1));
        sink.flush().await;
        // At most the call in progress when the gate closed went through.
        let handed = host.events.lock().unwrap().len();
        assert!(handed <= 1, "{handed} events handed over");
        assert_eq!(sink.failures(), 10 - handed as u64);
    }
}
