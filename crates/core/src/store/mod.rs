//! The state store: the interface every backend implements ([`api`]),
//! and today's only backend, SQLite ([`sqlite`]).
//!
//! Callers name [`Store`] and [`Tx`]; [`Store::open_existing`],
//! [`Store::open_or_create`] and [`Store::inspect`] open the SQLite store.

pub mod api;
mod sqlite;

pub use api::{Backend, Kind, Store, Tx, TxOps};
use sqlite::SqliteStore;
pub use sqlite::{
    KeyWarning, LocalKey, OtpKind, OtpRecord, Purpose, Remembered, SealedSecret, SentCheck,
    StoredCredential, StoredQuestion, UserState, UserStatus, WAL_CHECKPOINT_BYTES, backup_path,
    current_version,
};

use crate::secure_fs::Trust;
use std::fmt;
use std::path::Path;

/// Why the store could not be used. Each variant's text is a log line an
/// admin can act on.
#[derive(Debug)]
pub enum StoreError {
    Missing(String),
    Unsafe(String),
    Corrupt(String),
    ReadOnly(String),
    Full(String),
    Busy(String),
    TooNew(String),
    Other(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, msg) = match self {
            StoreError::Missing(m) => ("store missing", m),
            StoreError::Unsafe(m) => ("store refused", m),
            StoreError::Corrupt(m) => ("store corrupt", m),
            StoreError::ReadOnly(m) => ("store read-only", m),
            StoreError::Full(m) => ("store full", m),
            StoreError::Busy(m) => ("store busy", m),
            StoreError::TooNew(m) => ("store too new", m),
            StoreError::Other(m) => ("store error", m),
        };
        write!(f, "{kind}: {msg}")
    }
}

impl std::error::Error for StoreError {}

pub type Result<T> = std::result::Result<T, StoreError>;

impl Store {
    /// Opens an existing SQLite store for the PAM module
    /// ([`sqlite::SqliteStore::open_existing`]).
    pub fn open_existing(path: &Path, busy_timeout_ms: u64, trust: Trust) -> Result<Store> {
        SqliteStore::open_existing(path, busy_timeout_ms, trust).map(Store::sqlite)
    }

    /// Opens or creates and migrates a SQLite store for the CLI
    /// ([`sqlite::SqliteStore::open_or_create`]).
    pub fn open_or_create(path: &Path, busy_timeout_ms: u64, trust: Trust) -> Result<Store> {
        SqliteStore::open_or_create(path, busy_timeout_ms, trust).map(Store::sqlite)
    }

    /// Opens a SQLite store read-only without changing anything
    /// ([`sqlite::SqliteStore::inspect`]).
    pub fn inspect(path: &Path, trust: Trust) -> Result<(Store, Option<String>)> {
        SqliteStore::inspect(path, trust).map(|(s, note)| (Store::sqlite(s), note))
    }

    fn sqlite(s: SqliteStore) -> Store {
        Store::from_backend(Box::new(s))
    }
}
