//! A TCP listener with a connection limit: it takes a permit before it accepts, so past the
//! limit new connections wait in the kernel's queue, holding no file descriptor of the
//! process, until one closes. And a connection on which no byte moves for the idle limit
//! is closed: an idle HTTP/2 connection or a client that stops reading its answers would
//! otherwise hold its permit for ever.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum_server::{AddrListener, Address};
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The address of a connection accepted by a [`LimitedListener`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl Address for PeerAddr {
    type Stream = LimitedStream;
    type Listener = LimitedListener;
}

impl Connected<PeerAddr> for SocketAddr {
    fn connect_info(peer: PeerAddr) -> Self {
        peer.0
    }
}

/// Binds a listening socket at `addr` whose kernel queue holds `backlog` connections that
/// are not yet accepted (the kernel caps it at `net.core.somaxconn`). The standard
/// library's queue of 128 overflows in a burst of new connections (a load balancer's
/// reconnects, a restart): the kernel then drops handshakes, and those clients wait for
/// their retransmissions, seconds apart.
///
/// # Errors
/// When the socket cannot be created or bound, or listen fails. Needs a tokio runtime.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)?.into_std()
}

/// A listener that holds at most `limit` connections open, and closes one on which nothing
/// is read or written for its idle limit.
#[derive(Debug)]
pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    open: Gauge,
    idle_limit: Duration,
}

impl LimitedListener {
    /// The idle limit of [`LimitedListener::new`]'s connections when nothing says otherwise.
    pub const DEFAULT_IDLE_LIMIT: Duration = Duration::from_secs(60);

    /// Takes over a bound listener; `open` follows the number of open connections.
    ///
    /// # Errors
    /// When the listener cannot be made non-blocking or registered with the runtime.
    pub fn new(listener: std::net::TcpListener, limit: usize, open: Gauge) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(LimitedListener {
            inner: TcpListener::from_std(listener)?,
            permits: Arc::new(Semaphore::new(limit)),
            open,
            idle_limit: Self::DEFAULT_IDLE_LIMIT,
        })
    }

    /// Closes a connection on which no byte is read or written for `limit`.
    pub fn with_idle_limit(mut self, limit: Duration) -> Self {
        self.idle_limit = limit;
        self
    }
}

impl AddrListener<LimitedStream, PeerAddr> for LimitedListener {
    async fn bind_to(addr: PeerAddr) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr.0)?;
        LimitedListener::new(listener, Semaphore::MAX_PERMITS, Gauge::default())
    }

    async fn accept_stream(&self) -> io::Result<(LimitedStream, PeerAddr)> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(io::Error::other)?;
        let (stream, peer) = self.inner.accept().await?;
        // Small answers go out at once rather than waiting for more to send.
        let _ = stream.set_nodelay(true);
        self.open.inc();
        Ok((
            LimitedStream {
                stream,
                open: self.open.clone(),
                _permit: permit,
                idle: Box::pin(tokio::time::sleep(self.idle_limit)),
                idle_limit: self.idle_limit,
                last_moved: Instant::now(),
            },
            PeerAddr(peer),
        ))
    }

    fn get_local_addr(&self) -> io::Result<PeerAddr> {
        self.inner.local_addr().map(PeerAddr)
    }
}

/// A connection holding one permit of its listener's limit until it is dropped. A read or
/// write that waits after `idle_limit` without a byte moving fails with `TimedOut`, which
/// closes the connection.
#[derive(Debug)]
pub struct LimitedStream {
    stream: TcpStream,
    open: Gauge,
    _permit: OwnedSemaphorePermit,
    /// Wakes a waiting read or write no earlier than the idle limit after `last_moved`.
    idle: Pin<Box<Sleep>>,
    idle_limit: Duration,
    last_moved: Instant,
}

impl LimitedStream {
    /// Bytes moved: the idle limit counts from now. Only the time is noted, on every read
    /// and write; the timer catches up when it fires.
    fn moved(&mut self) {
        self.last_moved = Instant::now();
    }

    /// The answer of a read or write that has to wait: `TimedOut` once nothing has moved
    /// for the idle limit.
    fn waiting<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        loop {
            if self.idle.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let deadline = self.last_moved + self.idle_limit;
            if deadline <= Instant::now() {
                return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
            }
            // Bytes moved since the timer was set: it waits again, from then.
            self.idle.as_mut().reset(deadline);
        }
    }

    /// `polled`, with the idle limit applied: bytes moved restart it, a wait checks it.
    fn idle_checked<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
        moved: impl FnOnce(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(Ok(value)) => {
                if moved(&value) {
                    self.moved();
                }
                Poll::Ready(Ok(value))
            }
            Poll::Pending => self.waiting(cx),
            ready => ready,
        }
    }
}

impl Drop for LimitedStream {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        let moved = buf.filled().len() > before;
        this.idle_checked(cx, polled, |()| moved)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.idle_checked(cx, polled, |n| *n > 0)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.idle_checked(cx, polled, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const IDLE: Duration = Duration::from_millis(300);

    async fn pair() -> (LimitedStream, TcpStream) {
        let listener = LimitedListener::new(
            bind("127.0.0.1:0".parse().unwrap(), 8).unwrap(),
            2,
            Gauge::default(),
        )
        .unwrap()
        .with_idle_limit(IDLE);
        let addr = listener.inner.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept_stream().await.unwrap();
        (server, client)
    }

    #[tokio::test]
    async fn a_connection_where_nothing_moves_is_closed_after_the_idle_limit() {
        let (mut server, mut client) = pair().await;
        // Bytes that keep arriving keep it open past the limit ...
        for _ in 0..4 {
            tokio::time::sleep(IDLE / 2).await;
            client.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            server.read_exact(&mut byte).await.unwrap();
        }
        // ... and a read that waits longer than the limit fails.
        let started = Instant::now();
        let mut byte = [0u8; 1];
        let error = server.read(&mut byte).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= IDLE && started.elapsed() < IDLE * 4);
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_its_answers_is_cut_off() {
        let (mut server, _client) = pair().await;
        let chunk = vec![0u8; 64 * 1024];
        let started = Instant::now();
        let error = loop {
            // The client reads nothing: the buffers fill, then the write waits and fails.
            if let Err(error) = server.write(&chunk).await {
                break error;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the write never waited"
            );
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
