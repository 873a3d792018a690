//! Host key, secret sealing, keyed code hashes and constant-time compares.
//!
//! One 32-byte host key (`/etc/security/2fa.key`) protects everything in the
//! store: OTP secrets are sealed with XChaCha20-Poly1305 under a key derived
//! for sealing, backup codes are kept only as HMAC-SHA256 under a key derived
//! for hashing. A stolen `state.db` without the key file reveals neither.

use crate::secure_fs::{self, Trust};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// First byte of every sealed blob, so the format can change later.
const SEAL_VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoError(pub String);

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CryptoError {}

/// Subkeys derived from the host key; the raw key is dropped after loading.
pub struct HostKey {
    seal: Zeroizing<[u8; KEY_LEN]>,
    mac: Zeroizing<[u8; KEY_LEN]>,
    pepper: Zeroizing<[u8; KEY_LEN]>,
    check: [u8; KEY_LEN],
    /// The key generation this key is in the store (docs/rekey.md): 0
    /// until [`crate::keycheck`] finds it is another one. Rows written
    /// with this key are tagged with it.
    key_gen: AtomicI64,
}

impl Clone for HostKey {
    fn clone(&self) -> HostKey {
        HostKey {
            seal: self.seal.clone(),
            mac: self.mac.clone(),
            pepper: self.pepper.clone(),
            check: self.check,
            key_gen: AtomicI64::new(self.key_gen()),
        }
    }
}

impl HostKey {
    /// Derives the working subkeys from 32 bytes of key material.
    pub fn from_bytes(master: &[u8; KEY_LEN]) -> HostKey {
        HostKey {
            seal: derive(master, b"pam-2fa seal v1"),
            mac: derive(master, b"pam-2fa code-hash v1"),
            pepper: derive(master, b"pam-2fa answer-pepper v1"),
            check: *derive(master, b"pam-2fa key-check v1"),
            key_gen: AtomicI64::new(0),
        }
    }

    /// The key generation the store knows this key as (0 unless
    /// [`crate::keycheck`] said otherwise).
    pub fn key_gen(&self) -> i64 {
        self.key_gen.load(Ordering::Relaxed)
    }

    /// Records which generation the store knows this key as.
    pub fn set_key_gen(&self, g: i64) {
        self.key_gen.store(g, Ordering::Relaxed);
    }

    /// A value derived from the key for recognising it (kept in the store,
    /// see `crate::keycheck`): another key gives another value, and it
    /// reveals nothing about the key or the other derived keys.
    pub fn check_value(&self) -> [u8; KEY_LEN] {
        self.check
    }

    /// Loads the key file, refusing one that is not a root-owned 0600
    /// regular file in root-owned directories (see [`secure_fs::read_trusted`]:
    /// a FIFO or device never hangs the login) or has the wrong size (a
    /// truncated key must not silently become a new key).
    pub fn load(path: &Path, trust: Trust) -> Result<HostKey, CryptoError> {
        let bytes = secure_fs::read_trusted(
            path,
            "key file",
            secure_fs::NO_GROUP_OR_WORLD,
            KEY_LEN as u64,
            trust,
        )
        .map_err(|e| CryptoError(e.to_string()))?;
        let master: Zeroizing<[u8; KEY_LEN]> =
            Zeroizing::new(bytes.as_slice().try_into().map_err(|_| {
                CryptoError(format!(
                    "key file {} has {} bytes, expected {KEY_LEN}",
                    path.display(),
                    bytes.len()
                ))
            })?);
        Ok(HostKey::from_bytes(&master))
    }

    /// Loads the key, creating it (root 0600, parent dir 0700 if new) when
    /// it does not exist yet. Only `2fa-enroll` calls this; the PAM module
    /// never creates a key, because a new key cannot open old secrets.
    pub fn load_or_create(path: &Path, trust: Trust) -> Result<(HostKey, bool), CryptoError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Ok((HostKey::load(path, trust)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    secure_fs::ensure_private_dir(dir)
                        .map_err(|e| CryptoError(format!("creating {}: {e}", dir.display())))?;
                    secure_fs::check_dir_chain(dir, "key file", trust).map_err(CryptoError)?;
                }
                let master = Zeroizing::new(random_array::<KEY_LEN>()?);
                secure_fs::create_private_file(path, master.as_slice()).map_err(|e| {
                    CryptoError(format!("creating key file {}: {e}", path.display()))
                })?;
                Ok((HostKey::from_bytes(&master), true))
            }
            Err(e) => Err(CryptoError(format!("key file {}: {e}", path.display()))),
        }
    }

    /// Encrypts `plaintext`; `aad` binds the blob to its owner and purpose
    /// so a sealed secret copied to another user's row fails to open.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let cipher = XChaCha20Poly1305::new_from_slice(self.seal.as_slice())
            .map_err(|_| CryptoError("bad seal key length".into()))?;
        let nonce_bytes = random_array::<NONCE_LEN>()?;
        let nonce = XNonce::from(nonce_bytes);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError("sealing failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts a blob made by [`HostKey::seal`] with the same `aad`.
    pub fn open(&self, blob: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if blob.len() < 1 + NONCE_LEN + 16 || blob[0] != SEAL_VERSION {
            return Err(CryptoError("sealed secret is malformed".into()));
        }
        let cipher = XChaCha20Poly1305::new_from_slice(self.seal.as_slice())
            .map_err(|_| CryptoError("bad seal key length".into()))?;
        let nonce_bytes: [u8; NONCE_LEN] = blob[1..1 + NONCE_LEN]
            .try_into()
            .map_err(|_| CryptoError("sealed secret is malformed".into()))?;
        let nonce = XNonce::from(nonce_bytes);
        cipher
            .decrypt(&nonce, Payload { msg: &blob[1 + NONCE_LEN..], aad })
            .map(Zeroizing::new)
            .map_err(|_| {
                CryptoError("sealed secret does not open with this host key (wrong key file or tampered store)".into())
            })
    }

    /// Secret mixed into argon2id hashes of security answers, so a stolen
    /// store alone does not allow guessing answers offline.
    pub fn answer_pepper(&self) -> &[u8] {
        self.pepper.as_slice()
    }

    /// Keyed hash of a normalised backup code, bound to the user name.
    pub fn code_hash(&self, user: &str, code: &str) -> [u8; 32] {
        self.labelled_hash(b"backup\0", user, code)
    }

    /// Wraps a one-way hash made with an older generation's key
    /// (`rekey convert`, docs/rekey.md): `HMAC-SHA256(mac, "p2fa wrap
    /// v1\0" || inner)`. Verifying a wrapped row needs both keys.
    #[expect(
        clippy::expect_used,
        reason = "HMAC takes keys of any length; new_from_slice cannot fail"
    )]
    pub fn wrap(&self, inner: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.mac.as_slice())
            .expect("HMAC accepts any key length");
        mac.update(b"p2fa wrap v1\0");
        mac.update(inner);
        mac.finalize().into_bytes().into()
    }

    /// Keyed hash of a code sent by SMS or e-mail, bound to user and channel
    /// so a code from one channel never verifies on another.
    pub fn sent_code_hash(&self, channel: &str, user: &str, code: &str) -> [u8; 32] {
        let label = format!("sent\0{channel}\0");
        self.labelled_hash(label.as_bytes(), user, code)
    }

    /// The tag a fleet profile link carries (2fad's `profile::fleet`):
    /// binds the link's random part to the account and the uid that
    /// asked for it, so that a link row written into the database by
    /// someone without the key opens nothing.
    pub fn profile_link_tag(&self, user: &str, by_uid: u32, random: &str) -> [u8; 32] {
        let label = format!("profile link\0{by_uid}\0");
        self.labelled_hash(label.as_bytes(), user, random)
    }

    #[expect(
        clippy::expect_used,
        reason = "HMAC takes keys of any length; new_from_slice cannot fail"
    )]
    fn labelled_hash(&self, label: &[u8], user: &str, code: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.mac.as_slice())
            .expect("HMAC accepts any key length");
        mac.update(label);
        mac.update(user.as_bytes());
        mac.update(b"\0");
        mac.update(code.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// The keys of at most two generations (docs/rekey.md): the one the
/// store writes with now, and the other one (the next, before `rekey
/// switch`; the previous, until `rekey finish`). Derefs to the current
/// key, so everything that writes uses it; what reads a stored row asks
/// [`KeyRing::for_gen`] for the row's generation.
#[derive(Clone)]
pub struct KeyRing {
    current: HostKey,
    other: Option<HostKey>,
}

impl KeyRing {
    /// A ring of one key (its generation as [`HostKey::key_gen`] says).
    pub fn single(key: HostKey) -> KeyRing {
        KeyRing {
            current: key,
            other: None,
        }
    }

    /// `current` writes; `other` only reads rows of its generation.
    pub fn new(current: HostKey, other: Option<HostKey>) -> KeyRing {
        KeyRing { current, other }
    }

    pub fn current(&self) -> &HostKey {
        &self.current
    }

    pub fn other(&self) -> Option<&HostKey> {
        self.other.as_ref()
    }

    /// The key of generation `g`, if this host has it. A row whose
    /// generation has no key here is "unavailable", never a failure.
    pub fn for_gen(&self, g: i64) -> Option<&HostKey> {
        if self.current.key_gen() == g {
            Some(&self.current)
        } else {
            self.other.as_ref().filter(|k| k.key_gen() == g)
        }
    }

    /// The keys a stored row of generation `key_gen` needs: that key and,
    /// for a wrapped hash, the key of `inner_gen`. None if this host lacks
    /// one of them (the row is "unavailable", never a failure).
    pub fn for_row(&self, key_gen: i64, inner_gen: Option<i64>) -> Option<RowKeys<'_>> {
        let outer = self.for_gen(key_gen)?;
        let inner = match inner_gen {
            Some(g) => Some(self.for_gen(g)?),
            None => None,
        };
        Some(RowKeys { outer, inner })
    }

    /// What a backup code row of `(key_gen, inner_gen)` stores for
    /// `code`, if this host has the keys.
    pub fn code_hash_for(
        &self,
        key_gen: i64,
        inner_gen: Option<i64>,
        user: &str,
        code: &str,
    ) -> Option<[u8; 32]> {
        let k = self.for_row(key_gen, inner_gen)?;
        Some(match k.inner {
            Some(inner) => k.outer.wrap(&inner.code_hash(user, code)),
            None => k.outer.code_hash(user, code),
        })
    }
}

/// The keys of one stored row ([`KeyRing::for_row`]): the key of its
/// generation and, for a wrapped hash, the one inside the wrap.
#[derive(Clone, Copy)]
pub struct RowKeys<'a> {
    pub outer: &'a HostKey,
    pub inner: Option<&'a HostKey>,
}

impl std::ops::Deref for KeyRing {
    type Target = HostKey;
    fn deref(&self) -> &HostKey {
        &self.current
    }
}

#[expect(
    clippy::expect_used,
    reason = "HMAC takes keys of any length; new_from_slice cannot fail"
)]
fn derive(master: &[u8; KEY_LEN], label: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(master)
        .expect("HMAC accepts any key length");
    mac.update(label);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// Constant-time equality for codes and hashes (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Fills an array from the OS CSPRNG.
pub fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf)
        .map_err(|e| CryptoError(format!("no randomness from the OS: {e}")))?;
    Ok(buf)
}

/// A uniformly random number below `bound` (rejection sampling, no bias).
pub fn random_below(bound: u32) -> Result<u32, CryptoError> {
    assert!(bound > 0);
    let zone = u32::MAX - (u32::MAX % bound);
    loop {
        let v = u32::from_le_bytes(random_array::<4>()?);
        if v < zone {
            return Ok(v % bound);
        }
    }
}

/// A random code of `digits` digits (leading zeros allowed), as sent by
/// SMS or e-mail.
pub fn random_code(digits: u32) -> Result<Zeroizing<String>, CryptoError> {
    let mut code = Zeroizing::new(String::with_capacity(digits as usize));
    for _ in 0..digits {
        code.push(char::from(b'0' + random_below(10)? as u8));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> HostKey {
        HostKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn seal_roundtrip_and_binding() {
        let k = key();
        let blob = k.seal(b"secret", b"totp:alice").unwrap();
        assert_eq!(k.open(&blob, b"totp:alice").unwrap().as_slice(), b"secret");
        assert!(
            k.open(&blob, b"totp:bob").is_err(),
            "aad must bind the owner"
        );
        let other = HostKey::from_bytes(&[8u8; 32]);
        assert!(
            other.open(&blob, b"totp:alice").is_err(),
            "other key must fail"
        );
        let mut tampered = blob.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(k.open(&tampered, b"totp:alice").is_err());
        assert!(k.open(&blob[..10], b"totp:alice").is_err());
        assert_ne!(
            k.seal(b"secret", b"x").unwrap(),
            k.seal(b"secret", b"x").unwrap(),
            "nonce must be random"
        );
    }

    #[test]
    fn code_hash_is_keyed_and_user_bound() {
        let k = key();
        assert_eq!(k.code_hash("alice", "123"), k.code_hash("alice", "123"));
        assert_ne!(k.code_hash("alice", "123"), k.code_hash("bob", "123"));
        assert_ne!(
            k.code_hash("alice", "123"),
            HostKey::from_bytes(&[9; 32]).code_hash("alice", "123")
        );
    }

    #[test]
    fn check_value_tells_keys_apart() {
        assert_eq!(key().check_value(), key().check_value());
        assert_ne!(
            key().check_value(),
            HostKey::from_bytes(&[8; 32]).check_value()
        );
        assert_ne!(key().check_value(), *key().seal);
        assert_ne!(key().check_value(), *key().mac);
    }

    #[test]
    fn ct_eq_works() {
        assert!(ct_eq(b"123456", b"123456"));
        assert!(!ct_eq(b"123456", b"123457"));
        assert!(!ct_eq(b"123456", b"1234567"));
    }

    #[test]
    fn random_below_in_range() {
        for _ in 0..1000 {
            assert!(random_below(10).unwrap() < 10);
        }
    }
}
