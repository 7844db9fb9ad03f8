//! k6's request phases measured on the socket: a connection's stream is wrapped so that its
//! first and last write of a request, its first read of the answer and its bytes are marked.
//! From them come `http_req_sending` (first to last write), `http_req_waiting` (last write to
//! first byte read), `http_req_receiving` (first byte to the answer's end), `data_sent` and
//! `data_received`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One connection's marks, in ns since its epoch plus one (0: not yet in this request).
#[derive(Debug)]
pub struct Marks {
    epoch: Instant,
    first_write: AtomicU64,
    last_write: AtomicU64,
    first_read: AtomicU64,
    written: AtomicU64,
    read: AtomicU64,
}

/// k6's phases of one request, and its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    /// Before the first byte was written: waiting for a connection (connecting included).
    pub blocked: Duration,
    pub sending: Duration,
    pub waiting: Duration,
    pub receiving: Duration,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl Marks {
    pub fn new() -> Arc<Marks> {
        Arc::new(Marks {
            epoch: Instant::now(),
            first_write: AtomicU64::new(0),
            last_write: AtomicU64::new(0),
            first_read: AtomicU64::new(0),
            written: AtomicU64::new(0),
            read: AtomicU64::new(0),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    fn at(&self, mark: u64) -> Option<Instant> {
        (mark != 0).then(|| self.epoch + Duration::from_nanos(mark - 1))
    }

    /// Forgets the previous request's marks; returns the byte counts to subtract.
    pub fn start(&self) -> (u64, u64) {
        self.first_write.store(0, Ordering::Relaxed);
        self.last_write.store(0, Ordering::Relaxed);
        self.first_read.store(0, Ordering::Relaxed);
        (
            self.written.load(Ordering::Relaxed),
            self.read.load(Ordering::Relaxed),
        )
    }

    /// The phases of a request that began at `start` (with `bytes` from [`Marks::start`])
    /// and ended at `end`; None when it wrote nothing.
    pub fn phases(&self, start: Instant, end: Instant, bytes: (u64, u64)) -> Option<Phases> {
        let first_write = self.at(self.first_write.load(Ordering::Relaxed))?;
        let last_write = self.at(self.last_write.load(Ordering::Relaxed))?;
        let first_read = self.at(self.first_read.load(Ordering::Relaxed));
        let (waiting, receiving) = match first_read {
            Some(read) => (
                read.saturating_duration_since(last_write),
                end.saturating_duration_since(read),
            ),
            None => (end.saturating_duration_since(last_write), Duration::ZERO),
        };
        Some(Phases {
            blocked: first_write.saturating_duration_since(start),
            sending: last_write.saturating_duration_since(first_write),
            waiting,
            receiving,
            bytes_sent: self.written.load(Ordering::Relaxed) - bytes.0,
            bytes_received: self.read.load(Ordering::Relaxed) - bytes.1,
        })
    }

    fn wrote(&self, n: usize) {
        if n == 0 {
            return;
        }
        let now = self.now();
        let _ = self
            .first_write
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.last_write.store(now, Ordering::Relaxed);
        self.written.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn got(&self, n: usize) {
        if n == 0 {
            return;
        }
        let now = self.now();
        let _ = self
            .first_read
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.read.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A stream whose reads and writes are marked.
pub struct Clocked<S> {
    inner: S,
    marks: Arc<Marks>,
}

impl<S> Clocked<S> {
    pub fn new(inner: S, marks: Arc<Marks>) -> Self {
        Clocked { inner, marks }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Clocked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.marks.got(buf.filled().len() - before);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Clocked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = polled {
            self.marks.wrote(n);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.marks.wrote(n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn phases_come_from_the_first_and_last_write_and_the_first_read() {
        let (client, mut server) = tokio::io::duplex(64);
        let marks = Marks::new();
        let mut io = Clocked::new(client, marks.clone());
        let bytes = marks.start();
        let start = Instant::now();
        io.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
        io.write_all(b"\r\n").await.expect("write");
        let mut got = [0u8; 18];
        server.read_exact(&mut got).await.expect("read");
        tokio::time::sleep(Duration::from_millis(20)).await;
        server
            .write_all(b"HTTP/1.1 200 OK\r\n")
            .await
            .expect("write");
        let mut answer = [0u8; 17];
        io.read_exact(&mut answer).await.expect("read");
        let p = marks
            .phases(start, Instant::now(), bytes)
            .expect("it wrote");
        assert_eq!((p.bytes_sent, p.bytes_received), (18, 17));
        assert!(p.waiting >= Duration::from_millis(20), "{p:?}");
        assert!(p.sending < Duration::from_millis(20), "{p:?}");
        // The next request starts afresh.
        let bytes = marks.start();
        assert_eq!(bytes, (18, 17));
        assert!(marks.phases(start, Instant::now(), bytes).is_none());
    }
}
