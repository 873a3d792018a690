//! [`PgStore`] and [`PgTx`]: the store interface
//! ([`p2fa_core::store::api`]) on the fleet database (docs/fleet.md §3).
//!
//! The rule that makes one host's guarantees hold across the fleet: the
//! first operation of a write transaction that names a user takes that
//! user's advisory transaction lock, so every login of one user, on any
//! host, runs its check-then-update after the previous one committed
//! (READ COMMITTED: each statement sees what the previous holder
//! committed). A lock rather than `SELECT ... FOR UPDATE`, because it
//! also covers a user with no row yet. On top of it every consuming
//! UPDATE is conditional (`last_step < $2`, `used_at IS NULL`), so even
//! a missing lock could not accept a code twice.

mod ceremonies;
mod keys;
mod network;
mod ops;
mod policy;
mod profiles;
mod rekey;
mod wrap;

use crate::schema::{LOCK_USER, current_version};
use crate::wire::{Conn, PgError, Row, TxStatus, Value};
use p2fa_core::store::{Kind, Result, StoreError};
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell, RefMut};

/// Limits set inside every write transaction (`set_config(..., true)`:
/// transaction-local, so PgBouncer in transaction mode is fine).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub statement_timeout_ms: u64,
    pub lock_timeout_ms: u64,
}

/// A connection to the fleet database.
pub struct PgStore {
    conn: RefCell<Conn>,
    host: String,
    limits: Limits,
    /// Set when the connection came from (or goes to) 2fad's pool: on
    /// drop it goes back there if [`Conn::is_reusable`].
    lease: Option<crate::pool::Lease>,
}

/// What a PostgreSQL error means to the login: the store cannot be
/// reached (deny as unavailable), is busy (lock or statement timeout),
/// or something else went wrong.
pub fn store_error(e: PgError) -> StoreError {
    match e {
        PgError::Connect(m) => StoreError::Unreachable(m),
        PgError::Lost(m) => StoreError::Unreachable(format!("connection lost: {m}")),
        PgError::Server { code, message } => match code.as_str() {
            // lock_not_available, query_canceled, deadlock, serialization
            "55P03" | "57014" | "40P01" | "40001" => {
                StoreError::Busy(format!("{message} (SQLSTATE {code})"))
            }
            // undefined_table / schema: no fleet schema here
            "42P01" | "3F000" => StoreError::Unreachable(format!(
                "the fleet schema is missing ({message}): run 2fa-enroll init"
            )),
            // read_only_sql_transaction: a standby after a failover
            "25006" => StoreError::Unreachable(format!("the server is read-only: {message}")),
            c if c.starts_with("08") || c.starts_with("57P") || c.starts_with("53") => {
                StoreError::Unreachable(format!("{message} (SQLSTATE {code})"))
            }
            _ => StoreError::Other(format!("{message} (SQLSTATE {code})")),
        },
    }
}

/// The advisory-lock key of a user: the first four bytes of a hash of
/// the name, computed here so every host and server version agrees.
/// Two users may share a key (they then queue behind each other, which
/// is slower, never wrong).
pub fn user_lock_key(user: &str) -> i32 {
    let mut h = Sha256::new();
    h.update(b"p2fa user\0");
    h.update(user.as_bytes());
    let d = h.finalize();
    i32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The connection with a borrowed view for one operation.
pub(crate) struct Db<'c> {
    c: RefMut<'c, Conn>,
    pub(crate) host: &'c str,
}

impl Db<'_> {
    pub(crate) fn rows(&mut self, sql: &str, p: &[Value<'_>]) -> Result<Vec<Row>> {
        Ok(self.c.query(sql, p).map_err(store_error)?.rows)
    }

    pub(crate) fn opt(&mut self, sql: &str, p: &[Value<'_>]) -> Result<Option<Row>> {
        Ok(self.rows(sql, p)?.into_iter().next())
    }

    pub(crate) fn one(&mut self, sql: &str, p: &[Value<'_>]) -> Result<Row> {
        self.opt(sql, p)?
            .ok_or_else(|| StoreError::Other("a query that returns one row returned none".into()))
    }

    pub(crate) fn exec(&mut self, sql: &str, p: &[Value<'_>]) -> Result<u64> {
        Ok(self.c.query(sql, p).map_err(store_error)?.affected)
    }

    /// Statements in one round trip; inside a write transaction the
    /// first error leaves it failed, and the caller's error ends it.
    pub(crate) fn pipeline(&mut self, stmts: &[(&str, &[Value<'_>])]) -> Result<Vec<Vec<Row>>> {
        let out = self.c.pipeline(stmts).map_err(store_error)?;
        Ok(out.into_iter().map(|o| o.rows).collect())
    }

    /// Reads outside a write transaction as one consistent snapshot, in
    /// one round trip: `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`,
    /// the statements, `COMMIT`. Returns the statements' rows.
    pub(crate) fn snapshot(&mut self, stmts: &[(&str, &[Value<'_>])]) -> Result<Vec<Vec<Row>>> {
        let mut all: Vec<(&str, &[Value<'_>])> = Vec::with_capacity(stmts.len() + 2);
        all.push(("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", &[]));
        all.extend_from_slice(stmts);
        all.push(("COMMIT", &[]));
        match self.c.pipeline(&all) {
            Ok(out) => {
                let rows: Vec<Vec<Row>> = out.into_iter().map(|o| o.rows).collect();
                // One outcome per statement: drop BEGIN's and COMMIT's.
                match rows.len().checked_sub(1) {
                    Some(end) if end >= 1 => Ok(rows.into_iter().take(end).skip(1).collect()),
                    _ => Err(StoreError::Other("a read returned no results".into())),
                }
            }
            Err(e) => {
                // Our own BEGIN: end it, so the connection is idle again.
                if self.c.status() != TxStatus::Idle {
                    let _ = self.c.simple("ROLLBACK");
                }
                Err(store_error(e))
            }
        }
    }
}

/// Column getters as store results.
pub(crate) trait Get {
    fn i(&self, idx: usize) -> Result<i64>;
    fn oi(&self, idx: usize) -> Result<Option<i64>>;
    fn s(&self, idx: usize) -> Result<String>;
    fn os(&self, idx: usize) -> Result<Option<String>>;
    fn b(&self, idx: usize) -> Result<Vec<u8>>;
    fn flag(&self, idx: usize) -> Result<bool>;
}

impl Get for Row {
    fn i(&self, idx: usize) -> Result<i64> {
        self.i64(idx).map_err(store_error)
    }
    fn oi(&self, idx: usize) -> Result<Option<i64>> {
        self.opt_i64(idx).map_err(store_error)
    }
    fn s(&self, idx: usize) -> Result<String> {
        self.text(idx).map_err(store_error)
    }
    fn os(&self, idx: usize) -> Result<Option<String>> {
        self.opt_text(idx).map_err(store_error)
    }
    fn b(&self, idx: usize) -> Result<Vec<u8>> {
        self.bytes(idx).map_err(store_error)
    }
    fn flag(&self, idx: usize) -> Result<bool> {
        self.bool(idx).map_err(store_error)
    }
}

impl PgStore {
    /// A store on an open connection. `host` is written into the rows
    /// this host changes.
    pub fn new(conn: Conn, host: String, limits: Limits) -> PgStore {
        PgStore {
            conn: RefCell::new(conn),
            host,
            limits,
            lease: None,
        }
    }

    /// Hands the connection back to `lease`'s pool when this store is
    /// dropped (if it is then reusable).
    pub(crate) fn set_lease(&mut self, lease: crate::pool::Lease) {
        self.lease = Some(lease);
    }

    /// Checks that this build may use the database's schema (one round
    /// trip): the module never migrates, so an old or missing schema is
    /// "unavailable" with what to run.
    pub fn check_schema(&self) -> Result<()> {
        let mut db = self.db()?;
        let row = db.opt("SELECT version, min_reader FROM p2fa.schema_version", &[])?;
        let Some(row) = row else {
            return Err(StoreError::Unreachable(
                "the fleet schema is empty: run 2fa-enroll init".into(),
            ));
        };
        let (version, min_reader) = (row.i(0)?, row.i(1)?);
        match crate::schema::compat(version, min_reader, current_version()) {
            crate::schema::Compat::Usable => Ok(()),
            crate::schema::Compat::NeedsMigrate => Err(StoreError::Unreachable(format!(
                "fleet schema v{version} is older than this pam-2fa's v{}: run 2fa-enroll migrate",
                current_version()
            ))),
            crate::schema::Compat::NeedsUpgrade => Err(StoreError::TooNew(format!(
                "fleet schema v{version} needs pam-2fa with schema v{min_reader} or later: upgrade this host"
            ))),
        }
    }

    pub(crate) fn schema_version(&self) -> Result<i64> {
        match self
            .db()?
            .opt("SELECT version FROM p2fa.schema_version", &[])?
        {
            Some(r) => r.i(0),
            None => Ok(0),
        }
    }

    /// "ok" when the server answers and the schema is one this build
    /// reads; the server keeps its own data consistent (constraints,
    /// WAL), so there is no page-level check to run from here.
    pub(crate) fn quick_check(&self) -> Result<String> {
        self.check_schema()?;
        Ok("ok".into())
    }

    /// [`PgStore::quick_check`], plus rows no constraint covers: a
    /// sealed secret or backup hash of an impossible length.
    pub(crate) fn integrity_check(&self) -> Result<String> {
        self.check_schema()?;
        let bad = self
            .db()?
            .one(
                "SELECT (SELECT count(*) FROM p2fa.otp_tokens WHERE length(secret) < 28)
                      + (SELECT count(*) FROM p2fa.backup_codes WHERE length(hash) <> 32)",
                &[],
            )?
            .i(0)?;
        Ok(if bad == 0 {
            "ok".into()
        } else {
            format!("{bad} rows with a malformed secret or hash")
        })
    }

    /// The connection, for [`crate::schema::migrate`] and the CLI.
    pub fn conn(&self) -> Result<RefMut<'_, Conn>> {
        self.conn
            .try_borrow_mut()
            .map_err(|_| StoreError::Other("the store connection is in use".into()))
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn db(&self) -> Result<Db<'_>> {
        Ok(Db {
            c: self.conn()?,
            host: &self.host,
        })
    }

    pub(crate) fn kind(&self) -> Kind {
        Kind::Postgres
    }

    /// Starts a write transaction with its limits (one round trip).
    pub(crate) fn write(&mut self) -> Result<PgTx<'_>> {
        let st = self.limits.statement_timeout_ms.to_string();
        let lock = self.limits.lock_timeout_ms.to_string();
        // The transaction exists from here: a PgTx rolls it back if
        // anything below fails.
        let tx = PgTx {
            store: self,
            locked: RefCell::new(Vec::new()),
            open: Cell::new(true),
        };
        tx.store.db()?.pipeline(&[
            ("BEGIN", &[]),
            (
                "SELECT set_config('statement_timeout', $1, true),
                        set_config('lock_timeout', $2, true),
                        set_config('idle_in_transaction_session_timeout', $1, true),
                        set_config('synchronous_commit', 'on', true)",
                &[Value::Text(&st), Value::Text(&lock)],
            ),
        ])?;
        Ok(tx)
    }
}

/// One write transaction; rolled back on drop unless committed.
pub struct PgTx<'a> {
    store: &'a PgStore,
    locked: RefCell<Vec<String>>,
    open: Cell<bool>,
}

impl PgTx<'_> {
    /// The connection, after taking `user`'s lock if this transaction
    /// does not hold it yet.
    pub(crate) fn db_for(&self, user: &str) -> Result<Db<'_>> {
        let mut db = self.store.db()?;
        let held = self.locked.borrow().iter().any(|u| u == user);
        if !held {
            db.exec(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[Value::Int4(LOCK_USER), Value::Int4(user_lock_key(user))],
            )?;
            self.locked.borrow_mut().push(user.to_string());
        }
        Ok(db)
    }

    /// The connection for operations that name no user.
    pub(crate) fn db(&self) -> Result<Db<'_>> {
        self.store.db()
    }

    /// A success is reported only after COMMIT has returned. A
    /// transaction a statement already failed in is not committed (the
    /// server would answer COMMIT there with ROLLBACK, and no error): an
    /// error, and it is rolled back on drop.
    pub(crate) fn commit(self) -> Result<()> {
        let mut db = self.store.db()?;
        if db.c.status() == TxStatus::Failed {
            return Err(StoreError::Other(
                "a statement of this transaction failed: not committed".into(),
            ));
        }
        self.open.set(false);
        match db.c.simple("COMMIT") {
            Ok(()) => Ok(()),
            // No answer to COMMIT: it may or may not have happened.
            Err(PgError::Lost(m)) => Err(StoreError::Unreachable(format!(
                "connection lost during COMMIT (outcome unknown): {m}"
            ))),
            Err(e) => Err(store_error(e)),
        }
    }
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        if self.open.get()
            && let Ok(mut c) = self.store.conn.try_borrow_mut()
        {
            let _ = c.simple("ROLLBACK");
        }
    }
}

/// A pooled connection goes back to its pool, which keeps it only if it
/// is reusable ([`crate::pool::Pool`]); any other is closed here.
impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            let conn = self.conn.get_mut().take();
            lease.give_back(conn);
        }
    }
}

p2fa_core::store_backend!(PgStore, PgTx);
