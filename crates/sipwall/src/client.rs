//! The socket client of the control protocol ([`crate::protocol`]): connect to the running
//! daemon's Unix socket, send one request, read one response, all within fixed timeouts.
//! The operator commands (`commands/`) use it; the daemon never does.
use std::io::BufReader;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use std::os::unix::net::UnixStream;

use crate::protocol::{read_response_line, write_line, Request, Response};

/// Longest wait for the daemon's answer (it applies a ban to the kernel and the store first).
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait to hand the request over.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Send one request, read one response (whether it says ok or not).
pub fn call(path: &Path, req: &Request) -> anyhow::Result<Response> {
    let mut s = UnixStream::connect(path).with_context(|| {
        format!("connecting to {} (is `sipwall run` running? see --socket)", path.display())
    })?;
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    s.set_write_timeout(Some(WRITE_TIMEOUT))?;
    // A daemon that refuses this peer answers before reading and closes, so the write may
    // fail (EPIPE) with the refusal already waiting to be read: read it before giving up.
    let sent = write_line(&mut s, req);
    let read = read_response_line(&mut BufReader::new(s));
    let resp = match read {
        Ok(resp) if !resp.is_empty() => resp,
        read => {
            sent.context("sending the request")?;
            read.with_context(|| {
                format!("no answer from the daemon within {} s", READ_TIMEOUT.as_secs())
            })?;
            anyhow::bail!("the daemon closed the connection without an answer");
        }
    };
    serde_json::from_slice(&resp).context("the daemon's answer is not a response line")
}

/// [`call`], with a refusal (`ok: false`) turned into an error carrying the daemon's words.
pub fn call_ok(path: &Path, req: &Request) -> anyhow::Result<Response> {
    let r = call(path, req)?;
    if !r.ok {
        anyhow::bail!("{}", r.error.as_deref().unwrap_or("refused"));
    }
    Ok(r)
}

/// True when the daemon took the connection but did not answer in time (the request may
/// have been carried out all the same: ask again, see `commands::ban`).
pub fn timed_out(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        })
    })
}

/// True when nobody listens at the socket path (no file, or nobody accepting): the daemon is
/// not running. A refusal, a timeout or a permission error is not that.
pub fn daemon_absent(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            )
        })
    })
}
