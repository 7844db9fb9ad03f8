//! The proxy role on pingora: the original's nginx. `/api/` goes to the app upstreams,
//! `/actuator/` too for allowlisted clients, everything else is the embedded storefront.
//! Two fronts serve the client connections of pingora's listening service: pingora's own
//! HTTP proxy (`handler`) for remote apps, and hyper handing requests to the app's router
//! (`front`) for the app in this process; both decide as `policy` says. How the proxy joins
//! a process (signals, upgrade, the in-process app) is `crate::server`'s.

pub mod allow;
pub mod downstream;
pub mod front;
pub mod handler;
pub mod limit;
pub mod metrics;
pub mod policy;
pub mod upstream;

use std::sync::Arc;

use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;

use crate::config::ProxyConfig;
use crate::head_guard::HeadLimits;
use crate::proxy::downstream::{Downstream, Drain};
use crate::proxy::front::Front;
use crate::proxy::policy::Proxy;
use crate::proxy::upstream::{Pool, Remote};

/// The write buffer of a client connection: a search page (about 2.4 KB) and its head fit.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// The proxy's listening service for remote apps, as pingora runs it.
pub type ProxyService = Service<Downstream<pingora::proxy::HttpProxy<Proxy>>>;

/// The proxy's listening service in front of the app in this process.
pub type FrontService = Service<Downstream<Front>>;

/// Builds the proxy's listening service on `proxy.listen`, sending `/api/` to the `remote`
/// app instances, and the state of its connections for a graceful shutdown.
pub fn service(
    server: &Arc<ServerConf>,
    cfg: &ProxyConfig,
    remote: Remote,
) -> anyhow::Result<(ProxyService, Arc<Drain>)> {
    let proxy = proxy(cfg, Pool::Remote(remote))?;
    let limits = limits(cfg, &proxy);
    let app = Downstream::new(pingora::proxy::http_proxy(server, proxy), limits);
    // Writes get a buffer that holds a whole API answer: pingora's default (1,460 bytes,
    // one segment) sent a 2.4 KB search page as two sends, head then body, and the client
    // woke twice. Chunked answers are flushed after each chunk; an answer with a length is
    // held until it ends or fills the buffer, as before at 1,460.
    Ok(listening(cfg, app, WRITE_BUFFER_BYTES))
}

/// Builds the proxy's listening service on `proxy.listen` in front of the app in this
/// process ([`Front::set`] hands its router over), and the state of its connections.
pub fn front(cfg: &ProxyConfig) -> anyhow::Result<(FrontService, Arc<Drain>, Arc<Front>)> {
    let proxy = proxy(cfg, Pool::InProcess)?;
    let limits = limits(cfg, &proxy);
    let app = Downstream::new(Front::new(proxy), limits);
    let front = app.app.clone();
    // hyper gathers each answer into one write of its own.
    let (service, drain) = listening(cfg, app, 0);
    Ok((service, drain, front))
}

/// The proxy's settings, metrics and helpers, sending `/api/` to `pool`.
fn proxy(cfg: &ProxyConfig, pool: Pool) -> anyhow::Result<Proxy> {
    Ok(Proxy {
        allow: allow::AllowList::parse(&cfg.actuator_allow)?,
        site: crate::web::Site::load("storefront"),
        metrics: Arc::new(metrics::ProxyMetrics::new()),
        limiter: (cfg.issue_rate_limit > 0).then(|| limit::RateLimiter::new(cfg.issue_rate_limit)),
        pool: Arc::new(pool),
        cfg: cfg.clone(),
    })
}

/// The head guard's limits for the client connections of `proxy`.
fn limits(cfg: &ProxyConfig, proxy: &Proxy) -> HeadLimits {
    let slow_heads = proxy.metrics.clone();
    HeadLimits {
        max_bytes: cfg.max_header_bytes,
        timeout: Some(cfg.client_timeout),
        awaiting_head: Arc::default(),
        on_slow: Some(Arc::new(move || slow_heads.slow_client())),
    }
}

/// The listening service of `app` on `proxy.listen`, with `write_buffer` bytes of write
/// buffer per connection.
fn listening<A>(
    cfg: &ProxyConfig,
    app: Downstream<A>,
    write_buffer: usize,
) -> (Service<Downstream<A>>, Arc<Drain>) {
    let drain = app.drain();
    let mut service = Service::new("proxy".to_owned(), app);
    // Unbuffered reads: pingora's default is a 64 KiB buffer per client connection, zeroed
    // and so resident (4 MiB at 64 connections); request heads are read into their own
    // buffer either way.
    let buffers = pingora::listeners::L4BufferSettings {
        read: Some(0),
        write: Some(write_buffer),
    };
    service.add_listener(
        pingora::listeners::ListenerConfig::tcp(cfg.listen.to_string()).l4_buffer(buffers),
    );
    (service, drain)
}
