//! sipwall — the one binary. Thin: argument parsing and wiring; the work lives in the crates
//! (`sipwall-sip`, `sipwall-engine`, `sipwall-capture`, `sipwall-netfilter`, `sipwall-store`)
//! and in this crate's modules (`inspect`, `daemon`).
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check_config;
mod config;
mod control;
mod daemon;
mod generate;
mod inspect;
mod sd_notify;
mod timefmt;

/// SIP-aware firewall: stops scanner ghost calls, extension enumeration and password guessing.
#[derive(Debug, Parser)]
#[command(name = "sipwall", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Analyse pcap/pcapng captures offline: who probed, and what sipwall would have done.
    Inspect(inspect::InspectArgs),
    /// Protect this host or the hosts behind this router inline (NFQUEUE + nftables). Needs root.
    Run(daemon::RunArgs),
    /// Ban an address or network by hand (talks to the running `sipwall run`).
    Ban(control::BanArgs),
    /// Lift a ban (talks to the running `sipwall run`).
    Unban(control::UnbanArgs),
    /// List active bans: network, until, count, rule, reason (from the running daemon, else
    /// from the state store, read-only).
    Bans(control::BansArgs),
    /// Recent non-accept decisions and operator actions (reads the state store, read-only).
    Decisions(control::DecisionsArgs),
    /// Check a config file; every error names the key and the line.
    CheckConfig {
        /// Config file (TOML).
        file: PathBuf,
    },
    /// Write man pages or shell completions generated from this CLI (used by packaging).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::main(args),
        Command::Run(args) => daemon::main(args),
        Command::Ban(args) => control::ban(args),
        Command::Unban(args) => control::unban(args),
        Command::Bans(args) => control::bans(args),
        Command::Decisions(args) => control::decisions(args),
        Command::CheckConfig { file } => check_config::main(&file),
        Command::Generate(args) => generate::main(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("sipwall: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
