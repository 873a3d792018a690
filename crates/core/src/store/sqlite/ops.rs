//! Typed operations on the store. Reads take a plain connection; writes go
//! through [`SqliteTx`] so they happen inside the caller's `BEGIN IMMEDIATE`.

use super::{Result, SqliteStore, SqliteTx, StoreError};
use crate::config::{Algorithm, RateLimitConfig};
use crate::factor::FactorId;
use crate::store::types::*;
use rusqlite::{Connection, OptionalExtension, params};

/// A connection whose `query_row` goes through its statement cache, like
/// `prepare_cached`: a login reads the user's state twice (before the
/// prompt, and again inside the write transaction that checks the code),
/// and the second read then prepares nothing (about 0.1 ms,
/// scripts/bench --profile).
struct Cached<'c>(&'c Connection);

impl<'c> Cached<'c> {
    fn query_row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.0.prepare_cached(sql)?.query_row(params, f)
    }

    fn prepare_cached(&self, sql: &str) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
        self.0.prepare_cached(sql)
    }
}

fn read_user_state(conn: &Connection, user: &str) -> Result<UserState> {
    let conn = Cached(conn);
    let mut state = UserState::default();
    let row: Option<(i64, i64, Option<String>)> = conn
        .query_row(
            "SELECT failures, locked_until, default_factor FROM users WHERE name = ?1",
            [user],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((failures, locked_until, default_factor)) = row else {
        return Ok(state);
    };
    state.known = true;
    state.default_factor = default_factor;
    let mut stmt = conn.prepare_cached("SELECT channel, address FROM contacts WHERE user = ?1")?;
    let contacts = stmt
        .query_map([user], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    for (channel, address) in contacts {
        match channel.parse() {
            Ok(FactorId::Sms) => state.sms = Some(address),
            Ok(FactorId::Email) => state.email = Some(address),
            _ => return Err(StoreError::Corrupt(format!("unknown channel {channel:?}"))),
        }
    }
    state.duo = conn
        .query_row(
            "SELECT 1 FROM duo_users WHERE user = ?1",
            [user],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    state.questions = conn.query_row(
        "SELECT count(*) FROM questions WHERE user = ?1",
        [user],
        |r| r.get(0),
    )?;
    state.webauthn = conn.query_row(
        "SELECT count(*) FROM webauthn_credentials WHERE user = ?1",
        [user],
        |r| r.get(0),
    )?;
    state.local_keys = conn.query_row(
        "SELECT count(*) FROM local_keys WHERE user = ?1",
        [user],
        |r| r.get(0),
    )?;
    state.failures = failures.clamp(0, u32::MAX as i64) as u32;
    state.locked_until = locked_until;
    state.otp = conn
        .query_row(
            "SELECT kind, secret, algorithm, digits, period, last_step, counter, created_at,
                    key_gen
             FROM otp_tokens WHERE user = ?1",
            [user],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, i64>(8)?,
                ))
            },
        )
        .optional()?
        .map(
            |(kind, sealed, alg, digits, period, last_step, counter, created_at, key_gen)| {
                let kind = match kind.parse() {
                    Ok(FactorId::Totp) => OtpKind::Totp,
                    Ok(FactorId::Hotp) => OtpKind::Hotp,
                    _ => {
                        return Err(StoreError::Corrupt(format!("unknown token kind {kind:?}")));
                    }
                };
                let algorithm = Algorithm::parse(&alg)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown algorithm {alg:?}")))?;
                Ok(OtpRecord {
                    kind,
                    sealed,
                    algorithm,
                    digits: digits.clamp(6, 8) as u32,
                    period: period.clamp(1, 3600) as u32,
                    last_step,
                    counter,
                    created_at,
                    key_gen,
                })
            },
        )
        .transpose()?;
    let mut stmt = conn.prepare_cached(
        "SELECT id, hash, key_gen, inner_gen FROM backup_codes \
         WHERE user = ?1 AND used_at IS NULL ORDER BY id",
    )?;
    state.unused_backup = stmt
        .query_map([user], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<std::result::Result<_, _>>()?;
    state.used_backup = conn.query_row(
        "SELECT count(*) FROM backup_codes WHERE user = ?1 AND used_at IS NOT NULL",
        [user],
        |r| r.get(0),
    )?;
    Ok(state)
}

fn read_status(conn: &Connection, user: &str) -> Result<UserStatus> {
    let state = read_user_state(conn, user)?;
    let known = state.known;
    let mut status = crate::store::status_of(user, state);
    if !known {
        return Ok(status);
    }
    status.first_seen = conn.query_row(
        "SELECT first_seen_at FROM users WHERE name = ?1",
        [user],
        |r| r.get(0),
    )?;
    status.key_warnings = super::webauthn::key_warnings(conn, user)?;
    status.last_success = conn
        .query_row(
            "SELECT last_success_at, last_success_service, last_success_rhost, last_success_factor
             FROM users WHERE name = ?1 AND last_success_at IS NOT NULL",
            [user],
            |r| {
                Ok(LastSuccess {
                    time: r.get(0)?,
                    service: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    rhost: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    factor: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                })
            },
        )
        .optional()?;
    let mut stmt = conn.prepare_cached(
        "SELECT at, service, rhost, factor FROM logins WHERE user = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    status.recent_logins = stmt
        .query_map(params![user, crate::store::RECENT_LOGINS], |r| {
            Ok(Login {
                time: r.get(0)?,
                service: r.get(1)?,
                rhost: r.get(2)?,
                factor: r.get(3)?,
                host: String::new(),
            })
        })?
        .collect::<std::result::Result<_, _>>()?;
    Ok(status)
}

/// Hashes of the backup codes `user` has used here.
fn read_used_backup(conn: &Connection, user: &str) -> Result<Vec<Vec<u8>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT hash FROM backup_codes WHERE user = ?1 AND used_at IS NOT NULL ORDER BY id",
    )?;
    let hashes = stmt
        .query_map([user], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    Ok(hashes)
}

impl SqliteStore {
    /// Hashes of the backup codes `user` has used (an import must not
    /// bring one back).
    pub fn used_backup_hashes(&self, user: &str) -> Result<Vec<Vec<u8>>> {
        read_used_backup(&self.conn, user)
    }

    /// A consistent snapshot of one user's state (no write lock taken).
    pub fn user_state(&mut self, user: &str) -> Result<UserState> {
        let tx = self.conn.transaction()?;
        let state = read_user_state(&tx, user)?;
        tx.finish()?;
        Ok(state)
    }

    pub fn status(&mut self, user: &str) -> Result<UserStatus> {
        let tx = self.conn.transaction()?;
        let status = read_status(&tx, user)?;
        tx.finish()?;
        Ok(status)
    }

    /// Names of all users the store knows, sorted.
    pub fn users(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare("SELECT name FROM users ORDER BY name")?;
        let names = stmt
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        Ok(names)
    }
}

impl SqliteTx<'_> {
    pub fn user_state(&self, user: &str) -> Result<UserState> {
        read_user_state(&self.tx, user)
    }

    /// Creates the user row if missing.
    pub fn ensure_user(&self, user: &str, now: i64) -> Result<()> {
        self.tx.execute(
            "INSERT INTO users (name, created_at) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
            params![user, now],
        )?;
        Ok(())
    }

    /// Counts a failed attempt; once `max_failures` is reached the account is
    /// locked for `lockout_seconds`, doubling with every further failure.
    /// Returns `(failures, locked_until)`.
    pub fn record_failure(&self, user: &str, now: i64, rl: &RateLimitConfig) -> Result<(u32, i64)> {
        self.ensure_user(user, now)?;
        let failures: i64 = self.tx.query_row(
            "UPDATE users SET failures = failures + 1, last_failure_at = ?2 WHERE name = ?1
             RETURNING failures",
            params![user, now],
            |r| r.get(0),
        )?;
        let locked_until = crate::store::lock_until(failures, now, rl);
        if locked_until != 0 {
            self.tx.execute(
                "UPDATE users SET locked_until = ?2 WHERE name = ?1",
                params![user, locked_until],
            )?;
        }
        Ok((failures.clamp(0, u32::MAX as i64) as u32, locked_until))
    }

    /// Records a successful second factor and clears the failure count.
    pub fn record_success(
        &self,
        user: &str,
        now: i64,
        service: &str,
        rhost: &str,
        factor: &str,
    ) -> Result<()> {
        self.tx.execute(
            "UPDATE users SET failures = 0, locked_until = 0, last_success_at = ?2,
                 last_success_service = ?3, last_success_rhost = ?4, last_success_factor = ?5
             WHERE name = ?1",
            params![user, now, service, rhost, factor],
        )?;
        self.tx
            .prepare_cached(
                "INSERT INTO logins (user, at, service, rhost, factor) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![user, now, service, rhost, factor])?;
        self.tx
            .prepare_cached(
                "DELETE FROM logins WHERE user = ?1 AND id NOT IN
                   (SELECT id FROM logins WHERE user = ?1 ORDER BY id DESC LIMIT ?2)",
            )?
            .execute(params![user, crate::store::RECENT_LOGINS])?;
        Ok(())
    }

    /// Moves the TOTP `last_step` forward to `step`; false (nothing
    /// written) if the stored step is not older, so a step is used once
    /// even by a caller that read the state before the write lock.
    pub fn set_last_step(&self, user: &str, step: i64) -> Result<bool> {
        let n = self.tx.execute(
            "UPDATE otp_tokens SET last_step = ?2
             WHERE user = ?1 AND (last_step IS NULL OR last_step < ?2)",
            params![user, step],
        )?;
        Ok(n == 1)
    }

    /// Moves the HOTP counter forward to `counter`; false (nothing
    /// written) if the stored counter is not smaller.
    pub fn set_counter(&self, user: &str, counter: i64) -> Result<bool> {
        let n = self.tx.execute(
            "UPDATE otp_tokens SET counter = ?2 WHERE user = ?1 AND counter < ?2",
            params![user, counter],
        )?;
        Ok(n == 1)
    }

    /// Marks a backup code used; false if it was already used (a concurrent
    /// login got there first inside its own transaction).
    pub fn mark_backup_used(&self, id: i64, now: i64, service: &str) -> Result<bool> {
        let n = self.tx.execute(
            "UPDATE backup_codes SET used_at = ?2, used_service = ?3 WHERE id = ?1 AND used_at IS NULL",
            params![id, now, service],
        )?;
        Ok(n == 1)
    }

    /// Stores (replacing any previous) OTP token for `user`.
    pub fn put_otp(&self, user: &str, rec: &OtpRecord, now: i64) -> Result<()> {
        self.ensure_user(user, now)?;
        self.tx.execute(
            "INSERT OR REPLACE INTO otp_tokens
                (user, kind, secret, algorithm, digits, period, last_step, counter, created_at,
                 key_gen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                user,
                rec.kind.as_str(),
                rec.sealed,
                rec.algorithm.as_str(),
                rec.digits,
                rec.period,
                rec.last_step,
                rec.counter,
                now,
                rec.key_gen
            ],
        )?;
        Ok(())
    }

    /// Replaces all of `user`'s backup codes with new hashes.
    pub fn replace_backup_codes(
        &self,
        user: &str,
        hashes: &[[u8; 32]],
        now: i64,
        key_gen: i64,
    ) -> Result<()> {
        self.ensure_user(user, now)?;
        self.tx
            .execute("DELETE FROM backup_codes WHERE user = ?1", [user])?;
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO backup_codes (user, hash, created_at, key_gen) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for h in hashes {
            stmt.execute(params![user, h.as_slice(), now, key_gen])?;
        }
        Ok(())
    }

    /// Hashes of the backup codes `user` has used.
    pub fn used_backup_hashes(&self, user: &str) -> Result<Vec<Vec<u8>>> {
        read_used_backup(&self.tx, user)
    }

    /// Replaces `user`'s unused backup codes with new hashes and keeps the
    /// used ones, so the store still knows them as spent (an import run
    /// again must not revive a code used here).
    pub fn replace_unused_backup_codes(
        &self,
        user: &str,
        hashes: &[[u8; 32]],
        now: i64,
        key_gen: i64,
    ) -> Result<()> {
        self.ensure_user(user, now)?;
        self.tx.execute(
            "DELETE FROM backup_codes WHERE user = ?1 AND used_at IS NULL",
            [user],
        )?;
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO backup_codes (user, hash, created_at, key_gen) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for h in hashes {
            stmt.execute(params![user, h.as_slice(), now, key_gen])?;
        }
        Ok(())
    }

    pub fn remove_otp(&self, user: &str) -> Result<bool> {
        Ok(self
            .tx
            .execute("DELETE FROM otp_tokens WHERE user = ?1", [user])?
            > 0)
    }

    pub fn remove_backup_codes(&self, user: &str) -> Result<usize> {
        Ok(self
            .tx
            .execute("DELETE FROM backup_codes WHERE user = ?1", [user])?)
    }

    /// Forgets the user entirely: factors, counters, history.
    pub fn reset_user(&self, user: &str) -> Result<bool> {
        Ok(self
            .tx
            .execute("DELETE FROM users WHERE name = ?1", [user])?
            > 0)
    }

    /// Clears the failure count and lockout.
    pub fn unlock(&self, user: &str) -> Result<bool> {
        Ok(self.tx.execute(
            "UPDATE users SET failures = 0, locked_until = 0 WHERE name = ?1",
            [user],
        )? > 0)
    }
}
