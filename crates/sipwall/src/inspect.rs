//! `sipwall inspect`: offline analysis of captures — who probed, and what sipwall would
//! have done.
//!
//! Every SIP message found by `sipwall-capture` goes through the real engine, in capture
//! order, with the capture's own timestamps as the clock. Per source (the remote peer) it
//! collects first/last seen, messages by method, answers sent to it, User-Agents, users
//! targeted, verdicts, rule ids and one sentence per rule, and the bans the engine set.
//!
//! Direction (which side is protected), decided per message:
//! 1. `--local CIDR,...` given: a message to a local address is Inbound, from one Outbound.
//! 2. Else by port: toward a guarded SIP port (the policy's guarded and tripwire ports, 5060
//!    by default, or `--ports`) and not from one: Inbound; from one and not toward one:
//!    Outbound.
//! 3. Else (both ends on SIP ports, e.g. scanners binding 5060): requests are Inbound,
//!    answers Outbound.
//!
//! The peer of an Inbound message is its source, of an Outbound one its destination.
//!
//! Several captures go through ONE engine as one stream merged by timestamp (a k-way merge:
//! captures of the same period, e.g. one per interface, or a rotated set cut oddly, are
//! interleaved, so flood and enumeration windows and bans see time move forward across
//! files). Equal timestamps go to the file given first on the command line. The merge is
//! across files only: a file whose own records are out of order is not sorted but read in
//! its own order, as a single capture would be. Each file is read, counted and reported
//! (in command-line order) on its own: a corrupt or truncated file contributes what was
//! read before the problem and its error or warnings name the byte offset; a file that
//! cannot be opened is reported and the others go on.
//!
//! Memory: the readers stream; a file's next message waits in its own reader (one pending
//! message per file, not copied; the merge heap holds one timestamp per file). Every file is
//! open at once until it ends, each with its read buffer ([`Limits::read_buffer`], 1 MiB,
//! plus 64 KiB of file buffering) and its own IP/TCP reassembly state bounded by
//! [`Limits`] (a few KiB per file in practice), so at most [`MAX_FILES`] captures are taken
//! per run (more is an error asking to merge some first, e.g. with `mergecap`): at most
//! about 272 MiB of read buffers.
//! The report keeps one bounded record per source (at most [`MAX_SOURCES`] sources
//! itemised, each with at most 8 User-Agents, 32 users and 128 timeline points, a few KiB),
//! so it does not grow with the captures' size. Messages of further sources still go
//! through the engine and are counted in the summary.
use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use ipnet::IpNet;
use sipwall_engine::Policy;

mod html;
mod merge;
mod model;
mod report;
mod tally;

pub use merge::{analyse, MAX_FILES};
pub use model::{Analysis, SourceReport, MAX_SOURCES};

/// Output format of the report on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For a person.
    Text,
    /// One JSON document.
    Json,
    /// One row per source.
    Csv,
}

/// Arguments of `sipwall inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Policy file (TOML); the built-in defaults when absent.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Only packets from or to these ports (comma separated); also taken as the SIP ports
    /// for deciding direction. Default: SIP found on any port.
    #[arg(long, value_delimiter = ',')]
    pub ports: Vec<u16>,
    /// The protected side's networks (comma separated CIDRs or addresses): messages toward
    /// them are inbound. Default: decided by port and message type.
    #[arg(long, value_delimiter = ',')]
    pub local: Vec<String>,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Also write a self-contained HTML page (timeline chart and tables) to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Capture files (pcap or pcapng).
    #[arg(required = true)]
    pub captures: Vec<PathBuf>,
}

fn load_policy(config: Option<&Path>) -> anyhow::Result<Policy> {
    match config {
        Some(path) => Ok(crate::config::load(path)?.policy),
        None => Ok(Policy::default()),
    }
}

fn parse_local(list: &[String]) -> anyhow::Result<Vec<IpNet>> {
    list.iter()
        .map(|s| {
            let s = s.trim();
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .with_context(|| format!("--local: `{s}` is not an address or CIDR"))
        })
        .collect()
}

pub fn main(args: InspectArgs) -> anyhow::Result<ExitCode> {
    if args.captures.len() > MAX_FILES {
        anyhow::bail!(
            "{} capture files given, at most {MAX_FILES} are read at once (each stays open for \
             the merge by time): merge some first, e.g. `mergecap -w merged.pcapng a.pcap b.pcap`",
            args.captures.len()
        );
    }
    let policy = load_policy(args.config.as_deref())?;
    let local = parse_local(&args.local)?;
    let total: u64 =
        args.captures.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} reading captures {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let mut progress = |done: u64| {
        if let Some(b) = &bar {
            b.set_position(done);
        }
    };
    let analysis = analyse(&args.captures, policy, &args.ports, local, &mut progress);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let out = match args.format {
        Format::Text => report::text(&analysis),
        Format::Json => report::json(&analysis)?,
        Format::Csv => report::csv(&analysis),
    };
    // A reader that closed stdout (`| head -0`) ends the run quietly, after the HTML page.
    let emitted = crate::commands::emit(&out);
    if let Some(path) = &args.html {
        std::fs::write(path, html::page(&analysis))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    emitted?;
    for f in &analysis.files {
        for w in &f.warnings {
            eprintln!("sipwall inspect: {}: {w}", f.path);
        }
        if let Some(e) = &f.error {
            eprintln!(
                "sipwall inspect: {}: {e} (read {} records, {} SIP messages before that)",
                f.path, f.frames, f.sip_messages
            );
        }
    }
    // Non-zero only when nothing at all could be read.
    if analysis.files.iter().all(|f| f.frames == 0 && f.error.is_some()) {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::model::{MAX_TIMELINE, MAX_USERS};
    use super::tally::{remember, DirectionRule};
    use super::*;
    use sipwall_engine::Direction;

    #[test]
    fn distinct_users_exact_then_estimated() {
        let mut s = SourceReport::new("203.0.113.10".parse().unwrap(), 0);
        for round in 0..3 {
            for i in 0..20 {
                let u = format!("{}", 100 + i);
                remember(&mut s.users, u.as_bytes(), 64, MAX_USERS);
                s.count_user(u.as_bytes());
            }
            assert_eq!(s.users_count, 20, "round {round}: repeats do not count");
        }
        for i in 0..2000 {
            let u = format!("{}", 5000 + i);
            remember(&mut s.users, u.as_bytes(), 64, MAX_USERS);
            s.count_user(u.as_bytes());
        }
        assert_eq!(s.users.len(), MAX_USERS, "sample bounded");
        let n = s.users_count as f64;
        assert!((n - 2020.0).abs() / 2020.0 < 0.1, "estimate {n}");
    }

    #[test]
    fn direction_rule() {
        let rule = DirectionRule { local: vec![], sip_ports: vec![5060] };
        let a = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(
            rule.direction(a("198.51.100.20:5070"), a("192.0.2.10:5060"), true),
            Direction::Inbound
        );
        assert_eq!(
            rule.direction(a("192.0.2.10:5060"), a("198.51.100.20:5070"), false),
            Direction::Outbound
        );
        // both on 5060 (a scanner binding 5060): requests in, answers out
        assert_eq!(
            rule.direction(a("203.0.113.10:5060"), a("192.0.2.10:5060"), true),
            Direction::Inbound
        );
        assert_eq!(
            rule.direction(a("192.0.2.10:5060"), a("203.0.113.10:5060"), false),
            Direction::Outbound
        );
        // --local wins: the PBX calling out to a provider on 5060
        let rule =
            DirectionRule { local: vec!["192.0.2.0/24".parse().unwrap()], sip_ports: vec![5060] };
        assert_eq!(
            rule.direction(a("192.0.2.10:5060"), a("198.51.100.20:5060"), true),
            Direction::Outbound
        );
        assert_eq!(
            rule.direction(a("198.51.100.20:5060"), a("192.0.2.10:5060"), false),
            Direction::Inbound
        );
    }

    #[test]
    fn timeline_stays_bounded() {
        let mut s = SourceReport::new("203.0.113.10".parse().unwrap(), 0);
        for i in 0..100_000u64 {
            s.tick(i * 1000);
        }
        assert!(s.timeline.len() <= MAX_TIMELINE);
        assert_eq!(s.timeline.values().map(|&n| u64::from(n)).sum::<u64>(), 100_000);
    }
}
