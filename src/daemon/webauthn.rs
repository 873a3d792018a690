//! WebAuthn ceremonies for 2fad: short-lived, single-use links to a small
//! page that runs `navigator.credentials.create()`/`get()` in the user's
//! browser, and verification of what the browser posts back with
//! webauthn-rs (over webauthn-rs-core).
//!
//! A token is 32 random bytes (base64url); it is the only thing in the
//! link. A login token is bound to one user's credentials and dies when it
//! has been used, has expired, or its result has been read.

use crate::config::Config;
use crate::store::Store;
use base64::Engine;
use std::collections::HashMap;
use std::sync::Mutex;
use webauthn_rs::prelude::*;

pub enum Kind {
    Register {
        name: String,
        state: PasskeyRegistration,
    },
    Login {
        state: PasskeyAuthentication,
    },
}

/// Where a ceremony stands, as its owner (PAM module or CLI) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Approved(String),
    Failed(String),
}

struct Ceremony {
    user: String,
    kind: Kind,
    /// JSON for the page: creation or request options.
    options: String,
    expires: i64,
    outcome: Outcome,
}

pub struct Ceremonies {
    webauthn: Webauthn,
    pending: Mutex<HashMap<String, Ceremony>>,
}

fn now() -> i64 {
    crate::clock::unix_now()
}

fn token() -> Result<String, String> {
    let b = crate::crypto::random_array::<32>().map_err(|e| e.to_string())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// A stable, non-guessable WebAuthn user handle for a login name.
fn user_handle(key: &crate::crypto::HostKey, user: &str) -> Uuid {
    let h = key.code_hash("webauthn-user-handle", user);
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    Uuid::from_bytes(b)
}

impl Ceremonies {
    pub fn new(cfg: &Config) -> Result<Ceremonies, String> {
        let origin = Url::parse(&cfg.webauthn.public_url)
            .map_err(|e| format!("webauthn.public_url: {e}"))?;
        let webauthn = WebauthnBuilder::new(&cfg.webauthn.rp_id, &origin)
            .map_err(|e| format!("webauthn: {e}"))?
            .rp_name(&cfg.webauthn.rp_name)
            .timeout(std::time::Duration::from_secs(cfg.webauthn.link_seconds))
            .build()
            .map_err(|e| format!("webauthn: {e}"))?;
        Ok(Ceremonies {
            webauthn,
            pending: Mutex::new(HashMap::new()),
        })
    }

    fn insert(
        &self,
        cfg: &Config,
        user: &str,
        kind: Kind,
        options: String,
    ) -> Result<String, String> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let t = now();
        p.retain(|_, c| c.expires > t - 60);
        let open = p
            .values()
            .filter(|c| c.user == user && c.outcome == Outcome::Pending && c.expires > t)
            .count();
        if open >= cfg.webauthn.max_pending_per_user as usize {
            return Err("too many open links for this user; wait for them to expire".into());
        }
        let tok = token()?;
        p.insert(
            tok.clone(),
            Ceremony {
                user: user.to_string(),
                kind,
                options,
                expires: t + cfg.webauthn.link_seconds as i64,
                outcome: Outcome::Pending,
            },
        );
        Ok(tok)
    }

    pub fn begin_register(
        &self,
        cfg: &Config,
        store: &Store,
        key: &crate::crypto::HostKey,
        user: &str,
        name: &str,
    ) -> Result<String, String> {
        let existing = store
            .webauthn_credentials(user)
            .map_err(|e| e.to_string())?;
        let local = store.local_keys(user).map_err(|e| e.to_string())?;
        if existing.iter().any(|c| c.name == name) || local.iter().any(|k| k.name == name) {
            return Err(format!("you already have a key named {name:?}"));
        }
        let exclude: Vec<CredentialID> = existing
            .iter()
            .filter_map(|c| serde_json::from_str::<Passkey>(&c.credential).ok())
            .map(|p| p.cred_id().clone())
            .collect();
        let (options, state) = self
            .webauthn
            .start_passkey_registration(user_handle(key, user), user, user, Some(exclude))
            .map_err(|e| format!("webauthn: {e}"))?;
        let json = serde_json::to_string(&options).map_err(|e| e.to_string())?;
        self.insert(
            cfg,
            user,
            Kind::Register {
                name: name.to_string(),
                state,
            },
            json,
        )
    }

    pub fn begin_login(&self, cfg: &Config, store: &Store, user: &str) -> Result<String, String> {
        let creds: Vec<Passkey> = store
            .webauthn_credentials(user)
            .map_err(|e| e.to_string())?
            .iter()
            .filter_map(|c| serde_json::from_str(&c.credential).ok())
            .collect();
        if creds.is_empty() {
            return Err("no security key is registered for this user".into());
        }
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&creds)
            .map_err(|e| format!("webauthn: {e}"))?;
        let json = serde_json::to_string(&options).map_err(|e| e.to_string())?;
        self.insert(cfg, user, Kind::Login { state }, json)
    }

    /// The options for the page, if the token is live and unused.
    pub fn options(&self, tok: &str) -> Option<(String, bool)> {
        let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.get(tok)
            .filter(|c| c.expires > now() && c.outcome == Outcome::Pending)
            .map(|c| (c.options.clone(), matches!(c.kind, Kind::Register { .. })))
    }

    /// Verifies what the browser posted and records the outcome.
    pub fn finish(&self, cfg: &Config, tok: &str, body: &[u8]) -> Result<(), String> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = p
            .get_mut(tok)
            .filter(|c| c.expires > now() && c.outcome == Outcome::Pending)
        else {
            return Err("this link has expired or was already used".into());
        };
        let result = match &c.kind {
            Kind::Register { name, state } => {
                serde_json::from_slice::<RegisterPublicKeyCredential>(body)
                    .map_err(|e| format!("bad registration: {e}"))
                    .and_then(|r| {
                        self.webauthn
                            .finish_passkey_registration(&r, state)
                            .map_err(|e| format!("registration refused: {e}"))
                    })
                    .and_then(|pk| save_new(cfg, &c.user, name, &pk).map(|_| name.clone()))
            }
            Kind::Login { state } => serde_json::from_slice::<PublicKeyCredential>(body)
                .map_err(|e| format!("bad assertion: {e}"))
                .and_then(|a| {
                    self.webauthn
                        .finish_passkey_authentication(&a, state)
                        .map_err(|e| format!("assertion refused: {e}"))
                })
                .and_then(|res| record_login(cfg, &c.user, &res)),
        };
        c.outcome = match &result {
            Ok(what) => Outcome::Approved(what.clone()),
            Err(e) => Outcome::Failed(e.clone()),
        };
        result.map(|_| ())
    }

    /// The outcome for the ceremony's owner; a finished ceremony is
    /// forgotten once read, so its token is dead.
    pub fn result(&self, tok: &str, user: &str) -> Outcome {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = p.get(tok).filter(|c| c.user == user) else {
            return Outcome::Failed("unknown or expired link".into());
        };
        let out = if c.outcome == Outcome::Pending && c.expires <= now() {
            Outcome::Failed("the link expired".into())
        } else {
            c.outcome.clone()
        };
        if out != Outcome::Pending {
            p.remove(tok);
        }
        out
    }
}

fn open(cfg: &Config) -> Result<Store, String> {
    Store::open_or_create(&cfg.db, cfg.busy_timeout_ms).map_err(|e| e.to_string())
}

fn save_new(cfg: &Config, user: &str, name: &str, pk: &Passkey) -> Result<(), String> {
    let json = serde_json::to_string(pk).map_err(|e| e.to_string())?;
    let mut store = open(cfg)?;
    let tx = store.write().map_err(|e| e.to_string())?;
    if !tx
        .add_webauthn(user, name, &json, now())
        .map_err(|e| e.to_string())?
    {
        return Err(format!("a key named {name:?} exists already"));
    }
    tx.commit().map_err(|e| e.to_string())
}

/// Finds the credential that signed, stores its new counter, and names it.
fn record_login(cfg: &Config, user: &str, res: &AuthenticationResult) -> Result<String, String> {
    let mut store = open(cfg)?;
    let creds = store
        .webauthn_credentials(user)
        .map_err(|e| e.to_string())?;
    for c in creds {
        let Ok(mut pk) = serde_json::from_str::<Passkey>(&c.credential) else {
            continue;
        };
        if pk.cred_id() == res.cred_id() {
            pk.update_credential(res);
            let json = serde_json::to_string(&pk).map_err(|e| e.to_string())?;
            let tx = store.write().map_err(|e| e.to_string())?;
            tx.update_webauthn(user, &c.name, &json, now())
                .map_err(|e| e.to_string())?;
            tx.commit().map_err(|e| e.to_string())?;
            return Ok(c.name);
        }
    }
    Err("the key that signed is not registered for this user".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::softkey::{SoftKey, alter};
    use serde_json::Value;

    const ORIGIN: &str = "http://localhost:8443";

    fn setup() -> (
        tempfile::TempDir,
        Config,
        Ceremonies,
        crate::crypto::HostKey,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config {
            db: dir.path().join("state/state.db"),
            key_file: dir.path().join("key"),
            ..Config::default()
        };
        cfg.webauthn.enabled = true;
        cfg.webauthn.public_url = ORIGIN.into();
        cfg.webauthn.max_pending_per_user = 20;
        let (key, _) = crate::crypto::HostKey::load_or_create(&cfg.key_file).unwrap();
        Store::open_or_create(&cfg.db, 1000).unwrap();
        let c = Ceremonies::new(&cfg).unwrap();
        (dir, cfg, c, key)
    }

    fn registered() -> (tempfile::TempDir, Config, Ceremonies, SoftKey) {
        let (d, cfg, c, key) = setup();
        let store = Store::open_existing(&cfg.db, 1000).unwrap();
        let tok = c
            .begin_register(&cfg, &store, &key, "root", "soft")
            .unwrap();
        let (opts, register) = c.options(&tok).unwrap();
        assert!(register);
        let mut sk = SoftKey::new();
        let body = sk.register(&serde_json::from_str(&opts).unwrap(), ORIGIN);
        c.finish(&cfg, &tok, body.to_string().as_bytes()).unwrap();
        assert_eq!(c.result(&tok, "root"), Outcome::Approved("soft".into()));
        (d, cfg, c, sk)
    }

    /// A login ceremony's options, as the page would fetch them.
    fn login(c: &Ceremonies, cfg: &Config) -> (String, Value) {
        let store = Store::open_existing(&cfg.db, 1000).unwrap();
        let tok = c.begin_login(cfg, &store, "root").unwrap();
        let (opts, _) = c.options(&tok).unwrap();
        (tok, serde_json::from_str(&opts).unwrap())
    }

    #[test]
    fn genuine_assertion_verifies_once_and_moves_the_counter() {
        let (_d, cfg, c, mut sk) = registered();
        let (tok, opts) = login(&c, &cfg);
        let body = sk.assert(&opts, ORIGIN);
        c.finish(&cfg, &tok, body.to_string().as_bytes()).unwrap();
        assert_eq!(c.result(&tok, "root"), Outcome::Approved("soft".into()));
        assert!(
            matches!(c.result(&tok, "root"), Outcome::Failed(_)),
            "read once, then dead"
        );
        let store = Store::open_existing(&cfg.db, 1000).unwrap();
        let stored = store.webauthn_credentials("root").unwrap();
        assert!(
            stored[0].credential.contains("\"counter\":1"),
            "{}",
            stored[0].credential
        );
        assert!(stored[0].last_used_at.is_some());
    }

    #[test]
    fn every_forgery_is_refused() {
        let (_d, cfg, c, mut sk) = registered();
        type Forge = Box<dyn Fn(&mut SoftKey, &Value) -> Value>;
        let cases: Vec<(&str, Forge)> = vec![
            (
                "wrong origin",
                Box::new(|sk, o| sk.assert(o, "http://evil.example")),
            ),
            (
                "wrong rp_id",
                Box::new(|sk, o| {
                    let mut o = o.clone();
                    o["publicKey"]["rpId"] = "evil.example".into();
                    sk.assert(&o, ORIGIN)
                }),
            ),
            (
                "wrong challenge",
                Box::new(|sk, o| {
                    let mut o = o.clone();
                    o["publicKey"]["challenge"] =
                        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into();
                    sk.assert(&o, ORIGIN)
                }),
            ),
            (
                "tampered signature",
                Box::new(|sk, o| {
                    let mut b = sk.assert(o, ORIGIN);
                    alter(&mut b, &["response", "signature"], |s| {
                        let n = s.len() - 2;
                        s[n] ^= 0x40;
                    });
                    b
                }),
            ),
            (
                "tampered authenticator data",
                Box::new(|sk, o| {
                    let mut b = sk.assert(o, ORIGIN);
                    alter(&mut b, &["response", "authenticatorData"], |a| a[33] ^= 1);
                    b
                }),
            ),
            (
                "unknown credential",
                Box::new(|_, o| SoftKey::new().assert(o, ORIGIN)),
            ),
        ];
        for (what, forge) in cases {
            let (tok, opts) = login(&c, &cfg);
            let body = forge(&mut sk, &opts);
            assert!(
                c.finish(&cfg, &tok, body.to_string().as_bytes()).is_err(),
                "{what} accepted"
            );
            assert!(
                matches!(c.result(&tok, "root"), Outcome::Failed(_)),
                "{what}"
            );
        }
        // A genuine assertion replayed on another challenge.
        let (tok_a, opts_a) = login(&c, &cfg);
        let body = sk.assert(&opts_a, ORIGIN);
        c.finish(&cfg, &tok_a, body.to_string().as_bytes()).unwrap();
        let (tok_b, _) = login(&c, &cfg);
        assert!(
            c.finish(&cfg, &tok_b, body.to_string().as_bytes()).is_err(),
            "replay accepted"
        );
        assert!(
            c.finish(&cfg, &tok_a, body.to_string().as_bytes()).is_err(),
            "token reused"
        );
        // Garbage and someone else's token.
        let (tok_c, _) = login(&c, &cfg);
        assert!(c.finish(&cfg, &tok_c, b"{not json").is_err());
        assert!(matches!(
            c.result(&tok_c, "someone-else"),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn open_links_per_user_are_limited() {
        let (_d, mut cfg, c, _) = registered();
        cfg.webauthn.max_pending_per_user = 2;
        let store = Store::open_existing(&cfg.db, 1000).unwrap();
        c.begin_login(&cfg, &store, "root").unwrap();
        c.begin_login(&cfg, &store, "root").unwrap();
        assert!(
            c.begin_login(&cfg, &store, "root")
                .unwrap_err()
                .contains("too many")
        );
    }
}
