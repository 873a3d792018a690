//! Wrapped one-way hashes (`rekey convert`, docs/rekey.md): the rows
//! `convert` reads and rewrites, who still needs an inner generation, and
//! the re-hash of a wrapped answer a login verified.

use super::{Result, SqliteStore, SqliteTx};
use crate::store::types::*;
use rusqlite::params;

/// A `questions` row selected as `idx, question, answer_hash, key_gen,
/// inner_gen`.
pub(super) fn question_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredQuestion> {
    Ok(StoredQuestion {
        idx: r.get(0)?,
        question: r.get(1)?,
        answer_hash: r.get(2)?,
        key_gen: r.get(3)?,
        inner_gen: r.get(4)?,
    })
}

impl SqliteStore {
    pub fn wrapped_items(&self, below: i64) -> Result<Vec<OldGenItems>> {
        self.items_per_user(
            "SELECT u, sum(b), sum(q), 0 FROM ( \
               SELECT user AS u, 1 AS b, 0 AS q FROM backup_codes \
                 WHERE used_at IS NULL AND inner_gen < ?1 \
               UNION ALL SELECT user, 0, 1 FROM questions WHERE inner_gen < ?1) \
             GROUP BY u ORDER BY u",
            below,
        )
    }
}

impl SqliteTx<'_> {
    pub fn backup_rows(&self, user: &str) -> Result<Vec<BackupRow>> {
        let mut st = self.tx.prepare(
            "SELECT id, hash, key_gen, inner_gen FROM backup_codes WHERE user = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([user], |r| {
            Ok(BackupRow {
                id: r.get(0)?,
                hash: r.get(1)?,
                key_gen: r.get(2)?,
                inner_gen: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn question_rows(&self, user: &str) -> Result<Vec<StoredQuestion>> {
        let mut st = self.tx.prepare(
            "SELECT idx, question, answer_hash, key_gen, inner_gen FROM questions \
             WHERE user = ?1 ORDER BY idx",
        )?;
        let rows = st.query_map([user], question_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn wrap_backup_code(
        &self,
        user: &str,
        id: i64,
        inner: i64,
        hash: &[u8],
        key_gen: i64,
    ) -> Result<bool> {
        Ok(self.tx.execute(
            "UPDATE backup_codes SET hash = ?4, key_gen = ?5, inner_gen = ?3 \
             WHERE user = ?1 AND id = ?2 AND key_gen = ?3 AND inner_gen IS NULL",
            params![user, id, inner, hash, key_gen],
        )? > 0)
    }

    pub fn wrap_answer(
        &self,
        user: &str,
        idx: i64,
        inner: i64,
        answer_hash: &str,
        key_gen: i64,
    ) -> Result<bool> {
        Ok(self.tx.execute(
            "UPDATE questions SET answer_hash = ?4, key_gen = ?5, inner_gen = ?3 \
             WHERE user = ?1 AND idx = ?2 AND key_gen = ?3 AND inner_gen IS NULL",
            params![user, idx, inner, answer_hash, key_gen],
        )? > 0)
    }

    pub fn rehash_answer(
        &self,
        user: &str,
        idx: i64,
        wrapped: &str,
        answer_hash: &str,
        key_gen: i64,
    ) -> Result<bool> {
        Ok(self.tx.execute(
            "UPDATE questions SET answer_hash = ?4, key_gen = ?5, inner_gen = NULL \
             WHERE user = ?1 AND idx = ?2 AND answer_hash = ?3 AND inner_gen IS NOT NULL \
             AND key_gen <= ?5",
            params![user, idx, wrapped, answer_hash, key_gen],
        )? > 0)
    }
}
