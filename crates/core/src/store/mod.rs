//! The state store: the interface every backend implements ([`api`]),
//! and today's only backend, SQLite ([`sqlite`]).
//!
//! Callers name [`Store`] and [`Tx`]; [`Store::open_existing`],
//! [`Store::open_or_create`] and [`Store::inspect`] open the SQLite store.

pub mod api;
mod forward;
mod sqlite;
/// The contract suite every backend must pass (tests only: the
/// `testsuite` feature, never in what ships). Its cases panic on a
/// broken promise, as tests do: the no-panic rule is for shipped code,
/// and scripts/test keeps the feature out of the shipped programs.
#[cfg(any(test, feature = "testsuite"))]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub mod suite;
/// The values passed through the interface.
pub mod types;

pub use api::{Backend, Kind, Store, Tx, TxOps};
use sqlite::SqliteStore;
pub use sqlite::{WAL_CHECKPOINT_BYTES, backup_path, current_version};
pub use types::{
    BackupRow, GenCount, KeyWarning, LastSuccess, LocalKey, Login, OldGenItems, OtpKind, OtpRecord,
    OtpSummary, ProfileOpen, ProfileQuota, Purpose, Remembered, SealedSecret, SentCheck, SentScope,
    StoredCeremony, StoredCredential, StoredProfileLink, StoredProfileSession, StoredQuestion,
    UserState, UserStatus,
};

use crate::config::RateLimitConfig;

/// Successful logins kept per user for the profile page's history (older
/// ones are deleted as new ones are recorded, in the same transaction).
pub const RECENT_LOGINS: i64 = 20;
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
    /// The shared (PostgreSQL) store cannot be reached or used: server
    /// down, TLS or login refused, a standby, no or an old schema, or
    /// the connection lost mid-transaction.
    Unreachable(String),
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
            StoreError::Unreachable(m) => ("store unreachable", m),
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

/// When the `failures`-th failure locks the account: 0 (not locked)
/// below `max_failures`, then `lockout_seconds` from `now`, doubling with
/// every further failure, at most `max_lockout_seconds`. Every backend's
/// `record_failure` uses it, so lockout is the same on all of them.
pub fn lock_until(failures: i64, now: i64, rl: &RateLimitConfig) -> i64 {
    if failures < i64::from(rl.max_failures) {
        return 0;
    }
    let excess = (failures - i64::from(rl.max_failures)).min(30) as u32;
    let lock = rl
        .lockout_seconds
        .saturating_mul(1u64 << excess)
        .min(rl.max_lockout_seconds);
    now.saturating_add(lock as i64)
}

/// The part of `2fa-enroll status` that follows from the user's state;
/// a backend adds `first_seen`, `key_warnings` and `last_success` for a
/// known user.
pub fn status_of(user: &str, state: UserState) -> UserStatus {
    let mut status = UserStatus {
        user: user.to_string(),
        enrolled: state.is_enrolled(),
        failures: state.failures,
        backup_codes_remaining: state.unused_backup.len() as u32,
        ..Default::default()
    };
    if !state.known {
        return status;
    }
    status.sms = state.sms;
    status.email = state.email;
    status.duo = state.duo;
    status.default_factor = state.default_factor;
    status.questions = state.questions;
    status.webauthn = state.webauthn;
    status.local_keys = state.local_keys;
    status.otp = state.otp.map(|o| OtpSummary {
        kind: o.kind.as_str().to_string(),
        algorithm: o.algorithm.as_str().to_string(),
        digits: o.digits,
        period: (o.kind == OtpKind::Totp).then_some(o.period),
        counter: (o.kind == OtpKind::Hotp).then_some(o.counter),
        enrolled_at: o.created_at,
    });
    status.backup_codes_used = state.used_backup;
    status.locked_until = (state.locked_until > 0).then_some(state.locked_until);
    status
}
