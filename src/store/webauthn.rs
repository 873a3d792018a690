//! WebAuthn credentials: the serialized credential (public key, id,
//! counter) per user and name. Nothing here is secret, but integrity
//! matters, so it lives in the root-only store like everything else.

use super::{Result, Store, Tx};
use rusqlite::params;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredCredential {
    pub name: String,
    /// JSON of the verifier's credential type.
    pub credential: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl Store {
    pub fn webauthn_credentials(&self, user: &str) -> Result<Vec<StoredCredential>> {
        let mut stmt = self.conn.prepare(
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
}

impl Tx<'_> {
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
