//! Capabilities: after the rules are installed and the queues bound, keep only
//! `CAP_NET_ADMIN`, which the daemon proves to need for the rest of its life:
//! * `nft` (ban set updates, rule removal at exit) and `iptables`/`ip6tables` (removal at
//!   exit) are netlink writes to nf_tables, which need CAP_NET_ADMIN;
//! * the NFQUEUE netlink socket is already open and bound, its receive buffer already forced.
//!
//! Everything else is dropped from the effective, permitted, inheritable AND bounding sets of
//! the main thread before any other thread starts (capabilities are per thread and inherited
//! by threads and children). Child `nft` processes run as uid 0, so on exec they get
//! permitted = bounding set = {CAP_NET_ADMIN}. The state directory is owned by root, so no
//! CAP_DAC_OVERRIDE is needed to write it. (The process stays uid 0: the tools refuse to run
//! otherwise, and a non-root uid would need ambient capabilities for them.)
use caps::{CapSet, Capability, CapsHashSet};

/// Drop every capability but CAP_NET_ADMIN from all sets of the calling thread.
pub fn keep_only_net_admin() -> anyhow::Result<()> {
    let keep = Capability::CAP_NET_ADMIN;
    for cap in caps::all() {
        if cap != keep && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| anyhow::anyhow!("dropping {cap} from the bounding set: {e}"))?;
        }
    }
    let mut set = CapsHashSet::new();
    set.insert(keep);
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())
        .map_err(|e| anyhow::anyhow!("clearing inheritable capabilities: {e}"))?;
    caps::set(None, CapSet::Effective, &set)
        .map_err(|e| anyhow::anyhow!("setting effective capabilities: {e}"))?;
    caps::set(None, CapSet::Permitted, &set)
        .map_err(|e| anyhow::anyhow!("setting permitted capabilities: {e}"))?;
    Ok(())
}

/// The effective set, for the log.
pub fn effective() -> String {
    let mut v: Vec<String> = caps::read(None, CapSet::Effective)
        .map(|s| s.into_iter().map(|c| c.to_string()).collect())
        .unwrap_or_default();
    v.sort();
    v.join(",")
}
