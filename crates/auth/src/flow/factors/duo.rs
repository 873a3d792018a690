//! Duo at login: `preauth` decides whether Duo is offered at all; push and
//! phone are started, shown with a prompt (OpenSSH only displays text that
//! comes with a prompt), and polled until approved, denied or timed out.
//!
//! What an error means depends on what it is and when it happens:
//!
//! - `failmode` applies only to an outage (no answer at all) of `preauth`,
//!   only when Duo is the user's only way in (a user who also has a TOTP
//!   token or backup codes is simply not offered Duo while it is down,
//!   which is safer than `safe` and kinder than `secure`), and `safe` only
//!   for a caller whose real uid is 0 ([`failmode_safe_allowed`]).
//! - A certificate or TLS error, or an answer that is not Duo's, is a
//!   refusal at any point: anyone between us and Duo can cause those.
//! - Once preauth has answered, Duo is reachable: every later error on
//!   `auth` or `auth_status` denies, as duo_unix does.
//! - A code typed at a prompt and sent to Duo as a passcode is counted as
//!   a failure before Duo is asked (a success clears the count), so a
//!   failing, slow or killed Duo call never leaves a guess uncounted.

use super::super::attempt::{Counted, Guess, Outcome};
use super::super::first_pass::pass_through;
use super::super::unenrolled::unenrolled;
use super::super::{Run, Verdict};
use super::duo_call::{Bypass, DuoCall, DuoPasscode};
use p2fa_core::config::{FailMode, Unenrolled};
use p2fa_core::factor::FactorId;
use p2fa_net::network::{DuoDevice, DuoFailKind, DuoFailure, DuoPreauth};

pub(in super::super) enum Pre {
    Ready(Ready),
    /// Duo is not offered this time (unreachable or user not enrolled in
    /// Duo) but other factors are.
    Skip,
    Done(Verdict),
}

/// Duo is usable for this login, with the devices preauth returned.
pub(in super::super) struct Ready {
    pub(super) username: String,
    pub push: Option<DuoDevice>,
    pub phone: Option<DuoDevice>,
    pub sms: Option<DuoDevice>,
}

/// Duo text reaches a terminal: one printable line, bounded.
pub(super) fn duo_text(s: &str) -> String {
    p2fa_core::audit::printable(s, 200)
}

/// Whether `failmode = "safe"` may let a caller with this real uid in when
/// Duo cannot be reached. Only root: sshd and login run as root, while
/// under sudo or su the real uid is the calling user's, who may stop the
/// process (`kill -STOP`) until the request times out and so fake an
/// outage at will. For them `safe` behaves as `secure`.
pub(in super::super) fn failmode_safe_allowed(real_uid: u32) -> bool {
    real_uid == 0
}

impl Run<'_> {
    pub(in super::super) fn duo_preauth(&mut self, has_other: bool) -> Pre {
        let username = self.cfg.duo.username(self.login.user).to_string();
        match self.net.duo_preauth(self.cfg, &username) {
            Ok(DuoPreauth::Auth(devices)) => {
                let first = |f: fn(&DuoDevice) -> bool| devices.iter().find(|d| f(d)).cloned();
                Pre::Ready(Ready {
                    push: first(|d| d.push),
                    phone: first(|d| d.phone),
                    sms: first(|d| d.sms),
                    username,
                })
            }
            Ok(DuoPreauth::Allow(msg)) => {
                let note = format!(" reason=duo-preauth-allow ({})", duo_text(&msg));
                Pre::Done(self.attempt(&mut Bypass { note }))
            }
            Ok(DuoPreauth::Deny(msg)) => {
                self.audit.warning(&format!(
                    "auth denied {} factor=duo reason=duo-preauth-deny ({})",
                    self.who,
                    duo_text(&msg)
                ));
                self.conv.error(&format!("Duo: {}", duo_text(&msg)));
                Pre::Done(Verdict::Denied)
            }
            Ok(DuoPreauth::Enroll(_)) if has_other => {
                self.audit.notice(&format!(
                    "duo not offered {} reason=not-enrolled-in-duo",
                    self.who
                ));
                Pre::Skip
            }
            // `duo.users = "all"` and nothing else: Duo does not know the
            // user, who is unenrolled after all.
            Ok(DuoPreauth::Enroll(_)) if self.only_duo_by_all.is_some() => {
                self.audit.notice(&format!(
                    "duo not offered {} reason=not-enrolled-in-duo (duo.users = all): the unenrolled policy applies",
                    self.who
                ));
                let allowed = self.only_duo_by_all.take().flatten();
                Pre::Done(self.unenrolled_after_duo(&allowed))
            }
            Ok(DuoPreauth::Enroll(msg)) => {
                self.audit.warning(&format!(
                    "auth denied {} factor=duo reason=not-enrolled-in-duo",
                    self.who
                ));
                self.conv.error(&format!("Duo: {}", duo_text(&msg)));
                Pre::Done(Verdict::Denied)
            }
            // Another factor is still required: Duo is just not offered.
            Err(f) if has_other => {
                self.audit.err(&format!(
                    "duo unavailable, offering other factors {} ({}): {}",
                    self.who,
                    kind_reason(f.kind),
                    p2fa_core::audit::detail(&f.detail)
                ));
                Pre::Skip
            }
            Err(f) if f.kind == DuoFailKind::Outage => Pre::Done(self.duo_failmode(&f.detail)),
            Err(f) => Pre::Done(self.duo_error(&f, false)),
        }
    }

    /// `choice` is the menu's: `DuoPush`, `DuoPhone` or `DuoSms`, which is
    /// also how Duo is asked and the factor recorded.
    pub(in super::super) fn duo_factor(&mut self, ready: &Ready, choice: FactorId) -> Verdict {
        self.attempt(&mut DuoCall {
            ready,
            choice,
            found: None,
        })
    }

    /// Checks a passcode with Duo. The code counts as a failure before Duo
    /// is asked (`counted` when the caller's store transaction already
    /// did that), so whatever happens to the Duo call the guess is counted
    /// exactly once; Duo's "allow" then records the success, which clears
    /// the count.
    pub(in super::super) fn duo_passcode(
        &mut self,
        ready: &Ready,
        code: &str,
        counted: Option<Counted>,
    ) -> Verdict {
        let counted = match counted {
            Some(c) => c,
            None => match self.check(&mut Guess) {
                Ok(Outcome::Rejected {
                    failures,
                    locked_until,
                    ..
                }) => (failures, locked_until),
                // Locked already: nothing goes to Duo.
                Ok(other) => return self.report(other),
                Err(v) => return v,
            },
        };
        self.attempt(&mut DuoPasscode {
            ready,
            code,
            counted,
            found: None,
        })
    }

    /// Duo's `failmode`, applied when preauth got no answer at all and Duo
    /// was the only way in. `safe` only for a root caller (see
    /// [`failmode_safe_allowed`]).
    pub(in super::super) fn duo_failmode(&mut self, detail: &str) -> Verdict {
        let uid = self.login.caller_uid;
        match self.cfg.duo.failmode {
            // Offered Duo only by `duo.users = "all"`, with no factor of
            // their own: Duo may not know the user, who would then fall
            // under the unenrolled policy. `safe` cannot give more than
            // that policy would: only `unenrolled = allow` lets them pass.
            FailMode::Safe
                if self.only_duo_by_all.is_some()
                    && self.cfg.unenrolled_for(self.login.service) != Unenrolled::Allow =>
            {
                self.unavailable(&format!(
                    "duo unreachable, failmode safe not applied: the user has no factor and is \
                     offered Duo only by duo.users = all, and unenrolled is not allow for this \
                     service, so it is treated as failmode secure: {detail}"
                ))
            }
            FailMode::Safe if !failmode_safe_allowed(uid) => self.unavailable(&format!(
                "duo unreachable, failmode safe not applied: the caller's real uid {uid} is not 0 \
                 (sudo or su: the user could stop the process to fake an outage), so it is \
                 treated as failmode secure: {detail}"
            )),
            FailMode::Safe => {
                self.audit.err(&format!(
                    "auth skipped {} factor=none reason=duo-unreachable-failmode-safe ({})",
                    self.who,
                    p2fa_core::audit::detail(detail)
                ));
                self.conv
                    .info("Duo is unreachable; letting you in without it (failmode safe).");
                Verdict::Ignore
            }
            FailMode::Secure => {
                self.unavailable(&format!("duo unreachable, failmode secure: {detail}"))
            }
        }
    }

    /// Duo's preauth said it does not know a user with no factor of
    /// their own who was offered Duo only by `duo.users = "all"`: the
    /// `unenrolled` policy, exactly as for a user Duo was never offered to.
    /// `allowed`: the methods allowed for the user's groups (`None`: all).
    fn unenrolled_after_duo(&mut self, allowed: &Option<Vec<String>>) -> Verdict {
        let now = self.now();
        let v = unenrolled(
            self.cfg,
            self.trust,
            self.login,
            now,
            &mut *self.conv,
            &mut *self.audit,
            &mut self.store,
            &self.who,
            allowed,
        );
        if v == Verdict::Ignore {
            pass_through(self.cfg, &mut *self.conv, &mut *self.audit, &self.who)
        } else {
            v
        }
    }

    /// A Duo call failed in a way `failmode` does not cover: a certificate
    /// or TLS error, a protocol error, any error once preauth has answered
    /// (`after_preauth`), or Duo's own refusal. Always a denial.
    pub(in super::super) fn duo_error(&mut self, f: &DuoFailure, after_preauth: bool) -> Verdict {
        let (reason, msg, verdict) = match f.kind {
            DuoFailKind::Tls => (
                "duo-tls-error",
                "Duo's identity could not be verified (TLS certificate error). Access denied; contact your administrator.",
                Verdict::Denied,
            ),
            DuoFailKind::Protocol => (
                "duo-protocol-error",
                "Duo sent an answer that could not be understood. Access denied; contact your administrator.",
                Verdict::Denied,
            ),
            DuoFailKind::Outage if after_preauth => (
                "duo-error-after-preauth",
                "Duo stopped answering during the login. Access denied; try again or contact your administrator.",
                Verdict::Unavailable,
            ),
            DuoFailKind::Outage | DuoFailKind::Refused => {
                let what = if after_preauth {
                    "duo"
                } else {
                    "duo refused the request"
                };
                return self.unavailable(&format!("{what}: {}", f.detail));
            }
        };
        self.audit.err(&format!(
            "auth denied {} factor=duo reason={reason}: {}",
            self.who,
            p2fa_core::audit::detail(&f.detail)
        ));
        self.conv.error(msg);
        verdict
    }
}

/// The kind of a Duo failure, for a log line.
fn kind_reason(kind: DuoFailKind) -> &'static str {
    match kind {
        DuoFailKind::Outage => "duo-unreachable",
        DuoFailKind::Tls => "duo-tls-error",
        DuoFailKind::Protocol => "duo-protocol-error",
        DuoFailKind::Refused => "duo-refused",
    }
}
