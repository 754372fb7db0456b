//! `sipwall ban` and `sipwall unban`: ask the running daemon, after the same checks it makes.
use std::process::ExitCode;

use super::SocketArgs;
use crate::client;
use crate::protocol::{parse_request, Request};

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
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// `sipwall unban`.
#[derive(Debug, clap::Args)]
pub struct UnbanArgs {
    /// The banned address or network, exactly as `sipwall bans` shows it.
    pub net: String,
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// `sipwall ban`.
pub fn ban(args: BanArgs) -> anyhow::Result<ExitCode> {
    let secs = crate::time::parse_duration(&args.duration)?.as_secs();
    let req = Request::Ban { net: args.net, secs, reason: args.reason };
    // Check locally first: the same checks the daemon makes, with the same messages.
    parse_request(&serde_json::to_vec(&req)?)?;
    let r = client::call_ok(&args.socket.path()?, &req)?;
    println!("{}", r.message.unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

/// `sipwall unban`.
pub fn unban(args: UnbanArgs) -> anyhow::Result<ExitCode> {
    let req = Request::Unban { net: args.net };
    parse_request(&serde_json::to_vec(&req)?)?;
    let r = client::call_ok(&args.socket.path()?, &req)?;
    println!("{}", r.message.unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}
