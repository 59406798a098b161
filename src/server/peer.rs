//! Who is asking: the client address behind trusted proxies, and the optional allow-list.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// What the server knows about a request's connection; set on every request.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The client address a trusted proxy gave in its PROXY protocol header.
    pub proxied: Option<IpAddr>,
}

/// The allow-list and the proxies trusted to name the client.
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    allow: Option<Vec<IpNet>>,
    trusted_proxies: Vec<IpNet>,
    /// With the PROXY protocol the balancer names the client in its header; an
    /// `X-Forwarded-For` can only have been written by the client then, and is never believed.
    proxy_protocol: bool,
}

impl PeerPolicy {
    /// `allow = None` lets everyone through.
    pub fn new(allow: Option<Vec<IpNet>>, trusted_proxies: Vec<IpNet>) -> Self {
        Self {
            allow,
            trusted_proxies,
            proxy_protocol: false,
        }
    }

    /// The same policy behind a balancer that speaks the PROXY protocol: `X-Forwarded-For` is
    /// ignored.
    pub fn with_proxy_protocol(mut self, on: bool) -> Self {
        self.proxy_protocol = on;
        self
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies
            .iter()
            .any(|n| n.contains(&canonical(ip)))
    }

    /// The client: the PROXY header's source, else the TCP peer; then (without the PROXY
    /// protocol), while that hop is a trusted proxy, the next address from the right of
    /// `X-Forwarded-For`. A hop that does not parse (non-ASCII bytes included) stops the walk at
    /// the proxy that passed it on: a line is never skipped whole, so bytes a client wrote
    /// cannot hide the address its proxy appended.
    pub fn client(&self, conn: &ConnInfo, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(conn.proxied.unwrap_or(conn.peer.ip()));
        if self.proxy_protocol || !self.is_trusted_proxy(client) {
            return client;
        }
        let hops: Vec<&[u8]> = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .collect();
        for hop in hops.iter().rev() {
            let hop = std::str::from_utf8(hop).ok().map(str::trim);
            match hop.and_then(parse_hop) {
                Some(ip) => {
                    client = canonical(ip);
                    if !self.is_trusted_proxy(client) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }

    /// Whether the allow-list (if any) lets `ip` in.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow
            .as_ref()
            .is_none_or(|nets| nets.iter().any(|n| n.contains(&canonical(ip))))
    }
}

/// `1.2.3.4`, `1.2.3.4:5`, `2001:db8::1` or `[2001:db8::1]:5`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// IPv4-mapped IPv6 addresses (a dual-stack listener's view of IPv4 peers) as IPv4.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn nets(items: &[&str]) -> Vec<IpNet> {
        items
            .iter()
            .map(|s| s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
            .collect()
    }

    #[test]
    fn client_address() {
        let policy = PeerPolicy::new(None, nets(&["10.0.0.0/8"]));
        let rows: &[(&str, Option<&str>, &[&str], &str)] = &[
            ("192.0.2.1:1", None, &[], "192.0.2.1"),
            // An untrusted peer cannot name another client.
            ("192.0.2.1:1", None, &["198.51.100.7"], "192.0.2.1"),
            ("10.0.0.5:1", None, &[], "10.0.0.5"),
            ("10.0.0.5:1", None, &["198.51.100.7"], "198.51.100.7"),
            // Rightmost untrusted hop; what the client itself wrote further left is ignored.
            (
                "10.0.0.5:1",
                None,
                &["6.6.6.6, 198.51.100.7, 10.0.0.9"],
                "198.51.100.7",
            ),
            (
                "10.0.0.5:1",
                None,
                &["6.6.6.6", "198.51.100.7"],
                "198.51.100.7",
            ),
            ("10.0.0.5:1", None, &["198.51.100.7:4444"], "198.51.100.7"),
            ("10.0.0.5:1", None, &["[2001:db8::7]:4444"], "2001:db8::7"),
            ("10.0.0.5:1", None, &["garbage"], "10.0.0.5"),
            // Found by the hardening review: a client line with non-ASCII bytes was skipped
            // whole, so the address its proxy appended was lost and the client's own
            // (allowed) one believed. Now the walk stops at the bad hop, after the real one.
            (
                "10.0.0.5:1",
                None,
                &["149.96.1.1", "\u{e9}t\u{e9}, 6.6.6.6"],
                "6.6.6.6",
            ),
            (
                "10.0.0.5:1",
                None,
                &["149.96.1.1", "\u{e9}t\u{e9}"],
                "10.0.0.5",
            ),
            ("10.0.0.5:1", Some("198.51.100.9"), &[], "198.51.100.9"),
            (
                "10.0.0.5:1",
                Some("10.0.0.6"),
                &["198.51.100.7"],
                "198.51.100.7",
            ),
            (
                "[::ffff:10.0.0.5]:1",
                None,
                &["198.51.100.7"],
                "198.51.100.7",
            ),
        ];
        for (peer, proxied, xff, want) in rows {
            let mut headers = HeaderMap::new();
            for value in *xff {
                headers.append(
                    "x-forwarded-for",
                    axum::http::HeaderValue::from_bytes(value.as_bytes())
                        .unwrap_or_else(|e| panic!("{e}")),
                );
            }
            let conn = ConnInfo {
                peer: peer.parse().unwrap_or_else(|e| panic!("{peer}: {e}")),
                proxied: proxied.map(ip),
            };
            assert_eq!(
                policy.client(&conn, &headers),
                ip(want),
                "{peer} {proxied:?} {xff:?}"
            );
        }
    }

    #[test]
    fn behind_the_proxy_protocol_x_forwarded_for_is_never_believed() {
        let policy = PeerPolicy::new(None, nets(&["10.0.0.0/8"])).with_proxy_protocol(true);
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            "149.96.1.1".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        for (proxied, want) in [(Some("198.51.100.9"), "198.51.100.9"), (None, "10.0.0.5")] {
            let conn = ConnInfo {
                peer: "10.0.0.5:1".parse().unwrap_or_else(|e| panic!("{e}")),
                proxied: proxied.map(ip),
            };
            assert_eq!(policy.client(&conn, &headers), ip(want));
        }
    }

    #[test]
    fn allow_list() {
        assert!(PeerPolicy::default().allows(ip("203.0.113.1")));
        let policy = PeerPolicy::new(Some(nets(&["149.96.0.0/16", "2001:db8::/32"])), Vec::new());
        assert!(policy.allows(ip("149.96.255.1")));
        assert!(policy.allows(ip("::ffff:149.96.0.1")));
        assert!(policy.allows(ip("2001:db8::1")));
        assert!(!policy.allows(ip("149.97.0.1")));
        assert!(!policy.allows(ip("127.0.0.1")));
    }
}
