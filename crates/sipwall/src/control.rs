//! Operator commands (`sipwall ban`, `unban`, `bans`, `decisions`) and the control protocol
//! they speak with the running daemon (`sipwall run`, server side in `daemon::control`).
//!
//! PROTOCOL: over the Unix socket `[enforce] control_socket` (mode 0600: root only), the
//! client sends ONE JSON request line and reads ONE JSON response line, then both close.
//! * requests: `{"cmd":"ban","net":"203.0.113.9/32","secs":600,"reason":"text"}`,
//!   `{"cmd":"unban","net":"203.0.113.9"}`, `{"cmd":"bans"}`; unknown fields are errors;
//! * responses: `{"ok":true,"message":...,"bans":[...]}` or `{"ok":false,"error":"..."}`.
//!
//! Limits (so a stuck or hostile client cannot wedge the daemon): a request is at most
//! [`MAX_REQUEST`] bytes, must arrive within the server's read timeout, and is checked here
//! ([`parse_request`]) before the engine is touched: the network must parse, the duration be
//! 1 s ..= [`MAX_BAN_SECS`], the reason at most [`MAX_REASON`] characters without control
//! characters.
//!
//! The daemon answers only root and its own uid (`SO_PEERCRED`, see `daemon::control`).
//!
//! `sipwall decisions` does not use the socket: it reads the store (`STATE_DIR/sipwall.db`)
//! directly, which works whether or not the daemon runs (the store is SQLite in WAL mode, so
//! reading it beside the running daemon is safe). Decisions appear there once the daemon's
//! ban worker wrote its current batch. `sipwall bans` asks the daemon, and when no daemon
//! listens on the socket (no socket file, or nobody accepting) lists the store's active
//! bans instead, saying so on stderr. Both open the store with
//! [`sipwall_store::Store::open_read_only`]: an offline query never creates, migrates or
//! writes the state file, and a missing one is an error naming its path.
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Default control socket path (`[enforce] control_socket`).
pub const DEFAULT_SOCKET: &str = "/run/sipwall/control.sock";
/// Largest request line accepted, newline included.
pub const MAX_REQUEST: usize = 4096;
/// Longest manual ban: one year.
pub const MAX_BAN_SECS: u64 = 366 * 86_400;
/// Longest ban reason, in characters.
pub const MAX_REASON: usize = 256;
/// Largest response a client reads (a full ban table of 100k bans fits).
const MAX_RESPONSE: u64 = 64 << 20;

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
}

impl Response {
    /// A failure.
    pub fn error(e: impl std::fmt::Display) -> Response {
        Response { ok: false, error: Some(e.to_string()), ..Response::default() }
    }
    /// A success.
    pub fn done(message: impl Into<String>, bans: Option<Vec<BanView>>) -> Response {
        Response { ok: true, message: Some(message.into()), bans, error: None }
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

/// Parse an address (`203.0.113.9`, a host net) or a network (`203.0.113.0/24`).
pub fn parse_net(s: &str) -> anyhow::Result<IpNet> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
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

/// `1h`, `30m`, `45s`, `2d`, `1w` or plain seconds (`3600`).
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 =
        num.parse().map_err(|_| anyhow::anyhow!("'{s}' is not a duration like 1h, 30m, 3600"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => anyhow::bail!("'{s}': unknown unit '{unit}' (s, m, h, d, w)"),
    };
    let secs = n.checked_mul(mult).ok_or_else(|| anyhow::anyhow!("'{s}' is too long"))?;
    anyhow::ensure!(secs >= 1, "'{s}': a ban lasts at least 1 s");
    Ok(Duration::from_secs(secs))
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of ms since the epoch.
pub fn fmt_utc(ms: u64) -> String {
    crate::timefmt::utc_seconds(ms)
}

/// Where the client finds the daemon.
#[derive(Debug, Clone, clap::Args)]
pub struct SocketArgs {
    /// Control socket of the running daemon (default: the config's `enforce.control_socket`,
    /// else /run/sipwall/control.sock).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Config file to take `enforce.control_socket` from.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

impl SocketArgs {
    fn path(&self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.socket {
            return Ok(p.clone());
        }
        match &self.config {
            Some(c) => Ok(crate::config::load(c)?.enforce.control_socket),
            None => Ok(PathBuf::from(DEFAULT_SOCKET)),
        }
    }
}

/// `sipwall ban`.
#[derive(Debug, clap::Args)]
pub struct BanArgs {
    /// Address or network to ban (e.g. 203.0.113.9 or 203.0.113.0/24). Trusted networks are
    /// refused.
    pub net: String,
    /// How long: 1h, 30m, 45s, 2d, 1w or seconds.
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

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Text,
    /// One JSON document.
    Json,
}

/// `sipwall bans`.
#[derive(Debug, clap::Args)]
pub struct BansArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// State directory holding sipwall.db, read (read-only) when no daemon answers (default:
    /// the config's `enforce.state_dir`, else /var/lib/sipwall).
    #[arg(long)]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// `sipwall decisions`.
#[derive(Debug, clap::Args)]
pub struct DecisionsArgs {
    /// How many (newest first).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// State directory holding sipwall.db (default: the config's `enforce.state_dir`, else
    /// /var/lib/sipwall).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Config file to take `enforce.state_dir` from.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Send one request, read one response.
pub fn call(path: &Path, req: &Request) -> anyhow::Result<Response> {
    let mut s = UnixStream::connect(path).with_context(|| {
        format!("connecting to {} (is `sipwall run` running? see --socket)", path.display())
    })?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    // A daemon that refuses this peer answers before reading and closes, so the write may
    // fail (EPIPE) with the refusal already waiting to be read: read it before giving up.
    let sent = s.write_all(&line);
    let mut resp = Vec::new();
    let read = BufReader::new(s).take(MAX_RESPONSE).read_until(b'\n', &mut resp);
    if resp.is_empty() {
        sent.context("sending the request")?;
        read.context("reading the daemon's answer")?;
        anyhow::bail!("the daemon closed the connection without an answer");
    }
    serde_json::from_slice(&resp).context("the daemon's answer is not a response line")
}

fn answer(path: &Path, req: &Request) -> anyhow::Result<Response> {
    let r = call(path, req)?;
    if !r.ok {
        anyhow::bail!("{}", r.error.as_deref().unwrap_or("refused"));
    }
    Ok(r)
}

/// `sipwall ban`.
pub fn ban(args: BanArgs) -> anyhow::Result<ExitCode> {
    let secs = parse_duration(&args.duration)?.as_secs();
    let req = Request::Ban { net: args.net, secs, reason: args.reason };
    // Check locally first: the same checks the daemon makes, with the same messages.
    parse_request(&serde_json::to_vec(&req)?)?;
    let r = answer(&args.socket.path()?, &req)?;
    println!("{}", r.message.unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

/// `sipwall unban`.
pub fn unban(args: UnbanArgs) -> anyhow::Result<ExitCode> {
    let req = Request::Unban { net: args.net };
    parse_request(&serde_json::to_vec(&req)?)?;
    let r = answer(&args.socket.path()?, &req)?;
    println!("{}", r.message.unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

fn left(until_ms: u64, now_ms: u64) -> String {
    let s = until_ms.saturating_sub(now_ms) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

/// The text listing of `sipwall bans`.
pub fn bans_text(bans: &[BanView], now_ms: u64) -> String {
    let mut out = String::new();
    let w = bans.iter().map(|b| b.net.len()).max().unwrap_or(3).max(3);
    out.push_str(&format!(
        "{:<w$}  {:<19}  {:>7}  {:>5}  {:<20}  REASON\n",
        "NET", "UNTIL (UTC)", "LEFT", "COUNT", "RULE"
    ));
    for b in bans {
        out.push_str(&format!(
            "{:<w$}  {:<19}  {:>7}  {:>5}  {:<20}  {}\n",
            b.net,
            fmt_utc(b.until_ms),
            left(b.until_ms, now_ms),
            b.count,
            b.rule,
            b.reason
        ));
    }
    out.push_str(&format!("{} active ban{}\n", bans.len(), if bans.len() == 1 { "" } else { "s" }));
    out
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The store file of `--state`, else the config's `enforce.state_dir`, else the default.
fn store_path(state: &Option<PathBuf>, config: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match (state, config) {
        (Some(d), _) => d.clone(),
        (None, Some(c)) => crate::config::load(c)?.enforce.state_dir,
        (None, None) => crate::config::EnforceConfig::default().state_dir,
    };
    Ok(dir.join("sipwall.db"))
}

/// Open the state store read-only: never creates, migrates or writes it.
fn open_store(db: &Path) -> anyhow::Result<sipwall_store::Store> {
    sipwall_store::Store::open_read_only(db).map_err(|e| {
        if matches!(e, sipwall_store::StoreError::Missing { .. }) {
            anyhow::anyhow!("{e} (see --state)")
        } else {
            e.into()
        }
    })
}

/// True when nobody listens at the socket path (no file, or nobody accepting): the daemon is
/// not running, and the store is the only place that knows the bans. A refusal, a timeout
/// or a permission error is not that: it is reported as it is.
fn daemon_absent(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            )
        })
    })
}

/// The active bans of the store, as the daemon would list them.
fn stored_bans(db: &Path) -> anyhow::Result<Vec<BanView>> {
    let store = open_store(db)?;
    let now = sipwall_engine::Timestamp::from_millis(now_ms());
    let mut bans: Vec<BanView> = store.load_active_bans(now)?.iter().map(BanView::of).collect();
    bans.sort_by(|a, b| a.until_ms.cmp(&b.until_ms).then_with(|| a.net.cmp(&b.net)));
    Ok(bans)
}

/// `sipwall bans`: from the daemon, or from the store (read-only) when no daemon runs.
pub fn bans(args: BansArgs) -> anyhow::Result<ExitCode> {
    let sock = args.socket.path()?;
    let bans = match call(&sock, &Request::Bans) {
        Ok(r) if r.ok => r.bans.unwrap_or_default(),
        Ok(r) => anyhow::bail!("{}", r.error.as_deref().unwrap_or("refused")),
        Err(e) if daemon_absent(&e) => {
            let db = store_path(&args.state, &args.socket.config)?;
            let bans = stored_bans(&db).map_err(|se| {
                anyhow::anyhow!("{e:#}; and no stored bans to list instead: {se:#}")
            })?;
            eprintln!(
                "sipwall: no daemon answers at {}; bans stored in {} (read-only)",
                sock.display(),
                db.display()
            );
            bans
        }
        Err(e) => return Err(e),
    };
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"count": bans.len(), "bans": bans}))?
        ),
        Format::Text => print!("{}", bans_text(&bans, now_ms())),
    }
    Ok(ExitCode::SUCCESS)
}

/// `sipwall decisions`: read the store directly.
pub fn decisions(args: DecisionsArgs) -> anyhow::Result<ExitCode> {
    let db = store_path(&args.state, &args.config)?;
    // Read-only: never creates an empty store by looking at a wrong directory.
    let rows = open_store(&db)?.recent_decisions(args.limit)?;
    match args.format {
        Format::Json => {
            let v: Vec<_> = rows
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "at_ms": d.at.as_millis(),
                        "src": d.src.to_string(),
                        "verdict": d.verdict,
                        "rule": d.rule,
                        "summary": d.summary,
                        "evidence": d.evidence,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Text => {
            for d in &rows {
                let verdict = match d.verdict {
                    sipwall_engine::Verdict::Accept => "accept".to_string(),
                    sipwall_engine::Verdict::Drop => "drop".to_string(),
                    sipwall_engine::Verdict::Reject(c) => format!("reject {c}"),
                };
                println!(
                    "{}  {}  {}  {}  {}",
                    fmt_utc(d.at.as_millis()),
                    d.src,
                    verdict,
                    d.rule,
                    d.summary
                );
            }
            println!(
                "{} decision{} (newest first)",
                rows.len(),
                if rows.len() == 1 { "" } else { "s" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
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
        // host bits cleared; no reason stays empty (the daemon adds the operator)
        assert_eq!(
            cmd(r#"{"cmd":"ban","net":"203.0.113.77/24","secs":1}"#).unwrap(),
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

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("3600").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "h", "1x", "0", "-5", "1.5h", "99999999999999999999"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listing_reads_well() {
        let b = BanView {
            net: "203.0.113.9/32".into(),
            since_ms: 0,
            until_ms: 600_000,
            count: 2,
            rule: "manual".into(),
            reason: "test".into(),
            origin: "manual".into(),
        };
        let t = bans_text(&[b], 1000);
        assert!(t.contains("203.0.113.9/32  1970-01-01 00:10:00    9m59s      2  manual"), "{t}");
        assert!(t.ends_with("1 active ban\n"), "{t}");
        assert_eq!(fmt_utc(1_764_167_400_000), "2025-11-26 14:30:00");
    }
}
