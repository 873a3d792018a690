//! A fresh set of backup codes.

use super::EnrollError;
use crate::crypto::HostKey;
use crate::factor::backup;
use crate::store::Tx;
use zeroize::Zeroizing;

/// Codes shown to the user once, and the keyed hashes that are all the
/// store ever keeps.
pub struct BackupSet {
    codes: Vec<Zeroizing<String>>,
    hashes: Vec<[u8; 32]>,
    /// The host-key generation of the hashes.
    key_gen: i64,
}

impl BackupSet {
    /// `count` new random codes for `user`.
    pub fn generate(key: &HostKey, user: &str, count: usize) -> Result<BackupSet, EnrollError> {
        let codes: Vec<Zeroizing<String>> = backup::generate(count)?
            .into_iter()
            .map(Zeroizing::new)
            .collect();
        let hashes = codes.iter().map(|c| key.code_hash(user, c)).collect();
        Ok(BackupSet {
            codes,
            hashes,
            key_gen: key.key_gen(),
        })
    }

    /// Codes that already exist elsewhere (the importers).
    pub fn imported(key: &HostKey, user: &str, codes: &[&str]) -> BackupSet {
        BackupSet {
            codes: codes
                .iter()
                .map(|c| Zeroizing::new(c.to_string()))
                .collect(),
            hashes: codes.iter().map(|c| key.code_hash(user, c)).collect(),
            key_gen: key.key_gen(),
        }
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// The codes as shown (`12345-67890`), in order.
    pub fn formatted(&self) -> Vec<Zeroizing<String>> {
        self.codes
            .iter()
            .map(|c| Zeroizing::new(backup::format(c)))
            .collect()
    }

    /// Replaces every earlier code of `user`, used or not, inside the
    /// caller's transaction. Returns whether there were earlier codes.
    pub fn save(&self, tx: &Tx<'_>, user: &str, now: i64) -> Result<bool, EnrollError> {
        let state = tx.user_state(user)?;
        tx.replace_backup_codes(user, &self.hashes, now, self.key_gen)?;
        Ok(state.used_backup > 0 || !state.unused_backup.is_empty())
    }
}

impl BackupSet {
    /// Replaces `user`'s unused codes only: the spent ones stay on record,
    /// so a re-import can never make a code this store saw used valid
    /// again.
    pub fn save_keeping_spent(&self, tx: &Tx<'_>, user: &str, now: i64) -> Result<(), EnrollError> {
        tx.replace_unused_backup_codes(user, &self.hashes, now, self.key_gen)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_formatted_and_hashed_per_user() {
        let key = HostKey::from_bytes(&[3; 32]);
        let set = BackupSet::generate(&key, "alice", 10).unwrap();
        assert_eq!(set.len(), 10);
        let shown = set.formatted();
        assert!(shown.iter().all(|c| c.len() == 11 && &c[5..6] == "-"));
        let plain = shown[0].replace('-', "");
        assert_eq!(set.hashes[0], key.code_hash("alice", &plain));
        assert_ne!(set.hashes[0], key.code_hash("bob", &plain));
    }
}
