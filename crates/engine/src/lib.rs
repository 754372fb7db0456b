//! # sipwall-engine — the decision engine
//!
//! CONTRACT:
//! * Pure: no I/O, no clock (time is passed in as [`Timestamp`]), no threads, `forbid(unsafe_code)`.
//! * Deterministic: the same policy, packets and times give the same decisions. (Hash maps use
//!   a per-process random seed against crafted collisions; nothing decided or reported depends
//!   on their iteration order.)
//! * Every packet gets a [`Decision`]: a [`Verdict`], any [`BanAction`]s for the enforcer, and for
//!   anything but a plain accept a [`DecisionRecord`] (rule id, evidence, a readable sentence).
//!   A trusted source's hostile-looking request is accepted WITH a record (`trusted.oddity`).
//! * The accept path allocates nothing (tested with a counting allocator); learning a NEW fact
//!   (an upstream, a local user, a known-good client) allocates its record once, refreshing it
//!   does not.
//! * Memory is bounded: per-source state is capped at `limits.max_tracked_sources`
//!   (least recently seen evicted first, [`BYTES_PER_SOURCE`] bytes each); bans at
//!   `limits.max_bans`; offence history at `limits.max_ban_history`.
//! * Trusted sources (and learned upstreams) are never banned and never dropped by detection.
//!   No ban ever covers a trusted network, a local address, a known-good address or a learned
//!   upstream; a learned known-good client is never inside an automatic aggregate (an exact
//!   signature ban still applies). See `bans.rs` and `learn.rs`.
//! * Learning acts only on evidence a forged packet cannot give (`learn.rs`): answers from the
//!   exact address and port of a request the protected side sent, matching its transaction,
//!   and 2xx answers the protected side itself sent.
//! * Several threads, one engine: the stateless half of a decision (parse, fields, signature
//!   scan: most of its cost) is [`Rules::analyse`] on the shared, immutable [`Rules`]; only
//!   [`Engine::decide_analysed`] needs `&mut Engine` (per-source state, bans). Together they
//!   decide exactly as [`Engine::decide`] (tested on every recorded scenario); an analysis
//!   made under rules that [`Engine::reload`] has since replaced is ignored and redone.
//!
//! USE:
//! ```text
//! let mut policy = Policy::from_toml_str(text)?;     // errors name key + line
//! for w in policy.warnings() { warn!("{w}"); }       // accepted but risky settings
//! for f in &policy.blocklist_files.clone() { policy.load_blocklist_text(f, &read(f)?)?; }
//! let mut engine = Engine::new(policy);
//! engine.set_local_addresses(&interface_addresses);  // never banned (nor trusted, known-good)
//! let d = engine.decide(&Packet { src, dst, transport, direction, payload }, now);
//! // or, from threads sharing Mutex<Engine>: analyse unlocked, lock only to decide
//! let rules = engine.rules().clone();                // Arc<Rules>; refresh after reload
//! let d = engine.decide_analysed(&packet, &rules.analyse(&packet), now);
//! for action in &d.bans { /* push into kernel set + store */ }
//! engine.ban_manual(net, duration, reason, now)?;   // Err(BanError) says why not
//! engine.unban(net);
//! engine.expire(now) -> Vec<BanAction>;            // removals of expired bans
//! engine.bans() -> iterator of &Ban;  engine.restore_ban(ban, now) // from the store at start
//! engine.reload(policy) -> Vec<BanAction>;           // keeps bans and behaviour state
//!
//! // learning ([learn], module `learn`): facts proved by the protected side's own traffic
//! engine.learn_status() -> LearnStatus;             // mode, enforcing?, sizes, generation
//! engine.learned() -> Vec<LearnedFact>;             // sorted; persist when generation moves
//! engine.restore_learned(fact, now) -> Option<Vec<BanAction>>;  // at start, from the store
//! engine.pin_learned(key, now)? ; engine.unpin_learned(key, now)? ; engine.forget_learned(&key)?
//! engine.campaigns(now) -> Vec<Campaign>;           // active distributed scans
//! ```
//! A decision may carry `BanAction::Remove`s besides its verdict: when a packet taught that an
//! address is an upstream or a known-good client, bans now covering it are lifted.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod bans;
mod behaviour;
mod decision;
mod engine;
mod fasthash;
pub mod learn;
mod netset;
pub mod policy;
pub mod signatures;

pub use behaviour::{bytes_per_source, BYTES_PER_SOURCE};
pub use decision::{
    Ban, BanAction, BanOrigin, Decision, DecisionRecord, Direction, Evidence, Packet,
    ParseNameError, RuleId, Timestamp, Transport, Verdict,
};
pub use engine::{human_duration, Analysis, BanError, Engine, EngineStats, Rules};
pub use learn::{
    fingerprint, fingerprint_label, Campaign, CampaignKind, FactKey, LearnError, LearnStatus,
    LearnedFact,
};
pub use netset::NetSet;
pub use policy::{
    Action, BlocklistLoad, CampaignPolicy, LearnMode, LearnPolicy, Policy, PolicyError,
    PolicyWarning,
};
pub use signatures::{signatures_markdown, Signature, BUILTIN};
