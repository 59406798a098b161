//! Who may hold a connection slot: the allow-list applied at accept time, and a cap on the
//! connections one client address may hold, so that neither an excluded host nor a single
//! allowed one can take the slots the poller needs.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use crate::server::peer::{canonical, PeerPolicy};

/// Why a connection was closed at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client is outside `[server] allow`.
    NotAllowed,
    /// The client already holds `max_connections_per_client` connections.
    PerClient,
}

impl Refusal {
    /// The `reason` label of `ccs_connections_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NotAllowed => "not_allowed",
            Refusal::PerClient => "max_connections_per_client",
        }
    }
}

/// What a connection is counted under: an IPv4 address, or the /64 of an IPv6 one (a single
/// host is usually given a whole /64).
fn client_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(Ipv6Addr::from(segments))
        }
        v4 => v4,
    }
}

/// The open connections of each client address.
pub struct Admission {
    per_client: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection counted against its client until dropped.
pub struct ClientSlot {
    key: Option<IpAddr>,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&key);
                }
            }
        }
    }
}

impl Admission {
    /// At most `per_client` connections per client address.
    pub fn new(per_client: usize) -> Self {
        Self {
            per_client,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Admits a connection from `client` (the TCP peer, or the address a PROXY header named),
    /// or says why not. A trusted proxy is neither judged by the allow-list here (the client it
    /// names in `X-Forwarded-For` is, per request) nor capped per address (it carries many
    /// clients); the global cap still holds it.
    pub fn admit(&self, policy: &PeerPolicy, client: IpAddr) -> Result<ClientSlot, Refusal> {
        if policy.is_trusted_proxy(client) {
            return Ok(ClientSlot {
                key: None,
                open: Arc::clone(&self.open),
            });
        }
        if !policy.allows(client) {
            return Err(Refusal::NotAllowed);
        }
        let key = client_key(client);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.per_client {
            return Err(Refusal::PerClient);
        }
        *n += 1;
        Ok(ClientSlot {
            key: Some(key),
            open: Arc::clone(&self.open),
        })
    }

    /// How many client addresses hold a connection now.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn caps_each_client_and_frees_slots_on_drop() {
        let admission = Admission::new(2);
        let policy = PeerPolicy::default();
        let a1 = admission.admit(&policy, ip("192.0.2.1"));
        let a2 = admission.admit(&policy, ip("::ffff:192.0.2.1"));
        assert!(a1.is_ok() && a2.is_ok());
        assert_eq!(
            admission.admit(&policy, ip("192.0.2.1")).err(),
            Some(Refusal::PerClient)
        );
        // Another host is not affected.
        assert!(admission.admit(&policy, ip("192.0.2.2")).is_ok());
        drop(a1);
        assert!(admission.admit(&policy, ip("192.0.2.1")).is_ok());
        drop(a2);
        assert_eq!(admission.clients(), 0, "entries are removed at zero");
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64() {
        let admission = Admission::new(1);
        let policy = PeerPolicy::default();
        let _held = admission.admit(&policy, ip("2001:db8:1:2::1"));
        assert_eq!(
            admission.admit(&policy, ip("2001:db8:1:2:ffff::9")).err(),
            Some(Refusal::PerClient)
        );
        assert!(admission.admit(&policy, ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn the_allow_list_applies_and_trusted_proxies_are_not_capped() {
        let nets = |v: &[&str]| -> Vec<ipnet::IpNet> {
            v.iter()
                .map(|s| s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
                .collect()
        };
        let policy = PeerPolicy::new(Some(nets(&["149.96.0.0/16"])), nets(&["10.0.0.0/8"]));
        let admission = Admission::new(1);
        assert_eq!(
            admission.admit(&policy, ip("203.0.113.9")).err(),
            Some(Refusal::NotAllowed)
        );
        let _a = admission.admit(&policy, ip("149.96.1.1"));
        assert!(admission.admit(&policy, ip("149.96.1.1")).is_err());
        let proxies: Vec<_> = (0..5)
            .map(|_| admission.admit(&policy, ip("10.1.2.3")))
            .collect();
        assert!(proxies.iter().all(Result::is_ok));
    }
}
