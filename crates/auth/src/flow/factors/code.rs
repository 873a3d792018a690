//! A code typed at the first prompt, for the factors that check it
//! locally: a TOTP/HOTP code or a backup code. Also the proof 2fad's
//! broker asks for before a change ([`check_current`]).

use super::super::attempt::{At, Check, Factor, Outcome, Stop, transact};
use super::super::error::AuthError;
use super::super::{Login, Run};
use p2fa_core::config::Config;
use p2fa_core::crypto::{self, CryptoError, KeyRing};

/// A row of a key generation this host has no key for: "unavailable".
pub(crate) fn missing_gen(g: i64) -> CryptoError {
    CryptoError(format!(
        "no key of generation {g} on this host (key rotation: configure next_key_file or previous_key_file)"
    ))
}
use p2fa_core::factor::{FactorId, totp};
use p2fa_core::store::{OtpKind, Store, UserState};

/// A stored hash's `(key_gen, inner_gen)`: one candidate hash each.
type GenPair = (i64, Option<i64>);

/// The code and which of the user's code factors may take it.
pub(in super::super) struct Codes<'c> {
    pub code: &'c str,
    pub otp: bool,
    pub backup: bool,
}

impl Factor for Codes<'_> {
    /// The code was typed at the menu: nothing more to ask.
    fn challenge(&mut self, _: &mut Run<'_>) -> Result<(), Stop> {
        Ok(())
    }

    /// The first to commit moves `last_step` (or the HOTP counter) or
    /// marks the backup code used; a parallel login with the same code
    /// then sees that inside its own transaction.
    fn verify(&mut self, at: &At<'_>) -> Result<Check, AuthError> {
        let (user, code) = (at.login.user, self.code);
        // A row of a key generation this host has no key for (a key
        // rotation, docs/rekey.md): unavailable before anything is
        // compared, so the code is neither counted nor checked against
        // the rest (no unlimited guessing while the key is missing).
        let otp_gen = at
            .state
            .otp
            .as_ref()
            .filter(|_| self.otp)
            .map(|o| o.key_gen);
        // A wrapped backup-code hash needs two keys (its generation's and
        // the inner one's).
        let backup_missing = at
            .state
            .unused_backup
            .iter()
            .filter(|_| self.backup)
            .flat_map(|(_, _, g, inner)| std::iter::once(*g).chain(*inner));
        if let Some(g) = otp_gen
            .into_iter()
            .chain(backup_missing)
            .find(|g| at.key.for_gen(*g).is_none())
        {
            return Err(missing_gen(g).into());
        }
        let mut reason = "wrong-code";
        if let Some(otp) = at.state.otp.as_ref().filter(|_| self.otp) {
            let secret = at
                .key
                .for_gen(otp.key_gen)
                .ok_or_else(|| missing_gen(otp.key_gen))?
                .open(&otp.sealed, &totp::seal_aad(user))?;
            let params = totp::OtpParams {
                algorithm: otp.algorithm,
                digits: otp.digits,
                period: otp.period,
            };
            let window = at.cfg.totp.window;
            match otp.kind {
                OtpKind::Totp => {
                    if let Some(step) =
                        totp::verify_totp(&secret, &params, at.now, window, otp.last_step, code)
                    {
                        // False only if the stored step moved on since
                        // `at.state` was read: a replay.
                        if at.tx.set_last_step(user, step)? {
                            return Ok(Check::ok(FactorId::Totp));
                        }
                        reason = "replayed-code";
                    } else if totp::verify_totp(&secret, &params, at.now, window, None, code)
                        .is_some()
                    {
                        reason = "replayed-code";
                    }
                }
                OtpKind::Hotp => {
                    if let Some(c) = totp::verify_hotp(
                        &secret,
                        otp.algorithm,
                        otp.digits,
                        otp.counter,
                        at.cfg.hotp.look_ahead,
                        code,
                    ) {
                        if at.tx.set_counter(user, c + 1)? {
                            return Ok(Check::ok(FactorId::Hotp));
                        }
                        reason = "replayed-code";
                    }
                }
            }
        }
        if self.backup && !at.state.unused_backup.is_empty() {
            // One candidate hash per distinct (generation, inner
            // generation) among the codes (at most two); a generation this
            // host has no key for makes the check unavailable, never a
            // wrong code.
            let mut hashes: Vec<(GenPair, [u8; 32])> = Vec::new();
            for (_, _, g, inner) in &at.state.unused_backup {
                if !hashes.iter().any(|(p, _)| *p == (*g, *inner)) {
                    let h = at
                        .key
                        .code_hash_for(*g, *inner, user, code)
                        .ok_or_else(|| missing_gen(*g))?;
                    hashes.push(((*g, *inner), h));
                }
            }
            // Every stored code is compared, in constant time.
            let mut hit = None;
            for (id, stored, g, inner) in &at.state.unused_backup {
                let ok = hashes
                    .iter()
                    .any(|(p, h)| *p == (*g, *inner) && crypto::ct_eq(stored, h));
                if ok && hit.is_none() {
                    hit = Some(*id);
                }
            }
            if let Some(id) = hit
                && at.tx.mark_backup_used(id, at.now, at.login.service)?
            {
                return Ok(Check::Accepted {
                    factor: FactorId::Backup,
                    note: String::new(),
                    backup_left: Some(at.state.unused_backup.len() - 1),
                });
            }
        }
        Ok(Check::Rejected {
            factor: guess(at.state, code),
            reason,
            count: true,
            log: None,
            hint: None,
        })
    }
}

/// For the log line: which factor the attempt most likely targeted.
fn guess(state: &UserState, code: &str) -> Option<FactorId> {
    match &state.otp {
        Some(o) if code.len() == o.digits as usize => Some(o.kind.factor()),
        _ if !state.unused_backup.is_empty() => Some(FactorId::Backup),
        Some(o) => Some(o.kind.factor()),
        None => None,
    }
}

/// Outcome of [`check_current`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    Accepted(FactorId),
    Rejected,
    Locked(i64),
}

/// Proves a user still holds a second factor (a TOTP/HOTP or backup code)
/// before the enrollment broker replaces or removes one: the same
/// transaction as a login's, single-use and counted, recorded under
/// `login.service`. `key` holds the keys of the generations this host
/// has (a row of one it lacks is "unavailable", never counted).
pub fn check_current(
    cfg: &Config,
    store: &mut Store,
    key: &KeyRing,
    login: Login<'_>,
    now: i64,
    code: &str,
) -> Result<Current, AuthError> {
    let mut codes = Codes {
        code,
        otp: true,
        backup: true,
    };
    Ok(match transact(store, cfg, key, login, now, &mut codes)? {
        Outcome::Accepted { factor, .. } => Current::Accepted(factor),
        Outcome::Rejected { .. } => Current::Rejected,
        Outcome::Locked { remaining, .. } => Current::Locked(remaining),
    })
}
