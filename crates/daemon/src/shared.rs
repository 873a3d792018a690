//! Fleet mode (`store = "postgres"`): 2fad's pending WebAuthn ceremonies
//! in the shared table `p2fa.webauthn_ceremonies` instead of its memory,
//! so that several 2fads behind one name (`webauthn.public_url`, one
//! `rp_id`) serve every link: any of them shows the page and verifies
//! the answer, and the 2fad whose PAM module (or 2fa-enroll) started the
//! ceremony reads the result from the table.
//!
//! - Only a hash of the link's token is stored ([`token_hash`]): someone
//!   who can read the table cannot open or answer a link.
//! - The webauthn-rs state (challenge, allowed credentials) is stored
//!   with the row (webauthn-rs' `danger-allow-state-serialisation`): it
//!   stays server-side, in the root-only fleet database, never in the
//!   browser.
//! - An answer is verified by one 2fad only: it first claims the row
//!   (one conditional UPDATE), then verifies, then writes the result.
//! - A result is taken once: reading a final result deletes the row, and
//!   only the reader whose DELETE removed it gets the outcome.
//! - A login's or proof's result is read, and a ceremony cancelled, only
//!   through the 2fad of the host that started it (`host_id`).
//! - Expired rows are deleted by the next insert, a minute after expiry.

use super::webauthn::{Kind, Outcome, ProofError};
use p2fa_core::config::Config;
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::{StoreError, StoredCeremony, TxOps};
use sha2::{Digest, Sha256};

/// The key of a ceremony's row: SHA-256 of the link token (32 random
/// bytes, so no salt or key is needed).
pub fn token_hash(tok: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"p2fa webauthn ceremony\0");
    h.update(tok.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(&h.finalize());
    out
}

/// The shared table, through the configured (fleet) store.
pub struct Shared {
    cfg: Config,
    trust: Trust,
    /// This host's name in the fleet (`host_id`).
    host: String,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Register { .. } => "register",
            Kind::Login { .. } => "login",
            Kind::Proof { .. } => "proof",
        }
    }

    /// The kind's data as the row's `state` (JSON).
    fn to_state(&self) -> Result<String, String> {
        let v = match self {
            Kind::Register { name, state } => {
                serde_json::json!({"name": name, "state": serde_json::to_value(state).map_err(err)?})
            }
            Kind::Login { state } => {
                serde_json::json!({"state": serde_json::to_value(state).map_err(err)?})
            }
            Kind::Proof { purpose, state } => {
                serde_json::json!({"purpose": purpose, "state": serde_json::to_value(state).map_err(err)?})
            }
        };
        Ok(v.to_string())
    }

    fn from_stored(kind: &str, state: &str) -> Result<Kind, String> {
        let bad = |what: &str| format!("a stored ceremony with a malformed {what}");
        let v: serde_json::Value = serde_json::from_str(state).map_err(|_| bad("state"))?;
        let text = |k: &str| v[k].as_str().map(str::to_string).ok_or_else(|| bad(k));
        let st = v["state"].clone();
        Ok(match kind {
            "register" => Kind::Register {
                name: text("name")?,
                state: serde_json::from_value(st).map_err(|_| bad("state"))?,
            },
            "login" => Kind::Login {
                state: serde_json::from_value(st).map_err(|_| bad("state"))?,
            },
            "proof" => Kind::Proof {
                purpose: text("purpose")?,
                state: serde_json::from_value(st).map_err(|_| bad("state"))?,
            },
            _ => return Err(bad("kind")),
        })
    }
}

fn outcome(c: &StoredCeremony, now: i64) -> Outcome {
    match &c.result {
        None if c.expires_at <= now => Outcome::Failed("the link expired".into()),
        None => Outcome::Pending,
        Some((true, name)) => Outcome::Approved(name.clone()),
        Some((false, why)) => Outcome::Failed(why.clone()),
    }
}

/// What [`Shared::claim`] hands to the verification.
pub struct Claimed {
    pub user: String,
    pub by_uid: u32,
    pub kind: Kind,
}

impl Shared {
    pub fn new(cfg: &Config, trust: Trust) -> Shared {
        Shared {
            cfg: cfg.clone(),
            trust,
            host: p2fa_core::config::host_name(&cfg.host_id),
        }
    }

    /// Runs `f` in one write transaction of the fleet store and commits.
    fn tx<T>(&self, f: impl FnOnce(&dyn TxOps) -> Result<T, StoreError>) -> Result<T, String> {
        let mut store = crate::pool::open(&self.cfg, self.trust).map_err(err)?;
        let tx = store.write().map_err(err)?;
        let v = f(&*tx).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(v)
    }

    /// Adds a ceremony; false if the user is over the quota.
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &self,
        tok: &str,
        user: &str,
        by_uid: u32,
        kind: &Kind,
        service: &str,
        rhost: &str,
        options: String,
        created_at: i64,
        expires_at: i64,
    ) -> Result<bool, String> {
        let row = StoredCeremony {
            user: user.to_string(),
            by_uid,
            kind: kind.name().to_string(),
            service: service.to_string(),
            rhost: rhost.to_string(),
            state: kind.to_state()?,
            options,
            created_at,
            expires_at,
            ..StoredCeremony::default()
        };
        let max = self.cfg.webauthn.max_pending_per_user;
        self.tx(|tx| tx.insert_ceremony(&token_hash(tok), &row, max, created_at))
    }

    /// The page's options and whether it registers, for a live, unused
    /// link (any host's).
    pub fn options(&self, tok: &str, now: i64) -> Option<(String, bool)> {
        match self.tx(|tx| tx.ceremony(&token_hash(tok))) {
            Ok(c) => c
                .filter(|c| c.expires_at > now && c.result.is_none() && !c.busy)
                .map(|c| (c.options, c.kind == "register")),
            Err(e) => {
                eprintln!("2fad: web: options: {}", p2fa_core::audit::detail(&e));
                None
            }
        }
    }

    /// Claims a live, unanswered link for verifying its answer (any
    /// host's); at most one claim of a link succeeds, fleet-wide.
    pub fn claim(&self, tok: &str, now: i64) -> Result<Claimed, String> {
        let h = token_hash(tok);
        let Some(c) = self.tx(|tx| tx.claim_ceremony(&h, now))? else {
            return Err("this link has expired or was already used".into());
        };
        match Kind::from_stored(&c.kind, &c.state) {
            Ok(kind) => Ok(Claimed {
                user: c.user,
                by_uid: c.by_uid,
                kind,
            }),
            Err(e) => {
                self.finish(tok, &Err(e.clone()), now)?;
                Err(e)
            }
        }
    }

    /// Records the verdict on a claimed link. An error means the result
    /// was not recorded: the login does not pass (fail closed).
    pub fn finish(
        &self,
        tok: &str,
        result: &Result<String, String>,
        now: i64,
    ) -> Result<(), String> {
        let (approved, text) = match result {
            Ok(name) => (true, name.as_str()),
            Err(e) => (false, e.as_str()),
        };
        // False: cancelled meanwhile, nothing to tell.
        self.tx(|tx| tx.finish_ceremony(&token_hash(tok), approved, text, now))
            .map(|_| ())
    }

    /// This host's ceremony of `user`, if there is one.
    fn mine(
        &self,
        tx: &dyn TxOps,
        h: &[u8; 32],
        user: &str,
    ) -> Result<Option<StoredCeremony>, StoreError> {
        Ok(tx
            .ceremony(h)?
            .filter(|c| c.user == user && c.host == self.host))
    }

    /// As [`super::webauthn::Ceremonies::result`]: a final result is
    /// taken once.
    pub fn result(&self, tok: &str, user: &str, root: bool, now: i64) -> Result<Outcome, String> {
        let h = token_hash(tok);
        let unknown = || Outcome::Failed("unknown or expired link".into());
        let r = self.tx(|tx| {
            let Some(c) = self.mine(tx, &h, user)? else {
                return Ok(Ok(unknown()));
            };
            if c.kind == "login" && !root {
                return Ok(Err(
                    "only the PAM module (root) reads the result of a login".to_string(),
                ));
            }
            let out = outcome(&c, now);
            let keep = out == Outcome::Pending
                || (c.kind == "proof" && matches!(out, Outcome::Approved(_)));
            if !keep && !tx.delete_ceremony(&h)? {
                return Ok(Ok(unknown()));
            }
            Ok(Ok(out))
        });
        match r {
            Ok(r) => r,
            // The store could not be asked: not approved (fail closed).
            Err(e) => Ok(Outcome::Failed(format!(
                "the result could not be read: {e}"
            ))),
        }
    }

    pub fn cancel(&self, tok: &str, user: &str, root: bool) -> bool {
        let h = token_hash(tok);
        self.tx(|tx| match self.mine(tx, &h, user)? {
            Some(c) if root || c.kind != "login" => tx.delete_ceremony(&h),
            _ => Ok(false),
        })
        .unwrap_or(false)
    }

    pub fn take_proof(
        &self,
        tok: &str,
        user: &str,
        purpose: &str,
        now: i64,
    ) -> Result<String, ProofError> {
        let h = token_hash(tok);
        let refused = |m: &str| Err(ProofError::Refused(m.into()));
        let r = self.tx(|tx| {
            let Some(c) = self.mine(tx, &h, user)? else {
                return Ok(refused(
                    "that security-key approval is unknown, expired or already used",
                ));
            };
            let given = serde_json::from_str::<serde_json::Value>(&c.state)
                .ok()
                .and_then(|v| v["purpose"].as_str().map(str::to_string));
            if c.kind != "proof" {
                return Ok(refused("that link was not a confirmation of this change"));
            }
            if given.as_deref() != Some(purpose) {
                return Ok(refused(
                    "that security-key approval was given for another change",
                ));
            }
            let expired = c.expires_at <= now;
            let out = outcome(&c, now);
            if out == Outcome::Pending {
                return Ok(Err(ProofError::Pending));
            }
            // Used up, refused or expired: gone, and only one taker wins.
            if !tx.delete_ceremony(&h)? {
                return Ok(refused(
                    "that security-key approval is unknown, expired or already used",
                ));
            }
            Ok(match out {
                _ if expired => refused("the security-key approval expired; start again"),
                Outcome::Approved(name) => Ok(name),
                Outcome::Failed(e) => Err(ProofError::Refused(format!(
                    "the security key was refused: {e}"
                ))),
                Outcome::Pending => Err(ProofError::Pending),
            })
        });
        r.unwrap_or_else(|e| refused(&format!("the approval could not be read: {e}")))
    }
}
