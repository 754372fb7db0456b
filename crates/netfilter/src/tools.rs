//! Running the firewall tools (`nft`, `iptables-restore`, ...) and reading back what they
//! hold, for every module that writes rules or set elements: one error type named after the
//! failed operation, with the tool's own message.
use std::io::Write as _;
use std::process::{Command, Stdio};

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

/// The names of the chains of `inet table` (`nft -j list chains`: never fetches set elements).
pub(crate) fn list_chains(table: &str) -> Result<Vec<String>, FirewallError> {
    let json = run("listing the nft chains", "nft", &["-j", "list", "chains", "inet"], None)?;
    let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| FirewallError::Verify {
        table: table.to_string(),
        what: format!("unreadable JSON: {e}"),
    })?;
    let items = v.get("nftables").and_then(|n| n.as_array()).cloned().unwrap_or_default();
    Ok(items
        .iter()
        .filter_map(|i| i.get("chain"))
        .filter(|c| c.get("table").and_then(|t| t.as_str()) == Some(table))
        .filter_map(|c| c.get("name").and_then(|n| n.as_str()).map(String::from))
        .collect())
}
