//! The early drop: banned sources dropped at the devices' ingress hook, before the IP stack
//! (see the module docs of [`crate::Ruleset`] for the chains and why they are only ever an
//! addition to the ban chain).
//!
//! CONTRACT:
//! * [`install`] never fails the start: a device the kernel refuses (a kernel before 5.10, a
//!   device that does not exist) is reported in [`IngressReport::refused`] with the kernel's
//!   reason and costs only its own early drop; the ban chain drops that device's banned
//!   sources as before.
//! * Ingress chains of the table that the ruleset no longer names (a device removed from the
//!   config, the early drop turned off) are deleted, so what is in the kernel is what the
//!   config says. They read the ban sets only, so while one is left over it can drop nothing
//!   the ban chain would not.
//! * [`crate::Firewall::refresh_ingress`] (the daemon calls it periodically) installs again
//!   when the devices changed, a chain is gone or a device was refused, so new devices get
//!   their chain and status never names a chain the kernel dropped.
//! * [`auto_devices`] picks the devices that carry an address of this host: loopback and
//!   devices with only link-local IPv6 addresses (bridge ports, a container's host side) are
//!   left out, so the early drop never reaches traffic the ban chain does not see.
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::ruleset::{valid_device_name, Ruleset, INGRESS_CHAIN_PREFIX};
use crate::sys::{self, InterfaceAddress};
use crate::tools::{run, FirewallError};

/// Most devices [`auto_devices`] picks (one chain each); more are logged and left to the ban
/// chain.
pub const MAX_INGRESS_DEVICES: usize = 32;

/// What [`install`] put in the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngressReport {
    /// Devices whose ingress chain is installed.
    pub active: Vec<String>,
    /// Devices the kernel refused, with its reason (first line).
    pub refused: Vec<(String, String)>,
}

/// The devices of this namespace that carry an address of the host (see the module docs),
/// sorted, at most [`MAX_INGRESS_DEVICES`].
pub fn auto_devices() -> Result<Vec<String>, FirewallError> {
    let addrs = sys::interface_addresses().map_err(|source| FirewallError::Spawn {
        op: "listing the network devices for the early drop",
        tool: "getifaddrs".into(),
        source,
    })?;
    let (picked, skipped) = pick_devices(&addrs);
    // Said when the count changes, not at every periodic check.
    static LAST_SKIPPED: AtomicUsize = AtomicUsize::new(0);
    if skipped > 0 && LAST_SKIPPED.swap(skipped, Ordering::Relaxed) != skipped {
        log::warn!(
            "early drop: {} devices carry an address, the first {MAX_INGRESS_DEVICES} get an \
             ingress chain; the ban chain drops banned sources on the other {skipped}",
            picked.len() + skipped
        );
    }
    Ok(picked)
}

/// [`auto_devices`]' choice from a list of addresses: the picked devices and how many more
/// there were beyond [`MAX_INGRESS_DEVICES`].
pub(crate) fn pick_devices(addrs: &[InterfaceAddress]) -> (Vec<String>, usize) {
    let mut v: Vec<String> = addrs
        .iter()
        .filter(|a| !a.loopback && !a.addr.is_loopback() && !link_local(&a.addr))
        .filter(|a| valid_device_name(&a.name))
        .map(|a| a.name.clone())
        .collect();
    v.sort();
    v.dedup();
    let skipped = v.len().saturating_sub(MAX_INGRESS_DEVICES);
    v.truncate(MAX_INGRESS_DEVICES);
    (v, skipped)
}

fn link_local(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Whether the kernel's ingress chains (`chains`: the table's chain names) no longer match
/// what `report` says for `devices` (sorted): the device list changed (a device came or went),
/// an installed chain is gone (on kernels that remove a device's chains with the device), or
/// a device was refused (tried again: a named device may exist by now).
pub(crate) fn needs_refresh(devices: &[String], report: &IngressReport, chains: &[String]) -> bool {
    if !report.refused.is_empty() {
        return true;
    }
    // Nothing was refused, so what was asked for last time is exactly the active list.
    let mut known: Vec<&String> = report.active.iter().collect();
    known.sort();
    let changed = known.len() != devices.len() || known.iter().zip(devices).any(|(a, b)| *a != b);
    changed || report.active.iter().any(|d| !chains.contains(&Ruleset::ingress_chain(d)))
}

/// Put the ruleset's ingress chains in the existing table, one batch per device, and delete
/// the table's other ingress chains (`chains`: the table's chains as the caller listed them;
/// see the module docs). Logs what it did.
pub(crate) fn install(
    ruleset: &Ruleset,
    previous: Option<&IngressReport>,
    chains: Result<Vec<String>, FirewallError>,
) -> IngressReport {
    // A device refused again for the same reason is logged once, not at every refresh.
    let refused_before = |device: &str, why: &str| {
        previous.is_some_and(|p| p.refused.iter().any(|(d, w)| d == device && w == why))
    };
    let mut report = IngressReport::default();
    let wanted: Vec<String> =
        ruleset.ingress_devices.iter().map(|d| Ruleset::ingress_chain(d)).collect();
    match chains {
        Ok(chains) => {
            let stale: Vec<String> = chains
                .into_iter()
                .filter(|c| c.starts_with(INGRESS_CHAIN_PREFIX) && !wanted.contains(c))
                .collect();
            if !stale.is_empty() {
                let text = ruleset.render_nft_ingress_removal(&stale);
                match run(
                    "removing ingress chains no device asks for",
                    "nft",
                    &["-f", "-"],
                    Some(&text),
                ) {
                    Ok(_) => log::info!("early drop: removed {}", stale.join(", ")),
                    Err(e) => log::warn!("{e} (they only drop banned sources)"),
                }
            }
        }
        Err(e) => log::warn!("early drop: {e}; leftover ingress chains are kept"),
    }
    for device in &ruleset.ingress_devices {
        if !valid_device_name(device) {
            // Never written into a batch: it could end the quoted name it would sit in.
            log::warn!("early drop: {device:?} is not a device name; skipped");
            report.refused.push((device.clone(), "not a valid device name".into()));
            continue;
        }
        let text = ruleset.render_nft_ingress(device);
        match run("adding an ingress chain", "nft", &["-f", "-"], Some(&text)) {
            Ok(_) => report.active.push(device.clone()),
            Err(e) => {
                let why = e.to_string();
                let first = why.lines().next().unwrap_or_default().to_string();
                let level = if refused_before(device, &first) {
                    log::Level::Debug
                } else {
                    log::Level::Warn
                };
                log::log!(
                    level,
                    "early drop refused on device {device} (the ban chain still drops banned \
                     sources arriving there): {first}"
                );
                report.refused.push((device.clone(), first));
            }
        }
    }
    let same = previous.is_some_and(|p| p.active == report.active);
    if !report.active.is_empty() && !same {
        log::info!("early drop: banned sources dropped at ingress on {}", report.active.join(", "));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(name: &str, addr: &str, loopback: bool) -> InterfaceAddress {
        InterfaceAddress { name: name.into(), addr: addr.parse().unwrap(), loopback }
    }

    #[test]
    fn devices_with_a_host_address_are_picked_once_and_sorted() {
        let addrs = [
            a("lo", "127.0.0.1", true),
            a("lo", "::1", true),
            a("eth1", "198.51.100.1", false),
            a("eth0", "192.0.2.10", false),
            a("eth0", "2001:db8::10", false),
            a("eth0", "fe80::1", false),
            // a bridge port or a container's host side: link-local only
            a("veth9", "fe80::2", false),
            a("wg0", "2001:db8:1::1", false),
            a("dummy", "169.254.1.1", false),
            a("bad name", "192.0.2.99", false),
        ];
        assert_eq!(pick_devices(&addrs), (vec!["eth0".into(), "eth1".into(), "wg0".into()], 0));
    }

    #[test]
    fn a_refresh_is_needed_when_devices_change_or_a_chain_is_gone() {
        let s = |v: &[&str]| v.iter().map(|d| d.to_string()).collect::<Vec<_>>();
        let report = IngressReport { active: s(&["eth0", "ppp0"]), refused: Vec::new() };
        let chains = s(&["ban_prerouting", "ingress_eth0", "ingress_ppp0"]);
        assert!(!needs_refresh(&s(&["eth0", "ppp0"]), &report, &chains));
        // a device came, a device went
        assert!(needs_refresh(&s(&["eth0", "eth1", "ppp0"]), &report, &chains));
        assert!(needs_refresh(&s(&["eth0"]), &report, &chains));
        // the kernel removed ppp0's chain with the device, and ppp0 is back
        let gone = s(&["ban_prerouting", "ingress_eth0"]);
        assert!(needs_refresh(&s(&["eth0", "ppp0"]), &report, &gone));
        // a refused device is tried again, whatever else holds
        let refused =
            IngressReport { refused: vec![("eth9".into(), "refused".into())], ..report.clone() };
        assert!(needs_refresh(&s(&["eth0", "eth9", "ppp0"]), &refused, &chains));
    }

    #[test]
    fn at_most_the_cap_is_picked() {
        let addrs: Vec<InterfaceAddress> =
            (0..40).map(|i| a(&format!("d{i:02}"), &format!("192.0.2.{i}"), false)).collect();
        let (picked, skipped) = pick_devices(&addrs);
        assert_eq!((picked.len(), skipped), (MAX_INGRESS_DEVICES, 8));
        assert_eq!(picked[0], "d00");
    }

    #[test]
    fn this_namespace_lists_at_least_loopback_and_never_picks_it() {
        let addrs = sys::interface_addresses().expect("getifaddrs");
        assert!(addrs.iter().any(|x| x.loopback), "{addrs:?}");
        assert!(!auto_devices().unwrap().iter().any(|d| d == "lo"));
    }
}
