//! WebAuthn credentials: the serialized credential (public key, id,
//! counter) per user and name. Nothing here is secret, but integrity
//! matters, so it lives in the root-only store like everything else.

use super::{Result, SqliteStore, SqliteTx};
use crate::store::types::*;
use rusqlite::{Connection, params};

fn credentials(conn: &Connection, user: &str) -> Result<Vec<StoredCredential>> {
    let mut stmt = conn.prepare(
        "SELECT name, credential, created_at, last_used_at FROM webauthn_credentials
         WHERE user = ?1 ORDER BY created_at, name",
    )?;
    let rows = stmt
        .query_map([user], |r| {
            Ok(StoredCredential {
                name: r.get(0)?,
                credential: r.get(1)?,
                created_at: r.get(2)?,
                last_used_at: r.get(3)?,
            })
        })?
        .collect::<std::result::Result<_, _>>()?;
    Ok(rows)
}

/// The newest warnings first, at most 20 (the log has them all).
pub(super) fn key_warnings(conn: &Connection, user: &str) -> Result<Vec<KeyWarning>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key_name, at, stored, presented FROM key_warnings
         WHERE user = ?1 ORDER BY at DESC, id DESC LIMIT 20",
    )?;
    let rows = stmt
        .query_map([user], |r| {
            Ok(KeyWarning {
                key: r.get(0)?,
                at: r.get(1)?,
                stored: r.get::<_, i64>(2)?.clamp(0, u32::MAX.into()) as u32,
                presented: r.get::<_, i64>(3)?.clamp(0, u32::MAX.into()) as u32,
            })
        })?
        .collect::<std::result::Result<_, _>>()?;
    Ok(rows)
}

impl SqliteStore {
    pub fn webauthn_credentials(&self, user: &str) -> Result<Vec<StoredCredential>> {
        credentials(&self.conn, user)
    }
}

impl SqliteTx<'_> {
    /// The credentials as they are inside this write transaction (a login
    /// compares counters with these, not with a copy taken earlier).
    pub fn webauthn_credentials(&self, user: &str) -> Result<Vec<StoredCredential>> {
        credentials(&self.tx, user)
    }

    /// Records a counter that went back (a possible clone).
    pub fn add_key_warning(&self, user: &str, w: &KeyWarning) -> Result<()> {
        self.tx.execute(
            "INSERT INTO key_warnings (user, key_name, stored, presented, at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![user, w.key, w.stored, w.presented, w.at],
        )?;
        Ok(())
    }

    /// Adds a credential; false if the user already has one by that name.
    pub fn add_webauthn(&self, user: &str, name: &str, credential: &str, now: i64) -> Result<bool> {
        self.ensure_user(user, now)?;
        Ok(self.tx.execute(
            "INSERT OR IGNORE INTO webauthn_credentials (user, name, credential, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![user, name, credential, now],
        )? == 1)
    }

    /// Stores the credential back after a login (its counter moved).
    pub fn update_webauthn(
        &self,
        user: &str,
        name: &str,
        credential: &str,
        now: i64,
    ) -> Result<()> {
        self.tx.execute(
            "UPDATE webauthn_credentials SET credential = ?3, last_used_at = ?4
             WHERE user = ?1 AND name = ?2",
            params![user, name, credential, now],
        )?;
        Ok(())
    }

    pub fn remove_webauthn(&self, user: &str, name: &str) -> Result<bool> {
        Ok(self.tx.execute(
            "DELETE FROM webauthn_credentials WHERE user = ?1 AND name = ?2",
            params![user, name],
        )? > 0)
    }
}

/// Ceremonies in the store are for the fleet's shared database: on one
/// host 2fad keeps them in memory (faster, and no schema change that an
/// older release would refuse), so SQLite refuses every such operation.
fn no_shared_ceremonies() -> crate::store::StoreError {
    crate::store::StoreError::Other(
        "WebAuthn ceremonies are kept in the store only in fleet mode (store = \"postgres\")"
            .into(),
    )
}

impl SqliteTx<'_> {
    // WebAuthn ceremonies in the shared store: not on SQLite.
    pub fn insert_ceremony(
        &self,
        _token_hash: &[u8; 32],
        _c: &StoredCeremony,
        _max_open: u32,
        _now: i64,
    ) -> Result<bool> {
        Err(no_shared_ceremonies())
    }

    pub fn ceremony(&self, _token_hash: &[u8; 32]) -> Result<Option<StoredCeremony>> {
        Err(no_shared_ceremonies())
    }

    pub fn claim_ceremony(
        &self,
        _token_hash: &[u8; 32],
        _now: i64,
    ) -> Result<Option<StoredCeremony>> {
        Err(no_shared_ceremonies())
    }

    pub fn finish_ceremony(
        &self,
        _token_hash: &[u8; 32],
        _approved: bool,
        _result: &str,
        _now: i64,
    ) -> Result<bool> {
        Err(no_shared_ceremonies())
    }

    pub fn delete_ceremony(&self, _token_hash: &[u8; 32]) -> Result<bool> {
        Err(no_shared_ceremonies())
    }
}

/// Profile-page links and sessions in the store are for the fleet's
/// shared database: on one host 2fad keeps them in memory.
fn no_shared_profiles() -> crate::store::StoreError {
    crate::store::StoreError::Other(
        "profile links and sessions are kept in the store only in fleet mode (store = \"postgres\")"
            .into(),
    )
}

impl SqliteTx<'_> {
    // Profile-page links and sessions in the shared store: not on SQLite.
    #[allow(clippy::too_many_arguments)]
    pub fn insert_profile_link(
        &self,
        _link_hash: &[u8; 32],
        _user: &str,
        _by_uid: u32,
        _expires_at: i64,
        _per_user: u32,
        _max_all: u32,
        _now: i64,
    ) -> Result<crate::store::ProfileQuota> {
        Err(no_shared_profiles())
    }

    pub fn profile_link(
        &self,
        _link_hash: &[u8; 32],
    ) -> Result<Option<crate::store::StoredProfileLink>> {
        Err(no_shared_profiles())
    }

    pub fn open_profile_link(
        &self,
        _link_hash: &[u8; 32],
        _session_hash: &[u8; 32],
        _now: i64,
        _until: i64,
    ) -> Result<crate::store::ProfileOpen> {
        Err(no_shared_profiles())
    }

    pub fn insert_profile_session(
        &self,
        _session_hash: &[u8; 32],
        _s: &crate::store::StoredProfileSession,
    ) -> Result<()> {
        Err(no_shared_profiles())
    }

    pub fn lock_profile_session(
        &self,
        _session_hash: &[u8; 32],
    ) -> Result<Option<crate::store::StoredProfileSession>> {
        Err(no_shared_profiles())
    }

    pub fn update_profile_session(&self, _session_hash: &[u8; 32], _state: &[u8]) -> Result<bool> {
        Err(no_shared_profiles())
    }

    pub fn end_profile_session(
        &self,
        _session_hash: &[u8; 32],
        _ended: bool,
        _now: i64,
    ) -> Result<bool> {
        Err(no_shared_profiles())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure_fs::Trust;

    #[test]
    fn key_warnings_survive_an_upgrade_and_show_newest_first() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s/state.db");
        SqliteStore::open_or_create(&path, 1000, Trust::test_runner()).unwrap();
        {
            // A v5 store, from before warnings were kept.
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(
                "DROP TABLE logins; DROP TABLE meta; DROP TABLE key_warnings; ALTER TABLE backup_codes DROP COLUMN inner_gen; ALTER TABLE questions DROP COLUMN inner_gen; ALTER TABLE otp_tokens DROP COLUMN key_gen; ALTER TABLE backup_codes DROP COLUMN key_gen; ALTER TABLE questions DROP COLUMN key_gen;
                 PRAGMA user_version = 5;",
            )
            .unwrap();
        }
        let mut s = SqliteStore::open_existing(&path, 1000, Trust::test_runner()).unwrap();
        let tx = s.write().unwrap();
        tx.add_webauthn("u", "k", "{}", 1).unwrap();
        for (at, presented) in [(10, 3), (20, 1)] {
            let w = KeyWarning {
                key: "k".into(),
                at,
                stored: 5,
                presented,
            };
            tx.add_key_warning("u", &w).unwrap();
        }
        tx.commit().unwrap();
        let w = s.status("u").unwrap().key_warnings;
        assert_eq!(w.iter().map(|w| w.at).collect::<Vec<_>>(), [20, 10]);
        assert_eq!((w[0].stored, w[0].presented), (5, 1));
        // Reset forgets the user, warnings included.
        let tx = s.write().unwrap();
        tx.reset_user("u").unwrap();
        tx.commit().unwrap();
        assert!(s.status("u").unwrap().key_warnings.is_empty());
    }
}
