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

use crate::config::Config;
use crate::crypto::{HostKey, KeyRing, ct_eq};
use crate::factor::totp;
use crate::secure_fs::Trust;
use crate::store::{Backend, Store};
use std::path::Path;

/// The `meta` row holding the check value of generation 0.
const KEY_CHECK: &str = "key_check";
/// The `meta` row holding the generation the store writes with now
/// (decimal; absent = 0), see `2fa-enroll rekey` (docs/rekey.md).
pub const KEY_GEN: &str = "key_gen";

/// The `meta` row holding generation `g`'s check value: `key_check` for
/// 0 (the name from before rekeying existed), `key_check:<g>` after. An
/// empty value is a retired generation (`rekey finish`).
pub fn check_name(g: i64) -> String {
    if g == 0 {
        KEY_CHECK.to_string()
    } else {
        format!("key_check:{g}")
    }
}

/// The generation the store writes with now.
pub fn current_gen(store: &dyn Backend) -> Result<i64, String> {
    parse_gen(store.meta(KEY_GEN).map_err(|e| e.to_string())?)
}

/// A stored `key_gen` value; anything but a small decimal is an error
/// (never guessed as 0).
pub fn parse_gen(v: Option<Vec<u8>>) -> Result<i64, String> {
    let Some(v) = v else { return Ok(0) };
    std::str::from_utf8(&v)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|g| (0..1_000_000).contains(g))
        .ok_or_else(|| "the store's key generation (meta key_gen) is unreadable".to_string())
}

/// The recorded check value of generation `g`, if it is recorded and not
/// retired.
fn recorded(store: &dyn Backend, g: i64) -> Result<Option<Vec<u8>>, String> {
    if g < 0 {
        return Ok(None);
    }
    Ok(store
        .meta(&check_name(g))
        .map_err(|e| e.to_string())?
        .filter(|v| !v.is_empty()))
}

/// Which of the generations around `current` (the previous, the current,
/// a recorded next) `key` is, if any.
fn which_gen(store: &dyn Backend, key: &HostKey, current: i64) -> Result<Option<i64>, String> {
    for g in [current, current - 1, current + 1] {
        if let Some(v) = recorded(store, g)?
            && ct_eq(&v, &key.check_value())
        {
            return Ok(Some(g));
        }
    }
    Ok(None)
}

/// The keys this host has for the store (`key_file`, plus
/// `next_key_file` or `previous_key_file` during a rotation), each
/// recognised by its check value; the one of the store's current
/// generation writes. Errors (to report as "unavailable"): a key file
/// that cannot be read, `key_file` not being a key the store knows, or no
/// key of the current generation. A next/previous key the store does not
/// know (a generation retired by `rekey finish`) is left out.
pub fn ring(cfg: &Config, trust: Trust, store: &mut Store) -> Result<KeyRing, String> {
    let file = cfg.key_file.display().to_string();
    let main = HostKey::load(&cfg.key_file, trust).map_err(|e| e.to_string())?;
    let g = current_gen(&**store)?;
    if g == 0 && recorded(&**store, 0)?.is_none() {
        // Not pinned yet (or a store from before the check): today's rules.
        verify(store, &main, &file)?;
        return Ok(KeyRing::single(main));
    }
    let extra_path = [&cfg.next_key_file, &cfg.previous_key_file]
        .into_iter()
        .find(|p| !p.as_os_str().is_empty());
    let extra = match extra_path {
        Some(p) => Some(load_extra(p, trust)?),
        None => None,
    };
    let main_gen = which_gen(&**store, &main, g)?.ok_or_else(|| mismatch(&file))?;
    main.set_key_gen(main_gen);
    let extra = match extra {
        Some(k) => match which_gen(&**store, &k, g)? {
            Some(eg) if eg != main_gen => {
                k.set_key_gen(eg);
                Some(k)
            }
            _ => None,
        },
        None => None,
    };
    let (current, other) = if main_gen == g {
        (main, extra)
    } else if let Some(k) = extra.filter(|k| k.key_gen() == g) {
        (k, Some(main))
    } else {
        return Err(format!(
            "no key of the store's current key generation {g} on this host \
             ({file} is generation {main_gen}): configure the new key \
             (next_key_file or key_file, see `2fa-enroll rekey`)"
        ));
    };
    // A key of a generation nothing is written with any more, and that
    // is not the one before the current, reads nothing.
    let other = other.filter(|k| k.key_gen() == g - 1 || k.key_gen() == g + 1);
    Ok(KeyRing::new(current, other))
}

fn load_extra(p: &Path, trust: Trust) -> Result<HostKey, String> {
    HostKey::load(p, trust).map_err(|e| e.to_string())
}

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
    let g = current_gen(&**store)?;
    if g != 0 {
        return match which_gen(&**store, key, g)? {
            Some(kg) if kg == g => Ok(KeyCheck::Matches),
            Some(kg) => Ok(KeyCheck::Unproven(if kg < g {
                "the previous key generation (rekey): reads old rows only"
            } else {
                "the next key generation (rekey new): not written with yet"
            })),
            None => Err(mismatch(key_file)),
        };
    }
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
    let g = current_gen(&**store)?;
    if g != 0 {
        // Rekeyed: `rekey switch` recorded the current check value.
        return match recorded(&**store, g)? {
            Some(stored) if ct_eq(&stored, &value) => {
                key.set_key_gen(g);
                Ok(KeyCheck::Matches)
            }
            _ => Err(mismatch(key_file)),
        };
    }
    key.set_key_gen(0);
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
    if parse_gen(tx.meta(KEY_GEN).map_err(se)?)? != 0 {
        return Err("the store was rekeyed meanwhile; try again".into());
    }
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
            key_gen: 0,
        };
        tx.put_otp(user, &rec, at).unwrap();
        tx.commit().unwrap();
    }

    fn add_backup(s: &mut Store, key: &HostKey, user: &str, at: i64) {
        let tx = s.write().unwrap();
        tx.replace_backup_codes(user, &[key.code_hash(user, "1234567890")], at, 0)
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

    /// Writes key `b` to `dir/name` (0600) and returns its path.
    fn key_file(dir: &Path, name: &str, b: u8) -> std::path::PathBuf {
        let p = dir.join(name);
        crate::secure_fs::create_private_file(&p, &[b; 32]).unwrap();
        p
    }

    fn set_gen(s: &mut Store, name: &str, value: &[u8]) {
        let tx = s.write().unwrap();
        tx.set_meta(name, value).unwrap();
        tx.commit().unwrap();
    }

    /// The ring recognises key files by check value, whichever setting
    /// names them; the current generation's key writes; an unknown
    /// `key_file` or no key of the current generation is an error; an
    /// unknown extra key is left out.
    #[test]
    fn ring_follows_the_recorded_generations() {
        let (d, mut s) = store();
        let keys = d.path().join("k");
        crate::secure_fs::ensure_private_dir(&keys).unwrap();
        let old = key_file(&keys, "old", 1);
        let new = key_file(&keys, "new", 2);
        let stray = key_file(&keys, "stray", 3);
        let mut cfg = Config {
            key_file: old.clone(),
            ..Config::default()
        };
        let t = Trust::test_runner();
        // Gen 0, pinned by the first use.
        let r = ring(&cfg, t, &mut s).unwrap();
        assert_eq!(r.key_gen(), 0);
        assert!(r.other().is_none());
        // `rekey new`: generation 1 recorded, still writing 0.
        set_gen(&mut s, &check_name(1), &k(2).check_value());
        cfg.next_key_file = new.clone();
        let r = ring(&cfg, t, &mut s).unwrap();
        assert_eq!((r.key_gen(), r.other().unwrap().key_gen()), (0, 1));
        assert!(r.for_gen(1).is_some() && r.for_gen(2).is_none());
        // `rekey switch`: the next key writes, whichever file names it.
        set_gen(&mut s, KEY_GEN, b"1");
        let r = ring(&cfg, t, &mut s).unwrap();
        assert_eq!((r.key_gen(), r.other().unwrap().key_gen()), (1, 0));
        assert_eq!(r.check_value(), k(2).check_value());
        // Without the new key: no key of the current generation.
        cfg.next_key_file = Default::default();
        let e = ring(&cfg, t, &mut s).err().unwrap();
        assert!(e.contains("current key generation 1"), "{e}");
        // A key the store does not know as key_file: refused; as an
        // extra key: left out.
        cfg.key_file = stray.clone();
        assert!(ring(&cfg, t, &mut s).is_err());
        cfg.key_file = new.clone();
        cfg.previous_key_file = stray;
        let r = ring(&cfg, t, &mut s).unwrap();
        assert!(r.other().is_none());
        cfg.previous_key_file = old;
        assert_eq!(ring(&cfg, t, &mut s).unwrap().other().unwrap().key_gen(), 0);
        // The module's single-key check accepts the current key only.
        assert_eq!(verify(&mut s, &k(2), "K"), Ok(KeyCheck::Matches));
        assert!(verify(&mut s, &k(1), "K").is_err());
        // `finish` retires generation 0: the old key reads nothing more.
        set_gen(&mut s, &check_name(0), b"");
        assert!(ring(&cfg, t, &mut s).unwrap().other().is_none());
        // An unreadable generation number fails closed.
        set_gen(&mut s, KEY_GEN, b"x");
        assert!(ring(&cfg, t, &mut s).is_err());
        assert!(verify(&mut s, &k(2), "K").is_err());
    }
}
