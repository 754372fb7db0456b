//! The [`Store`]: SQLite connection setup and the typed operations.
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use sipwall_engine::{Ban, BanOrigin, DecisionRecord, Evidence, Timestamp, Verdict};

use crate::error::{DbError, StoreError};
use crate::schema::{MIGRATIONS, SCHEMA_VERSION};

/// Decisions kept by default: older ones are deleted as new ones arrive (see
/// [`Store::set_decision_cap`]). At a few hundred bytes each, ~50 MiB at most.
pub const DEFAULT_DECISION_CAP: usize = 100_000;

/// How long a write waits for another connection's lock before failing with a locked error.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Path shown in errors of an in-memory store.
const MEMORY_PATH: &str = ":memory:";

/// The embedded store. See the crate docs for the contract.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Most decisions kept (None: unbounded). See [`Store::set_decision_cap`].
    decision_cap: Option<usize>,
    /// Decisions inserted since the cap was last enforced.
    decisions_since_cap: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Which decisions [`Store::prune_decisions`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prune {
    /// Keep the newest `n` decisions (by insertion order), delete the rest.
    KeepLast(usize),
    /// Delete decisions taken strictly before this time.
    OlderThan(Timestamp),
}

/// A network trusted at run time (`sipwall trust add`), kept across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedNet {
    /// Network (normalised with `trunc`).
    pub net: IpNet,
    /// When it was trusted.
    pub since: Timestamp,
    /// Why, and who asked (`... ; trusted by uid 0 (pid 1234)`).
    pub reason: String,
}

/// How often a network has been banned, kept after its ban expired (for escalation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offence {
    /// Network (normalised with `trunc`).
    pub net: IpNet,
    /// Highest escalation count recorded for it.
    pub count: u32,
    /// Latest `until` of its bans.
    pub last_until: Timestamp,
}

/// Largest shield template stored (a real challenge is well under 1 KB).
pub const MAX_SHIELD_TEMPLATE: usize = 4096;

/// A fact the daemon learned from the wire (see the `learned` table in the schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedFact {
    /// What it is: `upstream`, `user`, `known_good`, ...
    pub kind: String,
    /// The fact itself in canonical text (an address, a network, a user name).
    pub key: String,
    /// When it was first learned.
    pub first_seen: Timestamp,
    /// When it was last confirmed.
    pub last_seen: Timestamp,
    /// What taught it, readable (e.g. "REGISTER 2xx from 198.51.100.2:5060, Call-ID ...").
    pub evidence: String,
    /// Pinned by the operator: never expires.
    pub pinned: bool,
}

/// A decision read back by [`Store::recent_decisions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDecision {
    /// Row id; increases with insertion order.
    pub id: i64,
    /// When the packet was decided on.
    pub at: Timestamp,
    /// Packet source.
    pub src: SocketAddr,
    /// Verdict.
    pub verdict: Verdict,
    /// Rule id (owned: the engine's `&'static str` cannot be recreated from disk).
    pub rule: String,
    /// Readable sentence.
    pub summary: String,
    /// Evidence.
    pub evidence: Evidence,
}

impl Store {
    /// Opens (creating if missing) the store at `path`: WAL mode, `synchronous=FULL`, a
    /// `quick_check` of an existing file, then pending schema migrations.
    ///
    /// The parent directory must exist. Errors name `path`; a damaged or foreign file gives
    /// [`StoreError::is_corrupt`], a file locked by another writer [`StoreError::is_locked`].
    ///
    /// Owner-only files: the store holds callers' User-Agents and Call-IDs. A missing file is
    /// created here with mode 0600 before SQLite opens it (SQLite would create it 0644 minus
    /// the umask); SQLite gives the `-wal` and `-shm` side files the mode of the database file,
    /// so they are 0600 too. An existing file, and side files left by an older version, lose
    /// any group and other permission bits.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_err = |cause: DbError| StoreError::Open { path: path.clone(), cause };
        owner_only(&path).map_err(|e| open_err(DbError::Permissions(e.to_string())))?;
        let conn = Connection::open(&path).map_err(|e| open_err(e.into()))?;
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT).map_err(|e| open_err(e.into()))?;
        // The first statement that reads the file header: a foreign file fails here (NOTADB).
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))
            .map_err(|e| open_err(e.into()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_err(DbError::NotWal(mode)));
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| open_err(e.into()))?;
        // 16 MiB page cache (default 2 MiB): index pages of a large ban table stay in memory,
        // which made a batch of 100 bans ~40% cheaper in the benchmark.
        conn.pragma_update(None, "cache_size", -16384).map_err(|e| open_err(e.into()))?;
        quick_check(&conn).map_err(open_err)?;
        let mut store =
            Store { conn, path, decision_cap: Some(DEFAULT_DECISION_CAP), decisions_since_cap: 0 };
        store.migrate()?;
        Ok(store)
    }

    /// Opens an EXISTING store for reading only (`sipwall bans` / `decisions` without the
    /// daemon): `SQLITE_OPEN_READ_ONLY` plus `PRAGMA query_only`, so this connection can
    /// never create, migrate or change the file, whoever runs it. No `journal_mode` switch
    /// (that is a write) and no `quick_check` (reads report damage themselves).
    ///
    /// Reading beside a running daemon is safe: the file is in WAL mode, where a reader sees
    /// the last committed state and never blocks the writer. (SQLite may create the `-wal`
    /// and `-shm` side files to read a WAL database if they are missing; the database file
    /// itself is never created.)
    ///
    /// Errors, each naming `path`: [`StoreError::Missing`] when there is no file,
    /// [`StoreError::SchemaTooNew`] / [`StoreError::SchemaTooOld`] when its schema is not the
    /// one this build reads, `Open` for anything else (foreign file: `is_corrupt`).
    /// Every write through the returned store fails (SQLite: attempt to write a readonly
    /// database).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        use rusqlite::OpenFlags;
        let path = path.as_ref().to_path_buf();
        let open_err = |cause: DbError| StoreError::Open { path: path.clone(), cause };
        // Checked first for a clear message: SQLite's own is "unable to open database file".
        // The read-only flag below is what guarantees that nothing is created.
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(StoreError::Missing { path, detail: "not a regular file".into() }),
            Err(e) => return Err(StoreError::Missing { path, detail: e.to_string() }),
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| open_err(e.into()))?;
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT).map_err(|e| open_err(e.into()))?;
        conn.pragma_update(None, "query_only", true).map_err(|e| open_err(e.into()))?;
        let has_version: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master \
                 WHERE type = 'table' AND name = 'schema_version')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| open_err(e.into()))?;
        let found = if has_version { read_version(&conn).map_err(open_err)? } else { 0 };
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { path, found, supported: SCHEMA_VERSION });
        }
        if found < SCHEMA_VERSION {
            return Err(StoreError::SchemaTooOld { path, found, supported: SCHEMA_VERSION });
        }
        Ok(Store { conn, path, decision_cap: Some(DEFAULT_DECISION_CAP), decisions_since_cap: 0 })
    }

    /// An in-memory store (tests, offline analysis): same schema, nothing durable.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(MEMORY_PATH);
        let conn = Connection::open_in_memory()
            .map_err(|e| StoreError::Open { path: path.clone(), cause: e.into() })?;
        let mut store =
            Store { conn, path, decision_cap: Some(DEFAULT_DECISION_CAP), decisions_since_cap: 0 };
        store.migrate()?;
        Ok(store)
    }

    /// The database path (`:memory:` for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes how long a write waits for another connection's lock (default
    /// [`DEFAULT_BUSY_TIMEOUT`]).
    pub fn set_busy_timeout(&mut self, timeout: Duration) -> Result<(), StoreError> {
        self.conn
            .busy_timeout(timeout)
            .map_err(|e| StoreError::Open { path: self.path.clone(), cause: e.into() })
    }

    /// Schema version of the open file (equals [`SCHEMA_VERSION`] after a successful open).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        read_version(&self.conn)
            .map_err(|cause| StoreError::Open { path: self.path.clone(), cause })
    }

    /// Benchmark baseline only: turns off `fsync` at commit (NOT durable on power loss).
    #[doc(hidden)]
    pub fn set_synchronous_off_for_benchmarks(&mut self) -> Result<(), StoreError> {
        self.conn
            .pragma_update(None, "synchronous", "OFF")
            .map_err(|e| StoreError::Open { path: self.path.clone(), cause: e.into() })
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        self.conn
            .execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")
            .map_err(|e| StoreError::Open { path: path.clone(), cause: e.into() })?;
        let found = read_version(&self.conn)
            .map_err(|cause| StoreError::Open { path: path.clone(), cause })?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { path, found, supported: SCHEMA_VERSION });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let to = i as u32 + 1;
            let err = |e: rusqlite::Error| StoreError::Migrate {
                path: path.clone(),
                to,
                cause: e.into(),
            };
            let tx =
                self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
            // Re-read inside the write lock: another process may have migrated meanwhile.
            let now_at: u32 = tx
                .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))
                .map_err(err)?;
            if now_at >= to {
                continue;
            }
            tx.execute_batch(sql).map_err(err)?;
            tx.execute("DELETE FROM schema_version", []).map_err(err)?;
            tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [to]).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(())
    }

    // ---- bans ----------------------------------------------------------------------------

    /// Stores one ban durably (upsert by network; see the crate docs). When this returns `Ok`
    /// the ban survives `kill -9` and power loss. One transaction, one `fsync`.
    pub fn record_ban(&mut self, ban: &Ban) -> Result<(), StoreError> {
        let path = &self.path;
        let err = |cause: DbError| StoreError::RecordBan {
            net: ban.net.trunc(),
            path: path.clone(),
            cause,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| err(e.into()))?;
        write_ban(&tx, ban).map_err(err)?;
        tx.commit().map_err(|e| err(e.into()))
    }

    /// Stores many bans in ONE transaction (one `fsync`): all or none. An empty slice is a no-op.
    pub fn record_bans(&mut self, bans: &[Ban]) -> Result<(), StoreError> {
        let Some(first) = bans.first() else { return Ok(()) };
        let path = &self.path;
        let err = |cause: DbError| StoreError::RecordBans {
            count: bans.len(),
            first: first.net.trunc(),
            path: path.clone(),
            cause,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| err(e.into()))?;
        for ban in bans {
            write_ban(&tx, ban).map_err(err)?;
        }
        tx.commit().map_err(|e| err(e.into()))
    }

    /// Removes the current ban of `net` (an unban). History and offence count are kept, so a
    /// later ban still escalates. Returns whether a ban was there.
    pub fn remove_ban(&mut self, net: IpNet) -> Result<bool, StoreError> {
        let net = net.trunc();
        let n = self
            .conn
            .execute("DELETE FROM bans WHERE net = ?1", [net.to_string()])
            .map_err(|e| StoreError::RemoveBan { net, path: self.path.clone(), cause: e.into() })?;
        Ok(n > 0)
    }

    /// Every ban with `now < until`, ordered by network text. What the daemon loads into the
    /// kernel sets (and the engine) at start.
    pub fn load_active_bans(&self, now: Timestamp) -> Result<Vec<Ban>, StoreError> {
        let err = |cause: DbError| StoreError::Load {
            what: "active bans",
            path: self.path.clone(),
            cause,
        };
        read_rows(
            &self.conn,
            &format!("SELECT {BAN_COLUMNS} FROM bans WHERE until_ms > ?1 ORDER BY net"),
            [ms(now)],
            err,
            |r| Ok(read_ban(r, "bans")),
        )
    }

    /// The current ban row of `net`, expired or not (None if never banned or removed/purged).
    pub fn get_ban(&self, net: IpNet) -> Result<Option<Ban>, StoreError> {
        let net = net.trunc();
        let err = |cause: DbError| StoreError::ReadBan {
            what: "ban",
            net,
            path: self.path.clone(),
            cause,
        };
        let row = self
            .conn
            .query_row(
                &format!("SELECT {BAN_COLUMNS} FROM bans WHERE net = ?1"),
                [net.to_string()],
                |r| Ok(read_ban(r, "bans")),
            )
            .optional()
            .map_err(|e| err(e.into()))?;
        row.transpose().map_err(err)
    }

    /// Every ban ever recorded for `net` (each `record_ban` call), oldest first, until
    /// pruned by [`Store::prune_history`].
    pub fn ban_history(&self, net: IpNet) -> Result<Vec<Ban>, StoreError> {
        let net = net.trunc();
        let err = |cause: DbError| StoreError::ReadBan {
            what: "ban history",
            net,
            path: self.path.clone(),
            cause,
        };
        read_rows(
            &self.conn,
            &format!("SELECT {BAN_COLUMNS} FROM ban_history WHERE net = ?1 ORDER BY id"),
            [net.to_string()],
            err,
            |r| Ok(read_ban(r, "ban_history")),
        )
    }

    /// Highest escalation count ever recorded for `net` (0 if never banned). Survives
    /// expiry, [`Store::purge_expired`] and [`Store::remove_ban`]; only
    /// [`Store::prune_history`] forgets it.
    pub fn offence_count(&self, net: IpNet) -> Result<u32, StoreError> {
        let net = net.trunc();
        let count: Option<i64> = self
            .conn
            .query_row("SELECT count FROM offences WHERE net = ?1", [net.to_string()], |r| r.get(0))
            .optional()
            .map_err(|e| StoreError::ReadBan {
                what: "offence count",
                net,
                path: self.path.clone(),
                cause: e.into(),
            })?;
        Ok(count.map_or(0, clamp_u32))
    }

    /// Trust `net` from `since` (a run-time trust; the config's networks are not stored).
    /// Returns false, changing nothing, when it is trusted here already.
    pub fn add_trusted(
        &mut self,
        net: IpNet,
        since: Timestamp,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let net = net.trunc();
        let n = self
            .conn
            .execute(
                "INSERT INTO trusted (net, since_ms, reason) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(net) DO NOTHING",
                params![net.to_string(), ms(since), reason],
            )
            .map_err(|e| StoreError::Trust {
                what: "adding",
                net,
                path: self.path.clone(),
                cause: e.into(),
            })?;
        Ok(n > 0)
    }

    /// Stop trusting `net` (exactly as added). Returns whether it was there.
    pub fn remove_trusted(&mut self, net: IpNet) -> Result<bool, StoreError> {
        let net = net.trunc();
        let n = self
            .conn
            .execute("DELETE FROM trusted WHERE net = ?1", [net.to_string()])
            .map_err(|e| StoreError::Trust {
                what: "removing",
                net,
                path: self.path.clone(),
                cause: e.into(),
            })?;
        Ok(n > 0)
    }

    /// Every run-time trusted network, ordered by network text.
    pub fn load_trusted(&self) -> Result<Vec<TrustedNet>, StoreError> {
        let err = |cause: DbError| StoreError::Load {
            what: "trusted networks",
            path: self.path.clone(),
            cause,
        };
        read_rows(
            &self.conn,
            "SELECT net, since_ms, reason FROM trusted ORDER BY net",
            [],
            err,
            |r| {
                let net: String = r.get(0)?;
                let since: i64 = r.get(1)?;
                let reason: String = r.get(2)?;
                let bad = |d: String| decode("trusted", format!("net {net}"), d);
                Ok((|| {
                    Ok(TrustedNet {
                        net: parse_net(&net).map_err(bad)?,
                        since: ts(since).map_err(bad)?,
                        reason,
                    })
                })())
            },
        )
    }

    /// Every network's offence count, so the engine can keep escalating after a restart.
    pub fn load_offences(&self) -> Result<Vec<Offence>, StoreError> {
        let err =
            |cause: DbError| StoreError::Load { what: "offences", path: self.path.clone(), cause };
        read_rows(
            &self.conn,
            "SELECT net, count, last_until_ms FROM offences ORDER BY net",
            [],
            err,
            |r| {
                let net: String = r.get(0)?;
                let count: i64 = r.get(1)?;
                let until: i64 = r.get(2)?;
                let bad = |d: String| decode("offences", format!("net {net}"), d);
                Ok((|| {
                    Ok(Offence {
                        net: parse_net(&net).map_err(bad)?,
                        count: clamp_u32(count),
                        last_until: ts(until).map_err(bad)?,
                    })
                })())
            },
        )
    }

    /// Deletes bans with `until <= now`; returns how many. History and offence counts stay.
    pub fn purge_expired(&mut self, now: Timestamp) -> Result<usize, StoreError> {
        self.conn.execute("DELETE FROM bans WHERE until_ms <= ?1", [ms(now)]).map_err(|e| {
            StoreError::Prune { what: "expired bans", path: self.path.clone(), cause: e.into() }
        })
    }

    /// Forgets history rows whose ban ended before `before`, and offence counts whose last ban
    /// ended before `before` (escalation restarts from 1 for them). Returns history rows deleted.
    pub fn prune_history(&mut self, before: Timestamp) -> Result<usize, StoreError> {
        let path = &self.path;
        let err = |e: rusqlite::Error| StoreError::Prune {
            what: "ban history",
            path: path.clone(),
            cause: e.into(),
        };
        let tx =
            self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        let n =
            tx.execute("DELETE FROM ban_history WHERE until_ms < ?1", [ms(before)]).map_err(err)?;
        tx.execute("DELETE FROM offences WHERE last_until_ms < ?1", [ms(before)]).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(n)
    }

    // ---- learned facts and shield templates ----------------------------------------------

    /// Records a learned fact, or refreshes it: a new row keeps `first_seen`; an existing one
    /// keeps its first seen and pin and takes `last_seen` and `evidence`. Durable (fsynced)
    /// when it returns, like every write: callers batch their refreshes (a fact seen again
    /// within a minute need not be written again).
    pub fn record_learned(&mut self, fact: &LearnedFact) -> Result<(), StoreError> {
        let key = format!("{} {}", fact.kind, fact.key);
        let path = &self.path;
        let err = |cause: DbError| StoreError::WriteLearned {
            what: "learned fact",
            key: key.as_str().into(),
            path: path.clone(),
            cause,
        };
        self.conn
            .prepare_cached(
                "INSERT INTO learned (kind, key, first_seen_ms, last_seen_ms, evidence, pinned)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (kind, key) DO UPDATE SET
                   last_seen_ms = max(last_seen_ms, excluded.last_seen_ms),
                   evidence = excluded.evidence,
                   pinned = max(pinned, excluded.pinned)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    fact.kind,
                    fact.key,
                    ms(fact.first_seen),
                    ms(fact.last_seen),
                    fact.evidence,
                    fact.pinned as i64
                ])
            })
            .map_err(|e| err(e.into()))?;
        Ok(())
    }

    /// Makes the `learned` table exactly `facts` (in one transaction: all or nothing), for a
    /// daemon that persists its engine's facts whenever they change. Returns rows deleted.
    pub fn replace_learned(&mut self, facts: &[LearnedFact]) -> Result<usize, StoreError> {
        let key = format!("({} facts)", facts.len());
        let path = &self.path;
        let err = |cause: DbError| StoreError::WriteLearned {
            what: "learned facts",
            key: key.as_str().into(),
            path: path.clone(),
            cause,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| err(e.into()))?;
        let before: i64 = tx
            .query_row("SELECT count(*) FROM learned", [], |r| r.get(0))
            .map_err(|e| err(e.into()))?;
        tx.execute("DELETE FROM learned", []).map_err(|e| err(e.into()))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO learned
                     (kind, key, first_seen_ms, last_seen_ms, evidence, pinned)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(|e| err(e.into()))?;
            for f in facts {
                st.execute(params![
                    f.kind,
                    f.key,
                    ms(f.first_seen),
                    ms(f.last_seen),
                    f.evidence,
                    f.pinned as i64
                ])
                .map_err(|e| err(e.into()))?;
            }
        }
        tx.commit().map_err(|e| err(e.into()))?;
        Ok(usize::try_from(before).unwrap_or(0).saturating_sub(facts.len()))
    }

    /// Pins (`true`) or unpins a learned fact. Returns false when there is no such fact.
    pub fn pin_learned(&mut self, kind: &str, key: &str, pinned: bool) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE learned SET pinned = ?3 WHERE kind = ?1 AND key = ?2",
                params![kind, key, pinned as i64],
            )
            .map_err(|e| StoreError::WriteLearned {
                what: "pin of learned fact",
                key: format!("{kind} {key}").into(),
                path: self.path.clone(),
                cause: e.into(),
            })?;
        Ok(n > 0)
    }

    /// Forgets a learned fact (pinned or not). Returns false when there was none.
    pub fn forget_learned(&mut self, kind: &str, key: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM learned WHERE kind = ?1 AND key = ?2", params![kind, key])
            .map_err(|e| StoreError::WriteLearned {
                what: "removal of learned fact",
                key: format!("{kind} {key}").into(),
                path: self.path.clone(),
                cause: e.into(),
            })?;
        Ok(n > 0)
    }

    /// Every learned fact, by kind then key.
    pub fn load_learned(&self) -> Result<Vec<LearnedFact>, StoreError> {
        let err = |cause: DbError| StoreError::Load {
            what: "learned facts",
            path: self.path.clone(),
            cause,
        };
        read_rows(
            &self.conn,
            "SELECT kind, key, first_seen_ms, last_seen_ms, evidence, pinned FROM learned
             ORDER BY kind, key",
            [],
            err,
            |r| {
                let kind: String = r.get(0)?;
                let key: String = r.get(1)?;
                let first: i64 = r.get(2)?;
                let last: i64 = r.get(3)?;
                let evidence: String = r.get(4)?;
                let pinned: i64 = r.get(5)?;
                let bad = |d: String| decode("learned", format!("{kind} {key}"), d);
                Ok((|| {
                    Ok(LearnedFact {
                        first_seen: ts(first).map_err(bad)?,
                        last_seen: ts(last).map_err(bad)?,
                        kind: kind.clone(),
                        key: key.clone(),
                        evidence,
                        pinned: pinned != 0,
                    })
                })())
            },
        )
    }

    /// Keeps `template` as the shield's challenge form of `host` for `method` (replacing the
    /// previous one). Templates over [`MAX_SHIELD_TEMPLATE`] bytes are refused.
    pub fn save_shield_template(
        &mut self,
        host: IpAddr,
        method: &str,
        template: &[u8],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let err = |cause: DbError| StoreError::WriteLearned {
            what: "shield template",
            key: format!("{host} {method}").into(),
            path: self.path.clone(),
            cause,
        };
        if template.len() > MAX_SHIELD_TEMPLATE {
            return Err(err(DbError::Decode {
                table: "shield_templates",
                key: format!("{host} {method}"),
                detail: format!("{} bytes, over {MAX_SHIELD_TEMPLATE}", template.len()),
            }));
        }
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO shield_templates (host, method, at_ms, template)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| st.execute(params![host.to_string(), method, ms(at), template]))
            .map_err(|e| err(e.into()))?;
        Ok(())
    }

    /// Every stored shield template: (host, method, template).
    pub fn load_shield_templates(&self) -> Result<Vec<(IpAddr, String, Vec<u8>)>, StoreError> {
        let err = |cause: DbError| StoreError::Load {
            what: "shield templates",
            path: self.path.clone(),
            cause,
        };
        read_rows(
            &self.conn,
            "SELECT host, method, template FROM shield_templates ORDER BY host",
            [],
            err,
            |r| {
                let (host, method): (String, String) = (r.get(0)?, r.get(1)?);
                let template: Vec<u8> = r.get(2)?;
                Ok(match host.parse::<IpAddr>() {
                    Ok(ip) => Ok((ip, method, template)),
                    Err(e) => {
                        Err(decode("shield_templates", format!("{host} {method}"), format!("{e}")))
                    }
                })
            },
        )
    }

    // ---- decisions -----------------------------------------------------------------------

    /// Stores one decision (anything but a plain accept has a [`DecisionRecord`]). Returns its id.
    /// Durable like every write, so it costs an `fsync`: prefer [`Store::record_decisions`].
    pub fn record_decision(
        &mut self,
        at: Timestamp,
        src: SocketAddr,
        verdict: Verdict,
        record: &DecisionRecord,
    ) -> Result<i64, StoreError> {
        let path = &self.path;
        let err = |cause: DbError| StoreError::RecordDecision { src, path: path.clone(), cause };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| err(e.into()))?;
        let id = write_decision(&tx, at, src, verdict, record).map_err(err)?;
        tx.commit().map_err(|e| err(e.into()))?;
        self.after_decisions(1, src)?;
        Ok(id)
    }

    /// Stores many decisions in one transaction (all or none; one `fsync`). Returns how many.
    pub fn record_decisions<'a, I>(&mut self, items: I) -> Result<usize, StoreError>
    where
        I: IntoIterator<Item = (Timestamp, SocketAddr, Verdict, &'a DecisionRecord)>,
    {
        let items: Vec<_> = items.into_iter().collect();
        let Some(&(_, first_src, _, _)) = items.first() else { return Ok(0) };
        let path = &self.path;
        let err = |src: SocketAddr, cause: DbError| StoreError::RecordDecision {
            src,
            path: path.clone(),
            cause,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| err(first_src, e.into()))?;
        for &(at, src, verdict, record) in &items {
            write_decision(&tx, at, src, verdict, record).map_err(|c| err(src, c))?;
        }
        tx.commit().map_err(|e| err(first_src, e.into()))?;
        self.after_decisions(items.len(), first_src)?;
        Ok(items.len())
    }

    /// Bounds the decisions table: once more than 1% of `cap` (at least 100) decisions have
    /// been added since the last check, the oldest beyond `cap` are deleted. `None` turns the
    /// automatic bound off (then call [`Store::prune_decisions`] yourself). Default
    /// [`DEFAULT_DECISION_CAP`]. The check deletes in its own small transaction.
    pub fn set_decision_cap(&mut self, cap: Option<usize>) {
        self.decision_cap = cap;
    }

    fn after_decisions(&mut self, added: usize, src: SocketAddr) -> Result<(), StoreError> {
        let Some(cap) = self.decision_cap else { return Ok(()) };
        self.decisions_since_cap += added;
        if self.decisions_since_cap >= (cap / 100).max(100) {
            self.decisions_since_cap = 0;
            // The decisions themselves are committed; a failure here is reported, not undone.
            self.prune_decisions(Prune::KeepLast(cap)).map_err(|e| match e {
                StoreError::Prune { path, cause, .. } => {
                    StoreError::RecordDecision { src, path, cause }
                }
                other => other,
            })?;
        }
        Ok(())
    }

    /// The newest `limit` decisions, newest first.
    pub fn recent_decisions(&self, limit: usize) -> Result<Vec<StoredDecision>, StoreError> {
        let err = |cause: DbError| StoreError::Load {
            what: "recent decisions",
            path: self.path.clone(),
            cause,
        };
        read_rows(
            &self.conn,
            "SELECT id, at_ms, src_ip, src_port, verdict, rule, summary, evidence \
             FROM decisions ORDER BY id DESC LIMIT ?1",
            [i64::try_from(limit).unwrap_or(i64::MAX)],
            err,
            |r| Ok(read_decision(r)),
        )
    }

    /// Deletes old decisions; returns how many.
    pub fn prune_decisions(&mut self, keep: Prune) -> Result<usize, StoreError> {
        let r = match keep {
            Prune::KeepLast(n) => self.conn.execute(
                "DELETE FROM decisions WHERE id <= \
                 (SELECT id FROM decisions ORDER BY id DESC LIMIT 1 OFFSET ?1)",
                [i64::try_from(n).unwrap_or(i64::MAX)],
            ),
            Prune::OlderThan(t) => {
                self.conn.execute("DELETE FROM decisions WHERE at_ms < ?1", [ms(t)])
            }
        };
        r.map_err(|e| StoreError::Prune {
            what: "decisions",
            path: self.path.clone(),
            cause: e.into(),
        })
    }
}

// ---- row encoding ---------------------------------------------------------------------------

const BAN_COLUMNS: &str = "net, since_ms, until_ms, count, rule, reason, evidence, origin";

fn write_ban(tx: &rusqlite::Transaction<'_>, ban: &Ban) -> Result<(), DbError> {
    let net = ban.net.trunc().to_string();
    let evidence = serde_json::to_string(&ban.evidence).map_err(DbError::Encode)?;
    let (since, until, count) = (ms(ban.since), ms(ban.until), i64::from(ban.count));
    let origin = ban.origin.as_str();
    tx.prepare_cached(
        "INSERT INTO bans (net, since_ms, until_ms, count, rule, reason, evidence, origin) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT(net) DO UPDATE SET since_ms = excluded.since_ms, \
           until_ms = excluded.until_ms, count = max(bans.count, excluded.count), \
           rule = excluded.rule, reason = excluded.reason, evidence = excluded.evidence, \
           origin = excluded.origin",
    )?
    .execute(params![net, since, until, count, ban.rule, ban.reason, evidence, origin])?;
    tx.prepare_cached(
        "INSERT INTO ban_history (net, since_ms, until_ms, count, rule, reason, evidence, origin) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![net, since, until, count, ban.rule, ban.reason, evidence, origin])?;
    tx.prepare_cached(
        "INSERT INTO offences (net, count, last_until_ms) VALUES (?1, ?2, ?3) \
         ON CONFLICT(net) DO UPDATE SET count = max(offences.count, excluded.count), \
           last_until_ms = max(offences.last_until_ms, excluded.last_until_ms)",
    )?
    .execute(params![net, count, until])?;
    Ok(())
}

fn read_ban(r: &Row<'_>, table: &'static str) -> Result<Ban, DbError> {
    let net: String = r.get(0)?;
    let bad = |d: String| decode(table, format!("net {net}"), d);
    let origin: String = r.get(7)?;
    let evidence: String = r.get(6)?;
    let count: i64 = r.get(3)?;
    Ok(Ban {
        net: parse_net(&net).map_err(bad)?,
        since: ts(r.get(1)?).map_err(bad)?,
        until: ts(r.get(2)?).map_err(bad)?,
        count: u32::try_from(count).map_err(|_| bad(format!("count {count} out of range")))?,
        rule: r.get(4)?,
        reason: r.get(5)?,
        evidence: parse_evidence(&evidence).map_err(bad)?,
        origin: origin.parse::<BanOrigin>().map_err(|e| bad(e.to_string()))?,
    })
}

fn write_decision(
    tx: &rusqlite::Transaction<'_>,
    at: Timestamp,
    src: SocketAddr,
    verdict: Verdict,
    record: &DecisionRecord,
) -> Result<i64, DbError> {
    let evidence = serde_json::to_string(&record.evidence).map_err(DbError::Encode)?;
    tx.prepare_cached(
        "INSERT INTO decisions (at_ms, src_ip, src_port, verdict, rule, summary, evidence) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        ms(at),
        src.ip().to_string(),
        src.port(),
        verdict.to_string(),
        record.rule,
        record.summary,
        evidence
    ])?;
    Ok(tx.last_insert_rowid())
}

fn read_decision(r: &Row<'_>) -> Result<StoredDecision, DbError> {
    let id: i64 = r.get(0)?;
    let bad = |d: String| decode("decisions", format!("id {id}"), d);
    let ip: String = r.get(2)?;
    let port: i64 = r.get(3)?;
    let verdict: String = r.get(4)?;
    let evidence: String = r.get(7)?;
    let ip: IpAddr = ip.parse().map_err(|e| bad(format!("source address {ip:?}: {e}")))?;
    let port = u16::try_from(port).map_err(|_| bad(format!("source port {port} out of range")))?;
    Ok(StoredDecision {
        id,
        at: ts(r.get(1)?).map_err(bad)?,
        src: SocketAddr::new(ip, port),
        verdict: verdict.parse::<Verdict>().map_err(|e| bad(e.to_string()))?,
        rule: r.get(5)?,
        summary: r.get(6)?,
        evidence: parse_evidence(&evidence).map_err(bad)?,
    })
}

/// Run `sql` with `params` and read every row with `read`, which may refuse a row's contents
/// (a decode error); any failure comes back as `err` of it. The one loop every loader shares.
fn read_rows<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    err: impl Fn(DbError) -> StoreError,
    read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<Result<T, DbError>>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(|e| err(e.into()))?;
    let rows = stmt.query_map(params, read).map_err(|e| err(e.into()))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(|e| err(e.into()))?.map_err(&err)?);
    }
    Ok(out)
}

fn decode(table: &'static str, key: String, detail: String) -> DbError {
    DbError::Decode { table, key, detail }
}

/// Milliseconds since the epoch, saturating (a "forever" ban of `Duration::MAX` stays forever).
fn ms(t: Timestamp) -> i64 {
    i64::try_from(t.0.as_millis()).unwrap_or(i64::MAX)
}

fn ts(ms: i64) -> Result<Timestamp, String> {
    u64::try_from(ms).map(Timestamp::from_millis).map_err(|_| format!("negative time {ms} ms"))
}

fn clamp_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse().map_err(|e| format!("network {s:?}: {e}"))
}

/// Mirror of [`Evidence`] for reading JSON back (the engine's type only derives `Serialize`).
/// Every field defaults and unknown fields are ignored, so rows written by an engine with more
/// or fewer evidence fields still load.
#[derive(serde::Deserialize)]
#[serde(default)]
#[derive(Default)]
struct EvidenceRow {
    method: Option<String>,
    user_agent: Option<String>,
    call_id: Option<String>,
    target_user: Option<String>,
    users_probed: Vec<String>,
    counters: Vec<(String, u64)>,
    signatures: Vec<String>,
}

fn parse_evidence(json: &str) -> Result<Evidence, String> {
    let e: EvidenceRow = serde_json::from_str(json).map_err(|e| format!("evidence JSON: {e}"))?;
    // `..Default::default()` keeps this compiling if the engine adds evidence fields.
    #[allow(clippy::needless_update)]
    Ok(Evidence {
        method: e.method,
        user_agent: e.user_agent,
        call_id: e.call_id,
        target_user: e.target_user,
        users_probed: e.users_probed,
        counters: e.counters,
        signatures: e.signatures,
        ..Default::default()
    })
}

fn read_version(conn: &Connection) -> Result<u32, DbError> {
    let v: i64 =
        conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))?;
    Ok(clamp_u32(v))
}

/// `PRAGMA quick_check`: O(size of file), catches damaged pages that opening alone would not.
fn quick_check(conn: &Connection) -> Result<(), DbError> {
    let mut stmt = conn.prepare("PRAGMA quick_check")?;
    let problems: Vec<String> =
        stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<_, _>>()?;
    if problems.len() == 1 && problems[0] == "ok" {
        Ok(())
    } else {
        Err(DbError::Corrupt(format!("quick_check: {}", problems.join("; "))))
    }
}

/// Create `path` empty with mode 0600 if it is missing (an empty file is an empty SQLite
/// database), and clear group/other bits of it and of existing `-wal`/`-shm` files.
fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let mut names = vec![path.to_path_buf()];
    for side in ["-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(side);
        names.push(PathBuf::from(p));
    }
    for p in names {
        // Only regular files: a symlink or device is SQLite's to refuse, not ours to chmod.
        let Ok(m) = std::fs::symlink_metadata(&p) else { continue };
        if m.is_file() && m.permissions().mode() & 0o077 != 0 {
            let mode = m.permissions().mode() & 0o700;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn trusted_networks_are_kept_and_removed_exactly() {
        let mut st = Store::open_in_memory().unwrap();
        let net: IpNet = "203.0.113.0/24".parse().unwrap();
        let t = Timestamp::from_millis(5_000);
        assert!(st.load_trusted().unwrap().is_empty());
        assert!(st.add_trusted(net, t, "provider B; trusted by uid 0 (pid 1)").unwrap());
        assert!(!st.add_trusted(net, t, "again").unwrap(), "a second add changes nothing");
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(st.add_trusted(v6, t, "").unwrap());
        let all = st.load_trusted().unwrap();
        assert_eq!(all.len(), 2);
        let first = all.iter().find(|t| t.net == net).unwrap();
        assert_eq!(first.reason, "provider B; trusted by uid 0 (pid 1)");
        assert_eq!(first.since, t);
        assert!(!st.remove_trusted("203.0.113.7/32".parse().unwrap()).unwrap(), "exact only");
        assert!(st.remove_trusted(net).unwrap());
        assert_eq!(st.load_trusted().unwrap().len(), 1);
    }

    use super::*;

    /// The durability argument in the crate docs rests on these two settings.
    #[test]
    fn file_store_runs_wal_with_synchronous_full() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db")).unwrap();
        let mode: String = store.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        let sync: i64 = store.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "2 = FULL");
    }

    /// The store keeps verdicts and origins in the engine's text form (its `Display`), so the
    /// CLI and the database say the same words.
    #[test]
    fn verdicts_and_origins_are_stored_as_the_engines_text() {
        let mut store = Store::open_in_memory().unwrap();
        let ban = Ban {
            net: "203.0.113.0/24".parse().unwrap(),
            since: Timestamp::from_millis(1),
            until: Timestamp::from_millis(2),
            count: 1,
            rule: "ban.aggregate".into(),
            reason: "r".into(),
            evidence: Evidence::default(),
            origin: BanOrigin::Aggregate,
        };
        store.record_ban(&ban).unwrap();
        let origin: String =
            store.conn.query_row("SELECT origin FROM bans", [], |r| r.get(0)).unwrap();
        assert_eq!(origin, BanOrigin::Aggregate.to_string());
        let record = DecisionRecord {
            rule: "signature.x",
            evidence: Evidence::default(),
            summary: "s".into(),
        };
        let src: SocketAddr = "203.0.113.5:5060".parse().unwrap();
        store
            .record_decision(Timestamp::from_millis(1), src, Verdict::Reject(488), &record)
            .unwrap();
        let v: String =
            store.conn.query_row("SELECT verdict FROM decisions", [], |r| r.get(0)).unwrap();
        assert_eq!(v, "reject 488");
        assert_eq!(store.recent_decisions(1).unwrap()[0].verdict, Verdict::Reject(488));
    }

    #[test]
    fn store_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new.db");
        let mut store = Store::open(&db).unwrap();
        let ban = Ban {
            net: "203.0.113.5/32".parse().unwrap(),
            since: Timestamp::from_millis(1),
            until: Timestamp::from_millis(2),
            count: 1,
            rule: "r".into(),
            reason: "r".into(),
            evidence: Evidence::default(),
            origin: BanOrigin::Detection,
        };
        store.record_ban(&ban).unwrap();
        for side in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{side}", db.display()));
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        drop(store);
        // A file an older version left world-readable is tightened at open.
        let old = dir.path().join("old.db");
        std::fs::write(&old, b"").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        Store::open(&old).unwrap();
        assert_eq!(mode(&old), 0o600);
    }

    #[test]
    fn evidence_json_tolerates_missing_and_unknown_fields() {
        let e = parse_evidence(r#"{"method":"INVITE","future_field":[1,2]}"#).unwrap();
        assert_eq!(e.method.as_deref(), Some("INVITE"));
        assert!(e.users_probed.is_empty());
        assert!(parse_evidence("not json").is_err());
    }
}
