//! Where a webhook may point: never at loopback, private, link-local, unique-local or
//! unspecified addresses (the instance's own services, a cloud's metadata endpoint), unless
//! `TENANTRY_WEBHOOK_ALLOW_PRIVATE=true`. Checked when an endpoint is created or its URL
//! changed, and again at every delivery: by the resolver the delivery client connects
//! through, so a name that is re-pointed after the check is refused too.
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let s0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s0 & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s0 & 0xfe00) == 0xfc00 // unique-local fc00::/7
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.octets()[0] == 0
}

/// Resolves `host` (blocking) and refuses it when any address it has is forbidden.
pub fn resolve_checked(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|_| format!("the host {host} does not resolve"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("the host {host} does not resolve"));
    }
    if !allow_private {
        if let Some(a) = addrs.iter().find(|a| forbidden(a.ip())) {
            return Err(format!(
                "the host {host} resolves to {}, a private or local address (see TENANTRY_WEBHOOK_ALLOW_PRIVATE)",
                a.ip()
            ));
        }
    }
    Ok(addrs)
}

/// Checks a URL whose host is an IP address, at once: the client's resolver never sees those.
/// A name is checked by `Resolver` on every connection the client opens to it.
pub fn check_address(url: &reqwest::Url, allow_private: bool) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default();
    let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    else {
        return Ok(());
    };
    if !allow_private && forbidden(ip) {
        return Err(format!(
            "the host {ip} is a private or local address (see TENANTRY_WEBHOOK_ALLOW_PRIVATE)"
        ));
    }
    Ok(())
}

/// Checks a URL's host off the async workers.
pub async fn check_url(url: &reqwest::Url, allow_private: bool) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    tokio::task::spawn_blocking(move || resolve_checked(&host, port, allow_private).map(drop))
        .await
        .map_err(|e| e.to_string())?
}

/// The delivery client's resolver: the same check on every connection it opens.
pub struct Resolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = tokio::task::spawn_blocking(move || resolve_checked(&host, 0, allow))
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e.into() })?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_private_addresses_are_forbidden() {
        for a in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
        ] {
            assert!(forbidden(a.parse().unwrap()), "{a}");
        }
        for a in ["93.184.216.34", "172.32.0.1", "2606:4700::1111", "8.8.8.8"] {
            assert!(!forbidden(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn ip_literals_are_checked_without_a_lookup() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        for bad in ["http://127.0.0.1:9/", "http://[::1]/", "http://10.0.0.1/"] {
            assert!(check_address(&url(bad), false).is_err(), "{bad}");
            assert!(check_address(&url(bad), true).is_ok(), "{bad}");
        }
        // Names are the resolver's to check, on every connection.
        assert!(check_address(&url("http://localhost/"), false).is_ok());
        assert!(check_address(&url("http://93.184.216.34/"), false).is_ok());
    }

    #[test]
    fn names_resolving_to_loopback_are_refused() {
        assert!(resolve_checked("localhost", 80, false).is_err());
        assert!(resolve_checked("localhost", 80, true).is_ok());
        assert!(resolve_checked("[::1]", 80, false).is_err());
    }
}
