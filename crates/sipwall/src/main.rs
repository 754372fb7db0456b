//! sipwall — the one binary. Thin: argument parsing and wiring; the work lives in the crates
//! (`sipwall-sip`, `sipwall-engine`, `sipwall-capture`, `sipwall-netfilter`, `sipwall-store`)
//! and in this crate's modules: `inspect`, `daemon` (`run`), `commands` (the operator
//! commands, one file per subcommand family), with `protocol` (the control protocol model
//! shared by `client` and `daemon::control_server`), `config` and `time` beneath them. A new
//! subcommand is one variant of [`Command`] plus one file under `commands/`. The daemon never
//! uses `client` or `commands`.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod api;
mod client;
mod commands;
mod config;
mod daemon;
mod feeds;
mod inspect;
mod metrics;
mod protocol;
mod sd_notify;
mod time;

/// SIP-aware firewall: stops scanner ghost calls, extension enumeration and password guessing.
#[derive(Debug, Parser)]
#[command(name = "sipwall", version, about, long_about = None)]
struct Cli {
    /// Log line format on stderr: `text` (RFC 3339 UTC time, level, target, message) or
    /// `json` (one object per line: time, level, target, message). Level: RUST_LOG.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// `[2026-12-02T23:02:23.123Z INFO  sipwall::daemon] message`.
    Text,
    /// `{"time":"2026-12-02T23:02:23.123Z","level":"INFO","target":"sipwall::daemon","message":"..."}`.
    Json,
}

/// One JSON log line (without the newline): RFC 3339 UTC time to the millisecond.
fn json_log_line(time_ms: u64, level: log::Level, target: &str, message: &str) -> String {
    serde_json::json!({
        "time": time::rfc3339_millis(time_ms),
        "level": level.as_str(),
        "target": target,
        "message": message,
    })
    .to_string()
}

fn init_logging(format: LogFormat) {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match format {
        // env_logger's own timestamps are RFC 3339 UTC.
        LogFormat::Text => b.format_timestamp_millis(),
        LogFormat::Json => b.format(|buf, record| {
            use std::io::Write as _;
            let line = json_log_line(
                time::now_ms(),
                record.level(),
                record.target(),
                &record.args().to_string(),
            );
            writeln!(buf, "{line}")
        }),
    };
    b.init();
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Analyse pcap/pcapng captures offline: who probed, and what sipwall would have done.
    Inspect(inspect::InspectArgs),
    /// Protect this host or the hosts behind this router inline (NFQUEUE + nftables). Needs root.
    Run(daemon::RunArgs),
    /// Ban an address or network by hand (talks to the running `sipwall run`).
    Ban(commands::ban::BanArgs),
    /// Lift a ban (talks to the running `sipwall run`).
    Unban(commands::ban::UnbanArgs),
    /// List active bans: network, until, count, rule, reason (from the running daemon, else
    /// from the state store, read-only).
    Bans(commands::bans::BansArgs),
    /// Recent non-accept decisions and operator actions (reads the state store, read-only).
    Decisions(commands::decisions::DecisionsArgs),
    /// Check a config file; every error names the key and the line.
    CheckConfig(commands::check_config::CheckConfigArgs),
    /// The running daemon: mode, ports, queue counters, bans by rule, store, last reload
    /// (exit 3 when it is not running).
    Status(commands::status::StatusArgs),
    /// Make the running daemon re-read its config; errors are printed, exit 1 (the daemon
    /// keeps its current policy).
    Reload(commands::status::ReloadArgs),
    /// Block-list feeds: export the active bans for other firewalls (plain, nft, ipset,
    /// MikroTik, JSON).
    #[command(subcommand)]
    Feed(commands::feed::FeedCommand),
    /// Write man pages or shell completions generated from this CLI (used by packaging).
    #[command(hide = true)]
    Generate(commands::generate::GenerateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Inspect(args) => inspect::main(args),
        Command::Run(args) => daemon::main(args),
        Command::Ban(args) => commands::ban::ban(args),
        Command::Unban(args) => commands::ban::unban(args),
        Command::Bans(args) => commands::bans::bans(args),
        Command::Decisions(args) => commands::decisions::decisions(args),
        Command::CheckConfig(args) => commands::check_config::main(&args),
        Command::Status(args) => commands::status::status(args),
        Command::Reload(args) => commands::status::reload(args),
        Command::Generate(args) => commands::generate::main(args),
        Command::Feed(cmd) => commands::feed::main(cmd),
    };
    match result {
        Ok(code) => code,
        // `sipwall bans | head -0`: the reader left; nothing to say to anyone.
        Err(err) if err.downcast_ref::<commands::ClosedPipe>().is_some() => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sipwall: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_log_lines_are_one_object_with_rfc3339_time() {
        let line = json_log_line(
            1_764_000_000_123,
            log::Level::Warn,
            "sipwall::daemon",
            "manual ban of 203.0.113.9/32 \"quoted\"\nsecond line",
        );
        assert!(!line.contains('\n'), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["time"], "2025-11-24T16:00:00.123Z");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], "sipwall::daemon");
        assert_eq!(v["message"], "manual ban of 203.0.113.9/32 \"quoted\"\nsecond line");
        assert_eq!(v.as_object().unwrap().len(), 4);
    }
}
