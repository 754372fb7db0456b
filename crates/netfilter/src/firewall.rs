//! Applying the ruleset: the `inet` table through one atomic `nft -f -` batch, verified by
//! reading its chains back (`nft -j list chains`, which never fetches set elements); the
//! queue rules through nft's `queue` expression when the kernel has it, else
//! `iptables-restore`/`ip6tables-restore --noflush` with the xt NFQUEUE target in own chains.
//!
//! CONTRACT (the door never opens):
//! * [`Firewall::install`] adopts what a previous run left: ban and block-list sets keep their
//!   elements and timeouts, the ban-drop chain is rewritten in the same transaction that
//!   (re)creates it, so there is no moment without the ban drop; leftover queue rules go.
//! * [`Firewall::stop_keeping_bans`] (also on drop) removes only the queue rules, which would
//!   break or stall traffic without a consumer, and the empty filter tables the xt fallback
//!   created; the sets and the ban-drop chain stay, the kernel ends each ban at its timeout.
//! * [`remove_all`] / [`Firewall::remove`] remove everything (`--cleanup`, package purge).
//! * The early drop's ingress chains ([`crate::ingress`]) are added after the table, one
//!   device at a time, and stay on stop like the ban chain (they drop banned sources only);
//!   a device the kernel refuses is reported, never a reason not to start.
//! * [`FastPath`] replaces the trusted fast path's networks from any thread (trust changes,
//!   reloads) in one transaction per family, and never puts queue rules back once a stop
//!   removed them: the stop takes the same lock.
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ipnet::IpNet;

use crate::ingress::{self, IngressReport};
use crate::ruleset::{QueueBackend, Ruleset};
use crate::tools::{list_chains, run, FirewallError};

/// The installed ruleset. Dropping it stops queueing but keeps the bans in the kernel, like
/// [`Firewall::stop_keeping_bans`].
#[derive(Debug)]
pub struct Firewall {
    ruleset: Ruleset,
    /// The queue rules may be in the kernel (cleared by a stop or a removal).
    active: bool,
    backend: Option<QueueBackend>,
    /// `ip filter` / `ip6 filter` did not exist before the xt fallback created them.
    created_filter: [bool; 2],
    /// The fast path's networks and whether queue rules are in the kernel, shared with the
    /// [`FastPath`] handles.
    fast: FastPath,
    /// The early drop's ingress chains installed, and the devices the kernel refused.
    ingress: IngressReport,
}

/// A handle on the trusted fast path of an installed ruleset ([`Ruleset::fast_path`]):
/// [`FastPath::set`] replaces its networks in the kernel. Cheap to clone; any thread.
#[derive(Debug, Clone)]
pub struct FastPath {
    state: Arc<Mutex<FastState>>,
}

#[derive(Debug)]
struct FastState {
    /// The ruleset as last rendered, `fast_path` included.
    ruleset: Ruleset,
    /// The backend whose queue rules are in the kernel; None before `enable_queue` and after a
    /// stop (a `set` then only records the networks for the next enable).
    live: Option<QueueBackend>,
    /// A rewrite failed part-way: the kernel may hold either list, so the next `set` writes.
    dirty: bool,
    /// The kernel refused the fast-path rules when queueing started (an iptables without the
    /// `u32` match, ...): queueing runs without them and every `set` is a no-op.
    unavailable: Option<String>,
    /// Packets counted by fast-path rules that a rewrite has since replaced (their counters
    /// start again at zero with the new rules).
    carried: u64,
    /// The last counter read and when: reads start processes, so one a second at most.
    last_read: Option<(std::time::Instant, u64)>,
}

/// How long a read of the fast path's counters is served again.
const COUNTER_CACHE: std::time::Duration = std::time::Duration::from_secs(1);

impl FastState {
    /// The packets the fast-path rules in the kernel counted, None if they cannot be read.
    fn read_counters(&self) -> Option<u64> {
        let table = &self.ruleset.table;
        let hooks = self.ruleset.hooks;
        match self.live? {
            QueueBackend::Xtables => {
                let mut total = 0;
                for tool in ["iptables", "ip6tables"] {
                    for (builtin, own) in Ruleset::all_xt_chains(table) {
                        let used = match builtin {
                            "INPUT" => hooks.input,
                            "FORWARD" => hooks.forward,
                            _ => false, // OUTPUT: the protected side's traffic, never fast
                        };
                        if used {
                            let text = run(
                                "reading fast-path counters",
                                tool,
                                &["-w", "-v", "-S", &own],
                                None,
                            )
                            .ok()?;
                            total += xt_return_packets(&text);
                        }
                    }
                }
                Some(total)
            }
            QueueBackend::Nft => {
                let mut total = 0;
                for (hook, used) in [("input", hooks.input), ("forward", hooks.forward)] {
                    if used {
                        let chain = format!("queue_{hook}");
                        let json = run(
                            "reading fast-path counters",
                            "nft",
                            &["-j", "list", "chain", "inet", table, &chain],
                            None,
                        )
                        .ok()?;
                        total += nft_accept_packets(&json);
                    }
                }
                Some(total)
            }
        }
    }
}

/// The packets of the `-j RETURN` rules in `iptables -v -S CHAIN` output (`-c PACKETS BYTES`).
fn xt_return_packets(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.ends_with("-j RETURN"))
        .filter_map(|l| {
            let mut words = l.split_whitespace().skip_while(|w| *w != "-c");
            words.next()?;
            words.next()?.parse::<u64>().ok()
        })
        .sum()
}

/// The packets of the counting `accept` rules in `nft -j list chain` output.
fn nft_accept_packets(json: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let items = v.get("nftables").and_then(|n| n.as_array()).cloned().unwrap_or_default();
    items
        .iter()
        .filter_map(|i| i.get("rule")?.get("expr")?.as_array().cloned())
        .filter(|expr| expr.iter().any(|e| e.get("accept").is_some()))
        .filter_map(|expr| expr.iter().find_map(|e| e.get("counter")?.get("packets")?.as_u64()))
        .sum()
}

impl FastPath {
    fn lock(&self) -> MutexGuard<'_, FastState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The networks last written to the fast path (empty when it is unavailable).
    pub fn networks(&self) -> Vec<IpNet> {
        self.lock().ruleset.fast_path.clone()
    }

    /// Why the kernel refused the fast path, if it did (then nothing is on it).
    pub fn unavailable(&self) -> Option<String> {
        self.lock().unavailable.clone()
    }

    /// Packets the fast path let through since the firewall was installed (the kernel's rule
    /// counters, carried over every rewrite); None while no queue rules are in the kernel or
    /// when they cannot be read. Slow (starts `iptables`/`nft`, at most once a second; a
    /// read within a second of the last one returns it again): never on the packet path.
    pub fn packets(&self) -> Option<u64> {
        let mut st = self.lock();
        if let Some((at, n)) = st.last_read {
            if at.elapsed() < COUNTER_CACHE {
                return Some(n);
            }
        }
        let n = st.carried + st.read_counters()?;
        st.last_read = Some((std::time::Instant::now(), n));
        Some(n)
    }

    /// Replace the fast path's networks: the queue rules are rewritten in one transaction per
    /// family (no moment where nothing is queued); nothing is run when they are unchanged.
    /// On failure the previous list is kept as the one reported, and the next `set` writes
    /// whatever it is given (the kernel may hold either list, per family).
    /// Slow (starts `nft` or `iptables-restore`): never call it holding the engine's lock.
    pub fn set(&self, nets: &[IpNet]) -> Result<(), FirewallError> {
        let mut st = self.lock();
        if st.unavailable.is_some() {
            return Ok(());
        }
        let mut want = nets.to_vec();
        want.sort_unstable();
        want.dedup();
        if st.ruleset.fast_path == want && !st.dirty {
            return Ok(());
        }
        // The rewrite starts the rules' counters again: keep what they counted so far.
        let carried = st.carried;
        if let Some(n) = st.read_counters() {
            st.carried += n;
        }
        st.last_read = None;
        let before = std::mem::replace(&mut st.ruleset.fast_path, want);
        let applied = match st.live {
            None => Ok(()),
            Some(QueueBackend::Nft) => run(
                "replacing the trusted fast path (nft)",
                "nft",
                &["-f", "-"],
                Some(&st.ruleset.render_nft_queue()),
            )
            .map(|_| ()),
            Some(QueueBackend::Xtables) => {
                let (v4, v6) =
                    (st.ruleset.render_xt_refill(false), st.ruleset.render_xt_refill(true));
                run(
                    "replacing the trusted fast path (iptables)",
                    "iptables-restore",
                    &["--noflush"],
                    Some(&v4),
                )
                .and_then(|_| {
                    run(
                        "replacing the trusted fast path (ip6tables)",
                        "ip6tables-restore",
                        &["--noflush"],
                        Some(&v6),
                    )
                })
                .map(|_| ())
            }
        };
        // What the kernel has after a failure is unknown in part: the next set writes anyway.
        st.dirty = applied.is_err();
        if applied.is_err() {
            st.ruleset.fast_path = before;
            st.carried = carried; // the old rules (and their counts) may still be there
        }
        applied
    }
}

impl Firewall {
    /// Install the table, ADOPTING one a previous run left: ban and block-list sets are kept
    /// with their elements and timeouts (created if missing); the ban-drop chain is rewritten
    /// and leftover nft queue chains deleted in ONE transaction, so banned sources stay dropped
    /// throughout; leftover iptables queue rules are removed. Then reads the table back.
    /// Queueing starts only with [`Firewall::enable_queue`].
    pub fn install(ruleset: Ruleset) -> Result<Firewall, FirewallError> {
        remove_xt_queue(&ruleset.table)?;
        run("installing the nft table", "nft", &["-f", "-"], Some(&ruleset.render_nft_table()))?;
        let fast = FastPath {
            state: Arc::new(Mutex::new(FastState {
                ruleset: ruleset.clone(),
                live: None,
                dirty: false,
                unavailable: None,
                carried: 0,
                last_read: None,
            })),
        };
        let ingress = ingress::install(&ruleset, None, list_chains(&ruleset.table));
        let fw = Firewall {
            ruleset,
            active: true,
            backend: None,
            created_filter: [false; 2],
            fast,
            ingress,
        };
        fw.verify()?;
        Ok(fw)
    }

    /// The early drop's ingress chains [`Firewall::install`] (or the last
    /// [`Firewall::refresh_ingress`]) put in the kernel.
    pub fn ingress(&self) -> &IngressReport {
        &self.ingress
    }

    /// Bring the early drop in line with `devices` (what the config asks for now): installs
    /// the chains again when the list changed or an installed chain is gone (see
    /// [`crate::ingress`]). Returns the new report, or None when the kernel already matched
    /// (or its chains cannot be listed: logged, tried again next time). Slow (starts `nft`):
    /// never on the packet path.
    pub fn refresh_ingress(&mut self, mut devices: Vec<String>) -> Option<IngressReport> {
        devices.sort();
        devices.dedup();
        let chains = match list_chains(&self.ruleset.table) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("early drop not checked: {e}");
                return None;
            }
        };
        if !ingress::needs_refresh(&devices, &self.ingress, &chains) {
            return None;
        }
        self.ruleset.ingress_devices = devices;
        self.ingress = ingress::install(&self.ruleset, Some(&self.ingress), Ok(chains));
        Some(self.ingress.clone())
    }

    /// A handle on the trusted fast path (see [`FastPath`]).
    pub fn fast_path(&self) -> FastPath {
        self.fast.clone()
    }

    /// The ruleset.
    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    /// The queue backend in use, once enabled.
    pub fn backend(&self) -> Option<QueueBackend> {
        self.backend
    }

    /// Start queueing: nft's `queue` expression if the kernel accepts it, else the iptables
    /// NFQUEUE target. `prefer` = Some(backend) forces one. Returns the backend used.
    pub fn enable_queue(
        &mut self,
        prefer: Option<QueueBackend>,
    ) -> Result<QueueBackend, FirewallError> {
        self.active = true;
        // Rendered under the fast path's lock: a concurrent `FastPath::set` lands either
        // before (and is rendered here) or after (and rewrites what this installed).
        let fast = self.fast.clone();
        let mut st = fast.lock();
        let try_nft = prefer != Some(QueueBackend::Xtables);
        if try_nft {
            match run(
                "adding nft queue chains",
                "nft",
                &["-f", "-"],
                Some(&st.ruleset.render_nft_queue()),
            ) {
                Ok(_) => {
                    self.backend = Some(QueueBackend::Nft);
                    st.live = self.backend;
                    self.verify()?;
                    return Ok(QueueBackend::Nft);
                }
                Err(e) if prefer.is_none() => {
                    // nft's multi-line diagnostic is for debugging; one line says what happened.
                    let why = e.to_string();
                    let first = why.lines().next().unwrap_or_default();
                    log::info!(
                        "nft queue expression unavailable (kernel without nft_queue?), using the \
                         iptables NFQUEUE target instead: {first}"
                    );
                    log::debug!("nft queue attempt: {why}");
                }
                Err(e) => return Err(e),
            }
        }
        self.backend = Some(QueueBackend::Xtables);
        st.live = self.backend;
        for (i, family) in ["ip", "ip6"].into_iter().enumerate() {
            self.created_filter[i] |= !filter_table_exists(family);
        }
        let install = |r: &Ruleset| {
            let (v4, v6) = (r.render_xt(false), r.render_xt(true));
            run("adding iptables NFQUEUE rules", "iptables-restore", &["--noflush"], Some(&v4))?;
            run("adding ip6tables NFQUEUE rules", "ip6tables-restore", &["--noflush"], Some(&v6))
        };
        if let Err(e) = install(&st.ruleset) {
            if st.ruleset.fast_path.is_empty() {
                return Err(e);
            }
            // The fast path is an optimisation: queue everything rather than not start.
            log::error!(
                "trusted fast path refused by the kernel, trusted requests are queued: {e}"
            );
            remove_xt_queue(&self.ruleset.table)?;
            st.ruleset.fast_path.clear();
            st.unavailable = Some(e.to_string());
            install(&st.ruleset)?;
        }
        self.verify()?;
        Ok(QueueBackend::Xtables)
    }

    /// Read the table's chains back and check they are all there, and the iptables jumps for
    /// the xt backend. Uses `nft list chains`, the one listing that does not fetch set
    /// elements (`list table`, even terse, and `list chain` fetch them all: ~3 s at 100k
    /// elements), so its cost does not grow with the ban and block lists. The sets need no
    /// separate check: they are created in the same transaction as the ban chain, whose rules
    /// the kernel refuses if a set they name is missing.
    pub fn verify(&self) -> Result<(), FirewallError> {
        let table = &self.ruleset.table;
        let chains = list_chains(table)?;
        let backend = self.backend.unwrap_or(QueueBackend::Xtables);
        for c in self.ruleset.nft_chain_names(backend) {
            if !chains.contains(&c) {
                return Err(FirewallError::Verify {
                    table: table.clone(),
                    what: format!("chain {c} missing"),
                });
            }
        }
        if self.backend == Some(QueueBackend::Xtables) {
            for tool in ["iptables", "ip6tables"] {
                let rules = run("listing iptables rules", tool, &["-S"], None)?;
                for (builtin, own) in Ruleset::all_xt_chains(table) {
                    let used = match builtin {
                        "FORWARD" => self.ruleset.hooks.forward,
                        _ => self.ruleset.hooks.input,
                    };
                    let jump = format!("-A {builtin} -j {own}");
                    if used && !rules.lines().any(|l| l == jump) {
                        return Err(FirewallError::Verify {
                            table: table.clone(),
                            what: format!("{tool}: jump '{jump}' missing"),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Clean stop: remove what would break traffic without the daemon (the nft queue chains,
    /// the iptables NFQUEUE rules and chains, and the `ip`/`ip6 filter` tables the xt fallback
    /// created if they are empty now) and KEEP the table with its ban and block-list sets and
    /// the ban-drop chain: banned sources stay dropped by the kernel, each element until its
    /// own timeout, while no daemon runs. The next [`Firewall::install`] adopts them.
    /// Idempotent.
    pub fn stop_keeping_bans(&mut self) -> Result<(), FirewallError> {
        if !self.active {
            return Ok(());
        }
        // Held until the rules are gone: no fast-path rewrite can put queue rules back. `live`
        // is cleared only then: after a failed removal, later rewrites still reach the rules
        // left in the kernel (a network leaving trust must leave them too).
        let fast = self.fast.clone();
        let mut st = fast.lock();
        remove_xt_queue(&self.ruleset.table)?;
        let text = self.ruleset.render_nft_queue_removal();
        run("removing the nft queue chains", "nft", &["-f", "-"], Some(&text))?;
        st.live = None;
        for (i, family) in ["ip", "ip6"].into_iter().enumerate() {
            if self.created_filter[i] {
                remove_filter_table_if_empty(family)?;
            }
        }
        self.active = false;
        self.backend = None;
        Ok(())
    }

    /// Remove everything, bans included (see [`remove_all`]). Idempotent.
    pub fn remove(&mut self) -> Result<(), FirewallError> {
        let fast = self.fast.clone();
        let mut st = fast.lock();
        st.live = None;
        remove_all(&self.ruleset.table)?;
        self.active = false;
        self.backend = None;
        Ok(())
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        // The door stays shut: an error path or a panic unwinding past the firewall stops
        // queueing like a clean stop and keeps the bans.
        if let Err(e) = self.stop_keeping_bans() {
            log::error!("removing sipwall queue rules: {e}");
        }
    }
}

/// Remove the iptables jumps and own chains of `table`, whatever state they are in.
fn remove_xt_queue(table: &str) -> Result<(), FirewallError> {
    for tool in ["iptables", "ip6tables"] {
        for (builtin, own) in Ruleset::all_xt_chains(table) {
            // Several jumps may have piled up after crashes: remove them all (bounded).
            for _ in 0..16 {
                if run("removing iptables jump", tool, &["-D", builtin, "-j", &own], None).is_err()
                {
                    break;
                }
            }
            if run("checking iptables chain", tool, &["-S", &own], None).is_ok() {
                run("flushing iptables chain", tool, &["-F", &own], None)?;
                run("deleting iptables chain", tool, &["-X", &own], None)?;
            }
        }
    }
    Ok(())
}

fn filter_table_exists(family: &str) -> bool {
    run("listing a filter table", "nft", &["-t", "list", "table", family, "filter"], None).is_ok()
}

/// Delete `<family> filter` if it has no rule and every chain accepts by policy, i.e. if
/// deleting it cannot change what passes (the iptables-nft fallback leaves it behind).
fn remove_filter_table_if_empty(family: &str) -> Result<(), FirewallError> {
    let Ok(json) =
        run("listing a filter table", "nft", &["-j", "list", "table", family, "filter"], None)
    else {
        return Ok(()); // absent
    };
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let items = v.get("nftables").and_then(|n| n.as_array()).cloned().unwrap_or_default();
    let has_rule = items.iter().any(|i| i.get("rule").is_some() || i.get("set").is_some());
    let blocks = items
        .iter()
        .filter_map(|i| i.get("chain"))
        .any(|c| c.get("policy").and_then(|p| p.as_str()).is_some_and(|p| p != "accept"));
    if has_rule || blocks {
        return Ok(());
    }
    run("deleting an empty filter table", "nft", &["delete", "table", family, "filter"], None)
        .map(|_| ())
}

/// Remove everything of `table`: the iptables queue rules first (packets stop being queued
/// before the ban sets go), then the nft table with every ban and block-list element, then the
/// `ip`/`ip6 filter` tables if the xt fallback left them empty. For `--cleanup` and package
/// purge; a daemon stop uses [`Firewall::stop_keeping_bans`] instead. Idempotent.
pub fn remove_all(table: &str) -> Result<(), FirewallError> {
    remove_xt_queue(table)?;
    let text = format!("add table inet {table}\ndelete table inet {table}\n");
    run("deleting the nft table", "nft", &["-f", "-"], Some(&text))?;
    for family in ["ip", "ip6"] {
        remove_filter_table_if_empty(family)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_counters_are_read_from_the_return_and_accept_rules_only() {
        let xt = "-N SIPWALL-IN\n\
            -A SIPWALL-IN -s 198.51.100.0/24 -p udp -m udp --dport 5060 -m u32 ! --u32 \"0x0\" -c 7 900 -j RETURN\n\
            -A SIPWALL-IN -s 203.0.113.0/24 -p udp -m udp --dport 5060 -c 5 400 -j RETURN\n\
            -A SIPWALL-IN -p udp -m udp --dport 5060 -c 1000 9999 -j NFQUEUE --queue-num 0\n";
        assert_eq!(xt_return_packets(xt), 12);
        assert_eq!(xt_return_packets(""), 0);
        let nft = r#"{"nftables": [{"metainfo": {}}, {"chain": {"name": "queue_input"}},
            {"rule": {"expr": [{"match": {}}, {"counter": {"packets": 4, "bytes": 10}}, {"accept": null}]}},
            {"rule": {"expr": [{"match": {}}, {"counter": {"packets": 50, "bytes": 10}}, {"queue": {"num": 0}}]}},
            {"rule": {"expr": [{"counter": {"packets": 3, "bytes": 1}}, {"accept": null}]}}]}"#;
        assert_eq!(nft_accept_packets(nft), 7);
        assert_eq!(nft_accept_packets("not json"), 0);
    }
}
