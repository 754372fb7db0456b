//! This host's own addresses, for the engine's protected set ([`Engine::set_local_addresses`]):
//! no automatic aggregate (and no manual ban) may cover them, or SIP the host sends to itself
//! would be dropped.
//!
//! Read from procfs, which shows the daemon's own network namespace and needs neither a tool
//! (`ip` output is not an interface) nor `unsafe`: IPv4 from `/proc/net/fib_trie` (every
//! `/32 host LOCAL` leaf: exactly the addresses assigned to an interface, loopback included),
//! IPv6 from `/proc/net/if_inet6` (one assigned address per line). Both files are small (a few
//! lines per address) and read with a size cap; a missing file (a kernel without IPv6) gives no
//! address of that family, never an error that would stop the daemon.
//!
//! [`Engine::set_local_addresses`]: sipwall_engine::Engine::set_local_addresses
use std::io::Read as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Most bytes read from either file (a host with thousands of addresses stays far below).
const MAX_PROC_BYTES: u64 = 16 << 20;

/// The addresses assigned to this namespace's interfaces, sorted and deduplicated.
pub fn read() -> Vec<IpAddr> {
    let v4 = parse_fib_trie(&read_capped("/proc/net/fib_trie"));
    let v6 = parse_if_inet6(&read_capped("/proc/net/if_inet6"));
    let mut out: Vec<IpAddr> = v4.into_iter().map(IpAddr::V4).collect();
    out.extend(v6.into_iter().map(IpAddr::V6));
    out.sort();
    out.dedup();
    out
}

fn read_capped(path: &str) -> String {
    let mut text = String::new();
    if let Ok(f) = std::fs::File::open(path) {
        if let Err(e) = f.take(MAX_PROC_BYTES).read_to_string(&mut text) {
            log::warn!("reading {path}: {e}");
        }
    }
    text
}

/// IPv4 addresses of the `/32 host LOCAL` leaves of `/proc/net/fib_trie`: each leaf line
/// (`|-- ADDR`) is followed by its routes (`/32 host LOCAL`, `/24 link UNICAST`, ...).
pub fn parse_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut leaf: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("|-- ") {
            leaf = addr.trim().parse().ok();
        } else if t.starts_with('/') {
            let words: Vec<&str> = t.split_whitespace().collect();
            if words == ["/32", "host", "LOCAL"] {
                if let Some(a) = leaf {
                    out.push(a);
                }
            }
        } else {
            leaf = None; // a table header or an inner node
        }
    }
    out.sort();
    out.dedup();
    out
}

/// IPv6 addresses of `/proc/net/if_inet6` (first field: 32 hex digits).
pub fn parse_if_inet6(text: &str) -> Vec<Ipv6Addr> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|h| h.len() == 32)
        .filter_map(|h| u128::from_str_radix(h, 16).ok())
        .map(Ipv6Addr::from)
        .collect()
}

/// [`read`], logged (the daemon calls it at start and on SIGHUP, outside the engine lock).
pub fn read_logged() -> Vec<IpAddr> {
    let addrs = read();
    let shown: Vec<String> = addrs.iter().take(8).map(|a| a.to_string()).collect();
    let more =
        if addrs.len() > 8 { format!(" and {} more", addrs.len() - 8) } else { String::new() };
    log::info!("this host's addresses (never banned): {}{more}", shown.join(", "));
    addrs
}

/// Log the bans the engine lifted because they covered an address of this host.
pub fn log_lifted(lifted: &[sipwall_engine::BanAction]) {
    for a in lifted {
        if let sipwall_engine::BanAction::Remove(n) = a {
            log::warn!("ban of {n} lifted: it covers an address of this host");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/net/fib_trie` of a namespace with lo, 192.0.2.10/32 on lo and 203.0.113.1/24
    /// on a veth, plus an AnyIP `local 198.51.100.0/25` route (not an address).
    const FIB_TRIE: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     |-- 192.0.2.10
        /32 host LOCAL
     +-- 203.0.113.0/24 2 0 2
        |-- 203.0.113.0
           /24 link UNICAST
        |-- 203.0.113.1
           /32 host LOCAL
        |-- 203.0.113.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 198.51.100.0
        /25 host LOCAL
     |-- 192.0.2.10
        /32 host LOCAL
     |-- 203.0.113.1
        /32 host LOCAL
";

    #[test]
    fn fib_trie_yields_the_assigned_ipv4_addresses_only() {
        let got = parse_fib_trie(FIB_TRIE);
        let want: Vec<Ipv4Addr> =
            ["127.0.0.1", "192.0.2.10", "203.0.113.1"].iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn if_inet6_yields_every_line_and_skips_garbage() {
        let text = "20010db8001000000000000000000010 03 80 00 80       lo\n\
                    00000000000000000000000000000001 01 80 10 80       lo\n\
                    fe800000000000000000000000000001 04 40 20 80 veth0\n\
                    not-hex 01\n\n";
        let got = parse_if_inet6(text);
        let want: Vec<Ipv6Addr> =
            ["2001:db8:10::10", "::1", "fe80::1"].iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn this_namespace_has_loopback() {
        // Every network namespace with lo up has 127.0.0.1 (the test runner's has).
        let addrs = read();
        if std::path::Path::new("/proc/net/fib_trie").exists() {
            assert!(addrs.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{addrs:?}");
        }
    }
}
