//! Policy: what sipwall does, read from TOML.
//!
//! CONTRACT:
//! * [`Policy::from_toml_str`] parses and validates; every error names the key (dotted path)
//!   and the line. Unknown keys are errors (`deny_unknown_fields` everywhere).
//! * An empty document gives [`Policy::default()`], which works with no config file: detection
//!   and bans on, no trusted networks, no block lists, silent drops.
//! * Pure: block list FILES are named here but read by the caller, who passes their text to
//!   [`Policy::load_blocklist_text`] (at start and on reload).
//!
//! Every key, its default and the reason for the default are documented in
//! `config/sipwall.example.toml`; the constants in [`defaults`] hold the values.
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

mod parse;

use crate::decision::Verdict;
use crate::netset::NetSet;
pub use crate::signatures::{CustomSignature, SigField, SigMatch};

/// Default values (reasons are in `config/sipwall.example.toml`).
pub mod defaults {
    /// Seconds of a first ban.
    pub const BAN_SECS: u64 = 3600;
    /// Each repeat ban is this many times longer.
    pub const BAN_ESCALATION_FACTOR: u32 = 4;
    /// Longest ban.
    pub const BAN_MAX_SECS: u64 = 7 * 86_400;
    /// Offence history kept this long after a ban ends.
    pub const BAN_FORGET_SECS: u64 = 30 * 86_400;
    /// IPv4 aggregation prefix.
    pub const AGG_V4_PREFIX: u8 = 24;
    /// Banned addresses in one IPv4 range that ban the range.
    pub const AGG_V4_THRESHOLD: u32 = 5;
    /// IPv6 aggregation prefix.
    pub const AGG_V6_PREFIX: u8 = 64;
    /// Banned addresses in one IPv6 range that ban the range.
    pub const AGG_V6_THRESHOLD: u32 = 2;
    /// IPv4 wide aggregation prefix (second level).
    pub const AGG_V4_WIDE_PREFIX: u8 = 16;
    /// Distinct IPv4 ranges (`/24`s) with bans in one wide range that ban the wide range.
    pub const AGG_V4_WIDE_THRESHOLD: u32 = 64;
    /// IPv6 wide aggregation prefix (second level).
    pub const AGG_V6_WIDE_PREFIX: u8 = 48;
    /// Distinct IPv6 ranges (`/64`s) with bans in one wide range that ban the wide range.
    pub const AGG_V6_WIDE_THRESHOLD: u32 = 16;
    /// Automatic address bans per second; beyond it new ones are folded into their range.
    pub const BANS_PER_SECOND: u32 = 100;
    /// Trusted networks shorter than this (IPv4) draw a warning.
    pub const WIDE_TRUSTED_V4: u8 = 8;
    /// Trusted networks shorter than this (IPv6) draw a warning.
    pub const WIDE_TRUSTED_V6: u8 = 16;
    /// Requests in the flood window.
    pub const FLOOD_MAX: u32 = 100;
    /// Flood window.
    pub const FLOOD_WINDOW_SECS: u64 = 10;
    /// Distinct target users in the enumeration window.
    pub const ENUM_MAX: u32 = 10;
    /// Enumeration window.
    pub const ENUM_WINDOW_SECS: u64 = 120;
    /// Failed authentications in the window.
    pub const AUTH_FAIL_MAX: u32 = 5;
    /// Auth failure window.
    pub const AUTH_WINDOW_SECS: u64 = 300;
    /// First challenges (401/407 for a new Call-ID) in the window.
    pub const CHALLENGE_MAX: u32 = 30;
    /// "No such user" answers in the window.
    pub const NOT_FOUND_MAX: u32 = 10;
    /// Not-found window.
    pub const NOT_FOUND_WINDOW_SECS: u64 = 120;
    /// New INVITEs from one untrusted source in the window.
    pub const INVITE_MAX: u32 = 30;
    /// Untrusted INVITE window.
    pub const INVITE_WINDOW_SECS: u64 = 60;
    /// Signature score that bans.
    pub const BAN_SCORE: u32 = 100;
    /// Sources whose behaviour is tracked.
    pub const MAX_TRACKED_SOURCES: usize = 100_000;
    /// Active bans.
    pub const MAX_BANS: usize = 100_000;
    /// Offence history entries.
    pub const MAX_BAN_HISTORY: usize = 100_000;
    /// Largest distinct-user threshold (fixed-size per-source table).
    pub const MAX_ENUM_THRESHOLD: u32 = crate::behaviour::USER_SLOTS as u32;
    /// `[learn] known_good_secs`: a client that completed digest authentication stays
    /// known-good this long after its last success.
    pub const LEARN_KNOWN_GOOD_SECS: u64 = 7 * 86_400;
    /// `[learn] forget_after_secs`: learned upstreams and users not seen for this long are
    /// forgotten (unless pinned).
    pub const LEARN_FORGET_SECS: u64 = 30 * 86_400;
    /// `[learn] pending_timeout_secs`: an outbound request waits this long for its answer
    /// (RFC 3261 timer B/F: 64 x T1).
    pub const LEARN_PENDING_SECS: u64 = 32;
    /// `[learn] max_pending`: outbound transactions awaiting an answer.
    pub const LEARN_MAX_PENDING: usize = 4096;
    /// `[learn] max_upstreams`.
    pub const LEARN_MAX_UPSTREAMS: usize = 256;
    /// `[learn] max_users`.
    pub const LEARN_MAX_USERS: usize = 10_000;
    /// `[learn] max_known_good`.
    pub const LEARN_MAX_KNOWN_GOOD: usize = 4096;
    /// `[learn.campaign] sources`: distinct new sources that make a campaign.
    pub const CAMPAIGN_SOURCES: u32 = 10;
    /// Largest `[learn.campaign] sources` (fixed-size per-key table).
    pub const MAX_CAMPAIGN_SOURCES: u32 = crate::learn::CAMPAIGN_SLOTS as u32;
    /// `[learn.campaign] window_secs`.
    pub const CAMPAIGN_WINDOW_SECS: u64 = 300;
    /// `[learn.campaign] hold_secs`: a campaign stays active this long after its last source.
    pub const CAMPAIGN_HOLD_SECS: u64 = 3600;
    /// `[learn.campaign] max_tracked`: keys (target users, fingerprints) counted at once.
    pub const CAMPAIGN_MAX_TRACKED: usize = 4096;
    /// `[learn.campaign] max_campaigns`: active campaigns kept.
    pub const CAMPAIGN_MAX: usize = 256;
}

/// A config or block list error. Config errors name the dotted key and the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Anything else.
    #[error("{0}")]
    Invalid(String),
    /// A key of the config is wrong.
    #[error("line {line}: key `{key}`: {message}")]
    Config {
        /// Dotted key path, e.g. `trusted.networks`.
        key: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A line of a block list is wrong.
    #[error("block list {name} line {line}: {message}")]
    Blocklist {
        /// Name given by the caller (file path).
        name: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Something accepted in the config that an operator should look at twice (for example a
/// trusted `0.0.0.0/0`). `check-config` and `run` print them; they never stop the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWarning {
    /// Dotted key path, e.g. `trusted.networks`.
    pub key: String,
    /// 1-based line.
    pub line: usize,
    /// What is risky about it.
    pub message: String,
}

impl std::fmt::Display for PolicyWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: key `{}`: {}", self.line, self.key, self.message)
    }
}

/// What to do with a packet a rule refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Action {
    /// Let it through (only meaningful for malformed packets).
    Accept,
    /// Drop silently.
    Drop,
    /// Drop requests and answer with this status; responses are dropped.
    Reject(u16),
}

impl Action {
    /// The verdict for a request (`is_request`) or anything else.
    pub fn verdict(self, is_request: bool) -> Verdict {
        match self {
            Action::Accept => Verdict::Accept,
            Action::Drop => Verdict::Drop,
            Action::Reject(code) if is_request => Verdict::Reject(code),
            Action::Reject(_) => Verdict::Drop,
        }
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s {
            "accept" => return Ok(Action::Accept),
            "drop" => return Ok(Action::Drop),
            "reject" => return Ok(Action::Reject(403)),
            _ => {}
        }
        if let Some(code) = s.strip_prefix("reject ").or_else(|| s.strip_prefix("reject:")) {
            let code: u16 = code
                .trim()
                .parse()
                .map_err(|_| format!("`{s}`: status must be a number 400-699"))?;
            if !(400..=699).contains(&code) {
                return Err(format!("`{s}`: status {code} is not a final error (400-699)"));
            }
            return Ok(Action::Reject(code));
        }
        Err(format!("`{s}`: expected \"drop\", \"reject\" or \"reject NNN\""))
    }
}

/// A counted behaviour with a threshold over a sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    /// Off when false.
    pub enabled: bool,
    /// Count that bans (the packet that reaches it is the one that bans).
    pub max: u32,
    /// Window length in milliseconds.
    pub window_ms: u64,
}

/// Behaviour thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// Requests from one source.
    pub flood: Threshold,
    /// Distinct target users from one source.
    pub enumeration: Threshold,
    /// Failed authentications answered to one source (403, or a repeated 401/407 on one Call-ID).
    pub auth_failures: Threshold,
    /// First challenges (401/407 on a new Call-ID) answered to one source (same window).
    pub challenges: Threshold,
    /// 404/480/484 answered to one source.
    pub not_found: Threshold,
    /// New INVITEs (no To tag) from one untrusted source.
    pub untrusted_invites: Threshold,
}

/// Ban durations and aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanPolicy {
    /// Whether detection bans at all (false: detection only drops the packet that matched).
    pub enabled: bool,
    /// First ban, ms.
    pub duration_ms: u64,
    /// Each repeat multiplies by this.
    pub escalation_factor: u32,
    /// Cap, ms.
    pub max_duration_ms: u64,
    /// Offence history forgotten this long after the last ban ended, ms.
    pub forget_after_ms: u64,
    /// Aggregation on.
    pub aggregate: bool,
    /// IPv4 range prefix.
    pub v4_prefix: u8,
    /// Banned addresses that ban an IPv4 range.
    pub v4_threshold: u32,
    /// IPv6 range prefix.
    pub v6_prefix: u8,
    /// Banned addresses that ban an IPv6 range.
    pub v6_threshold: u32,
    /// IPv4 wide range prefix (second level of aggregation).
    pub v4_wide_prefix: u8,
    /// Distinct IPv4 ranges holding bans that ban their wide range; 0 = off.
    pub v4_wide_threshold: u32,
    /// IPv6 wide range prefix (second level of aggregation).
    pub v6_wide_prefix: u8,
    /// Distinct IPv6 ranges holding bans that ban their wide range; 0 = off.
    pub v6_wide_threshold: u32,
    /// Automatic address bans per second of packet time; beyond it, a new one is folded into
    /// its range (one ban for the whole range). 0 = no cap.
    pub max_per_second: u32,
    /// Addresses of this host (and any network it owns) that no ban may cover, in addition
    /// to what the caller passes to [`crate::Engine::set_local_addresses`].
    pub local_addresses: NetSet,
}

/// Actions per rule family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actions {
    /// Source on a block list.
    pub blocklist: Action,
    /// Source under an active ban.
    pub banned: Action,
    /// Signature match.
    pub signature: Action,
    /// Behaviour threshold reached.
    pub behaviour: Action,
    /// Untrusted source in trusted-only mode.
    pub trusted_only: Action,
    /// Direct IP call / unknown local user.
    pub direct_call: Action,
    /// Request to a tripwire port.
    pub tripwire: Action,
    /// Payload that does not parse as SIP (and is not a keep-alive).
    pub malformed: Action,
}

/// `[learn] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LearnMode {
    /// Learn upstreams, local users, known-good clients and campaigns from the wire; the
    /// unsolicited-INVITE rule takes effect once an upstream has been learned (or pinned).
    Auto,
    /// Learn nothing; no unsolicited-INVITE rule, no campaigns, upstreams not accepted. Facts
    /// restored or pinned are kept (and listed), and their addresses stay out of automatic
    /// bans.
    Off,
}

/// `[learn.campaign]`: distributed scans (see `learn.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignPolicy {
    /// Campaign detection on.
    pub enabled: bool,
    /// Distinct new sources with one key (target user or fingerprint) that make a campaign.
    pub sources: u32,
    /// Window the sources must fall in, ms.
    pub window_ms: u64,
    /// A campaign stays active this long after its last source, ms.
    pub hold_ms: u64,
    /// Keys counted at once (bounded under a spoofed-source flood).
    pub max_tracked: usize,
    /// Active campaigns kept.
    pub max_campaigns: usize,
}

/// `[learn]`: what sipwall learns from the wire (see `learn.rs` and ARCHITECTURE.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnPolicy {
    /// `auto` or `off`.
    pub mode: LearnMode,
    /// A known-good client stays known-good this long after its last authenticated success, ms.
    pub known_good_ms: u64,
    /// Learned upstreams and users not seen for this long are forgotten (pinned ones never);
    /// 0 = never.
    pub forget_after_ms: u64,
    /// An outbound request waits this long for the answer that teaches, ms.
    pub pending_timeout_ms: u64,
    /// Outbound transactions awaiting an answer (and challenges/credentials remembered).
    pub max_pending: usize,
    /// Learned upstreams kept.
    pub max_upstreams: usize,
    /// Learned local users kept.
    pub max_users: usize,
    /// Known-good clients kept.
    pub max_known_good: usize,
    /// Campaigns.
    pub campaign: CampaignPolicy,
}

/// The validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Trusted networks: always accepted, never banned.
    pub trusted: NetSet,
    /// Trusted-only mode on.
    pub trusted_only: bool,
    /// Methods trusted-only mode applies to (upper case); empty = all.
    pub trusted_only_methods: Vec<String>,
    /// Static block list (config networks plus loaded files).
    pub blocklist: NetSet,
    /// Block list files for the caller to read.
    pub blocklist_files: Vec<String>,
    /// Drop INVITEs whose request-URI host is an IP literal.
    pub block_ip_calls: bool,
    /// Local accounts/numbers; when non-empty, INVITEs to other users are dropped.
    pub local_users: Vec<String>,
    /// Ports guarded; empty = every port the caller hands in.
    pub guarded_ports: Vec<u16>,
    /// Tripwire ports.
    pub tripwire_ports: Vec<u16>,
    /// Actions.
    pub actions: Actions,
    /// Signature score that bans.
    pub ban_score: u32,
    /// Built-in signature ids turned off.
    pub disabled_signatures: Vec<String>,
    /// Signatures from the config.
    pub custom_signatures: Vec<CustomSignature>,
    /// Behaviour thresholds.
    pub behaviour: Behaviour,
    /// Bans.
    pub bans: BanPolicy,
    /// Max sources tracked.
    pub max_tracked_sources: usize,
    /// Max active bans.
    pub max_bans: usize,
    /// Max offence history entries.
    pub max_ban_history: usize,
    /// `[learn]`.
    pub learn: LearnPolicy,
    /// Accepted but risky settings (see [`Policy::warnings`]).
    warnings: Vec<PolicyWarning>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from_toml_str("").expect("the empty config is valid")
    }
}

/// Parse an address or CIDR network (`192.0.2.1`, `192.0.2.0/24`, `2001:db8::/32`).
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net.trunc());
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

/// Parse an address or a canonical CIDR network. A network with host bits set is refused
/// with a hint naming both readings (`198.51.100.0/24` the network, `198.51.100.7` the
/// address), since either may have been meant.
pub fn parse_canonical_net(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    if let Ok(net) = t.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "`{t}` is not a canonical network (host bits are set): write `{}` for the \
                 network, or `{}` for the single address",
                net.trunc(),
                net.addr()
            ));
        }
        return Ok(net);
    }
    t.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{t}` is not an IP address or CIDR network"))
}

impl Policy {
    /// Parse and validate TOML. Errors name the key and line (see the module docs); risky
    /// but valid settings are kept in [`Policy::warnings`].
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        parse::policy(text)
    }

    /// Settings accepted but worth a second look (a trusted `0.0.0.0/0`, ...), each with its
    /// key and line, for the caller to print. Empty for a sound config.
    pub fn warnings(&self) -> &[PolicyWarning] {
        &self.warnings
    }

    /// Add the entries of a block list file (text read by the caller) to the policy's block
    /// list. Returns how many entries were read.
    ///
    /// Format: one entry per line; `#` and `;` start a comment (whole line or trailing);
    /// blank lines are skipped. An entry is an IPv4/IPv6 address or CIDR network; also
    /// accepted, because public SIP block lists use them: `ip:port` and `[v6]:port` (the port
    /// is ignored: the whole address is blocked), a range written `a.b.c.d - e.f.g.h` is NOT
    /// accepted (error), and any text after the first whitespace (e.g. `1.2.3.4  scanner`) is
    /// ignored. Entries overlapping a trusted network are skipped (trusted wins) and counted in
    /// the returned [`BlocklistLoad`].
    pub fn load_blocklist_text(
        &mut self,
        name: &str,
        text: &str,
    ) -> Result<BlocklistLoad, PolicyError> {
        let mut load = BlocklistLoad::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split(['#', ';']).next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let entry = line.split(|c: char| c.is_whitespace() || c == ',').next().unwrap_or("");
            let net = parse_blocklist_entry(entry).ok_or_else(|| PolicyError::Blocklist {
                name: name.to_string(),
                line: i + 1,
                message: format!("`{entry}` is not an IP address, CIDR network or ip:port"),
            })?;
            if self.trusted.overlaps(net) {
                load.skipped_trusted += 1;
                continue;
            }
            self.blocklist.insert(net);
            load.entries += 1;
        }
        Ok(load)
    }

    /// Ports the enforcer must hand to the engine: guarded plus tripwire, or 5060 when no
    /// port is guarded (the empty list means "whatever the caller hands in").
    pub fn ports_to_guard(&self) -> Vec<u16> {
        let mut p: Vec<u16> =
            if self.guarded_ports.is_empty() { vec![5060] } else { self.guarded_ports.clone() };
        p.extend(self.tripwire_ports.iter().copied());
        p.sort_unstable();
        p.dedup();
        p
    }

    /// A few lines describing what this policy does, for `check-config`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        s += &format!(
            "trusted networks: {}{}\n",
            self.trusted.len(),
            if self.trusted_only {
                format!(
                    " (trusted-only mode for {})",
                    if self.trusted_only_methods.is_empty() {
                        "all methods".to_string()
                    } else {
                        self.trusted_only_methods.join(", ")
                    }
                )
            } else {
                String::new()
            }
        );
        s += &format!(
            "block list: {} networks in config, {} files\n",
            self.blocklist.len(),
            self.blocklist_files.len()
        );
        s += &format!(
            "ports: guarded {:?}, tripwire {:?}\n",
            self.guarded_ports, self.tripwire_ports
        );
        s += &format!(
            "direct IP calls: {}; local users: {}\n",
            if self.block_ip_calls { "blocked" } else { "allowed" },
            self.local_users.len()
        );
        s += &format!(
            "signatures: {} built-in ({} disabled), {} custom, ban score {}\n",
            crate::signatures::BUILTIN.len(),
            self.disabled_signatures.len(),
            self.custom_signatures.len(),
            self.ban_score
        );
        s += &format!(
            "bans: {}, first {} s, x{} per repeat, max {} s\n",
            if self.bans.enabled { "on" } else { "off" },
            self.bans.duration_ms / 1000,
            self.bans.escalation_factor,
            self.bans.max_duration_ms / 1000
        );
        s += &format!(
            "learning: {}\n",
            match self.learn.mode {
                LearnMode::Auto => format!(
                    "auto (upstreams, local users, known-good clients for {}; unsolicited \
                     INVITEs dropped once an upstream is learned; campaigns: {})",
                    crate::engine::human_duration(self.learn.known_good_ms),
                    if self.learn.campaign.enabled {
                        format!(
                            "{} new sources within {} s",
                            self.learn.campaign.sources,
                            self.learn.campaign.window_ms / 1000
                        )
                    } else {
                        "off".to_string()
                    }
                ),
                LearnMode::Off => "off".to_string(),
            }
        );
        s += &format!(
            "limits: {} tracked sources (~{} MiB), {} bans\n",
            self.max_tracked_sources,
            self.max_tracked_sources * crate::behaviour::BYTES_PER_SOURCE / (1 << 20),
            self.max_bans
        );
        s
    }
}

/// What [`Policy::load_blocklist_text`] read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlocklistLoad {
    /// Entries added.
    pub entries: usize,
    /// Entries skipped because they overlap a trusted network.
    pub skipped_trusted: usize,
}

fn parse_blocklist_entry(e: &str) -> Option<IpNet> {
    if let Some(n) = parse_net(e) {
        return Some(n);
    }
    // [v6]:port or [v6]
    if let Some(rest) = e.strip_prefix('[') {
        let inner = rest.split(']').next()?;
        return inner.parse::<IpAddr>().ok().map(IpNet::from);
    }
    // v4:port
    let (host, port) = e.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(|a| IpNet::from(IpAddr::V4(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (String, usize, String) {
        match Policy::from_toml_str(text).unwrap_err() {
            PolicyError::Config { key, line, message } => (key, line, message),
            e => panic!("expected a keyed error, got {e:?}"),
        }
    }

    #[test]
    fn empty_config_is_default_and_sensible() {
        let p = Policy::default();
        assert!(p.trusted.is_empty());
        assert!(!p.trusted_only);
        assert_eq!(p.actions.signature, Action::Drop);
        assert_eq!(p.actions.malformed, Action::Accept);
        assert_eq!(p.behaviour.flood.max, defaults::FLOOD_MAX);
        assert_eq!(p.behaviour.flood.window_ms, defaults::FLOOD_WINDOW_SECS * 1000);
        assert_eq!(p.bans.duration_ms, 3_600_000);
        assert!(p.bans.enabled && p.bans.aggregate);
        assert_eq!(p.max_tracked_sources, defaults::MAX_TRACKED_SOURCES);
        assert_eq!(p.ports_to_guard(), vec![5060]);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let (key, line, msg) = err("[trusted]\nnetworks = []\nonly_method = [\"INVITE\"]\n");
        assert_eq!(key, "trusted.only_method");
        assert_eq!(line, 3);
        assert!(msg.contains("unknown field"), "{msg}");
        let (key, line, _) = err("\n\n[nonsense]\nx = 1\n");
        assert_eq!((key.as_str(), line), ("nonsense", 3));
    }

    #[test]
    fn type_error_names_key_and_line() {
        let (key, line, msg) = err("[behaviour.flood]\nmax = \"lots\"\n");
        assert_eq!(key, "behaviour.flood.max");
        assert_eq!(line, 2);
        assert!(msg.contains("invalid type"), "{msg}");
    }

    #[test]
    fn bad_cidr_names_key_and_line() {
        let (key, line, msg) = err(
            "# comment\n[trusted]\nnetworks = [\n  \"103.55.116.0/24\",\n  \"300.1.1.0/24\",\n]\n",
        );
        assert_eq!(key, "trusted.networks");
        assert_eq!(line, 5);
        assert!(msg.contains("300.1.1.0/24"), "{msg}");
    }

    #[test]
    fn zero_threshold_names_key_and_line() {
        let (key, line, msg) = err("[behaviour]\n[behaviour.not_found]\nmax = 0\n");
        assert_eq!((key.as_str(), line), ("behaviour.not_found.max", 3));
        assert!(msg.contains("out of range"), "{msg}");
        let (key, line, _) = err("[behaviour.enumeration]\nmax = 500\n");
        assert_eq!((key.as_str(), line), ("behaviour.enumeration.max", 2));
    }

    #[test]
    fn actions_parse_and_validate() {
        let p = Policy::from_toml_str(
            "[actions]\ntrusted_only = \"reject 403\"\ndirect_call = \"reject:488\"\n",
        )
        .unwrap();
        assert_eq!(p.actions.trusted_only, Action::Reject(403));
        assert_eq!(p.actions.direct_call, Action::Reject(488));
        assert_eq!(p.actions.direct_call.verdict(false), Verdict::Drop);
        let (key, line, _) = err("[actions]\n\nsignature = \"accept\"\n");
        assert_eq!((key.as_str(), line), ("actions.signature", 3));
        let (key, _, msg) = err("[actions]\nbanned = \"reject 200\"\n");
        assert_eq!(key, "actions.banned");
        assert!(msg.contains("400-699"));
    }

    #[test]
    fn methods_ports_users_validated() {
        let (key, line, _) =
            err("[trusted]\nonly = true\nonly_methods = [\"INVITE\", \"INVIET\"]\n");
        assert_eq!((key.as_str(), line), ("trusted.only_methods", 3));
        let (key, _, _) = err("[ports]\nguarded = [5080]\ntripwire = [70000]\n");
        assert_eq!(key, "ports.tripwire");
        let (key, line, msg) = err("[ports]\nguarded = [5080]\ntripwire = [5060, 5080]\n");
        assert_eq!((key.as_str(), line), ("ports.tripwire", 3));
        assert!(msg.contains("also guarded"));
        let (key, _, _) = err("[calls]\nlocal_users = [\"100@pbx\"]\n");
        assert_eq!(key, "calls.local_users");
        let p = Policy::from_toml_str("[trusted]\nonly = true\nonly_methods = [\"invite\"]\n[ports]\nguarded=[5080]\ntripwire=[5060]\n").unwrap();
        assert_eq!(p.trusted_only_methods, vec!["INVITE".to_string()]);
        assert_eq!(p.ports_to_guard(), vec![5060, 5080]);
    }

    #[test]
    fn signatures_config() {
        let (key, line, _) = err("[signatures]\ndisabled = [\"no-such-id\"]\n");
        assert_eq!((key.as_str(), line), ("signatures.disabled", 2));
        let p = Policy::from_toml_str(
            "[[signatures.custom]]\nid = \"evil\"\nfield = \"user-agent\"\nmatch = \"prefix\"\nvalue = \"EvilScan\"\nscore = 60\ntool = \"evilscan\"\nwhy = \"its default UA\"\n",
        )
        .unwrap();
        assert_eq!(p.custom_signatures[0].value, "evilscan");
        assert_eq!(p.custom_signatures[0].score, 60);
        let (key, line, _) = err("[[signatures.custom]]\nid = \"x\"\nfield = \"user-agent\"\nvalue = \"x\"\ncolour = 1\n");
        assert_eq!((key.as_str(), line), ("signatures.custom.colour", 5));
        let (key, line, _) =
            err("[[signatures.custom]]\nid = \"x\"\nfield = \"usr-agent\"\nvalue = \"x\"\n");
        assert_eq!((key.as_str(), line), ("signatures.custom.field", 3));
    }

    #[test]
    fn ban_durations_validated() {
        let (key, line, _) = err("[bans]\nduration_secs = 7200\nmax_duration_secs = 60\n");
        assert_eq!((key.as_str(), line), ("bans.max_duration_secs", 3));
        let (key, _, _) = err("[bans.aggregate]\nipv4_prefix = 33\n");
        assert_eq!(key, "bans.aggregate.ipv4_prefix");
    }

    #[test]
    fn non_canonical_networks_are_refused_in_every_table_with_a_hint() {
        for (text, key, line) in [
            ("[trusted]\nnetworks = [\"198.51.100.7/24\"]\n", "trusted.networks", 2),
            ("[blocklist]\n\nnetworks = [\"198.51.100.7/24\"]\n", "blocklist.networks", 3),
            (
                "[bans]\nlocal_addresses = [\"2001:db8::1\", \"198.51.100.7/24\"]\n",
                "bans.local_addresses",
                2,
            ),
        ] {
            let (k, l, msg) = err(text);
            assert_eq!((k.as_str(), l), (key, line), "{text}");
            assert!(
                msg.contains("`198.51.100.0/24`") && msg.contains("`198.51.100.7`"),
                "the hint names both readings: {msg}"
            );
        }
        let (_, _, msg) = err("[trusted]\nnetworks = [\"2001:db8::5/64\"]\n");
        assert!(msg.contains("`2001:db8::/64`"), "{msg}");
        // Canonical networks and plain addresses are fine.
        let p = Policy::from_toml_str(
            "[trusted]\nnetworks = [\"198.51.100.0/24\", \"198.51.100.7/32\", \"192.0.2.1\"]\n",
        )
        .unwrap();
        assert_eq!(p.trusted.len(), 2 + 1);
        assert!(p.warnings().is_empty());
    }

    #[test]
    fn very_wide_trusted_networks_are_accepted_with_a_warning() {
        let p = Policy::from_toml_str(
            "[trusted]\nnetworks = [\n  \"198.51.100.0/24\",\n  \"0.0.0.0/0\",\n  \"::/0\",\n  \"10.0.0.0/7\",\n  \"10.0.0.0/8\",\n]\n",
        )
        .unwrap();
        let w: Vec<(String, usize)> =
            p.warnings().iter().map(|w| (w.key.clone(), w.line)).collect();
        let k = || "trusted.networks".to_string();
        assert_eq!(w, vec![(k(), 4), (k(), 5), (k(), 6)]);
        let text = p.warnings()[0].to_string();
        assert!(text.starts_with("line 4: key `trusted.networks`: 0.0.0.0/0"), "{text}");
        assert!(Policy::default().warnings().is_empty());
    }

    #[test]
    fn wide_aggregation_prefix_must_be_shorter_than_the_range() {
        let (key, line, msg) = err("[bans.aggregate]\nipv4_prefix = 24\nipv4_wide_prefix = 24\n");
        assert_eq!((key.as_str(), line), ("bans.aggregate.ipv4_wide_prefix", 3));
        assert!(msg.contains("/24"), "{msg}");
        let p =
            Policy::from_toml_str("[bans.aggregate]\nipv6_prefix = 56\nipv6_wide_threshold = 0\n")
                .unwrap();
        assert_eq!((p.bans.v6_wide_prefix, p.bans.v6_wide_threshold), (48, 0));
    }

    #[test]
    fn blocklist_overlapping_trusted_is_an_error() {
        let (key, line, _) = err(
            "[trusted]\nnetworks = [\"192.0.2.0/24\"]\n[blocklist]\nnetworks = [\"192.0.2.9\"]\n",
        );
        assert_eq!((key.as_str(), line), ("blocklist.networks", 4));
    }

    #[test]
    fn blocklist_text_formats() {
        let mut p = Policy::from_toml_str("[trusted]\nnetworks = [\"198.51.100.0/24\"]\n").unwrap();
        let text = "# SIP scanners\n; other comment style\n203.0.113.5\n203.0.113.0/28   # hosting range\n192.0.2.7:5060\n[2001:db8::7]:5061\n2001:db8:bad::/48 ; trailing\n\n198.51.100.9\n45.0.0.1 friendly-scanner seen 2024\n";
        let load = p.load_blocklist_text("block.txt", text).unwrap();
        assert_eq!(load, BlocklistLoad { entries: 6, skipped_trusted: 1 });
        for ip in [
            "203.0.113.5",
            "203.0.113.14",
            "192.0.2.7",
            "2001:db8::7",
            "2001:db8:bad:1::1",
            "45.0.0.1",
        ] {
            assert!(p.blocklist.contains_ip(ip.parse().unwrap()), "{ip}");
        }
        assert!(!p.blocklist.contains_ip("198.51.100.9".parse().unwrap()));
        assert!(!p.blocklist.contains_ip("203.0.113.16".parse().unwrap()));
        let e = p.load_blocklist_text("b.txt", "1.2.3.4\n\nnot-an-ip\n").unwrap_err();
        assert_eq!(
            e,
            PolicyError::Blocklist {
                name: "b.txt".into(),
                line: 3,
                message: "`not-an-ip` is not an IP address, CIDR network or ip:port".into()
            }
        );
    }

    #[test]
    fn learn_table_defaults_and_errors() {
        let p = Policy::default();
        assert_eq!(p.learn.mode, LearnMode::Auto);
        assert_eq!(p.learn.known_good_ms, defaults::LEARN_KNOWN_GOOD_SECS * 1000);
        assert_eq!(p.learn.campaign.sources, defaults::CAMPAIGN_SOURCES);
        let p = Policy::from_toml_str(
            "[learn]\nmode = \"off\"\nknown_good_secs = 3600\n[learn.campaign]\nsources = 5\n",
        )
        .unwrap();
        assert_eq!(p.learn.mode, LearnMode::Off);
        assert_eq!(p.learn.known_good_ms, 3_600_000);
        assert_eq!(p.learn.campaign.sources, 5);
        assert_eq!(
            err("[learn]\nmode = \"maybe\"\n"),
            ("learn.mode".into(), 2, "`maybe`: expected \"auto\" or \"off\"".into())
        );
        assert_eq!(
            err("[learn]\n\n[learn.campaign]\nsources = 33\n"),
            ("learn.campaign.sources".into(), 4, "33 is out of range 2..=32".into())
        );
        let (key, line, _) = err("[learn]\nmode = \"auto\"\nlearn_everything = true\n");
        assert_eq!((key.as_str(), line), ("learn.learn_everything", 3));
        let (key, line, _) = err("[learn.campaign]\nwindow = 5\n");
        assert_eq!((key.as_str(), line), ("learn.campaign.window", 2));
    }

    #[test]
    fn example_config_parses_to_the_defaults() {
        let text = include_str!("../../../config/sipwall.example.toml");
        let p = Policy::from_toml_str(text).expect("example config is valid");
        let d = Policy::default();
        // The example sets every key to its default, except the illustrative lists below.
        assert_eq!(p.behaviour, d.behaviour);
        assert_eq!(p.bans, d.bans);
        assert_eq!(p.actions, d.actions);
        assert_eq!(p.ban_score, d.ban_score);
        assert_eq!(
            (p.max_tracked_sources, p.max_bans, p.max_ban_history),
            (d.max_tracked_sources, d.max_bans, d.max_ban_history)
        );
        assert_eq!(p.trusted_only, d.trusted_only);
        assert_eq!(p.block_ip_calls, d.block_ip_calls);
        assert_eq!(p.learn, d.learn);
    }

    #[test]
    fn example_config_mentions_every_key() {
        let text = include_str!("../../../config/sipwall.example.toml");
        // Every key the parser accepts must appear, assigned, in the example.
        for key in [
            "networks",
            "only",
            "only_methods",
            "files",
            "block_ip_calls",
            "local_users",
            "guarded",
            "tripwire",
            "blocklist",
            "banned",
            "signature",
            "behaviour",
            "trusted_only",
            "direct_call",
            "malformed",
            "ban_score",
            "disabled",
            "id",
            "field",
            "match",
            "value",
            "score",
            "tool",
            "why",
            "enabled",
            "max",
            "window_secs",
            "duration_secs",
            "escalation_factor",
            "max_duration_secs",
            "forget_after_secs",
            "ipv4_prefix",
            "ipv4_threshold",
            "ipv6_prefix",
            "ipv6_threshold",
            "ipv4_wide_prefix",
            "ipv4_wide_threshold",
            "ipv6_wide_prefix",
            "ipv6_wide_threshold",
            "max_per_second",
            "local_addresses",
            "max_tracked_sources",
            "max_bans",
            "max_ban_history",
            "mode",
            "known_good_secs",
            "pending_timeout_secs",
            "max_pending",
            "max_upstreams",
            "max_users",
            "max_known_good",
            "sources",
            "hold_secs",
            "max_tracked",
            "max_campaigns",
        ] {
            let needle = format!("\n{key} =");
            let commented = format!("\n# {key} =");
            assert!(text.contains(&needle) || text.contains(&commented), "example lacks `{key} =`");
        }
        for table in [
            "[trusted]",
            "[blocklist]",
            "[calls]",
            "[ports]",
            "[actions]",
            "[signatures]",
            "[[signatures.custom]]",
            "[behaviour.flood]",
            "[behaviour.enumeration]",
            "[behaviour.auth_failures]",
            "[behaviour.challenges]",
            "[behaviour.not_found]",
            "[behaviour.untrusted_invites]",
            "[bans]",
            "[bans.aggregate]",
            "[limits]",
        ] {
            assert!(text.contains(table), "example lacks {table}");
        }
    }
}

#[cfg(test)]
mod syntax_tests {
    use super::*;

    #[test]
    fn syntax_errors_name_the_line() {
        let e = Policy::from_toml_str("[bans]\nduration_secs = 60\nescalation_factor = = 2\n")
            .unwrap_err();
        match e {
            PolicyError::Config { key, line, .. } => {
                assert_eq!((key.as_str(), line), ("bans.escalation_factor", 3))
            }
            e => panic!("{e:?}"),
        }
        let e =
            Policy::from_toml_str("[bans]\nduration_secs = 60\nduration_secs = 70\n").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("line 3: key `bans.duration_secs`"), "{text}");
    }
}
