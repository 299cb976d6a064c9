//! One subscriber connection per store, shared by every watch.
//!
//! `SUBSCRIBE` takes a connection over, so subscriptions cannot ride on the store's
//! multiplexed connection; giving each watch a connection of its own would cost the server
//! one Redis connection per watched session. Instead the store opens one pub/sub connection
//! (at connect) and every watch subscribes its channel on it: a task reads
//! the connection's messages and hands each to the watches of its channel.
//!
//! - **Order.** A watch's route is in place before its `SUBSCRIBE` is sent, and the
//!   subscription is handed over only once Redis has acknowledged it, so every event
//!   published after that reaches the watch. `SUBSCRIBE` and `UNSUBSCRIBE` go out one at a
//!   time, and a channel is unsubscribed only while no watch has a route to it, so a watch
//!   that starts while its channel is being unsubscribed subscribes it again after.
//! - **A slow watch** (64 events not yet taken) loses its route: its subscription ends,
//!   which a watch takes as a lost subscription (it subscribes again and reads the state),
//!   and the others are not held up.
//! - **A lost connection** ends every subscription on it at once; the next subscription
//!   opens a new connection. A `SUBSCRIBE` that fails or gets no answer within the connect
//!   timeout (counted from when it is sent) does the same: a connection that hangs without
//!   closing is not used again, and the `SUBSCRIBE` is tried once more on a new one.
//! - **Sentinel**: the connection goes to the primary the sentinels name when it opens.
//!   Sentinel disconnects the pub/sub clients of a primary it demotes, which ends the
//!   connection here; the next subscription asks the sentinels again.
//! - **When.** The store opens the connection at connect, where its permission check
//!   subscribes and unsubscribes once, and keeps it for its life: one connection per store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures::StreamExt as _;
use pci_vault::{Error, Result};
use redis::Client;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{Notify, mpsc};

use crate::RedisStore;
use crate::errors::{at_connect, during_operation};

/// Events a watch may leave untaken before it loses its route.
const ROUTE_CAPACITY: usize = 64;

/// The store's subscriber connection: opened at connect, opened again after it ends.
#[derive(Default)]
pub(crate) struct Subscriber {
    current: tokio::sync::Mutex<Option<Arc<Shared>>>,
}

/// One pub/sub connection and the watches subscribed on it.
struct Shared {
    /// Sends `SUBSCRIBE` and `UNSUBSCRIBE`, one at a time.
    sink: tokio::sync::Mutex<PubSubSink>,
    routes: Mutex<Routes>,
    closed: AtomicBool,
    /// Whether a refused `UNSUBSCRIBE` has been logged on this connection.
    unsubscribe_warned: AtomicBool,
    /// The longest wait for an answer to `UNSUBSCRIBE` (the store's connect timeout).
    timeout: Duration,
    /// Wakes the reading task when this connection is no longer used.
    stop: Arc<Notify>,
    runtime: tokio::runtime::Handle,
}

#[derive(Default)]
struct Routes {
    channels: HashMap<String, Vec<Route>>,
    next_id: u64,
}

struct Route {
    id: u64,
    sender: mpsc::Sender<Vec<u8>>,
}

/// The events of one channel, as one watch receives them. Dropping it removes the watch's
/// route, and unsubscribes the channel when no other watch follows it.
pub(crate) struct RedisSubscription {
    receiver: mpsc::Receiver<Vec<u8>>,
    route: RouteGuard,
}

struct RouteGuard {
    shared: Arc<Shared>,
    channel: String,
    id: u64,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        self.shared.leave(&self.channel, self.id);
    }
}

impl std::fmt::Debug for RedisSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSubscription").finish_non_exhaustive()
    }
}

impl RedisSubscription {
    /// The next event's bytes; `None` once the subscription has ended.
    pub(crate) async fn next(&mut self) -> Option<Vec<u8>> {
        self.receiver.recv().await
    }
}

impl Subscriber {
    /// Subscribes to `channel` on the store's subscriber connection, opening it first when
    /// there is none or the one there was has ended. A `SUBSCRIBE` that fails on a
    /// connection already in use (one that died without closing, say) gives that
    /// connection up and is tried once more on a new one.
    pub(crate) async fn subscribe(
        &self,
        store: &RedisStore,
        channel: &str,
    ) -> Result<RedisSubscription> {
        let (shared, fresh) = self.connection(store).await?;
        match subscribe_on(&shared, store, channel).await {
            Err(Attempt::ConnectionLost(_)) if !fresh => {
                let (shared, _) = self.connection(store).await?;
                subscribe_on(&shared, store, channel)
                    .await
                    .map_err(Attempt::into_error)
            }
            other => other.map_err(Attempt::into_error),
        }
    }

    /// Subscribes to `channel`, then unsubscribes it and waits for the answer: the connect
    /// check, so that a user who may subscribe but not unsubscribe is refused at start
    /// rather than leaving a subscription on the server for every watch that ends.
    pub(crate) async fn check(&self, store: &RedisStore, channel: &str) -> Result<()> {
        let subscription = self.subscribe(store, channel).await?;
        let shared = Arc::clone(&subscription.route.shared);
        let mut sink = shared.sink.lock().await;
        let answer =
            tokio::time::timeout(store.options.connect_timeout, sink.unsubscribe(channel)).await;
        drop(sink);
        if matches!(answer, Ok(Err(_))) {
            // Reported here, as the connect error: the repeat that dropping the
            // subscription sends need not warn of it too.
            shared.unsubscribe_warned.store(true, Ordering::SeqCst);
        }
        drop(subscription);
        match answer {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(at_connect(&e, &store.options.redacted_urls())),
            Err(_) => Err(Error::store_unavailable(format!(
                "redis: unsubscribe timed out after {:?}",
                store.options.connect_timeout
            ))),
        }
    }

    /// The connection in use, or a new one (then `true`) when there is none or it ended.
    async fn connection(&self, store: &RedisStore) -> Result<(Arc<Shared>, bool)> {
        let mut current = self.current.lock().await;
        if let Some(shared) = current.as_ref()
            && !shared.closed.load(Ordering::SeqCst)
        {
            return Ok((Arc::clone(shared), false));
        }
        let clients = store.subscriber_clients().await?;
        let shared = Shared::connect(store, clients).await?;
        *current = Some(Arc::clone(&shared));
        Ok((shared, true))
    }
}

/// How one `SUBSCRIBE` ended when it did not succeed.
enum Attempt {
    /// Refused for this channel (the ACL): the connection is fine.
    Refused(Error),
    /// The connection failed, closed or gave no answer: it is given up.
    ConnectionLost(Error),
}

impl Attempt {
    fn into_error(self) -> Error {
        match self {
            Attempt::Refused(e) | Attempt::ConnectionLost(e) => e,
        }
    }
}

/// Adds the route for `channel` on `shared`, then sends its `SUBSCRIBE` and waits for the
/// answer; the connect timeout counts from when the `SUBSCRIBE` is sent, not while it waits
/// its turn behind others.
async fn subscribe_on(
    shared: &Arc<Shared>,
    store: &RedisStore,
    channel: &str,
) -> std::result::Result<RedisSubscription, Attempt> {
    let (receiver, route) = shared.join(channel).map_err(Attempt::ConnectionLost)?;
    let mut sink = shared.sink.lock().await;
    let answer = tokio::time::timeout(store.options.connect_timeout, sink.subscribe(channel)).await;
    drop(sink);
    match answer {
        Ok(Ok(())) => Ok(RedisSubscription { receiver, route }),
        Ok(Err(e)) if e.code() == Some("NOPERM") => Err(Attempt::Refused(at_connect(
            &e,
            &store.options.redacted_urls(),
        ))),
        Ok(Err(e)) => {
            shared.close();
            Err(Attempt::ConnectionLost(during_operation("subscribe", &e)))
        }
        Err(_) => {
            shared.close();
            Err(Attempt::ConnectionLost(Error::store_unavailable(format!(
                "redis: subscribe timed out after {:?}",
                store.options.connect_timeout
            ))))
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if let Some(shared) = self.current.get_mut().take() {
            shared.close();
        }
    }
}

impl Shared {
    /// Opens a pub/sub connection through the first of `clients` that answers, and starts
    /// the task that reads it.
    async fn connect(store: &RedisStore, clients: Vec<Client>) -> Result<Arc<Shared>> {
        let timeout = store.options.connect_timeout;
        let mut last = None;
        for client in clients {
            match tokio::time::timeout(timeout, client.get_async_pubsub()).await {
                Ok(Ok(pubsub)) => {
                    let (sink, stream) = pubsub.split();
                    let stop = Arc::new(Notify::new());
                    let shared = Arc::new(Shared {
                        sink: tokio::sync::Mutex::new(sink),
                        routes: Mutex::new(Routes::default()),
                        closed: AtomicBool::new(false),
                        unsubscribe_warned: AtomicBool::new(false),
                        timeout,
                        stop: Arc::clone(&stop),
                        runtime: tokio::runtime::Handle::current(),
                    });
                    tokio::spawn(read(Arc::downgrade(&shared), stream, stop));
                    return Ok(shared);
                }
                Ok(Err(e)) if e.code() == Some("NOPERM") => {
                    return Err(at_connect(&e, &store.options.redacted_urls()));
                }
                Ok(Err(e)) => last = Some(during_operation("subscribe", &e)),
                Err(_) => {
                    last = Some(Error::store_unavailable(format!(
                        "redis: no subscriber connection within {timeout:?}"
                    )));
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::store_unavailable("redis: no server to subscribe on")))
    }

    fn routes(&self) -> MutexGuard<'_, Routes> {
        // A panic while the lock was held left the map whole (each step is one insert or
        // removal), so a poisoned lock is used as it is.
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a route for `channel`, before its `SUBSCRIBE` is sent.
    fn join(self: &Arc<Self>, channel: &str) -> Result<(mpsc::Receiver<Vec<u8>>, RouteGuard)> {
        let (sender, receiver) = mpsc::channel(ROUTE_CAPACITY);
        let mut routes = self.routes();
        // Checked under the lock `close` takes, so no route joins a closed connection.
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::store_unavailable(
                "redis: the subscriber connection closed",
            ));
        }
        let id = routes.next_id;
        routes.next_id += 1;
        routes
            .channels
            .entry(channel.to_owned())
            .or_default()
            .push(Route { id, sender });
        let guard = RouteGuard {
            shared: Arc::clone(self),
            channel: channel.to_owned(),
            id,
        };
        Ok((receiver, guard))
    }

    /// Removes route `id` of `channel`; unsubscribes the channel if it was the last.
    fn leave(self: &Arc<Self>, channel: &str, id: u64) {
        let mut routes = self.routes();
        let Some(list) = routes.channels.get_mut(channel) else {
            return;
        };
        list.retain(|route| route.id != id);
        if list.is_empty() {
            routes.channels.remove(channel);
            drop(routes);
            self.unsubscribe_later(channel);
        }
    }

    /// Hands `payload` to every route of `channel`. A route whose watch has 64 events
    /// waiting, or is gone, is removed: that watch's subscription ends.
    fn deliver(self: &Arc<Self>, channel: &str, payload: &[u8]) {
        let mut routes = self.routes();
        let Some(list) = routes.channels.get_mut(channel) else {
            return;
        };
        list.retain(|route| route.sender.try_send(payload.to_vec()).is_ok());
        if list.is_empty() {
            routes.channels.remove(channel);
            drop(routes);
            self.unsubscribe_later(channel);
        }
    }

    /// Unsubscribes `channel` on a task of its own, unless a watch has joined it again by
    /// the time the sink is free (that watch's `SUBSCRIBE` then goes out after).
    fn unsubscribe_later(self: &Arc<Self>, channel: &str) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let shared = Arc::clone(self);
        let channel = channel.to_owned();
        // Dropped without running if the runtime is shutting down: the connection closes
        // with it.
        drop(self.runtime.spawn(async move {
            let mut sink = shared.sink.lock().await;
            if shared.routes().channels.contains_key(&channel) {
                return;
            }
            // Under the sink's lock, so a `SUBSCRIBE` of the same channel waits for it. An
            // unsubscribe that fails leaves a channel subscribed that no route follows: its
            // messages are dropped, and it ends with the connection.
            let unsubscribing = sink.unsubscribe(&channel);
            match tokio::time::timeout(shared.timeout, unsubscribing).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => shared.unsubscribe_failed(&e),
                Err(_) => {
                    drop(sink);
                    shared.close();
                }
            }
        }));
    }

    /// Says once per connection that an `UNSUBSCRIBE` was refused (the ACL changed since
    /// connect, say): the channels it leaves subscribed take memory on the server until
    /// the connection ends.
    fn unsubscribe_failed(&self, e: &redis::RedisError) {
        if !self.unsubscribe_warned.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                error = %during_operation("unsubscribe", e),
                "redis: an unsubscribe failed; channels stay subscribed on the server until \
                 this store's subscriber connection ends"
            );
        }
    }

    /// Ends every subscription on this connection and stops using it.
    fn close(&self) {
        let mut routes = self.routes();
        self.closed.store(true, Ordering::SeqCst);
        routes.channels.clear();
        drop(routes);
        self.stop.notify_one();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

/// Reads the connection's messages until it ends or is no longer used, then closes it
/// (also when the task itself is dropped, as at a runtime's shutdown).
async fn read(shared: Weak<Shared>, mut stream: PubSubStream, stop: Arc<Notify>) {
    let _closes = CloseOnDrop(shared.clone());
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            () = stop.notified() => None,
        };
        let Some(message) = message else {
            break;
        };
        let Some(shared) = shared.upgrade() else {
            break;
        };
        shared.deliver(message.get_channel_name(), message.get_payload_bytes());
    }
    if let Some(shared) = shared.upgrade()
        && !shared.closed.load(Ordering::SeqCst)
    {
        tracing::debug!(target: "pci_vault_redis", "the subscriber connection ended");
    }
}

/// Closes the connection's subscriptions when the reading task ends, however it ends.
struct CloseOnDrop(Weak<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.close();
        }
    }
}
