//! `sipwall trust add|del|list`: networks trusted at run time, on top of the config's
//! `[trusted] networks` (which stay the baseline), kept in the daemon's store across restarts.
//! Talks to the running daemon over the control socket (`protocol::Request::TrustAdd` ...);
//! the HTTP API serves the same commands (`/api/v1/trust`).
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{Format, SocketArgs};
use crate::client;
use crate::protocol::{parse_request, Request, TrustView};
use crate::time::rfc3339;

/// `sipwall trust`.
#[derive(Debug, Args)]
pub struct TrustArgs {
    #[command(subcommand)]
    action: TrustAction,
}

#[derive(Debug, Subcommand)]
enum TrustAction {
    /// Trust a network now (never banned, always accepted; its bans are lifted).
    Add {
        /// Address or network (canonical: 203.0.113.0/24).
        net: String,
        /// Why (kept with it, shown by `trust list`).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Stop trusting a network added with `trust add` (the config's stay).
    Del {
        /// Network exactly as `trust list` shows it.
        net: String,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// The trusted networks: the config's, then those added at run time.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[command(flatten)]
        socket: SocketArgs,
    },
}

/// Run it.
pub fn trust(args: TrustArgs) -> anyhow::Result<ExitCode> {
    let (req, format, socket) = match args.action {
        TrustAction::Add { net, reason, socket } => {
            (Request::TrustAdd { net, reason }, None, socket)
        }
        TrustAction::Del { net, socket } => (Request::TrustDel { net }, None, socket),
        TrustAction::List { format, socket } => (Request::TrustList, Some(format), socket),
    };
    let sock = socket.path()?;
    // The socket's checks, before asking: a typo is refused here with the same words.
    parse_request(&serde_json::to_vec(&req)?)?;
    let r = client::call_ok(&sock, &req)?;
    match format {
        None => super::emit(&(r.message.unwrap_or_default() + "\n"))?,
        Some(Format::Json) => {
            super::emit(&(serde_json::to_string_pretty(&r.trusted.unwrap_or_default())? + "\n"))?
        }
        Some(Format::Text) => super::emit(&table(&r.trusted.unwrap_or_default()))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The text listing.
pub fn table(list: &[TrustView]) -> String {
    let w = list.iter().map(|t| t.net.len()).max().unwrap_or(0).max(3);
    let mut o = format!("{:<w$}  {:<7}  {:<20}  REASON\n", "NET", "ORIGIN", "SINCE");
    for t in list {
        let since = t.since_ms.map(rfc3339).unwrap_or_else(|| "-".into());
        o.push_str(&format!("{:<w$}  {:<7}  {:<20}  {}\n", t.net, t.origin, since, t.reason));
    }
    o.push_str(&format!("{} trusted network(s)\n", list.len()));
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_reads_well() {
        let list = vec![
            TrustView {
                net: "198.51.100.0/24".into(),
                origin: "config".into(),
                since_ms: None,
                reason: "[trusted] networks".into(),
            },
            TrustView {
                net: "203.0.113.0/24".into(),
                origin: "runtime".into(),
                since_ms: Some(1_764_772_200_000),
                reason: "provider B; trusted by uid 0 (pid 42)".into(),
            },
        ];
        assert_eq!(
            table(&list),
            "NET              ORIGIN   SINCE                 REASON\n\
             198.51.100.0/24  config   -                     [trusted] networks\n\
             203.0.113.0/24   runtime  2025-12-03T14:30:00Z  provider B; trusted by uid 0 (pid 42)\n\
             2 trusted network(s)\n"
        );
    }
}
