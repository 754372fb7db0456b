//! The daemon side of learning: what the queue threads and the control thread ask the ban
//! worker to make durable ([`LearnedWrite`], through its channel: the worker owns the store),
//! and what comes back from the store at start, before any queue opens ([`restore`]).
//!
//! CONTRACT: queue threads never wait for a write (`try_send`; a write lost to a full
//! channel is the next confirmation's to make); a fact or template is durable only once the
//! worker has committed it (fsynced, like a ban), so it survives kill -9 from then on.
use std::fmt;
use std::net::IpAddr;

use std::sync::mpsc::SyncSender;
use std::sync::Mutex;

use sipwall_engine::{BanAction, Engine, FactKey, Timestamp};
use sipwall_store::{LearnedFact, Store};

use super::ban_worker::Work;
use super::control_server::Peer;
use super::lock;
use super::shield::Shield;
use crate::protocol::{Command, LearnSummary, LearnedFactView, LearnedView, Response};

/// One write of learned state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LearnedWrite {
    /// The shield's challenge form of a host and method changed.
    ShieldTemplate {
        /// The PBX (`::` for this host's own answers).
        host: IpAddr,
        /// REGISTER, INVITE or OPTIONS.
        method: &'static str,
        /// The real challenge.
        template: Vec<u8>,
        /// When it was seen.
        at: Timestamp,
    },
    /// The engine's facts changed: the store's table becomes exactly these.
    Facts(Vec<LearnedFact>),
}

impl fmt::Display for LearnedWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LearnedWrite::ShieldTemplate { host, method, .. } => {
                write!(f, "shield template of {host} for {method}")
            }
            LearnedWrite::Facts(facts) => write!(f, "{} learned fact(s)", facts.len()),
        }
    }
}

impl LearnedWrite {
    /// Apply to the store (called by the ban worker).
    pub fn apply(&self, store: &mut Store) -> anyhow::Result<()> {
        match self {
            LearnedWrite::ShieldTemplate { host, method, template, at } => {
                store.save_shield_template(*host, method, template, *at)?
            }
            LearnedWrite::Facts(facts) => {
                store.replace_learned(facts)?;
            }
        }
        Ok(())
    }
}

/// What [`restore`] put back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Shield templates.
    pub templates: usize,
    /// Learned facts.
    pub facts: usize,
}

/// Put the stored shield templates into `shield` and return the stored facts (for the
/// engine). Called at start, before any queue is bound. A read error is logged and leaves the
/// daemon to learn again from the wire (fail open: learning is an optimisation of the first
/// minutes after a start, never a reason not to start).
pub fn restore(store: &Store, shield: Option<&Shield>) -> (Restored, Vec<LearnedFact>) {
    let mut r = Restored::default();
    if let Some(shield) = shield {
        match store.load_shield_templates() {
            Ok(templates) => {
                for (host, _method, template) in templates {
                    if shield.learn(host, &template).is_some() {
                        r.templates += 1;
                    }
                }
            }
            Err(e) => log::error!("loading the shield's challenge templates: {e}"),
        }
    }
    let facts = match store.load_learned() {
        Ok(f) => f,
        Err(e) => {
            log::error!("loading learned facts: {e}");
            Vec::new()
        }
    };
    r.facts = facts.len();
    (r, facts)
}

/// The engine's fact in the store's shape (kind and value as `FactKey` prints them).
pub fn to_store(f: &sipwall_engine::LearnedFact) -> LearnedFact {
    LearnedFact {
        kind: f.key.kind().to_string(),
        key: f.key.value(),
        first_seen: f.first_seen,
        last_seen: f.last_seen,
        evidence: f.evidence.clone(),
        pinned: f.pinned,
    }
}

/// The store's fact back in the engine's shape; None for a row this build cannot read.
pub fn from_store(f: &LearnedFact) -> Option<sipwall_engine::LearnedFact> {
    let key: FactKey = format!("{} {}", f.kind, f.key).parse().ok()?;
    Some(sipwall_engine::LearnedFact {
        key,
        first_seen: f.first_seen,
        last_seen: f.last_seen,
        evidence: f.evidence.clone(),
        pinned: f.pinned,
    })
}

/// Put stored facts into the engine (at start, before the stored bans so none comes back
/// over a learned upstream or known-good client). Returns how many were taken.
pub fn restore_into(engine: &mut Engine, facts: &[LearnedFact], now: Timestamp) -> usize {
    let mut taken = 0;
    for f in facts {
        match from_store(f) {
            Some(fact) => taken += usize::from(engine.restore_learned(fact, now).is_some()),
            None => {
                log::warn!("stored learned fact '{} {}' not understood: skipped", f.kind, f.key)
            }
        }
    }
    taken
}

/// Persists the engine's facts when they change: the supervise loop calls [`Persist::tick`]
/// about once a second; a changed generation hands the whole (bounded) table to the ban
/// worker, which writes it in one transaction.
#[derive(Debug, Default)]
pub struct Persist {
    saved: Option<u64>,
    enforcing: Option<bool>,
}

impl Persist {
    /// Check the engine; send its facts when they changed. Logs the move from "learning" to
    /// "enforcing" (and back) once.
    pub fn tick(&mut self, engine: &Mutex<Engine>, work: &SyncSender<Work>) {
        let (status, facts) = {
            let e = lock(engine);
            let status = e.learn_status();
            let facts = (self.saved != Some(status.generation)).then(|| e.learned());
            (status, facts)
        };
        if self.enforcing != Some(status.enforcing) {
            if self.enforcing.is_some() || status.enforcing {
                log::info!("learning: {}", LearnSummary::of(&status).line());
            }
            self.enforcing = Some(status.enforcing);
        }
        if let Some(facts) = facts {
            let rows = facts.iter().map(to_store).collect();
            if work.try_send(Work::Learned(LearnedWrite::Facts(rows))).is_ok() {
                self.saved = Some(status.generation);
            }
        }
    }
}

/// What `engine` learned, as operators see it (`sipwall learned`, the API, the dashboard).
/// Bounded by the `[learn]` capacities, so cheap enough to build under the engine's lock.
pub fn view(engine: &Engine) -> LearnedView {
    let status = engine.learn_status();
    let policy = &engine.policy().learn;
    LearnedView {
        mode: LearnSummary::of(&status).mode,
        enforcing: status.enforcing,
        facts: engine.learned().iter().map(|f| LearnedFactView::of(f, policy)).collect(),
    }
}

/// `learned`, `learned pin`, `learned forget` for the control socket and the HTTP API.
pub fn execute(
    cmd: Command,
    engine: &Mutex<Engine>,
    work: &SyncSender<Work>,
    now: Timestamp,
    peer: Peer,
) -> Response {
    let (message, removals): (String, Vec<BanAction>) = match cmd {
        Command::LearnedPin(key) => match lock(engine).pin_learned(key.clone(), now) {
            Ok(removals) => {
                log::info!("learned {key} pinned by {peer}");
                (format!("pinned {key}"), removals)
            }
            Err(e) => return Response::error(e),
        },
        Command::LearnedForget(key) => match lock(engine).forget_learned(&key) {
            Ok(_) => {
                log::info!("learned {key} forgotten by {peer}");
                (format!("forgot {key}"), Vec::new())
            }
            Err(e) => return Response::error(e),
        },
        _ => (String::new(), Vec::new()),
    };
    if !removals.is_empty() {
        // Bans lifted because the pinned address is protected now: kernel and store too.
        let _ = work.try_send(Work::Bans(removals));
    }
    let view = view(&lock(engine));
    let message =
        if message.is_empty() { format!("{} learned fact(s)", view.facts.len()) } else { message };
    Response { learned: Some(Box::new(view)), ..Response::done(message, None) }
}
