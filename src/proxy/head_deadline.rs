//! A deadline for receiving a request's head, like nginx's `client_header_timeout`.
//!
//! pingora bounds each read of a head (60 s on a new connection), not the whole head, so a
//! client that trickles a byte now and then holds a connection forever. Here every downstream
//! connection's stream is wrapped: from accept, and from the first byte of each later request,
//! the head must be complete within `proxy.client_timeout`, or the connection is closed.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    Stream, TimingDigest, UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::proxy::metrics::ProxyMetrics;

/// Where the connection is in its current exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Receiving a request head: the deadline runs.
    Head,
    /// The head is in; body and response are bounded elsewhere.
    Exchange,
    /// A response was written; the wait for the next request is pingora's keep-alive timeout.
    Idle,
}

/// A downstream stream that fails a read still waiting for a head past the deadline.
pub struct HeadDeadline {
    inner: Stream,
    limit: Duration,
    phase: Phase,
    /// The last four bytes of the head seen so far, to find its blank line.
    tail: u32,
    timer: Pin<Box<Sleep>>,
    metrics: Arc<ProxyMetrics>,
    /// Connections of this service in [`Phase::Head`].
    awaiting_head: Arc<AtomicUsize>,
}

impl HeadDeadline {
    /// Wraps a just-accepted connection; its deadline starts now.
    pub fn new(
        inner: Stream,
        limit: Duration,
        metrics: Arc<ProxyMetrics>,
        awaiting_head: Arc<AtomicUsize>,
    ) -> Self {
        awaiting_head.fetch_add(1, Ordering::Relaxed);
        HeadDeadline {
            inner,
            limit,
            phase: Phase::Head,
            tail: 0,
            timer: Box::pin(tokio::time::sleep(limit)),
            metrics,
            awaiting_head,
        }
    }

    /// Moves to another phase, keeping the count of connections awaiting a head.
    fn enter(&mut self, phase: Phase) {
        match (self.phase == Phase::Head, phase == Phase::Head) {
            (false, true) => self.awaiting_head.fetch_add(1, Ordering::Relaxed),
            (true, false) => self.awaiting_head.fetch_sub(1, Ordering::Relaxed),
            _ => 0,
        };
        self.phase = phase;
    }

    /// Follows the bytes a read returned.
    fn received(&mut self, bytes: &[u8]) {
        if self.phase == Phase::Idle {
            self.enter(Phase::Head);
            self.tail = 0;
            self.timer.as_mut().reset(Instant::now() + self.limit);
        }
        if self.phase == Phase::Head && head_ends(&mut self.tail, bytes) {
            self.enter(Phase::Exchange);
        }
    }

    /// Follows the bytes about to be written: a final response head ends the exchange.
    fn sending(&mut self, bytes: &[u8]) {
        if self.phase == Phase::Exchange
            && bytes.starts_with(b"HTTP/1.")
            && bytes.get(9) != Some(&b'1')
        {
            self.enter(Phase::Idle);
        }
    }
}

impl Drop for HeadDeadline {
    fn drop(&mut self) {
        self.enter(Phase::Idle);
    }
}

impl std::fmt::Debug for HeadDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadDeadline")
            .field("inner", &self.inner)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

/// Feeds bytes into the running tail; true once a head's blank line (CRLF CRLF, or bare
/// LF LF, which httparse accepts too) has gone by.
fn head_ends(tail: &mut u32, bytes: &[u8]) -> bool {
    for &b in bytes {
        *tail = (*tail << 8) | u32::from(b);
        if *tail == u32::from_be_bytes(*b"\r\n\r\n") || *tail & 0xffff == 0x0a0a {
            return true;
        }
    }
    false
}

impl AsyncRead for HeadDeadline {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if !new.is_empty() {
                    this.received(new);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if this.phase == Phase::Head && this.timer.as_mut().poll(cx).is_ready() {
                    this.metrics.slow_client();
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head not complete within proxy.client_timeout",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl AsyncWrite for HeadDeadline {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.sending(buf);
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            this.sending(first);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// The rest of pingora's stream interface is the wrapped stream's.

#[async_trait]
impl Shutdown for HeadDeadline {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for HeadDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadDeadline {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for HeadDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for HeadDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// How long a shutdown waits for request heads already on their way (see
/// [`WithHeadDeadline::cleanup`]).
pub const SHUTDOWN_LINGER: Duration = Duration::from_secs(1);

/// A pingora app whose downstream connections get a [`HeadDeadline`].
pub struct WithHeadDeadline<A> {
    pub app: Arc<A>,
    pub limit: Duration,
    pub metrics: Arc<ProxyMetrics>,
    /// Connections waiting for (the rest of) a request head.
    pub awaiting_head: Arc<AtomicUsize>,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for WithHeadDeadline<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let guarded = HeadDeadline::new(
            stream,
            self.limit,
            self.metrics.clone(),
            self.awaiting_head.clone(),
        );
        self.app.process_new(Box::new(guarded), shutdown).await
    }

    /// Runs when the service stops accepting (shutdown or upgrade). pingora then drops every
    /// connection still waiting for a request head, so first the heads already on their way
    /// get in, for up to [`SHUTDOWN_LINGER`]: a client that connected just before a SIGQUIT
    /// is served by the old process instead of being reset. Idle kept-alive connections are
    /// not waited for.
    async fn cleanup(&self) {
        let deadline = Instant::now() + SHUTDOWN_LINGER;
        while self.awaiting_head.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.app.cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_at_its_blank_line_even_across_reads() {
        let mut tail = 0;
        assert!(!head_ends(&mut tail, b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!head_ends(&mut tail, b"\r"));
        assert!(head_ends(&mut tail, b"\nbody"));
        let mut tail = 0;
        assert!(head_ends(&mut tail, b"GET / HTTP/1.0\n\n"));
        let mut tail = 0;
        assert!(!head_ends(
            &mut tail,
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 1"
        ));
    }
}
