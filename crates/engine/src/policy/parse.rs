//! TOML to [`Policy`]: the raw shape serde reads (every table `deny_unknown_fields`, values
//! `Spanned` so errors know their line), and one validating function per table.
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::defaults as d;
use super::{
    parse_canonical_net, Action, Actions, BanPolicy, Behaviour, CampaignPolicy, CustomSignature,
    LearnMode, LearnPolicy, Policy, PolicyError, PolicyWarning, SigField, SigMatch, Threshold,
};
use crate::netset::NetSet;

/// The whole document: parse, then validate table by table (in file order, so the first
/// error reported is the first in the file's usual layout).
pub(super) fn policy(text: &str) -> Result<Policy, PolicyError> {
    let raw: Raw = toml::from_str(text).map_err(|e| serde_error(text, e))?;
    let c = Ctx { text };
    let mut warnings = Vec::new();
    let (trusted, trusted_only, trusted_only_methods) = trusted(&c, raw.trusted, &mut warnings)?;
    let (blocklist, blocklist_files) = blocklist(&c, raw.blocklist, &trusted)?;
    let (block_ip_calls, local_users) = calls(&c, raw.calls)?;
    let (guarded_ports, tripwire_ports) = ports(&c, raw.ports)?;
    let actions = actions(&c, raw.actions)?;
    let (ban_score, disabled_signatures, custom_signatures) = signatures(&c, raw.signatures)?;
    let behaviour = behaviour(&c, raw.behaviour)?;
    let bans = bans(&c, raw.bans)?;
    let (max_tracked_sources, max_bans, max_ban_history) = limits(&c, raw.limits)?;
    let learn = learn(&c, raw.learn)?;
    Ok(Policy {
        trusted,
        trusted_only,
        trusted_only_methods,
        blocklist,
        blocklist_files,
        block_ip_calls,
        local_users,
        guarded_ports,
        tripwire_ports,
        actions,
        ban_score,
        disabled_signatures,
        custom_signatures,
        behaviour,
        bans,
        max_tracked_sources,
        max_bans,
        max_ban_history,
        learn,
        warnings,
    })
}

/// `[trusted]`: (networks, trusted-only mode, its methods). Very wide networks warn.
fn trusted(
    c: &Ctx<'_>,
    raw: RawTrusted,
    warnings: &mut Vec<PolicyWarning>,
) -> Result<(NetSet, bool, Vec<String>), PolicyError> {
    let mut trusted = NetSet::new();
    for item in raw.networks.map(|s| s.into_inner()).unwrap_or_default() {
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
                    "{net} is a very wide trusted network: every source in it is accepted \
                     uninspected and never banned, and UDP sources are easy to forge; trust \
                     only your providers' networks"
                ),
            });
        }
        trusted.insert(net);
    }
    let mut trusted_only_methods = Vec::new();
    for m in raw.only_methods.map(|s| s.into_inner()).unwrap_or_default() {
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
    let trusted_only = c.bool(raw.only, false);

    Ok((trusted, trusted_only, trusted_only_methods))
}

/// `[blocklist]`: (networks, files for the caller to read). Overlap with trusted is an error.
fn blocklist(
    c: &Ctx<'_>,
    raw: RawBlocklist,
    trusted: &NetSet,
) -> Result<(NetSet, Vec<String>), PolicyError> {
    let mut blocklist = NetSet::new();
    for item in raw.networks.map(|s| s.into_inner()).unwrap_or_default() {
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
        .files
        .map(|s| s.into_inner())
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.into_inner())
        .collect();

    Ok((blocklist, blocklist_files))
}

/// `[calls]`: (block direct IP calls, local users).
fn calls(c: &Ctx<'_>, raw: RawCalls) -> Result<(bool, Vec<String>), PolicyError> {
    let mut local_users = Vec::new();
    for u in raw.local_users.map(|s| s.into_inner()).unwrap_or_default() {
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

    Ok((c.bool(raw.block_ip_calls, false), local_users))
}

/// `[ports]`: (guarded, tripwire); a port cannot be both.
fn ports(c: &Ctx<'_>, raw: RawPorts) -> Result<(Vec<u16>, Vec<u16>), PolicyError> {
    let guarded_ports = c.ports("ports.guarded", raw.guarded)?;
    let tripwire_ports = c.ports("ports.tripwire", raw.tripwire.clone())?;
    if let Some(tw) = &raw.tripwire {
        for p in tw.get_ref() {
            if guarded_ports.contains(&(*p.get_ref() as u16)) {
                return Err(c.err(
                    "ports.tripwire",
                    p.span().start,
                    format!(
                        "port {} is also guarded: a tripwire port must be one SIP no longer uses",
                        p.get_ref()
                    ),
                ));
            }
        }
    }

    Ok((guarded_ports, tripwire_ports))
}

/// `[actions]`.
fn actions(c: &Ctx<'_>, raw: RawActions) -> Result<Actions, PolicyError> {
    let a = raw;
    Ok(Actions {
        blocklist: c.action("actions.blocklist", a.blocklist, Action::Drop, false)?,
        banned: c.action("actions.banned", a.banned, Action::Drop, false)?,
        signature: c.action("actions.signature", a.signature, Action::Drop, false)?,
        behaviour: c.action("actions.behaviour", a.behaviour, Action::Drop, false)?,
        trusted_only: c.action("actions.trusted_only", a.trusted_only, Action::Drop, false)?,
        direct_call: c.action("actions.direct_call", a.direct_call, Action::Drop, false)?,
        tripwire: c.action("actions.tripwire", a.tripwire, Action::Drop, false)?,
        malformed: c.action("actions.malformed", a.malformed, Action::Accept, true)?,
    })
}

/// `[signatures]` and `[[signatures.custom]]`: (ban score, disabled ids, custom signatures).
fn signatures(
    c: &Ctx<'_>,
    raw: RawSignatures,
) -> Result<(u32, Vec<String>, Vec<CustomSignature>), PolicyError> {
    let ban_score =
        c.int("signatures.ban_score", raw.ban_score, d::BAN_SCORE as i64, 1, 1_000_000)? as u32;
    let known: Vec<&str> = crate::signatures::BUILTIN.iter().map(|s| s.id).collect();
    let mut disabled_signatures = Vec::new();
    for s in raw.disabled.map(|s| s.into_inner()).unwrap_or_default() {
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
    for cs in raw.custom {
        let cs = cs.into_inner();
        let id = cs.id.get_ref().trim().to_string();
        if id.is_empty()
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
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

    Ok((ban_score, disabled_signatures, custom_signatures))
}

/// `[behaviour.*]`.
fn behaviour(c: &Ctx<'_>, raw: RawBehaviour) -> Result<Behaviour, PolicyError> {
    let b = raw;
    Ok(Behaviour {
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
    })
}

/// `[bans]` and `[bans.aggregate]`.
fn bans(c: &Ctx<'_>, raw: RawBans) -> Result<BanPolicy, PolicyError> {
    let r = raw;
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
        c.int("bans.aggregate.ipv4_prefix", ag.ipv4_prefix, d::AGG_V4_PREFIX as i64, 8, 31)? as u8;
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
    Ok(BanPolicy {
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
    })
}

/// `[limits]`: (max tracked sources, max bans, max ban history).
fn limits(c: &Ctx<'_>, raw: RawLimits) -> Result<(usize, usize, usize), PolicyError> {
    let l = raw;
    Ok((
        c.int(
            "limits.max_tracked_sources",
            l.max_tracked_sources,
            d::MAX_TRACKED_SOURCES as i64,
            16,
            100_000_000,
        )? as usize,
        c.int("limits.max_bans", l.max_bans, d::MAX_BANS as i64, 16, 100_000_000)? as usize,
        c.int(
            "limits.max_ban_history",
            l.max_ban_history,
            d::MAX_BAN_HISTORY as i64,
            16,
            100_000_000,
        )? as usize,
    ))
}

/// `[learn]` and `[learn.campaign]`.
fn learn(c: &Ctx<'_>, raw: RawLearn) -> Result<LearnPolicy, PolicyError> {
    let mode = match raw.mode {
        None => LearnMode::Auto,
        Some(m) => match m.get_ref().trim() {
            "auto" => LearnMode::Auto,
            "off" => LearnMode::Off,
            other => {
                return Err(c.err(
                    "learn.mode",
                    m.span().start,
                    format!("`{other}`: expected \"auto\" or \"off\""),
                ))
            }
        },
    };
    let secs = |key: &str, v: S<i64>, default: u64, lo: i64, hi: i64| -> Result<u64, PolicyError> {
        Ok(c.int(key, v, default as i64, lo, hi)? as u64 * 1000)
    };
    let count = |key: &str, v: S<i64>, default: usize, lo: i64, hi: i64| {
        c.int(key, v, default as i64, lo, hi).map(|x| x as usize)
    };
    let cp = raw.campaign;
    Ok(LearnPolicy {
        mode,
        known_good_ms: secs(
            "learn.known_good_secs",
            raw.known_good_secs,
            d::LEARN_KNOWN_GOOD_SECS,
            60,
            365 * 86_400,
        )?,
        forget_after_ms: secs(
            "learn.forget_after_secs",
            raw.forget_after_secs,
            d::LEARN_FORGET_SECS,
            0,
            10 * 365 * 86_400,
        )?,
        pending_timeout_ms: secs(
            "learn.pending_timeout_secs",
            raw.pending_timeout_secs,
            d::LEARN_PENDING_SECS,
            1,
            300,
        )?,
        max_pending: count(
            "learn.max_pending",
            raw.max_pending,
            d::LEARN_MAX_PENDING,
            16,
            1_000_000,
        )?,
        max_upstreams: count(
            "learn.max_upstreams",
            raw.max_upstreams,
            d::LEARN_MAX_UPSTREAMS,
            1,
            100_000,
        )?,
        max_users: count("learn.max_users", raw.max_users, d::LEARN_MAX_USERS, 1, 1_000_000)?,
        max_known_good: count(
            "learn.max_known_good",
            raw.max_known_good,
            d::LEARN_MAX_KNOWN_GOOD,
            1,
            100_000,
        )?,
        campaign: CampaignPolicy {
            enabled: c.bool(cp.enabled, true),
            sources: c.int(
                "learn.campaign.sources",
                cp.sources,
                d::CAMPAIGN_SOURCES as i64,
                2,
                d::MAX_CAMPAIGN_SOURCES as i64,
            )? as u32,
            window_ms: secs(
                "learn.campaign.window_secs",
                cp.window_secs,
                d::CAMPAIGN_WINDOW_SECS,
                1,
                86_400,
            )?,
            hold_ms: secs(
                "learn.campaign.hold_secs",
                cp.hold_secs,
                d::CAMPAIGN_HOLD_SECS,
                1,
                30 * 86_400,
            )?,
            max_tracked: count(
                "learn.campaign.max_tracked",
                cp.max_tracked,
                d::CAMPAIGN_MAX_TRACKED,
                16,
                1_000_000,
            )?,
            max_campaigns: count(
                "learn.campaign.max_campaigns",
                cp.max_campaigns,
                d::CAMPAIGN_MAX,
                1,
                100_000,
            )?,
        },
    })
}

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
    #[serde(default)]
    learn: RawLearn,
    /// The daemon's `[enforce]` table shares the file (one config for every mode); the
    /// daemon parses and checks it, the engine only lets it be.
    #[serde(default, rename = "enforce")]
    _enforce: Option<serde::de::IgnoredAny>,
    /// Likewise the daemon's `[api]` table (HTTP API and metrics).
    #[serde(default, rename = "api")]
    _api: Option<serde::de::IgnoredAny>,
    /// Likewise the daemon's `[fleet]` table (bans shared over Redis).
    #[serde(default, rename = "fleet")]
    _fleet: Option<serde::de::IgnoredAny>,
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
    /// Block lists fetched over HTTP and their `[blocklist.fetch]` settings: the daemon
    /// downloads, parses and checks them (the engine does no I/O), so they are let be here.
    #[serde(default, rename = "urls")]
    _urls: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "fetch")]
    _fetch: Option<serde::de::IgnoredAny>,
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLearn {
    mode: S<String>,
    known_good_secs: S<i64>,
    forget_after_secs: S<i64>,
    pending_timeout_secs: S<i64>,
    max_pending: S<i64>,
    max_upstreams: S<i64>,
    max_users: S<i64>,
    max_known_good: S<i64>,
    #[serde(default)]
    campaign: RawCampaign,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCampaign {
    enabled: S<bool>,
    sources: S<i64>,
    window_secs: S<i64>,
    hold_secs: S<i64>,
    max_tracked: S<i64>,
    max_campaigns: S<i64>,
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
