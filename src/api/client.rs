//! Who is at the other end: the client's address, as the connection says,
//! or as `X-Forwarded-For` says when the connection comes from a proxy the
//! configuration trusts. Rate limits and the audit log key on it.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Addresses or networks, comma-separated (`10.0.0.0/8, 192.168.1.7`).
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{s:?} is not an address or a network"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client behind `peer`: the last address of `X-Forwarded-For` not
    /// added by a trusted proxy, when `peer` is one; `peer` otherwise.
    pub fn client(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(&peer) {
            return Some(peer);
        }
        let hops: Vec<IpAddr> = forwarded_for
            .unwrap_or("")
            .split(',')
            .filter_map(|hop| hop.trim().parse().ok())
            .collect();
        Some(
            hops.iter()
                .rev()
                .find(|ip| !self.trusts(ip))
                .or(hops.first())
                .copied()
                .unwrap_or(peer),
        )
    }
}

/// The client's address for a request (none for a request that came over
/// no socket, as in unit tests).
pub fn address(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    let Some(proxies) = req.app_data::<TrustedProxies>() else {
        return peer;
    };
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    proxies.client(peer, forwarded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7").unwrap();
        let xff = Some("203.0.113.9, 198.51.100.2, 10.1.1.1");
        assert_eq!(
            proxies.client(Some(ip("10.2.3.4")), xff),
            Some(ip("198.51.100.2")),
            "the last hop a trusted proxy did not add"
        );
        assert_eq!(
            proxies.client(Some(ip("203.0.113.50")), xff),
            Some(ip("203.0.113.50")),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            proxies.client(Some(ip("192.168.1.7")), None),
            Some(ip("192.168.1.7")),
            "a proxy that forwards nothing is the client"
        );
        assert_eq!(
            proxies.client(Some(ip("10.0.0.1")), Some("10.0.0.2, 10.0.0.3")),
            Some(ip("10.0.0.2")),
            "all trusted: the first"
        );
        assert_eq!(
            TrustedProxies::default().client(Some(ip("10.0.0.1")), xff),
            Some(ip("10.0.0.1"))
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
    }
}
