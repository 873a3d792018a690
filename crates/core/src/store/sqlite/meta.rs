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
