//! The proxy's client connections: each pingora stream runs under the shared request-head
//! guard ([`crate::head_guard`]): the head size limit (`proxy.max_header_bytes`, 431 C014),
//! the head deadline (`proxy.client_timeout`, like nginx's `client_header_timeout`: pingora
//! alone bounds each read of a head, not the whole head, so a client trickling a byte now and
//! then would hold a connection forever) and envelopes for pingora's own rejections.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
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
use tokio::time::Instant;

use crate::head_guard::{HeadGuard, HeadLimits};

/// A client connection of the proxy.
pub type Guarded = HeadGuard<Stream>;

// The rest of pingora's stream interface is the wrapped stream's.

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        self.get_mut().shutdown().await;
    }
}

impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.get_ref().id()
    }
}

impl Ssl for Guarded {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.get_ref().get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.get_ref().get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.get_ref().selected_alpn_proto()
    }
}

impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.get_ref().get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.get_ref().get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.get_ref().get_write_pending_time()
    }
}

impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.get_ref().get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.get_mut().set_proxy_digest(digest);
    }
}

impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.get_ref().get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.get_mut().set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for Guarded {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.get_mut().try_peek(buf).await
    }
}

/// How long a shutdown waits for request heads already on their way (see
/// [`Downstream::cleanup`]).
pub const SHUTDOWN_LINGER: Duration = Duration::from_secs(1);

/// How far the proxy's client connections are in a graceful shutdown: what ends pingora's
/// grace period (see `crate::server`) once nothing is left to wait for, instead of always
/// after its whole length.
#[derive(Default)]
pub struct Drain {
    /// The listener has stopped accepting ([`Downstream::cleanup`] has begun).
    closing: AtomicBool,
    /// When the cleanup ended: the heads on their way were in and idle connections dropped.
    cleaned: OnceLock<std::time::Instant>,
    /// Connections being served.
    live: AtomicUsize,
}

impl Drain {
    /// Whether the shutdown has nothing left to wait for: the cleanup is over, a connection
    /// accepted just before the listener closed has had [`SHUTDOWN_SETTLE`] to start, and
    /// every connection has ended (its last answer written: neither pingora nor the front
    /// keeps one alive once shutting down).
    pub fn drained(&self) -> bool {
        self.cleaned
            .get()
            .is_some_and(|at| at.elapsed() >= SHUTDOWN_SETTLE)
            && self.live.load(Ordering::SeqCst) == 0
    }
}

/// Counts a connection as live while it exists.
struct Live<'a>(&'a AtomicUsize);

impl<'a> Live<'a> {
    fn new(live: &'a AtomicUsize) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Live(live)
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// After the cleanup, how long a shutdown waits at least: pingora spawns a task per
/// accepted connection, and one accepted just before the listener closed may not have
/// started (and so be counted) yet on a busy runtime.
pub const SHUTDOWN_SETTLE: Duration = Duration::from_secs(1);

/// A pingora app whose client connections run under the head guard.
pub struct Downstream<A> {
    pub app: Arc<A>,
    pub limits: HeadLimits,
    drain: Arc<Drain>,
}

impl<A> Downstream<A> {
    /// A pingora app `app` under the head guard's `limits`.
    pub fn new(app: A, limits: HeadLimits) -> Self {
        Downstream {
            app: Arc::new(app),
            limits,
            drain: Arc::default(),
        }
    }

    /// The connections' shutdown state.
    pub fn drain(&self) -> Arc<Drain> {
        self.drain.clone()
    }

    /// Connections waiting for (the rest of) a request head.
    fn awaiting_head(&self) -> usize {
        // SeqCst with the count's increment in `HeadGuard::new` and the `closing` flag: either
        // the cleanup sees a new connection's count, or the connection sees `closing`.
        self.limits.awaiting_head.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Downstream<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _live = Live::new(&self.drain.live);
        let mut guarded = HeadGuard::new(stream, self.limits.clone());
        if self.drain.closing.load(Ordering::SeqCst) {
            // Accepted just before the listener closed, but started only after the cleanup
            // below had looked for connections awaiting a head (a busy runtime runs the
            // cleanup first). pingora drops a connection whose head is not yet in once it has
            // shut down, so wait for the head's first bytes, as the cleanup would have.
            let mut first = [0u8; 1];
            let arrived = tokio::time::timeout(SHUTDOWN_LINGER, guarded.try_peek(&mut first));
            if !matches!(arrived.await, Ok(Ok(true))) {
                return None;
            }
        }
        self.app.process_new(Box::new(guarded), shutdown).await
    }

    /// Runs when the service stops accepting (shutdown or upgrade). The app's cleanup then
    /// ends every connection still waiting for a request head (pingora drops them; the
    /// front's hyper closes those with nothing read yet), so first the heads already on
    /// their way get in, for up to [`SHUTDOWN_LINGER`]: a client that connected just before a
    /// SIGQUIT is served by the old process instead of being reset. Idle kept-alive
    /// connections are not waited for.
    async fn cleanup(&self) {
        self.drain.closing.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + SHUTDOWN_LINGER;
        while self.awaiting_head() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.app.cleanup().await;
        let _ = self.drain.cleaned.set(std::time::Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;
    use pingora::http::ResponseHeader;
    use pingora::proxy::{ProxyHttp, Session};
    use pingora::upstreams::peer::HttpPeer;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A proxy that answers every request with an empty 200 itself.
    struct Answers;

    #[async_trait]
    impl ProxyHttp for Answers {
        type CTX = ();
        fn new_ctx(&self) {}

        async fn upstream_peer(
            &self,
            _: &mut Session,
            _: &mut (),
        ) -> pingora::Result<Box<HttpPeer>> {
            Err(pingora::Error::new(pingora::ErrorType::ConnectRefused))
        }

        async fn request_filter(&self, session: &mut Session, _: &mut ()) -> pingora::Result<bool> {
            let mut head = ResponseHeader::build(200, None)?;
            head.insert_header("content-length", "0")?;
            session.write_response_header(Box::new(head), true).await?;
            Ok(true)
        }
    }

    /// The race CI met during upgrades: the listener accepted a connection, closed, and the
    /// cleanup ran before the connection's task did; the client's head arrives a moment later.
    /// pingora alone drops such a connection unanswered.
    #[tokio::test]
    async fn a_connection_that_starts_after_the_cleanup_is_still_served() {
        let conf = Arc::new(pingora::server::configuration::ServerConf::default());
        let limits = HeadLimits {
            max_bytes: 8192,
            timeout: None,
            awaiting_head: Arc::default(),
            on_slow: None,
        };
        let downstream = Arc::new(Downstream::new(
            pingora::proxy::http_proxy(&conf, Answers),
            limits,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        downstream.cleanup().await;

        let (_tx, shutdown) = tokio::sync::watch::channel(true);
        let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(accepted));
        let serve = downstream.process_new(stream, &shutdown);
        tokio::pin!(serve);
        assert!(
            serve.as_mut().now_or_never().is_none(),
            "the connection was given up before its head came"
        );
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: fastpick\r\n\r\n")
            .await
            .expect("write");
        drop(serve.await);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.expect("read");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
