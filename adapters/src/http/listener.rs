//! A TCP listener that holds at most `connections_max` connections, and
//! speaks TLS on them when configured.
//!
//! Why a ceiling: keep-alive connections and SSE streams each hold a socket
//! and a task; without a ceiling, a flood of idle connections exhausts file
//! descriptors and memory before any rate limit sees a request. Past the
//! limit, accepting waits (the kernel's backlog queues, then refuses).
//!
//! Why the TLS handshake happens inside the stream and not in `accept`:
//! the accept loop is shared by every client, so a slow or silent client
//! would hold all others back for the length of its handshake. The
//! handshake instead runs on the connection's own task, driven by its first
//! read or write; a failed handshake ends only that connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

/// The bounded listener.
pub(crate) struct BoundedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    tls: Option<TlsAcceptor>,
}

impl BoundedListener {
    pub(crate) fn new(
        inner: TcpListener,
        connections_max: usize,
        tls: Option<TlsAcceptor>,
    ) -> BoundedListener {
        BoundedListener {
            inner,
            permits: Arc::new(Semaphore::new(connections_max.max(1))),
            tls,
        }
    }
}

/// What a connection carries: plain TCP, or TLS before and after its
/// handshake.
enum Io {
    Plain(TcpStream),
    Handshaking(Box<tokio_rustls::Accept<TcpStream>>),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// The handshake failed; every later call reports this.
    Failed(io::ErrorKind),
}

/// A connection holding its permit.
pub(crate) struct BoundedStream {
    io: Io,
    _permit: OwnedSemaphorePermit,
}

impl BoundedStream {
    /// Disables Nagle's algorithm (small responses go out at once).
    pub(crate) fn set_nodelay(&self) {
        let tcp = match &self.io {
            Io::Plain(s) => Some(s),
            Io::Handshaking(a) => a.as_ref().get_ref(),
            Io::Tls(s) => Some(s.get_ref().0),
            Io::Failed(_) => None,
        };
        if let Some(s) = tcp {
            let _ = s.set_nodelay(true);
        }
    }

    /// Drives the handshake; `Ready(Ok)` once the stream can carry data.
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.io {
                Io::Plain(_) | Io::Tls(_) => return Poll::Ready(Ok(())),
                Io::Failed(kind) => {
                    return Poll::Ready(Err(io::Error::new(*kind, "tls handshake failed")));
                }
                Io::Handshaking(accept) => match Pin::new(accept.as_mut()).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(tls)) => self.io = Io::Tls(Box::new(tls)),
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(error = %e, "https handshake failed");
                        self.io = Io::Failed(e.kind());
                        return Poll::Ready(Err(e));
                    }
                },
            }
        }
    }
}

impl Listener for BoundedListener {
    type Io = BoundedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                // The semaphore is never closed; keep serving regardless.
                continue;
            };
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let io = match &self.tls {
                        Some(acceptor) => Io::Handshaking(Box::new(acceptor.accept(stream))),
                        None => Io::Plain(stream),
                    };
                    return (
                        BoundedStream {
                            io,
                            _permit: permit,
                        },
                        addr,
                    );
                }
                Err(e) => {
                    // Out of descriptors and the like: back off briefly
                    // instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Runs `$call` on the connected stream once the handshake is done.
macro_rules! connected {
    ($self:ident, $cx:ident, |$s:ident| $call:expr) => {{
        let this = $self.get_mut();
        match this.poll_handshake($cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        match &mut this.io {
            Io::Plain($s) => {
                let $s = Pin::new($s);
                $call
            }
            Io::Tls(tls) => {
                let $s = Pin::new(tls.as_mut());
                $call
            }
            Io::Handshaking(_) | Io::Failed(_) => {
                Poll::Ready(Err(io::Error::from(io::ErrorKind::NotConnected)))
            }
        }
    }};
}

impl AsyncRead for BoundedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        connected!(self, cx, |s| s.poll_read(cx, buf))
    }
}

impl AsyncWrite for BoundedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        connected!(self, cx, |s| s.poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        connected!(self, cx, |s| s.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        connected!(self, cx, |s| s.poll_shutdown(cx))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        connected!(self, cx, |s| s.poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
            Io::Handshaking(_) | Io::Failed(_) => false,
        }
    }
}
