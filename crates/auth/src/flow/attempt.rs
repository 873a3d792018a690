//! The one transaction every factor's check runs in, and the [`Factor`]
//! trait each factor implements once (in `factors/`).
//!
//! A login attempt is two steps. The challenge happens outside any
//! transaction, because it waits for people and networks: send a code,
//! push to a phone, show a link, run the key tool, ask questions. The
//! check happens inside one `BEGIN IMMEDIATE` transaction that
//! [`transact`] owns: open, re-read the user's state, refuse if locked,
//! let the factor check and consume (a TOTP step, a backup code, a sent
//! code, a key's counter), record the success or count the failure,
//! commit. Every factor gets the same lockout re-check and the same
//! single-use guarantee (64 parallel logins with one valid code: exactly
//! one success), because there is only this one copy of the transaction.

use super::error::AuthError;
use super::{Login, Run, Verdict};
use p2fa_core::config::Config;
use p2fa_core::crypto::KeyRing;
use p2fa_core::factor::FactorId;
use p2fa_core::store::{Store, Tx, UserState};

/// One way to prove a login.
pub(super) trait Factor {
    /// Outside any transaction: whatever talks to the user or the world.
    /// `Err` ends the attempt without a check, its log line written and
    /// its message shown.
    fn challenge(&mut self, run: &mut Run<'_>) -> Result<(), Stop>;

    /// Inside the attempt's transaction, after the lockout check: check
    /// what the challenge brought and consume what it used.
    fn verify(&mut self, at: &At<'_>) -> Result<Check, AuthError>;

    /// A failure this attempt already counted before its check (a code
    /// sent on to Duo as a passcode): the lock that count set is this
    /// attempt's own and does not refuse the check.
    fn precounted(&self) -> Option<Counted> {
        None
    }
}

/// (failures, locked_until) as recorded.
pub(super) type Counted = (u32, i64);

/// Why a challenge ended the attempt.
pub(super) enum Stop {
    /// The login ends with this verdict (already logged and shown).
    Done(Verdict),
    /// The factor cannot be used now (a local key that is not plugged in
    /// or not touched): already shown; the menu comes again without it.
    Unusable,
}

/// What a factor's check sees inside the transaction.
pub(super) struct At<'a> {
    pub tx: &'a Tx<'a>,
    /// The user's state as of this transaction.
    pub state: &'a UserState,
    pub cfg: &'a Config,
    pub key: &'a KeyRing,
    pub login: Login<'a>,
    pub now: i64,
}

/// A factor's finding.
pub(super) enum Check {
    /// Proven. `note` ends the "auth ok" log line; `backup_left` is set
    /// when a backup code was used (the user is told how many are left).
    Accepted {
        factor: FactorId,
        note: String,
        backup_left: Option<usize>,
    },
    /// Refused. `factor` is `None` when a code fits nothing the user has.
    /// `count: false` when [`Factor::precounted`] counted it already.
    /// `log` is a warning line to write first (prefix, then the login,
    /// then the rest); `hint` is told to the user after the refusal.
    Rejected {
        factor: Option<FactorId>,
        reason: &'static str,
        count: bool,
        log: Option<(&'static str, String)>,
        hint: Option<&'static str>,
    },
}

impl Check {
    /// Proven, with nothing more to say.
    pub fn ok(factor: FactorId) -> Check {
        Check::Accepted {
            factor,
            note: String::new(),
            backup_left: None,
        }
    }

    /// Refused and counted.
    pub fn refused(factor: FactorId, reason: &'static str) -> Check {
        Check::Rejected {
            factor: Some(factor),
            reason,
            count: true,
            log: None,
            hint: None,
        }
    }
}

/// What the transaction did; [`Run::report`] turns it into log lines, a
/// message and a verdict.
pub(super) enum Outcome {
    Accepted {
        factor: FactorId,
        note: String,
        backup_left: Option<usize>,
    },
    Rejected {
        factor: Option<FactorId>,
        reason: &'static str,
        failures: u32,
        locked_until: i64,
        log: Option<(&'static str, String)>,
        hint: Option<&'static str>,
    },
    /// Locked before the check: nothing was checked or counted.
    Locked { remaining: i64, failures: u32 },
}

/// The transaction: open, re-read, lockout, verify, consume, record,
/// commit. A store error anywhere rolls everything back.
pub(super) fn transact(
    store: &mut Store,
    cfg: &Config,
    key: &KeyRing,
    login: Login<'_>,
    now: i64,
    factor: &mut dyn Factor,
) -> Result<Outcome, AuthError> {
    let tx = store.write()?;
    let state = tx.user_state(login.user)?;
    let own_lock = factor
        .precounted()
        .is_some_and(|(f, l)| state.failures == f && state.locked_until == l);
    if state.locked_until > now && !own_lock {
        return Ok(Outcome::Locked {
            remaining: state.locked_until - now,
            failures: state.failures,
        });
    }
    let check = factor.verify(&At {
        tx: &tx,
        state: &state,
        cfg,
        key,
        login,
        now,
    })?;
    let outcome = match check {
        Check::Accepted {
            factor,
            note,
            backup_left,
        } => {
            tx.record_success(login.user, now, login.service, login.rhost, factor.as_str())?;
            Outcome::Accepted {
                factor,
                note,
                backup_left,
            }
        }
        Check::Rejected {
            factor,
            reason,
            count,
            log,
            hint,
        } => {
            let (failures, locked_until) = if count {
                tx.record_failure(login.user, now, &cfg.rate_limit)?
            } else {
                (state.failures, state.locked_until)
            };
            Outcome::Rejected {
                factor,
                reason,
                failures,
                locked_until,
                log,
                hint,
            }
        }
    };
    tx.commit()?;
    Ok(outcome)
}

/// A guess that is counted before anything checks it (a passcode Duo will
/// check): the failure is on record whatever happens to the call after.
pub(super) struct Guess;

impl Factor for Guess {
    fn challenge(&mut self, _: &mut Run<'_>) -> Result<(), Stop> {
        Ok(())
    }

    fn verify(&mut self, _: &At<'_>) -> Result<Check, AuthError> {
        Ok(Check::Rejected {
            factor: None,
            reason: "counted-before-check",
            count: true,
            log: None,
            hint: None,
        })
    }
}

impl Run<'_> {
    /// One attempt with `factor`: its challenge, then the transaction,
    /// then the report.
    pub(super) fn attempt(&mut self, factor: &mut dyn Factor) -> Verdict {
        // Only a local key is ever unusable, and it goes through
        // `attempt_usable`; for the rest this cannot happen, and would deny.
        self.attempt_usable(factor).unwrap_or(Verdict::Denied)
    }

    /// [`Run::attempt`], or `None` when the factor turned out unusable now
    /// (the caller offers the others).
    pub(super) fn attempt_usable(&mut self, factor: &mut dyn Factor) -> Option<Verdict> {
        match factor.challenge(self) {
            Ok(()) => {}
            Err(Stop::Done(v)) => return Some(v),
            Err(Stop::Unusable) => return None,
        }
        Some(match self.check(factor) {
            Ok(outcome) => self.report(outcome),
            Err(v) => v,
        })
    }

    /// The transaction alone (the challenge is done); a store error is
    /// already reported as "unavailable".
    pub(super) fn check(&mut self, factor: &mut dyn Factor) -> Result<Outcome, Verdict> {
        let now = self.now();
        transact(
            &mut self.store,
            self.cfg,
            &self.key,
            self.login,
            now,
            factor,
        )
        .map_err(|e| self.unavailable(&e.to_string()))
    }
}

/// The finding of a factor that someone else checked (Duo, 2fad): what
/// its challenge brings back for the transaction to record.
#[derive(Debug, Clone)]
pub(super) enum Vouched {
    Yes { note: String },
    No { reason: &'static str },
}

impl Vouched {
    pub fn check(&self, factor: FactorId) -> Check {
        match self {
            Vouched::Yes { note } => Check::Accepted {
                factor,
                note: note.clone(),
                backup_left: None,
            },
            Vouched::No { reason } => Check::refused(factor, reason),
        }
    }
}
