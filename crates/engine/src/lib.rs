//! # sipwall-engine — the decision engine
//!
//! CONTRACT:
//! * Pure: no I/O, no clock (time is passed in as [`Timestamp`]), no threads, `forbid(unsafe_code)`.
//! * Deterministic: the same policy, packets and times give the same decisions.
//! * Every packet gets a [`Decision`]: a [`Verdict`], any [`BanAction`]s for the enforcer, and for
//!   anything but a plain accept a [`DecisionRecord`] (rule id, evidence, a readable sentence).
//! * The accept path allocates nothing.
//! * Memory is bounded: per-source state is capped at `limits.max_tracked_sources`,
//!   least recently seen evicted first.
//! * Trusted sources are never banned and never dropped by detection.
//!
//! API SKETCH:
//! ```ignore
//! let policy = Policy::from_toml_str(text)?;         // errors name key + line
//! let mut engine = Engine::new(policy);
//! let d = engine.decide(&Packet { src, dst, transport, direction, payload }, now);
//! for action in &d.bans { /* push into kernel set + store */ }
//! engine.ban_manual(net, duration, reason, now); engine.unban(net);
//! engine.expire(now) -> Vec<BanAction>;            // removals of expired bans
//! engine.bans() -> iterator of &Ban;  engine.restore_ban(ban) // from the store at start
//! engine.reload(policy);                             // keeps bans and behaviour state
//! ```
#![forbid(unsafe_code)]

mod decision;
mod engine;
pub mod policy;

pub use decision::{
    Ban, BanAction, BanOrigin, Decision, DecisionRecord, Direction, Evidence, Packet, RuleId,
    Timestamp, Transport, Verdict,
};
pub use engine::{Engine, EngineStats};
pub use policy::{Policy, PolicyError};
