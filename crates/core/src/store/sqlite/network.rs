//! SqliteStore operations of the network factors: contacts (phone, e-mail), Duo
//! enrollment, the per-user default factor, and codes sent by SMS/e-mail.
//!
//! A sent code is stored only as a keyed hash with its expiry and a count of
//! wrong answers; the rows double as the send log that enforces the hourly
//! limit. Rows are inserted before the message goes out and deleted if the
//! gateway fails, so the network call never runs inside a write lock.
//!
//! A channel is one of [`FactorId::CHANNELS`]; the tables' CHECK
//! constraints refuse any other.

use super::{Result, SqliteTx};
use crate::crypto;
use crate::factor::FactorId;
use crate::store::types::*;
use rusqlite::{OptionalExtension, params};

/// Sent codes older than this are deleted (they only matter for the hourly
/// send limit).
const KEEP_SENT_SECONDS: i64 = 86_400;

impl SqliteTx<'_> {
    pub fn set_contact(&self, user: &str, ch: FactorId, address: &str, now: i64) -> Result<()> {
        self.ensure_user(user, now)?;
        self.tx.execute(
            "INSERT OR REPLACE INTO contacts (user, channel, address, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![user, ch.as_str(), address, now],
        )?;
        Ok(())
    }

    pub fn remove_contact(&self, user: &str, ch: FactorId) -> Result<bool> {
        Ok(self.tx.execute(
            "DELETE FROM contacts WHERE user = ?1 AND channel = ?2",
            params![user, ch.as_str()],
        )? > 0)
    }

    pub fn set_duo(&self, user: &str, now: i64) -> Result<()> {
        self.ensure_user(user, now)?;
        self.tx.execute(
            "INSERT OR IGNORE INTO duo_users (user, created_at) VALUES (?1, ?2)",
            params![user, now],
        )?;
        Ok(())
    }

    pub fn remove_duo(&self, user: &str) -> Result<bool> {
        Ok(self
            .tx
            .execute("DELETE FROM duo_users WHERE user = ?1", [user])?
            > 0)
    }

    /// Sets (or with `None` clears) the factor an empty answer starts.
    pub fn set_default_factor(&self, user: &str, factor: Option<&str>, now: i64) -> Result<()> {
        self.ensure_user(user, now)?;
        self.tx.execute(
            "UPDATE users SET default_factor = ?2 WHERE name = ?1",
            params![user, factor],
        )?;
        Ok(())
    }

    /// Codes sent to `user` over `ch` in the last hour (any purpose).
    pub fn sends_last_hour(&self, user: &str, ch: FactorId, now: i64) -> Result<u32> {
        Ok(self.tx.query_row(
            "SELECT count(*) FROM sent_codes WHERE user = ?1 AND channel = ?2 AND sent_at > ?3",
            params![user, ch.as_str(), now - 3600],
            |r| r.get(0),
        )?)
    }

    /// When the newest still-usable code for this purpose was sent.
    pub fn live_code_sent_at(
        &self,
        user: &str,
        ch: FactorId,
        purpose: Purpose,
        now: i64,
        max_attempts: u32,
    ) -> Result<Option<i64>> {
        Ok(self
            .tx
            .query_row(
                "SELECT max(sent_at) FROM sent_codes
                 WHERE user = ?1 AND channel = ?2 AND purpose = ?3 AND used_at IS NULL
                   AND expires_at > ?4 AND attempts < ?5",
                params![user, ch.as_str(), purpose.as_str(), now, max_attempts],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Records a code about to be sent; returns its row id.
    #[allow(clippy::too_many_arguments)]
    pub fn insert_sent_code(
        &self,
        user: &str,
        ch: FactorId,
        purpose: Purpose,
        address: &str,
        hash: &[u8; 32],
        now: i64,
        ttl: i64,
        _scope: &SentScope,
    ) -> Result<i64> {
        self.ensure_user(user, now)?;
        self.tx.execute(
            "DELETE FROM sent_codes WHERE sent_at < ?1",
            [now - KEEP_SENT_SECONDS],
        )?;
        self.tx.execute(
            "INSERT INTO sent_codes (user, channel, purpose, address, hash, sent_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                user,
                ch.as_str(),
                purpose.as_str(),
                address,
                hash.as_slice(),
                now,
                now + ttl
            ],
        )?;
        Ok(self.tx.last_insert_rowid())
    }

    /// Forgets a code whose message never went out.
    pub fn delete_sent_code(&self, id: i64) -> Result<()> {
        self.tx
            .execute("DELETE FROM sent_codes WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Checks a typed code against every live code of this purpose, in
    /// constant time per candidate. A hit uses it up together with its
    /// siblings (a newer code replaces older ones); a miss counts one wrong
    /// attempt against each, so guessing burns them out after
    /// `max_attempts`. `address` must match: a code sent to an old number
    /// does not confirm a new one. One host: `scope` is ignored.
    #[allow(clippy::too_many_arguments)]
    pub fn check_sent_code(
        &self,
        user: &str,
        ch: FactorId,
        purpose: Purpose,
        address: Option<&str>,
        hash: &[u8; 32],
        now: i64,
        max_attempts: u32,
        _scope: &SentScope,
    ) -> Result<SentCheck> {
        let live: Vec<(i64, Vec<u8>, String)> = {
            let mut stmt = self.tx.prepare_cached(
                "SELECT id, hash, address FROM sent_codes
                 WHERE user = ?1 AND channel = ?2 AND purpose = ?3 AND used_at IS NULL
                   AND expires_at > ?4 AND attempts < ?5",
            )?;
            stmt.query_map(
                params![user, ch.as_str(), purpose.as_str(), now, max_attempts],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?
            .collect::<std::result::Result<_, _>>()?
        };
        let live: Vec<_> = live
            .into_iter()
            .filter(|(_, _, a)| address.is_none_or(|want| want == a))
            .collect();
        if live.is_empty() {
            return Ok(SentCheck::NoLiveCode);
        }
        let mut hit = false;
        for (_, stored, _) in &live {
            hit |= crypto::ct_eq(stored, hash);
        }
        for (id, _, _) in &live {
            if hit {
                self.tx.execute(
                    "UPDATE sent_codes SET used_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
            } else {
                self.tx.execute(
                    "UPDATE sent_codes SET attempts = attempts + 1 WHERE id = ?1",
                    [id],
                )?;
            }
        }
        Ok(if hit {
            SentCheck::Accepted
        } else {
            SentCheck::Wrong
        })
    }

    /// The channel and address of the newest code of `purpose` sent to
    /// `user`, if it is neither used nor expired. One host: `scope` is
    /// ignored.
    pub fn newest_sent_code(
        &self,
        user: &str,
        purpose: Purpose,
        _scope: &SentScope,
        now: i64,
    ) -> Result<Option<(FactorId, String)>> {
        let newest: Option<(String, String, Option<i64>, i64)> = self
            .tx
            .query_row(
                "SELECT channel, address, used_at, expires_at FROM sent_codes
                 WHERE user = ?1 AND purpose = ?2 ORDER BY sent_at DESC, id DESC LIMIT 1",
                params![user, purpose.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        Ok(newest.and_then(|(ch, address, used, expires)| {
            let ch = ch.parse::<FactorId>().ok()?;
            (used.is_none() && expires > now).then_some((ch, address))
        }))
    }
}
