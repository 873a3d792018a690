//! The SQLite state store: schema, migrations and typed operations.
//!
//! Every read-modify-write runs inside `BEGIN IMMEDIATE`, so concurrent
//! logins serialise on the write lock instead of racing; WAL mode plus a
//! busy timeout keeps many parallel logins from failing with "database is
//! locked".
//!
//! The write-ahead log outlives the login. By default SQLite checkpoints
//! the WAL into the database and deletes it (and the `-shm` index) when
//! the last connection closes. Every PAM login is a new process, so every
//! login was the last connection: creating the WAL, checkpointing it and
//! deleting it again cost four fsyncs and two unlinks per login, more than
//! the login itself. [`SqliteStore::open_existing`] therefore sets
//! `SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE` and turns SQLite's own
//! auto-checkpoint off; it checkpoints (`TRUNCATE`) itself when it finds
//! the WAL grown past [`WAL_CHECKPOINT_BYTES`], so the WAL stays small and
//! reading it back on the next open (SQLite rebuilds the `-shm` index
//! from it whenever no other connection has it open) stays cheap.
//!
//! The `-wal`, `-shm` (and, outside WAL mode, `-journal`) files are part of
//! the database: SQLite reads them on open, a hot journal is even rolled
//! back into it. So they get the same checks as the store file itself
//! (root-owned, regular, no group or world access); a bad one is refused,
//! never repaired or ignored. SQLite creates them with the store's mode and
//! owner, so a healthy store always passes.

mod backend;
mod localkeys;
mod meta;
mod network;
mod ops;
mod policy;
mod schema;
mod webauthn;
mod wrap;

pub use schema::current_version;

use super::{Result, StoreError};
use crate::secure_fs::{self, Trust};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// WAL size (bytes) above which [`SqliteStore::open_existing`] checkpoints it
/// back into the database and truncates it: 128 frames of 4 KiB pages. A
/// login appends one to three frames, so this is one checkpoint (about
/// 1.5 ms, two fsyncs) per 40-120 logins. SQLite re-reads the WAL on each
/// open (about 1 µs per frame, measured); 64 or 32 frames make that
/// cheaper but checkpoint more often, for the same average.
pub const WAL_CHECKPOINT_BYTES: u64 = 32 + 128 * (24 + 4096);

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

pub struct SqliteStore {
    conn: Connection,
}

/// A write transaction (`BEGIN IMMEDIATE`); typed operations live in `ops`.
pub struct SqliteTx<'a> {
    tx: rusqlite::Transaction<'a>,
}

impl SqliteStore {
    /// Opens an existing store for the PAM module: never creates anything,
    /// refuses files or directories that are not root-owned (owned by
    /// whom `trust` trusts) and private.
    ///
    /// [`StoreError::Missing`] means the store does not exist *and* the way
    /// to it is safe ([`secure_fs::check_missing`]): nobody but root could
    /// have removed it. A missing store on a way others can write is
    /// [`StoreError::Unsafe`], like a store there.
    pub fn open_existing(path: &Path, busy_timeout_ms: u64, trust: Trust) -> Result<SqliteStore> {
        check_exists(path, trust)?;
        let wal_len = check_files(path, trust)?;
        let opened = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(StoreError::from)
        .and_then(|conn| SqliteStore::configure(conn, busy_timeout_ms))
        .and_then(|store| {
            // Keep the WAL for the next login (see the module docs); then
            // SQLite never checkpoints by itself, so do it here when due.
            store
                .conn
                .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
            store.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            if wal_len > WAL_CHECKPOINT_BYTES {
                store.checkpoint()?;
            }
            Ok(store)
        })
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
    pub fn open_or_create(path: &Path, busy_timeout_ms: u64, trust: Trust) -> Result<SqliteStore> {
        if let Some(dir) = path.parent() {
            secure_fs::ensure_private_dir(dir)
                .map_err(|e| StoreError::Other(format!("creating {}: {e}", dir.display())))?;
            secure_fs::check_dir_chain(dir, "store", trust).map_err(StoreError::Unsafe)?;
        }
        if !path.exists() {
            secure_fs::create_private_file(path, b"")
                .map_err(|e| StoreError::Other(format!("creating {}: {e}", path.display())))?;
        }
        check_files(path, trust)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let mut store = SqliteStore::configure(conn, busy_timeout_ms)?;
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

    /// Connection settings shared by the module, the CLI and the daemon.
    ///
    /// `synchronous = FULL`: in WAL mode this fsyncs the WAL at every
    /// commit, so a commit that returned is on disk. With `NORMAL` a commit
    /// only reaches the page cache and is made durable by the next
    /// checkpoint; a power cut before that rolls the store back to it.
    /// Almost every write the module makes spends or counts a code: the
    /// last accepted TOTP step, the HOTP counter, a used backup code or
    /// sent code, the failure counter of the rate limit. Rolling those
    /// back would make a used code valid again or forget failed guesses,
    /// so the module pays one fsync per login for them (0.3 ms on the
    /// development VM, `scripts/bench`; pam_google_authenticator and
    /// pam_oath also fsync their state file once per login). Reads, the
    /// bulk of a login, never sync.
    ///
    /// Waiting for the write lock: [`busy_wait`], not SQLite's own busy
    /// timeout (see there).
    fn configure(conn: Connection, busy_timeout_ms: u64) -> Result<SqliteStore> {
        BUSY_TIMEOUT_MS.with(|t| t.set(busy_timeout_ms));
        conn.busy_handler(Some(busy_wait))?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(SqliteStore { conn })
    }

    /// Copies the WAL into the database and truncates it, without waiting
    /// for anyone: if another login holds the write lock, SQLite falls back
    /// to copying what it can (`PASSIVE`); if another one is checkpointing
    /// or still reads older frames, the WAL is not truncated. Either way
    /// the next login tries again. Waiting here (even 50 ms) made the
    /// checkpointing login hold the write lock while it waited for
    /// readers, and under 16 parallel login streams the others then backed
    /// off for up to a second (measured).
    fn checkpoint(&self) -> Result<()> {
        self.conn.busy_handler(None)?;
        let done = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
        self.conn.busy_handler(Some(busy_wait))?;
        match done {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > 0 && version < schema::current_version() {
            self.backup_before_migration(version)?;
        }
        let db = self.conn.path().unwrap_or("").to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let target = schema::current_version();
        if version > target {
            return Err(StoreError::TooNew(format!(
                "schema version {version} is newer than this pam-2fa understands ({target}): \
                 upgrade pam-2fa again, or restore the copy the upgrade kept \
                 ({}) (README: Recovery)",
                backup_path(&db, target).display()
            )));
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Keeps a consistent copy of the store as it is before a migration,
    /// `state.db.schema-N.bak` (root, 0600) next to it, so a downgrade has
    /// a way back (README: Recovery): the older pam-2fa refuses the newer
    /// schema, and this copy is one it reads. An earlier copy of the same
    /// schema version is replaced. `VACUUM INTO` writes only into an empty
    /// file, which is created private first.
    fn backup_before_migration(&self, version: i64) -> Result<()> {
        let db = self.conn.path().unwrap_or("").to_string();
        if db.is_empty() {
            return Ok(()); // in-memory (tests)
        }
        let dest = backup_path(&db, version);
        let tmp = dest.with_extension("bak.tmp");
        let fail = |what: &str, e: &dyn fmt::Display| {
            StoreError::Other(format!("keeping a copy before the migration ({what}): {e}"))
        };
        let _ = std::fs::remove_file(&tmp);
        secure_fs::create_private_file(&tmp, b"").map_err(|e| fail("create", &e))?;
        let copied = self
            .conn
            .execute("VACUUM INTO ?1", [tmp.to_string_lossy()])
            .map_err(|e| fail("copy", &e))
            .and_then(|_| std::fs::rename(&tmp, &dest).map_err(|e| fail("rename", &e)));
        if copied.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        copied
    }

    /// Starts a `BEGIN IMMEDIATE` transaction: the write lock is taken up
    /// front, so check-then-update sequences cannot interleave.
    pub fn kind(&self) -> crate::store::Kind {
        crate::store::Kind::Sqlite
    }

    pub fn write(&mut self) -> Result<SqliteTx<'_>> {
        Ok(SqliteTx {
            tx: self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
        })
    }

    /// Opens an existing store to look at it (`2fa-enroll check`) without
    /// changing anything: the checks of [`SqliteStore::open_existing`], then a
    /// read-only connection that migrates nothing, never checkpoints and
    /// creates no file. When the write-ahead log and its index are both
    /// there (a store the module has used) SQLite reads them as they are
    /// (leaving its read marks in the index, shared memory every reader
    /// writes to); otherwise it would create them, so the database file
    /// is opened as immutable instead, which ignores a log without its
    /// index: the note says so.
    pub fn inspect(path: &Path, trust: Trust) -> Result<(SqliteStore, Option<String>)> {
        check_exists(path, trust)?;
        check_files(path, trust)?;
        let has = |suffix: &str| std::fs::symlink_metadata(sidecar(path, suffix)).is_ok();
        let (wal, shm, journal) = (has("-wal"), has("-shm"), has("-journal"));
        let immutable = !(wal && shm);
        let mut note = None;
        if wal && !shm {
            note = Some(format!(
                "{} has no index ({}-shm): its last transactions were not read",
                sidecar(path, "-wal").display(),
                path.display()
            ));
        }
        if journal {
            note = Some(format!(
                "a rollback journal {} exists: an interrupted write, rolled back at the next login",
                sidecar(path, "-journal").display()
            ));
        }
        let uri = format!(
            "file:{}?mode=ro{}",
            uri_path(path),
            if immutable { "&immutable=1" } else { "" }
        );
        let conn = Connection::open_with_flags(
            &uri,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| explain_fs(path, e.into()))?;
        conn.busy_handler(Some(busy_wait))?;
        Ok((SqliteStore { conn }, note))
    }

    /// The schema version (`PRAGMA user_version`): 0 for a database that
    /// is not a pam-2fa store, [`schema::current_version`] when current.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// SQLite's quick integrity check (`PRAGMA quick_check`): "ok", or the
    /// first problem found.
    pub fn quick_check(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))?)
    }

    /// Runs SQLite's integrity check (used by `2fa-enroll status --check`).
    pub fn integrity_check(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}

/// `/var/lib/2fa/state.db` -> `/var/lib/2fa/state.db.schema-5.bak`.
pub fn backup_path(db: &str, version: i64) -> PathBuf {
    PathBuf::from(format!("{db}.schema-{version}.bak"))
}

thread_local! {
    /// The busy timeout of the connection this thread opened last (PAM and
    /// the CLI open one at a time; every caller passes the configured
    /// value). A thread-local because SQLite's busy handler is a plain
    /// function that only gets the retry count.
    static BUSY_TIMEOUT_MS: std::cell::Cell<u64> = const { std::cell::Cell::new(10_000) };
}

/// Waits for a lock another connection holds: 1 ms at a time, for at least
/// the busy timeout. SQLite's built-in busy timeout sleeps longer after
/// each failed try (up to 100 ms), so under many parallel logins one that
/// lost a few times slept while newcomers took the lock: with a commit
/// that fsyncs (`synchronous = FULL`) 16 parallel login streams saw logins
/// wait up to 0.8 s. Short, equal sleeps keep the wait close to first come,
/// first served.
fn busy_wait(retries: i32) -> bool {
    let limit = BUSY_TIMEOUT_MS.with(|t| t.get());
    if u64::try_from(retries).unwrap_or(u64::MAX) >= limit {
        return false;
    }
    crate::clock::sleep(Duration::from_millis(1));
    true
}

/// The store file exists and is a regular file (not a symlink, a
/// directory, ...); a missing one is [`StoreError::Missing`] only where
/// its absence can be believed (see [`SqliteStore::open_existing`]).
fn check_exists(path: &Path, trust: Trust) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            secure_fs::check_missing(path, "store", trust).map_err(StoreError::Unsafe)?;
            Err(StoreError::Missing(format!(
                "{} does not exist (create it with `2fa-enroll init`)",
                path.display()
            )))
        }
        Err(e) => Err(StoreError::Other(format!("{}: {e}", path.display()))),
        Ok(m) if !m.is_file() => Err(StoreError::Unsafe(format!(
            "{} is not a regular file",
            path.display()
        ))),
        Ok(_) => Ok(()),
    }
}

/// `path` for a `file:` URI: every byte but unreserved ones and `/`
/// percent-encoded (a `?` or `#` in a directory name must not end it).
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `path` with `suffix` appended to its file name (`state.db-wal`).
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Checks the store's directory and every directory above it
/// ([`secure_fs::check_dir_chain`]), the store, and those of its `-wal`,
/// `-shm` and `-journal` files that exist: all root-owned and private (see
/// the module docs). Returns the WAL's size (0 when there is none).
fn check_files(path: &Path, trust: Trust) -> Result<u64> {
    if let Some(dir) = path.parent() {
        secure_fs::check_dir_chain(dir, "store", trust).map_err(StoreError::Unsafe)?;
    }
    secure_fs::check_root_owned(path, "store", secure_fs::NO_GROUP_OR_WORLD, trust)
        .map_err(StoreError::Unsafe)?;
    let mut wal_len = 0;
    for (suffix, what) in [
        ("-wal", "store write-ahead log"),
        ("-shm", "store WAL index"),
        ("-journal", "store journal"),
    ] {
        let file = sidecar(path, suffix);
        let meta = match std::fs::symlink_metadata(&file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::Other(format!("{}: {e}", file.display()))),
            Ok(m) => m,
        };
        secure_fs::check_root_owned(&file, what, secure_fs::NO_GROUP_OR_WORLD, trust)
            .map_err(StoreError::Unsafe)?;
        if !meta.is_file() {
            return Err(StoreError::Unsafe(format!(
                "{what} {} is not a regular file",
                file.display()
            )));
        }
        if suffix == "-wal" {
            wal_len = meta.len();
        }
    }
    Ok(wal_len)
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

impl SqliteTx<'_> {
    pub fn commit(self) -> Result<()> {
        Ok(self.tx.commit()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Algorithm;
    use crate::store::types::*;
    use std::os::unix::fs::PermissionsExt;

    fn new_store() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state").join("state.db");
        SqliteStore::open_or_create(&db, 1000, Trust::test_runner()).unwrap();
        (dir, db)
    }

    fn otp(step: i64) -> OtpRecord {
        OtpRecord {
            kind: OtpKind::Totp,
            sealed: vec![7; 40],
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            last_step: Some(step),
            counter: 0,
            created_at: 1,
            key_gen: 0,
        }
    }

    /// `users` enrolled with a TOTP token whose last used step is `step`.
    fn enrolled(db: &Path, users: &[&str], step: i64) {
        let mut s = SqliteStore::open_existing(db, 1000, Trust::test_runner()).unwrap();
        let tx = s.write().unwrap();
        for u in users {
            tx.ensure_user(u, 1).unwrap();
            tx.put_otp(u, &otp(step), 1).unwrap();
        }
        tx.commit().unwrap();
    }

    /// One login's worth of writing, through the module's open path.
    fn login_write(db: &Path, user: &str, step: i64) {
        let mut s = SqliteStore::open_existing(db, 10_000, Trust::test_runner()).unwrap();
        let tx = s.write().unwrap();
        tx.ensure_user(user, step).unwrap();
        assert!(
            tx.set_last_step(user, step).unwrap(),
            "step {step} not newer"
        );
        tx.commit().unwrap();
    }

    fn last_step(db: &Path, user: &str) -> Option<i64> {
        let mut s = SqliteStore::open_existing(db, 10_000, Trust::test_runner()).unwrap();
        s.user_state(user).unwrap().otp.unwrap().last_step
    }

    fn wal_len(db: &Path) -> u64 {
        std::fs::metadata(sidecar(db, "-wal"))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    #[test]
    fn wal_outlives_the_connection_and_the_next_open_sees_it() {
        let (_d, db) = new_store();
        enrolled(&db, &["alice"], 100);
        login_write(&db, "alice", 101);
        // Closed without a checkpoint: the commits live only in the WAL,
        // which must still be there, root-only like the store.
        let wal = sidecar(&db, "-wal");
        let meta = std::fs::metadata(&wal).unwrap();
        assert!(meta.len() > 0, "WAL gone or empty");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // A new process (here: a new connection) reads the WAL back.
        assert_eq!(last_step(&db, "alice"), Some(101));
        // So does any other SQLite reader, e.g. the sqlite3 CLI of an admin.
        let other = Connection::open(&db).unwrap();
        let step: i64 = other
            .query_row(
                "SELECT last_step FROM otp_tokens WHERE user = 'alice'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(step, 101);
    }

    #[test]
    fn many_sequential_logins_keep_the_wal_bounded_and_lose_nothing() {
        let (_d, db) = new_store();
        enrolled(&db, &["alice", "bob"], 0);
        // A login appends a few frames; the check runs at the next open, so
        // the WAL may pass the threshold by one login's frames, never more.
        let bound = WAL_CHECKPOINT_BYTES + 8 * (24 + 4096);
        let mut largest = 0;
        let mut truncations = 0;
        let mut prev = 0;
        for step in 1..=400 {
            let user = if step % 2 == 0 { "alice" } else { "bob" };
            login_write(&db, user, step);
            let len = wal_len(&db);
            assert!(len <= bound, "WAL {len} bytes after login {step}");
            if len < prev {
                truncations += 1;
            }
            prev = len;
            largest = largest.max(len);
            // Every login's write is visible to the next one.
            assert_eq!(last_step(&db, user), Some(step));
        }
        assert!(
            largest > WAL_CHECKPOINT_BYTES / 2,
            "WAL never grew: {largest}"
        );
        assert!(truncations >= 2, "WAL truncated {truncations} times");
        assert_eq!(last_step(&db, "alice"), Some(400));
        assert_eq!(last_step(&db, "bob"), Some(399));
        let s = SqliteStore::open_existing(&db, 1000, Trust::test_runner()).unwrap();
        assert_eq!(s.integrity_check().unwrap(), "ok");
    }

    /// A reader that keeps an old snapshot stops the WAL from being
    /// truncated; the login that finds it due must neither wait for the
    /// reader (busy timeout 10 s here) nor fail, and a later login
    /// truncates it once the reader is gone.
    #[test]
    fn checkpoint_blocked_by_a_reader_neither_waits_nor_fails() {
        let (_d, db) = new_store();
        enrolled(&db, &["alice"], 0);
        let reader = Connection::open(&db).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
            .unwrap();
        let mut step = 0;
        while wal_len(&db) <= WAL_CHECKPOINT_BYTES {
            step += 1;
            login_write(&db, "alice", step);
            assert!(step < 1000, "WAL does not grow");
        }
        let t = crate::clock::Stopwatch::start();
        login_write(&db, "alice", step + 1);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "login waited {:?} for a checkpoint",
            t.elapsed()
        );
        assert!(
            wal_len(&db) > WAL_CHECKPOINT_BYTES,
            "truncated under a reader"
        );
        reader.execute_batch("COMMIT").unwrap();
        drop(reader);
        login_write(&db, "alice", step + 2);
        assert!(wal_len(&db) < WAL_CHECKPOINT_BYTES / 4, "{}", wal_len(&db));
        assert_eq!(last_step(&db, "alice"), Some(step + 2));
    }

    /// `-wal`, `-shm` and `-journal` files get the store's own checks: a
    /// leftover with the wrong owner, mode or type is refused (fail
    /// closed) by the module and by `2fa-enroll` alike, and left alone.
    #[test]
    fn bad_sidecar_files_are_refused() {
        let (_d, db) = new_store();
        enrolled(&db, &["alice"], 0);
        login_write(&db, "alice", 1);
        for suffix in ["-wal", "-shm", "-journal"] {
            let file = sidecar(&db, suffix);
            let existed = file.exists();
            if !existed {
                std::fs::write(&file, b"").unwrap();
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            let saved = std::fs::read(&file).unwrap();
            let refused = |why: &str| {
                for r in [
                    SqliteStore::open_existing(&db, 1000, Trust::test_runner()).map(|_| ()),
                    SqliteStore::open_or_create(&db, 1000, Trust::test_runner()).map(|_| ()),
                ] {
                    match r {
                        Err(StoreError::Unsafe(m)) => {
                            assert!(m.contains(suffix) && m.contains(why), "{suffix}: {m}")
                        }
                        other => panic!("{suffix} ({why}): {other:?}"),
                    }
                }
            };
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            refused("has mode 0644");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o660)).unwrap();
            refused("has mode 0660");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            // Someone else's: only root can give a file away, and the
            // store's directory comes first in the checks, so as another
            // user this case is left to the rule's own tests (secure_fs).
            if nix::unistd::geteuid().is_root() {
                std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
                refused("owned by uid 65534");
                std::os::unix::fs::chown(&file, Some(0), None).unwrap();
            }
            assert_eq!(std::fs::read(&file).unwrap(), saved, "{suffix} changed");
            // Not a regular file.
            let aside = sidecar(&db, ".aside");
            std::fs::rename(&file, &aside).unwrap();
            std::os::unix::fs::symlink(&aside, &file).unwrap();
            refused("symlink");
            std::fs::remove_file(&file).unwrap();
            std::fs::create_dir(&file).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o700)).unwrap();
            refused("not a regular file");
            std::fs::remove_dir(&file).unwrap();
            if existed {
                std::fs::rename(&aside, &file).unwrap();
            } else {
                std::fs::remove_file(&aside).unwrap();
            }
            // Repaired: the store opens and still has the last write.
            assert_eq!(last_step(&db, "alice"), Some(1), "{suffix}");
        }
    }

    /// An upgrade keeps a readable copy of the store from before the
    /// migration (private, at the old version); an older pam-2fa meeting
    /// the migrated store refuses it and names that copy.
    #[test]
    fn migration_keeps_a_copy_and_a_newer_schema_names_it() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s/state.db");
        SqliteStore::open_or_create(&path, 1000, Trust::test_runner()).unwrap();
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "DROP TABLE logins; DROP TABLE meta; DROP TABLE key_warnings; DROP TABLE local_keys;
                 ALTER TABLE backup_codes DROP COLUMN inner_gen; ALTER TABLE questions DROP COLUMN inner_gen; ALTER TABLE otp_tokens DROP COLUMN key_gen; ALTER TABLE backup_codes DROP COLUMN key_gen; ALTER TABLE questions DROP COLUMN key_gen;
                 PRAGMA user_version = 4;
                 INSERT INTO users (name, created_at) VALUES ('alice', 1);",
            )
            .unwrap();
        }
        SqliteStore::open_existing(&path, 1000, Trust::test_runner()).unwrap();
        let copy = backup_path(path.to_str().unwrap(), 4);
        let meta = std::fs::metadata(&copy).expect("no copy from before the migration");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let c = Connection::open(&copy).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 4);
        let n: i64 = c
            .query_row("SELECT count(*) FROM users WHERE name = 'alice'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 1);
        // Opening the migrated store again makes no second copy.
        std::fs::remove_file(&copy).unwrap();
        SqliteStore::open_existing(&path, 1000, Trust::test_runner()).unwrap();
        assert!(!copy.exists());

        // A store from a newer pam-2fa: refused, naming the way back.
        let newer = schema::current_version() + 1;
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", newer)
            .unwrap();
        let err = match SqliteStore::open_existing(&path, 1000, Trust::test_runner()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a store of schema {newer} was opened"),
        };
        assert!(
            err.contains(&format!("schema version {newer} is newer")),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "state.db.schema-{}.bak",
                schema::current_version()
            )),
            "{err}"
        );
    }

    /// Every file in the store's directory with its length and hash, for
    /// "nothing changed" checks; the WAL index (`-shm`, SQLite's shared
    /// memory, where every reader leaves its read marks) by name and
    /// length only.
    fn snapshot(db: &Path) -> Vec<(PathBuf, u64, [u8; 32])> {
        use sha2::Digest;
        let mut all: Vec<(PathBuf, u64, [u8; 32])> = std::fs::read_dir(db.parent().unwrap())
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                let bytes = std::fs::read(&p).unwrap();
                let hash = if p.to_string_lossy().ends_with("-shm") {
                    [0; 32]
                } else {
                    sha2::Sha256::digest(&bytes).into()
                };
                (p, bytes.len() as u64, hash)
            })
            .collect();
        all.sort();
        all
    }

    /// `inspect` reads what a login would, and changes, creates and
    /// migrates nothing: not with the WAL kept by logins, not after a
    /// clean close (no WAL: nothing to create), not for an old schema.
    #[test]
    fn inspect_changes_nothing() {
        let (_d, db) = new_store();
        // Closed by `open_or_create`'s connection: no WAL left.
        let before = snapshot(&db);
        assert_eq!(before.len(), 1, "{before:?}");
        let (s, note) = SqliteStore::inspect(&db, Trust::test_runner()).unwrap();
        assert_eq!(note, None);
        assert_eq!(s.schema_version().unwrap(), schema::current_version());
        assert_eq!(s.quick_check().unwrap(), "ok");
        assert!(s.users().unwrap().is_empty());
        drop(s);
        assert_eq!(snapshot(&db), before);
        // After logins: the WAL holds the last write, and is read.
        enrolled(&db, &["alice"], 0);
        login_write(&db, "alice", 7);
        let before = snapshot(&db);
        assert_eq!(before.len(), 3, "{before:?}");
        let (mut s, note) = SqliteStore::inspect(&db, Trust::test_runner()).unwrap();
        assert_eq!(note, None);
        assert_eq!(
            s.user_state("alice").unwrap().otp.unwrap().last_step,
            Some(7)
        );
        let wrote = s.write().and_then(|tx| {
            tx.ensure_user("bob", 1)?;
            tx.commit()
        });
        assert!(
            matches!(wrote, Err(StoreError::ReadOnly(_))),
            "{:?}",
            wrote.err()
        );
        drop(s);
        assert_eq!(snapshot(&db), before);
        // A WAL without its index: not read, and said so.
        std::fs::remove_file(sidecar(&db, "-shm")).unwrap();
        let before = snapshot(&db);
        let (s, note) = SqliteStore::inspect(&db, Trust::test_runner()).unwrap();
        assert!(note.unwrap().contains("no index"));
        drop(s);
        assert_eq!(snapshot(&db), before);
        // An old schema is reported, not migrated.
        {
            let c = Connection::open(&db).unwrap();
            c.pragma_update(None, "user_version", 3).unwrap();
        }
        let before = snapshot(&db);
        let (s, _) = SqliteStore::inspect(&db, Trust::test_runner()).unwrap();
        assert_eq!(s.schema_version().unwrap(), 3);
        drop(s);
        assert_eq!(snapshot(&db), before);
        // Missing, and the way there is checked.
        let gone = db.with_file_name("other.db");
        assert!(matches!(
            SqliteStore::inspect(&gone, Trust::test_runner()),
            Err(StoreError::Missing(_))
        ));
        assert!(!gone.exists());
        std::fs::set_permissions(db.parent().unwrap(), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        for r in [
            SqliteStore::inspect(&gone, Trust::test_runner()).map(|_| ()),
            SqliteStore::open_existing(&gone, 1000, Trust::test_runner()).map(|_| ()),
        ] {
            assert!(matches!(r, Err(StoreError::Unsafe(_))), "{r:?}");
        }
    }

    #[test]
    fn uri_paths_are_escaped() {
        assert_eq!(
            uri_path(Path::new("/var/lib/2fa/state.db")),
            "/var/lib/2fa/state.db"
        );
        assert_eq!(uri_path(Path::new("/a b/x?y#z%")), "/a%20b/x%3Fy%23z%25");
    }
}
