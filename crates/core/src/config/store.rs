//! Where the state lives: the embedded SQLite store (the default), or a
//! PostgreSQL database shared by a fleet of hosts (docs/fleet.md).

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The store backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// `db`, one file per host (the default).
    #[default]
    Sqlite,
    /// The `[postgres]` database, shared by every host that names it.
    Postgres,
}

/// TLS to the PostgreSQL server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PgTlsMode {
    /// System CAs plus `ca_file`, host name verified (the default).
    #[default]
    VerifyFull,
    /// No TLS: refused unless the server is a loopback address or a Unix
    /// socket in a root- or postgres-owned directory.
    Off,
}

/// SCRAM channel binding (SCRAM-SHA-256-PLUS), which ties the password
/// exchange to the TLS session. PgBouncer does not offer it: `prefer`
/// uses it when the server does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PgChannelBinding {
    #[default]
    Prefer,
    Require,
    Disable,
}

/// `[postgres]`: the fleet database, used when `store = "postgres"`.
/// No password is ever written here: it goes in `password_file` or in a
/// `url_file`, root-owned 0600, because the config is world-readable.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// `postgresql://USER@HOST[:PORT][,HOST2[:PORT]]/DBNAME[?...]`, hosts
    /// tried in order (the first primary wins). Without a password.
    pub url: String,
    /// Instead of `url`: a root-only file holding the URL, which may
    /// include the password.
    pub url_file: String,
    /// Root-only file holding the password (one line).
    pub password_file: String,
    /// Root-only file with the URL of a role that may change the schema:
    /// `2fa-enroll init`, `migrate` and `rekey` use it; logins never do.
    /// Empty: those commands use the login URL.
    pub admin_url_file: String,
    /// PEM CA certificates trusted in addition to the system ones.
    pub ca_file: String,
    /// PEM certificate chain and root-only key for certificate login
    /// (`hostssl ... cert` in pg_hba.conf): no password, and each host
    /// its own credential.
    pub client_cert: String,
    pub client_key: String,
    pub tls: PgTlsMode,
    pub channel_binding: PgChannelBinding,
    /// Milliseconds to reach a server and log in, all hosts together.
    pub connect_timeout_ms: u64,
    /// Milliseconds one statement may run (set on the server, which then
    /// cancels it; the client gives up a second later).
    pub statement_timeout_ms: u64,
    /// Milliseconds a login waits for another login of the same user
    /// (they queue on the user's lock).
    pub lock_timeout_ms: u64,
    /// Let local console `root` in (PAM_IGNORE, logged at alert) when
    /// the database cannot be reached: only real uid 0, no remote host,
    /// a console tty, and a service in `break_glass_services`. Off by
    /// default; never for sudo, su or ssh.
    pub break_glass: bool,
    pub break_glass_services: Vec<String>,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url: String::new(),
            url_file: String::new(),
            password_file: String::new(),
            admin_url_file: String::new(),
            ca_file: String::new(),
            client_cert: String::new(),
            client_key: String::new(),
            tls: PgTlsMode::VerifyFull,
            channel_binding: PgChannelBinding::Prefer,
            connect_timeout_ms: 3000,
            statement_timeout_ms: 5000,
            lock_timeout_ms: 3000,
            break_glass: false,
            break_glass_services: vec!["login".into()],
        }
    }
}

/// The host name written into every row this host changes in a shared
/// store: `host_id` if set, else the system's host name.
pub fn host_name(host_id: &str) -> String {
    if !host_id.is_empty() {
        return host_id.to_string();
    }
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| valid_host_id(h))
        .unwrap_or_else(|| "localhost".into())
}

fn valid_host_id(s: &str) -> bool {
    (1..=253).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

impl super::Config {
    pub(super) fn validate_store(&self) -> Result<(), super::ConfigError> {
        let err = |m: String| Err(super::ConfigError(m));
        if !self.host_id.is_empty() && !valid_host_id(&self.host_id) {
            return err(format!(
                "host_id = {:?}: use 1..253 letters, digits, dots and dashes",
                self.host_id
            ));
        }
        let p = &self.postgres;
        for (name, v) in [
            ("postgres.url_file", &p.url_file),
            ("postgres.password_file", &p.password_file),
            ("postgres.admin_url_file", &p.admin_url_file),
            ("postgres.ca_file", &p.ca_file),
            ("postgres.client_cert", &p.client_cert),
            ("postgres.client_key", &p.client_key),
        ] {
            if !v.is_empty() && !Path::new(v).is_absolute() {
                return err(format!("{name} must be an absolute path, got {v}"));
            }
        }
        if !p.url.is_empty() {
            check_url(&p.url)?;
        }
        if p.client_cert.is_empty() != p.client_key.is_empty() {
            return err("postgres.client_cert and postgres.client_key go together".into());
        }
        for (name, v, lo, hi) in [
            (
                "postgres.connect_timeout_ms",
                p.connect_timeout_ms,
                100,
                60_000,
            ),
            (
                "postgres.statement_timeout_ms",
                p.statement_timeout_ms,
                100,
                120_000,
            ),
            ("postgres.lock_timeout_ms", p.lock_timeout_ms, 100, 120_000),
        ] {
            if !(lo..=hi).contains(&v) {
                return err(format!("{name} = {v} is out of range {lo}..={hi}"));
            }
        }
        for s in &p.break_glass_services {
            if s.is_empty() || s.len() > 64 || s.chars().any(|c| c.is_control() || c == '/') {
                return err(format!(
                    "postgres.break_glass_services: {s:?} is not a service name"
                ));
            }
        }
        if self.store == StoreKind::Postgres && p.url.is_empty() == p.url_file.is_empty() {
            return err(
                "store = \"postgres\" needs exactly one of postgres.url and postgres.url_file"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The URL in the (world-readable) config: a postgres URL without a
/// password.
fn check_url(url: &str) -> Result<(), super::ConfigError> {
    let bad = |m: &str| Err(super::ConfigError(format!("postgres.url: {m}")));
    let Some(rest) = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
    else {
        return bad("must start with postgresql://");
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && userinfo.contains(':')
    {
        return bad(
            "must not hold a password: put it in postgres.password_file or use postgres.url_file",
        );
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("must not contain spaces or control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn pg(f: impl FnOnce(&mut Config)) -> Result<(), String> {
        let mut c = Config {
            store: StoreKind::Postgres,
            ..Config::default()
        };
        c.postgres.url = "postgresql://pam2fa@db1.example.com,db2.example.com:5433/pam2fa".into();
        f(&mut c);
        c.validate().map_err(|e| e.0)
    }

    #[test]
    fn a_plain_fleet_config_is_accepted() {
        pg(|_| {}).unwrap();
        pg(|c| {
            c.postgres.url.clear();
            c.postgres.url_file = "/etc/security/2fa-pg.url".into();
        })
        .unwrap();
        let c: Config = toml::from_str(
            "store = \"postgres\"\nhost_id = \"web-01.example.com\"\n[postgres]\n\
             url = \"postgresql://p@db/x\"\ntls = \"verify-full\"\nchannel_binding = \"require\"\n",
        )
        .unwrap();
        assert_eq!(c.postgres.channel_binding, PgChannelBinding::Require);
        c.validate().unwrap();
    }

    #[test]
    fn a_password_in_the_config_is_refused() {
        let e =
            pg(|c| c.postgres.url = "postgresql://pam2fa:hunter2@db/pam2fa".into()).unwrap_err();
        assert!(e.contains("password_file"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn store_postgres_needs_exactly_one_url() {
        let e = pg(|c| c.postgres.url.clear()).unwrap_err();
        assert!(e.contains("exactly one"), "{e}");
        let e = pg(|c| c.postgres.url_file = "/etc/x".into()).unwrap_err();
        assert!(e.contains("exactly one"), "{e}");
    }

    #[test]
    fn bad_fleet_values_are_refused() {
        assert!(pg(|c| c.host_id = "web 01".into()).is_err());
        assert!(pg(|c| c.host_id = "a".repeat(254)).is_err());
        assert!(pg(|c| c.postgres.url = "mysql://db/x".into()).is_err());
        assert!(pg(|c| c.postgres.password_file = "pw".into()).is_err());
        assert!(pg(|c| c.postgres.client_cert = "/etc/c.pem".into()).is_err());
        assert!(pg(|c| c.postgres.connect_timeout_ms = 10).is_err());
        assert!(pg(|c| c.postgres.lock_timeout_ms = 500_000).is_err());
        assert!(pg(|c| c.postgres.break_glass_services = vec!["".into()]).is_err());
        assert!(toml::from_str::<Config>("store = \"mysql\"").is_err());
        assert!(toml::from_str::<Config>("[postgres]\ntls = \"prefer\"").is_err());
    }

    #[test]
    fn the_host_name_defaults_to_the_system_one() {
        assert_eq!(host_name("web-01"), "web-01");
        let h = host_name("");
        assert!(valid_host_id(&h), "{h}");
    }
}
