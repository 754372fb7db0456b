//! One config file for every mode: the engine's policy tables and the daemon's `[enforce]`.
//!
//! The engine parses the whole file into its `Policy` (it refuses unknown keys and lets
//! `[enforce]` be); `[enforce]` is parsed here from the same text, refusing unknown keys too.
//! Both report errors with the key and the line. [`load`] is the one loader that `inspect`,
//! `run` and `check-config` share, so they can never disagree about a file.
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ipnet::IpNet;
use serde::Deserialize;
use sipwall_netfilter::{BanScope, GuardedPort, Hooks, QueueBackend, Ruleset, L4};

/// Default `[enforce] state_dir`: where the state store lives.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/sipwall";
/// The state store's file name inside the state directory.
pub const STORE_FILE: &str = "sipwall.db";
/// Default `[enforce] control_socket`.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/sipwall/control.sock";
/// Default `[enforce] table`: the nft table holding sipwall's rules and sets.
pub const DEFAULT_TABLE: &str = "sipwall";
/// Largest config file read (1 MiB: a policy is a few KiB; anything bigger is a mistake).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Largest block list file read (64 MiB: about 3M networks of one line each).
pub const MAX_BLOCKLIST_BYTES: u64 = 64 << 20;

/// `[enforce]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnforceConfig {
    /// "host" (INPUT+OUTPUT) or "router" (FORWARD) or "both".
    pub mode: Mode,
    /// Guarded ports: "udp:5060", "tcp:5060", "tls:5061" (TLS: bans only, never queued).
    /// Default `[]`: the policy's guarded and tripwire ports (`[ports]`, 5060 when none),
    /// each on UDP and TCP.
    pub ports: Vec<PortSetting>,
    /// Number of queues (one thread each, 1..=64), balanced by flow hash.
    pub queues: QueueCount,
    /// First queue number.
    pub queue_first: u16,
    /// Drop guarded traffic while sipwall is not running (default: accept, fail open).
    pub fail_closed: bool,
    /// "ports" (banned sources lose the guarded ports) or "all".
    pub ban_scope: BanScopeSetting,
    /// "auto", "nft" or "iptables".
    pub queue_backend: BackendSetting,
    /// Router mode: the protected networks behind this router (decides packet direction).
    pub protected: Vec<IpNet>,
    /// Directory of the state database.
    pub state_dir: PathBuf,
    /// nft table name.
    pub table: TableName,
    /// How often expired bans are removed, in milliseconds.
    pub expire_interval_ms: u64,
    /// How often the kernel ban sets are compared with the daemon's active bans and repaired,
    /// in seconds (0 = only at start).
    pub reconcile_interval_secs: u64,
    /// Store every non-accept decision with its evidence.
    pub record_decisions: bool,
    /// Most TCP connections tracked per queue.
    pub max_tcp_flows: usize,
    /// Unix socket of the operator commands (`sipwall ban/unban/bans`), mode 0600.
    pub control_socket: PathBuf,
    /// Rule families only simulated: decided and recorded as "would drop/would ban", but
    /// their packets are accepted and their bans never reach the kernel or the store
    /// (families: the first part of the engine's rule ids, see [`FAMILIES`]).
    pub simulate: Vec<Family>,
    /// CPUs the queue threads are pinned to: queue `n` on `cpus[n % len]`; empty: unpinned.
    pub cpus: Vec<CpuIndex>,
    /// The trusted fast path: UDP requests from `[trusted]` networks (config and run time) to
    /// the guarded ports, except answers and REGISTERs, are accepted in the kernel and never
    /// queued (no queue hand-off for the provider's requests, none of them waits behind a
    /// storm; the protected side's answers to them are still queued);
    /// their `trusted.oddity` records are then not made. Default: true.
    pub trusted_fast_path: bool,
    /// The early drop: banned sources are also dropped at the ingress hook of the network
    /// devices, before the IP stack (measured on veth: 0.91-1.08x the PREROUTING drop's cost
    /// per banned packet; every other packet on those devices pays the ban lookups twice; the
    /// PREROUTING ban chain stays and covers everything else). Default: false.
    pub ingress_drop: bool,
    /// The devices of the early drop. Default `[]`: every device that carries an address of
    /// this host, loopback excepted (at most 32). Checked again every
    /// `reconcile_interval_secs` (devices that come or go, chains the kernel dropped).
    pub ingress_devices: Vec<DeviceName>,
}

/// `[enforce] ingress_devices` items: a network device name (1-15 characters, no '/', ':',
/// quote, backslash or white space).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct DeviceName(pub String);

impl TryFrom<String> for DeviceName {
    type Error = String;
    fn try_from(d: String) -> Result<Self, String> {
        if sipwall_netfilter::valid_device_name(&d) {
            Ok(DeviceName(d))
        } else {
            Err(format!(
                "'{d}': a device name, 1-15 characters without '/', ':', quotes, backslash or \
                 white space"
            ))
        }
    }
}

/// `[enforce] cpus` items: a CPU number, 0..=1023.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct CpuIndex(pub u16);

impl TryFrom<i64> for CpuIndex {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match u16::try_from(n) {
            Ok(c) if c < 1024 => Ok(CpuIndex(c)),
            _ => Err(format!("CPU {n}: 0..=1023")),
        }
    }
}

/// The rule families `[enforce] simulate` may name: the first part of the engine's rule ids
/// (`signature.friendly-scanner` is of `signature`; `ban` holds `ban.aggregate`).
pub const FAMILIES: &[&str] =
    &["signature", "behaviour", "policy", "tripwire", "blocklist", "malformed", "ban"];

/// A rule family of [`FAMILIES`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Family(pub String);

impl TryFrom<String> for Family {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if FAMILIES.contains(&s.as_str()) {
            Ok(Family(s))
        } else {
            Err(format!("unknown rule family '{s}' (one of: {})", FAMILIES.join(", ")))
        }
    }
}

/// The family of a rule id: `behaviour.flood` -> `behaviour`.
pub fn family_of(rule: &str) -> &str {
    rule.split('.').next().unwrap_or(rule)
}

/// Where sipwall stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// This host.
    Host,
    /// Hosts behind this router.
    Router,
    /// Both.
    Both,
    /// This host, observing only: every rule family simulated (see `simulate`).
    Observe,
}

/// `[enforce] ports` items: `udp:PORT`, `tcp:PORT` or `tls:PORT` (TLS: bans only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PortSetting(pub GuardedPort);

impl TryFrom<String> for PortSetting {
    type Error = String;
    fn try_from(p: String) -> Result<Self, String> {
        let (proto, num) = p
            .split_once(':')
            .ok_or_else(|| format!("'{p}' is not 'udp:PORT', 'tcp:PORT' or 'tls:PORT'"))?;
        let port: u16 = num.parse().map_err(|_| format!("bad port in '{p}'"))?;
        let (l4, inspect) = match proto {
            "udp" => (L4::Udp, true),
            "tcp" => (L4::Tcp, true),
            "tls" => (L4::Tcp, false),
            _ => return Err(format!("unknown transport '{proto}' in '{p}'")),
        };
        Ok(PortSetting(GuardedPort { l4, port, inspect }))
    }
}

/// `[enforce] queues`: 1..=64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u16")]
pub struct QueueCount(pub u16);

impl TryFrom<u16> for QueueCount {
    type Error = String;
    fn try_from(n: u16) -> Result<Self, String> {
        if (1..=64).contains(&n) {
            Ok(QueueCount(n))
        } else {
            Err(format!("{n} queues: 1..=64"))
        }
    }
}

/// `[enforce] table`: 1-24 letters, digits or '_'.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TableName(pub String);

impl TryFrom<String> for TableName {
    type Error = String;
    fn try_from(t: String) -> Result<Self, String> {
        if !t.is_empty()
            && t.len() <= 24
            && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            Ok(TableName(t))
        } else {
            Err(format!("'{t}': 1-24 letters, digits or '_'"))
        }
    }
}

/// `[enforce] ban_scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BanScopeSetting {
    /// Banned sources lose the guarded ports.
    Ports,
    /// Banned sources lose every port.
    All,
}

/// `[enforce] queue_backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendSetting {
    /// nft `queue` if the kernel has it, else iptables NFQUEUE.
    Auto,
    /// nft `queue`.
    Nft,
    /// iptables NFQUEUE.
    Iptables,
}

impl Default for EnforceConfig {
    fn default() -> Self {
        EnforceConfig {
            mode: Mode::Host,
            ports: Vec::new(),
            queues: QueueCount(1),
            queue_first: 0,
            fail_closed: false,
            ban_scope: BanScopeSetting::Ports,
            queue_backend: BackendSetting::Auto,
            protected: Vec::new(),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            table: TableName(DEFAULT_TABLE.into()),
            expire_interval_ms: 1000,
            reconcile_interval_secs: 30,
            record_decisions: true,
            max_tcp_flows: 16_384,
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            simulate: Vec::new(),
            cpus: Vec::new(),
            trusted_fast_path: true,
            ingress_drop: false,
            ingress_devices: Vec::new(),
        }
    }
}

impl EnforceConfig {
    /// The kernel ruleset these settings describe.
    /// `policy_ports` are the engine policy's ports to guard (used when `ports` is empty).
    /// Every setting was checked when parsed; what is left are checks across settings.
    pub fn ruleset(&self, policy_ports: &[u16]) -> anyhow::Result<Ruleset> {
        let mut ports: Vec<GuardedPort> = self.ports.iter().map(|p| p.0).collect();
        if ports.is_empty() {
            for &port in policy_ports {
                ports.push(GuardedPort { l4: L4::Udp, port, inspect: true });
                ports.push(GuardedPort { l4: L4::Tcp, port, inspect: true });
            }
        }
        anyhow::ensure!(!ports.is_empty(), "enforce.ports: at least one port is needed");
        if let Err((key, msg)) = self.check_across() {
            anyhow::bail!("enforce.{key}: {msg}");
        }
        Ok(Ruleset {
            table: self.table.0.clone(),
            ports,
            hooks: Hooks {
                input: matches!(self.mode, Mode::Host | Mode::Both | Mode::Observe),
                forward: matches!(self.mode, Mode::Router | Mode::Both),
            },
            queue_first: self.queue_first,
            queue_count: self.queues.0,
            fail_closed: self.fail_closed,
            ban_scope: match self.ban_scope {
                BanScopeSetting::Ports => BanScope::GuardedPorts,
                BanScopeSetting::All => BanScope::All,
            },
            // Filled by the daemon from the merged trusted networks (`trusted_fast_path`).
            fast_path: Vec::new(),
            // Filled by [`EnforceConfig::ruleset_here`].
            ingress_devices: Vec::new(),
        })
    }

    /// [`EnforceConfig::ruleset`] with what only this host can say: the early drop's devices.
    pub fn ruleset_here(&self, policy_ports: &[u16]) -> anyhow::Result<Ruleset> {
        Ok(Ruleset { ingress_devices: self.ingress_devices_here(), ..self.ruleset(policy_ports)? })
    }

    /// The devices of the early drop on this host: none when `ingress_drop` is off, else
    /// `ingress_devices`, or when that is empty the devices that carry an address here (none,
    /// logged, if they cannot be listed: the ban chain still drops banned sources).
    pub fn ingress_devices_here(&self) -> Vec<String> {
        if !self.ingress_drop {
            return Vec::new();
        }
        if !self.ingress_devices.is_empty() {
            let mut v: Vec<String> = self.ingress_devices.iter().map(|d| d.0.clone()).collect();
            v.sort();
            v.dedup();
            return v;
        }
        sipwall_netfilter::auto_devices().unwrap_or_else(|e| {
            log::warn!("early drop off: {e}");
            Vec::new()
        })
    }

    /// True in observe mode: nothing is enforced.
    pub fn observe(&self) -> bool {
        self.mode == Mode::Observe
    }

    /// The simulated families: all of them when observing, else `simulate`.
    pub fn simulated_families(&self) -> Vec<String> {
        if self.observe() {
            return FAMILIES.iter().map(|f| f.to_string()).collect();
        }
        let mut v: Vec<String> = self.simulate.iter().map(|f| f.0.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The checks across keys: the key to blame and what is wrong.
    fn check_across(&self) -> Result<(), (&'static str, String)> {
        if self.queue_first.checked_add(self.queues.0 - 1).is_none() {
            return Err(("queue_first", "queue_first + queues exceeds 65535".into()));
        }
        Ok(())
    }

    /// The preferred queue backend (None = detect).
    pub fn backend(&self) -> Option<QueueBackend> {
        match self.queue_backend {
            BackendSetting::Auto => None,
            BackendSetting::Nft => Some(QueueBackend::Nft),
            BackendSetting::Iptables => Some(QueueBackend::Xtables),
        }
    }
}

/// The `[enforce]` table of a config file, parsed on its own; every other table is ignored
/// here (the engine's policy parser reads those, and ignores `[enforce]`).
#[derive(Debug, Default, Deserialize)]
struct EnforceDoc {
    #[serde(default)]
    enforce: EnforceConfig,
}

/// Where each `[enforce]` key's value is written, to name key and line in errors.
#[derive(Debug, Default, Deserialize)]
struct EnforceSpans {
    #[serde(default)]
    enforce: std::collections::BTreeMap<String, toml::Spanned<toml::Value>>,
}

/// 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Parse and check `[enforce]`. Every error names the key (`enforce.KEY`) and its line, from
/// toml's spans as the engine's policy tables do: a bad value (unknown mode, ban scope or
/// backend, malformed port, queues out of range, bad table name) fails while parsing, and
/// the checks across keys fail afterwards.
pub fn parse_enforce(text: &str) -> anyhow::Result<EnforceConfig> {
    // The spans of the values; a file toml cannot read at all fails below with its own line.
    let spans = toml::from_str::<EnforceSpans>(text).unwrap_or_default().enforce;
    let key_at = |offset: usize| {
        spans.iter().find(|(_, v)| v.span().contains(&offset)).map(|(k, _)| k.clone())
    };
    let doc: EnforceDoc = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_at(text, s.start));
        let key = e.span().and_then(|s| key_at(s.start));
        let msg = e.message().trim_end();
        match (line, key) {
            (Some(l), Some(k)) => anyhow::anyhow!("line {l}: enforce.{k}: {msg}"),
            (Some(l), None) => anyhow::anyhow!("line {l}: in [enforce]: {msg}"),
            _ => anyhow::anyhow!("in [enforce]: {msg}"),
        }
    })?;
    if let Err((key, msg)) = doc.enforce.check_across() {
        return Err(match spans.get(key).map(|v| line_at(text, v.span().start)) {
            Some(line) => anyhow::anyhow!("line {line}: enforce.{key}: {msg}"),
            None => anyhow::anyhow!("enforce.{key}: {msg}"),
        });
    }
    Ok(doc.enforce)
}

/// Everything one config file says: the engine's policy (with its block list files read) and
/// the daemon's `[enforce]` settings. `inspect`, `run` and `check-config` all load through here.
#[derive(Debug)]
pub struct Config {
    /// The engine's policy.
    pub policy: sipwall_engine::Policy,
    /// `[enforce]` (defaults when absent; only `run` uses it).
    pub enforce: EnforceConfig,
    /// What each block list file contributed, for logs and `check-config`.
    pub blocklists: Vec<(PathBuf, sipwall_engine::policy::BlocklistLoad)>,
    /// `[api]`: the HTTP API and metrics (defaults when absent: off).
    pub api: ApiConfig,
    /// `[blocklist] urls` and `[blocklist.fetch]`: block lists downloaded by the daemon.
    pub feeds: FeedsConfig,
    /// `[fleet]`: bans shared over Redis (None when the table is absent).
    pub fleet: Option<FleetConfig>,
}

/// The sections a reload cannot apply: `sipwall run` acts on them once, at start (queues,
/// rules, listeners, connections, download threads). A reload compares the file's with those
/// the daemon started with and names each one that changed, so the operator knows a restart
/// is due; the policy part of the file is reloaded either way.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartOnly {
    /// `[enforce]`.
    pub enforce: EnforceConfig,
    /// `[api]`.
    pub api: ApiConfig,
    /// `[blocklist] urls` and `[blocklist.fetch]`.
    pub feeds: FeedsConfig,
    /// `[fleet]`.
    pub fleet: Option<FleetConfig>,
}

impl RestartOnly {
    /// The restart-only sections of `config`.
    pub fn of(config: &Config) -> RestartOnly {
        RestartOnly {
            enforce: config.enforce.clone(),
            api: config.api.clone(),
            feeds: config.feeds.clone(),
            fleet: config.fleet.clone(),
        }
    }

    /// The sections `newer` changes, by the names the config file gives them, in file order.
    pub fn changed_in(&self, newer: &RestartOnly) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.enforce != newer.enforce {
            changed.push("[enforce]");
        }
        if self.api != newer.api {
            changed.push("[api]");
        }
        if self.feeds != newer.feeds {
            changed.push("[blocklist] urls or [blocklist.fetch]");
        }
        if self.fleet != newer.fleet {
            changed.push("[fleet]");
        }
        changed
    }
}

/// Default `[api] listen`: loopback only.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:9360";

/// `[api]`: the HTTP API and Prometheus metrics (see `crate::api`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve the API (default false).
    pub enabled: bool,
    /// Address and port (default `127.0.0.1:9360`: loopback only).
    pub listen: std::net::SocketAddr,
    /// File holding the bearer token (mode 0600 or stricter). Without it, mutating endpoints
    /// are refused.
    pub token_file: Option<PathBuf>,
    /// Reading endpoints need the token too (default false).
    pub require_token_for_reads: bool,
    /// Line of `token_file` in the config file (0: not written), so an unusable token file
    /// is reported with its key and line at start.
    #[serde(skip)]
    pub token_file_line: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: false,
            listen: DEFAULT_API_LISTEN.parse().expect("a valid default address"),
            token_file: None,
            require_token_for_reads: false,
            token_file_line: 0,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct ApiDoc {
    #[serde(default)]
    api: ApiConfig,
}

#[derive(Debug, Default, Deserialize)]
struct ApiSpans {
    #[serde(default)]
    api: std::collections::BTreeMap<String, toml::Spanned<toml::Value>>,
}

/// Parse `[api]`; errors name the key (`api.KEY`) and its line, as [`parse_enforce`] does.
pub fn parse_api(text: &str) -> anyhow::Result<ApiConfig> {
    let spans = toml::from_str::<ApiSpans>(text).unwrap_or_default().api;
    let key_at = |offset: usize| {
        spans.iter().find(|(_, v)| v.span().contains(&offset)).map(|(k, _)| k.clone())
    };
    let doc: ApiDoc = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_at(text, s.start));
        let key = e.span().and_then(|s| key_at(s.start));
        let msg = e.message().trim_end();
        match (line, key) {
            (Some(l), Some(k)) => anyhow::anyhow!("line {l}: api.{k}: {msg}"),
            (Some(l), None) => anyhow::anyhow!("line {l}: in [api]: {msg}"),
            _ => anyhow::anyhow!("in [api]: {msg}"),
        }
    })?;
    let mut api = doc.api;
    api.token_file_line = spans.get("token_file").map_or(0, |v| line_at(text, v.span().start));
    Ok(api)
}

/// Most `[blocklist] urls`.
pub const MAX_FEED_URLS: usize = 32;

/// `[blocklist] urls` with `[blocklist.fetch]`: block lists the daemon downloads over HTTP(S)
/// on a thread of its own (see `crate::feeds`). The engine lets these keys be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedsConfig {
    /// `http://` or `https://` URLs (at most [`MAX_FEED_URLS`], no duplicates).
    pub urls: Vec<String>,
    /// `[blocklist.fetch]`.
    pub fetch: FetchConfig,
}

/// `[blocklist.fetch]`: how block-list URLs are fetched.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchConfig {
    /// Seconds between two downloads of one URL (60..=604800). Default 3600.
    pub refresh_secs: u64,
    /// Seconds one download may take in all: connect, headers and body (1..=600). Default 30.
    pub timeout_secs: u64,
    /// Largest body accepted, in bytes (1 KiB..=64 MiB). Default 16 MiB.
    pub max_bytes: u64,
    /// Most entries one list may hold (1..=10M); a longer one is refused whole. Default 1M.
    pub max_entries: usize,
    /// Seconds the entries of a URL stay in force after its last good download (0: until
    /// the next good download replaces them, however old). Default 0.
    pub max_age_secs: u64,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            refresh_secs: 3600,
            timeout_secs: 30,
            max_bytes: 16 << 20,
            max_entries: 1_000_000,
            max_age_secs: 0,
        }
    }
}

impl FetchConfig {
    /// The range check of each key: the key to blame and what is wrong.
    fn check(&self) -> Result<(), (&'static str, String)> {
        let within = |key, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err((key, format!("{v} is out of range {lo}..={hi}")))
            }
        };
        within("refresh_secs", self.refresh_secs, 60, 604_800)?;
        within("timeout_secs", self.timeout_secs, 1, 600)?;
        within("max_bytes", self.max_bytes, 1024, MAX_BLOCKLIST_BYTES)?;
        within("max_entries", self.max_entries as u64, 1, 10_000_000)?;
        within("max_age_secs", self.max_age_secs, 0, 366 * 86_400)
    }
}

#[derive(Debug, Default, Deserialize)]
struct FeedsDoc {
    #[serde(default)]
    blocklist: FeedsTable,
}

/// `[blocklist]` as the daemon reads it: only its own keys; the engine checks the others.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedsTable {
    #[serde(default)]
    urls: Vec<toml::Spanned<String>>,
    #[serde(default)]
    fetch: FetchConfig,
    #[serde(default, rename = "networks")]
    _networks: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "files")]
    _files: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
struct FeedsSpans {
    #[serde(default)]
    blocklist: BlocklistSpans,
}

#[derive(Debug, Default, Deserialize)]
struct BlocklistSpans {
    #[serde(default)]
    fetch: std::collections::BTreeMap<String, toml::Spanned<toml::Value>>,
}

/// Parse `[blocklist] urls` and `[blocklist.fetch]`; errors name the key (`blocklist.urls`,
/// `blocklist.fetch.KEY`) and its line, as [`parse_enforce`] does.
pub fn parse_feeds(text: &str) -> anyhow::Result<FeedsConfig> {
    let spans = toml::from_str::<FeedsSpans>(text).unwrap_or_default().blocklist.fetch;
    let key_at = |offset: usize| {
        spans.iter().find(|(_, v)| v.span().contains(&offset)).map(|(k, _)| k.clone())
    };
    let doc: FeedsDoc = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_at(text, s.start));
        let key = e.span().and_then(|s| key_at(s.start));
        let msg = e.message().trim_end();
        match (line, key) {
            (Some(l), Some(k)) => anyhow::anyhow!("line {l}: blocklist.fetch.{k}: {msg}"),
            (Some(l), None) => anyhow::anyhow!("line {l}: in [blocklist]: {msg}"),
            _ => anyhow::anyhow!("in [blocklist]: {msg}"),
        }
    })?;
    let FeedsTable { urls, fetch, .. } = doc.blocklist;
    if let Err((key, msg)) = fetch.check() {
        return Err(match spans.get(key).map(|v| line_at(text, v.span().start)) {
            Some(line) => anyhow::anyhow!("line {line}: blocklist.fetch.{key}: {msg}"),
            None => anyhow::anyhow!("blocklist.fetch.{key}: {msg}"),
        });
    }
    let mut seen = Vec::new();
    for u in &urls {
        let line = line_at(text, u.span().start);
        let url = u.get_ref().trim();
        let bad = |why: String| anyhow::anyhow!("line {line}: blocklist.urls: {why}");
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| bad(format!("`{url}` is not an http:// or https:// URL")))?;
        if rest.is_empty()
            || rest.starts_with('/')
            || url.len() > 2048
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad(format!("`{url}` is not a usable URL (a host, no spaces)")));
        }
        if seen.contains(&url.to_string()) {
            return Err(bad(format!("`{url}` is listed twice")));
        }
        seen.push(url.to_string());
    }
    if seen.len() > MAX_FEED_URLS {
        let line = urls.first().map_or(0, |u| line_at(text, u.span().start));
        anyhow::bail!("line {line}: blocklist.urls: {} URLs, at most {MAX_FEED_URLS}", seen.len());
    }
    Ok(FeedsConfig { urls: seen, fetch })
}

/// The bytes of a PEM file.
pub type Pem = Vec<u8>;

/// Largest PEM file `[fleet]` reads (CA bundle, client certificate chain).
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// `[fleet]`: bans shared with other sipwall nodes through Redis 7 or Valkey (see the
/// `sipwall-fleet` crate and `crate::daemon::fleet`). Present = on; `redis_url` is required.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// `redis://[user:password@]host[:port][/db]`, `rediss://...` (TLS) or
    /// `redis+unix:///path/to/socket`.
    pub redis_url: String,
    /// This node's name in the fleet (default: the host name).
    #[serde(default)]
    pub node_id: Option<String>,
    /// Prefix of the Redis keys (`PREFIX:bans`, `PREFIX:changes`): one fleet per prefix.
    #[serde(default = "FleetConfig::default_prefix")]
    pub key_prefix: String,
    /// Redis ACL user name (with `password_file`).
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the Redis password (mode 0600 or stricter).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// File holding the fleet's shared HMAC key (0600, at least 16 characters): entries are
    /// signed, and unsigned or badly signed ones are ignored.
    #[serde(default)]
    pub hmac_key_file: Option<PathBuf>,
    /// With `rediss://`: PEM CA certificate(s) the server's certificate must chain to
    /// (default: the built-in web PKI roots).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// With `rediss://`: PEM client certificate chain, for a server that requires client
    /// certificates (with `tls_key_file`).
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// With `rediss://`: PEM private key of `tls_cert_file` (mode 0600 or stricter).
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Widest IPv4 network a fleet ban may cover (prefix length; default 16).
    #[serde(default = "FleetConfig::default_v4")]
    pub max_prefix_v4: u8,
    /// Widest IPv6 network a fleet ban may cover (default 48).
    #[serde(default = "FleetConfig::default_v6")]
    pub max_prefix_v6: u8,
    /// Bans taken from one origin node per minute, at most (default 600).
    #[serde(default = "FleetConfig::default_rate")]
    pub max_bans_per_origin_per_minute: u32,
    /// Local changes kept while Redis is unreachable, published on reconnect (default 10000).
    #[serde(default = "FleetConfig::default_queue")]
    pub outage_queue: usize,
    /// Approximate length of the change stream (default 100000; at least 1000).
    #[serde(default = "FleetConfig::default_stream")]
    pub stream_max_len: u64,
    /// How long the start waits for the first sync before opening the queues anyway (ms).
    #[serde(default = "FleetConfig::default_sync")]
    pub sync_timeout_ms: u64,
    /// Connect and command timeout (ms).
    #[serde(default = "FleetConfig::default_timeout")]
    pub timeout_ms: u64,
    /// Lines of the file keys in the config (0: not written), for errors found at start.
    #[serde(skip)]
    pub lines: FleetLines,
}

/// Where `[fleet]`'s file keys are written, for errors found when the files are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetLines {
    /// `password_file`.
    pub password_file: usize,
    /// `hmac_key_file`.
    pub hmac_key_file: usize,
    /// `tls_ca_file`.
    pub tls_ca_file: usize,
    /// `tls_cert_file`.
    pub tls_cert_file: usize,
    /// `tls_key_file`.
    pub tls_key_file: usize,
}

impl FleetConfig {
    fn default_prefix() -> String {
        "sipwall".into()
    }
    fn default_v4() -> u8 {
        16
    }
    fn default_v6() -> u8 {
        48
    }
    fn default_rate() -> u32 {
        600
    }
    fn default_queue() -> usize {
        10_000
    }
    fn default_stream() -> u64 {
        100_000
    }
    fn default_sync() -> u64 {
        3000
    }
    fn default_timeout() -> u64 {
        2000
    }

    /// `tls_ca_file` and `tls_cert_file` read (at most [`MAX_PEM_BYTES`] each, PEM
    /// certificates): (CA, client chain). Errors name the key and its line.
    pub fn read_tls_certs(&self) -> anyhow::Result<(Option<Pem>, Option<Pem>)> {
        let read = |p: &Option<PathBuf>, key: &str, line: usize| -> anyhow::Result<_> {
            let Some(p) = p else { return Ok(None) };
            let at = match line {
                0 => format!("fleet.{key}"),
                l => format!("line {l}: fleet.{key}"),
            };
            let text =
                read_bounded(p, MAX_PEM_BYTES).map_err(|e| anyhow::anyhow!("{at}: {e:#}"))?;
            anyhow::ensure!(
                text.contains("-----BEGIN CERTIFICATE-----"),
                "{at}: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                p.display()
            );
            Ok(Some(text.into_bytes()))
        };
        Ok((
            read(&self.tls_ca_file, "tls_ca_file", self.lines.tls_ca_file)?,
            read(&self.tls_cert_file, "tls_cert_file", self.lines.tls_cert_file)?,
        ))
    }

    /// The checks serde cannot express: (key, message).
    fn check(&self) -> Result<(), (&'static str, String)> {
        let u = self.redis_url.as_str();
        let tls = u.starts_with("rediss://");
        if tls && u.contains('#') {
            return Err((
                "redis_url",
                "a rediss:// URL with a #fragment (#insecure): certificates are always \
                 verified; give the server's CA in tls_ca_file instead"
                    .into(),
            ));
        }
        if !tls {
            for (key, set) in [
                ("tls_ca_file", self.tls_ca_file.is_some()),
                ("tls_cert_file", self.tls_cert_file.is_some()),
                ("tls_key_file", self.tls_key_file.is_some()),
            ] {
                if set {
                    return Err((key, "only used with a rediss:// (TLS) redis_url".into()));
                }
            }
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => return Err(("tls_cert_file", "needs tls_key_file too".into())),
            (None, Some(_)) => return Err(("tls_key_file", "needs tls_cert_file too".into())),
            _ => {}
        }
        if !(tls
            || u.starts_with("redis://")
            || u.starts_with("redis+unix://")
            || u.starts_with("unix://"))
        {
            return Err((
                "redis_url",
                format!(
                    "{u:?}: expected redis://HOST[:PORT][/DB], rediss://HOST[:PORT][/DB] or \
                     redis+unix:///PATH"
                ),
            ));
        }
        if let Some(id) = &self.node_id {
            if !sipwall_fleet::entry::valid_node_id(id) {
                return Err(("node_id", format!("{id:?}: 1 to 64 of A-Z a-z 0-9 . _ -")));
            }
        }
        if self.key_prefix.is_empty()
            || self.key_prefix.len() > 64
            || self.key_prefix.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(("key_prefix", "1 to 64 characters, no white space".into()));
        }
        if self.max_prefix_v4 > 32 {
            return Err(("max_prefix_v4", format!("{}: at most 32", self.max_prefix_v4)));
        }
        if self.max_prefix_v6 > 128 {
            return Err(("max_prefix_v6", format!("{}: at most 128", self.max_prefix_v6)));
        }
        if self.max_bans_per_origin_per_minute == 0 {
            return Err(("max_bans_per_origin_per_minute", "must be at least 1".into()));
        }
        if !(1..=1_000_000).contains(&self.outage_queue) {
            return Err(("outage_queue", format!("{}: 1 to 1000000", self.outage_queue)));
        }
        if self.stream_max_len < 1000 {
            return Err(("stream_max_len", format!("{}: at least 1000", self.stream_max_len)));
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            return Err(("timeout_ms", format!("{}: 100 to 60000", self.timeout_ms)));
        }
        if self.sync_timeout_ms > 600_000 {
            return Err(("sync_timeout_ms", format!("{}: at most 600000", self.sync_timeout_ms)));
        }
        Ok(())
    }
}

#[derive(Debug, Default, Deserialize)]
struct FleetDoc {
    #[serde(default)]
    fleet: Option<FleetConfig>,
}

#[derive(Debug, Default, Deserialize)]
struct FleetSpans {
    #[serde(default)]
    fleet: std::collections::BTreeMap<String, toml::Spanned<toml::Value>>,
}

/// Parse `[fleet]` (None when absent); errors name the key (`fleet.KEY`) and its line, as
/// [`parse_enforce`] does.
pub fn parse_fleet(text: &str) -> anyhow::Result<Option<FleetConfig>> {
    let spans = toml::from_str::<FleetSpans>(text).unwrap_or_default().fleet;
    let line_of = |key: &str| spans.get(key).map_or(0, |v| line_at(text, v.span().start));
    let key_at = |offset: usize| {
        spans.iter().find(|(_, v)| v.span().contains(&offset)).map(|(k, _)| k.clone())
    };
    let doc: FleetDoc = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_at(text, s.start));
        let key = e.span().and_then(|s| key_at(s.start));
        let msg = e.message().trim_end();
        match (line, key) {
            (Some(l), Some(k)) => anyhow::anyhow!("line {l}: fleet.{k}: {msg}"),
            (Some(l), None) => anyhow::anyhow!("line {l}: in [fleet]: {msg}"),
            _ => anyhow::anyhow!("in [fleet]: {msg}"),
        }
    })?;
    let Some(mut fleet) = doc.fleet else { return Ok(None) };
    if let Err((key, msg)) = fleet.check() {
        return Err(match line_of(key) {
            0 => anyhow::anyhow!("fleet.{key}: {msg}"),
            line => anyhow::anyhow!("line {line}: fleet.{key}: {msg}"),
        });
    }
    fleet.lines = FleetLines {
        password_file: line_of("password_file"),
        hmac_key_file: line_of("hmac_key_file"),
        tls_ca_file: line_of("tls_ca_file"),
        tls_cert_file: line_of("tls_cert_file"),
        tls_key_file: line_of("tls_key_file"),
    };
    Ok(Some(fleet))
}

/// Read a secret (a token, a password, a key) from `path`, named `at` in errors (`line N:
/// table.key`): the file must be mode 0600 or stricter (group and others may neither read
/// nor write it), at most `max` bytes ([`read_bounded`]); its text is trimmed.
pub fn read_secret_file(path: &Path, at: &str, max: u64) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta =
        std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{at}: {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    anyhow::ensure!(
        mode & 0o077 == 0,
        "{at}: {} has mode {mode:04o}; it must be 0600 or stricter (chmod 600 {})",
        path.display(),
        path.display()
    );
    let text = read_bounded(path, max).map_err(|e| anyhow::anyhow!("{at}: {e:#}"))?;
    Ok(text.trim().to_string())
}

/// Read a regular file of at most `max` bytes as UTF-8 text. Hostile files are refused with
/// an error naming the file, never waited on or read without end: the file is opened with
/// `O_NONBLOCK` (opening a FIFO with no writer then returns at once instead of hanging), its
/// type is checked on the OPENED descriptor (`fstat`: a symlink to a device, or a path swapped
/// after a check, is caught), its size is checked before reading and the read itself stops
/// one byte past `max` (a file growing meanwhile).
pub fn read_bounded(path: &Path, max: u64) -> anyhow::Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let meta = file.metadata().with_context(|| format!("examining {}", path.display()))?;
    anyhow::ensure!(
        meta.file_type().is_file(),
        "{} is not a regular file ({}); refusing to read it",
        path.display(),
        kind(&meta.file_type())
    );
    anyhow::ensure!(
        meta.len() <= max,
        "{} is {} bytes, more than the limit of {max} bytes",
        path.display(),
        meta.len()
    );
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        bytes.len() as u64 <= max,
        "{} grew past the limit of {max} bytes while being read",
        path.display()
    );
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))
}

/// A file type in words, for [`read_bounded`]'s refusal.
fn kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a plain file"
    }
}

/// Read a config file: policy and `[enforce]` are both checked up front, and block list files
/// (relative paths are relative to the config file's folder) are read into the policy. Both
/// are read with [`read_bounded`]: regular files only, at most [`MAX_CONFIG_BYTES`] and
/// [`MAX_BLOCKLIST_BYTES`].
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let text = read_bounded(path, MAX_CONFIG_BYTES)
        .with_context(|| format!("reading config {}", path.display()))?;
    let mut policy = sipwall_engine::Policy::from_toml_str(&text)
        .map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
    let enforce = parse_enforce(&text).with_context(|| format!("config {}", path.display()))?;
    let mut api = parse_api(&text).with_context(|| format!("config {}", path.display()))?;
    let feeds = parse_feeds(&text).with_context(|| format!("config {}", path.display()))?;
    // A relative token file is relative to the config file, like the block lists.
    if let Some(t) = api.token_file.as_mut().filter(|t| t.is_relative()) {
        *t = path.parent().unwrap_or(Path::new(".")).join(&*t);
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut blocklists = Vec::new();
    for name in policy.blocklist_files.clone() {
        let file = base.join(&name);
        let text = read_bounded(&file, MAX_BLOCKLIST_BYTES).with_context(|| {
            format!("reading block list file {} (blocklist.files)", file.display())
        })?;
        let load = policy
            .load_blocklist_text(&name, &text)
            .map_err(|e| anyhow::anyhow!("block list file {}: {e}", file.display()))?;
        blocklists.push((file, load));
    }
    let mut fleet = parse_fleet(&text).with_context(|| format!("config {}", path.display()))?;
    // Relative secret files are relative to the config file, like the block lists.
    if let Some(f) = fleet.as_mut() {
        for p in [
            &mut f.password_file,
            &mut f.hmac_key_file,
            &mut f.tls_ca_file,
            &mut f.tls_cert_file,
            &mut f.tls_key_file,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = path.parent().unwrap_or(Path::new(".")).join(&*p);
            }
        }
        // The certificates are public: checked here, so check-config reports a missing or
        // wrong file (the key is a secret, read by `run` alone).
        f.read_tls_certs().with_context(|| format!("config {}", path.display()))?;
    }
    Ok(Config { policy, enforce, blocklists, api, feeds, fleet })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# policy\n[trusted]\nnetworks = [\"198.51.100.0/24\"]\n\n[enforce]\nmode = \"router\"\nports = [\"udp:5060\", \"tls:5061\"]\nqueues = 2\nprotected = [\"192.0.2.0/24\"]\n\n[bans]\nduration_secs = 60\n";

    #[test]
    fn one_file_holds_policy_and_enforce() {
        let enforce = parse_enforce(TEXT).unwrap();
        assert_eq!(enforce.mode, Mode::Router);
        let r = enforce.ruleset(&[5060]).unwrap();
        assert_eq!(r.queue_count, 2);
        assert!(r.hooks.forward && !r.hooks.input);
        assert_eq!(r.ports[1], GuardedPort { l4: L4::Tcp, port: 5061, inspect: false });
        // the engine reads the same text, [enforce] included, without complaint
        let policy = sipwall_engine::Policy::from_toml_str(TEXT).unwrap();
        assert_eq!(policy.bans.duration_ms, 60_000);
    }

    /// The restart-only sections of a config text, as `RestartOnly::of` takes them from a
    /// loaded file.
    fn restart_only(text: &str) -> RestartOnly {
        RestartOnly {
            enforce: parse_enforce(text).unwrap(),
            api: parse_api(text).unwrap(),
            feeds: parse_feeds(text).unwrap(),
            fleet: parse_fleet(text).unwrap(),
        }
    }

    #[test]
    fn a_reload_names_each_section_only_a_restart_applies() {
        let running = restart_only(TEXT);
        // a policy change alone needs no restart
        let policy_only = TEXT.replace("duration_secs = 60", "duration_secs = 600");
        assert!(running.changed_in(&restart_only(&policy_only)).is_empty());
        let one = TEXT.replace("queues = 2", "queues = 3");
        assert_eq!(running.changed_in(&restart_only(&one)), ["[enforce]"]);
        // adding a section that was absent counts too (fetching, the fleet link, the API)
        let all = format!(
            "{}\n[api]\nenabled = true\n[blocklist]\nurls = [\"https://a/x\"]\n\
             [fleet]\nredis_url = \"redis://192.0.2.1:6379\"\n",
            TEXT.replace("queues = 2", "queues = 1")
        );
        assert_eq!(
            running.changed_in(&restart_only(&all)),
            ["[enforce]", "[api]", "[blocklist] urls or [blocklist.fetch]", "[fleet]"]
        );
        assert!(restart_only(&all).changed_in(&restart_only(&all)).is_empty());
    }

    #[test]
    fn unknown_enforce_key_names_key_and_line() {
        let text = TEXT.replace("queues = 2\n", "queues = 2\nqueuez = 3\n");
        let e = format!("{:#}", parse_enforce(&text).unwrap_err());
        assert!(e.contains("queuez") && e.contains("line 9"), "{e}");
    }

    #[test]
    fn bad_settings_name_the_key_and_line() {
        for (bad, key) in [
            ("[enforce]\nports = [\"sctp:5060\"]\n", "enforce.ports"),
            ("[enforce]\nqueues = 0\n", "enforce.queues"),
            ("[enforce]\nban_scope = \"most\"\n", "enforce.ban_scope"),
            ("[enforce]\nmode = \"bridge\"\n", "enforce.mode"),
            ("[enforce]\nqueue_first = 65535\nqueues = 2\n", "enforce.queue_first"),
            ("[enforce]\nqueue_backend = \"ebpf\"\n", "enforce.queue_backend"),
            ("[enforce]\ntable = \"a b\"\n", "enforce.table"),
            ("[enforce]\ncpus = [0, 4096]\n", "enforce.cpus"),
            ("[enforce]\ncpus = [-1]\n", "enforce.cpus"),
            ("[enforce]\ncpus = \"1\"\n", "enforce.cpus"),
            ("[enforce]\ningress_devices = [\"eth0\\\" accept\"]\n", "enforce.ingress_devices"),
            ("[enforce]\ningress_devices = [\"a-very-long-device\"]\n", "enforce.ingress_devices"),
            ("[enforce]\ningress_drop = \"yes\"\n", "enforce.ingress_drop"),
        ] {
            let e = format!("{:#}", parse_enforce(bad).unwrap_err());
            assert!(e.contains(key), "{bad}: {e}");
            assert!(e.contains("line 2"), "{bad}: {e}");
        }
        assert_eq!(parse_enforce("").unwrap(), EnforceConfig::default());
        // the early drop: named devices, sorted and once; off means none, whatever is named
        let named = parse_enforce(
            "[enforce]\ningress_drop = true\ningress_devices = [\"eth1\", \"eth0\", \"eth1\"]\n",
        )
        .unwrap();
        assert_eq!(named.ingress_devices_here(), vec!["eth0".to_string(), "eth1".to_string()]);
        let off = parse_enforce("[enforce]\ningress_drop = false\ningress_devices = [\"eth0\"]\n")
            .unwrap();
        assert!(off.ingress_devices_here().is_empty());
        assert!(EnforceConfig::default().ingress_devices_here().is_empty(), "off by default");
        let auto = parse_enforce("[enforce]\ningress_drop = true\n").unwrap();
        assert!(!auto.ingress_devices_here().contains(&"lo".to_string()));
        let pinned = parse_enforce("[enforce]\ncpus = [1, 0]\n").unwrap();
        assert_eq!(pinned.cpus, vec![CpuIndex(1), CpuIndex(0)]);
        // no ports in [enforce]: the policy's, on UDP and TCP
        let r = EnforceConfig::default().ruleset(&[5060, 5080]).unwrap();
        assert_eq!(r.ports.len(), 4);
        assert!(r.ports.iter().all(|p| p.inspect));
    }

    #[test]
    fn block_list_files_are_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.txt"), "# scanners\n203.0.113.0/24 ; a range\n")
            .unwrap();
        let cfg = dir.path().join("sipwall.toml");
        std::fs::write(&cfg, "[blocklist]\nfiles = [\"bad.txt\"]\n").unwrap();
        let config = load(&cfg).unwrap();
        assert_eq!(config.blocklists.len(), 1);
        assert!(config.policy.blocklist.iter().any(|n| n.to_string() == "203.0.113.0/24"));
        std::fs::write(&cfg, "[blocklist]\nfiles = [\"missing.txt\"]\n").unwrap();
        let e = format!("{:#}", load(&cfg).unwrap_err());
        assert!(e.contains("missing.txt") && e.contains("blocklist.files"), "{e}");
    }

    /// A FIFO, `/dev/zero`, a symlink to a device, a directory and an oversize file are
    /// refused at once with an error naming the file, as config and as block list.
    #[test]
    fn hostile_files_are_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let ok = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(ok.success(), "mkfifo");
        let link = dir.path().join("zero-link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let big = dir.path().join("big.txt");
        std::fs::File::create(&big).unwrap().set_len(MAX_BLOCKLIST_BYTES + 1).unwrap();
        let cases: [(&Path, &str); 5] = [
            (&fifo, "a FIFO"),
            (Path::new("/dev/zero"), "a character device"),
            (&link, "a character device"),
            (dir.path(), "a directory"),
            (&big, "more than the limit"),
        ];
        for (file, why) in cases {
            let e = format!("{:#}", load(file).unwrap_err());
            assert!(e.contains(&file.display().to_string()) && e.contains(why), "{e}");
            let cfg = dir.path().join("sipwall.toml");
            std::fs::write(
                &cfg,
                format!("[blocklist]\nfiles = [{:?}]\n", file.display().to_string()),
            )
            .unwrap();
            let e = format!("{:#}", load(&cfg).unwrap_err());
            assert!(
                e.contains("blocklist.files")
                    && e.contains(&file.display().to_string())
                    && e.contains(why),
                "{e}"
            );
        }
        // the config limit is its own, smaller one
        let cfg = dir.path().join("huge.toml");
        std::fs::File::create(&cfg).unwrap().set_len(MAX_CONFIG_BYTES + 1).unwrap();
        assert!(format!("{:#}", load(&cfg).unwrap_err()).contains("more than the limit of 1048576"));
    }

    #[test]
    fn api_defaults_to_off_on_loopback_and_errors_name_key_and_line() {
        let none = parse_api(TEXT).unwrap();
        assert!(!none.enabled && !none.require_token_for_reads && none.token_file.is_none());
        assert!(none.listen.ip().is_loopback(), "{}", none.listen);
        assert_eq!(none.listen.port(), 9360);
        let on =
            parse_api("[bans]\nduration_secs = 60\n[api]\nenabled = true\ntoken_file = \"t\"\n")
                .unwrap();
        assert!(on.enabled);
        assert_eq!(on.token_file_line, 5);
        let e = parse_api("[api]\nenabled = true\nlisten = \"localhost\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 3: api.listen"), "{e:#}");
        let e = parse_api("[api]\nenabeld = true\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 2") && format!("{e:#}").contains("enabeld"));
        // the engine lets the table be
        assert!(sipwall_engine::Policy::from_toml_str("[api]\nenabled = true\n").is_ok());
    }

    #[test]
    fn feed_urls_and_fetch_settings_name_key_and_line() {
        let none = parse_feeds(TEXT).unwrap();
        assert!(none.urls.is_empty());
        assert_eq!(none.fetch, FetchConfig::default());
        let ok = parse_feeds(
            "[blocklist]\nnetworks = [\"203.0.113.0/24\"]\nurls = [\"https://lists.example/voip.txt\", \"http://127.0.0.1:8080/x\"]\n[blocklist.fetch]\nrefresh_secs = 600\nmax_age_secs = 86400\n",
        )
        .unwrap();
        assert_eq!(ok.urls.len(), 2);
        assert_eq!((ok.fetch.refresh_secs, ok.fetch.max_age_secs), (600, 86_400));
        for (bad, want) in [
            ("[blocklist]\n\nurls = [\"ftp://x/y\"]\n", "line 3: blocklist.urls"),
            (
                "[blocklist]\nurls = [\"https://a/x\",\n \"https://a/x\"]\n",
                "line 3: blocklist.urls",
            ),
            ("[blocklist]\nurls = [\"https:///x\"]\n", "line 2: blocklist.urls"),
            ("[blocklist.fetch]\nrefresh_secs = 5\n", "line 2: blocklist.fetch.refresh_secs"),
            (
                "[blocklist.fetch]\n\ntimeout_secs = \"30\"\n",
                "line 3: blocklist.fetch.timeout_secs",
            ),
            ("[blocklist.fetch]\nmax_bytes = 1\n", "line 2: blocklist.fetch.max_bytes"),
            ("[blocklist.fetch]\nrefesh_secs = 60\n", "line 2"),
        ] {
            let e = format!("{:#}", parse_feeds(bad).unwrap_err());
            assert!(e.contains(want), "{bad}: {e}");
        }
        // the engine lets these keys be, and still refuses unknown ones in [blocklist]
        let both = "[blocklist]\nurls = [\"https://a/x\"]\n[blocklist.fetch]\nrefresh_secs = 600\n";
        assert!(sipwall_engine::Policy::from_toml_str(both).is_ok());
        assert!(sipwall_engine::Policy::from_toml_str("[blocklist]\nurlz = []\n").is_err());
    }

    #[test]
    fn fleet_is_off_without_its_table_and_errors_name_key_and_line() {
        assert_eq!(parse_fleet(TEXT).unwrap(), None);
        let f = parse_fleet("[fleet]\nredis_url = \"redis://192.0.2.1:6379\"\n").unwrap().unwrap();
        assert_eq!((f.max_prefix_v4, f.max_prefix_v6, f.key_prefix.as_str()), (16, 48, "sipwall"));
        for (text, want) in [
            ("[fleet]\nnode_id = \"a\"\n", "line 1: in [fleet]: missing field `redis_url`"),
            (
                "[fleet]\nredis_url = \"redis://x\"\nmax_prefix_v4 = 33\n",
                "line 3: fleet.max_prefix_v4",
            ),
            ("[fleet]\nredis_url = \"rediss://x/#insecure\"\n", "line 2: fleet.redis_url"),
            (
                "[fleet]\nredis_url = \"redis://x\"\ntls_ca_file = \"ca.pem\"\n",
                "line 3: fleet.tls_ca_file: only used with a rediss://",
            ),
            (
                "[fleet]\nredis_url = \"rediss://x\"\n\ntls_cert_file = \"c.pem\"\n",
                "line 4: fleet.tls_cert_file: needs tls_key_file",
            ),
            ("[fleet]\nredis_url = \"http://x\"\n", "line 2: fleet.redis_url"),
            ("[fleet]\nredis_url = \"redis://x\"\n\nnode_id = \"a b\"\n", "line 4: fleet.node_id"),
            (
                "[fleet]\nredis_url = \"redis://x\"\nstream_max_len = 10\n",
                "line 3: fleet.stream_max_len",
            ),
            ("[fleet]\nredis_url = \"redis://x\"\nredis_ulr = 1\n", "line 3"),
            (
                "[fleet]\nredis_url = \"redis://x\"\noutage_queue = -1\n",
                "line 3: fleet.outage_queue",
            ),
        ] {
            let e = format!("{:#}", parse_fleet(text).unwrap_err());
            assert!(e.contains(want), "{text:?}: {e}");
        }
        // the engine's policy parser lets the table be
        assert!(
            sipwall_engine::Policy::from_toml_str("[fleet]\nredis_url = \"redis://x\"\n").is_ok()
        );
    }

    #[test]
    fn fleet_tls_files_are_read_at_load_and_errors_name_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("sipwall.toml");
        let text = "[fleet]\nredis_url = \"rediss://192.0.2.1:6380\"\n\ntls_ca_file = \"ca.pem\"\n";
        std::fs::write(&cfg, text).unwrap();
        // missing: key, line and path
        let e = format!("{:#}", load(&cfg).unwrap_err());
        assert!(e.contains("line 4: fleet.tls_ca_file") && e.contains("ca.pem"), "{e}");
        // present but no certificate in it
        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
        let e = format!("{:#}", load(&cfg).unwrap_err());
        assert!(e.contains("line 4: fleet.tls_ca_file") && e.contains("no PEM certificate"), "{e}");
        // a PEM certificate (relative to the config file's folder): loaded
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        std::fs::write(dir.path().join("ca.pem"), pem).unwrap();
        let f = load(&cfg).unwrap().fleet.unwrap();
        assert_eq!(f.tls_ca_file, Some(dir.path().join("ca.pem")));
        assert_eq!(f.read_tls_certs().unwrap().0.as_deref(), Some(pem.as_bytes()));
    }

    #[test]
    fn queue_first_plus_queues_error_names_the_line() {
        let e = parse_enforce("[enforce]\nmode = \"host\"\nqueue_first = 65535\nqueues = 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3: enforce.queue_first"), "{e}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/sipwall.example.toml");
        let config = load(&example).unwrap();
        assert_eq!(config.enforce, EnforceConfig::default());
        // every [api] key it writes is the default (token_file is commented out)
        assert_eq!(ApiConfig { token_file_line: 0, ..config.api }, ApiConfig::default());
        assert!(config.feeds.urls.is_empty());
        assert_eq!(config.feeds.fetch, FetchConfig::default());
    }
}
