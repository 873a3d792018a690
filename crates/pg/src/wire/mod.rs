//! A synchronous PostgreSQL client for the PAM module, 2fad and
//! 2fa-enroll (docs/fleet.md §4).
//!
//! It runs inside the PAM host process, so: everything on the calling
//! thread (no runtime, no helper thread, no global state), every read
//! and write under a deadline, writes with `MSG_NOSIGNAL`, and no panic
//! on anything the server sends. Files: [`url`] (the URL subset),
//! `stream` (the deadline-bound socket, TLS, framing), `msg` (message
//! encoding and decoding), [`scram`] (SCRAM-SHA-256[-PLUS]), `conn`
//! (startup, authentication, statements).
//!
//! Rules beyond the types' docs: a Unix socket is used only in a
//! directory owned by root or postgres and not writable by others, and
//! never with TLS (PostgreSQL offers none there), whatever [`Tls`] says;
//! a clear-text password is sent only over TLS or a Unix socket; MD5 is
//! refused; with [`ChannelBinding::Require`] only a completed
//! SCRAM-SHA-256-PLUS is accepted (not a certificate or trust login).
//! Every connect error names the address it is about and never the
//! password.

// Code that runs inside the PAM host never panics on purpose.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable
    )
)]

mod conn;
mod msg;
pub mod scram;
mod stream;
#[cfg(test)]
mod tests;
pub mod url;

pub use stream::{MAX_CALL_BYTES, MAX_MESSAGE};

use p2fa_core::clock::Deadline;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// Why a connection or a statement failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgError {
    /// No server could be reached, or none accepted us (TCP, TLS,
    /// authentication, a standby when a primary is needed): the fleet
    /// store is unreachable.
    Connect(String),
    /// The server answered a statement with an ErrorResponse. The
    /// connection is still usable (after the transaction is rolled back).
    Server { code: String, message: String },
    /// The connection broke or timed out mid-call, or the server spoke
    /// nonsense: the connection is unusable and the outcome of a COMMIT
    /// in flight is unknown.
    Lost(String),
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgError::Connect(m) => write!(f, "cannot connect: {m}"),
            PgError::Server { code, message } => write!(f, "{message} (SQLSTATE {code})"),
            PgError::Lost(m) => write!(f, "connection lost: {m}"),
        }
    }
}

impl std::error::Error for PgError {}

/// How the connection is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// TLS with the system CAs plus `ca_file`, host name verified; a
    /// client certificate when `client_cert` is set.
    VerifyFull {
        ca_file: Option<PathBuf>,
        client_cert: Option<(PathBuf, PathBuf)>,
    },
    /// No TLS: only to a loopback address or a Unix socket.
    Off,
}

/// SCRAM channel binding (SCRAM-SHA-256-PLUS, tls-server-end-point).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelBinding {
    Prefer,
    Require,
    Disable,
}

/// Where to connect: a TCP host and port, or the directory of a Unix
/// socket (the socket is `<dir>/.s.PGSQL.<port>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Tcp(String, u16),
    Unix(PathBuf, u16),
}

/// Everything a connection needs. Never read from PG* variables,
/// ~/.pgpass or pg_service.conf: under sudo they are the caller's.
#[derive(Clone)]
pub struct ConnectConfig {
    /// Tried in order; the first that accepts us and is a primary wins.
    pub addrs: Vec<Addr>,
    pub user: String,
    pub dbname: String,
    pub password: Option<Zeroizing<String>>,
    pub application_name: String,
    pub tls: Tls,
    pub channel_binding: ChannelBinding,
    /// Bounds everything until ReadyForQuery, over all addresses.
    pub connect_timeout: Duration,
    /// Bounds each call ([`Conn::query`], [`Conn::pipeline`],
    /// [`Conn::simple`]) from its first write to its last read.
    pub io_timeout: Duration,
    /// Skip servers in recovery (standbys); `false` for read-only use.
    pub require_primary: bool,
    /// Whose files (ca_file, client key) to believe.
    pub trust: p2fa_core::secure_fs::Trust,
}

/// Never shows the password.
impl std::fmt::Debug for ConnectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectConfig")
            .field("addrs", &self.addrs)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("application_name", &self.application_name)
            .field("tls", &self.tls)
            .field("channel_binding", &self.channel_binding)
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .field("require_primary", &self.require_primary)
            .field("trust", &self.trust)
            .finish()
    }
}

impl ConnectConfig {
    /// Reads a libpq-style URL, `postgresql://user[:password]@host[:port][,host[:port]...]/dbname[?param=value...]`,
    /// with the parameters `application_name`, `sslmode` (`verify-full`,
    /// `disable`), `channel_binding`, `connect_timeout` (seconds) and
    /// `host` (a Unix socket directory). Everything else is an error.
    ///
    /// Defaults: port 5432, database = user, `application_name`
    /// `pam-2fa`, TLS verify-full with the system CAs (no `ca_file`, no
    /// client certificate: the caller sets those), channel binding
    /// `prefer`, connect timeout 3 s, I/O timeout 6 s (the default
    /// statement timeout plus 1 s), `require_primary`. A password must be
    /// printable ASCII. Error messages never quote the URL.
    pub fn from_url(
        url: &str,
        trust: p2fa_core::secure_fs::Trust,
    ) -> Result<ConnectConfig, String> {
        url::parse(url, trust)
    }
}

/// One parameter of a statement, sent in binary with its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int4(i32),
    Int8(i64),
    Text(&'a str),
    Bytea(&'a [u8]),
}

/// One result row (binary format), typed getters that check the
/// column's type and refuse NULL unless `opt_`. A type or length that
/// does not fit is [`PgError::Lost`] (the server sent what we did not ask
/// for), never a panic.
#[derive(Debug, Clone)]
pub struct Row {
    /// The column type OIDs, shared by the rows of one result.
    types: Arc<[u32]>,
    values: Vec<Option<Vec<u8>>>,
}

const BOOL: u32 = 16;
const BYTEA: u32 = 17;
const NAME: u32 = 19;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const VARCHAR: u32 = 1043;

impl Row {
    pub fn len(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// The column's value if its type is one of `types`.
    fn raw(&self, idx: usize, types: &[u32], what: &str) -> Result<Option<&[u8]>, PgError> {
        let (Some(ty), Some(v)) = (self.types.get(idx), self.values.get(idx)) else {
            return Err(PgError::Lost(format!("no column {idx}")));
        };
        if !types.contains(ty) {
            return Err(PgError::Lost(format!(
                "column {idx} has type OID {ty}, not {what}"
            )));
        }
        Ok(v.as_deref())
    }
    /// int2, int4 or int8.
    pub fn i64(&self, idx: usize) -> Result<i64, PgError> {
        self.opt_i64(idx)?
            .ok_or_else(|| PgError::Lost(format!("column {idx} is NULL")))
    }
    pub fn opt_i64(&self, idx: usize) -> Result<Option<i64>, PgError> {
        let Some(v) = self.raw(idx, &[INT2, INT4, INT8], "an integer")? else {
            return Ok(None);
        };
        let bad = || PgError::Lost(format!("column {idx}: a malformed integer"));
        Ok(Some(match self.types.get(idx) {
            Some(&INT2) => i64::from(i16::from_be_bytes(v.try_into().map_err(|_| bad())?)),
            Some(&INT4) => i64::from(i32::from_be_bytes(v.try_into().map_err(|_| bad())?)),
            _ => i64::from_be_bytes(v.try_into().map_err(|_| bad())?),
        }))
    }
    pub fn bool(&self, idx: usize) -> Result<bool, PgError> {
        self.opt_bool(idx)?
            .ok_or_else(|| PgError::Lost(format!("column {idx} is NULL")))
    }
    pub fn opt_bool(&self, idx: usize) -> Result<Option<bool>, PgError> {
        match self.raw(idx, &[BOOL], "bool")? {
            None => Ok(None),
            Some([0]) => Ok(Some(false)),
            Some([1]) => Ok(Some(true)),
            Some(_) => Err(PgError::Lost(format!("column {idx}: a malformed bool"))),
        }
    }
    /// text or varchar.
    pub fn text(&self, idx: usize) -> Result<String, PgError> {
        self.opt_text(idx)?
            .ok_or_else(|| PgError::Lost(format!("column {idx} is NULL")))
    }
    /// text, varchar or name.
    pub fn opt_text(&self, idx: usize) -> Result<Option<String>, PgError> {
        match self.raw(idx, &[TEXT, VARCHAR, NAME], "text")? {
            None => Ok(None),
            Some(v) => String::from_utf8(v.to_vec())
                .map(Some)
                .map_err(|_| PgError::Lost(format!("column {idx}: text that is not UTF-8"))),
        }
    }
    pub fn bytes(&self, idx: usize) -> Result<Vec<u8>, PgError> {
        self.opt_bytes(idx)?
            .ok_or_else(|| PgError::Lost(format!("column {idx} is NULL")))
    }
    /// bytea.
    pub fn opt_bytes(&self, idx: usize) -> Result<Option<Vec<u8>>, PgError> {
        Ok(self.raw(idx, &[BYTEA], "bytea")?.map(<[u8]>::to_vec))
    }
    /// Whether the column is NULL (any type).
    pub fn is_null(&self, idx: usize) -> Result<bool, PgError> {
        self.values
            .get(idx)
            .map(Option::is_none)
            .ok_or_else(|| PgError::Lost(format!("no column {idx}")))
    }
}

/// What one statement returned.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub rows: Vec<Row>,
    /// Rows inserted, updated or deleted (from CommandComplete).
    pub affected: u64,
}

/// Transaction state from the last ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    Idle,
    InTransaction,
    Failed,
}

/// One connection. Dropping it sends Terminate (best effort) and closes
/// the socket; nothing outlives it.
pub struct Conn {
    /// None once the connection is lost: every later call fails at once.
    inner: Option<conn::Inner>,
    io_timeout: Duration,
    /// Last known state, kept when the connection is lost.
    status: TxStatus,
}

fn dead() -> PgError {
    PgError::Lost("the connection was lost earlier".into())
}

impl Conn {
    /// Connects to the first of `cfg.addrs` that accepts us (and is a
    /// primary when `require_primary`), all under `connect_timeout`.
    pub fn connect(cfg: &ConnectConfig) -> Result<Conn, PgError> {
        let inner = conn::connect(cfg)?;
        Ok(Conn {
            status: inner.status,
            inner: Some(inner),
            io_timeout: cfg.io_timeout,
        })
    }

    /// Runs `f` on the live connection under a fresh `io_timeout`
    /// deadline; a [`PgError::Lost`] kills the connection for good.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut conn::Inner, Deadline) -> Result<T, PgError>,
    ) -> Result<T, PgError> {
        let inner = self.inner.as_mut().ok_or_else(dead)?;
        let r = f(inner, Deadline::after(self.io_timeout));
        self.status = inner.status;
        if let Err(PgError::Lost(_)) = r {
            // Dropped without Terminate: the socket is closed, the server
            // rolls back whatever was open.
            self.inner = None;
        }
        r
    }

    /// Whether the connection is still usable (no [`PgError::Lost`] yet).
    pub fn is_alive(&self) -> bool {
        self.inner.is_some()
    }

    /// Whether another operation may start on this connection as on a
    /// fresh one (2fad's pool, [`crate::pool`]): alive (no I/O error,
    /// timeout or protocol error ever happened on it: each of those is
    /// [`PgError::Lost`] and kills it), and the last ReadyForQuery said
    /// 'I' (no transaction open or failed). A server error outside a
    /// transaction leaves it reusable, as it leaves it usable.
    pub fn is_reusable(&self) -> bool {
        self.inner.is_some() && self.status == TxStatus::Idle
    }

    /// Moves the live connection out, leaving `self` dead (its drop
    /// then sends nothing): how a pooled `PgStore` hands its connection
    /// back.
    pub(crate) fn take(&mut self) -> Conn {
        Conn {
            inner: self.inner.take(),
            io_timeout: self.io_timeout,
            status: self.status,
        }
    }

    /// The bound of every later call (see [`ConnectConfig::io_timeout`]).
    pub(crate) fn set_io_timeout(&mut self, d: Duration) {
        self.io_timeout = d;
    }

    /// One statement (unnamed Parse/Bind/Describe/Execute, then Sync):
    /// one round trip.
    pub fn query(&mut self, sql: &str, params: &[Value<'_>]) -> Result<Outcome, PgError> {
        let mut out = self.pipeline(&[(sql, params)])?;
        out.pop().ok_or_else(|| PgError::Lost("no result".into()))
    }

    /// Several statements pipelined with one Sync: one round trip. The
    /// first ErrorResponse is returned (the server skips the rest up to
    /// the Sync, and the connection is ready again afterwards).
    pub fn pipeline(&mut self, stmts: &[(&str, &[Value<'_>])]) -> Result<Vec<Outcome>, PgError> {
        self.call(|c, d| c.pipeline(stmts, d))
    }

    /// The simple query protocol, for scripts without parameters
    /// (migrations, BEGIN/COMMIT/ROLLBACK). Every statement's result is
    /// read; the first error is returned.
    pub fn simple(&mut self, sql: &str) -> Result<(), PgError> {
        self.call(|c, d| c.simple(sql, d))
    }

    /// The state the server reported in its last ReadyForQuery.
    pub fn status(&self) -> TxStatus {
        self.status
    }

    /// A server parameter reported at startup (ParameterStatus), e.g.
    /// `server_version`.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.inner.as_ref()?.param(name)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.as_mut() {
            inner.terminate(self.io_timeout.min(Duration::from_secs(1)));
        }
    }
}
