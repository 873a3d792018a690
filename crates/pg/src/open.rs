//! The one place that picks the store backend from the config
//! (`store = "sqlite" | "postgres"`), so the module, 2fad and 2fa-enroll
//! all open the same store the same way.

use crate::store::{Limits, PgStore};
use crate::wire::{ChannelBinding, Conn, ConnectConfig, Tls};
use p2fa_core::config::{Config, PgChannelBinding, PgTlsMode, StoreKind, host_name};
use p2fa_core::secure_fs::{self, Trust};
use p2fa_core::store::{Store, StoreError};
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

/// Who is opening the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A login (the module, 2fad): an existing store only; on
    /// PostgreSQL the login role, a primary, and the schema checked.
    Login,
    /// 2fa-enroll's commands: SQLite is created and migrated if needed;
    /// PostgreSQL is used as for a login (only `init`/`migrate` change
    /// the schema, through [`open_admin`]).
    Admin,
}

/// Opens the configured store.
pub fn open(cfg: &Config, trust: Trust, mode: Mode) -> Result<Store, StoreError> {
    match (cfg.store, mode) {
        (StoreKind::Sqlite, Mode::Login) => {
            Store::open_existing(&cfg.db, cfg.busy_timeout_ms, trust)
        }
        (StoreKind::Sqlite, Mode::Admin) => {
            Store::open_or_create(&cfg.db, cfg.busy_timeout_ms, trust)
        }
        (StoreKind::Postgres, _) => {
            let store = connect(cfg, trust, false)?;
            store.check_schema()?;
            Ok(Store::from_backend(Box::new(store)))
        }
    }
}

/// A connection for schema changes (`2fa-enroll init`/`migrate`):
/// `postgres.admin_url_file` if set, else the login URL; the schema is
/// not checked (that is what the caller is about to change).
pub fn open_admin(cfg: &Config, trust: Trust) -> Result<PgStore, StoreError> {
    connect(cfg, trust, true)
}

const MAX_SECRET_FILE: u64 = 8 * 1024;

/// A root-only file holding one line (a URL or a password).
fn read_secret_line(path: &str, what: &str, trust: Trust) -> Result<Zeroizing<String>, StoreError> {
    let bytes = secure_fs::read_trusted(
        Path::new(path),
        what,
        secure_fs::NO_GROUP_OR_WORLD,
        MAX_SECRET_FILE,
        trust,
    )
    .map_err(|e| StoreError::Unsafe(e.to_string()))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| StoreError::Unsafe(format!("{what} {path} is not UTF-8 text")))?;
    Ok(Zeroizing::new(
        text.trim_end_matches(['\n', '\r']).to_string(),
    ))
}

/// The connection settings from the config.
pub fn connect_config(
    cfg: &Config,
    trust: Trust,
    admin: bool,
) -> Result<ConnectConfig, StoreError> {
    let p = &cfg.postgres;
    let bad = |m: String| StoreError::Unreachable(format!("postgres: {m}"));
    let url = if admin && !p.admin_url_file.is_empty() {
        read_secret_line(&p.admin_url_file, "postgres.admin_url_file", trust)?
    } else if !p.url_file.is_empty() {
        read_secret_line(&p.url_file, "postgres.url_file", trust)?
    } else {
        Zeroizing::new(p.url.clone())
    };
    let mut cc = ConnectConfig::from_url(&url, trust).map_err(bad)?;
    if cc.password.is_none() && !p.password_file.is_empty() {
        cc.password = Some(read_secret_line(
            &p.password_file,
            "postgres.password_file",
            trust,
        )?);
    }
    if p.tls == PgTlsMode::Off {
        cc.tls = Tls::Off;
    } else if let Tls::VerifyFull {
        ca_file,
        client_cert,
    } = &mut cc.tls
    {
        if !p.ca_file.is_empty() {
            *ca_file = Some(p.ca_file.clone().into());
        }
        if !p.client_cert.is_empty() {
            *client_cert = Some((p.client_cert.clone().into(), p.client_key.clone().into()));
        }
    }
    cc.channel_binding = match p.channel_binding {
        PgChannelBinding::Prefer => ChannelBinding::Prefer,
        PgChannelBinding::Require => ChannelBinding::Require,
        PgChannelBinding::Disable => ChannelBinding::Disable,
    };
    cc.connect_timeout = Duration::from_millis(p.connect_timeout_ms);
    // The server cancels a statement at statement_timeout_ms; the client
    // waits a second longer for that answer, then drops the connection
    // (the server then rolls back).
    cc.io_timeout = Duration::from_millis(p.statement_timeout_ms.max(p.lock_timeout_ms) + 1000);
    cc.require_primary = true;
    if cc.application_name.is_empty() {
        cc.application_name = "pam-2fa".into();
    }
    Ok(cc)
}

fn connect(cfg: &Config, trust: Trust, admin: bool) -> Result<PgStore, StoreError> {
    let cc = connect_config(cfg, trust, admin)?;
    let conn = Conn::connect(&cc).map_err(crate::store::store_error)?;
    Ok(store_on(cfg, conn))
}

/// The store on `conn` with this host's name and the configured limits.
pub(crate) fn store_on(cfg: &Config, conn: Conn) -> PgStore {
    PgStore::new(
        conn,
        host_name(&cfg.host_id),
        Limits {
            statement_timeout_ms: cfg.postgres.statement_timeout_ms,
            lock_timeout_ms: cfg.postgres.lock_timeout_ms,
        },
    )
}

/// `2fa-enroll init` and `migrate` on PostgreSQL: brings the fleet
/// schema up to this build's (once per fleet, under the schema lock) and
/// records this host. Returns a line for the admin.
pub fn init_fleet(
    cfg: &Config,
    trust: Trust,
    release: &str,
    now: i64,
) -> Result<String, StoreError> {
    let admin = open_admin(cfg, trust)?;
    let host = admin.host().to_string();
    let mut conn = admin.conn()?;
    let (from, to) =
        crate::schema::migrate(&mut conn, crate::schema::MIGRATIONS, release, &host, now)
            .map_err(crate::store::store_error)?;
    crate::schema::register_host(&mut conn, &host, release, now)
        .map_err(crate::store::store_error)?;
    Ok(if from == to {
        format!("fleet schema v{to} (current); host {host} registered")
    } else {
        format!("fleet schema migrated from v{from} to v{to}; host {host} registered")
    })
}
