//! `sipwall ban` and `sipwall unban`: ask the running daemon, after the same checks it makes.
use std::path::Path;
use std::process::ExitCode;

use ipnet::IpNet;

use super::SocketArgs;
use crate::client;
use crate::protocol::{parse_request, Command, Request};

/// `sipwall ban`.
#[derive(Debug, clap::Args)]
pub struct BanArgs {
    /// Address or network to ban (e.g. 203.0.113.9 or 203.0.113.0/24). Trusted networks are
    /// refused.
    pub net: String,
    /// How long: 1h30m, 90m, 45s, 2d, 1w or plain seconds.
    #[arg(long = "for", default_value = "1h")]
    pub duration: String,
    /// Why (shown by `sipwall bans` and in the log).
    #[arg(long, default_value = "", hide_default_value = true)]
    pub reason: String,
    /// When the network is already banned, move its end to now + --for (never earlier:
    /// an extension never shortens a ban) instead of refusing.
    #[arg(long)]
    pub extend: bool,
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// `sipwall unban`.
#[derive(Debug, clap::Args)]
pub struct UnbanArgs {
    /// The banned addresses or networks, exactly as `sipwall bans` shows them.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub nets: Vec<String>,
    /// Lift every active ban (the daemon's listing at the time of asking).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// `sipwall ban`.
pub fn ban(args: BanArgs) -> anyhow::Result<ExitCode> {
    let secs = crate::time::parse_duration(&args.duration)?.as_secs();
    let req = Request::Ban { net: args.net, secs, reason: args.reason, extend: args.extend };
    // Check locally first: the same checks the daemon makes, with the same messages.
    let Command::Ban { net, .. } = parse_request(&serde_json::to_vec(&req)?)? else {
        unreachable!("a ban request parses as a ban")
    };
    let sock = args.socket.path()?;
    let r =
        client::call_ok(&sock, &req).map_err(|e| after_timeout(e, &sock, net, Expect::Listed))?;
    super::emit(&(r.message.unwrap_or_default() + "\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// What a carried-out request leaves in the daemon's listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A ban: the network is listed.
    Listed,
    /// An unban: it is not.
    Gone,
}

/// A request that timed out may still have been carried out (the daemon was slow, not
/// dead): ask the daemon's listing once more and say which. Other errors pass unchanged.
fn after_timeout(e: anyhow::Error, sock: &Path, net: IpNet, expect: Expect) -> anyhow::Error {
    if !client::timed_out(&e) {
        return e;
    }
    let listed = client::call_ok(sock, &Request::Bans)
        .map(|r| r.bans.unwrap_or_default().iter().any(|b| b.net == net.to_string()));
    anyhow::anyhow!("{e:#}; {}", timeout_outcome(listed.ok(), expect, net))
}

/// The verdict after a timeout, from the listing (None: the daemon did not answer that
/// either).
fn timeout_outcome(listed: Option<bool>, expect: Expect, net: IpNet) -> String {
    match (listed, expect) {
        (Some(true), Expect::Listed) => {
            format!("asked again: the ban of {net} IS applied (the daemon lists it)")
        }
        (Some(false), Expect::Listed) => {
            format!("asked again: the ban of {net} is NOT applied (the daemon does not list it)")
        }
        (Some(false), Expect::Gone) => {
            format!("asked again: {net} IS unbanned (the daemon no longer lists it)")
        }
        (Some(true), Expect::Gone) => {
            format!("asked again: {net} is NOT unbanned (the daemon still lists it)")
        }
        (None, _) => {
            "unknown whether it was applied (the daemon did not answer again): check `sipwall bans`"
                .to_string()
        }
    }
}

/// `sipwall unban NET...` or `sipwall unban --all`: one request per network, each answered
/// on its own line; every network is tried, and the exit status is 1 when any failed.
pub fn unban(args: UnbanArgs) -> anyhow::Result<ExitCode> {
    let sock = args.socket.path()?;
    let nets = if args.all {
        let listed = client::call_ok(&sock, &Request::Bans)?.bans.unwrap_or_default();
        if listed.is_empty() {
            super::emit("no active bans\n")?;
            return Ok(ExitCode::SUCCESS);
        }
        listed.into_iter().map(|b| b.net).collect()
    } else {
        args.nets
    };
    // Check every argument before asking for any: a typo must not unban half the list.
    let mut checked = Vec::new();
    for n in nets {
        let req = Request::Unban { net: n };
        let Command::Unban(net) = parse_request(&serde_json::to_vec(&req)?)? else {
            unreachable!("an unban request parses as an unban")
        };
        checked.push((req, net));
    }
    let mut failed = 0usize;
    for (req, net) in checked {
        match client::call_ok(&sock, &req).map_err(|e| after_timeout(e, &sock, net, Expect::Gone)) {
            Ok(r) => super::emit(&(r.message.unwrap_or_default() + "\n"))?,
            Err(e) if client::daemon_absent(&e) => return Err(e),
            Err(e) => {
                failed += 1;
                eprintln!("sipwall: {net}: {e:#}");
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_says_whether_the_ban_was_applied() {
        let net: IpNet = "203.0.113.9/32".parse().unwrap();
        assert!(timeout_outcome(Some(true), Expect::Listed, net).contains("IS applied"));
        assert!(timeout_outcome(Some(false), Expect::Listed, net).contains("is NOT applied"));
        assert!(timeout_outcome(Some(false), Expect::Gone, net).contains("IS unbanned"));
        assert!(timeout_outcome(None, Expect::Listed, net).contains("check `sipwall bans`"));
        // only a timeout asks again; a refusal passes unchanged
        let refused = after_timeout(
            anyhow::anyhow!("refused"),
            Path::new("/nonexistent"),
            net,
            Expect::Listed,
        );
        assert_eq!(refused.to_string(), "refused");
        let timeout = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::WouldBlock))
            .context("no answer from the daemon within 15 s");
        let e =
            format!("{:#}", after_timeout(timeout, Path::new("/nonexistent"), net, Expect::Listed));
        assert!(
            e.starts_with("no answer from the daemon within 15 s") && e.contains("unknown"),
            "{e}"
        );
    }
}
