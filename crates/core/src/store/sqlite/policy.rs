//! SqliteStore operations for policy: first-seen times (grace periods),
//! remembered devices and security questions.

use super::{Result, SqliteStore, SqliteTx};
use crate::store::types::*;
use rusqlite::{OptionalExtension, params};

impl SqliteTx<'_> {
    /// When the module first saw `user` (recorded now if never).
    pub fn first_seen(&self, user: &str, now: i64) -> Result<i64> {
        self.ensure_user(user, now)?;
        self.tx.execute(
            "UPDATE users SET first_seen_at = ?2 WHERE name = ?1 AND first_seen_at IS NULL",
            params![user, now],
        )?;
        Ok(self.tx.query_row(
            "SELECT first_seen_at FROM users WHERE name = ?1",
            [user],
            |r| r.get(0),
        )?)
    }

    /// See [`crate::store::api::TxOps::merge_counters`].
    pub fn merge_counters(
        &self,
        user: &str,
        failures: u32,
        locked_until: i64,
        first_seen: Option<i64>,
        now: i64,
    ) -> Result<()> {
        self.ensure_user(user, now)?;
        self.tx.execute(
            "UPDATE users SET failures = max(failures, ?2), locked_until = max(locked_until, ?3),
                 first_seen_at = CASE WHEN ?4 IS NULL THEN first_seen_at
                                      ELSE min(coalesce(first_seen_at, ?4), ?4) END
             WHERE name = ?1",
            params![user, failures, locked_until, first_seen],
        )?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn remember(
        &self,
        user: &str,
        service: &str,
        source_hash: &[u8; 32],
        source: &str,
        factor: &str,
        now: i64,
        until: i64,
    ) -> Result<()> {
        self.tx
            .execute("DELETE FROM remembered WHERE expires_at <= ?1", [now])?;
        self.tx.execute(
            "DELETE FROM remembered WHERE user = ?1 AND service = ?2 AND source_hash = ?3",
            params![user, service, source_hash.as_slice()],
        )?;
        self.tx.execute(
            "INSERT INTO remembered (user, service, source_hash, source, factor, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![user, service, source_hash.as_slice(), source, factor, now, until],
        )?;
        Ok(())
    }

    /// Revokes one entry (of `user` when given) or all of a user's.
    pub fn revoke(&self, user: &str, id: Option<i64>) -> Result<usize> {
        Ok(match id {
            Some(id) => self.tx.execute(
                "DELETE FROM remembered WHERE user = ?1 AND id = ?2",
                params![user, id],
            )?,
            None => self
                .tx
                .execute("DELETE FROM remembered WHERE user = ?1", [user])?,
        })
    }

    pub fn set_questions(
        &self,
        user: &str,
        qs: &[(String, String)],
        now: i64,
        key_gen: i64,
    ) -> Result<()> {
        self.ensure_user(user, now)?;
        self.tx
            .execute("DELETE FROM questions WHERE user = ?1", [user])?;
        for (i, (q, h)) in qs.iter().enumerate() {
            self.tx.execute(
                "INSERT INTO questions (user, idx, question, answer_hash, created_at, key_gen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![user, i as i64, q, h, now, key_gen],
            )?;
        }
        Ok(())
    }

    pub fn remove_questions(&self, user: &str) -> Result<bool> {
        Ok(self
            .tx
            .execute("DELETE FROM questions WHERE user = ?1", [user])?
            > 0)
    }

    pub fn set_last_failed_question(&self, user: &str, idx: Option<i64>) -> Result<()> {
        self.tx.execute(
            "UPDATE users SET last_failed_question = ?2 WHERE name = ?1",
            params![user, idx],
        )?;
        Ok(())
    }
}

impl SqliteStore {
    /// The live remembered entry for this (user, service, source), if any.
    pub fn remembered(
        &self,
        user: &str,
        service: &str,
        source_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<Remembered>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, user, service, source, factor, created_at, expires_at FROM remembered
                 WHERE user = ?1 AND service = ?2 AND source_hash = ?3 AND expires_at > ?4",
                params![user, service, source_hash.as_slice(), now],
                row_remembered,
            )
            .optional()?)
    }

    /// Live entries of `user`, or of everyone with `None`.
    pub fn remembered_list(&self, user: Option<&str>, now: i64) -> Result<Vec<Remembered>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, user, service, source, factor, created_at, expires_at FROM remembered
             WHERE (?1 IS NULL OR user = ?1) AND expires_at > ?2 ORDER BY user, id",
        )?;
        let rows = stmt
            .query_map(params![user, now], row_remembered)?
            .collect::<std::result::Result<_, _>>()?;
        Ok(rows)
    }

    pub fn questions(&self, user: &str) -> Result<(Vec<StoredQuestion>, Option<i64>)> {
        let mut stmt = self.conn.prepare(
            "SELECT idx, question, answer_hash, key_gen, inner_gen FROM questions \
             WHERE user = ?1 ORDER BY idx",
        )?;
        let qs = stmt
            .query_map([user], super::wrap::question_row)?
            .collect::<std::result::Result<_, _>>()?;
        let last = self
            .conn
            .query_row(
                "SELECT last_failed_question FROM users WHERE name = ?1",
                [user],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten();
        Ok((qs, last))
    }
}

fn row_remembered(r: &rusqlite::Row<'_>) -> rusqlite::Result<Remembered> {
    Ok(Remembered {
        id: r.get(0)?,
        user: r.get(1)?,
        service: r.get(2)?,
        source: r.get(3)?,
        factor: r.get(4)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
    })
}
