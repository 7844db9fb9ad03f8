//! The `/actuator/` allowlist (nginx's `allow`/`deny all`): client networks by CIDR.

use std::net::IpAddr;

use anyhow::Context;
use ipnet::IpNet;

/// Networks whose clients may reach a protected route.
#[derive(Debug, Clone)]
pub struct AllowList(Vec<IpNet>);

impl AllowList {
    /// Parses CIDRs ("192.168.56.0/24") and single addresses ("127.0.0.1").
    pub fn parse(entries: &[String]) -> anyhow::Result<Self> {
        entries
            .iter()
            .map(|e| {
                let e = e.trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .with_context(|| {
                        format!("proxy.actuator_allow: {e:?} is not an address or CIDR")
                    })
            })
            .collect::<anyhow::Result<_>>()
            .map(AllowList)
    }

    /// Tells whether a client address is allowed (IPv4-mapped IPv6 counts as IPv4).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(&entries.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
            .expect("parses")
    }

    #[test]
    fn cidrs_and_single_addresses() {
        let allow = list(&["127.0.0.1", "192.168.56.0/24", "::1/128"]);
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(allow.allows(ip("127.0.0.1")));
        assert!(!allow.allows(ip("127.0.0.2")));
        assert!(allow.allows(ip("192.168.56.200")));
        assert!(!allow.allows(ip("192.168.57.1")));
        assert!(allow.allows(ip("::1")));
        assert!(allow.allows(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn bad_entries_are_named() {
        let err = AllowList::parse(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
    }
}
