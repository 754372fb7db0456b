//! Sets of networks (CIDR) with fast "does any member contain this address" look-ups.
//!
//! A look-up masks the address once per prefix length in use and probes a hash set, so it
//! costs one hash probe per distinct prefix length (usually 1-3), whatever the set's size.
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::fasthash::FastSet;

/// Normalise an address: IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is treated as the IPv4 address,
/// so a v4 rule matches a v4 peer seen on a dual-stack socket.
#[inline]
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// The network of `ip` with prefix length `len` (clamped to the family's maximum).
#[inline]
pub(crate) fn net_of(ip: IpAddr, len: u8) -> IpNet {
    match ip {
        IpAddr::V4(a) => {
            let len = len.min(32);
            IpNet::V4(Ipv4Net::new(a, len).expect("len <= 32").trunc())
        }
        IpAddr::V6(a) => {
            let len = len.min(128);
            IpNet::V6(Ipv6Net::new(a, len).expect("len <= 128").trunc())
        }
    }
}

/// A set of networks.
#[derive(Debug, Clone, Default)]
pub struct NetSet {
    nets: FastSet<IpNet>,
    v4_lens: Vec<u8>,
    v6_lens: Vec<u8>,
}

impl PartialEq for NetSet {
    fn eq(&self, other: &Self) -> bool {
        self.nets == other.nets
    }
}
impl Eq for NetSet {}

impl NetSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a network (host bits are cleared). Returns false if it was present.
    pub fn insert(&mut self, net: IpNet) -> bool {
        let net = net.trunc();
        let lens = match net {
            IpNet::V4(_) => &mut self.v4_lens,
            IpNet::V6(_) => &mut self.v6_lens,
        };
        if !lens.contains(&net.prefix_len()) {
            lens.push(net.prefix_len());
            // Most specific first: a look-up finds the narrowest match first.
            lens.sort_unstable_by(|a, b| b.cmp(a));
        }
        self.nets.insert(net)
    }

    /// Remove a network (exact member, host bits cleared). Returns false if absent. The
    /// prefix length stays in the look-up list (one more probe at most until the next insert
    /// of that length would have added it anyway).
    pub fn remove(&mut self, net: IpNet) -> bool {
        self.nets.remove(&net.trunc())
    }

    /// Number of networks.
    pub fn len(&self) -> usize {
        self.nets.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The most specific member containing `ip`, if any.
    #[inline]
    pub fn find(&self, ip: IpAddr) -> Option<IpNet> {
        if self.nets.is_empty() {
            return None;
        }
        let ip = canonical(ip);
        let lens = match ip {
            IpAddr::V4(_) => &self.v4_lens,
            IpAddr::V6(_) => &self.v6_lens,
        };
        lens.iter().map(|&len| net_of(ip, len)).find(|n| self.nets.contains(n))
    }

    /// True if some member contains `ip`.
    #[inline]
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        self.find(ip).is_some()
    }

    /// True if some member overlaps `net` (contains it or lies inside it).
    pub fn overlaps(&self, net: IpNet) -> bool {
        self.contains_ip(net.network()) || self.nets.iter().any(|m| net.contains(m))
    }

    /// A member overlapping `net`: the most specific one containing it, else any member
    /// inside it (the smallest in address order, so the answer does not depend on hashing).
    pub fn first_overlapping(&self, net: IpNet) -> Option<IpNet> {
        if self.nets.is_empty() {
            return None;
        }
        let net = net.trunc();
        let containing = self.find(net.network()).filter(|m| m.contains(&net));
        if containing.is_some() || net.prefix_len() == net.max_prefix_len() {
            // A single address has nothing inside it but itself, which `find` saw: no scan.
            return containing;
        }
        self.nets.iter().filter(|m| net.contains(*m)).min().copied()
    }

    /// Every member, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &IpNet> + '_ {
        self.nets.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn matches_by_prefix_v4_and_v6() {
        let mut s = NetSet::new();
        s.insert(n("103.55.116.0/24"));
        s.insert(n("198.51.100.7/32"));
        s.insert(n("2001:db8:1::/48"));
        assert_eq!(s.find(a("103.55.116.200")), Some(n("103.55.116.0/24")));
        assert!(!s.contains_ip(a("103.55.117.1")));
        assert!(s.contains_ip(a("198.51.100.7")));
        assert!(!s.contains_ip(a("198.51.100.8")));
        assert!(s.contains_ip(a("2001:db8:1:ffff::1")));
        assert!(!s.contains_ip(a("2001:db8:2::1")));
    }

    #[test]
    fn host_bits_are_cleared_and_v4_mapped_matches() {
        let mut s = NetSet::new();
        s.insert(n("192.0.2.77/24"));
        assert!(s.contains_ip(a("192.0.2.1")));
        assert!(s.contains_ip(a("::ffff:192.0.2.9")));
    }

    #[test]
    fn most_specific_wins_and_overlap() {
        let mut s = NetSet::new();
        s.insert(n("10.0.0.0/8"));
        s.insert(n("10.1.2.0/24"));
        assert_eq!(s.find(a("10.1.2.3")), Some(n("10.1.2.0/24")));
        assert!(s.overlaps(n("10.1.0.0/16")));
        assert!(!s.overlaps(n("11.0.0.0/8")));
        let mut t = NetSet::new();
        t.insert(n("203.0.113.5/32"));
        assert!(t.overlaps(n("203.0.113.0/24")));
        assert_eq!(t.first_overlapping(n("203.0.113.0/24")), Some(n("203.0.113.5/32")));
        assert_eq!(t.first_overlapping(n("203.0.113.5/32")), Some(n("203.0.113.5/32")));
        assert_eq!(t.first_overlapping(n("203.0.113.6/32")), None);
        assert_eq!(s.first_overlapping(n("10.1.2.3/32")), Some(n("10.1.2.0/24")));
        assert_eq!(s.first_overlapping(n("10.0.0.0/7")), Some(n("10.0.0.0/8")));
    }
}
