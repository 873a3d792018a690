//! WebAuthn ceremonies for 2fad: short-lived, single-use links to a small
//! page that runs `navigator.credentials.create()`/`get()` in the user's
//! browser, and verification of what the browser posts back with
//! webauthn-rs (over webauthn-rs-core).
//!
//! A token is 32 random bytes (base64url); it is the only thing in the
//! link. A ceremony is bound to one user and dies when it has been used,
//! has expired, was cancelled, or its result has been read. Three kinds:
//! a login for the PAM module (its result is for root only), a
//! registration, and a proof: the user approves with one of their keys so
//! that 2fad lets them make one named change (see `broker`).
//!
//! The page shows what is being approved (user, host, service, source
//! address, time) and a matching code that the terminal shows too, so a
//! link passed on to someone else does not read as their own login.
//!
//! Login ceremonies and the user's own ones (registration, proof) have
//! separate quotas of `webauthn.max_pending_per_user`: neither can use up
//! the other.
//!
//! Pending ceremonies live in this process's memory, or, in fleet mode
//! (`store = "postgres"`), in the shared store ([`crate::shared`]), so
//! that any 2fad of the fleet serves any link.

use base64::Engine;
use p2fa_core::audit::{Audit, clean};
use p2fa_core::config::{Config, StoreKind};
use p2fa_core::factor::FactorId;
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::{KeyWarning, Store, StoreError, TxOps};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use webauthn_rs::prelude::*;

/// What a ceremony is for, with its webauthn-rs state.
pub enum Kind {
    Register {
        name: String,
        state: PasskeyRegistration,
    },
    /// A login for the PAM module.
    Login { state: PasskeyAuthentication },
    /// A proof of a key for the change `purpose`; 2fad counts it like a
    /// login (success or failure) when the browser posts the assertion.
    Proof {
        purpose: String,
        state: PasskeyAuthentication,
    },
}

impl Kind {
    fn is_login(&self) -> bool {
        matches!(self, Kind::Login { .. })
    }
}

/// Where a ceremony stands, as its owner (PAM module or CLI) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Approved(String),
    Failed(String),
}

/// Why a proof token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// Not approved in the browser yet (kept).
    Pending,
    /// Unknown, expired, used, for another change or another user, or
    /// refused in the browser.
    Refused(String),
}

/// What the approval page shows about a ceremony.
pub struct Context<'a> {
    /// `login`, `register` or `confirm`.
    pub action: &'a str,
    pub service: &'a str,
    pub rhost: &'a str,
    /// The key name (register) or the change (confirm).
    pub detail: &'a str,
}

struct Ceremony {
    user: String,
    /// The uid that asked for it (for the log).
    by_uid: u32,
    kind: Arc<Kind>,
    /// JSON for the page: creation or request options, plus `context`.
    options: String,
    expires: i64,
    outcome: Outcome,
    /// Being verified (the browser's answer arrived): a second answer
    /// for the same link is refused while the first is checked.
    busy: bool,
}

/// What the group committer decided about one assertion's counter,
/// inside the batch's transaction (see [`counter_step`]).
pub enum Verdict {
    /// Counter stored (and, for a proof, the success): the key's name.
    Stored(String),
    /// The counter did not rise above the stored one; the key warning is
    /// recorded in the same transaction.
    Clone {
        key: String,
        stored: u32,
        presented: u32,
    },
    /// No registered key of the user has the signing credential's id.
    Unknown,
}

/// Where pending ceremonies live.
enum Pending {
    /// One host (SQLite): this 2fad's memory.
    Memory(Mutex<HashMap<String, Ceremony>>),
    /// Fleet mode: the shared table, seen by every 2fad of the fleet.
    Shared(Box<crate::shared::Shared>),
}

pub struct Ceremonies {
    webauthn: Webauthn,
    /// Whose files to believe (the store): [`Trust::ROOT`] outside tests.
    trust: Trust,
    /// This machine's name, shown on the page.
    host: String,
    pending: Pending,
    /// Commits the counter updates of concurrent logins together
    /// ([`crate::commit`]).
    committer: crate::commit::Committer<Verdict>,
}

/// A new ceremony's link token and the matching code shown with it.
pub struct Started {
    pub token: String,
    pub code: String,
}

fn now() -> i64 {
    p2fa_core::clock::unix_now()
}

fn token() -> Result<String, String> {
    let b = p2fa_core::crypto::random_array::<32>().map_err(|e| e.to_string())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// Four digits for the user to compare between terminal and page.
fn matching_code() -> Result<String, String> {
    let b = p2fa_core::crypto::random_array::<4>().map_err(|e| e.to_string())?;
    Ok(format!("{:04}", u32::from_be_bytes(b) % 10_000))
}

/// A stable, non-guessable WebAuthn user handle for a login name.
fn user_handle(key: &p2fa_core::crypto::HostKey, user: &str) -> Uuid {
    let h = key.code_hash("webauthn-user-handle", user);
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    Uuid::from_bytes(b)
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

/// The credential id and signature counter an assertion presents, read
/// from the posted JSON (`rawId`, authenticator data bytes 33..37).
fn presented(body: &[u8]) -> Option<(Vec<u8>, u32)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = b64(v["rawId"].as_str()?)?;
    let data = b64(v["response"]["authenticatorData"].as_str()?)?;
    let counter = u32::from_be_bytes(data.get(33..37)?.try_into().ok()?);
    Some((id, counter))
}

/// The credential id and counter on record, from a stored credential.
fn on_record(credential: &str) -> Option<(Vec<u8>, u32)> {
    let v: serde_json::Value = serde_json::from_str(credential).ok()?;
    let id = b64(v["cred"]["cred_id"].as_str()?)?;
    let counter = u32::try_from(v["cred"]["counter"].as_u64()?).ok()?;
    Some((id, counter))
}

impl Ceremonies {
    pub fn new(cfg: &Config, trust: Trust) -> Result<Ceremonies, String> {
        let origin = Url::parse(&cfg.webauthn.public_url)
            .map_err(|e| format!("webauthn.public_url: {e}"))?;
        let webauthn = WebauthnBuilder::new(&cfg.webauthn.rp_id, &origin)
            .map_err(|e| format!("webauthn: {e}"))?
            .rp_name(&cfg.webauthn.rp_name)
            .timeout(std::time::Duration::from_secs(cfg.webauthn.link_seconds))
            .build()
            .map_err(|e| format!("webauthn: {e}"))?;
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The configured store: SQLite's file, or the fleet database.
        let store_cfg = cfg.clone();
        let committer = crate::commit::Committer::start(Box::new(move || open(&store_cfg, trust)))?;
        let pending = match cfg.store {
            StoreKind::Sqlite => Pending::Memory(Mutex::new(HashMap::new())),
            StoreKind::Postgres => {
                Pending::Shared(Box::new(crate::shared::Shared::new(cfg, trust)))
            }
        };
        Ok(Ceremonies {
            webauthn,
            trust,
            host,
            pending,
            committer,
        })
    }

    /// Adds a ceremony, within its quota; `options` is the webauthn-rs
    /// challenge, to which the page's context is added.
    fn insert(
        &self,
        cfg: &Config,
        user: &str,
        by_uid: u32,
        kind: Kind,
        options: serde_json::Value,
        ctx: &Context,
    ) -> Result<Started, String> {
        let t = now();
        let login = kind.is_login();
        let too_many = || {
            format!(
                "too many open {} links for this user; finish or cancel them, or wait {} seconds",
                if login {
                    "login"
                } else {
                    "registration and confirmation"
                },
                cfg.webauthn.link_seconds
            )
        };
        let tok = token()?;
        let code = matching_code()?;
        let mut options = options;
        options["context"] = serde_json::json!({
            "action": ctx.action,
            "user": user,
            "host": self.host,
            "service": ctx.service,
            "rhost": ctx.rhost,
            "detail": ctx.detail,
            "time": t,
            "code": code,
        });
        let expires = t + cfg.webauthn.link_seconds as i64;
        let p = match &self.pending {
            Pending::Memory(p) => p,
            Pending::Shared(s) => {
                let (service, rhost) = (ctx.service, ctx.rhost);
                let options = options.to_string();
                return match s.insert(
                    &tok, user, by_uid, &kind, service, rhost, options, t, expires,
                )? {
                    true => Ok(Started { token: tok, code }),
                    false => Err(too_many()),
                };
            }
        };
        let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
        p.retain(|_, c| c.expires > t - 60);
        let open = p
            .values()
            .filter(|c| {
                c.user == user
                    && c.kind.is_login() == login
                    && c.outcome == Outcome::Pending
                    && c.expires > t
            })
            .count();
        if open >= cfg.webauthn.max_pending_per_user as usize {
            return Err(too_many());
        }
        p.insert(
            tok.clone(),
            Ceremony {
                user: user.to_string(),
                by_uid,
                kind: Arc::new(kind),
                options: options.to_string(),
                expires,
                outcome: Outcome::Pending,
                busy: false,
            },
        );
        Ok(Started { token: tok, code })
    }

    pub fn begin_register(
        &self,
        cfg: &Config,
        store: &Store,
        key: &p2fa_core::crypto::HostKey,
        user: &str,
        name: &str,
        by_uid: u32,
    ) -> Result<Started, String> {
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
        let json = serde_json::to_value(&options).map_err(|e| e.to_string())?;
        let ctx = Context {
            action: "register",
            service: "2fa-enroll",
            rhost: "",
            detail: name,
        };
        let kind = Kind::Register {
            name: name.to_string(),
            state,
        };
        self.insert(cfg, user, by_uid, kind, json, &ctx)
    }

    fn begin_assertion(
        &self,
        store: &Store,
        user: &str,
    ) -> Result<(serde_json::Value, PasskeyAuthentication), String> {
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
        let json = serde_json::to_value(&options).map_err(|e| e.to_string())?;
        Ok((json, state))
    }

    /// A login for the PAM module (`service`, `rhost` from PAM).
    pub fn begin_login(
        &self,
        cfg: &Config,
        store: &Store,
        user: &str,
        service: &str,
        rhost: &str,
    ) -> Result<Started, String> {
        let (json, state) = self.begin_assertion(store, user)?;
        let ctx = Context {
            action: "login",
            service,
            rhost,
            detail: "",
        };
        self.insert(cfg, user, 0, Kind::Login { state }, json, &ctx)
    }

    /// A proof of one of `user`'s keys for the change `purpose`.
    pub fn begin_proof(
        &self,
        cfg: &Config,
        store: &Store,
        user: &str,
        purpose: &str,
        by_uid: u32,
    ) -> Result<Started, String> {
        let (json, state) = self.begin_assertion(store, user)?;
        let ctx = Context {
            action: "confirm",
            service: "2fa-enroll",
            rhost: "",
            detail: purpose,
        };
        let kind = Kind::Proof {
            purpose: purpose.to_string(),
            state,
        };
        self.insert(cfg, user, by_uid, kind, json, &ctx)
    }

    /// The options for the page, if the token is live and unused.
    pub fn options(&self, tok: &str) -> Option<(String, bool)> {
        let p = match &self.pending {
            Pending::Memory(p) => p,
            Pending::Shared(s) => return s.options(tok, now()),
        };
        let p = p.lock().unwrap_or_else(|e| e.into_inner());
        p.get(tok)
            .filter(|c| c.expires > now() && c.outcome == Outcome::Pending && !c.busy)
            .map(|c| (c.options.clone(), matches!(*c.kind, Kind::Register { .. })))
    }

    /// Verifies what the browser posted and records the outcome.
    ///
    /// The ceremonies' lock is held only to claim the link (marked busy,
    /// so a second answer to it is refused) and to record the outcome:
    /// the checks run unlocked and in parallel with other ceremonies', and
    /// a login's counter step waits for its batch's durable commit
    /// ([`crate::commit`]) before the outcome is recorded and the browser
    /// answered.
    pub fn finish(&self, cfg: &Config, tok: &str, body: &[u8]) -> Result<(), String> {
        let p = match &self.pending {
            Pending::Memory(p) => p,
            Pending::Shared(s) => {
                // Claimed fleet-wide first: no other 2fad verifies it too.
                let c = s.claim(tok, now())?;
                let result = self.verify(cfg, &c.user, c.by_uid, &c.kind, body);
                s.finish(tok, &result, now())?;
                return result.map(|_| ());
            }
        };
        let (user, by_uid, kind) = {
            let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
            let Some(c) = p
                .get_mut(tok)
                .filter(|c| c.expires > now() && c.outcome == Outcome::Pending && !c.busy)
            else {
                return Err("this link has expired or was already used".into());
            };
            c.busy = true;
            (c.user.clone(), c.by_uid, c.kind.clone())
        };
        let result = self.verify(cfg, &user, by_uid, &kind, body);
        let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
        // Gone if cancelled or read as expired meanwhile: nothing to tell.
        if let Some(c) = p.get_mut(tok) {
            c.busy = false;
            c.outcome = match &result {
                Ok(what) => Outcome::Approved(what.clone()),
                Err(e) => Outcome::Failed(e.clone()),
            };
        }
        result.map(|_| ())
    }

    fn verify(
        &self,
        cfg: &Config,
        user: &str,
        by_uid: u32,
        kind: &Kind,
        body: &[u8],
    ) -> Result<String, String> {
        let mut audit = Log::new(&cfg.log_socket);
        match kind {
            Kind::Register { name, state } => {
                serde_json::from_slice::<RegisterPublicKeyCredential>(body)
                    .map_err(|e| format!("bad registration: {e}"))
                    .and_then(|r| {
                        self.webauthn
                            .finish_passkey_registration(&r, state)
                            .map_err(|e| format!("registration refused: {e}"))
                    })
                    .and_then(|pk| save_new(cfg, self.trust, user, name, &pk).map(|_| name.clone()))
                    .inspect(|name| {
                        audit.get().notice(&format!(
                            "factor added user={} factor=webauthn by uid={} via=2fad key={}",
                            clean(user),
                            by_uid,
                            clean(name)
                        ))
                    })
            }
            Kind::Login { state } => self.assertion(cfg, &mut audit, user, state, body, None),
            Kind::Proof { purpose, state } => {
                self.assertion(cfg, &mut audit, user, state, body, Some(purpose))
            }
        }
    }

    /// Verifies an assertion; a proof (`purpose`) is also counted here,
    /// as a success or failure of service 2fad (a login is counted by the
    /// PAM module that reads its result).
    fn assertion(
        &self,
        cfg: &Config,
        audit: &mut Log,
        user: &str,
        state: &PasskeyAuthentication,
        body: &[u8],
        purpose: Option<&str>,
    ) -> Result<String, String> {
        let verified = serde_json::from_slice::<PublicKeyCredential>(body)
            .map_err(|e| format!("bad assertion: {e}"))
            .and_then(|a| {
                self.webauthn
                    .finish_passkey_authentication(&a, state)
                    .map_err(|e| match e {
                        // Not above the counter when the ceremony began:
                        // certainly not above the one stored now.
                        WebauthnError::CredentialPossibleCompromise => String::new(),
                        e => format!("assertion refused: {e}"),
                    })
            });
        let result = match verified {
            Ok(res) => self.record_login(audit, user, &res, purpose.is_some()),
            Err(e) if e.is_empty() => match presented(body) {
                Some((id, counter)) => clone_refused(cfg, self.trust, audit, user, &id, counter),
                None => Err("assertion refused: signature counter went back".into()),
            },
            Err(e) => Err(e),
        };
        if let (Some(purpose), Err(e)) = (purpose, &result) {
            audit.get().warning(&format!(
                "webauthn proof refused user={} for={}: {}",
                clean(user),
                clean(purpose),
                p2fa_core::audit::detail(e)
            ));
            count_failure(cfg, self.trust, user)?;
        }
        result
    }

    /// The outcome for the ceremony's owner. A login's result is for root
    /// only (the PAM module): a user's shell reading it first would
    /// consume it and fail their own login. A finished login or
    /// registration is forgotten once read; an approved proof stays until
    /// the change it was given for uses it.
    pub fn result(&self, tok: &str, user: &str, root: bool) -> Result<Outcome, String> {
        let p = match &self.pending {
            Pending::Memory(p) => p,
            Pending::Shared(s) => return s.result(tok, user, root, now()),
        };
        let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = p.get(tok).filter(|c| c.user == user) else {
            return Ok(Outcome::Failed("unknown or expired link".into()));
        };
        if c.kind.is_login() && !root {
            return Err("only the PAM module (root) reads the result of a login".into());
        }
        let out = if c.outcome == Outcome::Pending && c.expires <= now() {
            Outcome::Failed("the link expired".into())
        } else {
            c.outcome.clone()
        };
        let keep = out == Outcome::Pending
            || (matches!(*c.kind, Kind::Proof { .. }) && matches!(out, Outcome::Approved(_)));
        if !keep {
            p.remove(tok);
        }
        Ok(out)
    }

    /// Ends a ceremony at once (the login or command gave up), freeing its
    /// place in the quota. Login ceremonies are root's to cancel.
    pub fn cancel(&self, tok: &str, user: &str, root: bool) -> bool {
        let p = match &self.pending {
            Pending::Memory(p) => p,
            Pending::Shared(s) => return s.cancel(tok, user, root),
        };
        let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
        match p.get(tok) {
            Some(c) if c.user == user && (root || !c.kind.is_login()) => {
                p.remove(tok);
                true
            }
            _ => false,
        }
    }

    /// Uses up an approved proof: it must be `user`'s, given for exactly
    /// `purpose`, live, and approved in the browser. Returns the key name.
    pub fn take_proof(&self, tok: &str, user: &str, purpose: &str) -> Result<String, ProofError> {
        let p = match &self.pending {
            Pending::Memory(p) => p,
            Pending::Shared(s) => return s.take_proof(tok, user, purpose, now()),
        };
        let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
        let refused = |m: &str| Err(ProofError::Refused(m.into()));
        let Some(c) = p.get(tok).filter(|c| c.user == user) else {
            return refused("that security-key approval is unknown, expired or already used");
        };
        match &*c.kind {
            Kind::Proof { purpose: given, .. } if given == purpose => {}
            Kind::Proof { .. } => {
                return refused("that security-key approval was given for another change");
            }
            _ => return refused("that link was not a confirmation of this change"),
        }
        if c.expires <= now() {
            p.remove(tok);
            return refused("the security-key approval expired; start again");
        }
        match c.outcome.clone() {
            Outcome::Pending => Err(ProofError::Pending),
            Outcome::Failed(e) => {
                p.remove(tok);
                Err(ProofError::Refused(format!(
                    "the security key was refused: {e}"
                )))
            }
            Outcome::Approved(name) => {
                p.remove(tok);
                Ok(name)
            }
        }
    }
}

fn open(cfg: &Config, trust: Trust) -> Result<Store, String> {
    crate::pool::open(cfg, trust).map_err(|e| e.to_string())
}

fn save_new(
    cfg: &Config,
    trust: Trust,
    user: &str,
    name: &str,
    pk: &Passkey,
) -> Result<(), String> {
    let json = serde_json::to_string(pk).map_err(|e| e.to_string())?;
    let mut store = open(cfg, trust)?;
    let tx = store.write().map_err(|e| e.to_string())?;
    if !tx
        .add_webauthn(user, name, &json, now())
        .map_err(|e| e.to_string())?
    {
        return Err(format!("a key named {name:?} exists already"));
    }
    tx.commit().map_err(|e| e.to_string())
}

fn count_failure(cfg: &Config, trust: Trust, user: &str) -> Result<(), String> {
    let mut store = open(cfg, trust)?;
    let tx = store.write().map_err(|e| e.to_string())?;
    tx.record_failure(user, now(), &cfg.rate_limit)
        .map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())
}

impl Ceremonies {
    /// Hands the counter step of a verified assertion to the group
    /// committer and waits until its batch is durably committed: only
    /// then is the assertion approved. A clone found there is logged
    /// here (its key warning was stored in the batch).
    fn record_login(
        &self,
        audit: &mut Log,
        user: &str,
        res: &AuthenticationResult,
        proof: bool,
    ) -> Result<String, String> {
        let (u, r) = (user.to_string(), res.clone());
        let work = Box::new(move |tx: &dyn TxOps| counter_step(tx, &u, &r, proof));
        match self.committer.submit(work)? {
            Verdict::Stored(name) => Ok(name),
            Verdict::Clone {
                key,
                stored,
                presented,
            } => Err(clone_logged(audit, user, &key, stored, presented)),
            Verdict::Unknown => Err("the key that signed is not registered for this user".into()),
        }
    }

    /// The group committer's counts (benchmark, tests).
    pub fn commit_stats(&self) -> &crate::commit::Stats {
        &self.committer.stats
    }

    #[cfg(test)]
    fn commit_gate(&self) -> &Mutex<()> {
        &self.committer.gate
    }
}

/// Inside the batch's write transaction: finds the credential that
/// signed and checks that its counter rose above the one stored now (not
/// the one from when the ceremony began: a clone may answer an old
/// ceremony after newer logins, and an earlier job of the same batch may
/// just have moved it), then stores the new counter; a proof is recorded
/// as a success of service 2fad in the same transaction. A counter that
/// did not rise is recorded as a key warning instead.
fn counter_step(
    tx: &dyn TxOps,
    user: &str,
    res: &AuthenticationResult,
    proof: bool,
) -> Result<Verdict, StoreError> {
    for c in tx.webauthn_credentials(user)? {
        let Ok(mut pk) = serde_json::from_str::<Passkey>(&c.credential) else {
            continue;
        };
        if pk.cred_id() != res.cred_id() {
            continue;
        }
        let stored = on_record(&c.credential).map_or(0, |(_, n)| n);
        let presented = res.counter();
        if presented <= stored && !(presented == 0 && stored == 0) {
            let w = KeyWarning {
                key: c.name.clone(),
                at: now(),
                stored,
                presented,
            };
            tx.add_key_warning(user, &w)?;
            return Ok(Verdict::Clone {
                key: c.name,
                stored,
                presented,
            });
        }
        pk.update_credential(res);
        let json = serde_json::to_string(&pk).map_err(|e| StoreError::Other(e.to_string()))?;
        tx.update_webauthn(user, &c.name, &json, now())?;
        if proof {
            tx.record_success(user, now(), "2fad", "", FactorId::Webauthn.as_str())?;
        }
        return Ok(Verdict::Stored(c.name));
    }
    Ok(Verdict::Unknown)
}

/// webauthn-rs refused a counter that went back: find the key by the id
/// it presented and record the clone.
fn clone_refused(
    cfg: &Config,
    trust: Trust,
    audit: &mut Log,
    user: &str,
    id: &[u8],
    presented: u32,
) -> Result<String, String> {
    let store = open(cfg, trust)?;
    let creds = store
        .webauthn_credentials(user)
        .map_err(|e| e.to_string())?;
    drop(store);
    for c in creds {
        if let Some((cid, stored)) = on_record(&c.credential)
            && cid == id
        {
            return clone_found(cfg, trust, audit, user, &c.name, stored, presented);
        }
    }
    Err("the key that signed is not registered for this user".into())
}

/// Records and logs a key whose counter did not rise; always an error.
fn clone_found(
    cfg: &Config,
    trust: Trust,
    audit: &mut Log,
    user: &str,
    key: &str,
    stored: u32,
    presented: u32,
) -> Result<String, String> {
    let w = KeyWarning {
        key: key.to_string(),
        at: now(),
        stored,
        presented,
    };
    let refused = clone_logged(audit, user, key, stored, presented);
    let mut store = open(cfg, trust)?;
    let tx = store.write().map_err(|e| e.to_string())?;
    tx.add_key_warning(user, &w).map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())?;
    Err(refused)
}

/// 2fad's audit log for one answer, connected to the log socket only
/// when there is something to log: most answers are approved logins,
/// which log nothing here (the PAM module logs the login), and a socket
/// made and closed for each of them was ~4% of a verification's CPU
/// (`perf`, the webauthn_verify example).
struct Log<'a> {
    socket: &'a Path,
    audit: Option<Audit>,
}

impl<'a> Log<'a> {
    fn new(socket: &'a Path) -> Log<'a> {
        Log {
            socket,
            audit: None,
        }
    }

    fn get(&mut self) -> &mut Audit {
        self.audit
            .get_or_insert_with(|| Audit::new(self.socket, "2fad", false))
    }
}

/// Logs a key whose counter did not rise; returns the refusal.
fn clone_logged(audit: &mut Log, user: &str, key: &str, stored: u32, presented: u32) -> String {
    audit.get().warning(&format!(
        "webauthn clone detected user={} key={} counter presented={presented} stored={stored}: \
         the key's signature counter did not rise, so another copy of it may be in use; \
         assertion refused (see 2fa-enroll status)",
        clean(user),
        clean(key)
    ));
    format!(
        "the security key {key:?} presented signature counter {presented}, not above the stored {stored}: \
         it may have been cloned; refused"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2fa_testkit::softkey::{SoftKey, alter};
    use serde_json::Value;

    const ORIGIN: &str = "http://localhost:8443";

    fn setup() -> (
        tempfile::TempDir,
        Config,
        Ceremonies,
        p2fa_core::crypto::HostKey,
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
        let (key, _) =
            p2fa_core::crypto::HostKey::load_or_create(&cfg.key_file, Trust::test_runner())
                .unwrap();
        Store::open_or_create(&cfg.db, 1000, Trust::test_runner()).unwrap();
        let c = Ceremonies::new(&cfg, Trust::test_runner()).unwrap();
        (dir, cfg, c, key)
    }

    fn registered() -> (tempfile::TempDir, Config, Ceremonies, SoftKey) {
        let (d, cfg, c, key) = setup();
        let store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
        let tok = c
            .begin_register(&cfg, &store, &key, "root", "soft", 0)
            .unwrap()
            .token;
        let (opts, register) = c.options(&tok).unwrap();
        assert!(register);
        let mut sk = SoftKey::new();
        let body = sk.register(&serde_json::from_str(&opts).unwrap(), ORIGIN);
        c.finish(&cfg, &tok, body.to_string().as_bytes()).unwrap();
        assert_eq!(
            c.result(&tok, "root", true),
            Ok(Outcome::Approved("soft".into()))
        );
        (d, cfg, c, sk)
    }

    /// A login ceremony's options, as the page would fetch them.
    fn login(c: &Ceremonies, cfg: &Config) -> (String, Value) {
        let store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
        let tok = c
            .begin_login(cfg, &store, "root", "sshd", "")
            .unwrap()
            .token;
        let (opts, _) = c.options(&tok).unwrap();
        (tok, serde_json::from_str(&opts).unwrap())
    }

    #[test]
    fn genuine_assertion_verifies_once_and_moves_the_counter() {
        let (_d, cfg, c, mut sk) = registered();
        let (tok, opts) = login(&c, &cfg);
        let body = sk.assert(&opts, ORIGIN);
        c.finish(&cfg, &tok, body.to_string().as_bytes()).unwrap();
        assert_eq!(
            c.result(&tok, "root", true),
            Ok(Outcome::Approved("soft".into()))
        );
        assert!(
            matches!(c.result(&tok, "root", true), Ok(Outcome::Failed(_))),
            "read once, then dead"
        );
        let store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
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
                matches!(c.result(&tok, "root", true), Ok(Outcome::Failed(_))),
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
            c.result(&tok_c, "someone-else", true),
            Ok(Outcome::Failed(_))
        ));
    }

    #[test]
    fn open_links_per_user_are_limited() {
        let (_d, mut cfg, c, _) = registered();
        cfg.webauthn.max_pending_per_user = 2;
        let store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
        let key = p2fa_core::crypto::HostKey::load(&cfg.key_file, Trust::test_runner()).unwrap();
        let login = || c.begin_login(&cfg, &store, "root", "sshd", "");
        let first = login().unwrap();
        login().unwrap();
        assert!(login().err().unwrap().contains("too many open login links"));
        // Registrations and proofs have their own quota ...
        c.begin_register(&cfg, &store, &key, "root", "r1", 0)
            .unwrap();
        c.begin_proof(&cfg, &store, "root", "backup", 0).unwrap();
        assert!(
            c.begin_register(&cfg, &store, &key, "root", "r3", 0)
                .err()
                .unwrap()
                .contains("too many")
        );
        // ... and a cancelled login frees its place at once.
        assert!(c.cancel(&first.token, "root", true));
        login().unwrap();
    }

    #[test]
    fn login_results_and_cancels_are_for_root_only() {
        let (_d, cfg, c, _) = registered();
        let (tok, _) = login(&c, &cfg);
        assert!(c.result(&tok, "root", false).is_err());
        assert!(!c.cancel(&tok, "root", false));
        assert_eq!(c.result(&tok, "root", true), Ok(Outcome::Pending));
    }

    #[test]
    fn a_proof_is_single_use_and_bound_to_its_user_and_change() {
        let (_d, cfg, c, mut sk) = registered();
        let store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
        let tok = c
            .begin_proof(&cfg, &store, "root", "backup", 0)
            .unwrap()
            .token;
        assert_eq!(
            c.take_proof(&tok, "root", "backup"),
            Err(ProofError::Pending)
        );
        let (opts, _) = c.options(&tok).unwrap();
        let opts: Value = serde_json::from_str(&opts).unwrap();
        assert_eq!(opts["context"]["action"], "confirm");
        assert_eq!(opts["context"]["detail"], "backup");
        let body = sk.assert(&opts, ORIGIN);
        c.finish(&cfg, &tok, body.to_string().as_bytes()).unwrap();
        // The CLI may look (it stays), but not use it for something else.
        assert_eq!(
            c.result(&tok, "root", false),
            Ok(Outcome::Approved("soft".into()))
        );
        assert!(matches!(
            c.take_proof(&tok, "root", "remove totp"),
            Err(ProofError::Refused(_))
        ));
        assert!(matches!(
            c.take_proof(&tok, "bob", "backup"),
            Err(ProofError::Refused(_))
        ));
        assert_eq!(c.take_proof(&tok, "root", "backup"), Ok("soft".into()));
        assert!(matches!(
            c.take_proof(&tok, "root", "backup"),
            Err(ProofError::Refused(_))
        ));
        // A login ceremony is no proof.
        let (tok, opts) = login(&c, &cfg);
        let body = sk.assert(&opts, ORIGIN);
        c.finish(&cfg, &tok, body.to_string().as_bytes()).unwrap();
        assert!(matches!(
            c.take_proof(&tok, "root", "backup"),
            Err(ProofError::Refused(_))
        ));
        // The proof counted as a success of 2fad.
        let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
        let st = store.status("root").unwrap();
        assert_eq!(st.last_success.unwrap().service, "2fad");
    }

    #[test]
    fn a_counter_at_or_below_the_stored_one_is_a_recorded_clone() {
        let (_d, cfg, c, mut sk) = registered();
        // Ceremony A begins; two newer logins move the counter to 2.
        let (stale, stale_opts) = login(&c, &cfg);
        for _ in 0..2 {
            let (tok, opts) = login(&c, &cfg);
            let body = sk.assert(&opts, ORIGIN);
            c.finish(&cfg, &tok, body.to_string().as_bytes()).unwrap();
        }
        // A copy of the key, one login behind, answers A with counter 2.
        sk.counter -= 1;
        let body = sk.assert(&stale_opts, ORIGIN);
        let err = c
            .finish(&cfg, &stale, body.to_string().as_bytes())
            .unwrap_err();
        assert!(err.contains("cloned"), "{err}");
        // Below the counter at A's start: webauthn-rs refuses; still a clone.
        let (tok, opts) = login(&c, &cfg);
        sk.counter = 0;
        let body = sk.assert(&opts, ORIGIN);
        assert!(
            c.finish(&cfg, &tok, body.to_string().as_bytes())
                .unwrap_err()
                .contains("cloned")
        );
        let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
        let w = store.status("root").unwrap().key_warnings;
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!((w[1].stored, w[1].presented), (2, 2));
        assert_eq!((w[0].stored, w[0].presented), (2, 1));
    }
}

/// Group commit ([`crate::commit`]) through the real verify path: many
/// concurrent ceremonies, two answers with one counter, a failing store.
#[cfg(test)]
mod group_tests {
    use super::*;
    use p2fa_testkit::softkey::SoftKey;
    use serde_json::Value;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    const ORIGIN: &str = "http://localhost:8443";

    fn config(dir: &std::path::Path) -> Config {
        let mut cfg = Config {
            db: dir.join("state/state.db"),
            key_file: dir.join("key"),
            ..Config::default()
        };
        cfg.webauthn.enabled = true;
        cfg.webauthn.public_url = ORIGIN.into();
        cfg.webauthn.max_pending_per_user = 50;
        cfg
    }

    fn start(cfg: &Config) -> (Ceremonies, p2fa_core::crypto::HostKey) {
        let (key, _) =
            p2fa_core::crypto::HostKey::load_or_create(&cfg.key_file, Trust::test_runner())
                .unwrap();
        Store::open_or_create(&cfg.db, 1000, Trust::test_runner()).unwrap();
        (Ceremonies::new(cfg, Trust::test_runner()).unwrap(), key)
    }

    fn store(cfg: &Config) -> Store {
        Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap()
    }

    fn register(
        c: &Ceremonies,
        cfg: &Config,
        key: &p2fa_core::crypto::HostKey,
        user: &str,
    ) -> SoftKey {
        let tok = c
            .begin_register(cfg, &store(cfg), key, user, "soft", 0)
            .unwrap()
            .token;
        let mut sk = SoftKey::new();
        let opts = serde_json::from_str(&c.options(&tok).unwrap().0).unwrap();
        c.finish(cfg, &tok, sk.register(&opts, ORIGIN).to_string().as_bytes())
            .unwrap();
        sk
    }

    /// A login link for `user` and the assertion `sk` gives for it.
    fn answered(c: &Ceremonies, cfg: &Config, user: &str, sk: &mut SoftKey) -> (String, String) {
        let tok = c
            .begin_login(cfg, &store(cfg), user, "sshd", "")
            .unwrap()
            .token;
        let opts: Value = serde_json::from_str(&c.options(&tok).unwrap().0).unwrap();
        (tok, sk.assert(&opts, ORIGIN).to_string())
    }

    fn stored_counter(cfg: &Config, user: &str) -> u32 {
        let creds = store(cfg).webauthn_credentials(user).unwrap();
        on_record(&creds[0].credential).unwrap().1
    }

    /// Waits until `n` jobs have been handed to the committer.
    fn until_submitted(c: &Ceremonies, n: u64) {
        let deadline = p2fa_core::clock::Deadline::after(Duration::from_secs(30));
        while c.commit_stats().submitted.load(Ordering::SeqCst) < n {
            assert!(!deadline.passed(), "jobs never arrived");
            p2fa_core::clock::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn concurrent_logins_all_pass_and_every_counter_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let (c, key) = start(&cfg);
        let users: Vec<String> = (0..8).map(|i| format!("user{i}")).collect();
        let keys: Vec<SoftKey> = users.iter().map(|u| register(&c, &cfg, &key, u)).collect();
        const ROUNDS: u32 = 12;
        std::thread::scope(|s| {
            for (user, mut sk) in users.iter().zip(keys) {
                let (c, cfg) = (&c, &cfg);
                s.spawn(move || {
                    for _ in 0..ROUNDS {
                        let (tok, body) = answered(c, cfg, user, &mut sk);
                        c.finish(cfg, &tok, body.as_bytes()).unwrap();
                        assert_eq!(
                            c.result(&tok, user, true),
                            Ok(Outcome::Approved("soft".into()))
                        );
                    }
                });
            }
        });
        for u in &users {
            assert_eq!(stored_counter(&cfg, u), ROUNDS, "{u}");
        }
        let st = c.commit_stats();
        assert_eq!(st.committed.load(Ordering::SeqCst), 8 * u64::from(ROUNDS));
        assert_eq!(st.failed.load(Ordering::SeqCst), 0);

        // Held back at the committer, 8 concurrent answers form one batch:
        // one transaction, and each still gets its own verdict.
        let gate = c.commit_gate().lock().unwrap();
        let before = st.submitted.load(Ordering::SeqCst);
        let batches = st.batches.load(Ordering::SeqCst);
        let mut tokens = Vec::new();
        std::thread::scope(|s| {
            let mut handles = Vec::new();
            for (i, u) in users.iter().enumerate() {
                // New users: the first keys were moved into their threads.
                let user = format!("{u}-b{i}");
                let mut sk = register(&c, &cfg, &key, &user);
                let (tok, body) = answered(&c, &cfg, &user, &mut sk);
                tokens.push((user.clone(), tok.clone()));
                let (c, cfg) = (&c, &cfg);
                handles.push(s.spawn(move || c.finish(cfg, &tok, body.as_bytes())));
            }
            until_submitted(&c, before + 8);
            drop(gate);
            for h in handles {
                h.join().unwrap().unwrap();
            }
        });
        assert_eq!(
            st.batches.load(Ordering::SeqCst),
            batches + 1,
            "not one batch"
        );
        assert!(st.largest.load(Ordering::SeqCst) >= 8);
        for (user, tok) in tokens {
            assert_eq!(
                c.result(&tok, &user, true),
                Ok(Outcome::Approved("soft".into()))
            );
            assert_eq!(stored_counter(&cfg, &user), 1, "{user}");
        }
    }

    #[test]
    fn two_answers_with_one_counter_cannot_both_pass() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let (c, key) = start(&cfg);
        let mut sk = register(&c, &cfg, &key, "root");
        // Twice: held back into one batch (the second job sees the first
        // one's uncommitted counter), then racing freely.
        for (round, held) in [(1u32, true), (2, false)] {
            let (tok_a, body_a) = answered(&c, &cfg, "root", &mut sk);
            sk.counter -= 1; // a copy of the key, same counter
            let (tok_b, body_b) = answered(&c, &cfg, "root", &mut sk);
            assert!(body_a != body_b);
            let st = c.commit_stats();
            let before = st.submitted.load(Ordering::SeqCst);
            let gate = held.then(|| c.commit_gate().lock().unwrap());
            let results: Vec<Result<(), String>> = std::thread::scope(|s| {
                let a = s.spawn(|| c.finish(&cfg, &tok_a, body_a.as_bytes()));
                let b = s.spawn(|| c.finish(&cfg, &tok_b, body_b.as_bytes()));
                if held {
                    until_submitted(&c, before + 2);
                }
                drop(gate);
                vec![a.join().unwrap(), b.join().unwrap()]
            });
            let passed = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(passed, 1, "round {round}: {results:?}");
            let refused = results.iter().find_map(|r| r.clone().err()).unwrap();
            assert!(refused.contains("cloned"), "{refused}");
            assert_eq!(stored_counter(&cfg, "root"), round);
            if held {
                assert!(st.largest.load(Ordering::SeqCst) >= 2, "not one batch");
            }
            let approved = [&tok_a, &tok_b]
                .iter()
                .filter(|t| c.result(t, "root", true) == Ok(Outcome::Approved("soft".into())))
                .count();
            assert_eq!(approved, 1, "round {round}");
        }
        let w = store(&cfg).status("root").unwrap().key_warnings;
        assert_eq!(w.len(), 2, "{w:?}");
        // Newest first.
        assert_eq!((w[0].stored, w[0].presented), (2, 2));
        assert_eq!((w[1].stored, w[1].presented), (1, 1));
    }
}
