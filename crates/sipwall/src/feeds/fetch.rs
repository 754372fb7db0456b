//! Feeds in: `[blocklist] urls`, fetched by the daemon.
//!
//! CONTRACT:
//! * Never on the judging path: downloads run on their own thread (`sipwall-fetch`), merging
//!   on another (`sipwall-feeds`), which hands the union of the configured block list and the
//!   fetched entries to the block-list loader thread (`replace_blocklist_in_batches`, as for
//!   SIGHUP). The engine's lock is taken only to copy its protected networks (a few).
//! * Each URL is fetched at start and then every `refresh_secs`, with `If-None-Match` (its
//!   last `ETag`) and `If-Modified-Since` (its last `Last-Modified`): a 304 keeps the copy.
//!   A download is bounded by `timeout_secs` in all (connect, headers, body: a server that
//!   trickles is cut off) and `max_bytes` (a `Content-Length` above it is refused before the
//!   body is read; a body growing past it is cut off), redirects by 3, and every entry is
//!   validated ([`super::list`]). A failed download (refused connection, timeout, status other
//!   than 200/304, oversized, garbage) is logged and retried after `min(refresh_secs, 300 s)`;
//!   the URL's last good copy stays in force meanwhile.
//! * The last good copy of each URL is kept in `STATE_DIR/feeds/<hash of the URL>.json` (mode
//!   0600, written to a temporary file and renamed, so a crash leaves the old or the new copy,
//!   never half of one) with its validators, and used at start before the first download.
//! * Entries carry their origin (the URL, named in every log line about them) and an expiry:
//!   the list's own (`until_ms` in sipwall's JSON feed) and/or `max_age_secs` after the URL's
//!   last good download; expired entries leave the kernel set at the next merge.
//! * The allowlist always wins: an entry overlapping a trusted network, `bans.local_addresses`,
//!   an address of this host or a known-good address is refused and logged with what it
//!   covers. The check is redone whenever those change (reload, learned addresses).
//! * Plain HTTP(S) GET with a fixed User-Agent; no proxy, no cookies, no compression.
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sipwall_engine::{Engine, NetSet};

use super::list::{self, Entry};
use crate::config::{FeedsConfig, FetchConfig};

/// Folder of the last good copies, inside the state directory.
pub const FEEDS_DIR: &str = "feeds";
/// Longest wait before retrying a URL whose download failed.
const RETRY_AFTER: Duration = Duration::from_secs(300);
/// How often the merging thread looks at its inputs.
const TICK: Duration = Duration::from_millis(200);
/// How often the protected networks are copied from the engine.
const PROTECTED_EVERY: Duration = Duration::from_secs(5);
/// Refused entries named one by one in the log per URL and merge (the rest are counted).
const LOG_REFUSED: usize = 10;

/// The last good copy of one URL, as kept on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copy {
    /// The URL it came from.
    pub url: String,
    /// Its `ETag`, for `If-None-Match`.
    pub etag: Option<String>,
    /// Its `Last-Modified`, for `If-Modified-Since`.
    pub last_modified: Option<String>,
    /// The last good download (200 or 304), ms since the epoch.
    pub fetched_ms: u64,
    /// The body, as downloaded (UTF-8: it passed [`list::parse`]).
    pub body: String,
}

/// One URL's list in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Origin.
    pub url: String,
    /// Its valid entries.
    pub entries: Vec<Entry>,
    /// The last good download.
    pub fetched_ms: u64,
}

/// What one refresh of a URL did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// A new list (entries, format).
    Updated(usize, &'static str),
    /// 304: the copy stands (its age restarts).
    NotModified,
    /// Failed; the last good copy (if any) stays. The reason.
    Failed(String),
}

/// The file of `url`'s last good copy in `dir`.
pub fn copy_path(dir: &Path, url: &str) -> PathBuf {
    // FNV-1a: a stable name without a hashing dependency; the URL is inside the file too.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in url.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    dir.join(format!("{h:016x}.json"))
}

/// File of the fetcher's last word on each URL, in [`FEEDS_DIR`], for `sipwall feed status`.
pub const STATUS_FILE: &str = "status.json";

/// What `sipwall feed status` shows of one URL, as the fetcher last wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlStatus {
    /// The URL.
    pub url: String,
    /// The last download attempt, ms since the epoch (0: none yet in this run).
    pub last_try_ms: u64,
    /// Whether it gave a usable answer (a new list or 304).
    pub ok: bool,
    /// What it gave: `updated: N entries (FORMAT)`, `not modified`, or the failure.
    pub result: String,
    /// Entries of the list in force (the last good copy).
    pub entries: usize,
    /// When the list in force was last downloaded or confirmed (None: no good copy yet).
    pub copy_ms: Option<u64>,
}

/// A fetcher of the configured URLs: their copies, validators and the HTTP agent.
pub struct Fetcher {
    cfg: FetchConfig,
    dir: PathBuf,
    agent: ureq::Agent,
    copies: Vec<(String, Option<Copy>)>,
    status: Vec<UrlStatus>,
}

impl Fetcher {
    /// For `feeds`, keeping copies in `state_dir/feeds`; loads the copies a previous run kept
    /// (an unreadable one is logged and ignored).
    pub fn new(feeds: &FeedsConfig, state_dir: &Path) -> Fetcher {
        let dir = state_dir.join(FEEDS_DIR);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(feeds.fetch.timeout_secs)))
            .http_status_as_error(false)
            .max_redirects(3)
            .proxy(None)
            .user_agent(format!("sipwall/{} (block-list fetch)", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let copies: Vec<(String, Option<Copy>)> = feeds
            .urls
            .iter()
            .map(|u| (u.clone(), load_copy(&dir, u, feeds.fetch.max_bytes)))
            .collect();
        let mut f = Fetcher { cfg: feeds.fetch.clone(), dir, agent, copies, status: Vec::new() };
        f.status = f
            .copies
            .iter()
            .map(|(url, c)| UrlStatus {
                url: url.clone(),
                last_try_ms: 0,
                ok: c.is_some(),
                result: if c.is_some() {
                    "not tried yet in this run (last good copy from disk)".into()
                } else {
                    "not tried yet".into()
                },
                entries: c.as_ref().map_or(0, |c| f.source(url, c).entries.len()),
                copy_ms: c.as_ref().map(|c| c.fetched_ms),
            })
            .collect();
        f
    }

    /// The last word on each URL (as written to `FEEDS_DIR/status.json`).
    #[cfg(test)]
    pub fn status(&self) -> &[UrlStatus] {
        &self.status
    }

    /// The lists in force: each URL's last good copy, parsed.
    pub fn sources(&self) -> Vec<Source> {
        self.copies.iter().filter_map(|(u, c)| c.as_ref().map(|c| self.source(u, c))).collect()
    }

    fn source(&self, url: &str, c: &Copy) -> Source {
        let entries = list::parse(c.body.as_bytes(), self.cfg.max_entries)
            .map(|p| p.entries)
            .unwrap_or_default();
        Source { url: url.to_string(), entries, fetched_ms: c.fetched_ms }
    }

    /// Number of URLs.
    pub fn url_count(&self) -> usize {
        self.copies.len()
    }

    /// Download URL `i` (conditionally when a copy exists) at `now_ms`; on success keep and
    /// store the new copy. Returns what happened and the URL's list in force afterwards.
    pub fn refresh(&mut self, i: usize, now_ms: u64) -> (Refresh, Option<Source>) {
        let (url, old) = &self.copies[i];
        let url = url.clone();
        let outcome = match download(&self.agent, &url, old.as_ref(), self.cfg.max_bytes) {
            Err(why) => Refresh::Failed(why),
            Ok(None) => {
                if let Some(c) = self.copies[i].1.as_mut() {
                    c.fetched_ms = now_ms;
                    // Its age restarts: write it so a restart knows.
                    let c = c.clone();
                    if let Err(e) = store_copy(&self.dir, &c) {
                        log::warn!("block list {url}: keeping its copy on disk: {e:#}");
                    }
                }
                Refresh::NotModified
            }
            Ok(Some((body, etag, last_modified))) => {
                match list::parse(&body, self.cfg.max_entries) {
                    Err(why) => Refresh::Failed(why),
                    Ok(p) => {
                        if p.invalid > 0 {
                            let (at, why) = p.first_invalid.clone().unwrap_or_default();
                            log::warn!(
                                "block list {url}: {} invalid entr{} skipped (first at {at}: {why})",
                                p.invalid,
                                if p.invalid == 1 { "y" } else { "ies" }
                            );
                        }
                        let copy = Copy {
                            url: url.clone(),
                            etag,
                            last_modified,
                            fetched_ms: now_ms,
                            body: String::from_utf8(body).unwrap_or_default(),
                        };
                        if let Err(e) = store_copy(&self.dir, &copy) {
                            log::warn!("block list {url}: keeping its copy on disk: {e:#}");
                        }
                        self.copies[i].1 = Some(copy);
                        Refresh::Updated(p.entries.len(), p.format)
                    }
                }
            }
        };
        let source = self.copies[i].1.as_ref().map(|c| self.source(&url, c));
        self.status[i] = UrlStatus {
            url: url.clone(),
            last_try_ms: now_ms,
            ok: !matches!(outcome, Refresh::Failed(_)),
            result: match &outcome {
                Refresh::Updated(n, format) => format!("updated: {n} entries ({format})"),
                Refresh::NotModified => "not modified".into(),
                Refresh::Failed(why) => format!("failed: {why}"),
            },
            entries: source.as_ref().map_or(0, |s| s.entries.len()),
            copy_ms: self.copies[i].1.as_ref().map(|c| c.fetched_ms),
        };
        let status = serde_json::to_vec_pretty(&self.status).unwrap_or_default();
        if let Err(e) = write_private(&self.dir, STATUS_FILE, &status) {
            log::warn!("block lists: writing their status: {e:#}");
        }
        (outcome, source)
    }
}

/// A body with its `ETag` and `Last-Modified`.
type Body = (Vec<u8>, Option<String>, Option<String>);

/// GET `url`; `Ok(None)` for 304 Not Modified. Every failure is a sentence.
fn download(
    agent: &ureq::Agent,
    url: &str,
    copy: Option<&Copy>,
    max_bytes: u64,
) -> Result<Option<Body>, String> {
    let mut req = agent.get(url);
    if let Some(c) = copy {
        if let Some(e) = &c.etag {
            req = req.header("If-None-Match", e.as_str());
        }
        if let Some(m) = &c.last_modified {
            req = req.header("If-Modified-Since", m.as_str());
        }
    }
    let mut resp = req.call().map_err(|e| format!("download failed: {e}"))?;
    let status = resp.status().as_u16();
    if status == 304 && copy.is_some() {
        return Ok(None);
    }
    if status != 200 {
        return Err(format!("HTTP status {status}"));
    }
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 256)
            .map(str::to_string)
    };
    let (etag, last_modified) = (header("etag"), header("last-modified"));
    if let Some(len) = header("content-length").and_then(|l| l.parse::<u64>().ok()) {
        if len > max_bytes {
            return Err(format!(
                "{len} bytes announced, more than [blocklist.fetch] max_bytes ({max_bytes})"
            ));
        }
    }
    let body =
        resp.body_mut().with_config().limit(max_bytes).read_to_vec().map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => {
                format!("body larger than [blocklist.fetch] max_bytes ({max_bytes})")
            }
            e => format!("reading the body: {e}"),
        })?;
    Ok(Some((body, etag, last_modified)))
}

fn load_copy(dir: &Path, url: &str, max_bytes: u64) -> Option<Copy> {
    let path = copy_path(dir, url);
    if !path.exists() {
        return None;
    }
    // JSON escaping can double the body; the bound stays finite.
    let loaded = crate::config::read_bounded(&path, max_bytes * 2 + 65_536)
        .and_then(|t| serde_json::from_str::<Copy>(&t).map_err(anyhow::Error::from))
        .and_then(|c| {
            anyhow::ensure!(c.url == url, "it holds the copy of {}", c.url);
            Ok(c)
        });
    match loaded {
        Ok(c) => {
            log::info!(
                "block list {url}: last good copy of {} loaded from {}",
                crate::time::rfc3339(c.fetched_ms),
                path.display()
            );
            Some(c)
        }
        Err(e) => {
            log::warn!("block list {url}: ignoring its copy {}: {e:#}", path.display());
            None
        }
    }
}

/// Write `copy` to its file: a temporary file (0600) renamed over the old one.
pub fn store_copy(dir: &Path, copy: &Copy) -> anyhow::Result<()> {
    let path = copy_path(dir, &copy.url);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("copy.json");
    write_private(dir, name, &serde_json::to_vec(copy)?)
}

/// Write `bytes` to `dir/name` (the folder made 0700 if missing) through a temporary file
/// (0600, synced) renamed over the old one.
fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// An entry refused because the allowlist wins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Refused {
    /// Origin.
    pub url: String,
    /// The entry.
    pub net: IpNet,
    /// The protected network it overlaps.
    pub covers: IpNet,
    /// What that is.
    pub what: &'static str,
}

/// The block list to put in the kernel: the configured networks plus every fetched entry in
/// force at `now_ms` that overlaps no protected network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    /// Sorted, without duplicates.
    pub nets: Vec<IpNet>,
    /// Entries refused (allowlist).
    pub refused: Vec<Refused>,
    /// Entries expired.
    pub expired: usize,
    /// The next time an entry in force expires.
    pub next_expiry_ms: Option<u64>,
}

/// Merge (see [`Merged`]); `max_age_ms` 0 = fetched entries never age out.
pub fn merge(
    configured: &[IpNet],
    sources: &[Source],
    protected: &[(IpNet, &'static str)],
    max_age_ms: u64,
    now_ms: u64,
) -> Merged {
    let mut guard = NetSet::new();
    for (n, _) in protected {
        guard.insert(*n);
    }
    let mut nets: BTreeSet<IpNet> = configured.iter().copied().collect();
    let mut m = Merged::default();
    for s in sources {
        let aged = (max_age_ms > 0).then(|| s.fetched_ms.saturating_add(max_age_ms));
        for e in &s.entries {
            let until = match (e.until_ms, aged) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if until.is_some_and(|u| u <= now_ms) {
                m.expired += 1;
                continue;
            }
            if let Some(covers) = guard.first_overlapping(e.net) {
                let what =
                    protected.iter().find(|(n, _)| *n == covers).map_or("protected", |p| p.1);
                m.refused.push(Refused { url: s.url.clone(), net: e.net, covers, what });
                continue;
            }
            if let Some(u) = until {
                m.next_expiry_ms = Some(m.next_expiry_ms.map_or(u, |x: u64| x.min(u)));
            }
            nets.insert(e.net);
        }
    }
    m.refused.sort();
    m.refused.dedup();
    m.nets = nets.into_iter().collect();
    m
}

/// Log the refused entries, per URL: the first [`LOG_REFUSED`] by name, the rest counted.
fn log_refused(refused: &[Refused]) {
    let mut i = 0;
    while i < refused.len() {
        let url = &refused[i].url;
        let n = refused[i..].iter().take_while(|r| &r.url == url).count();
        for r in &refused[i..i + n.min(LOG_REFUSED)] {
            log::warn!(
                "block list {url}: entry {} refused: it covers {}, {}, which is never blocked \
                 (the allowlist wins)",
                r.net,
                r.covers,
                r.what
            );
        }
        if n > LOG_REFUSED {
            log::warn!("block list {url}: {} more entries refused likewise", n - LOG_REFUSED);
        }
        i += n;
    }
}

/// Start fetching: a merging thread and a download thread (neither joined at stop: each of
/// their kernel updates goes through the loader, and a download in flight ends with the
/// process). `configured` is the configured block list already handed to the loader;
/// `loader` takes every new union. Returns the sender that takes the configured list on
/// each reload (in place of the loader's, so a reload keeps the fetched entries).
pub fn spawn(
    mut fetcher: Fetcher,
    feeds: FeedsConfig,
    configured: Vec<IpNet>,
    loader: Sender<Vec<IpNet>>,
    engine: Arc<Mutex<Engine>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Sender<Vec<IpNet>>> {
    if feeds.urls.is_empty() {
        return Ok(loader); // nothing to fetch: reloads go straight to the loader, as before
    }
    let (static_tx, static_rx) = mpsc::channel::<Vec<IpNet>>();
    let (fetched_tx, fetched_rx) = mpsc::channel::<(usize, Source)>();
    let first = fetcher.sources();
    let stop2 = stop.clone();
    let refresh = Duration::from_secs(feeds.fetch.refresh_secs);
    if fetcher.url_count() > 0 {
        std::thread::Builder::new()
            .name("sipwall-fetch".into())
            .spawn(move || {
                let mut due = vec![Instant::now(); fetcher.url_count()];
                while !stop2.load(Ordering::Relaxed) {
                    for (i, due_at) in due.iter_mut().enumerate() {
                        if Instant::now() < *due_at || stop2.load(Ordering::Relaxed) {
                            continue;
                        }
                        let (outcome, source) = fetcher.refresh(i, crate::time::now_ms());
                        let url = &fetcher.copies[i].0;
                        *due_at = Instant::now()
                            + match &outcome {
                                Refresh::Failed(_) => refresh.min(RETRY_AFTER),
                                _ => refresh,
                            };
                        match &outcome {
                            Refresh::Updated(n, format) => {
                                log::info!("block list {url}: {n} entries ({format})")
                            }
                            Refresh::NotModified => log::info!("block list {url}: not modified"),
                            Refresh::Failed(why) => log::warn!(
                                "block list {url}: {why}; {}",
                                if source.is_some() {
                                    "keeping its last good copy"
                                } else {
                                    "no good copy yet"
                                }
                            ),
                        }
                        if let Some(s) = source {
                            if fetched_tx.send((i, s)).is_err() {
                                return;
                            }
                        }
                    }
                    std::thread::sleep(TICK);
                }
            })
            .context("starting the block-list fetch thread")?;
    }
    std::thread::Builder::new()
        .name("sipwall-feeds".into())
        .spawn(move || {
            merge_loop(MergeLoop {
                feeds,
                configured,
                sources: first,
                loader,
                engine,
                static_rx,
                fetched_rx,
                stop,
            })
        })
        .context("starting the block-list merge thread")?;
    Ok(static_tx)
}

struct MergeLoop {
    feeds: FeedsConfig,
    configured: Vec<IpNet>,
    sources: Vec<Source>,
    loader: Sender<Vec<IpNet>>,
    engine: Arc<Mutex<Engine>>,
    static_rx: Receiver<Vec<IpNet>>,
    fetched_rx: Receiver<(usize, Source)>,
    stop: Arc<AtomicBool>,
}

fn merge_loop(mut s: MergeLoop) {
    let max_age_ms = s.feeds.fetch.max_age_secs * 1000;
    let mut protected: Vec<(IpNet, &'static str)> = Vec::new();
    let mut protected_at: Option<Instant> = None;
    let mut last_sent: Option<Vec<IpNet>> = None;
    let mut last_refused: Vec<Refused> = Vec::new();
    let mut next_expiry: Option<u64> = None;
    let mut dirty = true;
    let mut reloaded = false;
    while !s.stop.load(Ordering::Relaxed) {
        while let Ok(list) = s.static_rx.try_recv() {
            s.configured = list;
            reloaded = true;
            dirty = true;
        }
        if reloaded {
            // A reload may have trusted more: check against the new allowlist now.
            protected_at = None;
        }
        match s.fetched_rx.recv_timeout(TICK) {
            Ok((_, src)) => {
                match s.sources.iter_mut().find(|x| x.url == src.url) {
                    Some(old) => *old = src,
                    None => s.sources.push(src),
                }
                dirty = true;
            }
            Err(RecvTimeoutError::Timeout) => {}
            // No fetch thread (no URLs) or it ended: reloads still pass through.
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(TICK),
        }
        if protected_at.is_none_or(|t| t.elapsed() >= PROTECTED_EVERY) {
            protected_at = Some(Instant::now());
            let now = crate::daemon::lock(&s.engine).protected_networks();
            if now != protected {
                protected = now;
                dirty = true;
            }
        }
        let now_ms = crate::time::now_ms();
        if next_expiry.is_some_and(|t| t <= now_ms) {
            dirty = true;
        }
        if !dirty {
            continue;
        }
        dirty = false;
        let m = merge(&s.configured, &s.sources, &protected, max_age_ms, now_ms);
        next_expiry = m.next_expiry_ms;
        if m.refused != last_refused {
            log_refused(&m.refused);
            last_refused = m.refused.clone();
        }
        if reloaded || last_sent.as_ref() != Some(&m.nets) {
            reloaded = false;
            let fetched: usize = s.sources.iter().map(|x| x.entries.len()).sum();
            log::info!(
                "block list: {} network(s) to the kernel sets ({} configured; {} fetched \
                 from {} URL(s), {} refused by the allowlist, {} expired)",
                m.nets.len(),
                s.configured.len(),
                fetched,
                s.sources.len(),
                m.refused.len(),
                m.expired
            );
            if s.loader.send(m.nets.clone()).is_err() {
                log::error!("the block-list loader thread is gone; fetched lists not loaded");
                return;
            }
            last_sent = Some(m.nets);
        }
    }
}

/// The configured list plus the fetched copies in force at start, for the loader's first
/// load, with the refused entries logged.
pub fn first_list(
    configured: &[IpNet],
    fetcher: &Fetcher,
    feeds: &FeedsConfig,
    engine: &Engine,
) -> Vec<IpNet> {
    if feeds.urls.is_empty() {
        return configured.to_vec(); // as before: the configured list alone
    }
    let m = merge(
        configured,
        &fetcher.sources(),
        &engine.protected_networks(),
        feeds.fetch.max_age_secs * 1000,
        crate::time::now_ms(),
    );
    log_refused(&m.refused);
    m.nets
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::AtomicU8;

    use super::*;

    const GOOD: &str = "# test list\n203.0.113.9\n2001:db8:bad::/48\n192.0.2.0/28 ; scanners\n";
    const ETAG: &str = "\"v1\"";
    const LAST_MODIFIED: &str = "Wed, 02 Dec 2026 10:00:00 GMT";

    /// What the test server answers.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[repr(u8)]
    enum Mode {
        /// 200 with `GOOD`, ETag and Last-Modified; 304 to a request carrying the ETag.
        Good,
        /// 500.
        Error,
        /// Headers, then one byte of body every 200 ms (at most 25): slower than the timeout.
        Slow,
        /// A Content-Length above the limit.
        Big,
        /// No Content-Length, a body past the limit (ended by closing).
        BigUnannounced,
        /// 200 with an HTML error page.
        Garbage,
        /// The connection closed without an answer.
        Reset,
    }

    /// A one-connection-at-a-time HTTP/1.1 server on loopback for the fetcher's tests; every
    /// request head is kept. Stops when dropped (and after 60 s at the latest).
    struct Server {
        addr: SocketAddr,
        mode: Arc<AtomicU8>,
        heads: Arc<Mutex<Vec<String>>>,
        stop: Arc<AtomicBool>,
    }

    impl Server {
        fn start() -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap();
            let mode = Arc::new(AtomicU8::new(Mode::Good as u8));
            let heads = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let (m, h, st) = (mode.clone(), heads.clone(), stop.clone());
            std::thread::spawn(move || {
                let end = Instant::now() + Duration::from_secs(60);
                while !st.load(Ordering::Relaxed) && Instant::now() < end {
                    match listener.accept() {
                        Ok((conn, _)) => serve(conn, m.load(Ordering::Relaxed), &h),
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            });
            Server { addr, mode, heads, stop }
        }
        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }
        fn set(&self, m: Mode) {
            self.mode.store(m as u8, Ordering::Relaxed);
        }
        fn last_head(&self) -> String {
            self.heads.lock().unwrap().last().cloned().unwrap_or_default()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    fn serve(mut conn: TcpStream, mode: u8, heads: &Mutex<Vec<String>>) {
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while head.len() < 8192 && !head.ends_with(b"\r\n\r\n") {
            match conn.read(&mut b) {
                Ok(1) => head.push(b[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        heads.lock().unwrap().push(head.clone());
        let ok = |body: &str, extra: &str| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
                body.len()
            )
        };
        let answer = match mode {
            m if m == Mode::Good as u8 => {
                if head.contains(&format!("if-none-match: {ETAG}")) {
                    format!("HTTP/1.1 304 Not Modified\r\nETag: {ETAG}\r\nConnection: close\r\n\r\n")
                } else {
                    ok(GOOD, &format!("ETag: {ETAG}\r\nLast-Modified: {LAST_MODIFIED}\r\n"))
                }
            }
            m if m == Mode::Error as u8 => {
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            }
            m if m == Mode::Slow as u8 => {
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n");
                for _ in 0..25 {
                    std::thread::sleep(Duration::from_millis(200));
                    if conn.write_all(b"1").is_err() {
                        return;
                    }
                }
                return;
            }
            m if m == Mode::Big as u8 => {
                "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n203.0.113.1\n"
                    .to_string()
            }
            m if m == Mode::BigUnannounced as u8 => {
                let line = "203.0.113.1\n".repeat(1000);
                format!("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{line}")
            }
            m if m == Mode::Garbage as u8 => ok("<html><body>Service Unavailable</body></html>\n", ""),
            _ => return, // Reset: close without a word
        };
        let _ = conn.write_all(answer.as_bytes());
    }

    fn nets(s: &Source) -> Vec<String> {
        s.entries.iter().map(|e| e.net.to_string()).collect()
    }

    fn feeds(urls: Vec<String>) -> FeedsConfig {
        FeedsConfig {
            urls,
            fetch: FetchConfig { timeout_secs: 1, max_bytes: 4096, ..FetchConfig::default() },
        }
    }

    #[test]
    fn a_list_survives_failing_slow_oversized_and_garbage_downloads_and_uses_its_etag() {
        let srv = Server::start();
        let dir = tempfile::tempdir().unwrap();
        let cfg = feeds(vec![srv.url("/voip.txt")]);
        let mut f = Fetcher::new(&cfg, dir.path());
        assert!(f.sources().is_empty());
        let (r, s) = f.refresh(0, 1_000);
        assert_eq!(r, Refresh::Updated(3, "text"));
        let good: Vec<String> =
            ["203.0.113.9/32", "2001:db8:bad::/48", "192.0.2.0/28"].map(String::from).to_vec();
        assert_eq!(nets(&s.unwrap()), good);
        assert!(!srv.last_head().contains("if-none-match"), "{}", srv.last_head());
        // the copy on disk, owner-only
        let file = copy_path(&dir.path().join(FEEDS_DIR), &cfg.urls[0]);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&file).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        for (m, why) in [
            (Mode::Error, "HTTP status 500"),
            (Mode::Slow, "timeout"),
            (Mode::Big, "max_bytes"),
            (Mode::BigUnannounced, "max_bytes"),
            (Mode::Garbage, "not a block list"),
            (Mode::Reset, "download failed"),
        ] {
            srv.set(m);
            let (r, s) = f.refresh(0, 2_000);
            match &r {
                Refresh::Failed(w) => assert!(w.contains(why), "{m:?}: {w}"),
                r => panic!("{m:?} was taken: {r:?}"),
            }
            let s = s.expect("the last good copy stays");
            assert_eq!((nets(&s), s.fetched_ms), (good.clone(), 1_000), "{m:?}");
        }
        // a restart starts from the copy on disk
        let restarted = Fetcher::new(&cfg, dir.path());
        assert_eq!(nets(&restarted.sources()[0]), good);

        // conditional: the ETag and Last-Modified go back, 304 keeps the list, its age restarts
        srv.set(Mode::Good);
        let (r, s) = f.refresh(0, 3_000);
        assert_eq!(r, Refresh::NotModified);
        let head = srv.last_head();
        assert!(head.contains("if-none-match: \"v1\""), "{head}");
        assert!(
            head.contains(&format!("if-modified-since: {}", LAST_MODIFIED.to_ascii_lowercase())),
            "{head}"
        );
        let s = s.unwrap();
        assert_eq!((nets(&s), s.fetched_ms), (good.clone(), 3_000));
        assert_eq!(Fetcher::new(&cfg, dir.path()).sources()[0].fetched_ms, 3_000);
        // what `sipwall feed status` reads
        let text = std::fs::read_to_string(dir.path().join(FEEDS_DIR).join(STATUS_FILE)).unwrap();
        let st: Vec<UrlStatus> = serde_json::from_str(&text).unwrap();
        assert_eq!(st, f.status());
        assert_eq!((st[0].ok, st[0].entries, st[0].copy_ms), (true, 3, Some(3_000)));
        assert_eq!(st[0].result, "not modified");
        srv.set(Mode::Error);
        let _ = f.refresh(0, 4_000);
        assert_eq!((f.status()[0].ok, f.status()[0].last_try_ms), (false, 4_000));
        assert!(f.status()[0].result.contains("HTTP status 500"), "{:?}", f.status());
        assert_eq!(f.status()[0].entries, 3);
    }

    /// TLS is built in (rustls with its crypto provider: no panic on first use); a server
    /// that does not speak it is a failed download like any other.
    #[test]
    fn https_to_a_plain_server_fails_cleanly() {
        let srv = Server::start();
        let dir = tempfile::tempdir().unwrap();
        let url = srv.url("/voip.txt").replace("http://", "https://");
        let mut f = Fetcher::new(&feeds(vec![url]), dir.path());
        let (r, s) = f.refresh(0, 1_000);
        assert!(matches!(&r, Refresh::Failed(w) if w.contains("download failed")), "{r:?}");
        assert!(s.is_none());
    }

    #[test]
    fn a_refused_connection_keeps_the_copy_from_disk() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/list.txt"); // nobody listens any more
        let dir = tempfile::tempdir().unwrap();
        let copy = Copy {
            url: url.clone(),
            etag: None,
            last_modified: None,
            fetched_ms: 500,
            body: "198.51.100.0/25\n".into(),
        };
        store_copy(&dir.path().join(FEEDS_DIR), &copy).unwrap();
        // a copy of another URL under this name is not taken
        let mut f = Fetcher::new(&feeds(vec![url.clone()]), dir.path());
        let (r, s) = f.refresh(0, 9_000);
        assert!(matches!(&r, Refresh::Failed(w) if w.contains("download failed")), "{r:?}");
        assert_eq!(nets(&s.unwrap()), ["198.51.100.0/25"]);
        let other = Fetcher::new(&feeds(vec![format!("{url}?x")]), dir.path());
        assert!(other.sources().is_empty());
    }

    /// The allowlist wins over every fetched entry (and says which protected network and
    /// what it is); entries expire with their list's own time or `max_age`.
    #[test]
    fn merge_refuses_protected_entries_and_drops_expired_ones() {
        let mut policy = sipwall_engine::Policy::from_toml_str(
            "[trusted]\nnetworks = [\"198.51.100.0/24\"]\n[bans]\nlocal_addresses = [\"192.0.2.200\"]\n",
        )
        .unwrap();
        policy.bans.enabled = true;
        let mut engine = Engine::new(policy);
        let _ = engine.set_local_addresses(&["203.0.113.1".parse().unwrap()]);
        let _ = engine.set_known_good(&["2001:db8:5::7/128".parse().unwrap()]);
        let protected = engine.protected_networks();
        assert_eq!(protected.len(), 4, "{protected:?}");
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        let e = |s: &str, until_ms: Option<u64>| Entry { net: n(s), until_ms };
        let sources = vec![
            Source {
                url: "https://lists.example/a.txt".into(),
                entries: vec![
                    e("198.51.0.0/16", None),        // covers the provider
                    e("198.51.100.77/32", None),     // inside it
                    e("203.0.113.0/24", None),       // holds this host
                    e("192.0.2.200/32", None),       // bans.local_addresses
                    e("2001:db8:5::/48", None),      // a known-good address
                    e("192.0.2.0/28", None),         // fine
                    e("192.0.2.64/28", Some(5_000)), // expired
                    e("192.0.2.80/28", Some(50_000)),
                ],
                fetched_ms: 1_000,
            },
            Source {
                url: "https://lists.example/b.json".into(),
                entries: vec![e("2001:db8:bad::/48", None)],
                fetched_ms: 1_000,
            },
        ];
        let m = merge(&[n("192.0.2.128/26")], &sources, &protected, 0, 10_000);
        let kept: Vec<String> = m.nets.iter().map(|x| x.to_string()).collect();
        assert_eq!(kept, ["192.0.2.0/28", "192.0.2.80/28", "192.0.2.128/26", "2001:db8:bad::/48"]);
        assert_eq!(m.expired, 1);
        assert_eq!(m.next_expiry_ms, Some(50_000));
        let refused: Vec<(String, String, &str)> =
            m.refused.iter().map(|r| (r.net.to_string(), r.covers.to_string(), r.what)).collect();
        assert_eq!(refused.len(), 5, "{refused:?}");
        assert!(refused.iter().all(|_| m.refused.iter().all(|r| r.url.ends_with("a.txt"))));
        assert!(refused.contains(&(
            "198.51.0.0/16".into(),
            "198.51.100.0/24".into(),
            "a trusted network ([trusted] networks)"
        )));
        assert!(refused.contains(&(
            "203.0.113.0/24".into(),
            "203.0.113.1/32".into(),
            "an address of this host"
        )));
        assert!(refused.contains(&(
            "2001:db8:5::/48".into(),
            "2001:db8:5::7/128".into(),
            "a known-good address"
        )));
        // max_age: a list not refreshed for longer than it no longer counts
        let m = merge(&[], &sources, &protected, 5_000, 10_000);
        assert!(m.nets.is_empty() && m.expired == 9, "{m:?}");
        let m = merge(&[], &sources, &protected, 60_000, 10_000);
        assert_eq!(m.next_expiry_ms, Some(50_000));
        assert_eq!(m.nets.len(), 3);
    }
}
