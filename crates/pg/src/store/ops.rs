//! Users, failures and lockout, OTP tokens and backup codes on the fleet
//! database; the same contracts as the SQLite backend's `ops.rs`.

use super::{Db, Get, PgStore, PgTx};
use crate::wire::{Row, Value};
use p2fa_core::config::{Algorithm, RateLimitConfig};
use p2fa_core::factor::FactorId;
use p2fa_core::store::{
    LastSuccess, Login, OtpKind, OtpRecord, RECENT_LOGINS, Result, StoreError, UserState,
    UserStatus,
};

const STATE_USER: &str = "SELECT u.failures, u.locked_until, u.default_factor,
    (SELECT address FROM p2fa.contacts WHERE username = $1 AND channel = 'sms'),
    (SELECT address FROM p2fa.contacts WHERE username = $1 AND channel = 'email'),
    EXISTS (SELECT 1 FROM p2fa.duo_users WHERE username = $1),
    (SELECT count(*) FROM p2fa.questions WHERE username = $1),
    (SELECT count(*) FROM p2fa.webauthn_credentials WHERE username = $1),
    (SELECT count(*) FROM p2fa.local_keys WHERE username = $1),
    (SELECT count(*) FROM p2fa.backup_codes WHERE username = $1 AND used_at IS NOT NULL)
  FROM p2fa.users u WHERE u.name = $1";
const STATE_OTP: &str = "SELECT kind, secret, algorithm, digits, period, last_step, counter,
    created_at, key_gen::bigint FROM p2fa.otp_tokens WHERE username = $1";
const STATE_BACKUP: &str =
    "SELECT id, hash, key_gen::bigint, inner_gen::bigint FROM p2fa.backup_codes
    WHERE username = $1 AND used_at IS NULL ORDER BY id";
const STATUS_EXTRA: &str = "SELECT first_seen_at, last_success_at, last_success_service,
    last_success_rhost, last_success_factor FROM p2fa.users WHERE name = $1";

/// A key generation as the schema's `integer`.
pub(super) fn gen4(key_gen: i64) -> Result<i32> {
    i32::try_from(key_gen)
        .map_err(|_| StoreError::Corrupt(format!("key generation {key_gen} out of range")))
}

fn clamp_u32(v: i64) -> u32 {
    v.clamp(0, u32::MAX as i64) as u32
}

/// The user's state from the three queries' rows.
fn decode_state(user: &[Row], otp: &[Row], backup: &[Row]) -> Result<UserState> {
    let mut state = UserState::default();
    let Some(u) = user.first() else {
        return Ok(state);
    };
    state.known = true;
    state.failures = clamp_u32(u.i(0)?);
    state.locked_until = u.i(1)?;
    state.default_factor = u.os(2)?;
    state.sms = u.os(3)?;
    state.email = u.os(4)?;
    state.duo = u.flag(5)?;
    state.questions = clamp_u32(u.i(6)?);
    state.webauthn = clamp_u32(u.i(7)?);
    state.local_keys = clamp_u32(u.i(8)?);
    state.used_backup = clamp_u32(u.i(9)?);
    if let Some(o) = otp.first() {
        let kind = o.s(0)?;
        let kind = match kind.parse() {
            Ok(FactorId::Totp) => OtpKind::Totp,
            Ok(FactorId::Hotp) => OtpKind::Hotp,
            _ => return Err(StoreError::Corrupt(format!("unknown token kind {kind:?}"))),
        };
        let alg = o.s(2)?;
        let algorithm = Algorithm::parse(&alg)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown algorithm {alg:?}")))?;
        state.otp = Some(OtpRecord {
            kind,
            sealed: o.b(1)?,
            algorithm,
            digits: o.i(3)?.clamp(6, 8) as u32,
            period: o.i(4)?.clamp(1, 3600) as u32,
            last_step: o.oi(5)?,
            counter: o.i(6)?,
            created_at: o.i(7)?,
            key_gen: o.i(8)?,
        });
    }
    state.unused_backup = backup
        .iter()
        .map(|r| Ok((r.i(0)?, r.b(1)?, r.i(2)?, r.oi(3)?)))
        .collect::<Result<_>>()?;
    Ok(state)
}

/// Three queries in one round trip; `snapshot` makes them one read-only
/// snapshot (outside a write transaction).
fn read_state(db: &mut Db<'_>, user: &str, snapshot: bool) -> Result<UserState> {
    let p = [Value::Text(user)];
    let stmts: [(&str, &[Value<'_>]); 3] = [(STATE_USER, &p), (STATE_OTP, &p), (STATE_BACKUP, &p)];
    let out = if snapshot {
        db.snapshot(&stmts)?
    } else {
        db.pipeline(&stmts)?
    };
    let get = |i: usize| out.get(i).map_or(&[][..], Vec::as_slice);
    decode_state(get(0), get(1), get(2))
}

fn read_status(db: &mut Db<'_>, user: &str) -> Result<UserStatus> {
    let state = read_state(db, user, false)?;
    let known = state.known;
    let mut status = p2fa_core::store::status_of(user, state);
    if !known {
        return Ok(status);
    }
    if let Some(r) = db.opt(STATUS_EXTRA, &[Value::Text(user)])? {
        status.first_seen = r.oi(0)?;
        if let Some(time) = r.oi(1)? {
            status.last_success = Some(LastSuccess {
                time,
                service: r.os(2)?.unwrap_or_default(),
                rhost: r.os(3)?.unwrap_or_default(),
                factor: r.os(4)?.unwrap_or_default(),
            });
        }
    }
    status.key_warnings = super::keys::key_warnings(db, user)?;
    status.recent_logins = db
        .rows(
            "SELECT at, service, rhost, factor, host FROM p2fa.logins
             WHERE username = $1 ORDER BY id DESC LIMIT $2",
            &[Value::Text(user), Value::Int8(RECENT_LOGINS)],
        )?
        .iter()
        .map(|r| {
            Ok(Login {
                time: r.i(0)?,
                service: r.s(1)?,
                rhost: r.s(2)?,
                factor: r.s(3)?,
                host: r.s(4)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(status)
}

pub(super) fn used_backup(db: &mut Db<'_>, user: &str) -> Result<Vec<Vec<u8>>> {
    db.rows(
        "SELECT hash FROM p2fa.backup_codes WHERE username = $1 AND used_at IS NOT NULL ORDER BY id",
        &[Value::Text(user)],
    )?
    .iter()
    .map(|r| r.b(0))
    .collect()
}

impl PgStore {
    pub(crate) fn used_backup_hashes(&self, user: &str) -> Result<Vec<Vec<u8>>> {
        used_backup(&mut self.db()?, user)
    }

    pub(crate) fn user_state(&mut self, user: &str) -> Result<UserState> {
        read_state(&mut self.db()?, user, true)
    }

    pub(crate) fn status(&mut self, user: &str) -> Result<UserStatus> {
        let mut db = self.db()?;
        db.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", &[])?;
        let status = read_status(&mut db, user);
        let end = db.exec(if status.is_ok() { "COMMIT" } else { "ROLLBACK" }, &[]);
        let status = status?;
        end?;
        Ok(status)
    }

    pub(crate) fn users(&self) -> Result<Vec<String>> {
        self.db()?
            .rows("SELECT name FROM p2fa.users ORDER BY name", &[])?
            .iter()
            .map(|r| r.s(0))
            .collect()
    }
}

impl PgTx<'_> {
    pub(crate) fn user_state(&self, user: &str) -> Result<UserState> {
        read_state(&mut self.db_for(user)?, user, false)
    }

    pub(crate) fn ensure_user(&self, user: &str, now: i64) -> Result<()> {
        let mut db = self.db_for(user)?;
        let host = db.host;
        db.exec(
            "INSERT INTO p2fa.users (name, created_at, created_host) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
            &[Value::Text(user), Value::Int8(now), Value::Text(host)],
        )?;
        Ok(())
    }

    pub(crate) fn record_failure(
        &self,
        user: &str,
        now: i64,
        rl: &RateLimitConfig,
    ) -> Result<(u32, i64)> {
        self.ensure_user(user, now)?;
        let mut db = self.db_for(user)?;
        let host = db.host;
        let failures = db
            .one(
                "UPDATE p2fa.users SET failures = failures + 1, last_failure_at = $2,
                   last_failure_host = $3 WHERE name = $1 RETURNING failures",
                &[Value::Text(user), Value::Int8(now), Value::Text(host)],
            )?
            .i(0)?;
        let locked_until = p2fa_core::store::lock_until(failures, now, rl);
        if locked_until != 0 {
            db.exec(
                "UPDATE p2fa.users SET locked_until = $2 WHERE name = $1",
                &[Value::Text(user), Value::Int8(locked_until)],
            )?;
        }
        Ok((clamp_u32(failures), locked_until))
    }

    pub(crate) fn record_success(
        &self,
        user: &str,
        now: i64,
        service: &str,
        rhost: &str,
        factor: &str,
    ) -> Result<()> {
        let mut db = self.db_for(user)?;
        let host = db.host;
        // One statement, one round trip in the login: the user's row, the
        // history row, and the history trimmed to the newest
        // RECENT_LOGINS (the DELETE sees the table before the INSERT, so
        // it keeps RECENT_LOGINS - 1 older rows).
        db.exec(
            "WITH u AS (
               UPDATE p2fa.users SET failures = 0, locked_until = 0, last_success_at = $2,
                 last_success_service = $3, last_success_rhost = $4, last_success_factor = $5,
                 last_success_host = $6
               WHERE name = $1),
             i AS (
               INSERT INTO p2fa.logins (username, at, service, rhost, factor, host)
               VALUES ($1, $2, $3, $4, $5, $6))
             DELETE FROM p2fa.logins WHERE username = $1 AND id NOT IN
               (SELECT id FROM p2fa.logins WHERE username = $1 ORDER BY id DESC LIMIT $7)",
            &[
                Value::Text(user),
                Value::Int8(now),
                Value::Text(service),
                Value::Text(rhost),
                Value::Text(factor),
                Value::Text(host),
                Value::Int8(RECENT_LOGINS - 1),
            ],
        )?;
        Ok(())
    }

    pub(crate) fn set_last_step(&self, user: &str, step: i64) -> Result<bool> {
        let mut db = self.db_for(user)?;
        let host = db.host;
        Ok(db.exec(
            "UPDATE p2fa.otp_tokens SET last_step = $2, last_used_host = $3
             WHERE username = $1 AND (last_step IS NULL OR last_step < $2)",
            &[Value::Text(user), Value::Int8(step), Value::Text(host)],
        )? == 1)
    }

    pub(crate) fn set_counter(&self, user: &str, counter: i64) -> Result<bool> {
        let mut db = self.db_for(user)?;
        let host = db.host;
        Ok(db.exec(
            "UPDATE p2fa.otp_tokens SET counter = $2, last_used_host = $3
             WHERE username = $1 AND counter < $2",
            &[Value::Text(user), Value::Int8(counter), Value::Text(host)],
        )? == 1)
    }

    pub(crate) fn mark_backup_used(&self, id: i64, now: i64, service: &str) -> Result<bool> {
        let mut db = self.db()?;
        let host = db.host;
        Ok(db.exec(
            "UPDATE p2fa.backup_codes SET used_at = $2, used_service = $3, used_host = $4
             WHERE id = $1 AND used_at IS NULL",
            &[
                Value::Int8(id),
                Value::Int8(now),
                Value::Text(service),
                Value::Text(host),
            ],
        )? == 1)
    }

    pub(crate) fn put_otp(&self, user: &str, rec: &OtpRecord, now: i64) -> Result<()> {
        self.ensure_user(user, now)?;
        let mut db = self.db_for(user)?;
        let host = db.host;
        let last_step = rec.last_step.map_or(Value::Null, Value::Int8);
        db.exec(
            "INSERT INTO p2fa.otp_tokens (username, kind, secret, algorithm, digits, period,
               last_step, counter, created_at, created_host, key_gen)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (username) DO UPDATE SET kind = $2, secret = $3, key_gen = $11,
               algorithm = $4, digits = $5, period = $6, last_step = $7, counter = $8,
               last_used_host = NULL, created_at = $9, created_host = $10",
            &[
                Value::Text(user),
                Value::Text(rec.kind.as_str()),
                Value::Bytea(&rec.sealed),
                Value::Text(rec.algorithm.as_str()),
                Value::Int4(rec.digits as i32),
                Value::Int4(rec.period as i32),
                last_step,
                Value::Int8(rec.counter),
                Value::Int8(now),
                Value::Text(host),
                Value::Int4(gen4(rec.key_gen)?),
            ],
        )?;
        Ok(())
    }

    fn insert_backup(&self, user: &str, hashes: &[[u8; 32]], now: i64, key_gen: i64) -> Result<()> {
        let mut db = self.db_for(user)?;
        let host = db.host;
        let g = gen4(key_gen)?;
        let params: Vec<[Value<'_>; 5]> = hashes
            .iter()
            .map(|h| {
                [
                    Value::Text(user),
                    Value::Bytea(h.as_slice()),
                    Value::Int8(now),
                    Value::Text(host),
                    Value::Int4(g),
                ]
            })
            .collect();
        let stmts: Vec<(&str, &[Value<'_>])> = params
            .iter()
            .map(|p| {
                (
                    "INSERT INTO p2fa.backup_codes (username, hash, created_at, created_host,
                       key_gen) VALUES ($1, $2, $3, $4, $5)",
                    &p[..],
                )
            })
            .collect();
        if !stmts.is_empty() {
            db.pipeline(&stmts)?;
        }
        Ok(())
    }

    pub(crate) fn replace_backup_codes(
        &self,
        user: &str,
        hashes: &[[u8; 32]],
        now: i64,
        key_gen: i64,
    ) -> Result<()> {
        self.ensure_user(user, now)?;
        self.db_for(user)?.exec(
            "DELETE FROM p2fa.backup_codes WHERE username = $1",
            &[Value::Text(user)],
        )?;
        self.insert_backup(user, hashes, now, key_gen)
    }

    pub(crate) fn used_backup_hashes(&self, user: &str) -> Result<Vec<Vec<u8>>> {
        used_backup(&mut self.db_for(user)?, user)
    }

    pub(crate) fn replace_unused_backup_codes(
        &self,
        user: &str,
        hashes: &[[u8; 32]],
        now: i64,
        key_gen: i64,
    ) -> Result<()> {
        self.ensure_user(user, now)?;
        self.db_for(user)?.exec(
            "DELETE FROM p2fa.backup_codes WHERE username = $1 AND used_at IS NULL",
            &[Value::Text(user)],
        )?;
        self.insert_backup(user, hashes, now, key_gen)
    }

    pub(crate) fn remove_otp(&self, user: &str) -> Result<bool> {
        Ok(self.db_for(user)?.exec(
            "DELETE FROM p2fa.otp_tokens WHERE username = $1",
            &[Value::Text(user)],
        )? > 0)
    }

    pub(crate) fn remove_backup_codes(&self, user: &str) -> Result<usize> {
        Ok(self.db_for(user)?.exec(
            "DELETE FROM p2fa.backup_codes WHERE username = $1",
            &[Value::Text(user)],
        )? as usize)
    }

    pub(crate) fn reset_user(&self, user: &str) -> Result<bool> {
        Ok(self.db_for(user)?.exec(
            "DELETE FROM p2fa.users WHERE name = $1",
            &[Value::Text(user)],
        )? > 0)
    }

    pub(crate) fn unlock(&self, user: &str) -> Result<bool> {
        Ok(self.db_for(user)?.exec(
            "UPDATE p2fa.users SET failures = 0, locked_until = 0 WHERE name = $1",
            &[Value::Text(user)],
        )? > 0)
    }
}
