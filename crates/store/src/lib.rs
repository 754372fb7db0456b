//! # sipwall-store — the embedded, durable state of sipwall
//!
//! One SQLite file (no server to run) holding:
//! * **bans**: one current row per network with reason, rule, evidence, since/until, origin and
//!   escalation count; what [`Store::load_active_bans`] puts back into the kernel sets at start;
//! * **ban history** and **offence counts**, which outlive expired and purged bans, so escalation
//!   (address → longer ban → range) survives restarts;
//! * **recent decisions** (verdict, rule, summary, evidence) with bounded retention.
//!
//! ## Usage
//! ```
//! use sipwall_engine::{Ban, BanOrigin, Evidence, Timestamp};
//! use sipwall_store::{Prune, Store};
//!
//! # fn main() -> Result<(), sipwall_store::StoreError> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("sipwall.db");
//! let mut store = Store::open(&path)?;          // creates (0600) or migrates the schema
//! let now = Timestamp::from_millis(1_700_000_000_000);
//! let ban = Ban {
//!     net: "192.0.2.7/32".parse().unwrap(),
//!     since: now,
//!     until: Timestamp::from_millis(now.as_millis() + 3_600_000),
//!     count: 1,
//!     rule: "signature.sipvicious-ua".into(),
//!     reason: "User-Agent friendly-scanner".into(),
//!     evidence: Evidence::default(),
//!     origin: BanOrigin::Detection,
//! };
//! store.record_ban(&ban)?;                       // Ok = on disk, survives kill -9 and power loss
//! assert_eq!(store.load_active_bans(now)?, vec![ban.clone()]);
//! assert_eq!(store.offence_count(ban.net)?, 1);
//! store.purge_expired(now)?;                     // drops bans whose `until <= now`
//! store.prune_decisions(Prune::KeepLast(10_000))?;
//! # Ok(()) }
//! ```
//!
//! ## Wiring in the daemon
//! * **Start**, before the queue opens: `Store::open(state_dir.join("sipwall.db"))` (the
//!   daemon's `STATE_DIR/sipwall.db`); for each ban of `load_active_bans(now)` add `ban.net`
//!   to the kernel set with timeout `until - now` and give it to the engine
//!   (`engine.restore_ban(ban, now)`); `load_offences()` gives each network's count and last
//!   ban end, which the daemon hands to `engine.restore_offence` so escalation survives.
//! * **Engine `BanAction::Add(ban)`**: `record_ban(&ban)` (or `record_bans` for several
//!   gathered at once). Only its `Ok` makes the ban durable: the daemon decides whether it
//!   calls this before or after the kernel-set insert. **`BanAction::Remove(net)`** (an
//!   unban, or an expiry: the daemon runs `engine.expire(now)` periodically and writes its
//!   removals): `remove_ban(net)`. This is how expired bans leave the `bans` table.
//! * **Decisions** (drops, rejects): send `(at, src, verdict, record)` to a writer thread
//!   that calls `record_decisions` with what has queued up; one `record_decision` per packet
//!   would cost one `fsync` per packet.
//! * **Periodically**, from the same writer thread: `prune_history(now - bans.forget_after)`
//!   forgets history and offence counts the engine would ignore anyway. Decisions are capped
//!   by the store itself ([`DEFAULT_DECISION_CAP`]). The daemon calls neither
//!   [`Store::purge_expired`] (expiry reaches the store as removals, above; the method stays
//!   for offline maintenance and tests) nor [`Store::prune_decisions`] (the cap bounds them).
//! * **Offline queries** (`sipwall bans` / `decisions` without the daemon):
//!   [`Store::open_read_only`] opens an existing file with `SQLITE_OPEN_READ_ONLY` and
//!   `query_only`: it never creates or migrates a file, names the path when there is none, and
//!   reads beside a running writer (WAL).
//! * Networks are keyed exactly as given (after `trunc`): an IPv4 source seen as
//!   `::ffff:192.0.2.1` must be mapped to `192.0.2.1/32` by the caller, or it is another key.
//!
//! ## Contract
//! * **Durability.** When [`Store::record_ban`] / [`Store::record_bans`] (or any write) returns
//!   `Ok`, the data survives `kill -9` of the process, and also an OS crash or power loss.
//!   Why: the file is in write-ahead-log mode (`journal_mode=WAL`) with `synchronous=FULL`.
//!   Every write is one transaction; at COMMIT SQLite `write()`s the transaction's pages and a
//!   commit frame to the `-wal` file and then `fsync()`s it before returning. A process kill
//!   cannot undo a completed `write()` (the data is in the kernel page cache, which outlives
//!   the process), and the `fsync` puts it on the disk for the OS-crash case. On the next
//!   open SQLite replays every WAL frame up to the last valid commit frame, so a transaction
//!   is either wholly there (if its commit returned) or wholly absent (if it was cut mid-way).
//!   `synchronous=NORMAL` would be enough for `kill -9` alone but can lose the last commits on
//!   power loss; the cost of FULL is one `fsync` per commit, so batch with `record_bans`.
//!   `tests/kill9.rs` SIGKILLs a writer mid-stream and checks every acknowledged ban.
//! * **Atomic ban writes.** A ban, its history row and its offence count are written in one
//!   transaction; a failed batch stores none of it.
//! * **Upsert by network.** Networks are normalised with [`IpNet::trunc`] (host bits cleared:
//!   `192.0.2.7/24` is stored as `192.0.2.0/24`). Recording a ban for a network that already
//!   has one replaces since/until/rule/reason/evidence/origin, while the escalation `count`
//!   never decreases (`max(stored, new)`): a ban restored from a peer with a lower count
//!   cannot reset escalation.
//! * **Expiry.** A ban is active while `now < until`. [`Store::load_active_bans`] filters by
//!   the `now` you pass (no clock is read here); [`Store::purge_expired`] deletes the rest
//!   on request (the daemon removes each expired ban through `remove_ban` instead).
//! * **Time precision.** [`Timestamp`]s are stored as whole milliseconds (sub-millisecond parts
//!   are dropped; values beyond `i64::MAX` ms saturate).
//! * **One writer.** A [`Store`] is `Send` but not `Sync`: own it in one thread (e.g. a writer
//!   thread fed by a channel) or put it behind a `Mutex`. Several processes may open the same
//!   file (WAL readers never block the writer), but only one transaction writes at a time; a
//!   writer that waits longer than the busy timeout (default [`DEFAULT_BUSY_TIMEOUT`]) gets an
//!   error for which [`StoreError::is_locked`] is true, naming the path.
//! * **Errors** name the operation, the path and the network or source address; a damaged or
//!   foreign file is reported by `open` ([`StoreError::is_corrupt`]) after `PRAGMA quick_check`.
//! * **Bounded growth.** Decisions are capped automatically at [`DEFAULT_DECISION_CAP`]
//!   (newest kept; [`Store::set_decision_cap`], or [`Store::prune_decisions`] by age). Old
//!   history and offence counts ([`Store::prune_history`]) need a `now`, which this crate
//!   never reads: the daemon calls it periodically. Bans leave through `remove_ban`.
//! * **Permissions.** The database and its `-wal`/`-shm` files are owner-only (0600): they
//!   hold callers' User-Agents and Call-IDs. [`Store::open`] creates a missing file 0600 itself
//!   (SQLite gives the side files the database's mode) and clears group/other bits of existing
//!   ones. The state directory's mode is the daemon's business.
//! * **Performance.** A durable commit costs one `fsync` (see docs/BENCHMARKS.md, section
//!   "store"): write from a thread that is not the packet path, and batch where you can.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod error;
mod schema;
mod store;

pub use error::{DbError, StoreError};
pub use ipnet::IpNet;
pub use schema::SCHEMA_VERSION;
pub use store::{
    LearnedFact, Offence, Prune, Store, StoredDecision, TrustedNet, DEFAULT_BUSY_TIMEOUT,
    DEFAULT_DECISION_CAP, MAX_SHIELD_TEMPLATE,
};

pub use sipwall_engine::Timestamp;
