//! The app upstreams: round-robin or least-connections over the healthy ones. Health is
//! active (GET /actuator/health/ping every `proxy.health_check_interval`, by pingora's load
//! balancer in the background) and passive (an upstream that refuses or times out a
//! connection is skipped for `proxy.eject_for`). With the app in the same process there is
//! no socket: `crate::proxy::front` hands requests to the app's router.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, LoadBalancer};
use pingora::upstreams::peer::HttpPeer;

use crate::config::{Balance, ProxyConfig};

/// Where `/api/` goes.
pub enum Pool {
    /// The app in this process, reached without a socket.
    InProcess,
    /// App instances over TCP.
    Remote(Remote),
}

/// Per-upstream counters of the passive side.
#[derive(Default)]
struct Passive {
    /// Requests in flight (least-connections).
    active: AtomicUsize,
    /// Skipped until this many ms after `epoch` (0: not ejected).
    ejected_until_ms: AtomicU64,
}

/// TCP upstreams with their health.
pub struct Remote {
    lb: Arc<LoadBalancer<RoundRobin>>,
    passive: HashMap<SocketAddr, Passive>,
    balance: Balance,
    eject_for: Duration,
    epoch: Instant,
    turn: AtomicUsize,
}

/// The upstream a request was sent to, released when the request ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picked {
    InProcess,
    Remote(SocketAddr),
}

impl Remote {
    /// Builds pingora's balancer over `proxy.upstreams` with its active health check; it
    /// checks once it runs as a background service.
    pub fn balancer(cfg: &ProxyConfig) -> anyhow::Result<LoadBalancer<RoundRobin>> {
        let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(upstream_addrs(cfg)?)
            .context("proxy.upstreams")?;
        let mut hc = HttpHealthCheck::new("localhost", false);
        hc.req.set_raw_path(b"/actuator/health/ping").ok();
        hc.peer_template.options.connection_timeout = Some(cfg.connect_timeout);
        hc.peer_template.options.read_timeout = Some(Duration::from_secs(1));
        hc.consecutive_failure = 1;
        hc.consecutive_success = 1;
        lb.set_health_check(Box::new(hc));
        lb.health_check_frequency = Some(cfg.health_check_interval);
        lb.parallel_health_check = true;
        Ok(lb)
    }

    /// Adds the passive side to a balancer made by [`Remote::balancer`].
    pub fn new(cfg: &ProxyConfig, lb: Arc<LoadBalancer<RoundRobin>>) -> Self {
        let passive = lb
            .backends()
            .get_backend()
            .iter()
            .filter_map(|b| b.as_inet().copied())
            .map(|a| (a, Passive::default()))
            .collect();
        Remote {
            lb,
            passive,
            balance: cfg.balance,
            eject_for: cfg.eject_for,
            epoch: Instant::now(),
            turn: AtomicUsize::new(0),
        }
    }

    /// Tells whether the passive side currently skips this upstream.
    fn ejected(&self, addr: &SocketAddr) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.passive
            .get(addr)
            .is_some_and(|p| p.ejected_until_ms.load(Ordering::Relaxed) > now)
    }

    fn usable(&self, b: &Backend, healthy: bool, tried: &[SocketAddr]) -> bool {
        b.as_inet()
            .is_some_and(|a| healthy && !self.ejected(a) && !tried.contains(a))
    }

    /// Picks an upstream not yet tried for this request: a healthy one when there is any,
    /// otherwise any (as nginx does when every server is marked down).
    pub fn pick(&self, tried: &[SocketAddr]) -> Option<SocketAddr> {
        let choice = match self.balance {
            Balance::RoundRobin => self
                .lb
                .select_with(b"", 256, |b, healthy| self.usable(b, healthy, tried))
                .and_then(|b| b.as_inet().copied()),
            Balance::LeastConn => {
                let backends = self.lb.backends().get_backend();
                let start = self.turn.fetch_add(1, Ordering::Relaxed);
                let candidates: Vec<SocketAddr> = backends
                    .iter()
                    .filter(|b| self.usable(b, self.lb.backends().ready(b), tried))
                    .filter_map(|b| b.as_inet().copied())
                    .collect();
                let n = candidates.len().max(1);
                // Ties go round-robin, so equal loads still spread.
                (0..candidates.len())
                    .map(|i| candidates[(start + i) % n])
                    .min_by_key(|a| {
                        self.passive
                            .get(a)
                            .map_or(0, |p| p.active.load(Ordering::Relaxed))
                    })
            }
        };
        choice.or_else(|| self.passive.keys().find(|a| !tried.contains(a)).copied())
    }

    /// How many upstreams are configured.
    pub fn count(&self) -> usize {
        self.passive.len()
    }

    /// Counts a request in flight on `addr`.
    pub fn begin(&self, addr: SocketAddr) {
        if let Some(p) = self.passive.get(&addr) {
            p.active.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Ends a request on `addr`.
    pub fn end(&self, addr: SocketAddr) {
        if let Some(p) = self.passive.get(&addr) {
            p.active.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Skips `addr` for `proxy.eject_for` after a failed connection.
    pub fn eject(&self, addr: SocketAddr) {
        if let Some(p) = self.passive.get(&addr) {
            let until = (self.epoch.elapsed() + self.eject_for).as_millis() as u64;
            p.ejected_until_ms.store(until, Ordering::Relaxed);
            tracing::warn!(upstream = %addr, eject_for = ?self.eject_for, "proxy: upstream failed a connection; skipping it");
        }
    }

    /// Each upstream with whether it is in use now (healthy and not ejected).
    pub fn health(&self) -> Vec<(SocketAddr, bool)> {
        let backends = self.lb.backends().get_backend();
        backends
            .iter()
            .filter_map(|b| {
                let addr = *b.as_inet()?;
                Some((addr, self.lb.backends().ready(b) && !self.ejected(&addr)))
            })
            .collect()
    }

    /// Requests in flight per upstream.
    pub fn in_flight(&self) -> Vec<(SocketAddr, usize)> {
        self.passive
            .iter()
            .map(|(a, p)| (*a, p.active.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Parses `proxy.upstreams`.
fn upstream_addrs(cfg: &ProxyConfig) -> anyhow::Result<Vec<SocketAddr>> {
    cfg.upstreams
        .iter()
        .map(|u| {
            u.parse::<SocketAddr>()
                .with_context(|| format!("proxy.upstreams: {u:?} is not an ip:port"))
        })
        .collect()
}

/// Makes the peer for an upstream with the configured timeouts.
pub fn peer(cfg: &ProxyConfig, addr: SocketAddr) -> Box<HttpPeer> {
    let mut peer = HttpPeer::new(addr, false, String::new());
    peer.options.connection_timeout = Some(cfg.connect_timeout);
    peer.options.read_timeout = Some(cfg.read_timeout);
    peer.options.write_timeout = Some(cfg.write_timeout);
    peer.options.idle_timeout = Some(cfg.keepalive_timeout);
    Box::new(peer)
}
