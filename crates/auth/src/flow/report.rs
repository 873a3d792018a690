//! Every log line and user message about how an attempt ended, in one
//! place: what [`attempt::transact`](super::attempt::transact) decided
//! becomes a verdict here, and so do the refusals that never reach it
//! (malformed input, a failed conversation, an unavailable store).

use super::attempt::Outcome;
use super::{Conversation, MSG_UNAVAILABLE, Run, Verdict};
use p2fa_core::audit::Audit;
use p2fa_core::factor::FactorId;

impl Run<'_> {
    /// The outcome of an attempt's transaction, logged and shown.
    pub(super) fn report(&mut self, outcome: Outcome) -> Verdict {
        match outcome {
            Outcome::Accepted {
                factor: FactorId::DuoBypass,
                note,
                ..
            } => {
                // Duo's own policy let the user through: nothing was proven.
                self.audit
                    .notice(&format!("auth skipped {} factor=none{note}", self.who));
                Verdict::Ignore
            }
            Outcome::Accepted {
                factor,
                note,
                backup_left,
            } => {
                self.audit
                    .info(&format!("auth ok {} factor={factor}{note}", self.who));
                self.proven = Some(factor);
                if let Some(left) = backup_left {
                    let hint = if left <= 3 {
                        " Create new ones with `2fa-enroll backup`."
                    } else {
                        ""
                    };
                    self.conv
                        .info(&format!("Backup code accepted; {left} left.{hint}"));
                }
                Verdict::Success
            }
            Outcome::Rejected {
                factor,
                reason,
                failures,
                locked_until,
                log,
                hint,
            } => {
                if let Some((prefix, rest)) = log {
                    self.audit.warning(&format!("{prefix} {}{rest}", self.who));
                }
                let v = self.rejected(factor, reason, failures, locked_until);
                if let (Verdict::Denied, Some(hint)) = (v, hint) {
                    self.conv.info(hint);
                }
                v
            }
            Outcome::Locked {
                remaining,
                failures,
            } => locked(self.conv, self.audit, &self.who, remaining, failures),
        }
    }
    /// Logs and shows a counted failure; `factor` is `None` when the code
    /// fits no factor the user has (logged as `factor=none`).
    pub(super) fn rejected(
        &mut self,
        factor: Option<FactorId>,
        reason: &str,
        failures: u32,
        locked_until: i64,
    ) -> Verdict {
        // Under PAM_SILENT (sudo's default) the user sees nothing: the log
        // line alone must say that this failure locked the account.
        let now = self.now();
        let lock = if locked_until > now {
            format!(" locked={}s", locked_until - now)
        } else {
            String::new()
        };
        self.audit.warning(&format!(
            "auth failed {} factor={} reason={reason} failures={failures}/{}{lock}",
            self.who,
            factor.map_or("none", FactorId::as_str),
            self.cfg.rate_limit.max_failures
        ));
        if locked_until > now {
            self.conv.error(&format!(
                "Invalid code. Too many failed attempts: locked for {}.",
                human_duration(locked_until - now)
            ));
            Verdict::Locked
        } else {
            let msg = match reason {
                "push-denied" => "The request was denied.",
                "push-timeout" => "No answer in time.",
                _ if factor == Some(FactorId::LocalKey) => "The security key's answer was refused.",
                _ => "Invalid or already used code.",
            };
            if !self.quiet_refusal {
                self.conv.error(msg);
            }
            Verdict::Denied
        }
    }

    pub(super) fn bad_input(&mut self, why: &str) -> Verdict {
        // Malformed input cannot guess a code, so it is not counted.
        self.audit.warning(&format!(
            "auth denied {} reason=bad-input ({why})",
            self.who
        ));
        self.conv
            .error(&format!("That is not a valid code: {why}."));
        Verdict::Denied
    }

    pub(super) fn conv_failed(&mut self, e: &str) -> Verdict {
        self.audit.warning(&format!(
            "auth denied {} reason=conversation-failed ({})",
            self.who,
            p2fa_core::audit::detail(e)
        ));
        Verdict::ConversationFailed
    }

    pub(super) fn unavailable(&mut self, why: &str) -> Verdict {
        unavailable(self.conv, self.audit, &self.who, why)
    }
}

pub(super) fn unavailable(
    conv: &mut dyn Conversation,
    audit: &mut Audit,
    who: &str,
    why: &str,
) -> Verdict {
    audit.err(&format!(
        "auth denied {who} reason=unavailable: {}",
        p2fa_core::audit::detail(why)
    ));
    conv.error(MSG_UNAVAILABLE);
    Verdict::Unavailable
}

/// A refusal that is not a counted guess (no usable factor, policy):
/// logged with its reason, told to the user.
pub(super) fn denied(
    conv: &mut dyn Conversation,
    audit: &mut Audit,
    who: &str,
    reason: &str,
    msg: &str,
) -> Verdict {
    audit.warning(&format!("auth denied {who} reason={reason}"));
    conv.error(msg);
    Verdict::Denied
}

pub(super) fn locked(
    conv: &mut dyn Conversation,
    audit: &mut Audit,
    who: &str,
    remaining: i64,
    failures: u32,
) -> Verdict {
    audit.warning(&format!(
        "auth denied {who} reason=locked failures={failures} remaining={remaining}s"
    ));
    conv.error(&format!(
        "Too many failed attempts. Try again in {}.",
        human_duration(remaining)
    ));
    Verdict::Locked
}

/// `75` -> "2 minutes", `30` -> "30 seconds".
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(1);
    if secs < 90 {
        format!("{secs} seconds")
    } else if secs < 90 * 60 {
        format!("{} minutes", (secs + 59) / 60)
    } else {
        format!("{} hours", (secs + 3599) / 3600)
    }
}
