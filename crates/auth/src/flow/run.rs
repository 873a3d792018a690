//! A login in progress once the user is known to have usable factors:
//! the menu built from what is offered, then one attempt with the factor
//! the user picked (`attempt.rs`), reported once (`report.rs`).

use super::factors::code::Codes;
use super::factors::duo::{self, Ready};
use super::menu::{Answer, Menu};
use super::offer::Offer;
use super::{Conversation, Login, Network, Verdict};
use p2fa_core::audit::Audit;
use p2fa_core::clock::Clock;
use p2fa_core::config::Config;
use p2fa_core::crypto::KeyRing;
use p2fa_core::factor::FactorId;
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::{Store, UserState};

/// One login in progress, with everything its steps share.
pub(super) struct Run<'a> {
    pub cfg: &'a Config,
    /// Whose files to believe (the local key tools).
    pub trust: Trust,
    pub login: Login<'a>,
    /// `user=... service=... rhost=...` for every log line.
    pub who: String,
    pub conv: &'a mut dyn Conversation,
    pub audit: &'a mut Audit,
    pub net: &'a mut dyn Network,
    pub store: Store,
    pub key: KeyRing,
    /// The user's state when the login started (the menu's default); each
    /// attempt re-reads it inside its transaction.
    pub state: UserState,
    /// The login's time, read at each step: users take a while to read a
    /// text or approve a push.
    pub clock: &'a dyn Clock,
    /// The factor that proved this login, once one has (what a
    /// remembered device records).
    pub proven: Option<FactorId>,
    /// A refused code is logged and counted but not shown (the code
    /// `try_first_pass` found in PAM_AUTHTOK: the module asks next).
    pub quiet_refusal: bool,
    /// `Some` (with the methods allowed for the user's groups) when the
    /// user has no factor at all and is offered Duo only by
    /// `duo.users = "all"`: Duo's preauth answering `enroll` sends them to
    /// the `unenrolled` policy, and `failmode = "safe"` lets them through
    /// an outage only where that policy would (`factors/duo.rs`).
    pub only_duo_by_all: Option<Option<Vec<String>>>,
}

impl Run<'_> {
    pub(super) fn now(&self) -> i64 {
        self.clock.unix_now()
    }

    pub(super) fn go(&mut self, mut offer: Offer) -> Verdict {
        let duo = if offer.duo {
            match self
                .duo_preauth(offer.local_code() || offer.sms.is_some() || offer.email.is_some())
            {
                duo::Pre::Ready(d) => Some(d),
                duo::Pre::Skip => None,
                duo::Pre::Done(v) => return v,
            }
        } else {
            None
        };
        // A local key is offered only while one is plugged in; when it is
        // not usable (no key, no touch) the menu comes again without it.
        let mut device = None;
        let mut lost_key = None;
        if offer.local_key {
            match self.local_device() {
                Ok(d) => device = Some(d),
                Err(msg) => {
                    offer.local_key = false;
                    lost_key = Some(msg);
                }
            }
        }
        loop {
            let choices = offer.menu(duo.as_ref());
            let accepts_code = offer.local_code() || duo.is_some();
            if choices.is_empty() && !accepts_code {
                // The local key was the only way in and cannot be used now.
                // Not a counted failure: nothing was guessed.
                self.audit.warning(&format!(
                    "auth denied {} reason=local-key-unusable",
                    self.who
                ));
                self.conv.error(&match lost_key {
                    Some(msg) => format!("{msg} Plug in your security key and try again."),
                    None => "This account has no other second factor. Try again.".into(),
                });
                return Verdict::Denied;
            }
            let menu = Menu::new(choices, self.state.default_factor.as_deref(), accepts_code);
            let autopush = self.cfg.duo.autopush && menu.default == Some(FactorId::DuoPush);
            let pick = if let Some(c) = menu
                .start_directly()
                .or(autopush.then_some(FactorId::DuoPush))
            {
                Answer::Start(c)
            } else {
                let answer = match self
                    .conv
                    .ask(&menu.prompt(&self.cfg.prompt), self.cfg.echo_code)
                {
                    Ok(a) => a,
                    Err(e) => return self.conv_failed(&e),
                };
                menu.read(&answer)
            };
            return match pick {
                Answer::Invalid(why) => self.bad_input(why),
                Answer::Code(code) => self.check_code(&code, duo.as_ref(), &offer),
                Answer::Start(FactorId::Sms) => {
                    let to = offer.sms.clone().unwrap_or_default();
                    self.sent_code(FactorId::Sms, &to)
                }
                Answer::Start(FactorId::Email) => {
                    let to = offer.email.clone().unwrap_or_default();
                    self.sent_code(FactorId::Email, &to)
                }
                Answer::Start(FactorId::Questions) => self.questions(),
                Answer::Start(FactorId::Webauthn) => {
                    match device.clone().filter(|_| offer.local_key) {
                        Some(dev) => match self.local_key(&dev) {
                            Some(v) => v,
                            None => {
                                offer.local_key = false;
                                lost_key = None;
                                continue;
                            }
                        },
                        None => self.webauthn(),
                    }
                }
                Answer::Start(c @ (FactorId::DuoPush | FactorId::DuoPhone | FactorId::DuoSms)) => {
                    match &duo {
                        Some(d) => self.duo_factor(d, c),
                        None => self.bad_input("that factor is not available"),
                    }
                }
                // The menu offers nothing else.
                Answer::Start(_) => self.bad_input("that factor is not available"),
            };
        }
    }

    /// A code typed at the first prompt: local factors first, then Duo.
    /// A code no local factor accepts is counted as a failure in the same
    /// transaction that checked it, before it goes to Duo as a passcode:
    /// one guess, counted once, whatever Duo does (a Duo "allow" clears
    /// the count like any success).
    fn check_code(&mut self, code: &str, duo: Option<&Ready>, offer: &Offer) -> Verdict {
        let duo_may_try =
            duo.is_some() && code.len() >= 6 && code.bytes().all(|b| b.is_ascii_digit());
        let mut codes = Codes {
            code,
            otp: offer.otp,
            backup: offer.backup,
        };
        let outcome = match self.check(&mut codes) {
            Ok(o) => o,
            Err(v) => return v,
        };
        match (outcome, duo) {
            (
                super::attempt::Outcome::Rejected {
                    failures,
                    locked_until,
                    ..
                },
                Some(d),
            ) if duo_may_try => self.duo_passcode(d, code, Some((failures, locked_until))),
            (outcome, _) => self.report(outcome),
        }
    }
}
