//! The ruleset as plain data, rendered to text: one `nft -f -` batch for the `inet` table
//! (ban sets, the kernel drop of banned sources, and the queue rules when nft's `queue`
//! expression is used) and an `iptables-restore --noflush` batch per family for the xt
//! NFQUEUE fallback. Rendering is pure so the generated text is snapshot-tested.
//!
//! Shape of the nft table:
//! ```text
//! table inet sipwall {
//!   set ban_addr4 { type ipv4_addr; flags timeout; }            # banned addresses (hash)
//!   set ban_addr6 { type ipv6_addr; flags timeout; }
//!   set ban_net4 { type ipv4_addr; flags interval, timeout; }   # banned ranges: disjoint
//!   set ban_net6 { type ipv6_addr; flags interval, timeout; }   # segments (see banset.rs)
//!   set block4/block6 { ... flags interval; }   # static block lists, replaced on reload
//!   chain ban_prerouting { type filter hook prerouting priority raw; ... drop banned sources }
//!   chain ingress_eth0 { type filter hook ingress device "eth0" priority -500; ... the same }
//!   chain defrag_anchor { ct state untracked return }   # never jumped to, see below
//!   chain queue_input { type filter hook input priority 0; ... queue }   # nft backend only
//! }
//! ```
//! The table batch ADOPTS an existing table: `add` of a set that exists keeps it with its
//! elements, the ban chain is flushed and refilled in the same transaction (so ports can change
//! without a moment where banned sources pass), leftover queue chains are deleted.
//!
//! Why `defrag_anchor`: a rule with a `ct` expression makes the kernel register connection
//! tracking for the table's families in this namespace, and with it IPv4 and IPv6
//! defragmentation at priority -400, for as long as the rule exists, even in a chain nothing
//! jumps to (so it costs no rule evaluation). Without it, an IPv6 datagram to this host is
//! reassembled only after the INPUT hook, and a forwarded IPv4 or IPv6 one never: only its
//! first fragment would match `udp dport 5060` and be queued, the later fragments (where a
//! scanner's User-Agent may sit) would pass uninspected. Measured in `tests/kernel.rs`
//! (`fragmented_datagrams_are_queued_whole`). It holds for the iptables fallback as well: the
//! hooks are per namespace. Guarded ports are deliberately NOT `notrack`ed: that would change
//! what a host's own stateful firewall and NAT see of SIP; the price is conntrack entries for
//! SIP flows, as on any host that already runs conntrack.
//! Why the ban drop sits in PREROUTING at priority raw (-300): it runs before connection
//! tracking (-200), the route lookup and local delivery, so a flood from a banned source costs
//! the least kernel work there is short of XDP, and one chain covers both this host (INPUT) and
//! the hosts behind a router (FORWARD). Its first rule returns every packet that is not for a
//! guarded port with ONE lookup of the (protocol, port) pair, so allowed traffic pays one set
//! lookup plus the address lookups, not a rule per port, protocol and set. Consequence: on a
//! host that also routes, a banned source is dropped on the guarded ports whether the packet is
//! for this host or passes through it (a ban is a ban). A non-first IP fragment has no
//! transport header to match, so it is checked against the sets too: such fragments from
//! banned sources are dropped on any port.
//! Why the ingress chains ([`Ruleset::ingress_devices`], one per device, the same rules and the
//! same sets as the ban chain): the `inet` family's ingress hook (Linux 5.10) runs as the
//! driver hands the packet over, before the IP stack, defragmentation and PREROUTING, so a
//! flood from a banned source skips the IP input path (measured on veth: 0.91-1.08x the
//! PREROUTING drop's cost per packet, no clear gain; `docs/BENCHMARKS.md`). They are an
//! addition, never the only drop: the ban chain stays, and catches what they cannot see
//! (loopback, devices that appear later, a device whose chain the kernel refused or removed
//! with the device, and the later fragments of a datagram, which carry no port: like the
//! ban chain, they drop those from banned sources on any port). Being in the same table, they
//! read the same sets, so the ban writer keeps one copy of every ban and they can never
//! disagree with the ban chain. Each device's chain is its own batch: a device the kernel
//! refuses costs only its own early drop.
//! Why the trusted fast path ([`Ruleset::fast_path`]): a UDP request from a trusted network
//! is accepted by the engine whatever it contains (a hostile-looking one is only recorded as
//! `trusted.oddity`), so queueing it costs the queue hand-off, the reinjection and a wake-up
//! for a verdict known in advance, and makes the provider wait behind a storm in the queue.
//! The queue chains' first rules therefore let such packets go on unqueued (nft: `accept` in
//! the queue chain; iptables: `RETURN` to the builtin chain, so the host's own rules after the
//! jump still apply). Only UDP (a TCP segment does not start at a message, and the per-queue
//! stream state must see every segment of a connection), only towards the guarded ports (the
//! protected side's answers and requests still go through the queue), and never what learning
//! reads from a trusted peer: a payload starting `SIP/2.0 ` (an answer: upstreams are learned
//! from those) or `REGISTER` (local users are learned from authenticated registrations). The
//! 8-byte payload compare is `@ih,0,64` in nft and `u32` in iptables (for IPv6 only on
//! packets without extension headers, whose payload sits at a fixed offset; any other IPv6
//! packet is queued).
use std::fmt::Write as _;

use ipnet::IpNet;

use crate::L4;

/// The chain dropping banned and block-listed sources (see the module docs for its place).
pub const BAN_CHAIN: &str = "ban_prerouting";
/// The never-jumped-to chain whose `ct` rule keeps defragmentation on (see the module docs).
pub const DEFRAG_CHAIN: &str = "defrag_anchor";
/// Prefix of the per-device ingress chains ([`Ruleset::ingress_chain`]).
pub const INGRESS_CHAIN_PREFIX: &str = "ingress_";
/// Priority of the ingress chains: before any ingress chain a host usually has (0).
pub const INGRESS_PRIORITY: i32 = -500;
/// Banned IPv4 addresses (hash set with timeouts).
pub const SET_ADDR4: &str = "ban_addr4";
/// Banned IPv6 addresses (hash set with timeouts).
pub const SET_ADDR6: &str = "ban_addr6";
/// Banned IPv4 ranges: disjoint segments (interval set with timeouts).
pub const SET_NET4: &str = "ban_net4";
/// Banned IPv6 ranges: disjoint segments (interval set with timeouts).
pub const SET_NET6: &str = "ban_net6";
/// The first 8 payload bytes of a SIP answer, `SIP/2.0 `: never on the fast path.
const ANSWER_PREFIX: u64 = u64::from_be_bytes(*b"SIP/2.0 ");
/// The first 8 payload bytes of a REGISTER: never on the fast path.
const REGISTER_PREFIX: u64 = u64::from_be_bytes(*b"REGISTER");

/// Which traffic to protect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hooks {
    /// This host (INPUT, and OUTPUT for the answers going back).
    pub input: bool,
    /// Hosts behind this router (FORWARD, both ways).
    pub forward: bool,
}

/// A guarded port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GuardedPort {
    /// Transport.
    pub l4: L4,
    /// Port.
    pub port: u16,
    /// Queue its packets for inspection (false for TLS ports: address-level policy only,
    /// i.e. the ban drop applies but payloads are opaque).
    pub inspect: bool,
}

fn l4_name(l4: L4) -> &'static str {
    match l4 {
        L4::Udp => "udp",
        L4::Tcp => "tcp",
    }
}

/// What a banned source loses.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanScope {
    /// Only the guarded ports (default: a false positive cannot lock out SSH).
    GuardedPorts,
    /// Everything it sends to this host / through this router.
    All,
}

/// Which kernel mechanism queues packets to user space.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueBackend {
    /// nft's `queue` expression (needs `nft_queue`).
    Nft,
    /// iptables/ip6tables `-j NFQUEUE` (xt target).
    Xtables,
}

impl std::fmt::Display for QueueBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QueueBackend::Nft => "nft queue expression",
            QueueBackend::Xtables => "iptables NFQUEUE target",
        })
    }
}

/// The whole ruleset, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// nft table name (family `inet`), also the prefix of the iptables chains (upper case).
    pub table: String,
    /// Guarded ports.
    pub ports: Vec<GuardedPort>,
    /// Hooks.
    pub hooks: Hooks,
    /// First queue number.
    pub queue_first: u16,
    /// Number of queues (balanced by flow hash / CPU).
    pub queue_count: u16,
    /// Drop instead of accept while no process listens on the queue.
    pub fail_closed: bool,
    /// What banned sources lose.
    pub ban_scope: BanScope,
    /// The trusted fast path (see the module docs): UDP requests from these networks to the
    /// guarded ports, except answers and REGISTERs, are never queued. Empty: all queued.
    pub fast_path: Vec<IpNet>,
    /// Devices whose ingress hook drops banned sources early (see the module docs), each
    /// name checked by [`valid_device_name`]. Empty: only the ban chain drops them.
    pub ingress_devices: Vec<String>,
}

/// Whether `name` is a network device name this ruleset may write into an nft batch: what
/// Linux accepts (1 to 15 bytes, no `/`, `:` or white space, not `.` or `..`) and no quote or
/// backslash, so it can never end the quoted string it sits in.
pub fn valid_device_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_graphic() && !b"/:\"'\\".contains(&b))
}

impl Default for Ruleset {
    fn default() -> Self {
        Ruleset {
            table: "sipwall".into(),
            ports: vec![
                GuardedPort { l4: L4::Udp, port: 5060, inspect: true },
                GuardedPort { l4: L4::Tcp, port: 5060, inspect: true },
            ],
            hooks: Hooks { input: true, forward: false },
            queue_first: 0,
            queue_count: 1,
            fail_closed: false,
            ban_scope: BanScope::GuardedPorts,
            fast_path: Vec::new(),
            ingress_devices: Vec::new(),
        }
    }
}

/// Which way an iptables chain looks at ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortSide {
    Dst,
    Src,
}

impl Ruleset {
    /// Names of the ban sets: exact IPv4, exact IPv6 (hash sets), IPv4 ranges, IPv6 ranges
    /// (interval sets).
    pub fn ban_set_names(&self) -> [&'static str; 4] {
        [SET_ADDR4, SET_ADDR6, SET_NET4, SET_NET6]
    }

    fn ports_of(&self, l4: L4, inspected_only: bool) -> Vec<u16> {
        let mut v: Vec<u16> = self
            .ports
            .iter()
            .filter(|p| p.l4 == l4 && (!inspected_only || p.inspect))
            .map(|p| p.port)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    fn port_set(ports: &[u16]) -> String {
        if ports.len() == 1 {
            ports[0].to_string()
        } else {
            let list: Vec<String> = ports.iter().map(u16::to_string).collect();
            format!("{{ {} }}", list.join(", "))
        }
    }

    /// The iptables chains this ruleset uses: (builtin chain, own chain, port side).
    fn xt_chains(&self) -> Vec<(&'static str, String, PortSide)> {
        let base = self.table.to_uppercase();
        let mut v = Vec::new();
        if self.hooks.input {
            v.push(("INPUT", format!("{base}-IN"), PortSide::Dst));
            v.push(("OUTPUT", format!("{base}-OUT"), PortSide::Src));
        }
        if self.hooks.forward {
            v.push(("FORWARD", format!("{base}-FWD"), PortSide::Dst));
            v.push(("FORWARD", format!("{base}-FWD"), PortSide::Src));
        }
        v
    }

    /// Names of every iptables chain a ruleset with this table name may create (for cleanup).
    pub fn all_xt_chains(table: &str) -> [(&'static str, String); 3] {
        let base = table.to_uppercase();
        [
            ("INPUT", format!("{base}-IN")),
            ("OUTPUT", format!("{base}-OUT")),
            ("FORWARD", format!("{base}-FWD")),
        ]
    }

    fn nft_queue_stmt(&self) -> String {
        let mut flags = Vec::new();
        if !self.fail_closed {
            flags.push("bypass");
        }
        let target = if self.queue_count > 1 {
            format!("{}-{}", self.queue_first, self.queue_first + self.queue_count - 1)
        } else {
            self.queue_first.to_string()
        };
        if flags.is_empty() {
            format!("queue to {target}")
        } else {
            format!("queue flags {} to {target}", flags.join(","))
        }
    }

    /// The nft batch for the whole ruleset: [`Ruleset::render_nft_table`] followed, for the
    /// nft backend, by [`Ruleset::render_nft_queue`].
    pub fn render_nft(&self, backend: QueueBackend) -> String {
        let mut o = self.render_nft_table();
        if backend == QueueBackend::Nft {
            o.push_str(&self.render_nft_queue());
        }
        o
    }

    /// The batch creating the table, or ADOPTING the table a previous run left (see the module
    /// docs): sets are added if missing and never flushed or deleted, so their elements and
    /// timeouts survive; the ban chain is flushed and refilled and leftover queue chains are
    /// deleted in the same transaction, so the kernel applies all of it or none and there is
    /// no moment without the ban drop.
    pub fn render_nft_table(&self) -> String {
        let t = &self.table;
        let mut o = String::new();
        let _ = writeln!(o, "add table inet {t}");
        for (name, ty, flags) in [
            (SET_ADDR4, "ipv4_addr", "timeout"),
            (SET_ADDR6, "ipv6_addr", "timeout"),
            (SET_NET4, "ipv4_addr", "interval, timeout"),
            (SET_NET6, "ipv6_addr", "interval, timeout"),
            ("block4", "ipv4_addr", "interval"),
            ("block6", "ipv6_addr", "interval"),
            // Sentinel elements of the long-lived `nft -i` ban writer (see nftshell.rs).
            ("sync", "inet_service", "timeout"),
        ] {
            let _ = writeln!(o, "add set inet {t} {name} {{ type {ty}; flags {flags}; }}");
        }
        let _ = writeln!(
            o,
            "add chain inet {t} {BAN_CHAIN} {{ type filter hook prerouting priority raw; policy \
             accept; }}"
        );
        let _ = writeln!(o, "flush chain inet {t} {BAN_CHAIN}");
        // Leftover queue chains of a run that did not stop: queueing starts again only with
        // enable_queue, once the consumer is bound.
        for hook in ["input", "output", "forward"] {
            let _ = writeln!(o, "add chain inet {t} queue_{hook}");
            let _ = writeln!(o, "flush chain inet {t} queue_{hook}");
            let _ = writeln!(o, "delete chain inet {t} queue_{hook}");
        }
        // The interval-only `ban4`/`ban6` sets of earlier versions: no longer referenced once
        // the chain is flushed above. `add` first makes the delete succeed either way.
        for (old, ty) in [("ban4", "ipv4_addr"), ("ban6", "ipv6_addr")] {
            let _ = writeln!(o, "add set inet {t} {old} {{ type {ty}; flags interval, timeout; }}");
            let _ = writeln!(o, "delete set inet {t} {old}");
        }
        for r in self.ban_rules() {
            let _ = writeln!(o, "add rule inet {t} {BAN_CHAIN} {r}");
        }
        // Never jumped to: a rule with a `ct` expression makes the kernel register connection
        // tracking and with it IPv4/IPv6 defragmentation (priority -400) in this namespace for
        // as long as the rule exists, so the ban chain and the queue rules see whole
        // datagrams, never a first fragment alone (see the module docs).
        let _ = writeln!(o, "add chain inet {t} {DEFRAG_CHAIN}");
        let _ = writeln!(o, "flush chain inet {t} {DEFRAG_CHAIN}");
        let _ = writeln!(o, "add rule inet {t} {DEFRAG_CHAIN} ct state untracked return");
        o
    }

    /// The rules that drop banned and block-listed sources, for the ban chain and every
    /// ingress chain alike: with `ban_scope` "ports", everything not for a guarded port
    /// returns first, with one lookup of the (protocol, port) pair.
    fn ban_rules(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.ban_scope == BanScope::GuardedPorts {
            let pairs: Vec<String> = [L4::Udp, L4::Tcp]
                .into_iter()
                .flat_map(|l4| self.ports_of(l4, false).into_iter().map(move |p| (l4, p)))
                .map(|(l4, p)| format!("{} . {p}", l4_name(l4)))
                .collect();
            if pairs.is_empty() {
                v.push("return".to_string()); // no guarded port: nothing to drop
            } else {
                v.push(format!("meta l4proto . th dport != {{ {} }} return", pairs.join(", ")));
            }
        }
        for (v4, v6) in [(SET_ADDR4, SET_ADDR6), (SET_NET4, SET_NET6), ("block4", "block6")] {
            v.push(format!("ip saddr @{v4} drop"));
            v.push(format!("ip6 saddr @{v6} drop"));
        }
        v
    }

    /// The name of `device`'s ingress chain: the prefix, then the name with every byte but
    /// ASCII letters and digits written `_xx` (hex), so two devices never share a chain.
    pub fn ingress_chain(device: &str) -> String {
        let mut name = INGRESS_CHAIN_PREFIX.to_string();
        for b in device.bytes() {
            if b.is_ascii_alphanumeric() {
                name.push(b as char);
            } else {
                let _ = write!(name, "_{b:02x}");
            }
        }
        name
    }

    /// The batch adding (or rewriting) `device`'s ingress chain in the existing table: added,
    /// flushed and refilled in one transaction. `device` must pass [`valid_device_name`]
    /// (the installer refuses any other).
    pub fn render_nft_ingress(&self, device: &str) -> String {
        let t = &self.table;
        let chain = Self::ingress_chain(device);
        let mut o = String::new();
        let _ = writeln!(
            o,
            "add chain inet {t} {chain} {{ type filter hook ingress device \"{device}\" priority \
             {INGRESS_PRIORITY}; policy accept; }}"
        );
        let _ = writeln!(o, "flush chain inet {t} {chain}");
        for r in self.ban_rules() {
            let _ = writeln!(o, "add rule inet {t} {chain} {r}");
        }
        o
    }

    /// The batch deleting ingress chains of the table (`chains`: their names, as listed).
    pub fn render_nft_ingress_removal(&self, chains: &[String]) -> String {
        let t = &self.table;
        let mut o = String::new();
        for c in chains {
            let _ = writeln!(o, "flush chain inet {t} {c}");
            let _ = writeln!(o, "delete chain inet {t} {c}");
        }
        o
    }

    /// The batch removing the queue chains of the nft backend, keeping the table, its sets and
    /// the ban chain (for [`crate::Firewall::stop_keeping_bans`]).
    pub fn render_nft_queue_removal(&self) -> String {
        let t = &self.table;
        let mut o = String::new();
        for hook in ["input", "output", "forward"] {
            let _ = writeln!(o, "add chain inet {t} queue_{hook}");
            let _ = writeln!(o, "flush chain inet {t} queue_{hook}");
            let _ = writeln!(o, "delete chain inet {t} queue_{hook}");
        }
        o
    }

    /// Names of the chains the table has: ban chains, plus queue chains for the nft backend.
    pub fn nft_chain_names(&self, backend: QueueBackend) -> Vec<String> {
        let mut v = vec![BAN_CHAIN.to_string()];
        if backend == QueueBackend::Nft {
            v.extend(self.nft_queue_chains().iter().map(|(h, _)| format!("queue_{h}")));
        }
        v
    }

    fn nft_queue_chains(&self) -> Vec<(&'static str, PortSide)> {
        let mut chains = Vec::new();
        if self.hooks.input {
            chains.push(("input", PortSide::Dst));
            chains.push(("output", PortSide::Src));
        }
        if self.hooks.forward {
            chains.push(("forward", PortSide::Dst));
        }
        chains
    }

    /// The batch adding the queue chains (priority 0) to the existing table, for the nft
    /// backend. Separate from the table so bans can be loaded before any packet is queued.
    /// Every chain is added, flushed and refilled in the same transaction, so the same batch
    /// also replaces the chains' rules atomically (a new [`Ruleset::fast_path`]).
    pub fn render_nft_queue(&self) -> String {
        let t = &self.table;
        let q = self.nft_queue_stmt();
        let mut o = String::new();
        for (hook, side) in self.nft_queue_chains() {
            let chain = format!("queue_{hook}");
            let _ = writeln!(
                o,
                "add chain inet {t} {chain} {{ type filter hook {hook} priority 0; policy accept; }}"
            );
            let _ = writeln!(o, "flush chain inet {t} {chain}");
            if side == PortSide::Dst {
                for r in self.nft_fast_path_rules() {
                    let _ = writeln!(o, "add rule inet {t} {chain} {r}");
                }
            }
            for l4 in [L4::Udp, L4::Tcp] {
                let ports = self.ports_of(l4, true);
                if ports.is_empty() {
                    continue;
                }
                let (p, set) = (l4_name(l4), Self::port_set(&ports));
                let sides: &[&str] = match (hook, side) {
                    ("forward", _) => &["dport", "sport"],
                    (_, PortSide::Dst) => &["dport"],
                    (_, PortSide::Src) => &["sport"],
                };
                for s in sides {
                    let _ = writeln!(o, "add rule inet {t} {chain} {p} {s} {set} {q}");
                }
            }
        }
        o
    }

    /// The fast path's networks of one family (true: IPv6), as written in a rule.
    fn fast_path_nets(&self, v6: bool) -> Vec<String> {
        let mut v: Vec<IpNet> =
            self.fast_path.iter().filter(|n| matches!(n, IpNet::V6(_)) == v6).copied().collect();
        v.sort_unstable();
        v.dedup();
        v.iter().map(IpNet::to_string).collect()
    }

    /// The nft rules of the trusted fast path (the module docs say what they let through), for
    /// the chains that see requests towards the guarded ports: one per family, none when
    /// nothing is trusted or no UDP port is inspected.
    pub fn nft_fast_path_rules(&self) -> Vec<String> {
        let ports = self.ports_of(L4::Udp, true);
        if ports.is_empty() {
            return Vec::new();
        }
        let mut v = Vec::new();
        for (family, v6) in [("ip", false), ("ip6", true)] {
            let nets = self.fast_path_nets(v6);
            if nets.is_empty() {
                continue;
            }
            v.push(format!(
                "{family} saddr {{ {} }} udp dport {} @ih,0,64 != {ANSWER_PREFIX:#018x} \
                 @ih,0,64 != {REGISTER_PREFIX:#018x} counter accept",
                nets.join(", "),
                Self::port_set(&ports)
            ));
        }
        v
    }

    /// The `iptables-restore --noflush` batch of one family (`v6`: for ip6tables) that
    /// creates the own chains, fills them with the fast-path and NFQUEUE rules and jumps to
    /// them from the builtin chains. The caller removes leftovers first.
    pub fn render_xt(&self, v6: bool) -> String {
        let mut o = self.render_xt_chains(v6);
        let mut jumped: Vec<(&str, String)> = Vec::new();
        for (builtin, own, _) in self.xt_chains() {
            if !jumped.iter().any(|(b, c)| *b == builtin && *c == own) {
                let _ = writeln!(o, "-I {builtin} 1 -j {own}");
                jumped.push((builtin, own));
            }
        }
        o.push_str("COMMIT\n");
        o
    }

    /// The `iptables-restore --noflush` batch of one family that REFILLS the own chains in one
    /// transaction (declaring an existing chain flushes it), jumps untouched: how a new
    /// [`Ruleset::fast_path`] reaches the kernel without a moment where nothing is queued.
    pub fn render_xt_refill(&self, v6: bool) -> String {
        let mut o = self.render_xt_chains(v6);
        o.push_str("COMMIT\n");
        o
    }

    /// `*filter`, the own chains' declarations and their rules, without COMMIT.
    fn render_xt_chains(&self, v6: bool) -> String {
        let mut o = String::from("*filter\n");
        let chains = self.xt_chains();
        let mut declared: Vec<&str> = Vec::new();
        for (_, own, _) in &chains {
            if !declared.contains(&own.as_str()) {
                let _ = writeln!(o, ":{own} - [0:0]");
                declared.push(own);
            }
        }
        let target = {
            let mut t = if self.queue_count > 1 {
                // Flow hash (not CPU fanout) keeps every packet of a flow on one queue, which
                // the per-queue TCP stream state relies on.
                format!(
                    "NFQUEUE --queue-balance {}:{}",
                    self.queue_first,
                    self.queue_first + self.queue_count - 1
                )
            } else {
                format!("NFQUEUE --queue-num {}", self.queue_first)
            };
            if !self.fail_closed {
                t.push_str(" --queue-bypass");
            }
            t
        };
        // The fast path first, once per own chain that sees requests towards the guarded ports.
        let mut fast_done: Vec<&str> = Vec::new();
        for (_, own, side) in &chains {
            if *side == PortSide::Dst && !fast_done.contains(&own.as_str()) {
                fast_done.push(own);
                for r in self.xt_fast_path_rules(v6) {
                    let _ = writeln!(o, "-A {own} {r}");
                }
            }
        }
        for (_, own, side) in &chains {
            for l4 in [L4::Udp, L4::Tcp] {
                for port in self.ports_of(l4, true) {
                    let flag = match side {
                        PortSide::Dst => "--dport",
                        PortSide::Src => "--sport",
                    };
                    let p = l4_name(l4);
                    let _ = writeln!(o, "-A {own} -p {p} -m {p} {flag} {port} -j {target}");
                }
            }
        }
        o
    }

    /// The iptables rules of the trusted fast path for one family: one per (network, UDP
    /// port), `RETURN` to the builtin chain. The payload compare is `u32`: IPv4 reads the
    /// header length; IPv6 reads after the fixed 40-byte header, so only a packet with no
    /// extension header takes the fast path (`ipv6header --header protocol`, exact): one with
    /// any is queued, as before.
    fn xt_fast_path_rules(&self, v6: bool) -> Vec<String> {
        let payload = |prefix: u64| {
            let (hi, lo) = (prefix >> 32, prefix & 0xffff_ffff);
            if v6 {
                format!("48={hi:#010x}&&52={lo:#010x}")
            } else {
                format!("0>>22&0x3C@8={hi:#010x}&&0>>22&0x3C@12={lo:#010x}")
            }
        };
        let no_ext = if v6 { " -m ipv6header --header protocol" } else { "" };
        let mut v = Vec::new();
        for net in self.fast_path_nets(v6) {
            for port in self.ports_of(L4::Udp, true) {
                v.push(format!(
                    "-s {net} -p udp -m udp --dport {port}{no_ext} -m u32 ! --u32 \"{}\" -m u32 ! --u32 \"{}\" -j RETURN",
                    payload(ANSWER_PREFIX),
                    payload(REGISTER_PREFIX)
                ));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Ruleset {
        Ruleset {
            ports: vec![
                GuardedPort { l4: L4::Udp, port: 5060, inspect: true },
                GuardedPort { l4: L4::Udp, port: 5080, inspect: true },
                GuardedPort { l4: L4::Tcp, port: 5060, inspect: true },
                GuardedPort { l4: L4::Tcp, port: 5061, inspect: false },
            ],
            hooks: Hooks { input: true, forward: true },
            queue_first: 4,
            queue_count: 2,
            ..Ruleset::default()
        }
    }

    #[test]
    fn nft_host_xtables_backend() {
        insta::assert_snapshot!(Ruleset::default().render_nft(QueueBackend::Xtables));
    }

    #[test]
    fn nft_router_nft_backend() {
        insta::assert_snapshot!(router().render_nft(QueueBackend::Nft));
    }

    #[test]
    fn nft_fail_closed_ban_all() {
        let r = Ruleset { fail_closed: true, ban_scope: BanScope::All, ..Ruleset::default() };
        insta::assert_snapshot!(r.render_nft(QueueBackend::Nft));
    }

    #[test]
    fn xt_host() {
        insta::assert_snapshot!(Ruleset::default().render_xt(false));
    }

    #[test]
    fn xt_router_two_queues() {
        let r = router();
        let text = r.render_xt(false);
        // the TLS port is never queued: its payload is opaque
        assert!(!text.contains("5061"));
        insta::assert_snapshot!(text);
    }

    fn trusted_router() -> Ruleset {
        Ruleset {
            fast_path: vec![
                "203.0.113.0/24".parse().unwrap(),
                "2001:db8:100::/64".parse().unwrap(),
                "198.51.100.0/24".parse().unwrap(),
                "198.51.100.0/24".parse().unwrap(),
            ],
            ..router()
        }
    }

    #[test]
    fn xt_fast_path_per_family() {
        let r = trusted_router();
        let (v4, v6) = (r.render_xt(false), r.render_xt(true));
        // each family gets its own networks only, once, before any NFQUEUE rule
        assert!(!v4.contains("2001:db8") && !v6.contains("198.51.100"), "{v4}\n{v6}");
        assert_eq!(v4.matches("-s 198.51.100.0/24").count(), 4, "per UDP port, IN and FWD:\n{v4}");
        let first_queue = v4.find("NFQUEUE").unwrap();
        assert!(v4.rfind("-j RETURN").unwrap() < first_queue);
        // the answers' side (OUTPUT) and TCP never take the fast path
        assert!(!v4.lines().any(|l| l.starts_with("-A SIPWALL-OUT -s")));
        assert!(!v4.lines().any(|l| l.contains("-p tcp") && l.contains("RETURN")));
        // a refill is the same chains without the jumps
        let refill = r.render_xt_refill(false);
        assert!(!refill.contains("-I ") && refill.ends_with("COMMIT\n"));
        insta::assert_snapshot!("xt_fast_path_v4", v4);
        insta::assert_snapshot!("xt_fast_path_v6", v6);
    }

    #[test]
    fn nft_fast_path() {
        let r = trusted_router();
        let text = r.render_nft_queue();
        let fast = text.lines().filter(|l| l.ends_with(" accept")).count();
        assert_eq!(fast, 4, "input and forward, 2 families:\n{text}");
        assert!(!text.lines().any(|l| l.contains("queue_output") && l.contains("saddr")));
        insta::assert_snapshot!(text);
        // nothing trusted: no fast-path rule at all
        assert!(router().nft_fast_path_rules().is_empty());
        assert!(!router().render_xt(false).contains("RETURN"));
    }

    #[test]
    fn nft_ingress_eth0() {
        let r = Ruleset { ingress_devices: vec!["eth0".into()], ..router() };
        let text = r.render_nft_ingress("eth0");
        // the same rules as the ban chain, in the device's own chain
        let table = r.render_nft_table();
        let ban: Vec<&str> = table
            .lines()
            .filter_map(|l| l.strip_prefix("add rule inet sipwall ban_prerouting "))
            .collect();
        let ingress: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("add rule inet sipwall ingress_eth0 "))
            .collect();
        assert_eq!(ban, ingress);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn ingress_chain_names_are_distinct_and_safe() {
        assert_eq!(Ruleset::ingress_chain("eth0"), "ingress_eth0");
        assert_eq!(Ruleset::ingress_chain("eth0.100"), "ingress_eth0_2e100");
        assert_eq!(Ruleset::ingress_chain("eth0_100"), "ingress_eth0_5f100");
        assert_eq!(Ruleset::ingress_chain("br-lan"), "ingress_br_2dlan");
        let r = Ruleset::default();
        assert_eq!(
            r.render_nft_ingress_removal(&["ingress_eth1".into()]),
            "flush chain inet sipwall ingress_eth1\ndelete chain inet sipwall ingress_eth1\n"
        );
    }

    #[test]
    fn device_names_that_could_break_a_batch_are_refused() {
        for ok in ["eth0", "enp0s31f6", "eth0.100", "br-lan", "wg0", "veth_a@1", "123456789012345"]
        {
            assert!(valid_device_name(ok), "{ok}");
        }
        for bad in
            ["", ".", "..", "eth 0", "a/b", "a:b", "a\"b", "a'b", "a\\b", "1234567890123456", "é"]
        {
            assert!(!valid_device_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_prefixes_are_the_sip_answer_and_register_bytes() {
        assert_eq!(ANSWER_PREFIX.to_be_bytes(), *b"SIP/2.0 ");
        assert_eq!(format!("{REGISTER_PREFIX:#018x}"), "0x5245474953544552");
    }
}
