//! Which address a request came from when tenantry runs behind reverse proxies
//! (`TENANTRY_TRUSTED_PROXIES`). Only a peer in the list may say who the client is, through
//! `X-Forwarded-For`; anyone else could write any address there and escape the admin-token
//! throttle, so without the list the header is ignored.
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Comma-separated addresses (`10.0.0.1`, `::1`) or CIDRs (`10.0.0.0/8`); empty means none.
    pub fn parse(v: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => item.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                    format!(
                        "`{}` is not an IP address or CIDR (like 10.0.0.1 or 10.0.0.0/8)",
                        crate::error::clip(item)
                    )
                })?,
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        // A v4 peer on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the peer itself unless it is a trusted proxy; then the right-most
    /// `X-Forwarded-For` entry that is not a trusted proxy (each proxy appends the address it
    /// saw, so entries left of the first untrusted one may be forged). `forwarded` holds the
    /// header's values in the order they arrived.
    pub fn client(&self, peer: IpAddr, forwarded: &[&str]) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let entries = forwarded.iter().flat_map(|v| v.split(',')).rev();
        for entry in entries.map(str::trim) {
            let Some(ip) = parse_entry(entry) else {
                // Garbage: nothing to its left can be believed either.
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_entry(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_cidrs_parse_and_garbage_is_refused() {
        let t = TrustedProxies::parse(" 10.0.0.1, 192.168.0.0/16 ,::1").unwrap();
        assert!(t.trusts(ip("10.0.0.1")) && t.trusts(ip("192.168.3.4")) && t.trusts(ip("::1")));
        assert!(!t.trusts(ip("10.0.0.2")));
        assert!(t.trusts(ip("::ffff:10.0.0.1")), "v4-mapped peers");
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        for bad in ["10.0.0.0/33", "proxy.local", "10.0.0.1/8/8", "1.2.3"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let proxy = ip("10.0.0.1");
        // A client-forged entry on the left is skipped.
        assert_eq!(
            t.client(proxy, &["6.6.6.6, 203.0.113.7"]),
            ip("203.0.113.7")
        );
        // Two proxies: the inner one is trusted too.
        assert_eq!(
            t.client(proxy, &["203.0.113.7, 10.0.0.9"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            t.client(proxy, &["6.6.6.6", "203.0.113.7:4000"]),
            ip("203.0.113.7")
        );
        assert_eq!(t.client(proxy, &["[2001:db8::7]:443"]), ip("2001:db8::7"));
        // No header, or garbage: the last address that could be believed.
        assert_eq!(t.client(proxy, &[]), proxy);
        assert_eq!(t.client(proxy, &["nonsense"]), proxy);
    }

    #[test]
    fn an_untrusted_peer_cannot_name_another_client() {
        let t = TrustedProxies::parse("10.0.0.1").unwrap();
        assert_eq!(t.client(ip("203.0.113.7"), &["1.1.1.1"]), ip("203.0.113.7"));
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("127.0.0.1"), &["1.1.1.1"]), ip("127.0.0.1"));
    }
}
