//! First-seen times, remembered devices and security questions on the
//! fleet database. A device is remembered per host, service and source:
//! `host` is part of the key, so trusting a laptop on one server trusts
//! it nowhere else.

use super::{Db, Get, PgStore, PgTx};
use crate::wire::{Row, Value};
use p2fa_core::store::{Remembered, Result, StoredQuestion};

const REMEMBERED: &str = "SELECT id, username, service, source, factor, created_at, expires_at
    FROM p2fa.remembered";

fn remembered_row(r: &Row) -> Result<Remembered> {
    Ok(Remembered {
        id: r.i(0)?,
        user: r.s(1)?,
        service: r.s(2)?,
        source: r.s(3)?,
        factor: r.s(4)?,
        created_at: r.i(5)?,
        expires_at: r.i(6)?,
    })
}

fn questions(db: &mut Db<'_>, user: &str) -> Result<(Vec<StoredQuestion>, Option<i64>)> {
    let p = [Value::Text(user)];
    let out = db.snapshot(&[
        (
            "SELECT idx, question, answer_hash, key_gen::bigint, inner_gen::bigint FROM p2fa.questions \
             WHERE username = $1 ORDER BY idx",
            &p,
        ),
        (
            "SELECT last_failed_question FROM p2fa.users WHERE name = $1",
            &p,
        ),
    ])?;
    let qs = out
        .first()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|r| {
            Ok(StoredQuestion {
                idx: r.i(0)?,
                question: r.s(1)?,
                answer_hash: r.s(2)?,
                key_gen: r.i(3)?,
                inner_gen: r.oi(4)?,
            })
        })
        .collect::<Result<_>>()?;
    let last = match out.get(1).and_then(|rows| rows.first()) {
        Some(r) => r.oi(0)?,
        None => None,
    };
    Ok((qs, last))
}

impl PgStore {
    pub(crate) fn remembered(
        &self,
        user: &str,
        service: &str,
        source_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<Remembered>> {
        let mut db = self.db()?;
        let host = db.host;
        db.opt(
            &format!(
                "{REMEMBERED} WHERE username = $1 AND host = $2 AND service = $3
                   AND source_hash = $4 AND expires_at > $5"
            ),
            &[
                Value::Text(user),
                Value::Text(host),
                Value::Text(service),
                Value::Bytea(source_hash.as_slice()),
                Value::Int8(now),
            ],
        )?
        .map(|r| remembered_row(&r))
        .transpose()
    }

    /// Every live remembered device (of `user`, or of everyone), all
    /// hosts: `2fa-enroll devices` forgets them fleet-wide.
    pub(crate) fn remembered_list(&self, user: Option<&str>, now: i64) -> Result<Vec<Remembered>> {
        self.db()?
            .rows(
                &format!(
                    "{REMEMBERED} WHERE ($1::text IS NULL OR username = $1) AND expires_at > $2
                     ORDER BY username, id"
                ),
                &[user.map_or(Value::Null, Value::Text), Value::Int8(now)],
            )?
            .iter()
            .map(remembered_row)
            .collect()
    }

    pub(crate) fn questions(&self, user: &str) -> Result<(Vec<StoredQuestion>, Option<i64>)> {
        questions(&mut self.db()?, user)
    }
}

impl PgTx<'_> {
    /// See [`p2fa_core::store::api::TxOps::merge_counters`].
    pub(crate) fn merge_counters(
        &self,
        user: &str,
        failures: u32,
        locked_until: i64,
        first_seen: Option<i64>,
        now: i64,
    ) -> Result<()> {
        self.ensure_user(user, now)?;
        let mut db = self.db_for(user)?;
        let host = db.host;
        let first = first_seen.map(Value::Int8).unwrap_or(Value::Null);
        db.exec(
            "UPDATE p2fa.users SET failures = greatest(failures, $2),
                 locked_until = greatest(locked_until, $3),
                 first_seen_host = CASE WHEN $4::bigint < coalesce(first_seen_at, $4::bigint + 1)
                                        THEN $5 ELSE first_seen_host END,
                 first_seen_at = least(first_seen_at, $4::bigint)
             WHERE name = $1",
            &[
                Value::Text(user),
                Value::Int8(i64::from(failures)),
                Value::Int8(locked_until),
                first,
                Value::Text(host),
            ],
        )?;
        Ok(())
    }

    pub(crate) fn first_seen(&self, user: &str, now: i64) -> Result<i64> {
        self.ensure_user(user, now)?;
        let mut db = self.db_for(user)?;
        let host = db.host;
        db.exec(
            "UPDATE p2fa.users SET first_seen_at = $2, first_seen_host = $3
             WHERE name = $1 AND first_seen_at IS NULL",
            &[Value::Text(user), Value::Int8(now), Value::Text(host)],
        )?;
        db.one(
            "SELECT first_seen_at FROM p2fa.users WHERE name = $1",
            &[Value::Text(user)],
        )?
        .i(0)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn remember(
        &self,
        user: &str,
        service: &str,
        source_hash: &[u8; 32],
        source: &str,
        factor: &str,
        now: i64,
        until: i64,
    ) -> Result<()> {
        self.ensure_user(user, now)?;
        let mut db = self.db_for(user)?;
        let host = db.host;
        db.exec(
            "DELETE FROM p2fa.remembered WHERE expires_at <= $1",
            &[Value::Int8(now)],
        )?;
        db.exec(
            "INSERT INTO p2fa.remembered (username, host, service, source_hash, source, factor,
               created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (username, host, service, source_hash) DO UPDATE SET source = $5,
               factor = $6, created_at = $7, expires_at = $8",
            &[
                Value::Text(user),
                Value::Text(host),
                Value::Text(service),
                Value::Bytea(source_hash.as_slice()),
                Value::Text(source),
                Value::Text(factor),
                Value::Int8(now),
                Value::Int8(until),
            ],
        )?;
        Ok(())
    }

    pub(crate) fn revoke(&self, user: &str, id: Option<i64>) -> Result<usize> {
        let mut db = self.db_for(user)?;
        let n = match id {
            Some(id) => db.exec(
                "DELETE FROM p2fa.remembered WHERE username = $1 AND id = $2",
                &[Value::Text(user), Value::Int8(id)],
            )?,
            None => db.exec(
                "DELETE FROM p2fa.remembered WHERE username = $1",
                &[Value::Text(user)],
            )?,
        };
        Ok(n as usize)
    }

    pub(crate) fn set_questions(
        &self,
        user: &str,
        qs: &[(String, String)],
        now: i64,
        key_gen: i64,
    ) -> Result<()> {
        let g = super::ops::gen4(key_gen)?;
        self.ensure_user(user, now)?;
        let mut db = self.db_for(user)?;
        let host = db.host;
        db.exec(
            "DELETE FROM p2fa.questions WHERE username = $1",
            &[Value::Text(user)],
        )?;
        for (i, (q, h)) in qs.iter().enumerate() {
            db.exec(
                "INSERT INTO p2fa.questions (username, idx, question, answer_hash, created_at,
                   created_host, key_gen) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    Value::Text(user),
                    Value::Int4(i as i32),
                    Value::Text(q),
                    Value::Text(h),
                    Value::Int8(now),
                    Value::Text(host),
                    Value::Int4(g),
                ],
            )?;
        }
        Ok(())
    }

    pub(crate) fn remove_questions(&self, user: &str) -> Result<bool> {
        Ok(self.db_for(user)?.exec(
            "DELETE FROM p2fa.questions WHERE username = $1",
            &[Value::Text(user)],
        )? > 0)
    }

    pub(crate) fn set_last_failed_question(&self, user: &str, idx: Option<i64>) -> Result<()> {
        self.db_for(user)?.exec(
            "UPDATE p2fa.users SET last_failed_question = $2 WHERE name = $1",
            &[Value::Text(user), idx.map_or(Value::Null, Value::Int8)],
        )?;
        Ok(())
    }
}
