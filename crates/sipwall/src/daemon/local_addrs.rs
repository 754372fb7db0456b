//! This host's own addresses, for the engine's protected set ([`Engine::set_local_addresses`]):
//! no automatic aggregate (and no manual ban) may cover them, or SIP the host sends to itself
//! would be dropped.
//!
//! Read with `getifaddrs` (`sipwall_netfilter::interface_addresses`, the same list the early
//! drop picks its devices from): exactly the addresses assigned to this namespace's
//! interfaces, loopback included, never a `local` route that is not an address. A failure
//! gives no address and a warning, never an error that would stop the daemon.
//!
//! [`Engine::set_local_addresses`]: sipwall_engine::Engine::set_local_addresses
use std::net::IpAddr;

/// The addresses assigned to this namespace's interfaces, sorted and deduplicated.
pub fn read() -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = match sipwall_netfilter::interface_addresses() {
        Ok(list) => list.into_iter().map(|a| a.addr).collect(),
        Err(e) => {
            log::warn!("listing this host's addresses (getifaddrs): {e}");
            Vec::new()
        }
    };
    out.sort();
    out.dedup();
    out
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
    use std::net::Ipv4Addr;

    #[test]
    fn this_namespace_has_loopback_once_and_sorted() {
        // Every network namespace with lo up has 127.0.0.1 (the test runner's has).
        let addrs = read();
        assert!(addrs.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{addrs:?}");
        assert!(addrs.windows(2).all(|w| w[0] < w[1]), "not sorted and unique: {addrs:?}");
    }
}
