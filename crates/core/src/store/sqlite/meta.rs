//! The `meta` table (facts about the store itself) and the queries the
//! host-key check ([`crate::keycheck`]) needs.

use super::{Result, SqliteStore, SqliteTx};
use crate::store::types::*;
use rusqlite::{Connection, OptionalExtension, params};

fn meta_get(c: &Connection, name: &str) -> Result<Option<Vec<u8>>> {
    Ok(
        c.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?,
    )
}

fn sealed(c: &Connection) -> Result<Vec<SealedSecret>> {
    let mut st = c.prepare("SELECT user, secret, created_at FROM otp_tokens")?;
    let rows = st.query_map([], |r| {
        Ok(SealedSecret {
            user: r.get(0)?,
            sealed: r.get(1)?,
            created_at: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl SqliteStore {
    /// A `meta` value (one indexed read, no transaction).
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        meta_get(&self.conn, name)
    }

    /// Every sealed OTP secret, read without a transaction (for a store
    /// opened read-only, [`SqliteStore::inspect`]).
    pub fn sealed_secrets(&self) -> Result<Vec<SealedSecret>> {
        sealed(&self.conn)
    }

    /// Whether anything in the store was made with the host key (sealed
    /// secrets, keyed hashes, peppered answers); no transaction.
    pub fn has_keyed_items(&self) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM otp_tokens) OR EXISTS (SELECT 1 FROM backup_codes) \
             OR EXISTS (SELECT 1 FROM questions) OR EXISTS (SELECT 1 FROM sent_codes)",
            [],
            |r| r.get(0),
        )?)
    }
}

impl SqliteTx<'_> {
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        meta_get(&self.tx, name)
    }

    pub fn set_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        self.tx.execute(
            "INSERT INTO meta (name, value) VALUES (?1, ?2) \
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            params![name, value],
        )?;
        Ok(())
    }

    /// Every sealed OTP secret in the store.
    pub fn sealed_secrets(&self) -> Result<Vec<SealedSecret>> {
        sealed(&self.tx)
    }

    /// When the oldest item that depends on the host key but cannot be
    /// opened to prove it was made (backup code hashes, peppered answers,
    /// hashes of codes sent by SMS or e-mail); `None` if there is none.
    pub fn oldest_hashed_item(&self) -> Result<Option<i64>> {
        Ok(self.tx.query_row(
            "SELECT min(t) FROM ( \
               SELECT min(created_at) AS t FROM backup_codes \
               UNION ALL SELECT min(created_at) FROM questions \
               UNION ALL SELECT min(sent_at) FROM sent_codes)",
            [],
            |r| r.get(0),
        )?)
    }
}

/// Host-key generations (`2fa-enroll rekey`, docs/rekey.md).
impl SqliteStore {
    pub fn key_gen_counts(&self) -> Result<Vec<GenCount>> {
        let mut st = self.conn.prepare(
            "SELECT t, g, i, n FROM ( \
             SELECT 'otp_tokens' AS t, key_gen AS g, NULL AS i, count(*) AS n FROM otp_tokens \
               GROUP BY key_gen \
             UNION ALL SELECT 'backup_codes', key_gen, inner_gen, count(*) FROM backup_codes \
               WHERE used_at IS NULL GROUP BY key_gen, inner_gen \
             UNION ALL SELECT 'questions', key_gen, inner_gen, count(*) FROM questions \
               GROUP BY key_gen, inner_gen) \
             ORDER BY t, g, coalesce(i, -1)",
        )?;
        let rows = st.query_map([], |r| {
            Ok(GenCount {
                table: r.get(0)?,
                key_gen: r.get(1)?,
                inner_gen: r.get(2)?,
                rows: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A host-local store has no fleet.
    pub fn fleet_hosts(&self) -> Result<Vec<(String, i64)>> {
        Ok(Vec::new())
    }

    pub fn old_gen_items(&self, below: i64) -> Result<Vec<OldGenItems>> {
        self.items_per_user(
            "SELECT u, sum(b), sum(q), sum(o) FROM ( \
               SELECT user AS u, 1 AS b, 0 AS q, 0 AS o FROM backup_codes \
                 WHERE used_at IS NULL AND key_gen < ?1 \
               UNION ALL SELECT user, 0, 1, 0 FROM questions WHERE key_gen < ?1 \
               UNION ALL SELECT user, 0, 0, 1 FROM otp_tokens WHERE key_gen < ?1) \
             GROUP BY u ORDER BY u",
            below,
        )
    }

    /// Rows of `(user, backup codes, questions, OTP secrets)` that `sql`
    /// counts below generation `below` (?1): what `rekey finish` and
    /// `rekey status` report per user.
    pub(super) fn items_per_user(&self, sql: &str, below: i64) -> Result<Vec<OldGenItems>> {
        let mut st = self.conn.prepare(sql)?;
        let rows = st.query_map([below], |r| {
            Ok(OldGenItems {
                user: r.get(0)?,
                backup_codes: r.get(1)?,
                questions: r.get(2)?,
                otp: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl SqliteTx<'_> {
    pub fn reseal_otp(&self, user: &str, sealed: &[u8], key_gen: i64) -> Result<bool> {
        Ok(self.tx.execute(
            "UPDATE otp_tokens SET secret = ?2, key_gen = ?3 WHERE user = ?1",
            params![user, sealed, key_gen],
        )? > 0)
    }

    pub fn drop_old_gen(&self, user: &str, below: i64, now: i64) -> Result<(usize, usize)> {
        let codes = self.tx.execute(
            "UPDATE backup_codes SET used_at = ?3, used_service = 'rekey-drop' \
             WHERE user = ?1 AND used_at IS NULL AND (key_gen < ?2 OR inner_gen < ?2)",
            params![user, below, now],
        )?;
        let questions = self.tx.execute(
            "DELETE FROM questions WHERE user = ?1 AND (key_gen < ?2 OR inner_gen < ?2)",
            params![user, below],
        )?;
        Ok((codes, questions))
    }

    /// Nothing to take: the write transaction already excludes every
    /// other writer.
    pub fn lock_rekey(&self) -> Result<()> {
        Ok(())
    }

    pub fn clear_sent_codes(&self) -> Result<usize> {
        Ok(self.tx.execute("DELETE FROM sent_codes", [])?)
    }
}
