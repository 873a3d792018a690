//! Schema migrations, applied in order; `PRAGMA user_version` records how
//! many have run. Append new migrations, never edit old ones.

pub const MIGRATIONS: &[&str] = &[
    // 1: users, OTP tokens, backup codes.
    r#"
    CREATE TABLE users (
        name                  TEXT PRIMARY KEY NOT NULL,
        created_at            INTEGER NOT NULL,
        failures              INTEGER NOT NULL DEFAULT 0,
        locked_until          INTEGER NOT NULL DEFAULT 0,
        last_failure_at       INTEGER,
        last_success_at       INTEGER,
        last_success_service  TEXT,
        last_success_rhost    TEXT,
        last_success_factor   TEXT
    ) STRICT;
    CREATE TABLE otp_tokens (
        user        TEXT PRIMARY KEY NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        kind        TEXT NOT NULL CHECK (kind IN ('totp', 'hotp')),
        secret      BLOB NOT NULL,
        algorithm   TEXT NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
        digits      INTEGER NOT NULL CHECK (digits BETWEEN 6 AND 8),
        period      INTEGER NOT NULL CHECK (period > 0),
        last_step   INTEGER,
        counter     INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE backup_codes (
        id            INTEGER PRIMARY KEY,
        user          TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        hash          BLOB NOT NULL,
        created_at    INTEGER NOT NULL,
        used_at       INTEGER,
        used_service  TEXT
    ) STRICT;
    CREATE INDEX backup_codes_by_user ON backup_codes(user);
    "#,
    // 2: network factors (SMS/e-mail contacts, sent codes, Duo) and a
    //    per-user default factor.
    r#"
    ALTER TABLE users ADD COLUMN default_factor TEXT;
    CREATE TABLE contacts (
        user        TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        channel     TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
        address     TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (user, channel)
    ) STRICT;
    CREATE TABLE sent_codes (
        id          INTEGER PRIMARY KEY,
        user        TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        channel     TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
        purpose     TEXT NOT NULL CHECK (purpose IN ('login', 'enroll')),
        address     TEXT NOT NULL,
        hash        BLOB NOT NULL,
        sent_at     INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        used_at     INTEGER
    ) STRICT;
    CREATE INDEX sent_codes_by_user ON sent_codes(user, channel, sent_at);
    CREATE TABLE duo_users (
        user        TEXT PRIMARY KEY NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        created_at  INTEGER NOT NULL
    ) STRICT;
    "#,
    // 3: policy: first login attempt (grace periods), remembered devices,
    //    security questions.
    r#"
    ALTER TABLE users ADD COLUMN first_seen_at INTEGER;
    ALTER TABLE users ADD COLUMN last_failed_question INTEGER;
    CREATE TABLE remembered (
        id          INTEGER PRIMARY KEY,
        user        TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        service     TEXT NOT NULL,
        source_hash BLOB NOT NULL,
        source      TEXT NOT NULL,
        factor      TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX remembered_by_user ON remembered(user, service, source_hash);
    CREATE TABLE questions (
        user        TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        idx         INTEGER NOT NULL,
        question    TEXT NOT NULL,
        answer_hash TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (user, idx)
    ) STRICT;
    "#,
    // 4: WebAuthn credentials (public keys and counters, no secrets).
    r#"
    CREATE TABLE webauthn_credentials (
        user          TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        name          TEXT NOT NULL,
        credential    TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        last_used_at  INTEGER,
        PRIMARY KEY (user, name)
    ) STRICT;
    "#,
    // 5: local FIDO2 keys used through libfido2's tools (public keys,
    //    relying party and signature counters; no secrets).
    r#"
    CREATE TABLE local_keys (
        user           TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        name           TEXT NOT NULL,
        credential_id  BLOB NOT NULL UNIQUE,
        public_key     BLOB NOT NULL,
        rp_id          TEXT NOT NULL,
        counter        INTEGER NOT NULL DEFAULT 0 CHECK (counter BETWEEN 0 AND 4294967295),
        created_at     INTEGER NOT NULL,
        last_used_at   INTEGER,
        PRIMARY KEY (user, name)
    ) STRICT;
    "#,
    // 6: security keys whose signature counter went back (a possible
    //    clone): kept for the admin and `2fa-enroll status`.
    r#"
    CREATE TABLE key_warnings (
        id          INTEGER PRIMARY KEY,
        user        TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        key_name    TEXT NOT NULL,
        stored      INTEGER NOT NULL,
        presented   INTEGER NOT NULL,
        at          INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX key_warnings_by_user ON key_warnings(user, at);
    "#,
    // 7: facts about the store itself, e.g. the host key's check value
    //    (keycheck.rs).
    r#"
    CREATE TABLE meta (
        name   TEXT PRIMARY KEY NOT NULL,
        value  BLOB NOT NULL
    ) STRICT;
    "#,
    // 8: host-key generations (`2fa-enroll rekey`, docs/rekey.md): the
    //    generation each keyed row was made with (0 = the first key).
    r#"
    ALTER TABLE otp_tokens ADD COLUMN key_gen INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE backup_codes ADD COLUMN key_gen INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE questions ADD COLUMN key_gen INTEGER NOT NULL DEFAULT 0;
    "#,
    // 9: wrapped one-way hashes (`rekey convert`, docs/rekey.md): the
    //    generation of the hash inside the wrap (NULL = not wrapped).
    r#"
    ALTER TABLE backup_codes ADD COLUMN inner_gen INTEGER;
    ALTER TABLE questions ADD COLUMN inner_gen INTEGER;
    "#,
    // 10: the newest successful logins per user (the profile page's
    //     "recent logins"); kept apart from `users`, so `reset` leaves
    //     the history.
    r#"
    CREATE TABLE logins (
        id       INTEGER PRIMARY KEY,
        user     TEXT NOT NULL,
        at       INTEGER NOT NULL,
        service  TEXT NOT NULL,
        rhost    TEXT NOT NULL,
        factor   TEXT NOT NULL
    ) STRICT;
    CREATE INDEX logins_by_user ON logins(user, id);
    "#,
];

/// The schema version this build reads and writes.
pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;
    use crate::factor::FactorId;

    /// `column IN ('a', 'b')`, as the migrations spell a CHECK list.
    fn check_list(column: &str, names: &[FactorId]) -> String {
        let quoted: Vec<String> = names.iter().map(|f| format!("'{f}'")).collect();
        format!("{column} IN ({})", quoted.join(", "))
    }

    /// The migrations are never edited, so the factor names they allow
    /// must stay exactly [`FactorId`]'s.
    #[test]
    fn check_constraints_are_the_factor_names() {
        let kinds = check_list("kind", &FactorId::OTP_KINDS);
        assert_eq!(MIGRATIONS.concat().matches(&kinds).count(), 1, "{kinds}");
        let channels = check_list("channel", &FactorId::CHANNELS);
        assert_eq!(
            MIGRATIONS.concat().matches(&channels).count(),
            2,
            "{channels}"
        );
        assert_eq!(MIGRATIONS.concat().matches("channel IN").count(), 2);
        assert_eq!(MIGRATIONS.concat().matches("kind IN").count(), 1);
    }
}
