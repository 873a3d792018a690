//! Is the host key the one the store was made with?
//!
//! With a wrong key file (restored from the wrong backup, replaced by
//! mistake) no backup code, security answer or sent code can ever verify,
//! because they are stored as keyed hashes: every attempt would be "wrong
//! code" and count toward the user's lockout. Sealed TOTP secrets at least
//! fail to open, but only users who have one would notice. So the store
//! keeps the key's check value ([`HostKey::check_value`]) in its `meta`
//! table, and the module compares it before verifying anything: a
//! mismatch is "unavailable" for every factor, never a counted failure.
//!
//! The value is pinned when it can be proven right, never otherwise:
//! - a store with nothing made with a key yet (new, or only factors that
//!   use no key) takes the key in use;
//! - a store from before this check (schema < 6) is pinned by `2fa-enroll`
//!   when every sealed TOTP/HOTP secret opens with the key and nothing
//!   keyed but unprovable (backup code hashes, answers, sent codes) is
//!   older than the oldest of them; otherwise it stays unpinned and the
//!   module behaves as before (documented in the README's Recovery part).
//!
//! The PAM module only reads the value (one indexed lookup per login) and
//! pins only the first case, which needs no scan; the full proof is
//! `2fa-enroll`'s (every root command runs it, `init` reports it).

use crate::crypto::{HostKey, ct_eq};
use crate::factor::totp;
use crate::store::Store;

/// The `meta` row holding the check value.
const KEY_CHECK: &str = "key_check";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// The store's check value is this key's.
    Matches,
    /// The check value was missing and has just been stored; why it is
    /// proven.
    Pinned(&'static str),
    /// Missing and cannot be proven (a store from before the check); why.
    Unproven(&'static str),
}

fn mismatch(key_file: &str) -> String {
    format!(
        "host key {key_file} does not match the store (its key check value differs): \
         wrong or replaced key file? Restore the key file the store was made with"
    )
}

/// The module's check: compares a stored value, pins a store that has
/// nothing made with a key yet, and otherwise leaves an unpinned store
/// alone. `Err` is a mismatch (or a store error), to be reported as
/// "unavailable".
pub fn verify(store: &mut Store, key: &HostKey, key_file: &str) -> Result<KeyCheck, String> {
    check(store, key, key_file, false)
}

/// `2fa-enroll`'s check: [`verify`], and for a store from before the check,
/// pins the value when the key is proven (see the module docs).
pub fn verify_or_pin(store: &mut Store, key: &HostKey, key_file: &str) -> Result<KeyCheck, String> {
    check(store, key, key_file, true)
}

/// `2fa-enroll check`'s look, for a store opened read-only
/// ([`Store::inspect`], schema current): compares the recorded value;
/// without one, tries the key on every sealed TOTP/HOTP secret. Records
/// nothing. `Ok(Matches)` when the store records this key,
/// `Ok(Unproven(why))` when it records none (why says what is known),
/// `Err` for a key the store was not made with.
pub fn inspect(store: &Store, key: &HostKey, key_file: &str) -> Result<KeyCheck, String> {
    let se = |e: crate::store::StoreError| e.to_string();
    if let Some(stored) = store.meta(KEY_CHECK).map_err(se)? {
        return if ct_eq(&stored, &key.check_value()) {
            Ok(KeyCheck::Matches)
        } else {
            Err(mismatch(key_file))
        };
    }
    let sealed = store.sealed_secrets().map_err(se)?;
    for s in &sealed {
        if key.open(&s.sealed, &totp::seal_aad(&s.user)).is_err() {
            return Err(mismatch(key_file));
        }
    }
    Ok(KeyCheck::Unproven(if !sealed.is_empty() {
        "not recorded yet, but every sealed TOTP/HOTP secret opens with it; `2fa-enroll init` records it"
    } else if store.has_keyed_items().map_err(se)? {
        "not recorded, and nothing in the store can prove it (only hashed codes or answers)"
    } else {
        "not recorded yet: nothing was made with a key so far (the first login or enrollment records it)"
    }))
}

fn check(
    store: &mut Store,
    key: &HostKey,
    key_file: &str,
    prove: bool,
) -> Result<KeyCheck, String> {
    let se = |e: crate::store::StoreError| e.to_string();
    let value = key.check_value();
    if let Some(stored) = store.meta(KEY_CHECK).map_err(se)? {
        return if ct_eq(&stored, &value) {
            Ok(KeyCheck::Matches)
        } else {
            Err(mismatch(key_file))
        };
    }
    // The module never writes (nor takes the write lock) for a store it
    // could not pin anyway.
    if !prove && store.has_keyed_items().map_err(se)? {
        return Ok(KeyCheck::Unproven(
            "a store from before the key check; `2fa-enroll init` pins it when it can",
        ));
    }
    let tx = store.write().map_err(se)?;
    // Another process may have pinned it since the read above.
    if let Some(stored) = tx.meta(KEY_CHECK).map_err(se)? {
        return if ct_eq(&stored, &value) {
            Ok(KeyCheck::Matches)
        } else {
            Err(mismatch(key_file))
        };
    }
    let sealed = tx.sealed_secrets().map_err(se)?;
    let oldest_hashed = tx.oldest_hashed_item().map_err(se)?;
    let why = if sealed.is_empty() && oldest_hashed.is_none() {
        "nothing was made with a key yet"
    } else if !prove {
        return Ok(KeyCheck::Unproven(
            "a store from before the key check; `2fa-enroll init` pins it when it can",
        ));
    } else if sealed.is_empty() {
        return Ok(KeyCheck::Unproven(
            "no sealed TOTP/HOTP secret to prove the key with (only hashed codes or answers)",
        ));
    } else {
        for s in &sealed {
            if key.open(&s.sealed, &totp::seal_aad(&s.user)).is_err() {
                return Err(mismatch(key_file));
            }
        }
        let first_sealed = sealed.iter().map(|s| s.created_at).min().unwrap_or(0);
        if oldest_hashed.is_some_and(|t| t < first_sealed) {
            return Ok(KeyCheck::Unproven(
                "hashed codes or answers older than every sealed secret could have been made with another key",
            ));
        }
        "every sealed secret opens with it"
    };
    tx.set_meta(KEY_CHECK, &value).map_err(se)?;
    tx.commit().map_err(se)?;
    Ok(KeyCheck::Pinned(why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Algorithm;
    use crate::secure_fs::Trust;
    use crate::store::{OtpKind, OtpRecord};

    fn store() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open_or_create(&d.path().join("s/state.db"), 1000, Trust::test_runner())
            .unwrap();
        (d, s)
    }

    fn k(b: u8) -> HostKey {
        HostKey::from_bytes(&[b; 32])
    }

    fn add_totp(s: &mut Store, key: &HostKey, user: &str, at: i64) {
        let tx = s.write().unwrap();
        let rec = OtpRecord {
            kind: OtpKind::Totp,
            sealed: key.seal(b"secret", &totp::seal_aad(user)).unwrap(),
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            last_step: None,
            counter: 0,
            created_at: at,
        };
        tx.put_otp(user, &rec, at).unwrap();
        tx.commit().unwrap();
    }

    fn add_backup(s: &mut Store, key: &HostKey, user: &str, at: i64) {
        let tx = s.write().unwrap();
        tx.replace_backup_codes(user, &[key.code_hash(user, "1234567890")], at)
            .unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn empty_store_pins_then_tells_keys_apart() {
        let (_d, mut s) = store();
        assert!(matches!(
            verify(&mut s, &k(1), "K"),
            Ok(KeyCheck::Pinned(_))
        ));
        assert_eq!(verify(&mut s, &k(1), "K"), Ok(KeyCheck::Matches));
        let e = verify(&mut s, &k(2), "K").unwrap_err();
        assert!(e.contains("host key K does not match the store"), "{e}");
        assert!(
            verify_or_pin(&mut s, &k(2), "K").is_err(),
            "never re-pinned"
        );
    }

    /// A store from before the check: the module never pins what it
    /// cannot prove cheaply; 2fa-enroll pins when every sealed secret
    /// opens and nothing unprovable is older.
    #[test]
    fn old_store_is_pinned_only_when_proven() {
        let (_d, mut s) = store();
        add_totp(&mut s, &k(1), "alice", 100);
        add_backup(&mut s, &k(1), "alice", 100);
        assert!(matches!(
            verify(&mut s, &k(1), "K"),
            Ok(KeyCheck::Unproven(_))
        ));
        assert!(
            verify_or_pin(&mut s, &k(2), "K").is_err(),
            "wrong key proven"
        );
        assert!(matches!(
            verify(&mut s, &k(2), "K"),
            Ok(KeyCheck::Unproven(_))
        ));
        assert!(matches!(
            verify_or_pin(&mut s, &k(1), "K"),
            Ok(KeyCheck::Pinned(_))
        ));
        assert!(verify(&mut s, &k(2), "K").is_err());
        assert_eq!(verify(&mut s, &k(1), "K"), Ok(KeyCheck::Matches));
    }

    #[test]
    fn hashed_codes_alone_or_older_prove_nothing() {
        let (_d, mut s) = store();
        add_backup(&mut s, &k(1), "bob", 100);
        assert!(matches!(
            verify_or_pin(&mut s, &k(2), "K"),
            Ok(KeyCheck::Unproven(_))
        ));
        // A secret sealed later (perhaps with a replaced key) does not
        // prove the key the older backup codes were made with.
        add_totp(&mut s, &k(2), "carol", 200);
        assert!(matches!(
            verify_or_pin(&mut s, &k(2), "K"),
            Ok(KeyCheck::Unproven(_))
        ));
        assert!(verify_or_pin(&mut s, &k(1), "K").is_err());
    }

    /// `inspect` tells the same story as `verify` and writes nothing.
    #[test]
    fn inspect_reads_only() {
        let (d, mut s) = store();
        let path = d.path().join("s/state.db");
        let look = |key: &HostKey| {
            let (ro, _) = Store::inspect(&path, Trust::test_runner()).unwrap();
            inspect(&ro, key, "K")
        };
        let unproven = |r: Result<KeyCheck, String>, what: &str| match r {
            Ok(KeyCheck::Unproven(why)) => assert!(why.contains(what), "{why}"),
            other => panic!("{other:?}"),
        };
        unproven(look(&k(1)), "nothing was made with a key");
        add_backup(&mut s, &k(1), "bob", 100);
        unproven(look(&k(2)), "nothing in the store can prove it");
        add_totp(&mut s, &k(1), "alice", 100);
        unproven(look(&k(1)), "every sealed TOTP/HOTP secret opens");
        let e = look(&k(2)).unwrap_err();
        assert!(e.contains("does not match the store"), "{e}");
        // Nothing was recorded by looking.
        assert_eq!(s.meta(KEY_CHECK).unwrap(), None);
        verify_or_pin(&mut s, &k(1), "K").unwrap();
        assert_eq!(look(&k(1)), Ok(KeyCheck::Matches));
        assert!(look(&k(2)).is_err());
    }
}
