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
        if existing.iter().any(|c| c.name == name) {
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
