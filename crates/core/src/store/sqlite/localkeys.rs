//! Local FIDO2 keys (used at the console through libfido2's tools): the
//! credential id, public key, relying party and signature counter per
//! user and name. Nothing here is secret; the counter's integrity is what
//! lets a cloned key be noticed, so it lives in the root-only store.

use super::{Result, SqliteStore, SqliteTx};
use crate::store::types::*;
use rusqlite::{Connection, OptionalExtension, params};

/// Counter of an out-of-range row: never trusted as "0 (does not count)".
fn counter(v: i64) -> rusqlite::Result<u32> {
    u32::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, v))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LocalKey> {
    Ok(LocalKey {
        name: r.get(0)?,
        credential_id: r.get(1)?,
        public_key: r.get(2)?,
        rp_id: r.get(3)?,
        counter: counter(r.get(4)?)?,
        created_at: r.get(5)?,
        last_used_at: r.get(6)?,
    })
}

const COLUMNS: &str = "name, credential_id, public_key, rp_id, counter, created_at, last_used_at";

fn read_local_keys(conn: &Connection, user: &str) -> Result<Vec<LocalKey>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM local_keys WHERE user = ?1 ORDER BY created_at, name"
    ))?;
    let keys = stmt
        .query_map([user], row)?
        .collect::<std::result::Result<_, _>>()?;
    Ok(keys)
}

fn read_key_names(conn: &Connection, user: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM webauthn_credentials WHERE user = ?1
         UNION SELECT name FROM local_keys WHERE user = ?1 ORDER BY 1",
    )?;
    let names = stmt
        .query_map([user], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    Ok(names)
}

fn read_owner(conn: &Connection, credential_id: &[u8]) -> Result<Option<(String, String)>> {
    Ok(conn
        .query_row(
            "SELECT user, name FROM local_keys WHERE credential_id = ?1",
            [credential_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

// What adding keys must know about the keys already stored, the same in a
// read-only look (a dry run) and inside the write transaction: a
// credential id is unique in the store, a name per user across both kinds
// of key.
impl SqliteStore {
    pub fn local_keys(&self, user: &str) -> Result<Vec<LocalKey>> {
        read_local_keys(&self.conn, user)
    }

    /// Every key name the user has, browser or local, sorted.
    pub fn key_names(&self, user: &str) -> Result<Vec<String>> {
        read_key_names(&self.conn, user)
    }

    /// `(user, name)` of the local key with this credential id.
    pub fn local_key_owner(&self, credential_id: &[u8]) -> Result<Option<(String, String)>> {
        read_owner(&self.conn, credential_id)
    }
}

impl SqliteTx<'_> {
    pub fn key_names(&self, user: &str) -> Result<Vec<String>> {
        read_key_names(&self.tx, user)
    }

    pub fn local_key_owner(&self, credential_id: &[u8]) -> Result<Option<(String, String)>> {
        read_owner(&self.tx, credential_id)
    }
}

impl SqliteTx<'_> {
    /// Adds a key; false if the user has a key (local or browser) by that
    /// name already, or the credential is stored already.
    pub fn add_local_key(&self, user: &str, key: &LocalKey, now: i64) -> Result<bool> {
        self.ensure_user(user, now)?;
        let taken: bool = self.tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM webauthn_credentials WHERE user = ?1 AND name = ?2)
                 OR EXISTS (SELECT 1 FROM local_keys WHERE (user = ?1 AND name = ?2) OR credential_id = ?3)",
            params![user, key.name, key.credential_id],
            |r| r.get(0),
        )?;
        if taken {
            return Ok(false);
        }
        self.tx.execute(
            "INSERT INTO local_keys (user, name, credential_id, public_key, rp_id, counter, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                user,
                key.name,
                key.credential_id,
                key.public_key,
                key.rp_id,
                i64::from(key.counter),
                now
            ],
        )?;
        Ok(true)
    }

    /// The key as stored now, inside this transaction (the counter check
    /// and update must see concurrent logins' updates).
    pub fn local_key(&self, user: &str, credential_id: &[u8]) -> Result<Option<LocalKey>> {
        Ok(self
            .tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM local_keys WHERE user = ?1 AND credential_id = ?2"),
                params![user, credential_id],
                row,
            )
            .optional()?)
    }

    /// Stores the counter of a verified assertion.
    pub fn use_local_key(
        &self,
        user: &str,
        credential_id: &[u8],
        counter: u32,
        now: i64,
    ) -> Result<()> {
        self.tx.execute(
            "UPDATE local_keys SET counter = ?3, last_used_at = ?4 WHERE user = ?1 AND credential_id = ?2",
            params![user, credential_id, i64::from(counter), now],
        )?;
        Ok(())
    }

    pub fn remove_local_key(&self, user: &str, name: &str) -> Result<bool> {
        Ok(self.tx.execute(
            "DELETE FROM local_keys WHERE user = ?1 AND name = ?2",
            params![user, name],
        )? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure_fs::Trust;

    use crate::store::suite::local_key as key;

    #[test]
    fn add_use_remove() {
        let d = tempfile::tempdir().unwrap();
        let mut s =
            SqliteStore::open_or_create(&d.path().join("s/state.db"), 1000, Trust::test_runner())
                .unwrap();
        let tx = s.write().unwrap();
        assert!(tx.add_local_key("root", &key("yk", 1), 100).unwrap());
        assert!(
            !tx.add_local_key("root", &key("yk", 2), 100).unwrap(),
            "same name"
        );
        assert!(
            !tx.add_local_key("root", &key("other", 1), 100).unwrap(),
            "same credential"
        );
        assert!(tx.add_webauthn("root", "browser", "{}", 100).unwrap());
        assert!(
            !tx.add_local_key("root", &key("browser", 3), 100).unwrap(),
            "browser key's name"
        );
        assert_eq!(
            tx.key_names("root").unwrap(),
            ["browser", "yk"],
            "both kinds"
        );
        assert_eq!(
            tx.local_key_owner(&[1; 48]).unwrap(),
            Some(("root".into(), "yk".into()))
        );
        assert_eq!(tx.local_key_owner(&[2; 48]).unwrap(), None);
        tx.use_local_key("root", &[1; 48], 9, 200).unwrap();
        assert_eq!(tx.local_key("root", &[1; 48]).unwrap().unwrap().counter, 9);
        assert_eq!(tx.local_key("someone", &[1; 48]).unwrap(), None);
        tx.commit().unwrap();
        let keys = s.local_keys("root").unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(
            (keys[0].counter, keys[0].created_at, keys[0].last_used_at),
            (9, 100, Some(200))
        );
        assert_eq!(s.user_state("root").unwrap().local_keys, 1);
        assert!(s.user_state("root").unwrap().has_factor());
        let tx = s.write().unwrap();
        assert!(tx.remove_local_key("root", "yk").unwrap());
        assert!(!tx.remove_local_key("root", "yk").unwrap());
        tx.commit().unwrap();
        assert!(s.local_keys("root").unwrap().is_empty());
    }

    /// A version-4 store (before local keys) opens and gains the table,
    /// keeping what it had.
    #[test]
    fn a_v4_store_upgrades() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s/state.db");
        SqliteStore::open_or_create(&path, 1000, Trust::test_runner()).unwrap();
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(
                "DROP TABLE logins; DROP TABLE meta; DROP TABLE key_warnings; DROP TABLE local_keys;
                 ALTER TABLE backup_codes DROP COLUMN inner_gen; ALTER TABLE questions DROP COLUMN inner_gen; ALTER TABLE otp_tokens DROP COLUMN key_gen;
                 ALTER TABLE backup_codes DROP COLUMN key_gen;
                 ALTER TABLE questions DROP COLUMN key_gen;
                 PRAGMA user_version = 4;
                 INSERT INTO users (name, created_at) VALUES ('root', 1);
                 INSERT INTO webauthn_credentials (user, name, credential, created_at)
                     VALUES ('root', 'browser', '{}', 1);",
            )
            .unwrap();
        }
        let mut s = SqliteStore::open_existing(&path, 1000, Trust::test_runner()).unwrap();
        let v: i64 = s
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, super::super::schema::current_version());
        assert_eq!(v, 10);
        assert_eq!(s.webauthn_credentials("root").unwrap().len(), 1);
        let tx = s.write().unwrap();
        assert!(tx.add_local_key("root", &key("yk", 1), 2).unwrap());
        tx.commit().unwrap();
        assert_eq!(s.local_keys("root").unwrap().len(), 1);
    }
}
