//! The proxy role on pingora: the original's nginx. `/api/` goes to the app upstreams,
//! `/actuator/` too for allowlisted clients, everything else is the embedded storefront.
//! How the proxy joins a process (signals, upgrade, the in-process app) is `crate::server`'s.

pub mod allow;
pub mod downstream;
pub mod handler;
pub mod hop;
pub mod limit;
pub mod metrics;
pub mod upstream;

use std::sync::Arc;

use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;

use crate::config::ProxyConfig;
use crate::head_guard::HeadLimits;
use crate::proxy::downstream::{Downstream, Drain};
use crate::proxy::handler::Proxy;
use crate::proxy::upstream::Pool;

/// The write buffer of a client connection: a search page (about 2.4 KB) and its head fit.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// The proxy's listening service, as pingora runs it.
pub type ProxyService = Service<Downstream<pingora::proxy::HttpProxy<Proxy>>>;

/// Builds the proxy's listening service on `proxy.listen`, sending `/api/` to `pool`, and
/// the state of its connections for a graceful shutdown.
pub fn service(
    server: &Arc<ServerConf>,
    cfg: &ProxyConfig,
    pool: Pool,
) -> anyhow::Result<(ProxyService, Arc<Drain>)> {
    let metrics = Arc::new(metrics::ProxyMetrics::new());
    let proxy = Proxy {
        allow: allow::AllowList::parse(&cfg.actuator_allow)?,
        site: crate::web::Site::load("storefront"),
        metrics: metrics.clone(),
        limiter: (cfg.issue_rate_limit > 0).then(|| limit::RateLimiter::new(cfg.issue_rate_limit)),
        pool: Arc::new(pool),
        cfg: cfg.clone(),
    };
    let slow_heads = metrics.clone();
    let app = Downstream::new(
        pingora::proxy::http_proxy(server, proxy),
        HeadLimits {
            max_bytes: cfg.max_header_bytes,
            timeout: Some(cfg.client_timeout),
            awaiting_head: Arc::default(),
            on_slow: Some(Arc::new(move || slow_heads.slow_client())),
        },
    );
    let drain = app.drain();
    let mut service = Service::new("proxy".to_owned(), app);
    // Unbuffered reads: pingora's default is a 64 KiB buffer per client connection, zeroed
    // and so resident (4 MiB at 64 connections); request heads are read into their own
    // buffer either way. Writes get a buffer that holds a whole API answer: pingora's
    // default (1,460 bytes, one segment) sent a 2.4 KB search page as two sends, head
    // then body, and the client woke twice. Chunked answers are flushed after each chunk;
    // an answer with a length is held until it ends or fills the buffer, as before at 1,460.
    let buffers = pingora::listeners::L4BufferSettings {
        read: Some(0),
        write: Some(WRITE_BUFFER_BYTES),
    };
    service.add_listener(
        pingora::listeners::ListenerConfig::tcp(cfg.listen.to_string()).l4_buffer(buffers),
    );
    Ok((service, drain))
}
