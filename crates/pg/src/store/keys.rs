//! WebAuthn credentials, local FIDO2 keys, key warnings and the `meta`
//! table on the fleet database. Key pinning (`meta`) takes a fleet-wide
//! lock, so two hosts cannot pin two different keys at once.

use super::{Db, Get, PgStore, PgTx};
use crate::schema::{LOCK_FLEET, LOCK_FLEET_META};
use crate::wire::{Row, Value};
use p2fa_core::store::{KeyWarning, LocalKey, Result, SealedSecret, StoreError, StoredCredential};

pub(super) fn key_warnings(db: &mut Db<'_>, user: &str) -> Result<Vec<KeyWarning>> {
    db.rows(
        "SELECT key_name, at, stored, presented FROM p2fa.key_warnings
         WHERE username = $1 ORDER BY at DESC, id DESC LIMIT 20",
        &[Value::Text(user)],
    )?
    .iter()
    .map(|r| {
        Ok(KeyWarning {
            key: r.s(0)?,
            at: r.i(1)?,
            stored: r.i(2)?.clamp(0, u32::MAX.into()) as u32,
            presented: r.i(3)?.clamp(0, u32::MAX.into()) as u32,
        })
    })
    .collect()
}

fn credentials(db: &mut Db<'_>, user: &str) -> Result<Vec<StoredCredential>> {
    db.rows(
        "SELECT name, credential, created_at, last_used_at FROM p2fa.webauthn_credentials
         WHERE username = $1 ORDER BY created_at, name",
        &[Value::Text(user)],
    )?
    .iter()
    .map(|r| {
        Ok(StoredCredential {
            name: r.s(0)?,
            credential: r.s(1)?,
            created_at: r.i(2)?,
            last_used_at: r.oi(3)?,
        })
    })
    .collect()
}

const LOCAL_COLUMNS: &str =
    "name, credential_id, public_key, rp_id, counter, created_at, last_used_at";

fn local_key_row(r: &Row) -> Result<LocalKey> {
    let counter = r.i(4)?;
    Ok(LocalKey {
        name: r.s(0)?,
        credential_id: r.b(1)?,
        public_key: r.b(2)?,
        rp_id: r.s(3)?,
        // Never read an out-of-range counter as "0, does not count".
        counter: u32::try_from(counter)
            .map_err(|_| StoreError::Corrupt(format!("local key counter {counter}")))?,
        created_at: r.i(5)?,
        last_used_at: r.oi(6)?,
    })
}

fn key_names(db: &mut Db<'_>, user: &str) -> Result<Vec<String>> {
    db.rows(
        "SELECT name FROM p2fa.webauthn_credentials WHERE username = $1
         UNION SELECT name FROM p2fa.local_keys WHERE username = $1 ORDER BY 1",
        &[Value::Text(user)],
    )?
    .iter()
    .map(|r| r.s(0))
    .collect()
}

fn owner(db: &mut Db<'_>, credential_id: &[u8]) -> Result<Option<(String, String)>> {
    db.opt(
        "SELECT username, name FROM p2fa.local_keys WHERE credential_id = $1",
        &[Value::Bytea(credential_id)],
    )?
    .map(|r| Ok((r.s(0)?, r.s(1)?)))
    .transpose()
}

fn meta(db: &mut Db<'_>, name: &str) -> Result<Option<Vec<u8>>> {
    db.opt(
        "SELECT value FROM p2fa.meta WHERE name = $1",
        &[Value::Text(name)],
    )?
    .map(|r| r.b(0))
    .transpose()
}

fn sealed(db: &mut Db<'_>) -> Result<Vec<SealedSecret>> {
    db.rows(
        "SELECT username, secret, created_at FROM p2fa.otp_tokens",
        &[],
    )?
    .iter()
    .map(|r| {
        Ok(SealedSecret {
            user: r.s(0)?,
            sealed: r.b(1)?,
            created_at: r.i(2)?,
        })
    })
    .collect()
}

impl PgStore {
    pub(crate) fn webauthn_credentials(&self, user: &str) -> Result<Vec<StoredCredential>> {
        credentials(&mut self.db()?, user)
    }

    pub(crate) fn local_keys(&self, user: &str) -> Result<Vec<LocalKey>> {
        self.db()?
            .rows(
                &format!(
                    "SELECT {LOCAL_COLUMNS} FROM p2fa.local_keys WHERE username = $1
                     ORDER BY created_at, name"
                ),
                &[Value::Text(user)],
            )?
            .iter()
            .map(local_key_row)
            .collect()
    }

    pub(crate) fn key_names(&self, user: &str) -> Result<Vec<String>> {
        key_names(&mut self.db()?, user)
    }

    pub(crate) fn local_key_owner(&self, credential_id: &[u8]) -> Result<Option<(String, String)>> {
        owner(&mut self.db()?, credential_id)
    }

    pub(crate) fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        meta(&mut self.db()?, name)
    }

    pub(crate) fn sealed_secrets(&self) -> Result<Vec<SealedSecret>> {
        sealed(&mut self.db()?)
    }

    pub(crate) fn has_keyed_items(&self) -> Result<bool> {
        self.db()?
            .one(
                "SELECT EXISTS (SELECT 1 FROM p2fa.otp_tokens)
                     OR EXISTS (SELECT 1 FROM p2fa.backup_codes)
                     OR EXISTS (SELECT 1 FROM p2fa.questions)
                     OR EXISTS (SELECT 1 FROM p2fa.sent_codes)",
                &[],
            )?
            .flag(0)
    }
}

impl PgTx<'_> {
    fn meta_lock(&self) -> Result<Db<'_>> {
        let mut db = self.db()?;
        db.exec(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[Value::Int4(LOCK_FLEET), Value::Int4(LOCK_FLEET_META)],
        )?;
        Ok(db)
    }

    pub(crate) fn webauthn_credentials(&self, user: &str) -> Result<Vec<StoredCredential>> {
        credentials(&mut self.db_for(user)?, user)
    }

    pub(crate) fn key_names(&self, user: &str) -> Result<Vec<String>> {
        key_names(&mut self.db_for(user)?, user)
    }

    pub(crate) fn local_key_owner(&self, credential_id: &[u8]) -> Result<Option<(String, String)>> {
        owner(&mut self.db()?, credential_id)
    }

    pub(crate) fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        meta(&mut self.meta_lock()?, name)
    }

    pub(crate) fn set_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        self.meta_lock()?.exec(
            "INSERT INTO p2fa.meta (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = $2",
            &[Value::Text(name), Value::Bytea(value)],
        )?;
        Ok(())
    }

    pub(crate) fn sealed_secrets(&self) -> Result<Vec<SealedSecret>> {
        sealed(&mut self.db()?)
    }

    pub(crate) fn oldest_hashed_item(&self) -> Result<Option<i64>> {
        self.db()?
            .one(
                "SELECT min(t) FROM (
                   SELECT min(created_at) AS t FROM p2fa.backup_codes
                   UNION ALL SELECT min(created_at) FROM p2fa.questions
                   UNION ALL SELECT min(sent_at) FROM p2fa.sent_codes) AS x",
                &[],
            )?
            .oi(0)
    }

    pub(crate) fn add_key_warning(&self, user: &str, w: &KeyWarning) -> Result<()> {
        let mut db = self.db_for(user)?;
        let host = db.host;
        db.exec(
            "INSERT INTO p2fa.key_warnings (username, key_name, stored, presented, at, host)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                Value::Text(user),
                Value::Text(&w.key),
                Value::Int8(w.stored.into()),
                Value::Int8(w.presented.into()),
                Value::Int8(w.at),
                Value::Text(host),
            ],
        )?;
        Ok(())
    }

    pub(crate) fn add_webauthn(
        &self,
        user: &str,
        name: &str,
        credential: &str,
        now: i64,
    ) -> Result<bool> {
        self.ensure_user(user, now)?;
        let mut db = self.db_for(user)?;
        let host = db.host;
        Ok(db.exec(
            "INSERT INTO p2fa.webauthn_credentials (username, name, credential, created_at,
               created_host) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (username, name) DO NOTHING",
            &[
                Value::Text(user),
                Value::Text(name),
                Value::Text(credential),
                Value::Int8(now),
                Value::Text(host),
            ],
        )? == 1)
    }

    pub(crate) fn update_webauthn(
        &self,
        user: &str,
        name: &str,
        credential: &str,
        now: i64,
    ) -> Result<()> {
        let mut db = self.db_for(user)?;
        let host = db.host;
        db.exec(
            "UPDATE p2fa.webauthn_credentials SET credential = $3, last_used_at = $4,
               last_used_host = $5 WHERE username = $1 AND name = $2",
            &[
                Value::Text(user),
                Value::Text(name),
                Value::Text(credential),
                Value::Int8(now),
                Value::Text(host),
            ],
        )?;
        Ok(())
    }

    pub(crate) fn remove_webauthn(&self, user: &str, name: &str) -> Result<bool> {
        Ok(self.db_for(user)?.exec(
            "DELETE FROM p2fa.webauthn_credentials WHERE username = $1 AND name = $2",
            &[Value::Text(user), Value::Text(name)],
        )? > 0)
    }

    pub(crate) fn add_local_key(&self, user: &str, key: &LocalKey, now: i64) -> Result<bool> {
        self.ensure_user(user, now)?;
        let mut db = self.db_for(user)?;
        let host = db.host;
        let taken = db
            .one(
                "SELECT EXISTS (SELECT 1 FROM p2fa.webauthn_credentials
                                WHERE username = $1 AND name = $2)
                     OR EXISTS (SELECT 1 FROM p2fa.local_keys
                                WHERE (username = $1 AND name = $2) OR credential_id = $3)",
                &[
                    Value::Text(user),
                    Value::Text(&key.name),
                    Value::Bytea(&key.credential_id),
                ],
            )?
            .flag(0)?;
        if taken {
            return Ok(false);
        }
        // ON CONFLICT: another user's key with this credential id,
        // committed meanwhile (their lock is not ours).
        Ok(db.exec(
            "INSERT INTO p2fa.local_keys (username, name, credential_id, public_key, rp_id,
               counter, created_at, created_host) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT DO NOTHING",
            &[
                Value::Text(user),
                Value::Text(&key.name),
                Value::Bytea(&key.credential_id),
                Value::Bytea(&key.public_key),
                Value::Text(&key.rp_id),
                Value::Int8(key.counter.into()),
                Value::Int8(now),
                Value::Text(host),
            ],
        )? == 1)
    }

    pub(crate) fn local_key(&self, user: &str, credential_id: &[u8]) -> Result<Option<LocalKey>> {
        self.db_for(user)?
            .opt(
                &format!(
                    "SELECT {LOCAL_COLUMNS} FROM p2fa.local_keys
                     WHERE username = $1 AND credential_id = $2"
                ),
                &[Value::Text(user), Value::Bytea(credential_id)],
            )?
            .map(|r| local_key_row(&r))
            .transpose()
    }

    pub(crate) fn use_local_key(
        &self,
        user: &str,
        credential_id: &[u8],
        counter: u32,
        now: i64,
    ) -> Result<()> {
        let mut db = self.db_for(user)?;
        let host = db.host;
        db.exec(
            "UPDATE p2fa.local_keys SET counter = $3, last_used_at = $4, last_used_host = $5
             WHERE username = $1 AND credential_id = $2",
            &[
                Value::Text(user),
                Value::Bytea(credential_id),
                Value::Int8(counter.into()),
                Value::Int8(now),
                Value::Text(host),
            ],
        )?;
        Ok(())
    }

    pub(crate) fn remove_local_key(&self, user: &str, name: &str) -> Result<bool> {
        Ok(self.db_for(user)?.exec(
            "DELETE FROM p2fa.local_keys WHERE username = $1 AND name = $2",
            &[Value::Text(user), Value::Text(name)],
        )? > 0)
    }
}
