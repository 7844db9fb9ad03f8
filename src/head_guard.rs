//! The request-head guard on every client connection of every role (the app's listener, the
//! proxy's downstream side). It follows each HTTP/1 exchange on the raw byte stream and
//!
//! - bounds the size of a request head (request line and headers), as the original's Tomcat
//!   did (`maxHttpHeaderSize`, 8 KB): a larger one is answered 431 C014 and the connection
//!   closed;
//! - optionally bounds the time a head may take to arrive, like nginx's
//!   `client_header_timeout` (from accept, or from the first byte of a later request);
//! - puts the server library's own protocol rejections in the error envelope: hyper and
//!   pingora answer a malformed head (NUL or obs-fold in a header, duplicate Content-Length,
//!   raw bytes in the target, ...) with a bare status and an empty body. Every 4xx that our
//!   own code writes carries the envelope, so a 4xx head with `Content-Length: 0` is the
//!   library's, and it is rewritten as the envelope of that status's code.
//!
//! It also counts the connections waiting for a head, which a shutdown lets in first.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::envelope::{Code, ErrorBody};

/// The limits of one listener.
#[derive(Clone)]
pub struct HeadLimits {
    /// Largest request head accepted, in bytes.
    pub max_bytes: usize,
    /// Time a whole head may take to arrive; `None` leaves it to the server library.
    pub timeout: Option<Duration>,
    /// Connections of this listener waiting for (the rest of) a head.
    pub awaiting_head: Arc<AtomicUsize>,
    /// Called when a head missed its deadline (for a metric).
    pub on_slow: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl HeadLimits {
    /// Limits with a size bound only.
    pub fn size(max_bytes: usize) -> Self {
        HeadLimits {
            max_bytes,
            timeout: None,
            awaiting_head: Arc::default(),
            on_slow: None,
        }
    }
}

/// An axum listener whose connections run under the guard.
pub struct GuardedListener<L> {
    pub inner: L,
    pub limits: HeadLimits,
}

impl<L> axum::serve::Listener for GuardedListener<L>
where
    L: axum::serve::Listener,
    L::Io: Unpin,
{
    type Io = HeadGuard<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.inner.accept().await;
        (HeadGuard::new(io, self.limits.clone()), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Where the connection is in its current exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Receiving a request head: the limits apply.
    Head,
    /// The head is in; body and response are the server library's.
    Exchange,
    /// A response was written; waiting for the next request.
    Idle,
    /// Answered by the guard (or the library's rejection rewritten): nothing more is read,
    /// and anything the library still writes is dropped.
    Closed,
}

/// A client connection under the guard.
pub struct HeadGuard<S> {
    inner: S,
    limits: HeadLimits,
    phase: Phase,
    /// Bytes of the current head seen so far.
    head_bytes: usize,
    /// The last four bytes of the head seen so far, to find its blank line.
    tail: u32,
    timer: Option<Pin<Box<Sleep>>>,
    /// An answer of the guard's own still being written: the bytes left.
    answer: Bytes,
    /// For a rewritten library answer: how many bytes of the library's write it replaces.
    replaces: Option<usize>,
}

impl<S> HeadGuard<S> {
    /// Guards a just-accepted connection; its deadline (if any) starts now.
    pub fn new(inner: S, limits: HeadLimits) -> Self {
        // SeqCst: see the proxy's shutdown (`Downstream::awaiting_head`).
        limits.awaiting_head.fetch_add(1, Ordering::SeqCst);
        let timer = limits.timeout.map(|t| Box::pin(tokio::time::sleep(t)));
        HeadGuard {
            inner,
            limits,
            phase: Phase::Head,
            head_bytes: 0,
            tail: 0,
            timer,
            answer: Bytes::new(),
            replaces: None,
        }
    }

    /// The guarded stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The guarded stream, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Moves to another phase, keeping the count of connections awaiting a head.
    fn enter(&mut self, phase: Phase) {
        match (self.phase == Phase::Head, phase == Phase::Head) {
            (false, true) => self.limits.awaiting_head.fetch_add(1, Ordering::Relaxed),
            (true, false) => self.limits.awaiting_head.fetch_sub(1, Ordering::Relaxed),
            _ => 0,
        };
        self.phase = phase;
    }

    /// Follows the bytes a read returned; `false` when the head grew past the limit.
    fn received(&mut self, bytes: &[u8]) -> bool {
        if self.phase == Phase::Idle {
            self.enter(Phase::Head);
            self.head_bytes = 0;
            self.tail = 0;
            if let (Some(timer), Some(limit)) = (self.timer.as_mut(), self.limits.timeout) {
                timer.as_mut().reset(Instant::now() + limit);
            }
        }
        if self.phase != Phase::Head {
            return true;
        }
        match head_end(&mut self.tail, bytes) {
            Some(used) => {
                self.enter(Phase::Exchange);
                self.head_bytes + used <= self.limits.max_bytes
            }
            None => {
                self.head_bytes += bytes.len();
                self.head_bytes <= self.limits.max_bytes
            }
        }
    }

    /// Answers with an envelope and closes: the bytes are written before anything else.
    fn refuse(&mut self, code: Code) {
        self.answer = envelope_response(code);
        self.enter(Phase::Closed);
    }
}

impl<S> Drop for HeadGuard<S> {
    fn drop(&mut self) {
        if self.phase == Phase::Head {
            self.limits.awaiting_head.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl<S> std::fmt::Debug for HeadGuard<S>
where
    S: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadGuard")
            .field("inner", &self.inner)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

/// Feeds bytes into the running tail; returns how many of them complete the head once its
/// blank line (CRLF CRLF, or bare LF LF, which httparse accepts too) has gone by.
fn head_end(tail: &mut u32, bytes: &[u8]) -> Option<usize> {
    for (i, &b) in bytes.iter().enumerate() {
        *tail = (*tail << 8) | u32::from(b);
        if *tail == u32::from_be_bytes(*b"\r\n\r\n") || *tail & 0xffff == 0x0a0a {
            return Some(i + 1);
        }
    }
    None
}

/// A complete response carrying the envelope of `code`, closing the connection.
fn envelope_response(code: Code) -> Bytes {
    let body = ErrorBody::json(code);
    let status = code.status();
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Bytes::from(out)
}

/// Statuses hyper and pingora answer protocol errors with: malformed head, method not
/// allowed (pingora's CONNECT), body or head too large.
const LIBRARY_REJECTIONS: [u16; 5] = [400, 405, 413, 414, 431];

/// The status of a response head that a server library wrote for its own protocol
/// rejection: one of [`LIBRARY_REJECTIONS`] with `Content-Length: 0`, the whole head in one
/// write.
fn library_rejection(bytes: &[u8]) -> Option<u16> {
    let rest = bytes.strip_prefix(b"HTTP/1.")?;
    let status: u16 = std::str::from_utf8(rest.get(2..5)?).ok()?.parse().ok()?;
    if !LIBRARY_REJECTIONS.contains(&status) {
        return None;
    }
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let empty = head
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .any(|(name, value)| name.trim() == "content-length" && value.trim() == "0");
    empty.then_some(status)
}

impl<S: AsyncWrite + Unpin> HeadGuard<S> {
    /// Writes what is left of the guard's own answer.
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.answer.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.answer))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.answer.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.phase == Phase::Closed {
            // The answer goes out, then the library sees the end of the stream.
            ready!(this.poll_answer(cx))?;
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if !new.is_empty() && !this.received(new) {
                    buf.set_filled(before);
                    this.refuse(Code::C014);
                    ready!(this.poll_answer(cx))?;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let late = this.phase == Phase::Head
                    && this
                        .timer
                        .as_mut()
                        .is_some_and(|t| t.as_mut().poll(cx).is_ready());
                if late {
                    if let Some(on_slow) = &this.limits.on_slow {
                        on_slow();
                    }
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head not complete in time",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(replaced) = this.replaces {
            // The library retries the write we took over until it is done.
            ready!(this.poll_answer(cx))?;
            this.replaces = None;
            return Poll::Ready(Ok(replaced));
        }
        if this.phase == Phase::Closed {
            ready!(this.poll_answer(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        if let Some(status) = library_rejection(buf) {
            this.refuse(Code::for_status(status));
            this.replaces = Some(buf.len());
            ready!(this.poll_answer(cx))?;
            this.replaces = None;
            return Poll::Ready(Ok(buf.len()));
        }
        if this.phase == Phase::Exchange && buf.starts_with(b"HTTP/1.") && buf.get(9) != Some(&b'1')
        {
            // A final response head ends the exchange (1xx heads do not).
            this.enter(Phase::Idle);
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_answer(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_answer(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }

    // Not vectored: every head arrives whole in one `poll_write`, where it can be seen.
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(max_bytes: usize) -> HeadLimits {
        HeadLimits::size(max_bytes)
    }

    #[test]
    fn a_head_ends_at_its_blank_line_even_across_reads() {
        let mut tail = 0;
        assert_eq!(head_end(&mut tail, b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        assert_eq!(head_end(&mut tail, b"\r"), None);
        assert_eq!(head_end(&mut tail, b"\nbody"), Some(1));
        let mut tail = 0;
        assert_eq!(head_end(&mut tail, b"GET / HTTP/1.0\n\n"), Some(16));
    }

    #[test]
    fn only_empty_4xx_heads_are_library_rejections() {
        let canned = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(library_rejection(canned), Some(400));
        let pingora = b"HTTP/1.1 400 Bad Request\r\nServer: Pingora\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(library_rejection(pingora), Some(400));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 93\r\n\r\n{}";
        assert_eq!(library_rejection(ours), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(library_rejection(ok), None);
        let upstream = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            library_rejection(upstream),
            None,
            "an upstream's answer stays"
        );
        let chunked = b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(library_rejection(chunked), None);
    }

    #[tokio::test]
    async fn an_oversized_head_is_answered_431_c014_and_closed() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let mut guarded = HeadGuard::new(server, limits(64));
        let mut client = client;
        client
            .write_all(b"GET /x HTTP/1.1\r\nHost: a\r\nX-Big: 0123456789012345678901234567890123456789\r\n\r\n")
            .await
            .unwrap();
        let mut seen = Vec::new();
        guarded.read_to_end(&mut seen).await.unwrap();
        assert!(
            seen.len() <= 64,
            "the library gets no more than the limit, then the end"
        );
        drop(guarded);
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        assert!(answer.contains("\"code\":\"C014\""), "{answer}");
    }

    #[tokio::test]
    async fn a_head_within_the_limit_passes_and_a_library_rejection_gets_the_envelope() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let awaiting = Arc::new(AtomicUsize::new(0));
        let mut guarded = HeadGuard::new(
            server,
            HeadLimits {
                awaiting_head: awaiting.clone(),
                ..limits(64)
            },
        );
        assert_eq!(awaiting.load(Ordering::Relaxed), 1);
        let mut client = client;
        let request = b"GET / HTTP/1.1\r\nX: \x00\r\n\r\n";
        client.write_all(request).await.unwrap();
        let mut buf = [0u8; 128];
        let n = guarded.read(&mut buf).await.unwrap();
        assert_eq!(n, request.len());
        assert_eq!(awaiting.load(Ordering::Relaxed), 0, "the head is in");
        let canned = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(guarded.write(canned).await.unwrap(), canned.len());
        guarded.shutdown().await.unwrap();
        drop(guarded);
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        assert!(answer.contains("\"code\":\"C001\""), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
    }
}
