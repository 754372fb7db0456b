//! The control protocol: the one model of what an operator may ask the running daemon and
//! what it answers, shared by the socket client (`client.rs`) and the daemon's socket
//! server (`daemon::control_server`). Transport-free: serde types, their checks, and reading
//! or writing ONE bounded line on a stream somebody else opened; no sockets, no clap, no
//! formatting for people. A later transport (HTTP) serves the same model.
//!
//! PROTOCOL: over the Unix socket `[enforce] control_socket` (mode 0600: root only), the
//! client sends ONE JSON request line and reads ONE JSON response line, then both close.
//! * requests: `{"cmd":"ban","net":"203.0.113.9/32","secs":600,"reason":"text"}`,
//!   `{"cmd":"unban","net":"203.0.113.9"}`, `{"cmd":"bans"}`; unknown fields are errors;
//! * responses: `{"ok":true,"message":...,"bans":[...]}` or `{"ok":false,"error":"..."}`.
//!
//! Limits (so a stuck or hostile client cannot wedge the daemon): a request is at most
//! [`MAX_REQUEST`] bytes, must arrive whole within the server's deadline, and is checked here
//! ([`parse_request`]) before the engine is touched: the network must parse and be canonical
//! (no host bits set), the duration be
//! 1 s ..= [`MAX_BAN_SECS`], the reason at most [`MAX_REASON`] characters without control
//! characters. A response is read up to [`MAX_RESPONSE`] bytes.
use std::io::{BufRead, Read as _, Write};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Largest request line accepted, newline included.
pub const MAX_REQUEST: usize = 4096;
/// Longest manual ban: one year.
pub const MAX_BAN_SECS: u64 = 366 * 86_400;
/// Longest ban reason, in characters.
pub const MAX_REASON: usize = 256;
/// Largest response a client reads (a full ban table of 100k bans fits).
/// Largest response a client reads (a full ban table of 100k bans fits).
pub const MAX_RESPONSE: u64 = 64 << 20;

/// A request line as sent on the socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Ban `net` (an address or CIDR) for `secs` seconds.
    Ban {
        /// Address or network.
        net: String,
        /// Duration in seconds.
        secs: u64,
        /// Why (shown in `sipwall bans` and the log).
        #[serde(default)]
        reason: String,
    },
    /// Lift the ban of exactly `net`.
    Unban {
        /// Address or network.
        net: String,
    },
    /// List active bans.
    Bans,
}

/// A request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Manual ban.
    Ban {
        /// Network (host bits cleared).
        net: IpNet,
        /// How long.
        duration: Duration,
        /// Why.
        reason: String,
    },
    /// Lift a ban.
    Unban(IpNet),
    /// List bans.
    Bans,
}

/// One active ban as shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanView {
    /// Network.
    pub net: String,
    /// Start, ms since the epoch.
    pub since_ms: u64,
    /// End, ms since the epoch.
    pub until_ms: u64,
    /// How many times this network was banned (escalation).
    pub count: u32,
    /// Rule (`manual` for operator bans).
    pub rule: String,
    /// Reason.
    pub reason: String,
    /// detection, manual, aggregate or restored.
    pub origin: String,
    /// True once the ban is written to the store (it survives a crash or restart); false
    /// while its store commit is pending (the kernel may already drop the source) or when the
    /// daemon runs without a store. Absent in older answers: durable.
    #[serde(default = "durable_by_default")]
    pub durable: bool,
}

fn durable_by_default() -> bool {
    true
}

impl BanView {
    /// From an engine ban.
    pub fn of(b: &sipwall_engine::Ban) -> BanView {
        BanView {
            net: b.net.to_string(),
            since_ms: b.since.as_millis(),
            until_ms: b.until.as_millis(),
            count: b.count,
            rule: b.rule.clone(),
            reason: b.reason.clone(),
            origin: serde_json::to_value(b.origin)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            durable: true,
        }
    }
}

/// The response line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Success.
    pub ok: bool,
    /// What went wrong (when `!ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What was done (when `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Bans concerned: the new ban, or the listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bans: Option<Vec<BanView>>,
    /// With a listing: the state store's condition when it is not the normal one, e.g.
    /// `unavailable (in memory): ...` when the daemon could not open it and runs without
    /// durable bans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

impl Response {
    /// A failure.
    pub fn error(e: impl std::fmt::Display) -> Response {
        Response { ok: false, error: Some(e.to_string()), ..Response::default() }
    }
    /// A success.
    pub fn done(message: impl Into<String>, bans: Option<Vec<BanView>>) -> Response {
        Response { ok: true, message: Some(message.into()), bans, ..Response::default() }
    }
}

/// Read one request line of at most [`MAX_REQUEST`] bytes (the newline may be missing if the
/// client closed its side). Errors on a longer line, an empty request, or the read timeout.
pub fn read_request(r: &mut impl BufRead) -> anyhow::Result<Vec<u8>> {
    let mut line = Vec::with_capacity(256);
    r.take(MAX_REQUEST as u64 + 1).read_until(b'\n', &mut line).map_err(|e| {
        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
            anyhow::anyhow!("request not received in time")
        } else {
            anyhow::anyhow!("reading the request: {e}")
        }
    })?;
    anyhow::ensure!(line.len() <= MAX_REQUEST, "request longer than {MAX_REQUEST} bytes");
    while line.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
        line.pop();
    }
    anyhow::ensure!(!line.is_empty(), "empty request");
    Ok(line)
}

/// Parse an address (`203.0.113.9`, a host net) or a network (`203.0.113.0/24`). A network
/// with host bits set (`198.51.100.7/16`) is refused with its canonical form as a hint: it
/// is most likely a typo, and silently banning `198.51.0.0/16` bans 65,536 addresses.
pub fn parse_net(s: &str) -> anyhow::Result<IpNet> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        anyhow::ensure!(
            n == n.trunc(),
            "'{s}' has host bits set: did you mean {} (the whole network) or {} (the address alone)?",
            n.trunc(),
            n.addr()
        );
        return Ok(n);
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| anyhow::anyhow!("'{s}' is not an IP address or network"))
}

/// Parse and check a request line.
pub fn parse_request(line: &[u8]) -> anyhow::Result<Command> {
    anyhow::ensure!(line.len() <= MAX_REQUEST, "request longer than {MAX_REQUEST} bytes");
    let req: Request =
        serde_json::from_slice(line).map_err(|e| anyhow::anyhow!("bad request: {e}"))?;
    Ok(match req {
        Request::Ban { net, secs, reason } => {
            anyhow::ensure!(
                (1..=MAX_BAN_SECS).contains(&secs),
                "ban duration {secs} s is not within 1 s ..= {MAX_BAN_SECS} s"
            );
            anyhow::ensure!(
                reason.chars().count() <= MAX_REASON,
                "reason longer than {MAX_REASON} characters"
            );
            anyhow::ensure!(
                !reason.chars().any(char::is_control),
                "reason holds control characters"
            );
            // The daemon appends who asked ("manual ban by uid 0 (pid 1234)"), also when empty.
            let reason = reason.trim().to_string();
            Command::Ban { net: parse_net(&net)?, duration: Duration::from_secs(secs), reason }
        }
        Request::Unban { net } => Command::Unban(parse_net(&net)?),
        Request::Bans => Command::Bans,
    })
}

/// Write `value` as one JSON line (the framing both sides use).
pub fn write_line(w: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    w.write_all(&line)?;
    Ok(())
}

/// Read one response line of at most [`MAX_RESPONSE`] bytes; empty when the peer closed
/// without answering.
pub fn read_response_line(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut resp = Vec::new();
    r.take(MAX_RESPONSE).read_until(b'\n', &mut resp)?;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &str) -> anyhow::Result<Command> {
        parse_request(s.as_bytes())
    }

    #[test]
    fn requests_parse_and_are_checked() {
        assert_eq!(
            cmd(r#"{"cmd":"ban","net":"203.0.113.9","secs":600,"reason":" test "}"#).unwrap(),
            Command::Ban {
                net: "203.0.113.9/32".parse().unwrap(),
                duration: Duration::from_secs(600),
                reason: "test".into()
            }
        );
        // no reason stays empty (the daemon adds the operator)
        assert_eq!(
            cmd(r#"{"cmd":"ban","net":"203.0.113.0/24","secs":1}"#).unwrap(),
            Command::Ban {
                net: "203.0.113.0/24".parse().unwrap(),
                duration: Duration::from_secs(1),
                reason: String::new()
            }
        );
        assert_eq!(
            cmd(r#"{"cmd":"unban","net":"2001:db8::1"}"#).unwrap(),
            Command::Unban("2001:db8::1/128".parse().unwrap())
        );
        assert_eq!(cmd(r#"{"cmd":"bans"}"#).unwrap(), Command::Bans);
        for (bad, why) in [
            (r#"{"cmd":"ban","net":"203.0.113.9","secs":0}"#, "duration"),
            (r#"{"cmd":"ban","net":"203.0.113.9","secs":99999999999}"#, "duration"),
            (r#"{"cmd":"ban","net":"pbx.example.com","secs":60}"#, "not an IP"),
            (r#"{"cmd":"ban","net":"203.0.113.9","secs":60,"reason":"a\nb"}"#, "control"),
            (r#"{"cmd":"ban","net":"203.0.113.9","secs":60,"extra":1}"#, "unknown field"),
            (r#"{"cmd":"ban","net":"203.0.113.9"}"#, "secs"),
            (r#"{"cmd":"flush"}"#, "unknown variant"),
            (r#"{"cmd":"unban","net":"300.1.1.1"}"#, "not an IP"),
            // host bits set: refused with the canonical network and the address as hints
            (
                r#"{"cmd":"ban","net":"198.51.100.7/16","secs":60}"#,
                "'198.51.100.7/16' has host bits set: did you mean 198.51.0.0/16 (the whole network) or 198.51.100.7 (the address alone)?",
            ),
            (r#"{"cmd":"unban","net":"2001:db8::1/32"}"#, "did you mean 2001:db8::/32"),
            ("ban 203.0.113.9", "bad request"),
        ] {
            let e = format!("{:#}", cmd(bad).unwrap_err());
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = format!(
            r#"{{"cmd":"ban","net":"203.0.113.9","secs":60,"reason":"{}"}}"#,
            "x".repeat(MAX_REASON + 1)
        );
        assert!(format!("{:#}", cmd(&long).unwrap_err()).contains("reason longer"));
    }

    #[test]
    fn request_lines_are_bounded() {
        let mut ok = std::io::Cursor::new(b"{\"cmd\":\"bans\"}\r\n{\"cmd\":\"x\"}\n".to_vec());
        assert_eq!(read_request(&mut ok).unwrap(), b"{\"cmd\":\"bans\"}");
        // exactly the limit (newline included) passes; one byte more fails without reading on
        let mut at_limit = vec![b' '; MAX_REQUEST - 1];
        at_limit.push(b'\n');
        assert_eq!(read_request(&mut std::io::Cursor::new(at_limit)).unwrap().len(), 4095);
        let huge = vec![b'x'; 10 * MAX_REQUEST];
        let mut r = std::io::Cursor::new(huge);
        assert!(read_request(&mut r).unwrap_err().to_string().contains("longer than 4096"));
        assert!(r.position() <= MAX_REQUEST as u64 + 1);
        // a client that closes without a line
        assert!(read_request(&mut std::io::Cursor::new(Vec::new()))
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(parse_request(&vec![b' '; MAX_REQUEST + 1]).is_err());
    }

    #[test]
    fn responses_round_trip() {
        let r = Response::error("203.0.113.9/32 is trusted");
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(line, r#"{"ok":false,"error":"203.0.113.9/32 is trusted"}"#);
        assert_eq!(serde_json::from_str::<Response>(&line).unwrap(), r);
        let req = Request::Ban { net: "203.0.113.9".into(), secs: 60, reason: "x".into() };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"cmd":"ban","net":"203.0.113.9","secs":60,"reason":"x"}"#
        );
    }
}
