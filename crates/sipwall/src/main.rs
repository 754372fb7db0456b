//! sipwall — the one binary. Thin: argument parsing and wiring; the work lives in the crates
//! (`sipwall-sip`, `sipwall-engine`, `sipwall-capture`, `sipwall-netfilter`, `sipwall-store`)
//! and in this crate's modules: `inspect`, `daemon` (`run`), `commands` (the operator
//! commands, one file per subcommand family), with `protocol` (the control protocol model
//! shared by `client` and `daemon::control_server`), `config` and `time` beneath them. A new
//! subcommand is one variant of [`Command`] plus one file under `commands/`. The daemon never
//! uses `client` or `commands`.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod client;
mod commands;
mod config;
mod daemon;
mod inspect;
mod protocol;
mod time;

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
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::main(args),
        Command::Run(args) => daemon::main(args),
        Command::Ban(args) => commands::ban::ban(args),
        Command::Unban(args) => commands::ban::unban(args),
        Command::Bans(args) => commands::bans::bans(args),
        Command::Decisions(args) => commands::decisions::decisions(args),
        Command::CheckConfig(args) => commands::check_config::main(&args),
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
