//! A TCP listener with a connection limit: it takes a permit before it accepts, so past the
//! limit new connections wait in the kernel's queue, holding no file descriptor of the
//! process, until one closes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum_server::{AddrListener, Address};
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// A listener that holds at most `limit` connections open.
#[derive(Debug)]
pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    open: Gauge,
}

impl LimitedListener {
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
        })
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
            },
            PeerAddr(peer),
        ))
    }

    fn get_local_addr(&self) -> io::Result<PeerAddr> {
        self.inner.local_addr().map(PeerAddr)
    }
}

/// A connection holding one permit of its listener's limit until it is dropped.
#[derive(Debug)]
pub struct LimitedStream {
    stream: TcpStream,
    open: Gauge,
    _permit: OwnedSemaphorePermit,
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
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
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
