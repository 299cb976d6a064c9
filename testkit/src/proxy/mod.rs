//! A TCP proxy that stands between a Redis client and a real `redis-server` and injects the
//! network's faults on command: a reply lost after the server applied the command, replies
//! that come late, a slower network, connections that drop.
//!
//! The proxy forwards bytes both ways unchanged. It reads the server's side as RESP, so it
//! knows where each reply ends, and counts replies: RESP3 pushes (`>`) are not replies and
//! are not counted; a stream that is not RESP is forwarded without counting. It works with
//! any client, including redis-rs's multiplexed connection (several requests in flight on
//! one connection: the replies are counted in the order the server sends them, which is the
//! order of the requests).
//!
//! It runs on a thread of its own with its own Tokio runtime, so a test may use it from a
//! sync or an async test alike, and block its own runtime (e.g. to kill a server) without
//! stopping the proxy. Dropping the [`FaultProxy`] closes every connection through it.
//!
//! ```no_run
//! # use std::time::Duration;
//! use pci_vault_testkit::proxy::FaultProxy;
//! use pci_vault_testkit::redis::RedisServer;
//!
//! let server = RedisServer::start(&[]);
//! let proxy = FaultProxy::start(server.addr());
//! // The client connects to proxy.url() instead of server.url(). Then:
//! proxy.reset_on_reply(1); // the next reply is lost, its connection reset
//! proxy.stall_replies(Duration::from_secs(2)); // replies for the next 2 s arrive after them
//! proxy.set_delay(Duration::from_micros(250)); // +0.5 ms per round trip
//! proxy.refuse_connections(Duration::from_secs(1)); // drop everything for a second
//! ```

mod resp;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

/// A fault-injecting TCP proxy on a free loopback port in front of one upstream address.
/// See the [module documentation](self).
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    state: Mutex<State>,
    /// Bumped to reset every open connection.
    reset_all: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    /// Reset the connection that carries reply number `n` counted from arming, and lose
    /// that reply.
    reset_at: Option<u64>,
    /// Replies seen since [`FaultProxy::reset_on_reply`] armed the reset.
    since_armed: u64,
    /// Replies are held until this instant.
    stall_until: Option<Instant>,
    /// Added to every chunk, both ways.
    delay: Duration,
    /// New connections are reset at once before this instant.
    refuse_until: Option<Instant>,
    replies: u64,
    resets: u64,
    connections: u64,
}

impl FaultProxy {
    /// Starts a proxy on a free port of 127.0.0.1 that forwards each connection to
    /// `upstream` (e.g. [`RedisServer::addr`](crate::redis::RedisServer::addr)), with no
    /// fault armed.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            state: Mutex::new(State::default()),
            reset_all: watch::channel(0).0,
        });
        let (shutdown, stopped) = oneshot::channel();
        let accepting = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).unwrap();
                    tokio::select! {
                        () = accept(listener, accepting) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime drops every connection's task and closes its sockets.
            })
            .unwrap();
        FaultProxy {
            addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Where clients connect: `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://127.0.0.1:PORT`: the upstream Redis, through this proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.addr.port())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state()
    }

    /// Arms a lost reply: the `n`th reply the server sends from now on (1 = the next one,
    /// on whichever connection) is not forwarded, and the client's connection that would
    /// have carried it is reset (TCP RST) instead — after the server applied the command.
    /// The replies before it on that connection are forwarded first. Fires once, then
    /// disarms; [`resets`](Self::resets) counts how often it fired.
    pub fn reset_on_reply(&self, n: u64) {
        assert!(n >= 1, "replies are counted from 1");
        let mut state = self.state();
        state.reset_at = Some(n);
        state.since_armed = 0;
    }

    /// Disarms [`reset_on_reply`](Self::reset_on_reply) if it has not fired yet.
    pub fn disarm_reset(&self) {
        self.state().reset_at = None;
    }

    /// Holds the replies from the server for the next `duration` (those it sends meanwhile,
    /// and those still waiting to be forwarded), and forwards them when it ends: a client
    /// with a shorter timeout sees a timeout, and then the reply arrives late on the same
    /// connection. Requests still reach the server at once, so
    /// the commands are applied. To lose the held replies instead, call
    /// [`drop_connections`](Self::drop_connections) before the stall ends.
    pub fn stall_replies(&self, duration: Duration) {
        self.state().stall_until = Some(Instant::now() + duration);
    }

    /// Ends a stall now: held replies are forwarded.
    pub fn end_stall(&self) {
        self.state().stall_until = None;
    }

    /// Adds `delay` to every chunk of bytes the proxy forwards, in both directions, from
    /// now on: a request-reply round trip takes `2 × delay` longer, as across a network.
    /// Chunks still flow as a stream (a chunk read while an earlier one waits is not delayed
    /// twice). Tokio's timers tick in milliseconds, so the proxy waits out the last
    /// millisecond of a delay by yielding in a loop: sub-millisecond delays are accurate to
    /// a few microseconds, at the cost of CPU time on the proxy's thread while chunks wait.
    pub fn set_delay(&self, delay: Duration) {
        self.state().delay = delay;
    }

    /// Resets every connection open through the proxy now (the client sees its connection
    /// reset; the server sees it closed).
    pub fn drop_connections(&self) {
        self.shared
            .reset_all
            .send_modify(|generation| *generation += 1);
    }

    /// [Drops every connection](Self::drop_connections) and, for `duration`, resets every
    /// new one as soon as it is accepted, as a server that went away would (the port stays
    /// bound, so no other process can take it meanwhile).
    pub fn refuse_connections(&self, duration: Duration) {
        self.state().refuse_until = Some(Instant::now() + duration);
        self.drop_connections();
    }

    /// How many replies the server has sent through the proxy (pushes not included).
    pub fn replies(&self) -> u64 {
        self.state().replies
    }

    /// How many times [`reset_on_reply`](Self::reset_on_reply) has fired.
    pub fn resets(&self) -> u64 {
        self.state().resets
    }

    /// How many client connections the proxy has accepted (refused ones included).
    pub fn connections(&self) -> u64 {
        self.state().connections
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let refuse = {
            let mut state = shared.state();
            state.connections += 1;
            state
                .refuse_until
                .is_some_and(|until| Instant::now() < until)
        };
        if refuse {
            reset(&client);
            continue;
        }
        tokio::spawn(serve(client, shared.clone()));
    }
}

/// Closes `socket` with a TCP RST when it is dropped, rather than a FIN.
fn reset(socket: &TcpStream) {
    let _ = socket.set_zero_linger();
}

/// What a direction's reader hands its writer.
enum Item {
    /// Bytes to forward once `at` has come.
    Bytes { at: Instant, bytes: Vec<u8> },
    /// Reset the client connection once `at` has come.
    Reset { at: Instant },
}

/// How a connection ended.
enum End {
    /// A side closed or failed: close the other normally.
    Closed,
    /// Reset the client's connection.
    Reset,
}

async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        reset(&client);
        return;
    };
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (requests, pending_requests) = mpsc::unbounded_channel();
    let (replies, pending_replies) = mpsc::unbounded_channel();
    let mut reset_all = shared.reset_all.subscribe();
    let end = tokio::select! {
        end = read_requests(&mut client_read, requests, &shared) => end,
        end = write(&mut server_write, pending_requests, None) => end,
        end = read_replies(&mut server_read, replies, &shared) => end,
        end = write(&mut client_write, pending_replies, Some(&shared)) => end,
        _ = reset_all.changed() => End::Reset,
    };
    if matches!(end, End::Reset) {
        reset(client_write.as_ref());
    }
    // Dropping the halves closes both sockets (the client's with a RST if reset).
}

/// When a chunk read now may be forwarded (a stall may hold a reply longer: see
/// [`write`]).
fn release_time(shared: &Shared) -> Instant {
    Instant::now() + shared.state().delay
}

async fn read_requests(
    from: &mut OwnedReadHalf,
    to: mpsc::UnboundedSender<Item>,
    shared: &Shared,
) -> End {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return End::Closed,
            Ok(n) => n,
        };
        let at = release_time(shared);
        let bytes = buf.get(..n).unwrap_or_default().to_vec();
        if to.send(Item::Bytes { at, bytes }).is_err() {
            return End::Closed;
        }
    }
}

async fn read_replies(
    from: &mut OwnedReadHalf,
    to: mpsc::UnboundedSender<Item>,
    shared: &Shared,
) -> End {
    let mut buf = vec![0; 64 * 1024];
    // Bytes of a reply not yet complete; `None` once the stream turned out not to be RESP.
    let mut partial: Option<Vec<u8>> = Some(Vec::new());
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return End::Closed,
            Ok(n) => n,
        };
        let chunk = buf.get(..n).unwrap_or_default();
        let at = release_time(shared);
        let Some(pending) = partial.as_mut() else {
            if to
                .send(Item::Bytes {
                    at,
                    bytes: chunk.to_vec(),
                })
                .is_err()
            {
                return End::Closed;
            }
            continue;
        };
        pending.extend_from_slice(chunk);
        let (forward, lost) = split_replies(pending, shared);
        let malformed = forward.is_none();
        let bytes = forward.unwrap_or_else(|| std::mem::take(pending));
        if !bytes.is_empty() && to.send(Item::Bytes { at, bytes }).is_err() {
            return End::Closed;
        }
        if lost {
            // Stop reading: the writer resets the client once what precedes is forwarded.
            let _ = to.send(Item::Reset { at });
            std::future::pending::<()>().await;
        }
        if malformed {
            partial = None;
        }
    }
}

/// Takes the whole replies off the front of `pending` and counts them. Returns the bytes
/// to forward (`None` if `pending` is not RESP: forward it all, uncounted) and whether the
/// armed reset fired on the reply after them (which is then dropped with the rest).
fn split_replies(pending: &mut Vec<u8>, shared: &Shared) -> (Option<Vec<u8>>, bool) {
    let mut state = shared.state();
    let mut end = 0;
    loop {
        let frame = match resp::first_frame(pending.get(end..).unwrap_or_default()) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(resp::Malformed) => return (None, false),
        };
        if !frame.push {
            state.replies += 1;
            if let Some(n) = state.reset_at {
                state.since_armed += 1;
                if state.since_armed >= n {
                    state.reset_at = None;
                    state.resets += 1;
                    let forward = pending.drain(..end).collect();
                    pending.clear();
                    return (Some(forward), true);
                }
            }
        }
        end += frame.len;
    }
    (Some(pending.drain(..end).collect()), false)
}

/// Forwards `items` to `to`, each once its time has come; replies (when `stalls` is given)
/// not before the current stall, if any, has ended.
async fn write(
    to: &mut OwnedWriteHalf,
    mut items: mpsc::UnboundedReceiver<Item>,
    stalls: Option<&Shared>,
) -> End {
    while let Some(item) = items.recv().await {
        match item {
            Item::Bytes { at, bytes } => {
                sleep_until(at).await;
                if let Some(shared) = stalls {
                    wait_out_stall(shared).await;
                }
                if to.write_all(&bytes).await.is_err() {
                    return End::Closed;
                }
            }
            Item::Reset { at } => {
                sleep_until(at).await;
                if let Some(shared) = stalls {
                    wait_out_stall(shared).await;
                }
                return End::Reset;
            }
        }
    }
    End::Closed
}

/// Waits while replies are stalled, checking every few milliseconds whether the stall was
/// ended or extended.
async fn wait_out_stall(shared: &Shared) {
    loop {
        let until = shared.state().stall_until;
        let now = Instant::now();
        match until {
            Some(until) if now < until => {
                tokio::time::sleep((until - now).min(Duration::from_millis(5))).await;
            }
            _ => return,
        }
    }
}

/// Waits until `at`: on Tokio's timer (millisecond ticks) while more than 2 ms remain, then
/// by yielding, so that sub-millisecond delays are not rounded up to a millisecond.
async fn sleep_until(at: Instant) {
    loop {
        let now = Instant::now();
        if now >= at {
            return;
        }
        let left = at - now;
        if left > Duration::from_millis(2) {
            tokio::time::sleep(left - Duration::from_millis(1)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}
