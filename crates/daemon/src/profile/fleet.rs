//! Fleet mode (`store = "postgres"`): profile links and sessions in the
//! shared tables `p2fa.profile_links` and `p2fa.profile_sessions`
//! instead of one 2fad's memory, so that every 2fad behind one
//! `webauthn.public_url` serves every request of a page (no sticky
//! sessions). The rules are those of [`super::session`]; what the
//! database adds:
//!
//! - Only SHA-256 hashes of link tokens and session ids are stored.
//! - Everything secret in a session (CSRF token, a pending TOTP secret,
//!   new backup codes, WebAuthn ceremony tokens, the proof state, the
//!   page's messages) is one blob sealed with the fleet key (the host
//!   key generation the store is written with; the previous or next one
//!   still opens during a rotation), its AAD binding it to the session
//!   id's hash and to the row's plain columns (owner, peer, expiry,
//!   link). A blob copied to another row, or a changed column, does not
//!   open: no session.
//! - A link's token carries the fleet key's tag over its random part,
//!   the account and the uid that asked for it: a link row written into
//!   the database (or one whose owner was changed there) by someone
//!   without the key opens nothing, as a session's state would not.
//! - [`Fleet::with`] is one transaction that locks the session's row
//!   (`SELECT ... FOR UPDATE`): two 2fads acting on one session run one
//!   after the other, each seeing the other's change.
//! - Opening a link is one conditional UPDATE: of two openings (on any
//!   2fads) one wins, and the other ends the winner's session.
//! - Any error of the store: no session (the page says unavailable);
//!   nothing is granted on an error.

use super::session::{
    Ceremony, Hash, MAX_ENTRIES, NoSession, Opened, Owner, Peek, Session, TotpSetup,
};
use super::session::{hash, random_token};
use p2fa_core::clock::unix_now;
use p2fa_core::config::Config;
use p2fa_core::crypto::{HostKey, KeyRing};
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::{ProfileOpen, ProfileQuota, Store, StoreError, StoredProfileSession, TxOps};
use serde_json::{Value, json};
use std::net::IpAddr;
use zeroize::Zeroizing;

/// Links and sessions in the fleet database.
pub struct Fleet {
    cfg: Config,
    trust: Trust,
}

fn log(what: &str, e: &dyn std::fmt::Display) {
    eprintln!(
        "2fad: profile: {what}: {}",
        p2fa_core::audit::detail(&e.to_string())
    );
}

/// The additional data of a session's sealed state: the session (its
/// id's hash) and everything of the row the state relies on.
fn aad(sh: &Hash, row: &StoredProfileSession) -> Vec<u8> {
    let mut a = b"p2fa profile session\0".to_vec();
    a.extend_from_slice(sh);
    a.extend_from_slice(&row.link_hash);
    a.extend_from_slice(row.user.as_bytes());
    a.push(0);
    a.extend_from_slice(&row.by_uid.to_be_bytes());
    a.extend_from_slice(row.peer.as_bytes());
    a.push(0);
    a.extend_from_slice(&row.expires_at.to_be_bytes());
    a
}

/// The names a session may be elevated by (proofs name their factor);
/// anything else read back counts as not proved.
fn proof_name(s: &str) -> Option<&'static str> {
    const OTHERS: [&str; 4] = ["root", "none-first-factor", "confirmed-contact", "-"];
    p2fa_core::factor::FactorId::ALL
        .iter()
        .map(|f| f.as_str())
        .chain(OTHERS)
        .find(|n| *n == s)
}

/// The secret part of a session, as the plaintext to seal.
fn state_of(s: &Session) -> Zeroizing<String> {
    let ceremony = s.ceremony.as_ref().map(|c| match c {
        Ceremony::Prove(t) => json!({"prove": t}),
        Ceremony::Register(t) => json!({"register": t}),
    });
    let v = json!({
        "csrf": s.csrf,
        "elevated": s.elevated,
        "flash": s.flash,
        "totp": s.totp.as_ref().map(|t| json!({"uri": *t.uri, "secret": *t.secret})),
        "codes": s.codes.as_ref().map(|c| c.to_vec()),
        "contact": s.contact,
        "questions": s.questions,
        "sent_via": s.sent_via,
        "ceremony": ceremony,
    });
    Zeroizing::new(v.to_string())
}

/// A session from its row and opened state; None if malformed.
fn session_of(
    row: &StoredProfileSession,
    link: Hash,
    peer: IpAddr,
    plain: &[u8],
) -> Option<Session> {
    let v: Value = serde_json::from_slice(plain).ok()?;
    let text = |k: &str| v[k].as_str().map(str::to_string);
    let mut s = Session::new(
        Owner {
            user: row.user.clone(),
            uid: row.by_uid,
        },
        text("csrf")?,
        peer,
        row.expires_at,
        link,
    );
    s.elevated = v["elevated"].as_str().and_then(proof_name);
    s.flash = match &v["flash"] {
        Value::Array(a) if a.len() == 2 => Some((a[0].as_bool()?, a[1].as_str()?.to_string())),
        _ => None,
    };
    s.totp = match &v["totp"] {
        Value::Object(t) => Some(TotpSetup {
            uri: Zeroizing::new(t.get("uri")?.as_str()?.to_string()),
            secret: Zeroizing::new(t.get("secret")?.as_str()?.to_string()),
        }),
        _ => None,
    };
    s.codes = match &v["codes"] {
        Value::Array(a) => Some(Zeroizing::new(
            a.iter()
                .map(|c| c.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()?,
        )),
        _ => None,
    };
    s.contact = text("contact");
    s.questions = v["questions"].as_bool().unwrap_or(false);
    s.sent_via = text("sent_via");
    s.ceremony = match &v["ceremony"] {
        Value::Object(c) => match (c.get("prove"), c.get("register")) {
            (Some(Value::String(t)), None) => Some(Ceremony::Prove(t.clone())),
            (None, Some(Value::String(t))) => Some(Ceremony::Register(t.clone())),
            _ => return None,
        },
        _ => None,
    };
    Some(s)
}

/// A fleet link's token: its random part and the fleet key's tag over
/// it and its owner ([`HostKey::profile_link_tag`]), both base64url. The
/// database holds only the token's hash and the owner in clear; a row
/// whose owner was written by anyone without the key has no valid tag.
fn link_token(key: &HostKey, owner: &Owner, random: &str) -> String {
    use base64::Engine;
    let tag = key.profile_link_tag(&owner.user, owner.uid, random);
    format!(
        "{random}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
    )
}

/// Whether `token` carries the tag of its row's `owner` under the current
/// key or the other one of a rotation.
fn link_tag_ok(ring: &KeyRing, owner: &Owner, token: &str) -> bool {
    // 32 bytes of base64url (no padding) each.
    const PART: usize = 43;
    if token.len() != 2 * PART || !token.is_ascii() {
        return false;
    }
    let random = &token[..PART];
    std::iter::once(ring.current())
        .chain(ring.other())
        .any(|k| {
            p2fa_core::crypto::ct_eq(link_token(k, owner, random).as_bytes(), token.as_bytes())
        })
}

fn seal(key: &HostKey, sh: &Hash, row: &StoredProfileSession, s: &Session) -> Option<Vec<u8>> {
    key.seal(state_of(s).as_bytes(), &aad(sh, row)).ok()
}

/// Opens a row's state with the current key, or the other one of a
/// rotation; None if neither opens it (tampered, moved, or foreign).
fn unseal(ring: &KeyRing, sh: &Hash, row: &StoredProfileSession) -> Option<Zeroizing<Vec<u8>>> {
    let a = aad(sh, row);
    std::iter::once(ring.current())
        .chain(ring.other())
        .find_map(|k| k.open(&row.state, &a).ok())
}

impl Fleet {
    pub fn new(cfg: &Config, trust: Trust) -> Fleet {
        Fleet {
            cfg: cfg.clone(),
            trust,
        }
    }

    fn store(&self) -> Result<Store, String> {
        crate::pool::open(&self.cfg, self.trust).map_err(|e| e.to_string())
    }

    /// The store and the key ring checked against it (as the broker
    /// does): a session is sealed with the store's current generation.
    fn keyed(&self) -> Result<(Store, KeyRing), String> {
        let mut store = self.store()?;
        let ring = p2fa_core::keycheck::ring(&self.cfg, self.trust, &mut store)?;
        Ok((store, ring))
    }

    /// Runs `f` in one write transaction and commits.
    fn tx<T>(
        store: &mut Store,
        f: impl FnOnce(&dyn TxOps) -> Result<T, StoreError>,
    ) -> Result<T, String> {
        let tx = store.write().map_err(|e| e.to_string())?;
        let v = f(&*tx).map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
        Ok(v)
    }

    pub fn link(&self, owner: Owner, ttl: i64, per_user: usize) -> Result<String, String> {
        let unavailable = |e: &dyn std::fmt::Display| {
            log("link", e);
            "the 2FA store is unavailable; try again later or tell your administrator".to_string()
        };
        let random = random_token().ok_or("no randomness")?;
        let now = unix_now();
        let (mut store, ring) = self.keyed().map_err(|e| unavailable(&e))?;
        let token = link_token(ring.current(), &owner, &random);
        let q = Self::tx(&mut store, |tx| {
            tx.insert_profile_link(
                &hash(&token),
                &owner.user,
                owner.uid,
                now + ttl,
                u32::try_from(per_user).unwrap_or(u32::MAX),
                MAX_ENTRIES as u32,
                now,
            )
        })
        .map_err(|e| unavailable(&e))?;
        match q {
            ProfileQuota::Added => Ok(token),
            ProfileQuota::UserFull => Err(format!(
                "{} already has {per_user} open profile links or sessions; use one, or wait for them to expire",
                owner.user
            )),
            ProfileQuota::AllFull => {
                Err("too many open profile links; try again in a few minutes".into())
            }
        }
    }

    /// One read, nothing written.
    pub fn peek(&self, token: &str) -> Peek {
        let now = unix_now();
        let got = self
            .store()
            .and_then(|mut s| Self::tx(&mut s, |tx| tx.profile_link(&hash(token))));
        match got {
            Ok(Some(l)) if l.session_hash.is_some() && l.expires_at > now => Peek::Used,
            Ok(Some(l)) if l.expires_at > now => Peek::Fresh,
            Ok(_) => Peek::Expired,
            Err(e) => {
                log("peek", &e);
                Peek::Unavailable
            }
        }
    }

    pub fn open(&self, token: &str, peer: IpAddr, ttl: i64) -> Opened {
        let (Some(sid), Some(csrf)) = (random_token(), random_token()) else {
            return Opened::Expired;
        };
        let now = unix_now();
        let (lh, sh) = (hash(token), hash(&sid));
        let (mut store, ring) = match self.keyed() {
            Ok(x) => x,
            Err(e) => {
                log("open", &e);
                return Opened::Unavailable;
            }
        };
        let forged = std::cell::Cell::new(false);
        let r = Self::tx(&mut store, |tx| {
            let (user, by_uid) = match tx.open_profile_link(&lh, &sh, now, now + ttl)? {
                ProfileOpen::Opened { user, by_uid } => (user, by_uid),
                ProfileOpen::Reused => return Ok(Opened::Reused),
                ProfileOpen::Expired => return Ok(Opened::Expired),
            };
            let owner = Owner { user, uid: by_uid };
            if !link_tag_ok(&ring, &owner, token) {
                // Not a link a 2fad made for this row's owner: written
                // into the database by someone without the fleet key.
                // Rolled back: nothing opened, nothing changed.
                forged.set(true);
                return Err(StoreError::Other(format!(
                    "a profile link row for user {} does not carry its key's tag; refused",
                    p2fa_core::audit::clean(&owner.user)
                )));
            }
            let mut row = StoredProfileSession {
                link_hash: lh.to_vec(),
                user: owner.user.clone(),
                by_uid,
                peer: peer.to_string(),
                created_at: now,
                expires_at: now + ttl,
                ended: None,
                state: Vec::new(),
            };
            let s = Session::new(owner.clone(), csrf, peer, now + ttl, lh);
            row.state = seal(ring.current(), &sh, &row, &s)
                .ok_or_else(|| StoreError::Other("the session could not be sealed".into()))?;
            tx.insert_profile_session(&sh, &row)?;
            Ok(Opened::Session(sid, owner))
        });
        r.unwrap_or_else(|e| {
            log("open", &e);
            if forged.get() {
                Opened::Expired
            } else {
                Opened::Unavailable
            }
        })
    }

    pub fn with<R>(
        &self,
        sid: Option<&str>,
        peer: IpAddr,
        f: impl FnOnce(&mut Session) -> R,
    ) -> Result<R, NoSession> {
        let sh = hash(sid.ok_or(NoSession::Missing)?);
        let now = unix_now();
        let unavailable = |e: &dyn std::fmt::Display| {
            log("session", e);
            NoSession::Unavailable
        };
        let (mut store, ring) = self.keyed().map_err(|e| unavailable(&e))?;
        let tx = store.write().map_err(|e| unavailable(&e))?;
        let Some(row) = tx.lock_profile_session(&sh).map_err(|e| unavailable(&e))? else {
            return Err(NoSession::Missing);
        };
        if row.ended.is_some() {
            return Err(NoSession::Ended);
        }
        if row.expires_at <= now {
            return Err(NoSession::Expired);
        }
        if row.peer != peer.to_string() {
            // Ended for safety, on every 2fad; refused even if that
            // could not be written.
            match tx.end_profile_session(&sh, true, now) {
                Ok(_) => {
                    if let Err(e) = tx.commit() {
                        log("session", &e);
                    }
                }
                Err(e) => log("session", &e),
            }
            return Err(NoSession::Ended);
        }
        let Some(link) = <Hash>::try_from(row.link_hash.as_slice()).ok() else {
            return Err(NoSession::Missing);
        };
        let Some(mut s) = unseal(&ring, &sh, &row).and_then(|p| session_of(&row, link, peer, &p))
        else {
            // Tampered with, or moved from another row: no session, and
            // nothing changes.
            eprintln!("2fad: profile: a session's sealed state does not open; refused");
            return Err(NoSession::Missing);
        };
        let before = state_of(&s);
        let out = f(&mut s);
        if *state_of(&s) != *before {
            let sealed = seal(ring.current(), &sh, &row, &s).ok_or(NoSession::Unavailable)?;
            match tx.update_profile_session(&sh, &sealed) {
                Ok(true) => {}
                Ok(false) => return Err(NoSession::Missing),
                Err(e) => return Err(unavailable(&e)),
            }
        }
        tx.commit().map_err(|e| unavailable(&e))?;
        Ok(out)
    }

    pub fn logout(&self, sid: &str) {
        let now = unix_now();
        let r = self.store().and_then(|mut s| {
            Self::tx(&mut s, |tx| tx.end_profile_session(&hash(sid), false, now))
        });
        if let Err(e) = r {
            log("logout", &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> StoredProfileSession {
        StoredProfileSession {
            link_hash: vec![7; 32],
            user: "alice".into(),
            by_uid: 1000,
            peer: "127.0.0.1".into(),
            created_at: 1,
            expires_at: 100,
            ended: None,
            state: Vec::new(),
        }
    }

    #[test]
    fn sealed_state_opens_only_for_its_session_and_row() {
        let key = HostKey::from_bytes(&[3; 32]);
        let ring = KeyRing::single(key.clone());
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let mut s = Session::new(
            Owner {
                user: "alice".into(),
                uid: 1000,
            },
            "csrf-token".into(),
            peer,
            100,
            [7; 32],
        );
        s.elevated = Some("totp");
        s.flash = Some((true, "done".into()));
        s.codes = Some(Zeroizing::new(vec!["1234-5678".into()]));
        s.totp = Some(TotpSetup {
            uri: Zeroizing::new("otpauth://x".into()),
            secret: Zeroizing::new("SECRET".into()),
        });
        s.ceremony = Some(Ceremony::Register("tok".into()));
        let (sh, other) = ([1; 32], [2; 32]);
        let mut r = row();
        r.state = seal(&key, &sh, &r, &s).unwrap();
        let plain = String::from_utf8(r.state.clone()).unwrap_or_default();
        assert!(!plain.contains("csrf-token") && !plain.contains("SECRET"));
        let back = session_of(&r, [7; 32], peer, &unseal(&ring, &sh, &r).unwrap()).unwrap();
        assert_eq!(*state_of(&back), *state_of(&s));
        assert_eq!(back.elevated, Some("totp"));
        // Another session, another owner, a flipped bit: does not open.
        assert!(unseal(&ring, &other, &r).is_none());
        let mut moved = r.clone();
        moved.by_uid = 0;
        assert!(unseal(&ring, &sh, &moved).is_none());
        let mut bent = r.clone();
        let last = bent.state.len() - 1;
        bent.state[last] ^= 1;
        assert!(unseal(&ring, &sh, &bent).is_none());
        // A link's tag names its owner and uid, under the fleet key.
        let alice = Owner {
            user: "alice".into(),
            uid: 1000,
        };
        let token = link_token(&key, &alice, &random_token().unwrap());
        assert!(link_tag_ok(&ring, &alice, &token));
        for other in [
            Owner {
                uid: 0,
                ..alice.clone()
            },
            Owner {
                user: "bob".into(),
                uid: 1000,
            },
        ] {
            assert!(!link_tag_ok(&ring, &other, &token));
        }
        let foreign = KeyRing::single(HostKey::from_bytes(&[4; 32]));
        assert!(!link_tag_ok(&foreign, &alice, &token));
        assert!(!link_tag_ok(&ring, &alice, &token[..43]));
        // An unknown proof name reads back as not proved.
        assert_eq!(proof_name("sudo-everything"), None);
        assert_eq!(proof_name("webauthn"), Some("webauthn"));
    }
}
