//! Applying the ruleset: the `inet` table through one atomic `nft -f -` batch, read back with
//! `nft -j list table` to verify; the queue rules through nft's `queue` expression when the
//! kernel has it, else `iptables-restore`/`ip6tables-restore --noflush` with the xt NFQUEUE
//! target in own chains. Removal is idempotent (also used at start against leftovers of a
//! crashed run) and runs on drop.
use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::ruleset::{QueueBackend, Ruleset};

/// Errors named after the failed operation.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// A tool could not be started.
    #[error("{op}: cannot run {tool}: {source}")]
    Spawn {
        /// Operation.
        op: &'static str,
        /// Program.
        tool: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A tool exited with failure.
    #[error("{op}: {tool} failed ({status}): {stderr}")]
    Tool {
        /// Operation.
        op: &'static str,
        /// Program.
        tool: String,
        /// Exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The table read back does not match what was applied.
    #[error("verifying table inet {table}: {what}")]
    Verify {
        /// Table.
        table: String,
        /// What is missing or wrong.
        what: String,
    },
}

/// Run `tool args`, feeding `stdin`; returns stdout.
pub(crate) fn run(
    op: &'static str,
    tool: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, FirewallError> {
    let mut cmd = Command::new(tool);
    cmd.args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let spawn_err = |source| FirewallError::Spawn { op, tool: tool.to_string(), source };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        return Err(FirewallError::Tool {
            op,
            tool: format!("{tool} {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The installed ruleset. Dropping it removes every rule it added.
#[derive(Debug)]
pub struct Firewall {
    ruleset: Ruleset,
    table_installed: bool,
    backend: Option<QueueBackend>,
}

impl Firewall {
    /// Remove leftovers of an earlier run (table and own iptables chains), then create the
    /// table with its ban sets and drop rules and verify it. No packet is queued yet: load
    /// bans with [`crate::BanSet`], then call [`Firewall::enable_queue`].
    pub fn install(ruleset: Ruleset) -> Result<Firewall, FirewallError> {
        remove_all(&ruleset.table)?;
        run("creating the nft table", "nft", &["-f", "-"], Some(&ruleset.render_nft_table()))?;
        let fw = Firewall { ruleset, table_installed: true, backend: None };
        fw.verify()?;
        Ok(fw)
    }

    /// The ruleset.
    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    /// The queue backend in use, once enabled.
    pub fn backend(&self) -> Option<QueueBackend> {
        self.backend
    }

    /// Start queueing: nft's `queue` expression if the kernel accepts it, else the iptables
    /// NFQUEUE target. `prefer` = Some(backend) forces one. Returns the backend used.
    pub fn enable_queue(
        &mut self,
        prefer: Option<QueueBackend>,
    ) -> Result<QueueBackend, FirewallError> {
        let try_nft = prefer != Some(QueueBackend::Xtables);
        if try_nft {
            match run(
                "adding nft queue chains",
                "nft",
                &["-f", "-"],
                Some(&self.ruleset.render_nft_queue()),
            ) {
                Ok(_) => {
                    self.backend = Some(QueueBackend::Nft);
                    self.verify()?;
                    return Ok(QueueBackend::Nft);
                }
                Err(e) if prefer.is_none() => {
                    // nft's multi-line diagnostic is for debugging; one line says what happened.
                    let why = e.to_string();
                    let first = why.lines().next().unwrap_or_default();
                    log::info!(
                        "nft queue expression unavailable (kernel without nft_queue?), using the \
                         iptables NFQUEUE target instead: {first}"
                    );
                    log::debug!("nft queue attempt: {why}");
                }
                Err(e) => return Err(e),
            }
        }
        let text = self.ruleset.render_xt();
        self.backend = Some(QueueBackend::Xtables);
        run("adding iptables NFQUEUE rules", "iptables-restore", &["--noflush"], Some(&text))?;
        run("adding ip6tables NFQUEUE rules", "ip6tables-restore", &["--noflush"], Some(&text))?;
        self.verify()?;
        Ok(QueueBackend::Xtables)
    }

    /// Read the table back and check that its sets and chains are there (and the iptables
    /// chains for the xt backend).
    pub fn verify(&self) -> Result<(), FirewallError> {
        let table = &self.ruleset.table;
        let json =
            run("listing the nft table", "nft", &["-j", "list", "table", "inet", table], None)?;
        let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
            FirewallError::Verify { table: table.clone(), what: format!("unreadable JSON: {e}") }
        })?;
        let items = v.get("nftables").and_then(|n| n.as_array()).cloned().unwrap_or_default();
        let names = |kind: &str| -> Vec<String> {
            items
                .iter()
                .filter_map(|i| i.get(kind))
                .filter_map(|o| o.get("name").and_then(|n| n.as_str()).map(String::from))
                .collect()
        };
        let (sets, chains) = (names("set"), names("chain"));
        let (s4, s6) = self.ruleset.set_names();
        for s in [s4, s6] {
            if !sets.iter().any(|x| x == s) {
                return Err(FirewallError::Verify {
                    table: table.clone(),
                    what: format!("set {s} missing"),
                });
            }
        }
        let backend = self.backend.unwrap_or(QueueBackend::Xtables);
        for c in self.ruleset.nft_chain_names(backend) {
            if !chains.contains(&c) {
                return Err(FirewallError::Verify {
                    table: table.clone(),
                    what: format!("chain {c} missing"),
                });
            }
        }
        if self.backend == Some(QueueBackend::Xtables) {
            for tool in ["iptables", "ip6tables"] {
                let rules = run("listing iptables rules", tool, &["-S"], None)?;
                for (builtin, own) in Ruleset::all_xt_chains(table) {
                    let used = match builtin {
                        "FORWARD" => self.ruleset.hooks.forward,
                        _ => self.ruleset.hooks.input,
                    };
                    let jump = format!("-A {builtin} -j {own}");
                    if used && !rules.lines().any(|l| l == jump) {
                        return Err(FirewallError::Verify {
                            table: table.clone(),
                            what: format!("{tool}: jump '{jump}' missing"),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Remove every rule, chain and the table. Idempotent.
    pub fn remove(&mut self) -> Result<(), FirewallError> {
        remove_all(&self.ruleset.table)?;
        self.table_installed = false;
        self.backend = None;
        Ok(())
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        if self.table_installed {
            if let Err(e) = self.remove() {
                log::error!("removing sipwall rules: {e}");
            }
        }
    }
}

/// Remove the table and own iptables chains of `table`, whatever state they are in.
/// Removes the queue rules first, so packets stop being queued before the ban sets go.
pub fn remove_all(table: &str) -> Result<(), FirewallError> {
    for tool in ["iptables", "ip6tables"] {
        for (builtin, own) in Ruleset::all_xt_chains(table) {
            // Several jumps may have piled up after crashes: remove them all (bounded).
            for _ in 0..16 {
                if run("removing iptables jump", tool, &["-D", builtin, "-j", &own], None).is_err()
                {
                    break;
                }
            }
            if run("checking iptables chain", tool, &["-S", &own], None).is_ok() {
                run("flushing iptables chain", tool, &["-F", &own], None)?;
                run("deleting iptables chain", tool, &["-X", &own], None)?;
            }
        }
    }
    let text = format!("add table inet {table}\ndelete table inet {table}\n");
    run("deleting the nft table", "nft", &["-f", "-"], Some(&text))?;
    Ok(())
}
