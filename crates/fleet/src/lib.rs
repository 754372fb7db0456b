//! sipwall's fleet adapter: bans shared by many sipwall nodes through one Redis 7 (or Valkey)
//! server. It knows Redis and the wire form of a change; it knows nothing of the engine, the
//! kernel or the store: the daemon hands it the bans to publish and takes what it receives.
//!
//! Layout in Redis (`P` is `key_prefix`, default `sipwall`):
//! * `P:bans`, a hash: the CURRENT fleet bans, field = network (`203.0.113.9/32`), value = the
//!   signed entry of its latest ban ([`entry`]) with its absolute end. An unban deletes the
//!   field. Ended bans are pruned by the writers (compare-and-delete, so a ban renewed
//!   meanwhile by another node is never lost).
//! * `P:changes`, a stream: every ban and unban, `XADD P:changes MAXLEN ~ N * m ENTRY`; each
//!   node reads it with a blocking `XREAD` from the last id it saw.
//!
//! CONTRACTS
//! * Resume: a reader that lost its connection goes on from the last entry it read, so every
//!   change made meanwhile arrives as a change (an unban of this node's own ban too, which a
//!   resync cannot carry), provided the stream still holds that entry (then nothing after it
//!   was trimmed: trimming takes the oldest first) and it was away less than
//!   [`RESUME_WITHIN`] (unbans older than [`MAX_UNBAN_AGE`] are ignored).
//! * Resync: a node that joins, cannot resume, or finds that entries after its last id were
//!   trimmed away (`XINFO STREAM` entries-added minus length past what it read) reads the
//!   whole state and hands it over as [`Incoming::Resync`]: the receiver makes its fleet bans
//!   equal it (its own bans excepted: see the daemon's fleet module). The
//!   stream's tip is read BEFORE the state, so no change between the two is missed (one may
//!   arrive twice; every change is idempotent).
//! * No loops: a node ignores the changes it published itself ([`Settings::node_id`]), in the
//!   stream and in a resync alike, and the
//!   daemon publishes only bans it made (never one it received).
//! * Poisoning: with a key ([`Settings::hmac_key`]) unsigned and badly signed entries are
//!   ignored and counted; a ban wider than [`Settings::max_prefix_v4`]/`v6` is ignored; an
//!   origin publishing more than [`Settings::max_bans_per_origin_per_minute`] bans in a minute
//!   has the rest ignored (state tracked for at most [`MAX_ORIGINS`] origins).
//! * Redis down: nothing here blocks the caller. [`Publisher::publish`] is a `try_send`
//!   into a bounded channel; the writer keeps what it could not write in a bounded outage
//!   queue ([`Settings::outage_queue`]) and writes it, oldest first, once connected again;
//!   beyond the bound the oldest changes are dropped and counted. The reader retries with
//!   backoff, then resumes or resyncs.
//! * Time: bans end at an absolute time (ms since the Unix epoch), so nodes only need roughly
//!   right clocks: a node whose clock is S seconds off ends a ban S seconds early or late.
//!   Unbans older than [`MAX_UNBAN_AGE`] are ignored (a replayed old unban cannot lift a newer
//!   ban; a node further behind than that resyncs from the state instead).
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use redis::Value;

pub mod entry;

pub use entry::{Change, FleetBan};

/// Most origins whose ban rate is tracked; past it the least recently seen is forgotten.
pub const MAX_ORIGINS: usize = 1024;
/// Unbans older than this are ignored (see the crate docs, "Time").
pub const MAX_UNBAN_AGE: Duration = Duration::from_secs(600);
/// A reader away longer than this resyncs instead of resuming: the unbans made meanwhile may
/// be older than [`MAX_UNBAN_AGE`] by the time it reads them.
pub const RESUME_WITHIN: Duration = Duration::from_secs(MAX_UNBAN_AGE.as_secs() / 2);
/// Stream entries read per `XREAD`.
const READ_COUNT: usize = 512;
/// How long one `XREAD` blocks in the server (the reader looks at its stop flag between two).
const BLOCK_MS: u64 = 500;
/// State entries per `HSCAN` step of a resync.
const SCAN_COUNT: usize = 1000;
/// Changes the writer takes from its channel per pipeline.
const WRITE_BATCH: usize = 256;
/// How often a writer prunes ended bans from the state hash.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why a fleet operation failed. Variants are named after the operation and keep their
/// context (URL without password, network, node).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The URL or the connection settings are unusable.
    #[error("fleet redis_url {url}: {why}")]
    OpenClient {
        /// The URL as configured, password hidden.
        url: String,
        /// Why.
        why: String,
    },
    /// Connecting (TCP, AUTH, PING) failed.
    #[error("connecting to the fleet's Redis at {url}: {source}")]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// The client's error.
        source: redis::RedisError,
    },
    /// A command failed (the connection is dropped and made again).
    #[error("fleet Redis command {command}: {source}")]
    Command {
        /// The command.
        command: &'static str,
        /// The client's error.
        source: redis::RedisError,
    },
    /// The server answered something this client does not understand.
    #[error("fleet Redis command {command}: unexpected reply ({what})")]
    Reply {
        /// The command.
        command: &'static str,
        /// What was wrong.
        what: String,
    },
    /// A change could not be encoded.
    #[error("encoding the fleet change of {net}: {why}")]
    EncodeEntry {
        /// Its network.
        net: IpNet,
        /// Why.
        why: String,
    },
    /// An entry read from Redis is malformed.
    #[error("malformed fleet entry: {why}")]
    DecodeEntry {
        /// What was wrong.
        why: String,
    },
    /// An entry without a signature while a key is set.
    #[error("unsigned fleet entry (a key is set: only signed entries are taken)")]
    Unsigned,
    /// An entry whose signature does not match the fleet key.
    #[error("fleet entry with a bad signature (not written with the fleet key)")]
    BadSignature,
    /// The first resync did not finish in time.
    #[error("first fleet sync from {url}: no answer within {ms} ms")]
    SyncTimeout {
        /// The URL, password hidden.
        url: String,
        /// The time allowed.
        ms: u128,
    },
    /// A thread could not be started.
    #[error("starting the fleet {what} thread: {source}")]
    SpawnThread {
        /// Which one.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// How to reach the fleet and what to accept from it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `redis://host:port/db`, `rediss://host:port/db` (TLS, see [`Settings::tls`]) or
    /// `redis+unix:///path`.
    pub redis_url: String,
    /// Password (read by the daemon from `password_file`), overriding one in the URL.
    pub password: Option<String>,
    /// Username for Redis ACLs (with `password`).
    pub username: Option<String>,
    /// This node's id ([`entry::valid_node_id`]).
    pub node_id: String,
    /// Prefix of the two keys.
    pub key_prefix: String,
    /// Shared HMAC key; None = entries unsigned and any well-formed entry taken.
    pub hmac_key: Option<Vec<u8>>,
    /// Widest IPv4 network a fleet ban may cover (a prefix length).
    pub max_prefix_v4: u8,
    /// Widest IPv6 network a fleet ban may cover.
    pub max_prefix_v6: u8,
    /// Bans taken from one origin per minute, at most.
    pub max_bans_per_origin_per_minute: u32,
    /// Changes kept while Redis is unreachable.
    pub outage_queue: usize,
    /// Approximate length the stream is trimmed to.
    pub stream_max_len: u64,
    /// Connect and command timeout.
    pub timeout: Duration,
    /// TLS material for a `rediss://` URL (PEM); empty = the built-in web PKI roots and no
    /// client certificate. Refused with a `redis://` URL (it would be silently unused).
    pub tls: TlsFiles,
}

/// PEM contents for a TLS link to Redis (read by the caller from `[fleet] tls_*_file`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate(s) the server's certificate must chain to, instead of the web PKI roots.
    pub ca: Option<Vec<u8>>,
    /// Client certificate chain and its private key, for servers that require client
    /// certificates (`tls-auth-clients yes`).
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsFiles {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.client.is_none()
    }
}

impl std::fmt::Debug for TlsFiles {
    // The private key is never printed; the certificates are public but long.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("ca", &self.ca.as_ref().map(|_| "<pem>"))
            .field("client", &self.client.as_ref().map(|_| "<pem, key hidden>"))
            .finish()
    }
}

impl Settings {
    fn bans_key(&self) -> String {
        format!("{}:bans", self.key_prefix)
    }
    fn changes_key(&self) -> String {
        format!("{}:changes", self.key_prefix)
    }
    /// The URL with any password replaced by `***`, for logs and errors.
    pub fn url_for_log(&self) -> String {
        url_for_log(&self.redis_url)
    }
    /// True when `net` is no wider than the cap of its family.
    pub fn width_ok(&self, net: &IpNet) -> bool {
        match net {
            IpNet::V4(n) => n.prefix_len() >= self.max_prefix_v4,
            IpNet::V6(n) => n.prefix_len() >= self.max_prefix_v6,
        }
    }
    fn client(&self) -> Result<redis::Client, FleetError> {
        use redis::IntoConnectionInfo as _;
        let err = |why: String| FleetError::OpenClient { url: self.url_for_log(), why };
        let mut info =
            self.redis_url.as_str().into_connection_info().map_err(|e| err(e.to_string()))?;
        if self.password.is_some() || self.username.is_some() {
            let mut r = info.redis_settings().clone();
            if let Some(p) = &self.password {
                r = r.set_password(p);
            }
            if let Some(u) = &self.username {
                r = r.set_username(u);
            }
            info = info.set_redis_settings(r);
        }
        let is_tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
        if !is_tls {
            if !self.tls.is_empty() {
                return Err(err("TLS files are set but the URL is not rediss://".into()));
            }
            return redis::Client::open(info).map_err(|e| err(e.to_string()));
        }
        if let Some(ca) = &self.tls.ca {
            use rustls::pki_types::{pem::PemObject as _, CertificateDer};
            // The client would take an empty root store and then trust no server at all.
            let n = CertificateDer::pem_slice_iter(ca).filter(Result::is_ok).count();
            if n == 0 {
                return Err(err("the TLS CA holds no PEM certificate".into()));
            }
        }
        let certs = redis::TlsCertificates {
            client_tls: self.tls.client.as_ref().map(|(cert, key)| redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            root_cert: self.tls.ca.clone(),
        };
        redis::Client::build_with_tls(info, certs).map_err(|e| err(e.to_string()))
    }
}

/// `url` with any password replaced by `***`, for logs, errors and `check-config`.
pub fn url_for_log(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_user, host)) if scheme_user.contains(':') => {
            let (scheme, rest) = scheme_user.split_once("://").unwrap_or(("", scheme_user));
            let user = rest.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}

/// Counters and connection state, shared by the fleet threads and read by `sipwall status`.
#[derive(Debug, Default)]
pub struct Stats {
    /// The reader holds a working connection.
    pub connected: AtomicBool,
    /// When the last full resync finished (ms since the epoch; 0 = never).
    pub last_sync_ms: AtomicU64,
    /// Entries in the last resync.
    pub last_sync_bans: AtomicU64,
    /// Full resyncs done.
    pub resyncs: AtomicU64,
    /// Age of the last change received when it was read (its stream id's time to now, ms).
    pub lag_ms: AtomicU64,
    /// Changes received from other nodes and handed over.
    pub received: AtomicU64,
    /// Changes published.
    pub published: AtomicU64,
    /// Changes waiting in the outage queue now.
    pub queued: AtomicU64,
    /// Changes dropped: outage queue or channel full.
    pub dropped: AtomicU64,
    /// Entries ignored: unsigned or bad signature while a key is set.
    pub rejected_signature: AtomicU64,
    /// Entries ignored: malformed.
    pub rejected_malformed: AtomicU64,
    /// Bans ignored: wider than the cap.
    pub rejected_width: AtomicU64,
    /// Bans ignored: their origin's rate limit was exceeded.
    pub rejected_rate: AtomicU64,
    /// Bans refused by this node's policy (counted by the receiver: protected networks).
    pub refused_local: AtomicU64,
    /// The last connection error (cleared on success).
    pub last_error: Mutex<Option<String>>,
}

impl Stats {
    /// Set (or clear) the last connection error.
    pub fn set_error(&self, e: Option<String>) {
        *self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = e;
    }
    /// The last connection error, if the fleet is not connected because of one.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// What the reader hands to the daemon.
#[derive(Debug)]
pub enum Incoming {
    /// One change from another node, already checked.
    Change(Change),
    /// The whole current state (after a join, a reconnect or a gap): the receiver's fleet bans
    /// must become exactly these (those already ended are left out).
    Resync(Vec<FleetBan>),
}

/// Where the reader resumes: the stream id after which it reads, and that entry's number in
/// the stream (`entries-added` counts every entry ever added), to notice trimmed entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    id: String,
    number: u64,
}

/// The stream's `XINFO STREAM` fields this reader uses: (last id, entries ever added,
/// entries kept); a missing stream is empty.
fn stream_info(con: &mut redis::Connection, key: &str) -> Result<(String, u64, u64), FleetError> {
    let info: Value = match redis::cmd("XINFO").arg("STREAM").arg(key).query(con) {
        Ok(v) => v,
        Err(e) if e.to_string().contains("no such key") => return Ok(("0-0".into(), 0, 0)),
        Err(source) => return Err(FleetError::Command { command: "XINFO STREAM", source }),
    };
    let pairs: Vec<&Value> = match &info {
        Value::Map(m) => m.iter().flat_map(|(k, v)| [k, v]).collect(),
        other => items(other).iter().collect(),
    };
    let field = |name: &[u8]| {
        pairs.chunks(2).find(|p| bulk(p[0]) == Some(name)).and_then(|p| p.get(1).copied())
    };
    let num = |name: &[u8]| match field(name) {
        Some(Value::Int(n)) => Some(*n as u64),
        Some(v) => bulk(v).and_then(|b| std::str::from_utf8(b).ok()?.parse().ok()),
        None => None,
    };
    let last =
        field(b"last-generated-id").and_then(bulk).map(|b| String::from_utf8_lossy(b).into_owned());
    match (last, num(b"entries-added"), num(b"length")) {
        (Some(l), Some(a), Some(n)) => Ok((l, a, n)),
        _ => Err(FleetError::Reply {
            command: "XINFO STREAM",
            what: "no last-generated-id, entries-added or length (Redis 7 or Valkey needed)".into(),
        }),
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn connect(s: &Settings, client: &redis::Client) -> Result<redis::Connection, FleetError> {
    let url = s.url_for_log();
    let c = client
        .get_connection_with_timeout(s.timeout)
        .map_err(|source| FleetError::Connect { url: url.clone(), source })?;
    c.set_write_timeout(Some(s.timeout))
        .and_then(|()| c.set_read_timeout(Some(s.timeout)))
        .map_err(|source| FleetError::Connect { url, source })?;
    Ok(c)
}

fn bulk(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => &[],
    }
}

/// A stream id `ms-seq` as a pair (for comparisons); None when malformed.
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Filters applied to what is read: own changes, signatures, width, rate per origin.
struct Gate {
    settings: Settings,
    stats: Arc<Stats>,
    /// origin -> (minute, bans taken in it, last seen for eviction)
    rate: HashMap<String, (u64, u32, u64)>,
    seen: u64,
}

impl Gate {
    /// One entry, from the stream (`stream_ms`: the time of its stream id) or from a resync
    /// (None: no rate limit, the state holds one entry per network).
    fn read(&mut self, raw: &[u8], stream_ms: Option<u64>) -> Option<Change> {
        let key = self.settings.hmac_key.as_deref();
        let change = match entry::decode(raw, key) {
            Ok(c) => c,
            Err(FleetError::Unsigned | FleetError::BadSignature) => {
                self.stats.rejected_signature.fetch_add(1, Ordering::Relaxed);
                log::warn!("fleet: ignored an entry that is not signed with the fleet key");
                return None;
            }
            Err(e) => {
                self.stats.rejected_malformed.fetch_add(1, Ordering::Relaxed);
                log::warn!("fleet: ignored an entry: {e}");
                return None;
            }
        };
        if change.origin() == self.settings.node_id {
            // Our own: applied here already. Taken back from a resync, a ban this node lifted
            // while its unban still waited in the outage queue would come back as received.
            return None;
        }
        let net = change.net();
        match &change {
            Change::Ban(b) => {
                if !self.settings.width_ok(&net) {
                    self.stats.rejected_width.fetch_add(1, Ordering::Relaxed);
                    log::warn!(
                        "fleet: ignored the ban of {net} from node {}: wider than /{} (IPv4) \
                         or /{} (IPv6), fleet.max_prefix_v4/v6",
                        b.origin,
                        self.settings.max_prefix_v4,
                        self.settings.max_prefix_v6
                    );
                    return None;
                }
                // A stream id in the future (a hostile writer may set ids) counts now, so it
                // cannot spread its bans over minutes that have not come.
                let minute = |ms: u64| ms.min(now_ms()) / 60_000;
                if stream_ms.is_some_and(|ms| !self.rate_ok(&b.origin, minute(ms))) {
                    self.stats.rejected_rate.fetch_add(1, Ordering::Relaxed);
                    log::warn!(
                        "fleet: ignored the ban of {net} from node {}: more than {} bans from \
                         it this minute (fleet.max_bans_per_origin_per_minute)",
                        b.origin,
                        self.settings.max_bans_per_origin_per_minute
                    );
                    return None;
                }
            }
            Change::Unban { at_ms, origin, .. } => {
                if now_ms().saturating_sub(*at_ms) > MAX_UNBAN_AGE.as_millis() as u64 {
                    log::info!("fleet: ignored an old unban of {net} from node {origin}");
                    return None;
                }
            }
        }
        Some(change)
    }

    /// Counted by the minute the entry was added to the stream (its id's time, set by Redis),
    /// not the minute it is read: a reader resuming after an outage reads minutes' worth at
    /// once, and must not drop them as one minute's excess.
    fn rate_ok(&mut self, origin: &str, minute: u64) -> bool {
        self.seen += 1;
        if !self.rate.contains_key(origin) && self.rate.len() >= MAX_ORIGINS {
            if let Some(oldest) = self.rate.iter().min_by_key(|(_, v)| v.2).map(|(k, _)| k.clone())
            {
                self.rate.remove(&oldest);
            }
        }
        let seen = self.seen;
        let e = self.rate.entry(origin.to_string()).or_insert((minute, 0, seen));
        if e.0 != minute {
            *e = (minute, 0, seen);
        }
        e.2 = seen;
        e.1 += 1;
        e.1 <= self.settings.max_bans_per_origin_per_minute
    }
}

/// Read the stream's tip, then the whole state: (bans still running, cursor to read from).
fn resync(
    con: &mut redis::Connection,
    s: &Settings,
    gate: &mut Gate,
    deadline: Option<Instant>,
) -> Result<(Vec<FleetBan>, Cursor), FleetError> {
    // The tip first: a change made while the state is read is then read again from the
    // stream (changes are idempotent), never missed.
    let (id, number, _) = stream_info(con, &s.changes_key())?;
    let now = now_ms();
    let mut bans = Vec::new();
    let mut scan = "0".to_string();
    // Bounded: one step per SCAN_COUNT fields, at most the hash's size / 1 + a few.
    for _ in 0..100_000 {
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Err(FleetError::SyncTimeout { url: s.url_for_log(), ms: 0 });
        }
        let step: Value = redis::cmd("HSCAN")
            .arg(s.bans_key())
            .arg(&scan)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query(con)
            .map_err(|source| FleetError::Command { command: "HSCAN", source })?;
        let parts = items(&step);
        let (Some(next), Some(fields)) = (parts.first().and_then(bulk), parts.get(1)) else {
            return Err(FleetError::Reply { command: "HSCAN", what: "no cursor".into() });
        };
        for pair in items(fields).chunks(2) {
            if let Some(Change::Ban(b)) =
                pair.get(1).and_then(bulk).and_then(|v| gate.read(v, None))
            {
                if b.until_ms > now {
                    bans.push(b);
                }
            }
        }
        scan = String::from_utf8_lossy(next).into_owned();
        if scan == "0" {
            break;
        }
    }
    gate.stats.resyncs.fetch_add(1, Ordering::Relaxed);
    gate.stats.last_sync_ms.store(now_ms(), Ordering::Relaxed);
    gate.stats.last_sync_bans.store(bans.len() as u64, Ordering::Relaxed);
    Ok((bans, Cursor { id, number }))
}

/// The first resync, done by the daemon at start before its queues open, bounded in all by
/// `deadline` (connecting, reading the tip, every step of the state). Returns the current fleet bans and where the reader goes on from.
pub fn first_sync(
    s: &Settings,
    stats: &Arc<Stats>,
    deadline: Duration,
) -> Result<(Vec<FleetBan>, Cursor), FleetError> {
    let client = s.client()?;
    let t0 = Instant::now();
    let mut limited = s.clone();
    limited.timeout = deadline.min(s.timeout.max(Duration::from_millis(100)));
    let mut con = connect(&limited, &client)?;
    let mut gate =
        Gate { settings: s.clone(), stats: stats.clone(), rate: HashMap::new(), seen: 0 };
    let r = resync(&mut con, s, &mut gate, Some(t0 + deadline));
    if r.is_err() && t0.elapsed() >= deadline {
        return Err(FleetError::SyncTimeout { url: s.url_for_log(), ms: deadline.as_millis() });
    }
    r
}

/// Hands changes to the writer without ever waiting.
#[derive(Debug, Clone)]
pub struct Publisher {
    tx: SyncSender<Change>,
    stats: Arc<Stats>,
}

impl Publisher {
    /// A publisher and the receiving end of its channel (holding `bound` changes), for a
    /// writer of one's own (tests).
    pub fn channel(bound: usize, stats: Arc<Stats>) -> (Publisher, Receiver<Change>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(bound);
        (Publisher { tx, stats }, rx)
    }
    /// Queue a change for publication; false (and counted as dropped) when the channel is full.
    pub fn publish(&self, change: Change) -> bool {
        match self.tx.try_send(change) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// The running fleet link: one reader thread, one writer thread.
pub struct Fleet {
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
    publisher: Publisher,
    stats: Arc<Stats>,
}

impl Fleet {
    /// Start the reader (from `cursor` when the first sync succeeded, else with a resync once
    /// connected) and the writer. `deliver` runs on the reader thread for each checked change
    /// or resync. Both threads end when `stop` is set (within about a second).
    pub fn start(
        settings: Settings,
        stats: Arc<Stats>,
        cursor: Option<Cursor>,
        deliver: Box<dyn FnMut(Incoming) + Send>,
        stop: Arc<AtomicBool>,
    ) -> Result<Fleet, FleetError> {
        let client = settings.client()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(settings.outage_queue.clamp(64, 1 << 20));
        let (s, c, st, stp) = (settings.clone(), client.clone(), stats.clone(), stop.clone());
        let reader = std::thread::Builder::new()
            .name("sipwall-fleet-r".into())
            .spawn(move || read_loop(&s, &c, &st, cursor, deliver, &stp))
            .map_err(|source| FleetError::SpawnThread { what: "reader", source })?;
        let (s, st) = (settings, stats.clone());
        let writer = std::thread::Builder::new()
            .name("sipwall-fleet-w".into())
            .spawn(move || write_loop(&s, &client, &st, rx, &stop))
            .map_err(|source| FleetError::SpawnThread { what: "writer", source })?;
        Ok(Fleet { reader, writer, publisher: Publisher { tx, stats: stats.clone() }, stats })
    }

    /// A handle to publish changes.
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// The shared counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// True when both threads have ended (after the stop flag was set).
    pub fn is_finished(&self) -> bool {
        self.reader.is_finished() && self.writer.is_finished()
    }
}

/// Sleep up to `d` in short steps, returning early when `stop` is set.
fn nap(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
    }
}

fn read_loop(
    s: &Settings,
    client: &redis::Client,
    stats: &Arc<Stats>,
    cursor: Option<Cursor>,
    mut deliver: Box<dyn FnMut(Incoming) + Send>,
    stop: &AtomicBool,
) {
    let mut gate =
        Gate { settings: s.clone(), stats: stats.clone(), rate: HashMap::new(), seen: 0 };
    let mut backoff = Duration::from_millis(100);
    let mut was_down_logged = false;
    let mut pos = Position { cursor, heard_at: Instant::now() };
    while !stop.load(Ordering::Relaxed) {
        let mut con = match connect(s, client) {
            Ok(c) => c,
            Err(e) => {
                stats.connected.store(false, Ordering::Relaxed);
                if !was_down_logged {
                    log::error!(
                        "fleet: {e}; local protection goes on unchanged, retrying (every {} s \
                         at most)",
                        MAX_BACKOFF.as_secs()
                    );
                    was_down_logged = true;
                }
                stats.set_error(Some(e.to_string()));
                nap(backoff, stop);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if pos.cursor.is_some() && pos.heard_at.elapsed() > RESUME_WITHIN {
            log::info!(
                "fleet: away for more than {} s; resyncing instead of resuming",
                RESUME_WITHIN.as_secs()
            );
            pos.cursor = None;
        }
        // The server blocks up to BLOCK_MS; allow for that in the read timeout.
        let _ = con.set_read_timeout(Some(s.timeout + Duration::from_millis(BLOCK_MS)));
        backoff = Duration::from_millis(100);
        let r = follow(&mut con, s, stats, &mut gate, &mut pos, &mut deliver, stop);
        stats.connected.store(false, Ordering::Relaxed);
        if let Err(e) = r {
            log::error!("fleet: {e}; reconnecting (local protection goes on unchanged)");
            stats.set_error(Some(e.to_string()));
            was_down_logged = true;
            nap(backoff, stop);
        }
    }
}

/// Where a reader is in the stream, and when it last heard from it (an `XREAD` answer or a
/// resync). A reader out of touch longer than [`RESUME_WITHIN`] resyncs. Measured from the
/// last answer, not from the last failed attempt, so an outage made of many short-lived
/// connections (a Redis loading its data accepts them and refuses commands) counts whole.
struct Position {
    cursor: Option<Cursor>,
    heard_at: Instant,
}

/// On one connection: resume from the cursor if the stream still holds its entry, else
/// resync; then follow the stream until an error or the stop.
fn follow(
    con: &mut redis::Connection,
    s: &Settings,
    stats: &Arc<Stats>,
    gate: &mut Gate,
    pos: &mut Position,
    deliver: &mut Box<dyn FnMut(Incoming) + Send>,
    stop: &AtomicBool,
) -> Result<(), FleetError> {
    if let Some(c) = pos.cursor.as_ref() {
        if still_holds(con, &s.changes_key(), &c.id)? {
            log::info!("fleet: resuming from the stream after entry {}", c.id);
        } else {
            log::warn!(
                "fleet: the stream no longer holds entry {} (trimmed, or Redis lost its data); \
                 resyncing",
                c.id
            );
            pos.cursor = None;
        }
    }
    while !stop.load(Ordering::Relaxed) {
        if !follow_once(con, s, stats, gate, pos, deliver, stop)? {
            log::warn!("fleet: fell behind the stream's window (fleet.stream_max_len); resyncing");
            pos.cursor = None;
        }
    }
    Ok(())
}

/// [`follow`] until the stop (true) or until entries were trimmed away unread (false).
fn follow_once(
    con: &mut redis::Connection,
    s: &Settings,
    stats: &Arc<Stats>,
    gate: &mut Gate,
    pos: &mut Position,
    deliver: &mut Box<dyn FnMut(Incoming) + Send>,
    stop: &AtomicBool,
) -> Result<bool, FleetError> {
    let cursor = &mut pos.cursor;
    if cursor.is_none() {
        let t0 = Instant::now();
        let (bans, c) = resync(con, s, gate, None)?;
        log::info!(
            "fleet: resynced from {}: {} active ban(s) in {} ms",
            s.url_for_log(),
            bans.len(),
            t0.elapsed().as_millis()
        );
        deliver(Incoming::Resync(bans));
        *cursor = Some(c);
        pos.heard_at = Instant::now();
    }
    stats.connected.store(true, Ordering::Relaxed);
    stats.set_error(None);
    let key = s.changes_key();
    while !stop.load(Ordering::Relaxed) {
        let Some(Cursor { id: from, mut number }) = cursor.clone() else { return Ok(false) };
        let reply: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(&key)
            .arg(&from)
            .query(con)
            .map_err(|source| FleetError::Command { command: "XREAD", source })?;
        pos.heard_at = Instant::now();
        let mut n = 0usize;
        for stream in items(&reply) {
            for e in items(stream).get(1).map(items).unwrap_or(&[]) {
                let parts = items(e);
                let Some(id) = parts.first().and_then(bulk) else { continue };
                let id = String::from_utf8_lossy(id).into_owned();
                n += 1;
                let added_ms = parse_id(&id).map_or_else(now_ms, |(ms, _)| ms);
                stats.lag_ms.store(now_ms().saturating_sub(added_ms), Ordering::Relaxed);
                let fields = parts.get(1).map(items).unwrap_or(&[]);
                let msg = fields.chunks(2).find(|p| p.first().and_then(bulk) == Some(b"m"));
                if let Some(change) = msg
                    .and_then(|p| p.get(1))
                    .and_then(bulk)
                    .and_then(|v| gate.read(v, Some(added_ms)))
                {
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    deliver(Incoming::Change(change));
                }
                number += 1;
                *cursor = Some(Cursor { id, number });
            }
        }
        // A full batch means this node is behind: check that nothing after `from` was trimmed.
        if n >= READ_COUNT && trimmed_after(con, &key, number)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// True when the stream still holds the entry `id`. Trimming removes the oldest entries first,
/// so then every entry after it is still there to read.
fn still_holds(con: &mut redis::Connection, key: &str, id: &str) -> Result<bool, FleetError> {
    let reply: Value = redis::cmd("XRANGE")
        .arg(key)
        .arg(id)
        .arg(id)
        .arg("COUNT")
        .arg(1)
        .query(con)
        .map_err(|source| FleetError::Command { command: "XRANGE", source })?;
    Ok(!items(&reply).is_empty())
}

/// True when the stream no longer holds the entry after number `read` (trimmed away unread).
fn trimmed_after(con: &mut redis::Connection, key: &str, read: u64) -> Result<bool, FleetError> {
    let (_, added, kept) = stream_info(con, key)?;
    Ok(added.saturating_sub(kept) > read)
}

/// Encode and write a batch in one atomic pipeline: state first, then the stream.
fn write_batch(
    con: &mut redis::Connection,
    s: &Settings,
    batch: &[Change],
) -> Result<(), FleetError> {
    let mut p = redis::pipe();
    p.atomic();
    let (bans, changes) = (s.bans_key(), s.changes_key());
    for c in batch {
        let text = match entry::encode(c, s.hmac_key.as_deref()) {
            Ok(t) => t,
            Err(e) => {
                log::warn!("fleet: not published: {e}");
                continue;
            }
        };
        match c {
            Change::Ban(b) => p.cmd("HSET").arg(&bans).arg(b.net.to_string()).arg(&text).ignore(),
            Change::Unban { net, .. } => p.cmd("HDEL").arg(&bans).arg(net.to_string()).ignore(),
        };
        p.cmd("XADD")
            .arg(&changes)
            .arg("MAXLEN")
            .arg("~")
            .arg(s.stream_max_len)
            .arg("*")
            .arg("m")
            .arg(&text)
            .ignore();
    }
    p.query::<()>(con).map_err(|source| FleetError::Command { command: "MULTI/EXEC", source })
}

/// Delete ended bans from the state hash, each only if it is still the value read (a ban
/// renewed meanwhile by another node stays). Bounded per call.
fn prune(con: &mut redis::Connection, s: &Settings) -> Result<usize, FleetError> {
    const COMPARE_AND_DELETE: &str = "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then \
         return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0";
    let now = now_ms();
    let mut scan = "0".to_string();
    let mut pruned = 0;
    for _ in 0..100 {
        let step: Value = redis::cmd("HSCAN")
            .arg(s.bans_key())
            .arg(&scan)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query(con)
            .map_err(|source| FleetError::Command { command: "HSCAN", source })?;
        let parts = items(&step);
        let Some(next) = parts.first().and_then(bulk) else { break };
        for pair in parts.get(1).map(items).unwrap_or(&[]).chunks(2) {
            let (Some(field), Some(value)) =
                (pair.first().and_then(bulk), pair.get(1).and_then(bulk))
            else {
                continue;
            };
            // Without the key: an entry this node cannot read is not its to delete either.
            let ended = match entry::decode(value, None) {
                Ok(Change::Ban(b)) => b.until_ms <= now,
                _ => false,
            };
            if ended {
                let n: i64 = redis::cmd("EVAL")
                    .arg(COMPARE_AND_DELETE)
                    .arg(1)
                    .arg(s.bans_key())
                    .arg(field)
                    .arg(value)
                    .query(con)
                    .map_err(|source| FleetError::Command { command: "EVAL", source })?;
                pruned += n as usize;
            }
        }
        scan = String::from_utf8_lossy(next).into_owned();
        if scan == "0" {
            break;
        }
    }
    Ok(pruned)
}

fn write_loop(
    s: &Settings,
    client: &redis::Client,
    stats: &Arc<Stats>,
    rx: Receiver<Change>,
    stop: &AtomicBool,
) {
    let mut pending: VecDeque<Change> = VecDeque::new();
    let mut con: Option<redis::Connection> = None;
    let mut next_try = Instant::now();
    let mut backoff = Duration::from_millis(100);
    let mut last_prune = Instant::now();
    let keep = |pending: &mut VecDeque<Change>, c: Change| {
        pending.push_back(c);
        while pending.len() > s.outage_queue {
            pending.pop_front();
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    };
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(c) => keep(&mut pending, c),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        while let Ok(c) = rx.try_recv() {
            keep(&mut pending, c);
            if pending.len() >= s.outage_queue {
                break;
            }
        }
        stats.queued.store(pending.len() as u64, Ordering::Relaxed);
        if con.is_none() && Instant::now() >= next_try {
            match connect(s, client) {
                Ok(c) => {
                    if !pending.is_empty() {
                        log::info!(
                            "fleet: connected; publishing {} queued change(s)",
                            pending.len()
                        );
                    }
                    con = Some(c);
                    backoff = Duration::from_millis(100);
                }
                Err(_) => {
                    // The reader logs the outage; the writer only waits.
                    next_try = Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        let Some(c) = con.as_mut() else { continue };
        while !pending.is_empty() {
            let n = pending.len().min(WRITE_BATCH);
            let batch: Vec<Change> = pending.iter().take(n).cloned().collect();
            match write_batch(c, s, &batch) {
                Ok(()) => {
                    pending.drain(..n);
                    stats.published.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    log::warn!(
                        "fleet: publishing failed, {} change(s) kept for later: {e}",
                        pending.len()
                    );
                    con = None;
                    next_try = Instant::now() + backoff;
                    break;
                }
            }
        }
        stats.queued.store(pending.len() as u64, Ordering::Relaxed);
        if let Some(c) = con.as_mut() {
            if last_prune.elapsed() >= PRUNE_EVERY {
                last_prune = Instant::now();
                match prune(c, s) {
                    Ok(n) if n > 0 => log::info!("fleet: pruned {n} ended ban(s) from the state"),
                    Ok(_) => {}
                    Err(e) => {
                        log::warn!("fleet: pruning ended bans: {e}");
                        con = None;
                    }
                }
            }
        }
    }
    // Stopping: what the ban worker handed over last is still published if Redis answers.
    while let Ok(c) = rx.try_recv() {
        keep(&mut pending, c);
    }
    if let Some(c) = con.as_mut() {
        let batch: Vec<Change> = pending.iter().cloned().collect();
        for chunk in batch.chunks(WRITE_BATCH) {
            if write_batch(c, s, chunk).is_err() {
                break;
            }
            pending.drain(..chunk.len());
            stats.published.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    }
    if !pending.is_empty() {
        log::warn!("fleet: {} change(s) not published at stop (lost)", pending.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            redis_url: "redis://:secret@192.0.2.1:6379/0".into(),
            password: None,
            username: None,
            node_id: "n1".into(),
            key_prefix: "sipwall".into(),
            hmac_key: None,
            max_prefix_v4: 16,
            max_prefix_v6: 48,
            max_bans_per_origin_per_minute: 3,
            outage_queue: 10,
            stream_max_len: 10_000,
            timeout: Duration::from_secs(1),
            tls: TlsFiles::default(),
        }
    }

    fn ban(net: &str, origin: &str) -> Vec<u8> {
        let b = FleetBan {
            net: net.parse().unwrap(),
            since_ms: now_ms(),
            until_ms: now_ms() + 60_000,
            rule: "manual".into(),
            reason: "r".into(),
            evidence: String::new(),
            origin: origin.into(),
        };
        entry::encode(&Change::Ban(b), None).unwrap().into_bytes()
    }

    #[test]
    fn the_gate_drops_own_wide_and_too_many_bans() {
        // one fixed stream time: the whole test counts in one minute
        let at = Some(now_ms());
        let stats = Arc::new(Stats::default());
        let mut g =
            Gate { settings: settings(), stats: stats.clone(), rate: HashMap::new(), seen: 0 };
        assert!(g.read(&ban("203.0.113.9/32", "n1"), at).is_none(), "own change taken");
        assert!(
            g.read(&ban("203.0.113.9/32", "n1"), None).is_none(),
            "own ban taken from a resync"
        );
        assert!(g.read(&ban("198.0.0.0/8", "n2"), at).is_none());
        assert!(g.read(&ban("2001:db8::/32", "n2"), at).is_none());
        assert_eq!(stats.rejected_width.load(Ordering::Relaxed), 2);
        for i in 0..3 {
            assert!(g.read(&ban(&format!("203.0.113.{i}/32"), "n2"), at).is_some());
        }
        assert!(g.read(&ban("203.0.113.7/32", "n2"), at).is_none(), "rate limit not applied");
        assert!(g.read(&ban("203.0.113.7/32", "n3"), at).is_some(), "limit is per origin");
        assert_eq!(stats.rejected_rate.load(Ordering::Relaxed), 1);
        // bounded origin table
        for i in 0..(MAX_ORIGINS + 10) {
            g.read(&ban("203.0.113.8/32", &format!("o{i}")), at);
        }
        assert!(g.rate.len() <= MAX_ORIGINS);
    }

    #[test]
    fn the_rate_limit_counts_by_the_minute_an_entry_was_added_not_read() {
        // a reader resuming after a 3-minute outage reads 3 minutes' bans at once: each
        // minute's 3 (the limit) pass, a 4th in a minute does not
        let mut g =
            Gate { settings: settings(), stats: Arc::default(), rate: HashMap::new(), seen: 0 };
        let start = (now_ms() - 10 * 60_000) / 60_000 * 60_000; // a whole minute, in the past
        for minute in 0..3u64 {
            for i in 0..3u64 {
                let net = format!("203.0.{minute}.{i}/32");
                let at = Some(start + minute * 60_000 + i * 1000);
                assert!(g.read(&ban(&net, "n2"), at).is_some(), "{net} dropped");
            }
        }
        let late = Some(start + 2 * 60_000 + 59_000);
        assert!(g.read(&ban("203.0.2.9/32", "n2"), late).is_none(), "4th in a minute taken");
        // a resync is not rate limited
        assert!(g.read(&ban("203.0.2.10/32", "n2"), None).is_some());
        // stream ids set in the future count in the present minute: no spreading
        let now = now_ms();
        let taken = (1..=8u64)
            .filter(|m| {
                g.read(&ban(&format!("203.0.3.{m}/32"), "n3"), Some(now + m * 60_000)).is_some()
            })
            .count();
        // 3 a minute; 6 if the clock turns a minute during the loop; 8 if ids spread them
        assert!(taken <= 6, "future ids spread the limit: {taken} of 8 taken");
    }

    #[test]
    fn old_unbans_are_ignored() {
        let at = Some(now_ms());
        let mut g =
            Gate { settings: settings(), stats: Arc::default(), rate: HashMap::new(), seen: 0 };
        let net: IpNet = "203.0.113.9/32".parse().unwrap();
        let old = Change::Unban { net, at_ms: 1, origin: "n2".into() };
        assert!(g.read(entry::encode(&old, None).unwrap().as_bytes(), at).is_none());
        let fresh = Change::Unban { net, at_ms: now_ms(), origin: "n2".into() };
        assert!(g.read(entry::encode(&fresh, None).unwrap().as_bytes(), at).is_some());
    }

    #[test]
    fn the_password_never_reaches_a_log_line() {
        let s = settings();
        assert_eq!(s.url_for_log(), "redis://:***@192.0.2.1:6379/0");
        let plain = Settings { redis_url: "redis://192.0.2.1:6379".into(), ..settings() };
        assert_eq!(plain.url_for_log(), "redis://192.0.2.1:6379");
        assert!(plain.width_ok(&"203.0.113.0/24".parse().unwrap()));
        assert!(!plain.width_ok(&"203.0.0.0/15".parse().unwrap()));
    }

    #[test]
    fn tls_urls_hide_the_password_and_tls_files_need_a_tls_url() {
        let tls = Settings { redis_url: "rediss://u:secret@192.0.2.1:6380/0".into(), ..settings() };
        assert_eq!(tls.url_for_log(), "rediss://u:***@192.0.2.1:6380/0");
        assert!(tls.client().is_ok());
        let files = TlsFiles { ca: Some(b"x".to_vec()), client: None };
        let plain = Settings { tls: files.clone(), ..settings() };
        let e = plain.client().unwrap_err().to_string();
        assert!(e.contains("not rediss://") && !e.contains("secret"), "{e}");
        // an unparsable CA is refused when the client is built, naming the URL, not the key
        let bad = Settings { tls: files, ..tls };
        let e = bad.client().unwrap_err().to_string();
        assert!(e.starts_with("fleet redis_url rediss://u:***@") && e.contains("CA"), "{e}");
        let key = TlsFiles { ca: None, client: Some((b"c".to_vec(), b"PRIVATE".to_vec())) };
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }

    #[test]
    fn stream_ids_compare_as_numbers() {
        assert!(parse_id("1700000000001-0") > parse_id("1700000000000-5"));
        assert!(parse_id("10-0") > parse_id("9-3"));
        assert_eq!(parse_id("x-1"), None);
    }
}
