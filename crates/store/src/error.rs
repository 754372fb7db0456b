//! Errors: one variant per failed operation, each naming the store's path and the subject
//! (network, source address) it was working on.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

/// What went wrong underneath an operation.
///
/// `Locked` and `Corrupt` are split out of the SQLite error codes because they call for
/// different actions from a person: stop the other process, or move the file away.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLITE_BUSY / SQLITE_LOCKED after the busy timeout: another connection holds the write lock.
    #[error(
        "database is locked by another connection (is another sipwall using this store?): {0}"
    )]
    Locked(Box<rusqlite::Error>),
    /// SQLITE_CORRUPT / SQLITE_NOTADB, or `PRAGMA quick_check` found damage.
    #[error("the file is corrupt or is not a SQLite database: {0}")]
    Corrupt(String),
    /// Any other SQLite failure (disk full, permission denied, I/O error, ...).
    #[error("{0}")]
    Sqlite(Box<rusqlite::Error>),
    /// A stored row that this build cannot decode (written by hand or by a buggy version).
    #[error("row {key} of table {table} cannot be decoded: {detail}")]
    Decode {
        /// Table name.
        table: &'static str,
        /// Key of the bad row, e.g. `net 192.0.2.1/32` or `id 17`.
        key: String,
        /// What was wrong with it.
        detail: String,
    },
    /// Evidence could not be serialised to JSON.
    #[error("cannot encode evidence as JSON: {0}")]
    Encode(serde_json::Error),
    /// The file opened, but SQLite refused to switch it to write-ahead logging.
    #[error("journal mode is {0:?}, not \"wal\": durability cannot be guaranteed")]
    NotWal(String),
    /// The file could not be created owner-only, or its permissions not be tightened.
    #[error("making the store file owner-only (0600): {0}")]
    Permissions(String),
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                DbError::Locked(Box::new(e))
            }
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                DbError::Corrupt(e.to_string())
            }
            _ => DbError::Sqlite(Box::new(e)),
        }
    }
}

/// Error of a [`Store`](crate::Store) operation. The variant names the operation; every
/// variant carries the database path, and the address or network it was about.
///
/// The message is self-contained (it includes the underlying cause), so print it with `{}`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// [`Store::open`](crate::Store::open) / `open_in_memory` failed (cannot open, locked, corrupt, not WAL).
    #[error("opening store {path}: {cause}")]
    Open {
        /// Database path.
        path: PathBuf,
        /// Cause.
        cause: DbError,
    },
    /// The file's schema is newer than this build understands (written by a newer sipwall).
    #[error("opening store {path}: schema version {found} is newer than version {supported} that this sipwall understands")]
    SchemaTooNew {
        /// Database path.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// [`Store::open_read_only`](crate::Store::open_read_only): there is no store file.
    #[error("opening store {path} read-only: no store there ({detail}); `sipwall run` creates it")]
    Missing {
        /// Database path.
        path: PathBuf,
        /// What the file system said.
        detail: String,
    },
    /// [`Store::open_read_only`](crate::Store::open_read_only): the file's schema is older
    /// than this build reads (or it has none: not a sipwall store). A read-only open never
    /// migrates; `sipwall run` (or [`Store::open`](crate::Store::open)) does.
    #[error("opening store {path} read-only: schema version {found} is older than version {supported} that this sipwall reads (start `sipwall run` once to migrate it; version 0: not a sipwall store)")]
    SchemaTooOld {
        /// Database path.
        path: PathBuf,
        /// Version in the file (0: no schema_version table).
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// Applying a schema migration failed.
    #[error("migrating store {path} to schema version {to}: {cause}")]
    Migrate {
        /// Database path.
        path: PathBuf,
        /// Version being migrated to.
        to: u32,
        /// Cause.
        cause: DbError,
    },
    /// [`Store::record_ban`](crate::Store::record_ban) failed: the ban is NOT stored.
    #[error("recording ban of {net} in {path}: {cause}")]
    RecordBan {
        /// Banned network.
        net: IpNet,
        /// Database path.
        path: PathBuf,
        /// Cause.
        cause: DbError,
    },
    /// [`Store::record_bans`](crate::Store::record_bans) failed: NONE of the batch is stored.
    #[error("recording {count} bans (first {first}) in {path}: {cause}")]
    RecordBans {
        /// Batch size.
        count: usize,
        /// First network of the batch.
        first: IpNet,
        /// Database path.
        path: PathBuf,
        /// Cause.
        cause: DbError,
    },
    /// [`Store::remove_ban`](crate::Store::remove_ban) failed.
    #[error("removing ban of {net} from {path}: {cause}")]
    RemoveBan {
        /// Network.
        net: IpNet,
        /// Database path.
        path: PathBuf,
        /// Cause.
        cause: DbError,
    },
    /// Reading one network's ban, history or offence count failed.
    #[error("reading {what} of {net} from {path}: {cause}")]
    ReadBan {
        /// "ban", "ban history" or "offence count".
        what: &'static str,
        /// Network.
        net: IpNet,
        /// Database path.
        path: PathBuf,
        /// Cause.
        cause: DbError,
    },
    /// [`Store::load_active_bans`](crate::Store::load_active_bans) / `load_offences` failed.
    #[error("loading {what} from {path}: {cause}")]
    Load {
        /// "active bans", "offences" or "recent decisions".
        what: &'static str,
        /// Database path.
        path: PathBuf,
        /// Cause.
        cause: DbError,
    },
    /// [`Store::purge_expired`](crate::Store::purge_expired) / `prune_history` / `prune_decisions` failed.
    #[error("pruning {what} in {path}: {cause}")]
    Prune {
        /// "expired bans", "ban history" or "decisions".
        what: &'static str,
        /// Database path.
        path: PathBuf,
        /// Cause.
        cause: DbError,
    },
    /// [`Store::add_trusted`](crate::Store::add_trusted) / `remove_trusted` failed.
    #[error("{what} trusted network {net} in {path}: {cause}")]
    Trust {
        /// "adding" or "removing".
        what: &'static str,
        /// Network.
        net: IpNet,
        /// Database path.
        path: PathBuf,
        /// Cause.
        cause: DbError,
    },
    /// Writing a learned fact or a shield template failed.
    #[error("recording {what} {key} in {path}: {cause}")]
    WriteLearned {
        /// "learned fact", "pin of learned fact", "removal of learned fact" or "shield template".
        what: &'static str,
        /// The fact (`kind key`) or template (`host method`).
        key: Box<str>,
        /// Database path.
        path: PathBuf,
        /// Cause.
        cause: DbError,
    },
    /// [`Store::record_decision`](crate::Store::record_decision) / `record_decisions` failed.
    #[error("recording decision on {src} in {path}: {cause}")]
    RecordDecision {
        /// Source of the (first) packet decided on.
        src: SocketAddr,
        /// Database path.
        path: PathBuf,
        /// Cause.
        cause: DbError,
    },
}

impl StoreError {
    /// The database file this error is about (`:memory:` for an in-memory store).
    pub fn path(&self) -> &Path {
        match self {
            StoreError::Open { path, .. }
            | StoreError::Missing { path, .. }
            | StoreError::SchemaTooOld { path, .. }
            | StoreError::SchemaTooNew { path, .. }
            | StoreError::Migrate { path, .. }
            | StoreError::RecordBan { path, .. }
            | StoreError::WriteLearned { path, .. }
            | StoreError::RecordBans { path, .. }
            | StoreError::RemoveBan { path, .. }
            | StoreError::ReadBan { path, .. }
            | StoreError::Load { path, .. }
            | StoreError::Prune { path, .. }
            | StoreError::Trust { path, .. }
            | StoreError::RecordDecision { path, .. } => path,
        }
    }

    /// The underlying cause, if any (all but `SchemaTooNew`, `SchemaTooOld` and `Missing`).
    pub fn cause(&self) -> Option<&DbError> {
        match self {
            StoreError::SchemaTooNew { .. }
            | StoreError::SchemaTooOld { .. }
            | StoreError::Missing { .. } => None,
            StoreError::Open { cause, .. }
            | StoreError::Migrate { cause, .. }
            | StoreError::RecordBan { cause, .. }
            | StoreError::WriteLearned { cause, .. }
            | StoreError::RecordBans { cause, .. }
            | StoreError::RemoveBan { cause, .. }
            | StoreError::ReadBan { cause, .. }
            | StoreError::Load { cause, .. }
            | StoreError::Prune { cause, .. }
            | StoreError::Trust { cause, .. }
            | StoreError::RecordDecision { cause, .. } => Some(cause),
        }
    }

    /// True when another connection held the lock past the busy timeout.
    pub fn is_locked(&self) -> bool {
        matches!(self.cause(), Some(DbError::Locked(_)))
    }

    /// True when the file is damaged or not a SQLite database.
    pub fn is_corrupt(&self) -> bool {
        matches!(self.cause(), Some(DbError::Corrupt(_)))
    }
}
