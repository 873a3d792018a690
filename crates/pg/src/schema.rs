//! The fleet schema (docs/fleet.md §2): every object in schema `p2fa`,
//! always schema-qualified (PgBouncer does not carry `search_path`, and
//! qualified names cannot be hijacked through it). Times are unix
//! seconds; `user` is reserved in PostgreSQL, so the column is
//! `username`. Every row a host writes names the host (`*_host`).
//!
//! Migrations run only from `2fa-enroll init`/`migrate` ([`migrate`]),
//! once per fleet under an advisory lock, never at login.

use crate::wire::{Conn, PgError, Value};

/// One schema change, and the oldest schema version whose readers still
/// work after it (additive changes keep the previous `min_reader`, so
/// hosts on the previous release keep logging in during a rolling
/// upgrade).
pub struct Migration {
    pub sql: &'static str,
    pub min_reader: i64,
}

/// Append only; never edit one that has shipped.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        min_reader: 1,
        sql: r#"
CREATE SCHEMA p2fa;
CREATE TABLE p2fa.schema_version (one boolean PRIMARY KEY DEFAULT true CHECK (one),
  version integer NOT NULL, min_reader integer NOT NULL, release text NOT NULL,
  at bigint NOT NULL, host text NOT NULL);
CREATE TABLE p2fa.hosts (name text PRIMARY KEY, release text NOT NULL,
  schema_version integer NOT NULL, first_seen bigint NOT NULL, last_seen bigint NOT NULL);
CREATE TABLE p2fa.meta (name text PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE p2fa.users (name text PRIMARY KEY, created_at bigint NOT NULL,
  created_host text NOT NULL, failures integer NOT NULL DEFAULT 0,
  locked_until bigint NOT NULL DEFAULT 0, last_failure_at bigint, last_failure_host text,
  last_success_at bigint, last_success_service text, last_success_rhost text,
  last_success_factor text, last_success_host text, default_factor text,
  first_seen_at bigint, first_seen_host text, last_failed_question bigint);
CREATE TABLE p2fa.otp_tokens (
  username text PRIMARY KEY REFERENCES p2fa.users(name) ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('totp', 'hotp')), secret bytea NOT NULL,
  key_gen integer NOT NULL DEFAULT 0,
  algorithm text NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
  digits integer NOT NULL CHECK (digits BETWEEN 6 AND 8), period integer NOT NULL CHECK (period > 0),
  last_step bigint, counter bigint NOT NULL DEFAULT 0, last_used_host text,
  created_at bigint NOT NULL, created_host text NOT NULL);
CREATE TABLE p2fa.backup_codes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  username text NOT NULL REFERENCES p2fa.users(name) ON DELETE CASCADE,
  hash bytea NOT NULL, key_gen integer NOT NULL DEFAULT 0, inner_gen integer,
  created_at bigint NOT NULL, created_host text NOT NULL,
  used_at bigint, used_service text, used_host text);
CREATE INDEX backup_codes_by_user ON p2fa.backup_codes(username);
CREATE TABLE p2fa.contacts (
  username text NOT NULL REFERENCES p2fa.users(name) ON DELETE CASCADE,
  channel text NOT NULL CHECK (channel IN ('sms', 'email')), address text NOT NULL,
  created_at bigint NOT NULL, created_host text NOT NULL, PRIMARY KEY (username, channel));
CREATE TABLE p2fa.sent_codes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  username text NOT NULL REFERENCES p2fa.users(name) ON DELETE CASCADE,
  host text NOT NULL, channel text NOT NULL CHECK (channel IN ('sms', 'email')),
  purpose text NOT NULL CHECK (purpose IN ('login', 'enroll')), address text NOT NULL,
  hash bytea NOT NULL, key_gen integer NOT NULL DEFAULT 0, sent_at bigint NOT NULL,
  expires_at bigint NOT NULL, attempts integer NOT NULL DEFAULT 0, used_at bigint);
CREATE INDEX sent_codes_by_user ON p2fa.sent_codes(username, channel, sent_at);
CREATE INDEX sent_codes_by_time ON p2fa.sent_codes(sent_at);
CREATE TABLE p2fa.duo_users (
  username text PRIMARY KEY REFERENCES p2fa.users(name) ON DELETE CASCADE,
  created_at bigint NOT NULL, created_host text NOT NULL);
CREATE TABLE p2fa.remembered (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  username text NOT NULL REFERENCES p2fa.users(name) ON DELETE CASCADE,
  host text NOT NULL, service text NOT NULL, source_hash bytea NOT NULL, source text NOT NULL,
  factor text NOT NULL, created_at bigint NOT NULL, expires_at bigint NOT NULL,
  UNIQUE (username, host, service, source_hash));
CREATE INDEX remembered_by_expiry ON p2fa.remembered(expires_at);
CREATE TABLE p2fa.questions (
  username text NOT NULL REFERENCES p2fa.users(name) ON DELETE CASCADE,
  idx integer NOT NULL, question text NOT NULL, answer_hash text NOT NULL,
  key_gen integer NOT NULL DEFAULT 0, inner_gen integer, created_at bigint NOT NULL,
  created_host text NOT NULL, PRIMARY KEY (username, idx));
CREATE TABLE p2fa.webauthn_credentials (
  username text NOT NULL REFERENCES p2fa.users(name) ON DELETE CASCADE,
  name text NOT NULL, credential text NOT NULL, created_at bigint NOT NULL,
  created_host text NOT NULL, last_used_at bigint, last_used_host text,
  PRIMARY KEY (username, name));
CREATE TABLE p2fa.local_keys (
  username text NOT NULL REFERENCES p2fa.users(name) ON DELETE CASCADE,
  name text NOT NULL, credential_id bytea NOT NULL UNIQUE, public_key bytea NOT NULL,
  rp_id text NOT NULL, counter bigint NOT NULL DEFAULT 0 CHECK (counter BETWEEN 0 AND 4294967295),
  created_at bigint NOT NULL, created_host text NOT NULL, last_used_at bigint,
  last_used_host text, PRIMARY KEY (username, name));
CREATE TABLE p2fa.key_warnings (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  username text NOT NULL REFERENCES p2fa.users(name) ON DELETE CASCADE,
  key_name text NOT NULL, stored bigint NOT NULL, presented bigint NOT NULL,
  at bigint NOT NULL, host text NOT NULL);
CREATE INDEX key_warnings_by_user ON p2fa.key_warnings(username, at);
"#,
    },
    // 2: pending WebAuthn ceremonies, so that any 2fad of the fleet
    //    serves any link (README "WebAuthn in a fleet"). Only a hash of
    //    the link's token is stored. Additive: hosts on v1 keep working.
    Migration {
        min_reader: 1,
        sql: r#"
CREATE TABLE p2fa.webauthn_ceremonies (
  token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
  username text NOT NULL, host text NOT NULL, by_uid bigint NOT NULL,
  kind text NOT NULL CHECK (kind IN ('login', 'register', 'proof')),
  service text NOT NULL, rhost text NOT NULL, state text NOT NULL, options text NOT NULL,
  created_at bigint NOT NULL, expires_at bigint NOT NULL,
  busy boolean NOT NULL DEFAULT false, busy_host text,
  approved boolean, result text, result_at bigint, result_host text);
CREATE INDEX webauthn_ceremonies_by_user ON p2fa.webauthn_ceremonies(username, expires_at);
CREATE INDEX webauthn_ceremonies_by_expiry ON p2fa.webauthn_ceremonies(expires_at);
"#,
    },
    // 3: the newest successful logins per user, with the host that saw
    //    them (the profile page's "recent logins"). Additive: hosts on
    //    v1 or v2 keep working and simply record none.
    Migration {
        min_reader: 1,
        sql: r#"
CREATE TABLE p2fa.logins (
  id bigserial PRIMARY KEY, username text NOT NULL, at bigint NOT NULL,
  service text NOT NULL, rhost text NOT NULL, factor text NOT NULL, host text NOT NULL);
CREATE INDEX logins_by_user ON p2fa.logins(username, id);
"#,
    },
    // 4: profile-page links and sessions, so that any 2fad of the fleet
    //    serves every request of a profile page (README "Your profile
    //    page in the browser"). Only SHA-256 hashes of link tokens and
    //    session ids are stored; a session's secrets (CSRF token, a
    //    pending TOTP secret, new backup codes, ...) are sealed with the
    //    fleet key, bound to the session. Additive: hosts on v1 to v3
    //    keep working (their profile sessions stay in memory).
    Migration {
        min_reader: 1,
        sql: r#"
CREATE TABLE p2fa.profile_links (
  link_hash bytea PRIMARY KEY CHECK (length(link_hash) = 32),
  username text NOT NULL, by_uid bigint NOT NULL, host text NOT NULL,
  created_at bigint NOT NULL, expires_at bigint NOT NULL,
  session_hash bytea CHECK (length(session_hash) = 32), opened_host text);
CREATE INDEX profile_links_by_user ON p2fa.profile_links(username, expires_at);
CREATE INDEX profile_links_by_expiry ON p2fa.profile_links(expires_at);
CREATE TABLE p2fa.profile_sessions (
  session_hash bytea PRIMARY KEY CHECK (length(session_hash) = 32),
  link_hash bytea NOT NULL CHECK (length(link_hash) = 32),
  username text NOT NULL, by_uid bigint NOT NULL, peer text NOT NULL, host text NOT NULL,
  created_at bigint NOT NULL, expires_at bigint NOT NULL,
  ended text CHECK (ended IN ('ended')), keep_until bigint NOT NULL,
  state bytea NOT NULL, updated_host text);
CREATE INDEX profile_sessions_by_user ON p2fa.profile_sessions(username, expires_at);
CREATE INDEX profile_sessions_by_keep ON p2fa.profile_sessions(keep_until);
"#,
    },
];

/// The schema version this build reads and writes.
pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Advisory lock classes (`pg_advisory_xact_lock(class, key)`):
/// "p2fa" and "p2fb" in ASCII, so they do not collide with another
/// application's locks by accident.
pub const LOCK_USER: i32 = 0x7032_6661;
pub const LOCK_FLEET: i32 = 0x7032_6662;
/// Keys in [`LOCK_FLEET`].
pub const LOCK_FLEET_SCHEMA: i32 = 0;
pub const LOCK_FLEET_META: i32 = 2;

/// Whether a host with schema `mine` may use a database at `version`
/// whose changes need readers of at least `min_reader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compat {
    Usable,
    /// The database is older: `2fa-enroll migrate` must run.
    NeedsMigrate,
    /// The database needs a newer pam-2fa on this host.
    NeedsUpgrade,
}

pub fn compat(version: i64, min_reader: i64, mine: i64) -> Compat {
    if version < mine {
        Compat::NeedsMigrate
    } else if min_reader > mine {
        Compat::NeedsUpgrade
    } else {
        Compat::Usable
    }
}

/// Runs the pending migrations in one transaction under the fleet's
/// schema lock; a concurrent `migrate` waits and then finds nothing to
/// do, a crash leaves the old version whole (DDL is transactional).
/// Returns the versions before and after.
pub fn migrate(
    conn: &mut Conn,
    migrations: &[Migration],
    release: &str,
    host: &str,
    now: i64,
) -> Result<(i64, i64), PgError> {
    conn.simple("BEGIN")?;
    let r = migrate_in_tx(conn, migrations, release, host, now);
    match r {
        Ok(v) => {
            conn.simple("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.simple("ROLLBACK");
            Err(e)
        }
    }
}

fn migrate_in_tx(
    conn: &mut Conn,
    migrations: &[Migration],
    release: &str,
    host: &str,
    now: i64,
) -> Result<(i64, i64), PgError> {
    conn.query(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[Value::Int4(LOCK_FLEET), Value::Int4(LOCK_FLEET_SCHEMA)],
    )?;
    let exists = conn
        .query("SELECT to_regclass('p2fa.schema_version') IS NOT NULL", &[])?
        .rows
        .first()
        .map(|r| r.bool(0))
        .transpose()?
        .unwrap_or(false);
    let from = if exists {
        match conn
            .query("SELECT version FROM p2fa.schema_version", &[])?
            .rows
            .first()
        {
            Some(r) => r.i64(0)?,
            None => 0,
        }
    } else {
        0
    };
    let to = migrations.len() as i64;
    if from >= to {
        return Ok((from, from));
    }
    for m in &migrations[from as usize..] {
        conn.simple(m.sql)?;
    }
    let min_reader = migrations.last().map_or(1, |m| m.min_reader);
    conn.query(
        "INSERT INTO p2fa.schema_version (one, version, min_reader, release, at, host)
         VALUES (true, $1, $2, $3, $4, $5)
         ON CONFLICT (one) DO UPDATE SET version = $1, min_reader = $2, release = $3,
           at = $4, host = $5",
        &[
            Value::Int4(to as i32),
            Value::Int4(min_reader as i32),
            Value::Text(release),
            Value::Int8(now),
            Value::Text(host),
        ],
    )?;
    Ok((from, to))
}

/// Records this host in `p2fa.hosts` (release and schema it runs): the
/// admin's list of who uses the fleet database, and what a later
/// migration that raises `min_reader` must wait for.
pub fn register_host(conn: &mut Conn, host: &str, release: &str, now: i64) -> Result<(), PgError> {
    conn.query(
        "INSERT INTO p2fa.hosts (name, release, schema_version, first_seen, last_seen)
         VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (name) DO UPDATE SET release = $2, schema_version = $3, last_seen = $4",
        &[
            Value::Text(host),
            Value::Text(release),
            Value::Int4(current_version() as i32),
            Value::Int8(now),
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2fa_core::factor::FactorId;

    #[test]
    fn compat_follows_the_rolling_upgrade_rule() {
        assert_eq!(compat(1, 1, 1), Compat::Usable);
        // A newer, additive schema: the previous release keeps working.
        assert_eq!(compat(2, 1, 1), Compat::Usable);
        // A newer schema that dropped something this host reads.
        assert_eq!(compat(3, 2, 1), Compat::NeedsUpgrade);
        assert_eq!(compat(1, 1, 2), Compat::NeedsMigrate);
    }

    #[test]
    fn check_constraints_are_the_factor_names() {
        let all: String = MIGRATIONS.iter().map(|m| m.sql).collect();
        let list = |col: &str, names: &[FactorId]| {
            let q: Vec<String> = names.iter().map(|f| format!("'{f}'")).collect();
            format!("{col} IN ({})", q.join(", "))
        };
        assert_eq!(all.matches(&list("kind", &FactorId::OTP_KINDS)).count(), 1);
        assert_eq!(
            all.matches(&list("channel", &FactorId::CHANNELS)).count(),
            2
        );
        assert_eq!(all.matches("channel IN").count(), 2);
    }
}
