//! A user with no factor at all: the `unenrolled` policy (deny, allow,
//! grace) and, where the policy offers it, enrollment inside the login;
//! and every user while there is no store yet ([`without_store`]).

use super::report::{denied, unavailable};
use super::{Conversation, Login, Verdict, inline};
use p2fa_core::audit::Audit;
use p2fa_core::config::{Config, Unenrolled};
use p2fa_core::factor::FactorId;
use p2fa_core::policy::{self, NoFactor};
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::Store;

/// A user with no factor at all: exemption is checked already; apply
/// `unenrolled` (deny, allow, grace) and offer inline enrollment.
#[allow(clippy::too_many_arguments)]
pub(super) fn unenrolled(
    cfg: &Config,
    trust: Trust,
    login: Login<'_>,
    now: i64,
    conv: &mut dyn Conversation,
    audit: &mut Audit,
    store: &mut Store,
    who: &str,
    allowed: &Option<Vec<String>>,
) -> Verdict {
    let first_seen = if cfg.unenrolled_for(login.service) == Unenrolled::Grace {
        match store.write().and_then(|tx| {
            let t = tx.first_seen(login.user, now)?;
            tx.commit()?;
            Ok(t)
        }) {
            Ok(t) => t,
            Err(e) => return unavailable(conv, audit, who, &e.to_string()),
        }
    } else {
        now
    };
    let decision = policy::without_factor(cfg, login.service, first_seen, now);
    let inline =
        cfg.inline_enrollment_for(login.service) && policy::allows_factor(allowed, FactorId::Totp);
    match decision {
        NoFactor::Allow | NoFactor::Grace { .. } => {
            let (note, reason) = match decision {
                NoFactor::Grace { days_left } => (
                    format!(
                        "Two-factor authentication becomes mandatory for this account in {days_left} day{}.",
                        if days_left == 1 { "" } else { "s" }
                    ),
                    format!("unenrolled-grace days_left={days_left}"),
                ),
                _ => (
                    "This account has no second factor.".to_string(),
                    "unenrolled-allowed-by-policy".to_string(),
                ),
            };
            if inline {
                let mut i = inline::Inline {
                    cfg,
                    trust,
                    login,
                    who,
                    conv: &mut *conv,
                    audit: &mut *audit,
                    store,
                };
                match i.wants(&note) {
                    Ok(true) => return i.enroll(now),
                    Ok(false) => {}
                    Err(v) => return v,
                }
            } else if matches!(decision, NoFactor::Grace { .. }) {
                conv.info(&format!(
                    "{note} Set it up with `2fa-enroll totp` or ask an administrator."
                ));
            }
            audit.notice(&format!("auth skipped {who} factor=none reason={reason}"));
            Verdict::Ignore
        }
        NoFactor::Deny | NoFactor::GraceOver => {
            if inline {
                conv.info("This account needs two-factor authentication before you can log in.");
                let mut i = inline::Inline {
                    cfg,
                    trust,
                    login,
                    who,
                    conv,
                    audit,
                    store,
                };
                return i.enroll(now);
            }
            let (reason, msg) = if decision == NoFactor::GraceOver {
                (
                    "grace-period-over",
                    "The grace period for setting up two-factor authentication is over. Ask an administrator to enroll you.",
                )
            } else {
                (
                    "no-factor-enrolled",
                    "No second factor is set up for this account. Ask an administrator to enroll you.",
                )
            };
            denied(conv, audit, who, reason, msg)
        }
    }
}

/// No store yet (`2fa-enroll init` has not run; [`Store::open_existing`]
/// says `Missing` only when nobody but root could have removed it), so no
/// user has a factor. The module never creates the store, its directory
/// or the host key.
///
/// - `unenrolled = allow` for this service: the user passes like any
///   user without a factor under `allow`: `PAM_IGNORE`, the rest of the
///   stack decides, and a notice says the store is missing. Nothing is
///   offered (inline enrollment would need the store).
/// - `deny` (the default), and `grace`: "unavailable", as before. A grace
///   period counts from the first login attempt, which is recorded in the
///   store; without one there is nothing to count from, so it fails
///   closed rather than let everyone in for ever.
///
/// Exempt users never get here (they pass before the store is opened);
/// methods per group say what an enrolled user may use, not whether a
/// user without a factor may pass, so they change nothing here, as for
/// [`unenrolled`].
pub(super) fn without_store(
    cfg: &Config,
    login: Login<'_>,
    conv: &mut dyn Conversation,
    audit: &mut Audit,
    who: &str,
    why: &str,
) -> Verdict {
    match cfg.unenrolled_for(login.service) {
        Unenrolled::Allow => {
            audit.notice(&format!(
                "auth skipped {who} factor=none reason=unenrolled-allowed-by-policy, no store yet: {}",
                p2fa_core::audit::detail(why)
            ));
            Verdict::Ignore
        }
        Unenrolled::Grace => unavailable(
            conv,
            audit,
            who,
            &format!(
                "{why}; unenrolled = grace counts from a first login recorded in the store, so without one it denies"
            ),
        ),
        Unenrolled::Deny => unavailable(conv, audit, who, why),
    }
}
