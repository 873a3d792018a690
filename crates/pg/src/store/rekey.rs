//! Host-key generations on the fleet database (`2fa-enroll rekey`,
//! docs/rekey.md); the same contracts as the SQLite backend's.

use super::ops::gen4;
use super::{Get, PgStore, PgTx};
use crate::schema::LOCK_FLEET;
use crate::wire::Value;
use p2fa_core::store::{GenCount, OldGenItems, Result};

/// The key in [`LOCK_FLEET`] that `rekey` steps hold (docs/fleet.md §5).
pub const LOCK_FLEET_REKEY: i32 = 1;

impl PgStore {
    pub(crate) fn key_gen_counts(&self) -> Result<Vec<GenCount>> {
        self.db()?
            .rows(
                "SELECT t, g, i, n FROM (
                 SELECT 'otp_tokens' AS t, key_gen::bigint AS g, NULL::bigint AS i, count(*) AS n
                   FROM p2fa.otp_tokens GROUP BY key_gen
                 UNION ALL SELECT 'backup_codes', key_gen::bigint, inner_gen::bigint, count(*)
                   FROM p2fa.backup_codes WHERE used_at IS NULL GROUP BY key_gen, inner_gen
                 UNION ALL SELECT 'questions', key_gen::bigint, inner_gen::bigint, count(*)
                   FROM p2fa.questions GROUP BY key_gen, inner_gen) x
                 ORDER BY t, g, coalesce(i, -1)",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(GenCount {
                    table: r.s(0)?,
                    key_gen: r.i(1)?,
                    inner_gen: r.oi(2)?,
                    rows: r.i(3)?,
                })
            })
            .collect()
    }

    pub(crate) fn fleet_hosts(&self) -> Result<Vec<(String, i64)>> {
        self.db()?
            .rows("SELECT name, last_seen FROM p2fa.hosts ORDER BY name", &[])?
            .iter()
            .map(|r| Ok((r.s(0)?, r.i(1)?)))
            .collect()
    }

    pub(crate) fn old_gen_items(&self, below: i64) -> Result<Vec<OldGenItems>> {
        self.items_per_user(
            "SELECT u, sum(b)::bigint, sum(q)::bigint, sum(o)::bigint FROM (
               SELECT username AS u, 1 AS b, 0 AS q, 0 AS o FROM p2fa.backup_codes
                 WHERE used_at IS NULL AND key_gen < $1
               UNION ALL SELECT username, 0, 1, 0 FROM p2fa.questions WHERE key_gen < $1
               UNION ALL SELECT username, 0, 0, 1 FROM p2fa.otp_tokens WHERE key_gen < $1) x
             GROUP BY u ORDER BY u",
            below,
        )
    }

    /// Rows of `(user, backup codes, questions, OTP secrets)` that `sql`
    /// counts below generation `below` ($1): what `rekey finish` and
    /// `rekey status` report per user.
    pub(super) fn items_per_user(&self, sql: &str, below: i64) -> Result<Vec<OldGenItems>> {
        let below = gen4(below)?;
        self.db()?
            .rows(sql, &[Value::Int4(below)])?
            .iter()
            .map(|r| {
                Ok(OldGenItems {
                    user: r.s(0)?,
                    backup_codes: r.i(1)?,
                    questions: r.i(2)?,
                    otp: r.i(3)?,
                })
            })
            .collect()
    }
}

impl PgTx<'_> {
    pub(crate) fn reseal_otp(&self, user: &str, sealed: &[u8], key_gen: i64) -> Result<bool> {
        let g = gen4(key_gen)?;
        Ok(self.db_for(user)?.exec(
            "UPDATE p2fa.otp_tokens SET secret = $2, key_gen = $3 WHERE username = $1",
            &[Value::Text(user), Value::Bytea(sealed), Value::Int4(g)],
        )? > 0)
    }

    pub(crate) fn drop_old_gen(&self, user: &str, below: i64, now: i64) -> Result<(usize, usize)> {
        let below = gen4(below)?;
        let mut db = self.db_for(user)?;
        let host = db.host;
        let codes = db.exec(
            "UPDATE p2fa.backup_codes SET used_at = $3, used_service = 'rekey-drop', used_host = $4
             WHERE username = $1 AND used_at IS NULL AND (key_gen < $2 OR inner_gen < $2)",
            &[
                Value::Text(user),
                Value::Int4(below),
                Value::Int8(now),
                Value::Text(host),
            ],
        )?;
        let questions = db.exec(
            "DELETE FROM p2fa.questions WHERE username = $1 AND (key_gen < $2 OR inner_gen < $2)",
            &[Value::Text(user), Value::Int4(below)],
        )?;
        Ok((codes as usize, questions as usize))
    }

    /// `pg_advisory_xact_lock(LOCK_FLEET, 1)`: one rekey step at a time
    /// fleet-wide.
    pub(crate) fn lock_rekey(&self) -> Result<()> {
        self.db()?.exec(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[Value::Int4(LOCK_FLEET), Value::Int4(LOCK_FLEET_REKEY)],
        )?;
        Ok(())
    }

    pub(crate) fn clear_sent_codes(&self) -> Result<usize> {
        Ok(self.db()?.exec("DELETE FROM p2fa.sent_codes", &[])? as usize)
    }
}
