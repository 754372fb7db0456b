//! Run-time trust (`sipwall trust add|del|list`, `/api/v1/trust`): networks trusted on top of
//! the config's `[trusted] networks`, kept in the store (table `trusted`) across restarts.
//!
//! CONTRACT:
//! * The config stays the baseline: its networks are listed as `config`, cannot be removed
//!   here, and a reload replaces them (the run-time ones are added again to every reloaded
//!   policy, [`RuntimeTrust::reload_engine`]).
//! * A run-time trusted network is trusted exactly like a configured one, at once: it is put
//!   into the engine's policy (`Engine::reload` with the merged policy), so the engine's one
//!   trust check applies to every ban path (detection, aggregation, manual bans) and the bans it
//!   now covers are lifted (the `Remove` actions `reload` returns, applied by the ban worker
//!   like the unbans of a config reload). No engine API beyond `policy()` and `reload()`.
//! * A network that overlaps a block list entry is refused: block lists are kernel sets that
//!   drop before sipwall judges, so trusting it would be a promise the kernel does not keep.
//! * The kernel's trusted fast path ([`sipwall_netfilter::FastPath`], `[enforce]
//!   trusted_fast_path`: UDP requests from trusted networks skip the queue) follows the merged
//!   list: a network leaving trust leaves the fast path BEFORE the engine stops trusting it
//!   (`del` fails if the kernel cannot drop it; a reload first narrows the fast path to the
//!   networks trusted before and after), and joins it after. At most [`MAX_FAST_PATH`]
//!   networks, none overlapping `[enforce] protected` (in router mode the fast path cannot
//!   tell the protected side's own requests from inbound ones); the rest are queued.
//! * Lock order: `changing` (one trust change or reload at a time, held throughout), the
//!   engine, then this list; the store is written and the kernel rewritten with no engine lock
//!   held (no I/O under it).
//! * Without a store (the daemon runs on an in-memory one), run-time trust lives in memory
//!   only and says so.
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

use ipnet::IpNet;
use sipwall_engine::{BanAction, Engine, NetSet, Policy, Timestamp};
use sipwall_store::TrustedNet;

use crate::protocol::TrustView;

/// Most run-time trusted networks (a bound, so a script in a loop cannot grow the policy
/// without end; the config has no such limit).
pub const MAX_RUNTIME_TRUSTED: usize = 10_000;

/// Most networks on the kernel's trusted fast path: the iptables backend tests them one rule
/// each for every packet to a guarded port, so the list stays short. The config's networks
/// come first; trusted networks past the bound are trusted by the engine and queued.
pub const MAX_FAST_PATH: usize = 64;

/// The run-time trusted networks and the config's baseline.
#[derive(Debug)]
pub struct RuntimeTrust {
    inner: Mutex<Inner>,
    /// The store file (None: the daemon runs without one; trust is kept in memory only).
    db: Option<PathBuf>,
    /// One trust change (add, del, reload) at a time, from its first kernel write to its last.
    changing: Mutex<()>,
    /// The kernel's fast path, once the firewall is installed (never with it turned off).
    kernel: OnceLock<KernelTrust>,
}

/// The kernel's trusted fast path and the networks it must never cover.
#[derive(Debug)]
struct KernelTrust {
    fast: sipwall_netfilter::FastPath,
    exclude: Vec<IpNet>,
}

impl KernelTrust {
    /// Shrink the fast path to `nets` (a subset of what is on it): if that write fails, empty
    /// it (everything queued: always safe); Err only if the kernel refused both.
    fn narrow_to(&self, nets: &[IpNet]) -> Result<(), String> {
        let Err(first) = self.fast.set(nets) else { return Ok(()) };
        log::error!(
            "trusted fast path not narrowed ({first}); emptying it: trusted requests are queued"
        );
        self.fast.set(&[]).map_err(|e| {
            format!(
                "the kernel's trusted fast path could be neither narrowed ({first}) nor emptied \
                 ({e})"
            )
        })
    }
}

/// The fast path's networks: `trusted` in order, without those overlapping `exclude`, at most
/// [`MAX_FAST_PATH`].
pub fn fast_path_networks<'a>(
    trusted: impl IntoIterator<Item = &'a IpNet>,
    exclude: &[IpNet],
) -> Vec<IpNet> {
    let mut v: Vec<IpNet> = Vec::new();
    for n in trusted {
        if exclude.iter().any(|p| p.contains(n) || n.contains(p)) || v.contains(n) {
            continue;
        }
        if v.len() == MAX_FAST_PATH {
            log::warn!(
                "trusted fast path: more than {MAX_FAST_PATH} trusted networks; {n} and the rest \
                 are trusted but queued (merge them into fewer, wider networks)"
            );
            break;
        }
        v.push(*n);
    }
    v
}

#[derive(Debug, Default)]
struct Inner {
    /// `[trusted] networks` of the config in force.
    baseline: NetSet,
    /// Added at run time, in the order added.
    added: Vec<TrustedNet>,
}

impl Inner {
    /// `policy` with its trusted networks set to the baseline plus the run-time ones.
    fn merged(&self, mut policy: Policy) -> Policy {
        let mut set = self.baseline.clone();
        for t in &self.added {
            set.insert(t.net);
        }
        policy.trusted = set;
        policy
    }

    /// The fast path's networks: the baseline networks `keep` accepts, and the run-time ones
    /// except `without`.
    fn fast_path(
        &self,
        keep: impl Fn(&IpNet) -> bool,
        without: Option<IpNet>,
        exclude: &[IpNet],
    ) -> Vec<IpNet> {
        let baseline = self.baseline.iter().filter(|n| keep(n));
        let added = self.added.iter().map(|t| &t.net).filter(|n| Some(**n) != without);
        fast_path_networks(baseline.chain(added), exclude)
    }
}

impl RuntimeTrust {
    /// For the config's `policy` (its trusted networks are the baseline), with the run-time
    /// networks `stored` (from the store) and the store file `db` to keep changes in.
    pub fn new(policy: &Policy, stored: Vec<TrustedNet>, db: Option<PathBuf>) -> RuntimeTrust {
        RuntimeTrust {
            inner: Mutex::new(Inner { baseline: policy.trusted.clone(), added: stored }),
            db,
            changing: Mutex::new(()),
            kernel: OnceLock::new(),
        }
    }

    /// At start: the networks kept in `store` (unless the daemon runs without its store,
    /// `unavailable`), the store file `db` for later changes.
    pub fn load(
        store: &sipwall_store::Store,
        policy: &Policy,
        db: &std::path::Path,
        unavailable: &Option<String>,
    ) -> RuntimeTrust {
        if unavailable.is_some() {
            return RuntimeTrust::new(policy, Vec::new(), None);
        }
        let stored = store.load_trusted().unwrap_or_else(|e| {
            log::error!("run-time trusted networks not restored: {e}");
            Vec::new()
        });
        if !stored.is_empty() {
            let nets: Vec<String> = stored.iter().map(|t| t.net.to_string()).collect();
            log::info!("trusted at run time (from the store): {}", nets.join(", "));
        }
        RuntimeTrust::new(policy, stored, Some(db.to_path_buf()))
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Only pushes, removes and replacements under the lock: consistent after a panic.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hold while changing trust (see the lock order in the module docs).
    pub fn changing(&self) -> MutexGuard<'_, ()> {
        self.changing.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Feed the kernel's fast path from now on (the firewall is installed with the networks
    /// [`RuntimeTrust::fast_path_networks`] gave, so this writes nothing unless they changed).
    pub fn attach_fast_path(&self, fast: sipwall_netfilter::FastPath, exclude: Vec<IpNet>) {
        let _ = self.kernel.set(KernelTrust { fast, exclude });
        let _g = self.changing();
        self.sync_fast_path();
    }

    /// The fast path's networks for the merged list now.
    pub fn fast_path_networks(&self, exclude: &[IpNet]) -> Vec<IpNet> {
        self.inner().fast_path(|_| true, None, exclude)
    }

    /// Write the merged list to the kernel's fast path (hold [`RuntimeTrust::changing`]).
    /// A failure is logged: the networks stay queued and trusted by the engine, and the next
    /// change writes again.
    pub fn sync_fast_path(&self) {
        let Some(k) = self.kernel.get() else { return };
        let nets = self.fast_path_networks(&k.exclude);
        if let Err(e) = k.fast.set(&nets) {
            log::error!("trusted fast path not updated (its networks stay queued): {e}");
        }
    }

    /// Before a reload makes `next` the config's trusted networks: keep on the fast path only
    /// what is trusted both before and after, so a network leaving trust is queued again
    /// before the engine stops trusting it (hold [`RuntimeTrust::changing`]). Err: the
    /// kernel may still let a leaving network skip the queue; the reload must not go on.
    pub fn narrow_fast_path(&self, next: &NetSet) -> Result<(), String> {
        let Some(k) = self.kernel.get() else { return Ok(()) };
        let nets = self.inner().fast_path(|n| next.iter().any(|m| m.contains(n)), None, &k.exclude);
        k.narrow_to(&nets)
    }

    /// The config's `policy` with the run-time trusted networks added (at start).
    pub fn merged(&self, policy: Policy) -> Policy {
        self.inner().merged(policy)
    }

    /// A reload: `policy` (freshly read from the config) becomes the baseline, the run-time
    /// networks are added to it, and the engine takes it. Returns the bans to lift.
    pub fn reload_engine(&self, engine: &mut Engine, policy: Policy) -> Vec<BanAction> {
        let mut inner = self.inner();
        inner.baseline = policy.trusted.clone();
        engine.reload(inner.merged(policy))
    }

    /// Every trusted network: the config's first, then the run-time ones.
    pub fn list(&self) -> Vec<TrustView> {
        let inner = self.inner();
        let mut v: Vec<TrustView> = inner
            .baseline
            .iter()
            .map(|n| TrustView {
                net: n.to_string(),
                origin: "config".into(),
                since_ms: None,
                reason: "[trusted] networks".into(),
            })
            .collect();
        v.extend(inner.added.iter().map(|t| TrustView {
            net: t.net.to_string(),
            origin: "runtime".into(),
            since_ms: Some(t.since.as_millis()),
            reason: t.reason.clone(),
        }));
        v
    }

    /// Is the store in use (changes survive a restart)?
    pub fn durable(&self) -> bool {
        self.db.is_some()
    }

    /// Trust `net` from `now` for `reason`: checked, stored, then in force in `engine`.
    /// Returns the bans to lift (the caller hands them to the ban worker).
    pub fn add(
        &self,
        engine: &Mutex<Engine>,
        net: IpNet,
        reason: &str,
        now: Timestamp,
    ) -> Result<Vec<BanAction>, String> {
        let _change = self.changing();
        {
            let inner = self.inner();
            if let Some(t) = inner.added.iter().find(|t| t.net == net) {
                return Err(format!("{net} is trusted already (since {}: {})", rfc(t), t.reason));
            }
            if inner.baseline.iter().any(|b| b.contains(&net)) {
                return Err(format!("{net} is trusted by the config already ([trusted] networks)"));
            }
            if inner.added.len() >= MAX_RUNTIME_TRUSTED {
                return Err(format!(
                    "{MAX_RUNTIME_TRUSTED} networks are trusted at run time already: put them \
                     into the config's [trusted] networks"
                ));
            }
        }
        if let Some(b) = super::lock(engine).policy().blocklist.first_overlapping(net) {
            return Err(format!(
                "{net} overlaps the block list entry {b}: the kernel drops block-listed sources \
                 before sipwall judges them; remove it from [blocklist] first"
            ));
        }
        if let Some(db) = &self.db {
            let mut store = sipwall_store::Store::open(db).map_err(|e| e.to_string())?;
            store.add_trusted(net, now, reason).map_err(|e| e.to_string())?;
        }
        let lifted = {
            let mut e = super::lock(engine);
            let mut inner = self.inner();
            if inner.added.iter().all(|t| t.net != net) {
                inner.added.push(TrustedNet { net, since: now, reason: reason.to_string() });
            }
            let policy = inner.merged(e.policy().clone());
            e.reload(policy)
        };
        // Joins the fast path after the engine trusts it (no engine lock held here).
        self.sync_fast_path();
        Ok(lifted)
    }

    /// Stop trusting `net` (exactly as added at run time; the config's stay).
    pub fn del(&self, engine: &Mutex<Engine>, net: IpNet) -> Result<(), String> {
        let _change = self.changing();
        {
            let inner = self.inner();
            if inner.added.iter().all(|t| t.net != net) {
                return Err(if inner.baseline.iter().any(|b| *b == net) {
                    format!("{net} is trusted by the config ([trusted] networks): edit the config and reload")
                } else {
                    format!("{net} is not trusted at run time (see `sipwall trust list`)")
                });
            }
        }
        // Leaves the fast path BEFORE the engine stops trusting it, or nothing changes.
        if let Some(k) = self.kernel.get() {
            let nets = self.inner().fast_path(|_| true, Some(net), &k.exclude);
            k.narrow_to(&nets).map_err(|e| format!("{net} is still trusted: {e}"))?;
        }
        if let Some(db) = &self.db {
            let mut store = sipwall_store::Store::open(db).map_err(|e| e.to_string())?;
            store.remove_trusted(net).map_err(|e| e.to_string())?;
        }
        let mut e = super::lock(engine);
        let mut inner = self.inner();
        inner.added.retain(|t| t.net != net);
        let policy = inner.merged(e.policy().clone());
        // Fewer trusted networks: nothing to lift.
        let _ = e.reload(policy);
        Ok(())
    }
}

fn rfc(t: &TrustedNet) -> String {
    crate::time::rfc3339(t.since.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipwall_engine::{Packet, Transport, Verdict};

    const SCAN: &[u8] = b"OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.7:5070;branch=z9hG4bK-1\r\nFrom: \"sipvicious\"<sip:100@1.1.1.1>;tag=6331\r\nTo: \"sipvicious\"<sip:100@1.1.1.1>\r\nCall-ID: 1234567890\r\nCSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n";

    fn decide(e: &Mutex<Engine>, ms: u64) -> Verdict {
        let p = Packet {
            src: "203.0.113.7:5070".parse().unwrap(),
            dst: "192.0.2.10:5060".parse().unwrap(),
            transport: Transport::Udp,
            direction: sipwall_engine::Direction::Inbound,
            payload: SCAN,
        };
        super::super::lock(e).decide(&p, Timestamp::from_millis(ms)).verdict
    }

    #[test]
    fn runtime_trust_wins_at_once_lifts_bans_and_survives_a_reload() {
        let policy =
            Policy::from_toml_str("[trusted]\nnetworks = [\"198.51.100.0/24\"]\n").unwrap();
        let trust = RuntimeTrust::new(&policy, Vec::new(), None);
        let engine = Mutex::new(Engine::new(trust.merged(policy.clone())));
        // A scanner is dropped and banned...
        assert_ne!(decide(&engine, 1_000), Verdict::Accept);
        assert!(super::super::lock(&engine)
            .bans()
            .any(|b| b.net.contains(&"203.0.113.7".parse::<std::net::IpAddr>().unwrap())));
        // ...until its network is trusted: the ban is lifted and its packets accepted.
        let net: IpNet = "203.0.113.0/24".parse().unwrap();
        let lifted = trust
            .add(&engine, net, "lab; trusted by uid 0 (pid 1)", Timestamp::from_millis(2_000))
            .unwrap();
        assert!(
            lifted.iter().any(|a| matches!(a, BanAction::Remove(n) if net.contains(n))),
            "{lifted:?}"
        );
        assert_eq!(decide(&engine, 3_000), Verdict::Accept);
        // Trusted wins over a manual ban too.
        assert!(super::super::lock(&engine)
            .ban_manual(
                "203.0.113.7/32".parse().unwrap(),
                std::time::Duration::from_secs(60),
                "x",
                Timestamp::from_millis(3_000)
            )
            .is_err());
        // Twice, or inside the config's networks: refused.
        assert!(trust
            .add(&engine, net, "", Timestamp::from_millis(4_000))
            .unwrap_err()
            .contains("already"));
        assert!(trust
            .add(&engine, "198.51.100.0/25".parse().unwrap(), "", Timestamp::from_millis(4_000))
            .unwrap_err()
            .contains("config"));
        // A reload of the config keeps it (the config is the baseline, run-time trust on top).
        let lifted = trust.reload_engine(&mut super::super::lock(&engine), policy.clone());
        assert!(lifted.is_empty());
        assert_eq!(decide(&engine, 5_000), Verdict::Accept);
        let list = trust.list();
        assert_eq!(
            list.iter().map(|t| (t.net.as_str(), t.origin.as_str())).collect::<Vec<_>>(),
            [("198.51.100.0/24", "config"), ("203.0.113.0/24", "runtime")]
        );
        // The config's own cannot be deleted here; the run-time one can, and then the
        // scanner is judged again.
        assert!(trust
            .del(&engine, "198.51.100.0/24".parse().unwrap())
            .unwrap_err()
            .contains("edit the config"));
        trust.del(&engine, net).unwrap();
        assert_ne!(decide(&engine, 6_000), Verdict::Accept);
        assert!(trust.del(&engine, net).unwrap_err().contains("not trusted"));
    }

    #[test]
    fn a_network_on_the_block_list_is_refused() {
        let policy =
            Policy::from_toml_str("[blocklist]\nnetworks = [\"203.0.113.0/24\"]\n").unwrap();
        let trust = RuntimeTrust::new(&policy, Vec::new(), None);
        let engine = Mutex::new(Engine::new(policy));
        let e = trust
            .add(&engine, "203.0.113.7/32".parse().unwrap(), "", Timestamp::from_millis(1))
            .unwrap_err();
        assert!(e.contains("block list entry 203.0.113.0/24"), "{e}");
        assert!(trust.list().is_empty());
    }

    #[test]
    fn trust_is_kept_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sipwall.db");
        drop(sipwall_store::Store::open(&db).unwrap());
        let policy = Policy::from_toml_str("").unwrap();
        let trust = RuntimeTrust::new(&policy, Vec::new(), Some(db.clone()));
        let engine = Mutex::new(Engine::new(policy.clone()));
        let net: IpNet = "2001:db8::/32".parse().unwrap();
        trust.add(&engine, net, "provider v6", Timestamp::from_millis(7_000)).unwrap();
        let stored = sipwall_store::Store::open(&db).unwrap().load_trusted().unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!((stored[0].net, stored[0].reason.as_str()), (net, "provider v6"));
        // After a restart: the stored one is trusted again.
        let again = RuntimeTrust::new(&policy, stored, Some(db.clone()));
        assert!(again.merged(policy).trusted.overlaps(net));
        again.del(&Mutex::new(Engine::new(Policy::from_toml_str("").unwrap())), net).unwrap();
        assert!(sipwall_store::Store::open(&db).unwrap().load_trusted().unwrap().is_empty());
    }
}
