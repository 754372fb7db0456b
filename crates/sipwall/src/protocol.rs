//! The control protocol: the one model of what an operator may ask the running daemon and
//! what it answers, shared by the socket client (`client.rs`) and the daemon's socket
//! server (`daemon::control_server`). Transport-free: serde types, their checks, and reading
//! or writing ONE bounded line on a stream somebody else opened; no sockets, no clap, no
//! formatting for people. A later transport (HTTP) serves the same model.
//!
//! PROTOCOL: over the Unix socket `[enforce] control_socket` (mode 0600: root only), the
//! client sends ONE JSON request line and reads ONE JSON response line, then both close.
//! * requests: `{"cmd":"ban","net":"203.0.113.9/32","secs":600,"reason":"text"}` (with
//!   `"extend":true` to lengthen an existing ban), `{"cmd":"unban","net":"203.0.113.9"}`,
//!   `{"cmd":"bans"}`, `{"cmd":"status"}`, `{"cmd":"reload"}`,
//!   `{"cmd":"trust-add","net":"203.0.113.0/24","reason":"text"}`, `{"cmd":"trust-del",...}`,
//!   `{"cmd":"trust-list"}`, `{"cmd":"learned"}`,
//!   `{"cmd":"learned-pin","entry":"upstream 198.51.100.2"}`,
//!   `{"cmd":"learned-forget","entry":"user 100"}`; unknown fields are errors;
//! * responses: `{"ok":true,"message":...,"bans":[...]}`, `{"ok":true,"status":{...}}` (see
//!   [`Status`]), `{"ok":true,"learned":{...}}` (see [`LearnedView`]) or
//!   `{"ok":false,"error":"..."}`.
//!
//! Limits (so a stuck or hostile client cannot wedge the daemon): a request is at most
//! [`MAX_REQUEST`] bytes, must arrive whole within the server's deadline, and is checked here
//! ([`parse_request`]) before the engine is touched: the network must parse and be canonical
//! (no host bits set), the duration be
//! 1 s ..= [`MAX_BAN_SECS`], the reason at most [`MAX_REASON`] characters without control
//! characters. A response is read up to [`MAX_RESPONSE`] bytes.
use std::io::{BufRead, Read as _, Write};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Largest request line accepted, newline included.
pub const MAX_REQUEST: usize = 4096;
/// Longest manual ban: one year.
pub const MAX_BAN_SECS: u64 = 366 * 86_400;
/// Longest ban reason, in characters.
pub const MAX_REASON: usize = 256;
/// Largest response a client reads (a full ban table of 100k bans fits).
/// Largest response a client reads (a full ban table of 100k bans fits).
pub const MAX_RESPONSE: u64 = 64 << 20;

/// A request line as sent on the socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Ban `net` (an address or CIDR) for `secs` seconds.
    Ban {
        /// Address or network.
        net: String,
        /// Duration in seconds.
        secs: u64,
        /// Why (shown in `sipwall bans` and the log).
        #[serde(default)]
        reason: String,
        /// When `net` is already banned: push its expiry out to now + `secs` (never
        /// shortening it) instead of refusing. Absent: false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        extend: bool,
    },
    /// Lift the ban of exactly `net`.
    Unban {
        /// Address or network.
        net: String,
    },
    /// List active bans.
    Bans,
    /// The daemon's [`Status`].
    Status,
    /// Re-read the config file (as SIGHUP does) and answer with the outcome: on an error the
    /// daemon keeps its current policy and the response is `ok: false` with the error.
    Reload,
    /// Trust `net` at run time (kept in the store; the config's networks stay the baseline).
    #[serde(rename = "trust-add")]
    TrustAdd {
        /// Address or network.
        net: String,
        /// Why (shown in `sipwall trust list`).
        #[serde(default)]
        reason: String,
    },
    /// Stop trusting `net` (a run-time entry, exactly as listed).
    #[serde(rename = "trust-del")]
    TrustDel {
        /// Address or network.
        net: String,
    },
    /// List trusted networks: the config's and the run-time ones.
    #[serde(rename = "trust-list")]
    TrustList,
    /// List what the daemon learned ([`LearnedView`]).
    Learned,
    /// Pin a learned fact (`upstream ADDR`, `user NAME`, `known-good ADDR`): it never expires;
    /// a fact not learned yet is created.
    #[serde(rename = "learned-pin")]
    LearnedPin {
        /// The fact.
        entry: String,
    },
    /// Forget a learned fact (pinned or not).
    #[serde(rename = "learned-forget")]
    LearnedForget {
        /// The fact.
        entry: String,
    },
}

/// A request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Manual ban.
    Ban {
        /// Network (host bits cleared).
        net: IpNet,
        /// How long.
        duration: Duration,
        /// Why.
        reason: String,
        /// Extend an existing ban instead of refusing.
        extend: bool,
    },
    /// Lift a ban.
    Unban(IpNet),
    /// List bans.
    Bans,
    /// Report the status.
    Status,
    /// Reload the config.
    Reload,
    /// Trust a network at run time.
    TrustAdd {
        /// Network (host bits cleared).
        net: IpNet,
        /// Why.
        reason: String,
    },
    /// Stop trusting a run-time network.
    TrustDel(IpNet),
    /// List trusted networks.
    TrustList,
    /// List learned facts.
    Learned,
    /// Pin a learned fact.
    LearnedPin(sipwall_engine::FactKey),
    /// Forget a learned fact.
    LearnedForget(sipwall_engine::FactKey),
}

/// One trusted network as listed (`sipwall trust list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustView {
    /// Network.
    pub net: String,
    /// `config` (`[trusted] networks`, the baseline) or `runtime` (`sipwall trust add`).
    pub origin: String,
    /// Since when (run-time entries), ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// Why, with who asked for a run-time entry.
    pub reason: String,
}

/// One active ban as shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanView {
    /// Network.
    pub net: String,
    /// Start, ms since the epoch.
    pub since_ms: u64,
    /// End, ms since the epoch.
    pub until_ms: u64,
    /// How many times this network was banned (escalation).
    pub count: u32,
    /// Rule (`manual` for operator bans).
    pub rule: String,
    /// Reason.
    pub reason: String,
    /// detection, manual, aggregate or restored.
    pub origin: String,
    /// True once the ban is written to the store (it survives a crash or restart); false
    /// while its store commit is pending (the kernel may already drop the source) or when the
    /// daemon runs without a store. Absent in older answers: durable.
    #[serde(default = "durable_by_default")]
    pub durable: bool,
    /// True for a ban only simulated (observe mode or a simulated rule family): the engine
    /// holds it and reports it, but no packet is dropped for it and it is in neither the
    /// kernel set nor the store. Absent: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
}

fn durable_by_default() -> bool {
    true
}

impl BanView {
    /// From an engine ban.
    pub fn of(b: &sipwall_engine::Ban) -> BanView {
        BanView {
            net: b.net.to_string(),
            since_ms: b.since.as_millis(),
            until_ms: b.until.as_millis(),
            count: b.count,
            rule: b.rule.clone(),
            reason: b.reason.clone(),
            origin: b.origin.to_string(),
            durable: true,
            simulated: false,
        }
    }
}

/// The response line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Success.
    pub ok: bool,
    /// What went wrong (when `!ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What was done (when `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Bans concerned: the new ban, or the listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bans: Option<Vec<BanView>>,
    /// With a listing: the state store's condition when it is not the normal one, e.g.
    /// `unavailable (in memory): ...` when the daemon could not open it and runs without
    /// durable bans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The answer to `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Box<Status>>,
    /// The answer to `trust-list` (and to `trust-add`/`trust-del`: the list after the change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted: Option<Vec<TrustView>>,
    /// The answer to `learned` (and to a pin or forget: the listing after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<Box<LearnedView>>,
}

/// What the daemon learned from the wire (`sipwall learned`, `GET /api/v1/learned`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedView {
    /// `[learn] mode`: `auto` or `off`.
    pub mode: String,
    /// True once the unsolicited-INVITE rule is in force (auto mode and an upstream learned
    /// or pinned); false: learning, not enforcing yet.
    pub enforcing: bool,
    /// Every fact, by kind then value.
    pub facts: Vec<LearnedFactView>,
}

/// One learned fact as shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedFactView {
    /// `upstream`, `user` or `known-good`.
    pub kind: String,
    /// The address or user.
    pub value: String,
    /// First seen, ms since the epoch.
    pub first_seen_ms: u64,
    /// Last confirmed, ms since the epoch.
    pub last_seen_ms: u64,
    /// When it will be forgotten (absent: pinned or never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// Which transaction proved it.
    pub evidence: String,
    /// Pinned by an operator.
    pub pinned: bool,
}

impl LearnedFactView {
    /// From an engine fact and the policy that ages it.
    pub fn of(f: &sipwall_engine::LearnedFact, policy: &sipwall_engine::LearnPolicy) -> Self {
        LearnedFactView {
            kind: f.key.kind().to_string(),
            value: f.key.value(),
            first_seen_ms: f.first_seen.as_millis(),
            last_seen_ms: f.last_seen.as_millis(),
            expires_ms: f.expires(policy).map(|t| t.as_millis()),
            evidence: f.evidence.clone(),
            pinned: f.pinned,
        }
    }
}

/// `status`'s summary of learning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnSummary {
    /// `auto` or `off`.
    pub mode: String,
    /// False: learning, not enforcing yet (no upstream learned or pinned).
    pub enforcing: bool,
    /// Learned upstreams.
    pub upstreams: u64,
    /// Learned local users.
    pub local_users: u64,
    /// Known-good clients.
    pub known_good: u64,
    /// Active campaigns.
    pub campaigns: u64,
}

impl LearnSummary {
    /// From the engine's status.
    pub fn of(s: &sipwall_engine::LearnStatus) -> Self {
        LearnSummary {
            mode: format!("{:?}", s.mode).to_lowercase(),
            enforcing: s.enforcing,
            upstreams: s.upstreams as u64,
            local_users: s.local_users as u64,
            known_good: s.known_good as u64,
            campaigns: s.campaigns as u64,
        }
    }

    /// One line for people and the log: `learning: auto, enforcing (1 upstream, ...)` or
    /// `learning: auto, learning, not enforcing yet (...)`.
    pub fn line(&self) -> String {
        let state = if self.mode == "off" {
            "off"
        } else if self.enforcing {
            "enforcing the unsolicited-INVITE rule"
        } else {
            "learning, not enforcing yet (no upstream learned)"
        };
        format!(
            "{state}: {} upstream(s), {} local user(s), {} known-good client(s), {} campaign(s)",
            self.upstreams, self.local_users, self.known_good, self.campaigns
        )
    }
}

/// What `sipwall status` reports: one snapshot of the running daemon. Built by the daemon
/// (`daemon::control_server`) from its start-up facts, the queue threads' published counters
/// and a short look at the engine; printed by `commands::status`. Times are ms since the
/// epoch (UTC); counters count since the daemon started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The daemon's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// When it started.
    pub started_ms: u64,
    /// When this snapshot was taken.
    pub now_ms: u64,
    /// Where it stands: `host`, `router` or `both` (`[enforce] mode`; `observe` is host).
    pub mode: String,
    /// True when nothing is enforced: every decision is made and recorded, no packet is
    /// dropped and no ban reaches the kernel (`[enforce] mode = "observe"`).
    pub observe: bool,
    /// Rule families only simulated (`[enforce] simulate`; every family when observing).
    pub simulate: Vec<String>,
    /// Queue backend in use: `nft` or `iptables`.
    pub queue_backend: String,
    /// Ports whose packets the kernel queues to sipwall: `udp:5060`, `tcp:5060`; TLS ports
    /// (bans only, never queued) as `tls:5061`.
    pub guarded_ports: Vec<String>,
    /// The trusted networks whose UDP requests the kernel accepts without queueing them
    /// (`[enforce] trusted_fast_path`); absent when that is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_fast_path: Option<Vec<String>>,
    /// Packets the trusted fast path let through since start (the kernel's rule counters);
    /// absent when it is off or the counters cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_fast_path_packets: Option<u64>,
    /// Why the kernel refused the fast-path rules at start (then trusted requests are queued
    /// like any other); absent when it took them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_fast_path_unavailable: Option<String>,
    /// The devices whose ingress hook drops banned sources before the IP stack
    /// (`[enforce] ingress_drop`); absent when that is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_drop: Option<Vec<String>>,
    /// Devices the kernel refused an ingress chain on, as `device: reason` (the ban chain
    /// still drops banned sources arriving there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub early_drop_refused: Vec<String>,
    /// Tripwire ports of the policy (a request to one bans its source).
    pub tripwire_ports: Vec<u16>,
    /// One entry per queue, by queue number.
    pub queues: Vec<QueueStatus>,
    /// Active bans (not yet expired).
    pub bans_active: u64,
    /// Active bans by rule (`manual` for operator bans).
    pub bans_by_rule: std::collections::BTreeMap<String, u64>,
    /// Of the active bans, those only simulated (a simulated family or observe mode: in the
    /// engine, never in the kernel set or the store).
    pub bans_simulated: u64,
    /// Sources whose behaviour the engine tracks.
    pub tracked_sources: u64,
    /// `ok`, or `unavailable (in memory): WHY` when the daemon runs without its store.
    pub store: String,
    /// The last config reload (SIGHUP or `sipwall reload`); none since start when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reload: Option<ReloadStatus>,
    /// Learning (`[learn]`): mode, enforcing or not yet, fact counts. Absent from older daemons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learn: Option<LearnSummary>,
    /// Bans shared over Redis (`[fleet]`); absent when the fleet is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetStatus>,
}

/// The fleet link (`[fleet]`) as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetStatus {
    /// This node's id in the fleet.
    pub node_id: String,
    /// The Redis URL (password hidden).
    pub redis: String,
    /// True while the reader holds a working connection to Redis.
    pub connected: bool,
    /// Why it is not connected (the last connection error), when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the last full resync from the fleet state finished (0: never).
    pub last_sync_ms: u64,
    /// Active bans the last resync read.
    pub last_sync_bans: u64,
    /// Full resyncs since start (join, reconnects, falling behind the stream).
    pub resyncs: u64,
    /// Age of the last change read, when it was read (ms): how far behind this node follows.
    pub lag_ms: u64,
    /// Changes received from other nodes.
    pub received: u64,
    /// Changes this node published.
    pub published: u64,
    /// Changes waiting to be published (Redis unreachable).
    pub queued: u64,
    /// Changes dropped because the outage queue was full.
    pub dropped: u64,
    /// Received bans refused here by local policy (trusted, local or known-good networks).
    pub refused_local: u64,
    /// Entries ignored: unsigned or badly signed while a key is set.
    pub rejected_signature: u64,
    /// Bans ignored: wider than `max_prefix_v4`/`max_prefix_v6`.
    pub rejected_width: u64,
    /// Bans ignored: their origin's rate limit was exceeded.
    pub rejected_rate: u64,
    /// Entries ignored: malformed.
    pub rejected_malformed: u64,
    /// True when entries are signed and verified (`hmac_key_file`).
    pub signed: bool,
}

/// Counters of one queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueStatus {
    /// NFQUEUE number.
    pub num: u16,
    /// Packets judged per second over the last sampling interval (about one second).
    pub packets_per_sec: f64,
    /// Packets judged since start.
    pub packets: u64,
    /// Packets dropped by a verdict.
    pub dropped: u64,
    /// Packets that would have been dropped by a simulated rule (observe mode or `simulate`),
    /// accepted instead.
    pub would_drop: u64,
    /// Packets without a parseable UDP/TCP header (accepted).
    pub unparsed: u64,
    /// Non-first IP fragments (accepted).
    pub fragments: u64,
    /// The kernel's count of packets waiting in this queue now
    /// (`/proc/net/netfilter/nfnetlink_queue`); absent when the kernel does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_waiting: Option<u64>,
    /// Packets the kernel dropped because the queue was full and sipwall fails closed. With
    /// fail open, such packets bypass sipwall uncounted (the kernel keeps no count of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_dropped: Option<u64>,
    /// Packets the kernel could not hand to sipwall's socket (receive buffer full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_dropped: Option<u64>,
}

/// The outcome of the last config reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadStatus {
    /// When.
    pub at_ms: u64,
    /// True when the new policy is in force.
    pub ok: bool,
    /// What was done, or the error (naming the key and the line) with the old policy kept.
    pub message: String,
}

/// The kernel's counters of one NFQUEUE, from `/proc/net/netfilter/nfnetlink_queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelQueue {
    /// Queue number.
    pub num: u16,
    /// Packets waiting.
    pub waiting: u64,
    /// Dropped: queue full.
    pub dropped: u64,
    /// Dropped: the netlink socket's buffer was full.
    pub user_dropped: u64,
}

/// Parse `/proc/net/netfilter/nfnetlink_queue`: one line per bound queue, whitespace
/// separated `queue_number peer_portid queue_total copy_mode copy_range queue_dropped
/// user_dropped id_sequence 1`. Lines that do not have this shape are skipped.
pub fn parse_nfnetlink_queue(text: &str) -> Vec<KernelQueue> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 7 {
                return None;
            }
            Some(KernelQueue {
                num: f[0].parse().ok()?,
                waiting: f[2].parse().ok()?,
                dropped: f[5].parse().ok()?,
                user_dropped: f[6].parse().ok()?,
            })
        })
        .collect()
}

/// The bans whose network contains `ip` (`bans --ip`: an address finds the range it is in).
pub fn bans_containing(bans: Vec<BanView>, ip: IpAddr) -> Vec<BanView> {
    bans.into_iter().filter(|b| b.net.parse::<IpNet>().is_ok_and(|n| n.contains(&ip))).collect()
}

impl Response {
    /// A failure.
    pub fn error(e: impl std::fmt::Display) -> Response {
        Response { ok: false, error: Some(e.to_string()), ..Response::default() }
    }
    /// A success.
    pub fn done(message: impl Into<String>, bans: Option<Vec<BanView>>) -> Response {
        Response { ok: true, message: Some(message.into()), bans, ..Response::default() }
    }
    /// The answer to `status`.
    pub fn status(s: Status) -> Response {
        Response { ok: true, status: Some(Box::new(s)), ..Response::default() }
    }
}

/// Read one request line of at most [`MAX_REQUEST`] bytes (the newline may be missing if the
/// client closed its side). Errors on a longer line, an empty request, or the read timeout.
pub fn read_request(r: &mut impl BufRead) -> anyhow::Result<Vec<u8>> {
    let mut line = Vec::with_capacity(256);
    r.take(MAX_REQUEST as u64 + 1).read_until(b'\n', &mut line).map_err(|e| {
        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
            anyhow::anyhow!("request not received in time")
        } else {
            anyhow::anyhow!("reading the request: {e}")
        }
    })?;
    anyhow::ensure!(line.len() <= MAX_REQUEST, "request longer than {MAX_REQUEST} bytes");
    while line.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
        line.pop();
    }
    anyhow::ensure!(!line.is_empty(), "empty request");
    Ok(line)
}

/// Parse an address (`203.0.113.9`, a host net) or a network (`203.0.113.0/24`). A network
/// with host bits set (`198.51.100.7/16`) is refused with its canonical form as a hint: it
/// is most likely a typo, and silently banning `198.51.0.0/16` bans 65,536 addresses.
pub fn parse_net(s: &str) -> anyhow::Result<IpNet> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        anyhow::ensure!(
            n == n.trunc(),
            "'{s}' has host bits set: did you mean {} (the whole network) or {} (the address alone)?",
            n.trunc(),
            n.addr()
        );
        return Ok(n);
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| anyhow::anyhow!("'{s}' is not an IP address or network"))
}

/// Parse and check a request line.
pub fn parse_request(line: &[u8]) -> anyhow::Result<Command> {
    anyhow::ensure!(line.len() <= MAX_REQUEST, "request longer than {MAX_REQUEST} bytes");
    let req: Request =
        serde_json::from_slice(line).map_err(|e| anyhow::anyhow!("bad request: {e}"))?;
    Ok(match req {
        Request::Ban { net, secs, reason, extend } => {
            anyhow::ensure!(
                (1..=MAX_BAN_SECS).contains(&secs),
                "ban duration {secs} s is not within 1 s ..= {MAX_BAN_SECS} s"
            );
            anyhow::ensure!(
                reason.chars().count() <= MAX_REASON,
                "reason longer than {MAX_REASON} characters"
            );
            anyhow::ensure!(
                !reason.chars().any(char::is_control),
                "reason holds control characters"
            );
            // The daemon appends who asked ("manual ban by uid 0 (pid 1234)"), also when empty.
            let reason = reason.trim().to_string();
            Command::Ban {
                net: parse_net(&net)?,
                duration: Duration::from_secs(secs),
                reason,
                extend,
            }
        }
        Request::Unban { net } => Command::Unban(parse_net(&net)?),
        Request::Bans => Command::Bans,
        Request::Status => Command::Status,
        Request::Reload => Command::Reload,
        Request::TrustAdd { net, reason } => {
            anyhow::ensure!(
                reason.chars().count() <= MAX_REASON,
                "reason longer than {MAX_REASON} characters"
            );
            anyhow::ensure!(
                !reason.chars().any(char::is_control),
                "reason holds control characters"
            );
            Command::TrustAdd { net: parse_net(&net)?, reason: reason.trim().to_string() }
        }
        Request::TrustDel { net } => Command::TrustDel(parse_net(&net)?),
        Request::TrustList => Command::TrustList,
        Request::Learned => Command::Learned,
        Request::LearnedPin { entry } => Command::LearnedPin(parse_fact(&entry)?),
        Request::LearnedForget { entry } => Command::LearnedForget(parse_fact(&entry)?),
    })
}

/// A learned fact as an operator names it: `upstream ADDR`, `user NAME`, `known-good ADDR`.
pub fn parse_fact(entry: &str) -> anyhow::Result<sipwall_engine::FactKey> {
    entry.parse().map_err(|e| {
        anyhow::anyhow!("{e} (name a fact as `upstream ADDR`, `user NAME` or `known-good ADDR`)")
    })
}

/// Write `value` as one JSON line (the framing both sides use).
pub fn write_line(w: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    w.write_all(&line)?;
    Ok(())
}

/// Read one response line of at most [`MAX_RESPONSE`] bytes; empty when the peer closed
/// without answering.
pub fn read_response_line(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut resp = Vec::new();
    r.take(MAX_RESPONSE).read_until(b'\n', &mut resp)?;
    Ok(resp)
}

/// What the dashboard (`GET /`) shows, in one answer of `GET /api/v1/dashboard`: the
/// daemon's [`Status`] (observe mode included), its active bans, the attack timeline of the
/// last hour, the top sources of that hour, the newest decisions and the learned entries.
/// The timeline, top sources and recent decisions are read from the store's recorded
/// decisions (so they survive a restart); live updates come over `GET /api/v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    /// The status snapshot.
    pub status: Status,
    /// Active bans (simulated ones marked).
    pub bans: Vec<BanView>,
    /// One bucket per minute of the last hour, oldest first ([`TIMELINE_BUCKETS`]).
    pub timeline: Vec<TimelineBucket>,
    /// Sources with the most recorded decisions in the last hour, most first (at most
    /// [`TOP_SOURCES`]).
    pub top_sources: Vec<SourceCount>,
    /// The newest recorded decisions, newest first.
    pub recent: Vec<DecisionView>,
    /// What the daemon learned from the wire (the facts of `sipwall learned`).
    #[serde(default)]
    pub learned: Vec<LearnedFactView>,
    /// Why the recorded decisions could not be read, when they could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
}

/// Minutes in the dashboard's timeline.
pub const TIMELINE_BUCKETS: usize = 60;
/// Sources in the dashboard's top list.
pub const TOP_SOURCES: usize = 10;

/// Recorded decisions in one minute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineBucket {
    /// Start of the minute, ms since the epoch.
    pub start_ms: u64,
    /// Packets dropped or rejected.
    pub dropped: u64,
    /// Drops only simulated (observe mode or a simulated family): accepted.
    pub simulated: u64,
}

/// One source of the top list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCount {
    /// Address.
    pub ip: String,
    /// Recorded decisions in the last hour.
    pub decisions: u64,
    /// The newest one's time, ms since the epoch.
    pub last_ms: u64,
    /// Its rule.
    pub last_rule: String,
    /// Its sentence.
    pub last_summary: String,
    /// An active ban that is not only simulated holds it.
    pub banned: bool,
}

/// A recorded decision as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionView {
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// Source address.
    pub src: String,
    /// Verdict (`drop`, `reject 403`; `accept` for a simulated drop or an operator record).
    pub verdict: String,
    /// Rule id.
    pub rule: String,
    /// The sentence.
    pub summary: String,
    /// Only simulated: nothing was dropped.
    pub simulated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &str) -> anyhow::Result<Command> {
        parse_request(s.as_bytes())
    }

    #[test]
    fn requests_parse_and_are_checked() {
        assert_eq!(
            cmd(r#"{"cmd":"ban","net":"203.0.113.9","secs":600,"reason":" test "}"#).unwrap(),
            Command::Ban {
                net: "203.0.113.9/32".parse().unwrap(),
                duration: Duration::from_secs(600),
                reason: "test".into(),
                extend: false,
            }
        );
        // no reason stays empty (the daemon adds the operator)
        assert_eq!(
            cmd(r#"{"cmd":"ban","net":"203.0.113.0/24","secs":1}"#).unwrap(),
            Command::Ban {
                net: "203.0.113.0/24".parse().unwrap(),
                duration: Duration::from_secs(1),
                reason: String::new(),
                extend: false,
            }
        );
        assert_eq!(
            cmd(r#"{"cmd":"unban","net":"2001:db8::1"}"#).unwrap(),
            Command::Unban("2001:db8::1/128".parse().unwrap())
        );
        assert_eq!(cmd(r#"{"cmd":"bans"}"#).unwrap(), Command::Bans);
        assert_eq!(cmd(r#"{"cmd":"status"}"#).unwrap(), Command::Status);
        assert_eq!(cmd(r#"{"cmd":"reload"}"#).unwrap(), Command::Reload);
        assert_eq!(
            cmd(r#"{"cmd":"trust-add","net":"203.0.113.0/24","reason":" lab "}"#).unwrap(),
            Command::TrustAdd { net: "203.0.113.0/24".parse().unwrap(), reason: "lab".into() }
        );
        assert_eq!(
            cmd(r#"{"cmd":"trust-del","net":"2001:db8::1"}"#).unwrap(),
            Command::TrustDel("2001:db8::1/128".parse().unwrap())
        );
        assert_eq!(cmd(r#"{"cmd":"trust-list"}"#).unwrap(), Command::TrustList);
        assert!(cmd(r#"{"cmd":"trust-add","net":"203.0.113.7/24"}"#).is_err(), "host bits");
        assert!(cmd(r#"{"cmd":"trust-add","net":"203.0.113.7","reason":"a\tb"}"#).is_err());
        assert!(matches!(
            cmd(r#"{"cmd":"ban","net":"203.0.113.9","secs":60,"extend":true}"#).unwrap(),
            Command::Ban { extend: true, .. }
        ));
        for (bad, why) in [
            (r#"{"cmd":"ban","net":"203.0.113.9","secs":0}"#, "duration"),
            (r#"{"cmd":"ban","net":"203.0.113.9","secs":99999999999}"#, "duration"),
            (r#"{"cmd":"ban","net":"pbx.example.com","secs":60}"#, "not an IP"),
            (r#"{"cmd":"ban","net":"203.0.113.9","secs":60,"reason":"a\nb"}"#, "control"),
            (r#"{"cmd":"ban","net":"203.0.113.9","secs":60,"extra":1}"#, "unknown field"),
            (r#"{"cmd":"ban","net":"203.0.113.9"}"#, "secs"),
            (r#"{"cmd":"flush"}"#, "unknown variant"),
            (r#"{"cmd":"unban","net":"300.1.1.1"}"#, "not an IP"),
            // host bits set: refused with the canonical network and the address as hints
            (
                r#"{"cmd":"ban","net":"198.51.100.7/16","secs":60}"#,
                "'198.51.100.7/16' has host bits set: did you mean 198.51.0.0/16 (the whole network) or 198.51.100.7 (the address alone)?",
            ),
            (r#"{"cmd":"unban","net":"2001:db8::1/32"}"#, "did you mean 2001:db8::/32"),
            ("ban 203.0.113.9", "bad request"),
        ] {
            let e = format!("{:#}", cmd(bad).unwrap_err());
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = format!(
            r#"{{"cmd":"ban","net":"203.0.113.9","secs":60,"reason":"{}"}}"#,
            "x".repeat(MAX_REASON + 1)
        );
        assert!(format!("{:#}", cmd(&long).unwrap_err()).contains("reason longer"));
    }

    #[test]
    fn request_lines_are_bounded() {
        let mut ok = std::io::Cursor::new(b"{\"cmd\":\"bans\"}\r\n{\"cmd\":\"x\"}\n".to_vec());
        assert_eq!(read_request(&mut ok).unwrap(), b"{\"cmd\":\"bans\"}");
        // exactly the limit (newline included) passes; one byte more fails without reading on
        let mut at_limit = vec![b' '; MAX_REQUEST - 1];
        at_limit.push(b'\n');
        assert_eq!(read_request(&mut std::io::Cursor::new(at_limit)).unwrap().len(), 4095);
        let huge = vec![b'x'; 10 * MAX_REQUEST];
        let mut r = std::io::Cursor::new(huge);
        assert!(read_request(&mut r).unwrap_err().to_string().contains("longer than 4096"));
        assert!(r.position() <= MAX_REQUEST as u64 + 1);
        // a client that closes without a line
        assert!(read_request(&mut std::io::Cursor::new(Vec::new()))
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(parse_request(&vec![b' '; MAX_REQUEST + 1]).is_err());
    }

    #[test]
    fn responses_round_trip() {
        let r = Response::error("203.0.113.9/32 is trusted");
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(line, r#"{"ok":false,"error":"203.0.113.9/32 is trusted"}"#);
        assert_eq!(serde_json::from_str::<Response>(&line).unwrap(), r);
        let req =
            Request::Ban { net: "203.0.113.9".into(), secs: 60, reason: "x".into(), extend: false };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"cmd":"ban","net":"203.0.113.9","secs":60,"reason":"x"}"#
        );
    }

    #[test]
    fn kernel_queue_counters_parse() {
        let text =
            "    0  1234     3 2 65531     7     9   100  1\n    1 0 0 2 65531 0 0 0 1\ngarbage\n";
        assert_eq!(
            parse_nfnetlink_queue(text),
            vec![
                KernelQueue { num: 0, waiting: 3, dropped: 7, user_dropped: 9 },
                KernelQueue { num: 1, waiting: 0, dropped: 0, user_dropped: 0 },
            ]
        );
        assert!(parse_nfnetlink_queue("").is_empty());
    }

    #[test]
    fn an_address_finds_the_range_holding_it() {
        let v = |net: &str| BanView {
            net: net.into(),
            since_ms: 0,
            until_ms: 1,
            count: 1,
            rule: "manual".into(),
            reason: String::new(),
            origin: "manual".into(),
            durable: true,
            simulated: false,
        };
        let bans = vec![v("198.51.100.0/24"), v("203.0.113.9/32"), v("2001:db8::/32")];
        let nets = |ip: &str| -> Vec<String> {
            bans_containing(bans.clone(), ip.parse().unwrap()).into_iter().map(|b| b.net).collect()
        };
        assert_eq!(nets("198.51.100.7"), ["198.51.100.0/24"]);
        assert_eq!(nets("203.0.113.9"), ["203.0.113.9/32"]);
        assert_eq!(nets("203.0.113.10"), Vec::<String>::new());
        assert_eq!(nets("2001:db8:1::5"), ["2001:db8::/32"]);
    }

    #[test]
    fn learned_requests_name_a_fact_and_parse_to_its_key() {
        use sipwall_engine::FactKey;
        let c = parse_request(br#"{"cmd":"learned"}"#).unwrap();
        assert_eq!(c, Command::Learned);
        let c = parse_request(br#"{"cmd":"learned-pin","entry":"upstream 198.51.100.2"}"#).unwrap();
        assert_eq!(c, Command::LearnedPin(FactKey::Upstream("198.51.100.2".parse().unwrap())));
        let c = parse_request(br#"{"cmd":"learned-forget","entry":"user 100"}"#).unwrap();
        assert_eq!(c, Command::LearnedForget(FactKey::LocalUser("100".into())));
        let e = parse_request(br#"{"cmd":"learned-pin","entry":"gateway 1"}"#).unwrap_err();
        assert!(e.to_string().contains("upstream ADDR"), "{e}");
        assert!(parse_request(br#"{"cmd":"learned-pin"}"#).is_err());
        let s = LearnSummary { mode: "auto".into(), ..LearnSummary::default() };
        assert!(s.line().starts_with("learning, not enforcing yet"), "{}", s.line());
        let s = LearnSummary { enforcing: true, upstreams: 1, ..s };
        assert!(s.line().contains("1 upstream(s)"));
    }
}
