//! The daemon side of learning: what the queue threads and the control thread ask the ban
//! worker to make durable ([`LearnedWrite`], through its channel: the worker owns the store),
//! and what comes back from the store at start, before any queue opens ([`restore`]).
//!
//! CONTRACT: queue threads never wait for a write (`try_send`; a write lost to a full
//! channel is the next confirmation's to make); a fact or template is durable only once the
//! worker has committed it (fsynced, like a ban), so it survives kill -9 from then on.
use std::fmt;
use std::net::IpAddr;

use sipwall_engine::Timestamp;
use sipwall_store::{LearnedFact, Store};

use super::shield::Shield;

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
    /// A fact learned or confirmed.
    Fact(LearnedFact),
    /// An operator pinned (or unpinned) a fact.
    Pin {
        /// Kind of fact.
        kind: String,
        /// The fact.
        key: String,
        /// Pinned or not.
        pinned: bool,
    },
    /// An operator forgot a fact.
    Forget {
        /// Kind of fact.
        kind: String,
        /// The fact.
        key: String,
    },
}

impl fmt::Display for LearnedWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LearnedWrite::ShieldTemplate { host, method, .. } => {
                write!(f, "shield template of {host} for {method}")
            }
            LearnedWrite::Fact(l) => write!(f, "learned {} {}", l.kind, l.key),
            LearnedWrite::Pin { kind, key, pinned } => {
                write!(f, "{} of learned {kind} {key}", if *pinned { "pin" } else { "unpin" })
            }
            LearnedWrite::Forget { kind, key } => write!(f, "forgetting learned {kind} {key}"),
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
            LearnedWrite::Fact(fact) => store.record_learned(fact)?,
            LearnedWrite::Pin { kind, key, pinned } => {
                store.pin_learned(kind, key, *pinned)?;
            }
            LearnedWrite::Forget { kind, key } => {
                store.forget_learned(kind, key)?;
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
