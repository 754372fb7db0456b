//! Ban set elements: add (with a kernel timeout) and remove IPv4/IPv6 addresses and ranges in
//! the table's `ban4`/`ban6` interval sets.
//!
//! All pending operations go into ONE kernel transaction. Three writers, fastest first:
//! nf_tables netlink ([`BanSet::with_netlink`], ~0.07 ms), a long-lived `nft -e -i`
//! ([`BanSet::with_shell`], ~1 ms), one `nft -f -` process per batch (~10-25 ms, mostly process
//! start); each falls back to the next. The daemon batches every ban decided while the
//! previous batch ran. The kernel drops a banned source as soon as the
//! batch commits, and removes the element by itself when its timeout ends.
//!
//! Interval sets refuse overlapping elements, so this keeps a mirror of what it added: a range
//! that covers earlier addresses deletes them in the same batch; an address inside an active
//! range is skipped (already dropped). If a batch fails (e.g. an element timed out in the
//! kernel just before our delete), the operations are retried one by one and deletes of
//! missing elements are ignored.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::firewall::{run, FirewallError};
use crate::nftshell::{NftShell, ShellError};
use crate::nlset::{NlOp, NlSetWriter};

/// One change to the ban sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanOp {
    /// Add (or extend) a ban; `None` = no timeout (static block list entry).
    Add {
        /// Address or range.
        net: IpNet,
        /// Kernel timeout.
        timeout: Option<Duration>,
    },
    /// Remove a ban.
    Remove(IpNet),
}

/// Writer of the ban sets of one table.
#[derive(Debug)]
pub struct BanSet {
    table: String,
    /// Long-lived `nft -e -i` (when enabled); None = one `nft -f -` per batch.
    shell: Option<NftShell>,
    use_shell: bool,
    /// Direct nf_tables netlink writer (when enabled).
    netlink: Option<NlSetWriter>,
    use_netlink: bool,
    /// What we believe is in the kernel: net -> expiry (None = permanent).
    mirror: BTreeMap<IpNet, Option<Instant>>,
}

fn set_for(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "ban4",
        IpNet::V6(_) => "ban6",
    }
}

fn elem(net: &IpNet) -> String {
    let n = net.trunc();
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

fn timeout_text(t: Duration) -> String {
    format!("{}ms", t.as_millis().max(1))
}

impl BanSet {
    /// Writer for the sets of table `inet <table>`.
    pub fn new(table: &str) -> Self {
        BanSet {
            table: table.to_string(),
            shell: None,
            use_shell: false,
            netlink: None,
            use_netlink: false,
            mirror: BTreeMap::new(),
        }
    }

    /// Write elements straight to nf_tables over netlink (~0.07 ms a batch, measured in
    /// `tests/kernel.rs`), with the `nft -i` shell and then `nft -f -` as fallbacks.
    pub fn with_netlink(mut self) -> Self {
        self.use_netlink = true;
        self.use_shell = true;
        self
    }

    /// Try netlink; Ok(true) = applied, Ok(false) = not usable now.
    fn apply_via_netlink(&mut self, planned: &[BanOp]) -> Result<bool, FirewallError> {
        if !self.use_netlink {
            return Ok(false);
        }
        if self.netlink.is_none() {
            match NlSetWriter::open(&self.table) {
                Ok(w) => self.netlink = Some(w),
                Err(e) => {
                    log::warn!("nf_tables netlink socket: {e}; using nft");
                    self.use_netlink = false;
                    return Ok(false);
                }
            }
        }
        let Some(w) = self.netlink.as_mut() else { return Ok(false) };
        let ops: Vec<NlOp> = planned
            .iter()
            .map(|op| match *op {
                BanOp::Add { net, timeout } => NlOp::Add(net, timeout),
                BanOp::Remove(net) => NlOp::Del(net),
            })
            .collect();
        if w.apply(&ops).is_ok() {
            return Ok(true);
        }
        // One failed element rolls back the whole batch: redo them one by one, tolerating
        // deletes of elements the kernel already expired.
        let mut first_err = None;
        for op in &ops {
            if let Err(e) = w.apply(std::slice::from_ref(op)) {
                let missing = matches!(op, NlOp::Del(_)) && e.raw_os_error() == Some(libc::ENOENT);
                if !missing && first_err.is_none() {
                    first_err = Some(FirewallError::Tool {
                        op: "updating ban sets",
                        tool: "nf_tables netlink".into(),
                        status: format!("{op:?}"),
                        stderr: e.to_string(),
                    });
                }
            }
        }
        first_err.map_or(Ok(true), Err)
    }

    /// Send updates through a long-lived `nft -e -i` (~0.5 ms a batch instead of a process
    /// start per batch), falling back to `nft -f -` if it fails.
    pub fn with_shell(mut self) -> Self {
        self.use_shell = true;
        self
    }

    /// Try the shell; Ok(true) = applied (errors, if any, were only deletes of missing
    /// elements), Ok(false) = not usable now.
    fn apply_via_shell(&mut self, text: &str) -> Result<bool, FirewallError> {
        if !self.use_shell {
            return Ok(false);
        }
        if self.shell.is_none() {
            match NftShell::start(&self.table) {
                Ok(s) => self.shell = Some(s),
                Err(e) => {
                    log::warn!("{e}; using one nft process per update");
                    return Ok(false);
                }
            }
        }
        let Some(shell) = self.shell.as_mut() else { return Ok(false) };
        match shell.run(text) {
            Ok(()) => Ok(true),
            Err(ShellError::Nft(msg)) => {
                let real: Vec<&str> = msg
                    .lines()
                    .filter(|l| l.contains("Error"))
                    .filter(|l| !(l.contains("does not exist") || l.contains("No such file")))
                    .collect();
                if real.is_empty() {
                    Ok(true)
                } else {
                    Err(FirewallError::Tool {
                        op: "updating ban sets",
                        tool: "nft -i".into(),
                        status: "error".into(),
                        stderr: msg,
                    })
                }
            }
            Err(e) => {
                log::warn!("{e}; restarting it on the next update, nft -f now");
                self.shell = None;
                Ok(false)
            }
        }
    }

    /// Number of elements believed active.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.mirror.values().filter(|e| e.is_none_or(|t| t > now)).count()
    }

    /// True if no element is believed active.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn render(&self, op: &BanOp, o: &mut String) {
        let t = &self.table;
        match op {
            BanOp::Add { net, timeout } => {
                let to =
                    timeout.map(|d| format!(" timeout {}", timeout_text(d))).unwrap_or_default();
                let _ =
                    writeln!(o, "add element inet {t} {} {{ {}{to} }}", set_for(net), elem(net));
            }
            BanOp::Remove(net) => {
                let _ = writeln!(o, "delete element inet {t} {} {{ {} }}", set_for(net), elem(net));
            }
        }
    }

    /// Expand ops against the mirror: drop adds covered by an active range, delete active
    /// elements a new range covers (and re-adds of the same net, to reset its timeout).
    fn plan(&mut self, ops: &[BanOp]) -> Vec<BanOp> {
        let now = Instant::now();
        self.mirror.retain(|_, e| e.is_none_or(|t| t > now));
        let mut out = Vec::new();
        for op in ops {
            match *op {
                BanOp::Add { net, timeout } => {
                    let net = net.trunc();
                    let until = timeout.map(|d| now + d);
                    let covering = self
                        .mirror
                        .iter()
                        .find(|(m, _)| **m != net && m.contains(&net))
                        .map(|(m, e)| (*m, *e));
                    if let Some((m, e)) = covering {
                        let lasts = match (e, until) {
                            (None, _) => true,
                            (Some(_), None) => false,
                            (Some(a), Some(b)) => a >= b,
                        };
                        if lasts {
                            log::debug!("ban of {net} skipped: inside active ban of {m}");
                            continue;
                        }
                    }
                    let covered: Vec<IpNet> =
                        self.mirror.keys().filter(|m| net.contains(*m)).copied().collect();
                    for c in covered {
                        out.push(BanOp::Remove(c));
                        self.mirror.remove(&c);
                    }
                    if let Some((m, _)) = covering {
                        // The new ban outlasts the range holding it: shorten nothing, widen
                        // nothing; re-add the range with the longer timeout instead.
                        out.push(BanOp::Remove(m));
                        self.mirror.remove(&m);
                        out.push(BanOp::Add { net: m, timeout });
                        self.mirror.insert(m, until);
                        continue;
                    }
                    out.push(BanOp::Add { net, timeout });
                    self.mirror.insert(net, until);
                }
                BanOp::Remove(net) => {
                    let net = net.trunc();
                    if self.mirror.remove(&net).is_some() {
                        out.push(BanOp::Remove(net));
                    } else {
                        // Not ours or already expired: try anyway, tolerate absence.
                        out.push(BanOp::Remove(net));
                    }
                }
            }
        }
        out
    }

    /// The nft batch for these ops (after planning against the mirror); for tests.
    pub fn render_batch(&mut self, ops: &[BanOp]) -> String {
        let planned = self.plan(ops);
        let mut o = String::new();
        for op in &planned {
            self.render(op, &mut o);
        }
        o
    }

    /// Apply ops in one transaction; on failure retry one by one, ignoring deletes of missing
    /// elements. Returns the first error that is not such a delete.
    pub fn apply(&mut self, ops: &[BanOp]) -> Result<(), FirewallError> {
        if ops.is_empty() {
            return Ok(());
        }
        let planned = self.plan(ops);
        if planned.is_empty() {
            return Ok(());
        }
        if self.apply_via_netlink(&planned)? {
            return Ok(());
        }
        let mut text = String::new();
        for op in &planned {
            self.render(op, &mut text);
        }
        if self.apply_via_shell(&text)? {
            return Ok(());
        }
        if run("updating ban sets", "nft", &["-f", "-"], Some(&text)).is_ok() {
            return Ok(());
        }
        let mut first_err = None;
        for op in &planned {
            let mut one = String::new();
            self.render(op, &mut one);
            if let Err(e) = run("updating ban sets", "nft", &["-f", "-"], Some(&one)) {
                let missing = matches!(op, BanOp::Remove(_))
                    && matches!(&e, FirewallError::Tool { stderr, .. }
                        if stderr.contains("does not exist") || stderr.contains("No such file"));
                if !missing && first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The batch replacing the static block list sets (`block4`/`block6`) with `nets`,
    /// overlaps merged (interval sets refuse them).
    pub fn render_blocklist(&self, nets: &[IpNet]) -> String {
        let t = &self.table;
        let mut o = format!("flush set inet {t} block4\nflush set inet {t} block6\n");
        let merged = IpNet::aggregate(&nets.iter().map(|n| n.trunc()).collect::<Vec<_>>());
        for (set, v4) in [("block4", true), ("block6", false)] {
            let elems: Vec<String> =
                merged.iter().filter(|n| matches!(n, IpNet::V4(_)) == v4).map(elem).collect();
            // Chunks keep each line short; still one transaction.
            for chunk in elems.chunks(512) {
                let _ = writeln!(o, "add element inet {t} {set} {{ {} }}", chunk.join(", "));
            }
        }
        o
    }

    /// Replace the static block list sets atomically (one transaction).
    pub fn replace_blocklist(&self, nets: &[IpNet]) -> Result<(), FirewallError> {
        run("replacing block list sets", "nft", &["-f", "-"], Some(&self.render_blocklist(nets)))
            .map(|_| ())
    }

    /// Elements currently in the kernel sets (read back with `nft -j list set`), as nets.
    pub fn list_kernel(&self) -> Result<Vec<IpNet>, FirewallError> {
        self.list_sets(&["ban4", "ban6"])
    }

    /// Elements of the static block list sets.
    pub fn list_blocklist(&self) -> Result<Vec<IpNet>, FirewallError> {
        self.list_sets(&["block4", "block6"])
    }

    fn list_sets(&self, sets: &[&str]) -> Result<Vec<IpNet>, FirewallError> {
        let mut out = Vec::new();
        for set in sets {
            let json = run(
                "listing ban set",
                "nft",
                &["-j", "list", "set", "inet", &self.table, *set],
                None,
            )?;
            let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
                FirewallError::Verify { table: self.table.clone(), what: format!("set JSON: {e}") }
            })?;
            collect_elems(&v, &mut out);
        }
        Ok(out)
    }
}

fn collect_elems(v: &serde_json::Value, out: &mut Vec<IpNet>) {
    let Some(items) = v.get("nftables").and_then(|n| n.as_array()) else { return };
    for item in items {
        let Some(elems) = item.get("set").and_then(|s| s.get("elem")).and_then(|e| e.as_array())
        else {
            continue;
        };
        for e in elems {
            // Plain: "1.2.3.4"; with timeout: {"elem": {"val": ..., "timeout": ..}};
            // prefix: {"prefix": {"addr": "...", "len": 24}}; range: {"range": [a, b]}.
            let val = e.get("elem").and_then(|x| x.get("val")).unwrap_or(e);
            if let Some(n) = value_to_net(val) {
                out.push(n);
            }
        }
    }
}

fn value_to_net(v: &serde_json::Value) -> Option<IpNet> {
    if let Some(s) = v.as_str() {
        let ip: std::net::IpAddr = s.parse().ok()?;
        return Some(IpNet::from(ip));
    }
    if let Some(p) = v.get("prefix") {
        let addr = p.get("addr")?.as_str()?;
        let len = p.get("len")?.as_u64()?;
        return format!("{addr}/{len}").parse().ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn batch_text_for_addresses_ranges_and_v6() {
        let mut b = BanSet::new("sipwall");
        let text = b.render_batch(&[
            BanOp::Add { net: n("203.0.113.5/32"), timeout: Some(Duration::from_secs(60)) },
            BanOp::Add { net: n("2001:db8::/48"), timeout: None },
            BanOp::Remove(n("198.51.100.7/32")),
        ]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn range_replaces_covered_addresses_and_covered_adds_are_skipped() {
        let mut b = BanSet::new("sipwall");
        let h = Some(Duration::from_secs(3600));
        b.render_batch(&[BanOp::Add { net: n("203.0.113.5/32"), timeout: h }]);
        let text = b.render_batch(&[BanOp::Add { net: n("203.0.113.0/24"), timeout: h }]);
        assert_eq!(
            text,
            "delete element inet sipwall ban4 { 203.0.113.5 }\n\
             add element inet sipwall ban4 { 203.0.113.0/24 timeout 3600000ms }\n"
        );
        let short = Some(Duration::from_secs(60));
        assert_eq!(b.render_batch(&[BanOp::Add { net: n("203.0.113.9/32"), timeout: short }]), "");
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn blocklist_batch_merges_overlaps_and_splits_families() {
        let b = BanSet::new("sipwall");
        let text = b.render_blocklist(&[
            n("203.0.113.0/24"),
            n("203.0.113.7/32"),
            n("2001:db8:bad::/48"),
            n("198.51.100.9/32"),
        ]);
        assert_eq!(
            text,
            "flush set inet sipwall block4\nflush set inet sipwall block6\n\
             add element inet sipwall block4 { 198.51.100.9, 203.0.113.0/24 }\n\
             add element inet sipwall block6 { 2001:db8:bad::/48 }\n"
        );
    }
}
