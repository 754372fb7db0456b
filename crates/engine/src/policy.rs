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
use serde::Deserialize;
use toml::Spanned;

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
    /// Accepted but risky settings (see [`Policy::warnings`]).
    warnings: Vec<PolicyWarning>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from_toml_str("").expect("the empty config is valid")
    }
}

// ---------------------------------------------------------------- raw TOML shape

type S<T> = Option<Spanned<T>>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    trusted: RawTrusted,
    #[serde(default)]
    blocklist: RawBlocklist,
    #[serde(default)]
    calls: RawCalls,
    #[serde(default)]
    ports: RawPorts,
    #[serde(default)]
    actions: RawActions,
    #[serde(default)]
    signatures: RawSignatures,
    #[serde(default)]
    behaviour: RawBehaviour,
    #[serde(default)]
    bans: RawBans,
    #[serde(default)]
    limits: RawLimits,
    /// The daemon's `[enforce]` table shares the file (one config for every mode); the
    /// daemon parses and checks it, the engine only lets it be.
    #[serde(default, rename = "enforce")]
    _enforce: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTrusted {
    networks: S<Vec<Spanned<String>>>,
    only: S<bool>,
    only_methods: S<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBlocklist {
    networks: S<Vec<Spanned<String>>>,
    files: S<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCalls {
    block_ip_calls: S<bool>,
    local_users: S<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPorts {
    guarded: S<Vec<Spanned<i64>>>,
    tripwire: S<Vec<Spanned<i64>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawActions {
    blocklist: S<String>,
    banned: S<String>,
    signature: S<String>,
    behaviour: S<String>,
    trusted_only: S<String>,
    direct_call: S<String>,
    tripwire: S<String>,
    malformed: S<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSignatures {
    ban_score: S<i64>,
    disabled: S<Vec<Spanned<String>>>,
    #[serde(default)]
    custom: Vec<Spanned<RawCustom>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCustom {
    id: Spanned<String>,
    field: SigField,
    #[serde(rename = "match", default = "default_match")]
    matcher: SigMatch,
    value: Spanned<String>,
    score: S<i64>,
    #[serde(default)]
    tool: String,
    #[serde(default)]
    why: String,
}

fn default_match() -> SigMatch {
    SigMatch::Contains
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    enabled: S<bool>,
    max: S<i64>,
    window_secs: S<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBehaviour {
    #[serde(default)]
    flood: RawThreshold,
    #[serde(default)]
    enumeration: RawThreshold,
    #[serde(default)]
    auth_failures: RawThreshold,
    #[serde(default)]
    challenges: RawThreshold,
    #[serde(default)]
    not_found: RawThreshold,
    #[serde(default)]
    untrusted_invites: RawThreshold,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBans {
    enabled: S<bool>,
    local_addresses: S<Vec<Spanned<String>>>,
    max_per_second: S<i64>,
    duration_secs: S<i64>,
    escalation_factor: S<i64>,
    max_duration_secs: S<i64>,
    forget_after_secs: S<i64>,
    #[serde(default)]
    aggregate: RawAggregate,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAggregate {
    enabled: S<bool>,
    ipv4_prefix: S<i64>,
    ipv4_threshold: S<i64>,
    ipv6_prefix: S<i64>,
    ipv6_threshold: S<i64>,
    ipv4_wide_prefix: S<i64>,
    ipv4_wide_threshold: S<i64>,
    ipv6_wide_prefix: S<i64>,
    ipv6_wide_threshold: S<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_tracked_sources: S<i64>,
    max_bans: S<i64>,
    max_ban_history: S<i64>,
}

// ---------------------------------------------------------------- validation helpers

struct Ctx<'t> {
    text: &'t str,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }
    fn err(&self, key: &str, offset: usize, message: impl Into<String>) -> PolicyError {
        PolicyError::Config {
            key: key.to_string(),
            line: self.line(offset),
            message: message.into(),
        }
    }
    fn bool(&self, v: S<bool>, default: bool) -> bool {
        v.map(|s| s.into_inner()).unwrap_or(default)
    }
    /// An integer in `lo..=hi`.
    fn int(
        &self,
        key: &str,
        v: S<i64>,
        default: i64,
        lo: i64,
        hi: i64,
    ) -> Result<i64, PolicyError> {
        match v {
            None => Ok(default),
            Some(s) => {
                let x = *s.get_ref();
                if x < lo || x > hi {
                    Err(self.err(key, s.span().start, format!("{x} is out of range {lo}..={hi}")))
                } else {
                    Ok(x)
                }
            }
        }
    }
    fn action(
        &self,
        key: &str,
        v: S<String>,
        default: Action,
        allow_accept: bool,
    ) -> Result<Action, PolicyError> {
        let Some(s) = v else { return Ok(default) };
        let a: Action =
            s.get_ref().parse().map_err(|m: String| self.err(key, s.span().start, m))?;
        if a == Action::Accept && !allow_accept {
            return Err(self.err(
                key,
                s.span().start,
                "\"accept\" is only allowed for `actions.malformed`",
            ));
        }
        Ok(a)
    }
    fn nets(
        &self,
        key: &str,
        v: S<Vec<Spanned<String>>>,
        set: &mut NetSet,
    ) -> Result<(), PolicyError> {
        for item in v.map(|s| s.into_inner()).unwrap_or_default() {
            let net = self.net(key, &item)?;
            set.insert(net);
        }
        Ok(())
    }
    /// One network of a policy table: an address or a CANONICAL network (no host bits set:
    /// `198.51.100.7/24` is refused rather than silently read as `198.51.100.0/24`).
    fn net(&self, key: &str, item: &Spanned<String>) -> Result<IpNet, PolicyError> {
        parse_canonical_net(item.get_ref()).map_err(|m| self.err(key, item.span().start, m))
    }
    fn ports(&self, key: &str, v: S<Vec<Spanned<i64>>>) -> Result<Vec<u16>, PolicyError> {
        let mut out = Vec::new();
        for p in v.map(|s| s.into_inner()).unwrap_or_default() {
            let x = *p.get_ref();
            if !(1..=65535).contains(&x) {
                return Err(self.err(key, p.span().start, format!("{x} is not a port (1-65535)")));
            }
            if !out.contains(&(x as u16)) {
                out.push(x as u16);
            }
        }
        out.sort_unstable();
        Ok(out)
    }
    fn threshold(
        &self,
        key: &str,
        raw: RawThreshold,
        max: u32,
        window_secs: u64,
        hi: i64,
    ) -> Result<Threshold, PolicyError> {
        Ok(Threshold {
            enabled: self.bool(raw.enabled, true),
            max: self.int(&format!("{key}.max"), raw.max, max as i64, 1, hi)? as u32,
            window_ms: self.int(
                &format!("{key}.window_secs"),
                raw.window_secs,
                window_secs as i64,
                1,
                86_400,
            )? as u64
                * 1000,
        })
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

const METHODS: &[&str] = &[
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "REFER",
    "MESSAGE",
    "UPDATE",
];

/// Turn a serde error into a keyed one: the span gives the line; the key is read from the text
/// (the `[table]` header above plus the key on that line).
fn serde_error(text: &str, e: toml::de::Error) -> PolicyError {
    let msg = e.message().trim().to_string();
    let Some(span) = e.span() else {
        return PolicyError::Invalid(msg);
    };
    let ctx = Ctx { text };
    let line_no = ctx.line(span.start);
    let lines: Vec<&str> = text.lines().collect();
    let mut table = String::new();
    for l in lines.iter().take(line_no) {
        let t = l.trim();
        if let Some(h) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            table = h.trim().to_string();
        } else if let Some(h) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = h.trim().to_string();
        }
    }
    let line = lines.get(line_no - 1).copied().unwrap_or("").trim();
    let key = if line.starts_with('[') {
        String::new()
    } else {
        line.split('=').next().unwrap_or("").trim().trim_matches('"').to_string()
    };
    let full = match (table.is_empty(), key.is_empty()) {
        (true, true) => "(top level)".to_string(),
        (true, false) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    };
    PolicyError::Config { key: full, line: line_no, message: msg }
}

impl Policy {
    /// Parse and validate TOML. Errors name the key and line.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        use defaults as d;
        let raw: Raw = toml::from_str(text).map_err(|e| serde_error(text, e))?;
        let c = Ctx { text };

        let mut warnings = Vec::new();
        let mut trusted = NetSet::new();
        for item in raw.trusted.networks.map(|s| s.into_inner()).unwrap_or_default() {
            let net = c.net("trusted.networks", &item)?;
            let wide = match net {
                IpNet::V4(_) => d::WIDE_TRUSTED_V4,
                IpNet::V6(_) => d::WIDE_TRUSTED_V6,
            };
            if net.prefix_len() < wide {
                warnings.push(PolicyWarning {
                    key: "trusted.networks".into(),
                    line: c.line(item.span().start),
                    message: format!(
                        "{net} is a very wide trusted network ({} addresses): every source in it \
                         is accepted uninspected and never banned, and UDP sources are easy to \
                         forge; trust only your providers' networks",
                        if net.prefix_len() == 0 {
                            "every".to_string()
                        } else {
                            format!("/{} covers many", net.prefix_len())
                        }
                    ),
                });
            }
            trusted.insert(net);
        }
        let mut trusted_only_methods = Vec::new();
        for m in raw.trusted.only_methods.map(|s| s.into_inner()).unwrap_or_default() {
            let up = m.get_ref().trim().to_ascii_uppercase();
            if !METHODS.contains(&up.as_str()) {
                return Err(c.err(
                    "trusted.only_methods",
                    m.span().start,
                    format!("`{}` is not a SIP method ({})", m.get_ref(), METHODS.join(", ")),
                ));
            }
            trusted_only_methods.push(up);
        }
        let trusted_only = c.bool(raw.trusted.only, false);

        let mut blocklist = NetSet::new();
        for item in raw.blocklist.networks.map(|s| s.into_inner()).unwrap_or_default() {
            let at = item.span().start;
            let net = c.net("blocklist.networks", &item)?;
            if trusted.overlaps(net) {
                // Trusted would win anyway; a contradiction inside one file is a mistake.
                return Err(c.err(
                    "blocklist.networks",
                    at,
                    format!(
                        "{net} overlaps a trusted network; trusted always wins, remove one of them"
                    ),
                ));
            }
            blocklist.insert(net);
        }
        let blocklist_files: Vec<String> = raw
            .blocklist
            .files
            .map(|s| s.into_inner())
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.into_inner())
            .collect();

        let mut local_users = Vec::new();
        for u in raw.calls.local_users.map(|s| s.into_inner()).unwrap_or_default() {
            let v = u.get_ref().trim();
            if v.is_empty() || v.bytes().any(|b| b.is_ascii_whitespace() || b == b'@') {
                return Err(c.err(
                    "calls.local_users",
                    u.span().start,
                    format!("`{v}` is not a SIP user (no spaces, no @)"),
                ));
            }
            local_users.push(v.to_string());
        }

        let guarded_ports = c.ports("ports.guarded", raw.ports.guarded)?;
        let tripwire_ports = c.ports("ports.tripwire", raw.ports.tripwire.clone())?;
        if let Some(tw) = &raw.ports.tripwire {
            for p in tw.get_ref() {
                if guarded_ports.contains(&(*p.get_ref() as u16)) {
                    return Err(c.err("ports.tripwire", p.span().start, format!("port {} is also guarded: a tripwire port must be one SIP no longer uses", p.get_ref())));
                }
            }
        }

        let a = raw.actions;
        let actions = Actions {
            blocklist: c.action("actions.blocklist", a.blocklist, Action::Drop, false)?,
            banned: c.action("actions.banned", a.banned, Action::Drop, false)?,
            signature: c.action("actions.signature", a.signature, Action::Drop, false)?,
            behaviour: c.action("actions.behaviour", a.behaviour, Action::Drop, false)?,
            trusted_only: c.action("actions.trusted_only", a.trusted_only, Action::Drop, false)?,
            direct_call: c.action("actions.direct_call", a.direct_call, Action::Drop, false)?,
            tripwire: c.action("actions.tripwire", a.tripwire, Action::Drop, false)?,
            malformed: c.action("actions.malformed", a.malformed, Action::Accept, true)?,
        };

        let ban_score = c.int(
            "signatures.ban_score",
            raw.signatures.ban_score,
            d::BAN_SCORE as i64,
            1,
            1_000_000,
        )? as u32;
        let known: Vec<&str> = crate::signatures::BUILTIN.iter().map(|s| s.id).collect();
        let mut disabled_signatures = Vec::new();
        for s in raw.signatures.disabled.map(|s| s.into_inner()).unwrap_or_default() {
            if !known.contains(&s.get_ref().as_str()) {
                return Err(c.err(
                    "signatures.disabled",
                    s.span().start,
                    format!("`{}` is not a built-in signature id (see SIGNATURES.md)", s.get_ref()),
                ));
            }
            disabled_signatures.push(s.into_inner());
        }
        let mut custom_signatures: Vec<CustomSignature> = Vec::new();
        for cs in raw.signatures.custom {
            let cs = cs.into_inner();
            let id = cs.id.get_ref().trim().to_string();
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                return Err(c.err(
                    "signatures.custom.id",
                    cs.id.span().start,
                    format!("`{id}`: use letters, digits, '-', '_' or '.'"),
                ));
            }
            if custom_signatures.iter().any(|o| o.id == id) {
                return Err(c.err(
                    "signatures.custom.id",
                    cs.id.span().start,
                    format!("`{id}` is defined twice"),
                ));
            }
            let value = cs.value.get_ref().to_ascii_lowercase();
            if value.is_empty() {
                return Err(c.err(
                    "signatures.custom.value",
                    cs.value.span().start,
                    "must not be empty",
                ));
            }
            let score =
                c.int("signatures.custom.score", cs.score, ban_score as i64, 1, 1_000_000)? as u32;
            custom_signatures.push(CustomSignature {
                id,
                field: cs.field,
                matcher: cs.matcher,
                value,
                score,
                tool: cs.tool,
                why: cs.why,
            });
        }

        let b = raw.behaviour;
        let behaviour = Behaviour {
            flood: c.threshold(
                "behaviour.flood",
                b.flood,
                d::FLOOD_MAX,
                d::FLOOD_WINDOW_SECS,
                1_000_000,
            )?,
            enumeration: c.threshold(
                "behaviour.enumeration",
                b.enumeration,
                d::ENUM_MAX,
                d::ENUM_WINDOW_SECS,
                d::MAX_ENUM_THRESHOLD as i64,
            )?,
            auth_failures: c.threshold(
                "behaviour.auth_failures",
                b.auth_failures,
                d::AUTH_FAIL_MAX,
                d::AUTH_WINDOW_SECS,
                1_000_000,
            )?,
            challenges: c.threshold(
                "behaviour.challenges",
                b.challenges,
                d::CHALLENGE_MAX,
                d::AUTH_WINDOW_SECS,
                1_000_000,
            )?,
            not_found: c.threshold(
                "behaviour.not_found",
                b.not_found,
                d::NOT_FOUND_MAX,
                d::NOT_FOUND_WINDOW_SECS,
                1_000_000,
            )?,
            untrusted_invites: c.threshold(
                "behaviour.untrusted_invites",
                b.untrusted_invites,
                d::INVITE_MAX,
                d::INVITE_WINDOW_SECS,
                1_000_000,
            )?,
        };

        let r = raw.bans;
        let duration_ms =
            c.int("bans.duration_secs", r.duration_secs, d::BAN_SECS as i64, 1, 10 * 365 * 86_400)?
                as u64
                * 1000;
        let max_span = r.max_duration_secs.as_ref().map(|s| s.span().start);
        let max_duration_ms = c.int(
            "bans.max_duration_secs",
            r.max_duration_secs,
            d::BAN_MAX_SECS as i64,
            1,
            10 * 365 * 86_400,
        )? as u64
            * 1000;
        if max_duration_ms < duration_ms {
            return Err(c.err(
                "bans.max_duration_secs",
                max_span.unwrap_or(0),
                format!(
                    "{} is shorter than bans.duration_secs ({})",
                    max_duration_ms / 1000,
                    duration_ms / 1000
                ),
            ));
        }
        let ag = r.aggregate;
        let mut local_addresses = NetSet::new();
        c.nets("bans.local_addresses", r.local_addresses, &mut local_addresses)?;
        let v4_prefix =
            c.int("bans.aggregate.ipv4_prefix", ag.ipv4_prefix, d::AGG_V4_PREFIX as i64, 8, 31)?
                as u8;
        let v6_prefix =
            c.int("bans.aggregate.ipv6_prefix", ag.ipv6_prefix, d::AGG_V6_PREFIX as i64, 16, 127)?
                as u8;
        let wide = |key: &str, v: S<i64>, default: u8, narrow: u8, lo: i64| {
            let at = v.as_ref().map(|s| s.span().start);
            let x = c.int(key, v, default.min(narrow.saturating_sub(1)) as i64, lo, 127)? as u8;
            if x >= narrow {
                return Err(c.err(
                    key,
                    at.unwrap_or(0),
                    format!("{x} must be shorter than the range prefix /{narrow}"),
                ));
            }
            Ok(x)
        };
        let v4_wide_prefix = wide(
            "bans.aggregate.ipv4_wide_prefix",
            ag.ipv4_wide_prefix,
            d::AGG_V4_WIDE_PREFIX,
            v4_prefix,
            8,
        )?;
        let v6_wide_prefix = wide(
            "bans.aggregate.ipv6_wide_prefix",
            ag.ipv6_wide_prefix,
            d::AGG_V6_WIDE_PREFIX,
            v6_prefix,
            16,
        )?;
        let bans = BanPolicy {
            enabled: c.bool(r.enabled, true),
            duration_ms,
            escalation_factor: c.int(
                "bans.escalation_factor",
                r.escalation_factor,
                d::BAN_ESCALATION_FACTOR as i64,
                1,
                1000,
            )? as u32,
            max_duration_ms,
            forget_after_ms: c.int(
                "bans.forget_after_secs",
                r.forget_after_secs,
                d::BAN_FORGET_SECS as i64,
                0,
                10 * 365 * 86_400,
            )? as u64
                * 1000,
            aggregate: c.bool(ag.enabled, true),
            v4_prefix,
            v4_threshold: c.int(
                "bans.aggregate.ipv4_threshold",
                ag.ipv4_threshold,
                d::AGG_V4_THRESHOLD as i64,
                2,
                1_000_000,
            )? as u32,
            v6_prefix,
            v6_threshold: c.int(
                "bans.aggregate.ipv6_threshold",
                ag.ipv6_threshold,
                d::AGG_V6_THRESHOLD as i64,
                2,
                1_000_000,
            )? as u32,
            v4_wide_prefix,
            v4_wide_threshold: c.int(
                "bans.aggregate.ipv4_wide_threshold",
                ag.ipv4_wide_threshold,
                d::AGG_V4_WIDE_THRESHOLD as i64,
                0,
                1_000_000,
            )? as u32,
            v6_wide_prefix,
            v6_wide_threshold: c.int(
                "bans.aggregate.ipv6_wide_threshold",
                ag.ipv6_wide_threshold,
                d::AGG_V6_WIDE_THRESHOLD as i64,
                0,
                1_000_000,
            )? as u32,
            max_per_second: c.int(
                "bans.max_per_second",
                r.max_per_second,
                d::BANS_PER_SECOND as i64,
                0,
                1_000_000,
            )? as u32,
            local_addresses,
        };

        let l = raw.limits;
        let policy = Policy {
            trusted,
            trusted_only,
            trusted_only_methods,
            blocklist,
            blocklist_files,
            block_ip_calls: c.bool(raw.calls.block_ip_calls, false),
            local_users,
            guarded_ports,
            tripwire_ports,
            actions,
            ban_score,
            disabled_signatures,
            custom_signatures,
            behaviour,
            bans,
            max_tracked_sources: c.int(
                "limits.max_tracked_sources",
                l.max_tracked_sources,
                d::MAX_TRACKED_SOURCES as i64,
                16,
                100_000_000,
            )? as usize,
            max_bans: c.int("limits.max_bans", l.max_bans, d::MAX_BANS as i64, 16, 100_000_000)?
                as usize,
            max_ban_history: c.int(
                "limits.max_ban_history",
                l.max_ban_history,
                d::MAX_BAN_HISTORY as i64,
                16,
                100_000_000,
            )? as usize,
            warnings,
        };
        Ok(policy)
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
