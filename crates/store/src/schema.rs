//! Schema and migrations.
//!
//! `schema_version` holds one row: the number of entries of [`MIGRATIONS`] applied. Opening a
//! store applies the missing ones in order, each in its own IMMEDIATE transaction together with
//! the version bump, so a crash mid-migration leaves the previous version intact. To change the
//! schema, APPEND a migration; never edit one that has shipped.
//!
//! Times are integer milliseconds since the UNIX epoch; networks are canonical text
//! (`IpNet::trunc` then `Display`, e.g. `192.0.2.0/24`, `2001:db8::1/128`); evidence is JSON.

/// Migrations, index i takes the schema from version i to i+1.
pub(crate) const MIGRATIONS: &[&str] = &[
    // v1: bans (one current row per network), their history, offence counts that outlive
    // purged bans (so escalation survives restarts), and recent decisions.
    // Every b-tree touched by a ban write is a 4 KiB page written to the WAL and fsynced at
    // commit, so the ban tables are WITHOUT ROWID (the primary key is the table, no second
    // b-tree) and carry only the index that per-network reads need (history by net); loading
    // active bans at start and the periodic purges scan the bounded tables instead. A ban
    // commit writes 4 pages (it was 9 with rowid tables and an index per time column).
    r#"
    CREATE TABLE bans (
        net       TEXT PRIMARY KEY NOT NULL,
        since_ms  INTEGER NOT NULL,
        until_ms  INTEGER NOT NULL,
        count     INTEGER NOT NULL,
        rule      TEXT NOT NULL,
        reason    TEXT NOT NULL,
        evidence  TEXT NOT NULL,
        origin    TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE ban_history (
        id        INTEGER PRIMARY KEY,
        net       TEXT NOT NULL,
        since_ms  INTEGER NOT NULL,
        until_ms  INTEGER NOT NULL,
        count     INTEGER NOT NULL,
        rule      TEXT NOT NULL,
        reason    TEXT NOT NULL,
        evidence  TEXT NOT NULL,
        origin    TEXT NOT NULL
    );
    CREATE INDEX ban_history_net ON ban_history(net, id);

    CREATE TABLE offences (
        net           TEXT PRIMARY KEY NOT NULL,
        count         INTEGER NOT NULL,
        last_until_ms INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE decisions (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms     INTEGER NOT NULL,
        src_ip    TEXT NOT NULL,
        src_port  INTEGER NOT NULL,
        verdict   TEXT NOT NULL,
        rule      TEXT NOT NULL,
        summary   TEXT NOT NULL,
        evidence  TEXT NOT NULL
    );
    CREATE INDEX decisions_at ON decisions(at_ms);
    "#,
    // v2: networks trusted at run time (`sipwall trust add`), on top of the config's
    // `[trusted] networks`, which stay the baseline and are never stored here.
    r#"
    CREATE TABLE trusted (
        net       TEXT PRIMARY KEY NOT NULL,
        since_ms  INTEGER NOT NULL,
        reason    TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
    // v3: what the daemon learned from the wire. `learned`: one row per fact (kind: `upstream`,
    // `user`, `known_good`, ...; key: its canonical text), with first and last seen, the
    // evidence that taught it (readable text), and whether the operator pinned it (a pinned
    // fact never expires). `shield_templates`: the last real challenge of each PBX host and
    // request method, the form the enumeration shield answers a "no such user" with, so the
    // first walker after a restart already gets the PBX's own realm.
    r#"
    CREATE TABLE learned (
        kind          TEXT NOT NULL,
        key           TEXT NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms  INTEGER NOT NULL,
        evidence      TEXT NOT NULL,
        pinned        INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;

    CREATE TABLE shield_templates (
        host      TEXT NOT NULL,
        method    TEXT NOT NULL,
        at_ms     INTEGER NOT NULL,
        template  BLOB NOT NULL,
        PRIMARY KEY (host, method)
    ) WITHOUT ROWID;
    "#,
];

/// Newest schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;
