//! Profile-page links and sessions on the fleet database (migration 4),
//! so that any 2fad of the fleet serves every request of a profile page.
//! Rows are keyed by SHA-256 hashes of the link token and the session
//! id; a session's secrets are in `state`, sealed by 2fad with the fleet
//! key (opaque here). Opening a link is one conditional UPDATE
//! (`session_hash IS NULL`), so of two openings one wins and the other
//! ends the winner's session; acting on a session locks its row
//! (`FOR UPDATE`) until the transaction ends.

use super::{Get, PgTx};
use crate::wire::{Row, Value};
use p2fa_core::store::{
    ProfileOpen, ProfileQuota, Result, StoredProfileLink, StoredProfileSession,
};

/// How long an ended session's marker outlives its natural end (the page
/// says "ended" or "expired" rather than "no session").
const MARKER_SECONDS: i64 = 3600;

fn uid(r: &Row, idx: usize) -> Result<u32> {
    Ok(u32::try_from(r.i(idx)?).unwrap_or(u32::MAX))
}

impl PgTx<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert_profile_link(
        &self,
        link_hash: &[u8; 32],
        user: &str,
        by_uid: u32,
        expires_at: i64,
        per_user: u32,
        max_all: u32,
        now: i64,
    ) -> Result<ProfileQuota> {
        // The user's lock: the quota's count and the insert are one step
        // for every 2fad of the fleet.
        let mut db = self.db_for(user)?;
        db.pipeline(&[
            (
                "DELETE FROM p2fa.profile_links WHERE expires_at <= $1",
                &[Value::Int8(now)],
            ),
            (
                "DELETE FROM p2fa.profile_sessions WHERE keep_until <= $1",
                &[Value::Int8(now)],
            ),
            // Expired sessions keep only their marker: no secret stays.
            (
                "UPDATE p2fa.profile_sessions SET state = ''::bytea
                 WHERE expires_at <= $1 AND length(state) > 0",
                &[Value::Int8(now)],
            ),
        ])?;
        let r = db.one(
            "SELECT (SELECT count(*) FROM p2fa.profile_links WHERE username = $1
                       AND session_hash IS NULL AND expires_at > $2)
                  + (SELECT count(*) FROM p2fa.profile_sessions WHERE username = $1
                       AND ended IS NULL AND expires_at > $2),
                    (SELECT count(*) FROM p2fa.profile_links WHERE session_hash IS NULL
                       AND expires_at > $2)
                  + (SELECT count(*) FROM p2fa.profile_sessions WHERE ended IS NULL
                       AND expires_at > $2)",
            &[Value::Text(user), Value::Int8(now)],
        )?;
        if r.i(0)? >= i64::from(per_user) {
            return Ok(ProfileQuota::UserFull);
        }
        if r.i(1)? >= i64::from(max_all) {
            return Ok(ProfileQuota::AllFull);
        }
        let host = db.host;
        db.exec(
            "INSERT INTO p2fa.profile_links (link_hash, username, by_uid, host, created_at,
               expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                Value::Bytea(link_hash),
                Value::Text(user),
                Value::Int8(by_uid.into()),
                Value::Text(host),
                Value::Int8(now),
                Value::Int8(expires_at),
            ],
        )?;
        Ok(ProfileQuota::Added)
    }

    pub(crate) fn profile_link(&self, link_hash: &[u8; 32]) -> Result<Option<StoredProfileLink>> {
        let Some(r) = self.db()?.opt(
            "SELECT username, by_uid, expires_at, session_hash FROM p2fa.profile_links
             WHERE link_hash = $1",
            &[Value::Bytea(link_hash)],
        )?
        else {
            return Ok(None);
        };
        Ok(Some(StoredProfileLink {
            user: r.s(0)?,
            by_uid: uid(&r, 1)?,
            expires_at: r.i(2)?,
            session_hash: r.opt_bytes(3).map_err(super::store_error)?,
        }))
    }

    pub(crate) fn open_profile_link(
        &self,
        link_hash: &[u8; 32],
        session_hash: &[u8; 32],
        now: i64,
        until: i64,
    ) -> Result<ProfileOpen> {
        let mut db = self.db()?;
        let host = db.host;
        // One conditional update: a concurrent opening waits for this
        // row, then finds it opened.
        if let Some(r) = db.opt(
            "UPDATE p2fa.profile_links SET session_hash = $2, expires_at = $4, opened_host = $5
             WHERE link_hash = $1 AND session_hash IS NULL AND expires_at > $3
             RETURNING username, by_uid",
            &[
                Value::Bytea(link_hash),
                Value::Bytea(session_hash),
                Value::Int8(now),
                Value::Int8(until),
                Value::Text(host),
            ],
        )? {
            return Ok(ProfileOpen::Opened {
                user: r.s(0)?,
                by_uid: uid(&r, 1)?,
            });
        }
        let Some(r) = db.opt(
            "DELETE FROM p2fa.profile_links WHERE link_hash = $1
             RETURNING session_hash, expires_at",
            &[Value::Bytea(link_hash)],
        )?
        else {
            return Ok(ProfileOpen::Expired);
        };
        let opened = r.opt_bytes(0).map_err(super::store_error)?;
        let live = r.i(1)? > now;
        drop(db);
        // An opened link lives as long as its session: expired, it has
        // nothing left to end (the session says "expired", as in memory).
        match opened {
            Some(sh) if live => {
                let sh: [u8; 32] = sh.as_slice().try_into().unwrap_or([0; 32]);
                self.end_profile_session(&sh, true, now)?;
                Ok(ProfileOpen::Reused)
            }
            _ => Ok(ProfileOpen::Expired),
        }
    }

    pub(crate) fn insert_profile_session(
        &self,
        session_hash: &[u8; 32],
        s: &StoredProfileSession,
    ) -> Result<()> {
        let mut db = self.db()?;
        let host = db.host;
        db.exec(
            "INSERT INTO p2fa.profile_sessions (session_hash, link_hash, username, by_uid, peer,
               host, created_at, expires_at, keep_until, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                Value::Bytea(session_hash),
                Value::Bytea(&s.link_hash),
                Value::Text(&s.user),
                Value::Int8(s.by_uid.into()),
                Value::Text(&s.peer),
                Value::Text(host),
                Value::Int8(s.created_at),
                Value::Int8(s.expires_at),
                Value::Int8(s.expires_at + MARKER_SECONDS),
                Value::Bytea(&s.state),
            ],
        )?;
        Ok(())
    }

    pub(crate) fn lock_profile_session(
        &self,
        session_hash: &[u8; 32],
    ) -> Result<Option<StoredProfileSession>> {
        let Some(r) = self.db()?.opt(
            "SELECT link_hash, username, by_uid, peer, created_at, expires_at, ended, state
             FROM p2fa.profile_sessions WHERE session_hash = $1 FOR UPDATE",
            &[Value::Bytea(session_hash)],
        )?
        else {
            return Ok(None);
        };
        Ok(Some(StoredProfileSession {
            link_hash: r.b(0)?,
            user: r.s(1)?,
            by_uid: uid(&r, 2)?,
            peer: r.s(3)?,
            created_at: r.i(4)?,
            expires_at: r.i(5)?,
            ended: r.os(6)?,
            state: r.b(7)?,
        }))
    }

    pub(crate) fn update_profile_session(
        &self,
        session_hash: &[u8; 32],
        state: &[u8],
    ) -> Result<bool> {
        let mut db = self.db()?;
        let host = db.host;
        Ok(db.exec(
            "UPDATE p2fa.profile_sessions SET state = $2, updated_host = $3
             WHERE session_hash = $1 AND ended IS NULL",
            &[
                Value::Bytea(session_hash),
                Value::Bytea(state),
                Value::Text(host),
            ],
        )? == 1)
    }

    pub(crate) fn end_profile_session(
        &self,
        session_hash: &[u8; 32],
        ended: bool,
        now: i64,
    ) -> Result<bool> {
        let mut db = self.db()?;
        let link = if ended {
            db.opt(
                "UPDATE p2fa.profile_sessions SET ended = 'ended', state = ''::bytea,
                   keep_until = greatest(expires_at, $2) + $3
                 WHERE session_hash = $1 AND ended IS NULL RETURNING link_hash",
                &[
                    Value::Bytea(session_hash),
                    Value::Int8(now),
                    Value::Int8(MARKER_SECONDS),
                ],
            )?
        } else {
            db.opt(
                "DELETE FROM p2fa.profile_sessions WHERE session_hash = $1 RETURNING link_hash",
                &[Value::Bytea(session_hash)],
            )?
        };
        let Some(r) = link else {
            return Ok(false);
        };
        db.exec(
            "DELETE FROM p2fa.profile_links WHERE link_hash = $1",
            &[Value::Bytea(&r.b(0)?)],
        )?;
        Ok(true)
    }
}
