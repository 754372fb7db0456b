//! Ban set elements: add (with a kernel timeout) and remove IPv4/IPv6 addresses and ranges.
//!
//! Layout (see [`crate::Ruleset`]): exact addresses (/32, /128) go into plain hash sets with
//! timeouts (`ban_addr4`/`ban_addr6`: O(1), no overlap possible, insertion cost independent
//! of the set size); ranges go into interval sets (`ban_net4`/`ban_net6`) whose elements are
//! the disjoint segments of the union of the active range bans, each with the latest expiry
//! among the bans covering it ([`crate::segments`]).
//!
//! CONTRACT: after every successful [`BanSet::apply`] and [`BanSet::reconcile`], the kernel
//! drops exactly the union of the active bans: an address stays dropped as long as any ban
//! covers it, whatever the order, length and overlap of the bans. `Add` of a net that already
//! has a ban replaces that ban (the daemon's view: one ban per net, the latest decision).
//! A change to the ranges rewrites only the segments that differ (deletes, then adds, in ONE
//! transaction, so no packet sees a gap). The kernel ends each element at its own timeout, also
//! while no daemon runs.
//!
//! Three writers, fastest first: nf_tables netlink ([`BanSet::with_netlink`]), a long-lived
//! `nft -e -i` ([`BanSet::with_shell`]), one `nft -f -` process per batch; each falls back to
//! the next. If a batch fails (e.g. an element timed out in the kernel just before our delete,
//! or the kernel holds elements this writer does not know of, after adopting a table), the
//! address operations are retried one by one (deletes of missing elements ignored) and the
//! range sets are repaired from a read-back of the kernel, as [`BanSet::reconcile`] does.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::nftshell::{NftShell, ShellError};
use crate::nlset::{Key, NlOp, NlSetWriter};
use crate::ruleset::{SET_ADDR4, SET_ADDR6, SET_NET4, SET_NET6};
use crate::segments::{block_batches, segments};
use crate::tools::{run, FirewallError};

/// One change to the ban sets.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanOp {
    /// Add (or replace) the ban of a net; `None` = no timeout.
    Add {
        /// Address or range.
        net: IpNet,
        /// Kernel timeout.
        timeout: Option<Duration>,
    },
    /// Remove the ban of a net (other bans covering its addresses stay).
    Remove(IpNet),
}

/// One ban as the daemon knows it, for [`BanSet::reconcile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DesiredBan {
    /// Address or range.
    pub net: IpNet,
    /// Time left; `None` = no end.
    pub remaining: Option<Duration>,
}

/// What [`BanSet::reconcile`] found and repaired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Elements (addresses or range segments) the kernel lacked, added.
    pub missing_added: usize,
    /// Elements the kernel had that no active ban asks for, removed.
    pub stale_removed: usize,
    /// Elements present with a timeout more than [`RECONCILE_TOLERANCE`] off, re-added.
    pub timeouts_fixed: usize,
    /// Elements in the kernel after the repair (addresses plus range segments).
    pub kernel_elements: usize,
}

impl ReconcileReport {
    /// Number of repairs (0 = the kernel already matched).
    pub fn repairs(&self) -> usize {
        self.missing_added + self.stale_removed + self.timeouts_fixed
    }
}

/// How far a kernel element's remaining time may be from the ban's before reconcile re-adds
/// it (`nft -j` reports whole seconds, truncated).
pub const RECONCILE_TOLERANCE: Duration = Duration::from_secs(2);

/// When a ban ends; `Never` compares greatest (the segment computation takes the maximum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Until {
    At(Instant),
    Never,
}

impl Until {
    fn from_timeout(now: Instant, t: Option<Duration>) -> Until {
        t.map_or(Until::Never, |d| Until::At(now + d))
    }
    fn timeout(self, now: Instant) -> Option<Duration> {
        match self {
            Until::At(t) => Some(t.saturating_duration_since(now).max(Duration::from_millis(1))),
            Until::Never => None,
        }
    }
    fn active(self, now: Instant) -> bool {
        match self {
            Until::At(t) => t > now,
            Until::Never => true,
        }
    }
}

/// Address family of a range set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fam {
    V4,
    V6,
}

impl Fam {
    fn of(net: &IpNet) -> Fam {
        match net {
            IpNet::V4(_) => Fam::V4,
            IpNet::V6(_) => Fam::V6,
        }
    }
    fn range_set(self) -> &'static str {
        match self {
            Fam::V4 => SET_NET4,
            Fam::V6 => SET_NET6,
        }
    }
    fn addr(self, v: u128) -> IpAddr {
        match self {
            Fam::V4 => IpAddr::V4(Ipv4Addr::from(v as u32)),
            Fam::V6 => IpAddr::V6(Ipv6Addr::from(v)),
        }
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn is_exact(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

fn addr_set(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => SET_ADDR4,
        IpAddr::V6(_) => SET_ADDR6,
    }
}

type Seg = (u128, u128, Until);

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
    /// Active bans: net -> end.
    bans: BTreeMap<IpNet, Until>,
    /// The range segments last written to the kernel, per family (v4, v6).
    segs: [Vec<Seg>; 2],
    /// The block-list ranges last written (first, last), per family; None = read them back.
    block: Option<[Vec<(u128, u128)>; 2]>,
}

/// What [`BanSet::replace_blocklist_in_batches`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlocklistReport {
    /// Ranges added.
    pub added: usize,
    /// Ranges removed.
    pub removed: usize,
    /// Kernel transactions used.
    pub transactions: usize,
}

fn fam_idx(f: Fam) -> usize {
    match f {
        Fam::V4 => 0,
        Fam::V6 => 1,
    }
}

fn render_key(key: &Key) -> String {
    match *key {
        Key::Addr(a) => a.to_string(),
        Key::Range(a, b) if a == b => a.to_string(),
        Key::Range(a, b) => format!("{a}-{b}"),
    }
}

fn timeout_text(t: Duration) -> String {
    format!("{}ms", t.as_millis().max(1))
}

/// One element read back from the kernel: key and remaining time (None = no timeout).
type KernelElem = (Key, Option<Duration>);

impl BanSet {
    /// Writer for the sets of table `inet <table>`.
    pub fn new(table: &str) -> Self {
        BanSet {
            table: table.to_string(),
            shell: None,
            use_shell: false,
            netlink: None,
            use_netlink: false,
            bans: BTreeMap::new(),
            segs: [Vec::new(), Vec::new()],
            block: None,
        }
    }

    /// Write elements straight to nf_tables over netlink, with the `nft -i` shell and then
    /// `nft -f -` as fallbacks.
    pub fn with_netlink(mut self) -> Self {
        self.use_netlink = true;
        self.use_shell = true;
        self
    }

    /// Send updates through a long-lived `nft -e -i` (~0.5 ms a batch instead of a process
    /// start per batch), falling back to `nft -f -` if it fails.
    pub fn with_shell(mut self) -> Self {
        self.use_shell = true;
        self
    }

    /// Number of bans believed active.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.bans.values().filter(|u| u.active(now)).count()
    }

    /// True if no ban is believed active.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Try netlink; Ok(true) = applied, Ok(false) = not usable now, Err = the kernel refused.
    fn send_netlink(&mut self, ops: &[NlOp]) -> Result<bool, std::io::Error> {
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
        w.apply(ops).map(|()| true)
    }

    /// Try the shell; Ok(true) = applied, Ok(false) = not usable now.
    fn send_shell(&mut self, text: &str) -> Result<bool, FirewallError> {
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
            Err(ShellError::Nft(msg)) => Err(FirewallError::Tool {
                op: "updating ban sets",
                tool: "nft -i".into(),
                status: "error".into(),
                stderr: msg,
            }),
            Err(e) => {
                log::warn!("{e}; restarting it on the next update, nft -f now");
                self.shell = None;
                Ok(false)
            }
        }
    }

    /// Apply `ops` as ONE transaction through the fastest working writer.
    fn send(&mut self, ops: &[NlOp]) -> Result<(), FirewallError> {
        if ops.is_empty() {
            return Ok(());
        }
        match self.send_netlink(ops) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => {
                return Err(FirewallError::Tool {
                    op: "updating ban sets",
                    tool: "nf_tables netlink".into(),
                    status: format!("{} element change(s)", ops.len()),
                    stderr: e.to_string(),
                })
            }
        }
        let text = self.render_ops(ops);
        // `nft -i` runs each line as its own transaction: only single-op batches go there, so
        // a multi-op batch stays atomic.
        if ops.len() == 1 && self.send_shell(&text)? {
            return Ok(());
        }
        run("updating ban sets", "nft", &["-f", "-"], Some(&text)).map(|_| ())
    }

    /// Send ops one by one, ignoring deletes of elements that are already gone. Returns the
    /// first other error.
    fn send_each(&mut self, ops: &[NlOp]) -> Result<(), FirewallError> {
        let mut first_err = None;
        for op in ops {
            if let Err(e) = self.send(std::slice::from_ref(op)) {
                let gone = matches!(op, NlOp::Del(..))
                    && matches!(&e, FirewallError::Tool { stderr, .. }
                        if stderr.contains("No such file") || stderr.contains("does not exist")
                            || stderr.contains(&std::io::Error::from_raw_os_error(libc::ENOENT)
                                .to_string()));
                if !gone && first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn render_ops(&self, ops: &[NlOp]) -> String {
        let t = &self.table;
        let mut o = String::new();
        for op in ops {
            match op {
                NlOp::Add(set, key, timeout) => {
                    let to = timeout.map(|d| format!(" timeout {}", timeout_text(d)));
                    let to = to.unwrap_or_default();
                    let _ = writeln!(o, "add element inet {t} {set} {{ {}{to} }}", render_key(key));
                }
                NlOp::Del(set, key) => {
                    let _ = writeln!(o, "delete element inet {t} {set} {{ {} }}", render_key(key));
                }
            }
        }
        o
    }

    /// The range segments the active bans of `fam` ask for.
    fn desired_segs(&self, fam: Fam, now: Instant) -> Vec<Seg> {
        let ranges: Vec<Seg> = self
            .bans
            .iter()
            .filter(|(n, u)| Fam::of(n) == fam && !is_exact(n) && u.active(now))
            .map(|(n, u)| (to_u128(n.network()), to_u128(n.broadcast()), *u))
            .collect();
        segments(&ranges)
    }

    fn seg_key(fam: Fam, s: &Seg) -> Key {
        Key::Range(fam.addr(s.0), fam.addr(s.1))
    }

    /// Update the bans with `ops`; returns (ops certain to apply, deletes of addresses this
    /// writer never added, range families changed).
    fn plan(&mut self, ops: &[BanOp]) -> (Vec<NlOp>, Vec<NlOp>, Vec<Fam>) {
        let now = Instant::now();
        self.bans.retain(|_, u| u.active(now));
        for segs in &mut self.segs {
            segs.retain(|s| s.2.active(now));
        }
        let (mut sure, mut unsure, mut dirty) = (Vec::new(), Vec::new(), Vec::new());
        for op in ops {
            match *op {
                BanOp::Add { net, timeout } => {
                    let net = net.trunc();
                    let until = Until::from_timeout(now, timeout);
                    let before = self.bans.insert(net, until);
                    if is_exact(&net) {
                        let (a, key) = (net.addr(), Key::Addr(net.addr()));
                        if before.is_some_and(|b| b != until) {
                            // Kernels before 6.x keep the old timeout on a re-add.
                            sure.push(NlOp::Del(addr_set(a), key));
                        }
                        sure.push(NlOp::Add(addr_set(a), key, timeout));
                    } else if !dirty.contains(&Fam::of(&net)) {
                        dirty.push(Fam::of(&net));
                    }
                }
                BanOp::Remove(net) => {
                    let net = net.trunc();
                    let before = self.bans.remove(&net);
                    if is_exact(&net) {
                        let op = NlOp::Del(addr_set(net.addr()), Key::Addr(net.addr()));
                        if before.is_some() {
                            sure.push(op)
                        } else {
                            unsure.push(op)
                        }
                    } else if !dirty.contains(&Fam::of(&net)) {
                        dirty.push(Fam::of(&net));
                    }
                }
            }
        }
        // Per changed family: delete the segments that differ, then add the new ones.
        for &fam in &dirty {
            let new = self.desired_segs(fam, now);
            let old = std::mem::take(&mut self.segs[fam_idx(fam)]);
            let (olds, news): (BTreeSet<&Seg>, BTreeSet<&Seg>) =
                (old.iter().collect(), new.iter().collect());
            for s in old.iter().filter(|s| !news.contains(s)) {
                sure.push(NlOp::Del(fam.range_set(), Self::seg_key(fam, s)));
            }
            for s in new.iter().filter(|s| !olds.contains(s)) {
                sure.push(NlOp::Add(fam.range_set(), Self::seg_key(fam, s), s.2.timeout(now)));
            }
            self.segs[fam_idx(fam)] = new;
        }
        // Deletes first: a new segment may overlap an old one it replaces.
        sure.sort_by_key(|op| matches!(op, NlOp::Add(..)));
        (sure, unsure, dirty)
    }

    /// The nft text of the transaction these ops make (after planning against the active
    /// bans); for tests and snapshots.
    pub fn render_batch(&mut self, ops: &[BanOp]) -> String {
        let (sure, unsure, _) = self.plan(ops);
        let mut all = sure;
        all.extend(unsure);
        self.render_ops(&all)
    }

    /// Apply ops in ONE transaction (see the module's contract). On failure, retries the
    /// address changes one by one (deletes of missing elements ignored) and repairs the changed
    /// range sets from a read-back of the kernel. Returns the first error that remains.
    pub fn apply(&mut self, ops: &[BanOp]) -> Result<(), FirewallError> {
        let (sure, unsure, dirty) = self.plan(ops);
        let mut result = Ok(());
        if self.send(&sure).is_err() {
            let addr_ops: Vec<NlOp> = sure
                .iter()
                .filter(|op| {
                    matches!(op, NlOp::Add(_, Key::Addr(_), _) | NlOp::Del(_, Key::Addr(_)))
                })
                .copied()
                .collect();
            result = self.send_each(&addr_ops);
            let sets: Vec<&'static str> = dirty.iter().map(|f| f.range_set()).collect();
            if !sets.is_empty() {
                let r = self.reconcile_sets(&sets).map(|_| ());
                result = result.and(r);
            }
        }
        let r = self.send_each(&unsure);
        result.and(r)
    }

    /// Make the kernel sets equal the union of `desired` (the daemon's active bans, which
    /// replace what this writer knew): reads every ban set back (`nft -j list set`), adds what
    /// is missing, removes what no ban asks for, re-adds elements whose remaining time is more
    /// than [`RECONCILE_TOLERANCE`] off, all in ONE transaction, and reports the counts. Meant
    /// to run periodically (and once after [`crate::Firewall::install`] adopted a table).
    pub fn reconcile(&mut self, desired: &[DesiredBan]) -> Result<ReconcileReport, FirewallError> {
        let now = Instant::now();
        self.bans.clear();
        for d in desired {
            let until = Until::from_timeout(now, d.remaining);
            let e = self.bans.entry(d.net.trunc()).or_insert(until);
            *e = (*e).max(until);
        }
        self.reconcile_sets(&[SET_ADDR4, SET_ADDR6, SET_NET4, SET_NET6])
    }

    /// What the bans ask of `set`: key -> remaining time.
    fn desired_elems(&self, set: &str, now: Instant) -> HashMap<Key, Option<Duration>> {
        let mut out = HashMap::new();
        for (fam, rs) in [(Fam::V4, SET_NET4), (Fam::V6, SET_NET6)] {
            if set == rs {
                for s in self.desired_segs(fam, now) {
                    out.insert(Self::seg_key(fam, &s), s.2.timeout(now));
                }
                return out;
            }
        }
        for (n, u) in &self.bans {
            if is_exact(n) && addr_set(n.addr()) == set && u.active(now) {
                out.insert(Key::Addr(n.addr()), u.timeout(now));
            }
        }
        out
    }

    fn reconcile_sets(&mut self, sets: &[&'static str]) -> Result<ReconcileReport, FirewallError> {
        let mut report = ReconcileReport::default();
        let (mut dels, mut adds) = (Vec::new(), Vec::new());
        let now = Instant::now();
        for &set in sets {
            let want = self.desired_elems(set, now);
            let range = set == SET_NET4 || set == SET_NET6;
            let have: HashMap<Key, Option<Duration>> =
                self.read_set(set, range)?.into_iter().collect();
            for (key, left) in &have {
                match want.get(key) {
                    None => {
                        report.stale_removed += 1;
                        dels.push(NlOp::Del(set, *key));
                    }
                    Some(w) if !close(*w, *left) => {
                        report.timeouts_fixed += 1;
                        dels.push(NlOp::Del(set, *key));
                        adds.push(NlOp::Add(set, *key, *w));
                    }
                    Some(_) => {}
                }
            }
            for (key, w) in &want {
                if !have.contains_key(key) {
                    report.missing_added += 1;
                    adds.push(NlOp::Add(set, *key, *w));
                }
            }
            report.kernel_elements += want.len();
        }
        dels.extend(adds);
        self.send(&dels)?;
        for (fam, rs) in [(Fam::V4, SET_NET4), (Fam::V6, SET_NET6)] {
            if sets.contains(&rs) {
                self.segs[fam_idx(fam)] = self.desired_segs(fam, now);
            }
        }
        if report.repairs() > 0 {
            log::debug!("ban sets reconciled: {report:?}");
        }
        Ok(report)
    }

    /// The elements of one set with their remaining time.
    fn read_set(&self, set: &str, range: bool) -> Result<Vec<KernelElem>, FirewallError> {
        let json = run(
            "listing a ban set",
            "nft",
            &["-j", "list", "set", "inet", &self.table, set],
            None,
        )?;
        let v: serde_json::Value =
            serde_json::from_str(&json).map_err(|e| FirewallError::Verify {
                table: self.table.clone(),
                what: format!("set {set} JSON: {e}"),
            })?;
        let mut out = Vec::new();
        for e in set_elems(&v) {
            let (val, inner) = match e.get("elem") {
                Some(x) => (x.get("val").unwrap_or(x), Some(x)),
                None => (e, None),
            };
            let Some((a, b)) = value_to_range(val) else { continue };
            let key = if range { Key::Range(a, b) } else { Key::Addr(a) };
            // "expires" (seconds left) is there whenever "timeout" is; absent = no timeout.
            let left = inner.filter(|x| x.get("timeout").is_some()).map(|x| {
                Duration::from_secs(x.get("expires").and_then(|s| s.as_u64()).unwrap_or(0))
            });
            out.push((key, left));
        }
        Ok(out)
    }

    /// Elements currently in the kernel ban sets (read back with `nft -j list set`), as nets:
    /// addresses as /32 or /128, range segments as the fewest nets covering them.
    pub fn list_kernel(&self) -> Result<Vec<IpNet>, FirewallError> {
        let mut out = Vec::new();
        for (set, range) in
            [(SET_ADDR4, false), (SET_ADDR6, false), (SET_NET4, true), (SET_NET6, true)]
        {
            for (key, _) in self.read_set(set, range)? {
                match key {
                    Key::Addr(a) => out.push(IpNet::from(a)),
                    Key::Range(a, b) => out.extend(range_nets(a, b)),
                }
            }
        }
        Ok(out)
    }

    /// Replace the static block lists (`block4`/`block6`) with `nets` incrementally: only
    /// the ranges that change are written, in transactions of about `batch` element changes
    /// each (overlapping old and new ranges always change in the same transaction), calling
    /// `progress(done, total)` after each. An address in both the old and the new list stays
    /// dropped throughout; one only in the old list goes, one only in the new list comes, in
    /// address order. Nothing here waits on the ban path: the daemon runs it on its own thread
    /// with its own `BanSet` (its own netlink socket), so bans keep reaching the kernel while a
    /// 1M-entry list loads. The first call reads the current sets back once; on error the next
    /// call reads them back again.
    pub fn replace_blocklist_in_batches(
        &mut self,
        nets: &[IpNet],
        batch: usize,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<BlocklistReport, FirewallError> {
        let old = match self.block.take() {
            Some(b) => b,
            None => {
                let mut b: [Vec<(u128, u128)>; 2] = [Vec::new(), Vec::new()];
                for (k, set) in ["block4", "block6"].into_iter().enumerate() {
                    for (key, _) in self.read_set(set, true)? {
                        if let Key::Range(a, z) = key {
                            b[k].push((to_u128(a), to_u128(z)));
                        }
                    }
                    b[k].sort_unstable();
                }
                b
            }
        };
        let merged = IpNet::aggregate(&nets.iter().map(|n| n.trunc()).collect::<Vec<_>>());
        let mut new: [Vec<(u128, u128)>; 2] = [Vec::new(), Vec::new()];
        for n in &merged {
            new[fam_idx(Fam::of(n))].push((to_u128(n.network()), to_u128(n.broadcast())));
        }
        for v in &mut new {
            v.sort_unstable();
        }
        let mut plans = Vec::new();
        for (k, (fam, set)) in [(Fam::V4, "block4"), (Fam::V6, "block6")].into_iter().enumerate() {
            for (dels, adds) in block_batches(&old[k], &new[k], batch) {
                let mut ops: Vec<NlOp> = dels
                    .iter()
                    .map(|r| NlOp::Del(set, Key::Range(fam.addr(r.0), fam.addr(r.1))))
                    .collect();
                let (d, a) = (dels.len(), adds.len());
                ops.extend(
                    adds.iter()
                        .map(|r| NlOp::Add(set, Key::Range(fam.addr(r.0), fam.addr(r.1)), None)),
                );
                plans.push((ops, d, a));
            }
        }
        let total = plans.len();
        let mut report = BlocklistReport::default();
        for (i, (ops, d, a)) in plans.into_iter().enumerate() {
            self.send(&ops)?; // on error self.block stays None: read back next time
            report.removed += d;
            report.added += a;
            report.transactions += 1;
            progress(i + 1, total);
        }
        self.block = Some(new);
        Ok(report)
    }

    /// Elements of the static block list sets.
    pub fn list_blocklist(&self) -> Result<Vec<IpNet>, FirewallError> {
        let mut out = Vec::new();
        for set in ["block4", "block6"] {
            for (key, _) in self.read_set(set, true)? {
                if let Key::Range(a, b) = key {
                    out.extend(range_nets(a, b));
                }
            }
        }
        Ok(out)
    }

    /// The batch replacing the static block list sets (`block4`/`block6`) with `nets`,
    /// overlaps merged (interval sets refuse them).
    pub fn render_blocklist(&self, nets: &[IpNet]) -> String {
        let t = &self.table;
        let mut o = format!("flush set inet {t} block4\nflush set inet {t} block6\n");
        let merged = IpNet::aggregate(&nets.iter().map(|n| n.trunc()).collect::<Vec<_>>());
        for (set, v4) in [("block4", true), ("block6", false)] {
            let elems: Vec<String> = merged
                .iter()
                .filter(|n| matches!(n, IpNet::V4(_)) == v4)
                .map(|n| if is_exact(n) { n.addr().to_string() } else { n.to_string() })
                .collect();
            // Chunks keep each line short; still one transaction.
            for chunk in elems.chunks(512) {
                let _ = writeln!(o, "add element inet {t} {set} {{ {} }}", chunk.join(", "));
            }
        }
        o
    }

    /// Replace the static block list sets atomically (one transaction).
    pub fn replace_blocklist(&mut self, nets: &[IpNet]) -> Result<(), FirewallError> {
        self.block = None;
        run("replacing block list sets", "nft", &["-f", "-"], Some(&self.render_blocklist(nets)))
            .map(|_| ())
    }
}

/// Remaining times equal within [`RECONCILE_TOLERANCE`] (both none counts as equal).
fn close(want: Option<Duration>, have: Option<Duration>) -> bool {
    match (want, have) {
        (None, None) => true,
        (Some(w), Some(h)) => w.abs_diff(h) <= RECONCILE_TOLERANCE,
        _ => false,
    }
}

fn range_nets(a: IpAddr, b: IpAddr) -> Vec<IpNet> {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => ipnet::Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect(),
        (IpAddr::V6(a), IpAddr::V6(b)) => ipnet::Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect(),
        _ => Vec::new(),
    }
}

fn set_elems(v: &serde_json::Value) -> Vec<&serde_json::Value> {
    let Some(items) = v.get("nftables").and_then(|n| n.as_array()) else { return Vec::new() };
    items
        .iter()
        .filter_map(|i| i.get("set").and_then(|s| s.get("elem")).and_then(|e| e.as_array()))
        .flatten()
        .collect()
}

/// An element value as nft prints it: "1.2.3.4", {"prefix": {"addr", "len"}} or
/// {"range": [a, b]}; as (first, last).
fn value_to_range(v: &serde_json::Value) -> Option<(IpAddr, IpAddr)> {
    if let Some(s) = v.as_str() {
        let ip: IpAddr = s.parse().ok()?;
        return Some((ip, ip));
    }
    if let Some(p) = v.get("prefix") {
        let addr = p.get("addr")?.as_str()?;
        let len = p.get("len")?.as_u64()?;
        let net: IpNet = format!("{addr}/{len}").parse().ok()?;
        return Some((net.network(), net.broadcast()));
    }
    let r = v.get("range")?.as_array()?;
    let a: IpAddr = r.first()?.as_str()?.parse().ok()?;
    let b: IpAddr = r.get(1)?.as_str()?.parse().ok()?;
    Some((a, b))
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
    fn a_shorter_range_over_a_longer_address_leaves_the_address_in_its_own_set() {
        let mut b = BanSet::new("sipwall");
        let h = Some(Duration::from_secs(3600));
        assert_eq!(
            b.render_batch(&[BanOp::Add { net: n("203.0.113.10/32"), timeout: h }]),
            "add element inet sipwall ban_addr4 { 203.0.113.10 timeout 3600000ms }\n"
        );
        let short = Some(Duration::from_secs(15));
        let text = b.render_batch(&[BanOp::Add { net: n("203.0.113.0/24"), timeout: short }]);
        assert!(!text.contains("ban_addr4"), "{text}");
        assert!(
            text.starts_with(
                "add element inet sipwall ban_net4 { 203.0.113.0-203.0.113.255 timeout"
            ),
            "{text}"
        );
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn overlapping_ranges_rewrite_only_the_segments_that_change() {
        let mut b = BanSet::new("sipwall");
        let long = Some(Duration::from_secs(3600));
        let short = Some(Duration::from_secs(15));
        b.render_batch(&[BanOp::Add { net: n("198.51.100.0/24"), timeout: long }]);
        b.render_batch(&[BanOp::Add { net: n("192.0.2.0/28"), timeout: long }]);
        // A wider, shorter range over the /28: the /28 piece keeps its hour, the rest gets 15 s;
        // the unrelated /24 is not touched.
        let text = b.render_batch(&[BanOp::Add { net: n("192.0.2.0/24"), timeout: short }]);
        // the /28 segment is unchanged (same bounds, same expiry): only the rest is added
        assert_eq!(
            text,
            "add element inet sipwall ban_net4 { 192.0.2.16-192.0.2.255 timeout 15000ms }\n"
        );
        assert!(!text.contains("198.51.100"), "{text}");
        // Removing the /28 ban: its piece now lasts as long as the /24 (merged, 15 s).
        let text = b.render_batch(&[BanOp::Remove(n("192.0.2.0/28"))]);
        assert!(
            text.contains("add element inet sipwall ban_net4 { 192.0.2.0-192.0.2.255 timeout"),
            "{text}"
        );
        assert_eq!(text.lines().filter(|l| l.starts_with("delete")).count(), 2, "{text}");
    }

    #[test]
    fn kernel_json_values_read_as_ranges() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"nftables": [{"set": {"elem": [
                {"elem": {"val": {"range": ["192.0.2.0", "192.0.2.9"]}, "timeout": 30, "expires": 29}},
                {"prefix": {"addr": "198.51.100.0", "len": 24}}, "2001:db8::1"]}}]}"#,
        )
        .unwrap();
        let got: Vec<_> = set_elems(&v)
            .into_iter()
            .filter_map(|e| value_to_range(e.get("elem").and_then(|x| x.get("val")).unwrap_or(e)))
            .collect();
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            got,
            vec![
                (a("192.0.2.0"), a("192.0.2.9")),
                (a("198.51.100.0"), a("198.51.100.255")),
                (a("2001:db8::1"), a("2001:db8::1")),
            ]
        );
        assert!(close(Some(Duration::from_millis(29_900)), Some(Duration::from_secs(29))));
        assert!(!close(Some(Duration::from_secs(60)), Some(Duration::from_secs(29))));
        assert!(!close(None, Some(Duration::from_secs(29))));
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
