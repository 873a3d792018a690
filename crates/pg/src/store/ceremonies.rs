//! Pending WebAuthn ceremonies on the fleet database (migration 2), so
//! that any 2fad of the fleet serves any link and the 2fad that started
//! a login reads its result. Rows are keyed by a hash of the link's
//! token. A claim is one conditional UPDATE (`result IS NULL AND NOT
//! busy`), so two 2fads cannot both verify one answer; taking a result
//! is a DELETE whose row count says who took it.

use super::{Get, PgTx};
use crate::wire::{Row, Value};
use p2fa_core::store::{Result, StoredCeremony};

const COLUMNS: &str = "username, host, by_uid, kind, service, rhost, state, options, \
                       created_at, expires_at, busy, approved, result";

fn row(r: &Row) -> Result<StoredCeremony> {
    let approved = r.opt_bool(11).map_err(super::store_error)?;
    let result = match approved {
        Some(a) => Some((a, r.os(12)?.unwrap_or_default())),
        None => None,
    };
    Ok(StoredCeremony {
        user: r.s(0)?,
        host: r.s(1)?,
        by_uid: u32::try_from(r.i(2)?).unwrap_or(u32::MAX),
        kind: r.s(3)?,
        service: r.s(4)?,
        rhost: r.s(5)?,
        state: r.s(6)?,
        options: r.s(7)?,
        created_at: r.i(8)?,
        expires_at: r.i(9)?,
        busy: r.flag(10)?,
        result,
    })
}

impl PgTx<'_> {
    pub(crate) fn insert_ceremony(
        &self,
        token_hash: &[u8; 32],
        c: &StoredCeremony,
        max_open: u32,
        now: i64,
    ) -> Result<bool> {
        // The user's lock: the quota's count and the insert are one step
        // for every 2fad of the fleet.
        let mut db = self.db_for(&c.user)?;
        db.exec(
            "DELETE FROM p2fa.webauthn_ceremonies WHERE expires_at <= $1",
            &[Value::Int8(now - 60)],
        )?;
        let login = c.kind == "login";
        let open = db
            .one(
                "SELECT count(*) FROM p2fa.webauthn_ceremonies WHERE username = $1
                   AND (kind = 'login') = $2 AND approved IS NULL AND expires_at > $3",
                &[Value::Text(&c.user), Value::Bool(login), Value::Int8(now)],
            )?
            .i(0)?;
        if open >= i64::from(max_open) {
            return Ok(false);
        }
        let host = db.host;
        db.exec(
            "INSERT INTO p2fa.webauthn_ceremonies (token_hash, username, host, by_uid, kind,
               service, rhost, state, options, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                Value::Bytea(token_hash),
                Value::Text(&c.user),
                Value::Text(host),
                Value::Int8(c.by_uid.into()),
                Value::Text(&c.kind),
                Value::Text(&c.service),
                Value::Text(&c.rhost),
                Value::Text(&c.state),
                Value::Text(&c.options),
                Value::Int8(c.created_at),
                Value::Int8(c.expires_at),
            ],
        )?;
        Ok(true)
    }

    pub(crate) fn ceremony(&self, token_hash: &[u8; 32]) -> Result<Option<StoredCeremony>> {
        self.db()?
            .opt(
                &format!("SELECT {COLUMNS} FROM p2fa.webauthn_ceremonies WHERE token_hash = $1"),
                &[Value::Bytea(token_hash)],
            )?
            .map(|r| row(&r))
            .transpose()
    }

    pub(crate) fn claim_ceremony(
        &self,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<StoredCeremony>> {
        let mut db = self.db()?;
        let host = db.host;
        db.opt(
            &format!(
                "UPDATE p2fa.webauthn_ceremonies SET busy = true, busy_host = $3
                 WHERE token_hash = $1 AND approved IS NULL AND NOT busy AND expires_at > $2
                 RETURNING {COLUMNS}"
            ),
            &[
                Value::Bytea(token_hash),
                Value::Int8(now),
                Value::Text(host),
            ],
        )?
        .map(|r| row(&r))
        .transpose()
    }

    pub(crate) fn finish_ceremony(
        &self,
        token_hash: &[u8; 32],
        approved: bool,
        result: &str,
        now: i64,
    ) -> Result<bool> {
        let mut db = self.db()?;
        let host = db.host;
        Ok(db.exec(
            "UPDATE p2fa.webauthn_ceremonies SET busy = false, approved = $2, result = $3,
               result_at = $4, result_host = $5
             WHERE token_hash = $1 AND busy AND approved IS NULL",
            &[
                Value::Bytea(token_hash),
                Value::Bool(approved),
                Value::Text(result),
                Value::Int8(now),
                Value::Text(host),
            ],
        )? == 1)
    }

    pub(crate) fn delete_ceremony(&self, token_hash: &[u8; 32]) -> Result<bool> {
        Ok(self.db()?.exec(
            "DELETE FROM p2fa.webauthn_ceremonies WHERE token_hash = $1",
            &[Value::Bytea(token_hash)],
        )? == 1)
    }
}
