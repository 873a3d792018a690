//! Wrapped one-way hashes on the fleet database (`rekey convert`,
//! docs/rekey.md, and the re-hash of a wrapped answer a login verified);
//! the same contracts as the SQLite backend's.

use super::ops::gen4;
use super::{Get, PgStore, PgTx};
use crate::wire::Value;
use p2fa_core::store::{BackupRow, OldGenItems, Result, StoredQuestion};

impl PgStore {
    pub(crate) fn wrapped_items(&self, below: i64) -> Result<Vec<OldGenItems>> {
        self.items_per_user(
            "SELECT u, sum(b)::bigint, sum(q)::bigint, 0::bigint FROM (
               SELECT username AS u, 1 AS b, 0 AS q FROM p2fa.backup_codes
                 WHERE used_at IS NULL AND inner_gen < $1
               UNION ALL SELECT username, 0, 1 FROM p2fa.questions WHERE inner_gen < $1) x
             GROUP BY u ORDER BY u",
            below,
        )
    }
}

impl PgTx<'_> {
    pub(crate) fn backup_rows(&self, user: &str) -> Result<Vec<BackupRow>> {
        self.db_for(user)?
            .rows(
                "SELECT id, hash, key_gen::bigint, inner_gen::bigint FROM p2fa.backup_codes
                 WHERE username = $1 ORDER BY id",
                &[Value::Text(user)],
            )?
            .iter()
            .map(|r| {
                Ok(BackupRow {
                    id: r.i(0)?,
                    hash: r.b(1)?,
                    key_gen: r.i(2)?,
                    inner_gen: r.oi(3)?,
                })
            })
            .collect()
    }

    pub(crate) fn question_rows(&self, user: &str) -> Result<Vec<StoredQuestion>> {
        self.db_for(user)?
            .rows(
                "SELECT idx, question, answer_hash, key_gen::bigint, inner_gen::bigint
                 FROM p2fa.questions WHERE username = $1 ORDER BY idx",
                &[Value::Text(user)],
            )?
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
            .collect()
    }

    pub(crate) fn wrap_backup_code(
        &self,
        user: &str,
        id: i64,
        inner: i64,
        hash: &[u8],
        key_gen: i64,
    ) -> Result<bool> {
        Ok(self.db_for(user)?.exec(
            "UPDATE p2fa.backup_codes SET hash = $4, key_gen = $5, inner_gen = $3
             WHERE username = $1 AND id = $2 AND key_gen = $3 AND inner_gen IS NULL",
            &[
                Value::Text(user),
                Value::Int8(id),
                Value::Int4(gen4(inner)?),
                Value::Bytea(hash),
                Value::Int4(gen4(key_gen)?),
            ],
        )? > 0)
    }

    pub(crate) fn wrap_answer(
        &self,
        user: &str,
        idx: i64,
        inner: i64,
        answer_hash: &str,
        key_gen: i64,
    ) -> Result<bool> {
        let idx = i32::try_from(idx).map_err(|_| {
            p2fa_core::store::StoreError::Corrupt(format!("question index {idx} out of range"))
        })?;
        Ok(self.db_for(user)?.exec(
            "UPDATE p2fa.questions SET answer_hash = $4, key_gen = $5, inner_gen = $3
             WHERE username = $1 AND idx = $2 AND key_gen = $3 AND inner_gen IS NULL",
            &[
                Value::Text(user),
                Value::Int4(idx),
                Value::Int4(gen4(inner)?),
                Value::Text(answer_hash),
                Value::Int4(gen4(key_gen)?),
            ],
        )? > 0)
    }

    pub(crate) fn rehash_answer(
        &self,
        user: &str,
        idx: i64,
        wrapped: &str,
        answer_hash: &str,
        key_gen: i64,
    ) -> Result<bool> {
        let idx = i32::try_from(idx).map_err(|_| {
            p2fa_core::store::StoreError::Corrupt(format!("question index {idx} out of range"))
        })?;
        Ok(self.db_for(user)?.exec(
            "UPDATE p2fa.questions SET answer_hash = $4, key_gen = $5, inner_gen = NULL
             WHERE username = $1 AND idx = $2 AND answer_hash = $3 AND inner_gen IS NOT NULL
               AND key_gen <= $5",
            &[
                Value::Text(user),
                Value::Int4(idx),
                Value::Text(wrapped),
                Value::Text(answer_hash),
                Value::Int4(gen4(key_gen)?),
            ],
        )? > 0)
    }
}
