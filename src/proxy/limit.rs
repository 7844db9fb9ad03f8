//! An optional per-client-IP rate limit (nginx's `limit_req` without a burst queue): a
//! one-second window per address; requests over the limit get 429.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Requests per second per client address.
pub struct RateLimiter {
    per_second: u32,
    epoch: Instant,
    windows: Mutex<HashMap<IpAddr, (u64, u32)>>,
}

/// Addresses remembered before old windows are dropped.
const MAX_CLIENTS: usize = 100_000;

impl RateLimiter {
    /// A limiter admitting `per_second` requests per address and second.
    pub fn new(per_second: u32) -> Self {
        RateLimiter {
            per_second,
            epoch: Instant::now(),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request from `ip`; false when it is over the limit.
    pub fn admit(&self, ip: IpAddr) -> bool {
        self.admit_at(ip, self.epoch.elapsed().as_secs())
    }

    fn admit_at(&self, ip: IpAddr, second: u64) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > MAX_CLIENTS {
            windows.retain(|_, (s, _)| *s == second);
        }
        let window = windows.entry(ip).or_insert((second, 0));
        if window.0 != second {
            *window = (second, 0);
        }
        window.1 += 1;
        window.1 <= self.per_second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_own_budget_per_second() {
        let limiter = RateLimiter::new(2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        assert!(limiter.admit_at(a, 5));
        assert!(limiter.admit_at(a, 5));
        assert!(!limiter.admit_at(a, 5));
        assert!(limiter.admit_at(b, 5));
        assert!(limiter.admit_at(a, 6));
    }
}
