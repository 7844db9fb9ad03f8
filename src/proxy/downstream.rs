//! The proxy's client connections: each pingora stream runs under the shared request-head
//! guard ([`crate::head_guard`]): the head size limit (`proxy.max_header_bytes`, 431 C014),
//! the head deadline (`proxy.client_timeout`, like nginx's `client_header_timeout`: pingora
//! alone bounds each read of a head, not the whole head, so a client trickling a byte now and
//! then would hold a connection forever) and envelopes for pingora's own rejections.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
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

/// A pingora app whose client connections run under the head guard.
pub struct Downstream<A> {
    pub app: Arc<A>,
    pub limits: HeadLimits,
}

impl<A> Downstream<A> {
    /// Connections waiting for (the rest of) a request head.
    fn awaiting_head(&self) -> usize {
        self.limits.awaiting_head.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Downstream<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let guarded = HeadGuard::new(stream, self.limits.clone());
        self.app.process_new(Box::new(guarded), shutdown).await
    }

    /// Runs when the service stops accepting (shutdown or upgrade). pingora then drops every
    /// connection still waiting for a request head, so first the heads already on their way
    /// get in, for up to [`SHUTDOWN_LINGER`]: a client that connected just before a SIGQUIT
    /// is served by the old process instead of being reset. Idle kept-alive connections are
    /// not waited for.
    async fn cleanup(&self) {
        let deadline = Instant::now() + SHUTDOWN_LINGER;
        while self.awaiting_head() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.app.cleanup().await;
    }
}
