//! The daemon's settings: the `[enforce]` table of the same TOML file as the engine's policy.
//!
//! Choice: the engine's `Policy` is parsed from the file with the `[enforce]` table blanked out
//! line for line (so the policy's error messages keep their line numbers, and a policy that
//! denies unknown keys is not disturbed), and `[enforce]` is parsed here on its own, with
//! unknown keys refused. No `#[serde(flatten)]` between the two.
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ipnet::IpNet;
use serde::Deserialize;
use sipwall_netfilter::{BanScope, GuardedPort, Hooks, L4Proto, QueueBackend, Ruleset};

/// `[enforce]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnforceConfig {
    /// "host" (INPUT+OUTPUT) or "router" (FORWARD) or "both".
    pub mode: Mode,
    /// Guarded ports: "udp:5060", "tcp:5060", "tls:5061" (TLS: bans only, never queued).
    /// Default `[]`: the policy's guarded and tripwire ports (`[ports]`, 5060 when none),
    /// each on UDP and TCP.
    pub ports: Vec<String>,
    /// Number of queues (one thread each), balanced by flow hash.
    pub queues: u16,
    /// First queue number.
    pub queue_first: u16,
    /// Drop guarded traffic while sipwall is not running (default: accept, fail open).
    pub fail_closed: bool,
    /// "ports" (banned sources lose the guarded ports) or "all".
    pub ban_scope: String,
    /// "auto", "nft" or "iptables".
    pub queue_backend: String,
    /// Router mode: the protected networks behind this router (decides packet direction).
    pub protected: Vec<IpNet>,
    /// Directory of the state database.
    pub state_dir: PathBuf,
    /// nft table name.
    pub table: String,
    /// How often expired bans are removed, in milliseconds.
    pub expire_interval_ms: u64,
    /// Store every non-accept decision with its evidence.
    pub record_decisions: bool,
    /// Most TCP connections tracked per queue.
    pub max_tcp_flows: usize,
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
}

impl Default for EnforceConfig {
    fn default() -> Self {
        EnforceConfig {
            mode: Mode::Host,
            ports: Vec::new(),
            queues: 1,
            queue_first: 0,
            fail_closed: false,
            ban_scope: "ports".into(),
            queue_backend: "auto".into(),
            protected: Vec::new(),
            state_dir: PathBuf::from("/var/lib/sipwall"),
            table: "sipwall".into(),
            expire_interval_ms: 1000,
            record_decisions: true,
            max_tcp_flows: 16_384,
        }
    }
}

impl EnforceConfig {
    /// The kernel ruleset these settings describe.
    /// `policy_ports` are the engine policy's ports to guard (used when `ports` is empty).
    pub fn ruleset(&self, policy_ports: &[u16]) -> anyhow::Result<Ruleset> {
        let mut ports = Vec::new();
        if self.ports.is_empty() {
            for &port in policy_ports {
                ports.push(GuardedPort { l4: L4Proto::Udp, port, inspect: true });
                ports.push(GuardedPort { l4: L4Proto::Tcp, port, inspect: true });
            }
        }
        for p in &self.ports {
            let (proto, num) = p.split_once(':').with_context(|| {
                format!("enforce.ports: '{p}' is not 'udp:PORT', 'tcp:PORT' or 'tls:PORT'")
            })?;
            let port: u16 =
                num.parse().with_context(|| format!("enforce.ports: bad port in '{p}'"))?;
            let (l4, inspect) = match proto {
                "udp" => (L4Proto::Udp, true),
                "tcp" => (L4Proto::Tcp, true),
                "tls" => (L4Proto::Tcp, false),
                _ => anyhow::bail!("enforce.ports: unknown transport '{proto}' in '{p}'"),
            };
            ports.push(GuardedPort { l4, port, inspect });
        }
        anyhow::ensure!(!ports.is_empty(), "enforce.ports: at least one port is needed");
        anyhow::ensure!(self.queues >= 1 && self.queues <= 64, "enforce.queues: 1..=64");
        anyhow::ensure!(
            self.queue_first.checked_add(self.queues - 1).is_some(),
            "enforce.queue_first + queues exceeds 65535"
        );
        anyhow::ensure!(
            !self.table.is_empty()
                && self.table.len() <= 24
                && self.table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "enforce.table: 1-24 letters, digits or '_'"
        );
        let ban_scope = match self.ban_scope.as_str() {
            "ports" => BanScope::GuardedPorts,
            "all" => BanScope::All,
            o => anyhow::bail!("enforce.ban_scope: '{o}' is not 'ports' or 'all'"),
        };
        Ok(Ruleset {
            table: self.table.clone(),
            ports,
            hooks: Hooks {
                input: matches!(self.mode, Mode::Host | Mode::Both),
                forward: matches!(self.mode, Mode::Router | Mode::Both),
            },
            queue_first: self.queue_first,
            queue_count: self.queues,
            fail_closed: self.fail_closed,
            ban_scope,
        })
    }

    /// The preferred queue backend (None = detect).
    pub fn backend(&self) -> anyhow::Result<Option<QueueBackend>> {
        Ok(match self.queue_backend.as_str() {
            "auto" => None,
            "nft" => Some(QueueBackend::Nft),
            "iptables" => Some(QueueBackend::Xtables),
            o => anyhow::bail!("enforce.queue_backend: '{o}' is not auto, nft or iptables"),
        })
    }
}

/// The file split in two: the engine's part (the `[enforce]` table blanked, line numbers kept)
/// and the daemon's settings.
#[derive(Debug)]
pub struct SplitConfig {
    /// Text for `Policy::from_toml_str`.
    pub policy_text: String,
    /// `[enforce]`.
    pub enforce: EnforceConfig,
}

/// Blank every line of the `[enforce]` table (and its `[enforce.x]` sub-tables): from its
/// header to the next table header that is not under it.
fn blank_enforce(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with('[') {
            let name = t.trim_start_matches('[').split([']', '#']).next().unwrap_or("").trim();
            inside = name == "enforce" || name.starts_with("enforce.");
        }
        if inside {
            out.push_str(if line.ends_with("\r\n") {
                "\r\n"
            } else if line.ends_with('\n') {
                "\n"
            } else {
                ""
            });
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Split the config text.
pub fn split(text: &str) -> anyhow::Result<SplitConfig> {
    let table: toml::Table = toml::from_str(text).context("config is not valid TOML")?;
    let enforce = match table.get("enforce") {
        Some(v) => v.clone().try_into::<EnforceConfig>().context("in [enforce]")?,
        None => EnforceConfig::default(),
    };
    enforce.ruleset(&[5060])?;
    enforce.backend()?;
    Ok(SplitConfig { policy_text: blank_enforce(text), enforce })
}

/// Read and split a config file; the engine's policy is parsed too so errors come up front.
pub fn load(path: &Path) -> anyhow::Result<(sipwall_engine::Policy, EnforceConfig)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    let split = split(&text).with_context(|| format!("config {}", path.display()))?;
    let mut policy = sipwall_engine::Policy::from_toml_str(&split.policy_text)
        .with_context(|| format!("policy in {}", path.display()))?;
    for name in policy.blocklist_files.clone() {
        let text = std::fs::read_to_string(&name)
            .with_context(|| format!("reading block list file {name}"))?;
        let load = policy
            .load_blocklist_text(&name, &text)
            .with_context(|| format!("block list file {name}"))?;
        log::info!("block list {name}: {load:?}");
    }
    Ok((policy, split.enforce))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# policy\n[trusted]\nnets = [\"198.51.100.0/24\"]\n\n[enforce]\nmode = \"router\"\nports = [\"udp:5060\", \"tls:5061\"]\nqueues = 2\nprotected = [\"192.0.2.0/24\"]\n\n[enforce.extra]\n\n[bans]\nduration = \"1h\"\n";

    #[test]
    fn enforce_table_is_blanked_line_for_line() {
        let s = split(TEXT).unwrap_err().to_string();
        // [enforce.extra] is an unknown key of [enforce]
        assert!(s.contains("in [enforce]"), "{s}");
        let text = TEXT.replace("[enforce.extra]\n", "");
        let s = split(&text).unwrap();
        assert_eq!(s.policy_text.lines().count(), text.lines().count());
        assert!(!s.policy_text.contains("mode"));
        assert!(s.policy_text.contains("[trusted]") && s.policy_text.contains("[bans]"));
        assert_eq!(
            s.policy_text.lines().position(|l| l == "[bans]"),
            text.lines().position(|l| l == "[bans]")
        );
        assert_eq!(s.enforce.mode, Mode::Router);
        let r = s.enforce.ruleset(&[5060]).unwrap();
        assert_eq!(r.queue_count, 2);
        assert!(r.hooks.forward && !r.hooks.input);
        assert_eq!(r.ports[1], GuardedPort { l4: L4Proto::Tcp, port: 5061, inspect: false });
    }

    #[test]
    fn bad_settings_name_the_key() {
        for (bad, key) in [
            ("[enforce]\nports = [\"sctp:5060\"]\n", "enforce.ports"),
            ("[enforce]\nqueues = 0\n", "enforce.queues"),
            ("[enforce]\nban_scope = \"most\"\n", "enforce.ban_scope"),
            ("[enforce]\nqueue_backend = \"ebpf\"\n", "enforce.queue_backend"),
            ("[enforce]\ntable = \"a b\"\n", "enforce.table"),
        ] {
            let e = format!("{:#}", split(bad).unwrap_err());
            assert!(e.contains(key), "{bad}: {e}");
        }
        assert_eq!(split("").unwrap().enforce, EnforceConfig::default());
        // no ports in [enforce]: the policy's, on UDP and TCP
        let r = EnforceConfig::default().ruleset(&[5060, 5080]).unwrap();
        assert_eq!(r.ports.len(), 4);
        assert!(r.ports.iter().all(|p| p.inspect));
    }
}
