//! The SQLite state store: schema, migrations and typed operations.
//!
//! Every read-modify-write runs inside `BEGIN IMMEDIATE`, so concurrent
//! logins serialise on the write lock instead of racing; WAL mode plus a
//! busy timeout keeps many parallel logins from failing with "database is
//! locked".

mod localkeys;
mod network;
mod ops;
mod policy;
mod schema;
mod webauthn;

pub use localkeys::LocalKey;
pub use network::{Channel, Purpose, SentCheck};
pub use ops::{OtpKind, OtpRecord, UserState, UserStatus};
pub use policy::{Remembered, StoredQuestion};
pub use webauthn::StoredCredential;

use crate::secure_fs;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};
use std::fmt;
use std::path::Path;
use std::time::Duration;

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

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let msg = e.to_string();
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
                StoreError::Corrupt(msg)
            }
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly(msg),
            Some(ErrorCode::DiskFull) => StoreError::Full(msg),
            Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
                StoreError::Busy(msg)
            }
            Some(ErrorCode::CannotOpen) => StoreError::Other(format!("cannot open: {msg}")),
            _ => StoreError::Other(msg),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub struct Store {
    conn: Connection,
}

/// A write transaction (`BEGIN IMMEDIATE`); typed operations live in `ops`.
pub struct Tx<'a> {
    tx: rusqlite::Transaction<'a>,
}

impl Store {
    /// Opens an existing store for the PAM module: never creates anything,
    /// refuses files or directories that are not root-owned and private.
    pub fn open_existing(path: &Path, busy_timeout_ms: u64) -> Result<Store> {
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing(format!(
                    "{} does not exist (create it with `2fa-enroll init`)",
                    path.display()
                )));
            }
            Err(e) => return Err(StoreError::Other(format!("{}: {e}", path.display()))),
            Ok(m) if !m.is_file() => {
                return Err(StoreError::Unsafe(format!(
                    "{} is not a regular file",
                    path.display()
                )));
            }
            Ok(_) => {}
        }
        if let Some(dir) = path.parent() {
            secure_fs::check_root_owned(dir, "store directory", secure_fs::NO_GROUP_OR_WORLD_WRITE)
                .map_err(StoreError::Unsafe)?;
        }
        secure_fs::check_root_owned(path, "store", secure_fs::NO_GROUP_OR_WORLD)
            .map_err(StoreError::Unsafe)?;
        let opened = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(StoreError::from)
        .and_then(|conn| Store::configure(conn, busy_timeout_ms))
        .and_then(|store| {
            let v: i64 = store
                .conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))?;
            Ok((store, v))
        });
        let (mut store, version) = opened.map_err(|e| explain_fs(path, e))?;
        if version == 0 {
            return Err(StoreError::Corrupt(format!(
                "{} has no pam-2fa schema (run `2fa-enroll init`)",
                path.display()
            )));
        }
        // Only take the write lock when there is something to migrate:
        // every login opens the store, and most must not serialise here.
        if version != schema::current_version() {
            store.migrate()?;
        }
        Ok(store)
    }

    /// Opens or creates the store for `2fa-enroll` (root): directory 0700,
    /// file 0600, WAL mode, schema up to date.
    pub fn open_or_create(path: &Path, busy_timeout_ms: u64) -> Result<Store> {
        if let Some(dir) = path.parent() {
            secure_fs::ensure_private_dir(dir)
                .map_err(|e| StoreError::Other(format!("creating {}: {e}", dir.display())))?;
        }
        if !path.exists() {
            secure_fs::create_private_file(path, b"")
                .map_err(|e| StoreError::Other(format!("creating {}: {e}", path.display())))?;
        }
        if let Some(dir) = path.parent() {
            secure_fs::check_root_owned(dir, "store directory", secure_fs::NO_GROUP_OR_WORLD_WRITE)
                .map_err(StoreError::Unsafe)?;
        }
        secure_fs::check_root_owned(path, "store", secure_fs::NO_GROUP_OR_WORLD)
            .map_err(StoreError::Unsafe)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let mut store = Store::configure(conn, busy_timeout_ms)?;
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Other(format!(
                "could not enable WAL mode (got {mode})"
            )));
        }
        store.migrate()?;
        Ok(store)
    }

    fn configure(conn: Connection, busy_timeout_ms: u64) -> Result<Store> {
        conn.busy_timeout(Duration::from_millis(busy_timeout_ms))?;
        conn.pragma_update(None, "foreign_keys", true)?;
        // Logins are rare writes that must survive a crash right after "ok";
        // NORMAL in WAL mode keeps durability of committed transactions
        // against application crashes and costs far less than FULL.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(Store { conn })
    }

    fn migrate(&mut self) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let target = schema::current_version();
        if version > target {
            return Err(StoreError::TooNew(format!(
                "schema version {version} is newer than this pam-2fa understands ({target}); upgrade pam-2fa"
            )));
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Starts a `BEGIN IMMEDIATE` transaction: the write lock is taken up
    /// front, so check-then-update sequences cannot interleave.
    pub fn write(&mut self) -> Result<Tx<'_>> {
        Ok(Tx {
            tx: self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
        })
    }

    /// Runs SQLite's integrity check (used by `2fa-enroll status --check`).
    pub fn integrity_check(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}

/// SQLite reports a read-only or full filesystem under the WAL index only
/// as "unable to open database file" or "disk I/O error", without a path;
/// name the real cause so the admin's log line says what to fix.
fn explain_fs(path: &Path, e: StoreError) -> StoreError {
    use nix::sys::statvfs::{FsFlags, statvfs};
    if !matches!(e, StoreError::Other(_)) {
        return e;
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    match statvfs(dir) {
        Ok(st) if st.flags().contains(FsFlags::ST_RDONLY) => StoreError::ReadOnly(format!(
            "{} is on a read-only filesystem ({e})",
            path.display()
        )),
        Ok(st) if st.blocks_free() == 0 => StoreError::Full(format!(
            "no space left on the filesystem of {} ({e})",
            path.display()
        )),
        _ => e,
    }
}

impl Tx<'_> {
    pub fn commit(self) -> Result<()> {
        Ok(self.tx.commit()?)
    }
}
