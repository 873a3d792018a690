//! A synchronous PostgreSQL client for the PAM module, 2fad and
//! 2fa-enroll (docs/fleet.md §4).
//!
//! STUB: the API the store is written against; the implementation
//! replaces the bodies.

use std::path::PathBuf;
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

impl ConnectConfig {
    /// Reads a libpq-style URL, `postgresql://user[:password]@host[:port][,host[:port]...]/dbname[?param=value...]`,
    /// with the parameters `application_name`, `sslmode` (`verify-full`,
    /// `disable`), `channel_binding`, `connect_timeout` (seconds) and
    /// `host` (a Unix socket directory). Everything else is an error.
    pub fn from_url(
        url: &str,
        trust: p2fa_core::secure_fs::Trust,
    ) -> Result<ConnectConfig, String> {
        let _ = (url, trust);
        Err("the PostgreSQL client is not built yet".into())
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
/// column's type and refuse NULL unless `opt_`.
#[derive(Debug, Clone)]
pub struct Row {
    _private: (),
}

impl Row {
    pub fn len(&self) -> usize {
        0
    }
    pub fn is_empty(&self) -> bool {
        true
    }
    /// int2, int4 or int8.
    pub fn i64(&self, idx: usize) -> Result<i64, PgError> {
        self.opt_i64(idx)?
            .ok_or_else(|| PgError::Lost(format!("column {idx} is NULL")))
    }
    pub fn opt_i64(&self, idx: usize) -> Result<Option<i64>, PgError> {
        Err(PgError::Lost(format!("no column {idx}")))
    }
    pub fn bool(&self, idx: usize) -> Result<bool, PgError> {
        Err(PgError::Lost(format!("no column {idx}")))
    }
    /// text or varchar.
    pub fn text(&self, idx: usize) -> Result<String, PgError> {
        self.opt_text(idx)?
            .ok_or_else(|| PgError::Lost(format!("column {idx} is NULL")))
    }
    pub fn opt_text(&self, idx: usize) -> Result<Option<String>, PgError> {
        Err(PgError::Lost(format!("no column {idx}")))
    }
    pub fn bytes(&self, idx: usize) -> Result<Vec<u8>, PgError> {
        self.opt_bytes(idx)?
            .ok_or_else(|| PgError::Lost(format!("column {idx} is NULL")))
    }
    pub fn opt_bytes(&self, idx: usize) -> Result<Option<Vec<u8>>, PgError> {
        Err(PgError::Lost(format!("no column {idx}")))
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
    _private: (),
}

impl Conn {
    pub fn connect(cfg: &ConnectConfig) -> Result<Conn, PgError> {
        let _ = cfg;
        Err(PgError::Connect(
            "the PostgreSQL client is not built yet".into(),
        ))
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
        let _ = stmts;
        Err(PgError::Lost(
            "the PostgreSQL client is not built yet".into(),
        ))
    }

    /// The simple query protocol, for scripts without parameters
    /// (migrations, BEGIN/COMMIT/ROLLBACK).
    pub fn simple(&mut self, sql: &str) -> Result<(), PgError> {
        let _ = sql;
        Err(PgError::Lost(
            "the PostgreSQL client is not built yet".into(),
        ))
    }

    /// The state the server reported in its last ReadyForQuery.
    pub fn status(&self) -> TxStatus {
        TxStatus::Idle
    }

    /// A server parameter reported at startup (ParameterStatus), e.g.
    /// `server_version`.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        let _ = name;
        None
    }
}
