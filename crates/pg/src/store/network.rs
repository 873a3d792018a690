//! Contacts, Duo, the default factor and sent codes on the fleet
//! database. A sent code is valid only in the scope that sent it
//! ([`SentScope`], stored in the `host` column): a login code only on
//! the host that sent it (the prompt waiting for it is there, and an
//! intercepted SMS must not open every host), a code 2fad sent for its
//! page on every 2fad of the same public_url (`2fad:<origin>`, never a
//! host id). The send limit counts the whole fleet, so it cannot be
//! multiplied by the number of hosts.

use super::{Get, PgTx};
use crate::wire::Value;
use p2fa_core::crypto;
use p2fa_core::factor::FactorId;
use p2fa_core::store::{Purpose, Result, SentCheck, SentScope};

/// Sent codes are deleted a day after sending (the rate limit looks back
/// one hour; the rest is for the admin's eyes).
const KEEP_SENT_SECONDS: i64 = 86_400;

impl PgTx<'_> {
    pub(crate) fn set_contact(
        &self,
        user: &str,
        ch: FactorId,
        address: &str,
        now: i64,
    ) -> Result<()> {
        self.ensure_user(user, now)?;
        let mut db = self.db_for(user)?;
        let host = db.host;
        db.exec(
            "INSERT INTO p2fa.contacts (username, channel, address, created_at, created_host)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (username, channel) DO UPDATE SET address = $3, created_at = $4,
               created_host = $5",
            &[
                Value::Text(user),
                Value::Text(ch.as_str()),
                Value::Text(address),
                Value::Int8(now),
                Value::Text(host),
            ],
        )?;
        Ok(())
    }

    pub(crate) fn remove_contact(&self, user: &str, ch: FactorId) -> Result<bool> {
        Ok(self.db_for(user)?.exec(
            "DELETE FROM p2fa.contacts WHERE username = $1 AND channel = $2",
            &[Value::Text(user), Value::Text(ch.as_str())],
        )? > 0)
    }

    pub(crate) fn set_duo(&self, user: &str, now: i64) -> Result<()> {
        self.ensure_user(user, now)?;
        let mut db = self.db_for(user)?;
        let host = db.host;
        db.exec(
            "INSERT INTO p2fa.duo_users (username, created_at, created_host) VALUES ($1, $2, $3)
             ON CONFLICT (username) DO NOTHING",
            &[Value::Text(user), Value::Int8(now), Value::Text(host)],
        )?;
        Ok(())
    }

    pub(crate) fn remove_duo(&self, user: &str) -> Result<bool> {
        Ok(self.db_for(user)?.exec(
            "DELETE FROM p2fa.duo_users WHERE username = $1",
            &[Value::Text(user)],
        )? > 0)
    }

    pub(crate) fn set_default_factor(
        &self,
        user: &str,
        factor: Option<&str>,
        now: i64,
    ) -> Result<()> {
        self.ensure_user(user, now)?;
        self.db_for(user)?.exec(
            "UPDATE p2fa.users SET default_factor = $2 WHERE name = $1",
            &[Value::Text(user), factor.map_or(Value::Null, Value::Text)],
        )?;
        Ok(())
    }

    pub(crate) fn sends_last_hour(&self, user: &str, ch: FactorId, now: i64) -> Result<u32> {
        let n = self
            .db_for(user)?
            .one(
                "SELECT count(*) FROM p2fa.sent_codes
                 WHERE username = $1 AND channel = $2 AND sent_at > $3",
                &[
                    Value::Text(user),
                    Value::Text(ch.as_str()),
                    Value::Int8(now - 3600),
                ],
            )?
            .i(0)?;
        Ok(n.clamp(0, u32::MAX.into()) as u32)
    }

    pub(crate) fn live_code_sent_at(
        &self,
        user: &str,
        ch: FactorId,
        purpose: Purpose,
        now: i64,
        max_attempts: u32,
    ) -> Result<Option<i64>> {
        let mut db = self.db_for(user)?;
        let host = db.host;
        db.one(
            "SELECT max(sent_at) FROM p2fa.sent_codes
             WHERE username = $1 AND channel = $2 AND purpose = $3 AND host = $4
               AND used_at IS NULL AND expires_at > $5 AND attempts < $6",
            &[
                Value::Text(user),
                Value::Text(ch.as_str()),
                Value::Text(purpose.as_str()),
                Value::Text(host),
                Value::Int8(now),
                Value::Int8(max_attempts.into()),
            ],
        )?
        .oi(0)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert_sent_code(
        &self,
        user: &str,
        ch: FactorId,
        purpose: Purpose,
        address: &str,
        hash: &[u8; 32],
        now: i64,
        ttl: i64,
        scope: &SentScope,
    ) -> Result<i64> {
        self.ensure_user(user, now)?;
        let mut db = self.db_for(user)?;
        let host = scope.web_name().unwrap_or(db.host);
        db.exec(
            "DELETE FROM p2fa.sent_codes WHERE sent_at < $1",
            &[Value::Int8(now - KEEP_SENT_SECONDS)],
        )?;
        db.one(
            "INSERT INTO p2fa.sent_codes (username, host, channel, purpose, address, hash,
               sent_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                Value::Text(user),
                Value::Text(host),
                Value::Text(ch.as_str()),
                Value::Text(purpose.as_str()),
                Value::Text(address),
                Value::Bytea(hash.as_slice()),
                Value::Int8(now),
                Value::Int8(now.saturating_add(ttl)),
            ],
        )?
        .i(0)
    }

    pub(crate) fn delete_sent_code(&self, id: i64) -> Result<()> {
        self.db()?.exec(
            "DELETE FROM p2fa.sent_codes WHERE id = $1",
            &[Value::Int8(id)],
        )?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn check_sent_code(
        &self,
        user: &str,
        ch: FactorId,
        purpose: Purpose,
        address: Option<&str>,
        hash: &[u8; 32],
        now: i64,
        max_attempts: u32,
        scope: &SentScope,
    ) -> Result<SentCheck> {
        let mut db = self.db_for(user)?;
        let host = scope.web_name().unwrap_or(db.host);
        let rows = db.rows(
            "SELECT id, hash, address FROM p2fa.sent_codes
             WHERE username = $1 AND channel = $2 AND purpose = $3 AND host = $4
               AND used_at IS NULL AND expires_at > $5 AND attempts < $6",
            &[
                Value::Text(user),
                Value::Text(ch.as_str()),
                Value::Text(purpose.as_str()),
                Value::Text(host),
                Value::Int8(now),
                Value::Int8(max_attempts.into()),
            ],
        )?;
        let mut live = Vec::new();
        for r in &rows {
            let a = r.s(2)?;
            if address.is_none_or(|want| want == a) {
                live.push((r.i(0)?, r.b(1)?));
            }
        }
        if live.is_empty() {
            return Ok(SentCheck::NoLiveCode);
        }
        let mut hit = false;
        for (_, stored) in &live {
            hit |= crypto::ct_eq(stored, hash);
        }
        for (id, _) in &live {
            if hit {
                db.exec(
                    "UPDATE p2fa.sent_codes SET used_at = $2 WHERE id = $1",
                    &[Value::Int8(*id), Value::Int8(now)],
                )?;
            } else {
                db.exec(
                    "UPDATE p2fa.sent_codes SET attempts = attempts + 1 WHERE id = $1",
                    &[Value::Int8(*id)],
                )?;
            }
        }
        Ok(if hit {
            SentCheck::Accepted
        } else {
            SentCheck::Wrong
        })
    }

    pub(crate) fn newest_sent_code(
        &self,
        user: &str,
        purpose: Purpose,
        scope: &SentScope,
        now: i64,
    ) -> Result<Option<(FactorId, String)>> {
        let mut db = self.db_for(user)?;
        let host = scope.web_name().unwrap_or(db.host);
        let Some(r) = db.opt(
            "SELECT channel, address, used_at IS NULL AND expires_at > $4 FROM p2fa.sent_codes
             WHERE username = $1 AND purpose = $2 AND host = $3
             ORDER BY sent_at DESC, id DESC LIMIT 1",
            &[
                Value::Text(user),
                Value::Text(purpose.as_str()),
                Value::Text(host),
                Value::Int8(now),
            ],
        )?
        else {
            return Ok(None);
        };
        let Ok(ch) = r.s(0)?.parse::<FactorId>() else {
            return Ok(None);
        };
        Ok(if r.flag(2)? {
            Some((ch, r.s(1)?))
        } else {
            None
        })
    }
}
