//! The authentication conversation: look the user up, offer what they
//! have enrolled in one prompt, verify the answer inside one store
//! transaction, record and log the outcome.
//!
//! Plain Rust over the [`Conversation`] and [`Network`] traits, so it is
//! unit-testable without PAM or a network; `crates/pam_2fa` adapts it to the real
//! PAM conversation and always passes the live network.

mod duo;
mod inline;
mod localkey;
mod menu;
mod questions;
mod remember;
pub mod sent;
mod webauthn;

pub use p2fa_core::conversation::Conversation;
pub use p2fa_net::network::Network;

use p2fa_net::network;

use menu::{Answer, Menu};
use p2fa_core::audit::{Audit, clean};
use p2fa_core::clock::{Clock, StartedAt};
use p2fa_core::config::{Config, FailMode};
use p2fa_core::crypto::{self, HostKey};
use p2fa_core::factor::{self, FactorId, totp};
use p2fa_core::policy::{self, NoFactor};
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::{OtpKind, Store, StoreError, UserState};
use p2fa_core::users;
use zeroize::Zeroizing;
/// Longest answer we look at; codes are at most a few dozen characters.
pub const MAX_INPUT: usize = 64;

/// The login being authenticated, as PAM describes it.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    pub user: &'a str,
    pub service: &'a str,
    pub rhost: &'a str,
    /// PAM_TTY ("" when unset); identifies a local login's source.
    pub tty: &'a str,
    /// The real uid of the process the module runs in (its caller: sshd
    /// and login run as root, sudo and su as the invoking user). Only root
    /// gets Duo's `failmode = safe` (see `duo::failmode_safe_allowed`).
    pub caller_uid: u32,
}

/// The module's answer, mapped to a PAM return code by `crates/pam_2fa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A second factor was verified (now, or earlier on a remembered
    /// device).
    Success,
    /// Let through without checking any factor, because the admin's
    /// policy says so: unenrolled under `allow` or `grace`, exempt users
    /// and groups, Duo's preauth "allow" (a bypass set in Duo), Duo's
    /// `failmode = safe`. `PAM_IGNORE`, like google-authenticator's
    /// `nullok`: the rest of the stack decides, so a `sufficient` or
    /// `[success=done]` line never lets such a user in on its own (the
    /// pam-u2f `nouserok` bypass, CVE-2025-23013).
    Ignore,
    /// Wrong, replayed or malformed code, or no factor and policy says deny.
    Denied,
    /// Too many failures; the account is locked for now.
    Locked,
    /// Store, key or randomness unavailable: an admin must look.
    Unavailable,
    UnknownUser,
    ConversationFailed,
}

/// Shown when the module cannot do its job (store, key or config trouble).
pub const MSG_UNAVAILABLE: &str =
    "Two-factor authentication is unavailable right now. Contact your administrator.";

/// Runs one authentication with the live network factors. `now` is Unix
/// time in seconds (from the caller, so tests can choose it; in PAM it is
/// the system clock). `trust` says whose files to believe: the module
/// passes [`Trust::ROOT`].
pub fn authenticate(
    cfg: &Config,
    trust: Trust,
    login: Login<'_>,
    now: i64,
    conv: &mut dyn Conversation,
    audit: &mut Audit,
) -> Verdict {
    let mut net = network::Live::for_rhost(login.rhost, trust);
    authenticate_with(cfg, trust, login, now, conv, audit, &mut net)
}

/// [`authenticate`] with the network factors supplied by the caller.
pub fn authenticate_with(
    cfg: &Config,
    trust: Trust,
    login: Login<'_>,
    now: i64,
    conv: &mut dyn Conversation,
    audit: &mut Audit,
    net: &mut dyn Network,
) -> Verdict {
    let canonical = match users::canonical(login.user) {
        Some(name) => name,
        None => {
            audit.warning(&format!(
                "auth denied user={} service={} rhost={} reason=unknown-user",
                clean(login.user),
                clean(login.service),
                clean(login.rhost)
            ));
            return Verdict::UnknownUser;
        }
    };
    // From here on the user is the passwd entry's own name, whatever case
    // or form NSS accepted; the log line keeps what was typed when it
    // differs.
    let typed = if canonical != login.user {
        format!(" typed={}", clean(login.user))
    } else {
        String::new()
    };
    let login = Login {
        user: &canonical,
        ..login
    };
    let who = format!(
        "user={} service={} rhost={}{typed}",
        clean(login.user),
        clean(login.service),
        clean(login.rhost)
    );
    // The group database is read only when the policy names groups.
    let groups = if cfg.policy.exempt_groups.is_empty() && cfg.policy.groups.is_empty() {
        Vec::new()
    } else {
        users::groups(login.user)
    };
    if let Some(why) = policy::exempt(cfg, login.user, &groups) {
        audit.notice(&format!("auth skipped {who} factor=none reason={why}"));
        return Verdict::Ignore;
    }
    let mut store = match Store::open_existing(&cfg.db, cfg.busy_timeout_ms, trust) {
        Ok(s) => s,
        Err(e) => return unavailable(conv, audit, &who, &e.to_string()),
    };
    let state = match store.user_state(login.user) {
        Ok(s) => s,
        Err(e) => return unavailable(conv, audit, &who, &e.to_string()),
    };
    let (allowed, _) = policy::allowed_methods(cfg, &groups);
    if !state.is_enrolled() {
        return unenrolled(
            cfg, trust, login, now, conv, audit, &mut store, &who, &allowed,
        );
    }
    let mut offer = Offer::of(cfg, &state, &allowed);
    // A key plugged into this machine approves only logins at it, unless
    // the admin says otherwise (`webauthn.local_remote`).
    let console_only =
        offer.local_key && !cfg.webauthn.local_remote && !localkey::is_local_rhost(login.rhost);
    if console_only {
        offer.local_key = false;
    }
    if offer.is_empty() {
        // Enrolled, but nothing usable: spent backup codes, factors the
        // admin has since disabled, or not allowed for the user's groups.
        // Never the `unenrolled` policy.
        let all = Offer::of(cfg, &state, &None);
        let (reason, msg) = if console_only {
            (
                "local-key-console-only",
                "Your security key works only at this machine's console. Ask an administrator for a factor that works remotely.",
            )
        } else if !all.is_empty() {
            (
                "factor-not-allowed-for-group",
                "Your second factor is not allowed for your group on this system. Ask an administrator.",
            )
        } else if state.used_backup > 0 && !state.has_factor() {
            (
                "backup-codes-exhausted",
                "All your backup codes are used and no other factor is set up. Ask an administrator for new codes.",
            )
        } else {
            (
                "no-usable-factor",
                "None of your second factors is enabled on this system. Ask an administrator.",
            )
        };
        audit.warning(&format!("auth denied {who} reason={reason}"));
        conv.error(msg);
        return Verdict::Denied;
    }
    if state.locked_until > now {
        return locked(conv, audit, &who, state.locked_until - now, state.failures);
    }
    // Before anything is verified: with the wrong key no code can match,
    // and "wrong code" would count toward the user's lockout.
    let key = match load_key(cfg, trust, &mut store) {
        Ok(k) => k,
        Err(e) => return unavailable(conv, audit, &who, &e),
    };
    let device = cfg
        .remembers(login.service)
        .then(|| remember::Device::of(&key, login));
    if let Some(d) = &device {
        match store.remembered(login.user, login.service, &d.hash, now) {
            Ok(Some(r)) => {
                audit.info(&format!(
                    "auth ok {who} factor=remembered (device {} since {}, first factor {})",
                    r.id,
                    r.created_at,
                    clean(&r.factor)
                ));
                return Verdict::Success;
            }
            Ok(None) => {}
            Err(e) => return unavailable(conv, audit, &who, &e.to_string()),
        }
    }
    let mut run = Run {
        cfg,
        trust,
        login,
        who,
        conv,
        audit,
        net,
        store,
        key,
        state,
        clock: StartedAt::new(now),
        proven: None,
    };
    let verdict = run.go(offer);
    if verdict == Verdict::Success
        && let (Some(d), Some(factor)) = (&device, run.proven)
    {
        run.remember(d, factor.as_str());
    }
    verdict
}

/// Loads the host key and checks that it is the one the store was made
/// with ([`p2fa_core::keycheck`]); any problem is "unavailable".
fn load_key(cfg: &Config, trust: Trust, store: &mut Store) -> Result<HostKey, String> {
    let key = HostKey::load(&cfg.key_file, trust).map_err(|e| e.to_string())?;
    p2fa_core::keycheck::verify(store, &key, &cfg.key_file.display().to_string())?;
    Ok(key)
}

/// A user with no factor at all: exemption is checked already; apply
/// `unenrolled` (deny, allow, grace) and offer inline enrollment.
#[allow(clippy::too_many_arguments)]
fn unenrolled(
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
    let first_seen = if cfg.unenrolled_for(login.service) == p2fa_core::config::Unenrolled::Grace {
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
            audit.warning(&format!("auth denied {who} reason={reason}"));
            conv.error(msg);
            Verdict::Denied
        }
    }
}

/// The factors a user can use right now: enrolled and enabled.
#[derive(Debug, Clone, Default)]
struct Offer {
    otp: bool,
    backup: bool,
    sms: Option<String>,
    email: Option<String>,
    duo: bool,
    questions: bool,
    webauthn: bool,
    /// A local FIDO2 key (console), when one is also plugged in.
    local_key: bool,
}

impl Offer {
    fn of(cfg: &Config, s: &UserState, allowed: &Option<Vec<String>>) -> Offer {
        use FactorId::*;
        let ok = |f: FactorId| policy::allows_factor(allowed, f);
        let otp_kind = s.otp.as_ref().map_or(Totp, |o| o.kind.factor());
        Offer {
            otp: s.otp.is_some() && ok(otp_kind),
            backup: !s.unused_backup.is_empty() && ok(Backup),
            sms: s.sms.clone().filter(|_| cfg.sms.enabled && ok(Sms)),
            email: s.email.clone().filter(|_| cfg.email.enabled && ok(Email)),
            duo: s.duo && cfg.duo.enabled && ok(Duo),
            questions: s.questions > 0 && cfg.questions.enabled && ok(Questions),
            webauthn: s.webauthn > 0 && cfg.webauthn.enabled && ok(Webauthn),
            local_key: s.local_keys > 0 && cfg.webauthn.local_keys && ok(LocalKey),
        }
    }

    fn is_empty(&self) -> bool {
        !self.otp
            && !self.backup
            && self.sms.is_none()
            && self.email.is_none()
            && !self.duo
            && !self.questions
            && !self.webauthn
            && !self.local_key
    }

    fn local_code(&self) -> bool {
        self.otp || self.backup
    }
}

/// One login in progress, with everything its steps share.
struct Run<'a> {
    cfg: &'a Config,
    /// Whose files to believe (the local key tools).
    trust: Trust,
    login: Login<'a>,
    who: String,
    conv: &'a mut dyn Conversation,
    audit: &'a mut Audit,
    net: &'a mut dyn Network,
    store: Store,
    key: HostKey,
    state: UserState,
    /// The login's time: from `now` on, running, because users take a
    /// while to read a text or approve a push.
    clock: StartedAt,
    /// The factor that proved this login, once one has (what a
    /// remembered device records).
    proven: Option<FactorId>,
}

impl Run<'_> {
    fn now(&self) -> i64 {
        self.clock.unix_now()
    }

    fn go(&mut self, mut offer: Offer) -> Verdict {
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
            let mut choices = Vec::new();
            if let Some(d) = &duo {
                if d.push.is_some() {
                    choices.push(FactorId::DuoPush);
                }
                if d.phone.is_some() {
                    choices.push(FactorId::DuoPhone);
                }
            }
            if offer.sms.is_some() {
                choices.push(FactorId::Sms);
            } else if duo.as_ref().is_some_and(|d| d.sms.is_some()) {
                choices.push(FactorId::DuoSms);
            }
            if offer.email.is_some() {
                choices.push(FactorId::Email);
            }
            // "key": a local key when one is offered, else 2fad's WebAuthn.
            if offer.webauthn || offer.local_key {
                choices.push(FactorId::Webauthn);
            }
            if offer.questions {
                choices.push(FactorId::Questions);
            }
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
                            Ok(v) => v,
                            Err(_shown) => {
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
    fn check_code(&mut self, code: &str, duo: Option<&duo::Ready>, offer: &Offer) -> Verdict {
        let duo_may_try =
            duo.is_some() && code.len() >= 6 && code.bytes().all(|b| b.is_ascii_digit());
        let now = self.now();
        let checked = match verify(
            self.cfg,
            &mut self.store,
            &self.key,
            self.login,
            now,
            code,
            true,
            offer,
        ) {
            Ok(c) => c,
            Err(e) => return self.unavailable(&e),
        };
        match checked {
            Checked::Accepted {
                factor,
                backup_left,
            } => {
                self.audit
                    .info(&format!("auth ok {} factor={factor}", self.who));
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
            Checked::Locked {
                remaining,
                failures,
            } => locked(self.conv, self.audit, &self.who, remaining, failures),
            Checked::Rejected {
                reason,
                failures,
                locked_until,
            } => match duo {
                Some(d) if duo_may_try => {
                    self.duo_passcode(d, code, Some((failures, locked_until)))
                }
                _ => {
                    let guess = factor_guess(&self.state, code);
                    self.rejected(guess, reason, failures, locked_until)
                }
            },
        }
    }

    /// Records a success for a factor verified outside [`verify`].
    fn succeed(&mut self, factor: FactorId, note: &str) -> Verdict {
        let now = self.now();
        let res = self.store.write().and_then(|tx| {
            tx.record_success(
                self.login.user,
                now,
                self.login.service,
                self.login.rhost,
                factor.as_str(),
            )?;
            tx.commit()
        });
        if let Err(e) = res {
            return self.unavailable(&e.to_string());
        }
        if factor == FactorId::DuoBypass {
            // Duo's own policy let the user through: nothing was proven.
            self.audit
                .notice(&format!("auth skipped {} factor=none{note}", self.who));
            return Verdict::Ignore;
        }
        self.audit
            .info(&format!("auth ok {} factor={factor}{note}", self.who));
        self.proven = Some(factor);
        Verdict::Success
    }

    /// Counts a failure for a factor verified outside [`verify`].
    fn fail(&mut self, factor: FactorId, reason: &str) -> Verdict {
        match self.count_failure() {
            Ok((failures, locked_until)) => {
                self.rejected(Some(factor), reason, failures, locked_until)
            }
            Err(v) => v,
        }
    }

    /// Records one failure; (failures, locked_until), or the verdict when
    /// the store cannot record it.
    fn count_failure(&mut self) -> Result<(u32, i64), Verdict> {
        let now = self.now();
        let res = self.store.write().and_then(|tx| {
            let r = tx.record_failure(self.login.user, now, &self.cfg.rate_limit)?;
            tx.commit()?;
            Ok(r)
        });
        res.map_err(|e| self.unavailable(&e.to_string()))
    }

    /// Logs and shows a counted failure; `factor` is `None` when the code
    /// fits no factor the user has (logged as `factor=none`).
    fn rejected(
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
            self.conv.error(msg);
            Verdict::Denied
        }
    }

    fn bad_input(&mut self, why: &str) -> Verdict {
        // Malformed input cannot guess a code, so it is not counted.
        self.audit.warning(&format!(
            "auth denied {} reason=bad-input ({why})",
            self.who
        ));
        self.conv
            .error(&format!("That is not a valid code: {why}."));
        Verdict::Denied
    }

    fn conv_failed(&mut self, e: &str) -> Verdict {
        self.audit.warning(&format!(
            "auth denied {} reason=conversation-failed ({})",
            self.who,
            p2fa_core::audit::detail(e)
        ));
        Verdict::ConversationFailed
    }

    fn unavailable(&mut self, why: &str) -> Verdict {
        unavailable(self.conv, self.audit, &self.who, why)
    }

    /// Duo's `failmode`, applied when preauth got no answer at all and Duo
    /// was the only way in. `safe` only for a root caller (see
    /// [`duo::failmode_safe_allowed`]).
    fn duo_failmode(&mut self, detail: &str) -> Verdict {
        let uid = self.login.caller_uid;
        match self.cfg.duo.failmode {
            FailMode::Safe if !duo::failmode_safe_allowed(uid) => self.unavailable(&format!(
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
}

enum Checked {
    Accepted {
        factor: FactorId,
        backup_left: Option<usize>,
    },
    Rejected {
        reason: &'static str,
        failures: u32,
        locked_until: i64,
    },
    Locked {
        remaining: i64,
        failures: u32,
    },
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
/// single-use, rate-limited check a login does, logged under `service`.
pub fn check_current(
    cfg: &Config,
    store: &mut Store,
    key: &HostKey,
    login: Login<'_>,
    now: i64,
    code: &str,
) -> Result<Current, String> {
    let offer = Offer {
        otp: true,
        backup: true,
        ..Offer::default()
    };
    Ok(
        match verify(cfg, store, key, login, now, code, true, &offer)? {
            Checked::Accepted { factor, .. } => Current::Accepted(factor),
            Checked::Rejected { .. } => Current::Rejected,
            Checked::Locked { remaining, .. } => Current::Locked(remaining),
        },
    )
}

/// Checks the code and records the result in one `BEGIN IMMEDIATE`
/// transaction, so 64 concurrent logins with one valid code yield exactly
/// one success: the first to commit moves `last_step` or marks the backup
/// code used, and the others then see that inside their own transaction.
#[allow(clippy::too_many_arguments)]
fn verify(
    cfg: &Config,
    store: &mut Store,
    key: &HostKey,
    login: Login<'_>,
    now: i64,
    code: &str,
    count_failure: bool,
    offer: &Offer,
) -> Result<Checked, String> {
    let se = |e: StoreError| e.to_string();
    let tx = store.write().map_err(se)?;
    let state = tx.user_state(login.user).map_err(se)?;
    if state.locked_until > now {
        return Ok(Checked::Locked {
            remaining: state.locked_until - now,
            failures: state.failures,
        });
    }
    let mut accepted = None;
    let mut reason = "wrong-code";
    if let Some(otp) = state.otp.as_ref().filter(|_| offer.otp) {
        let secret = key
            .open(&otp.sealed, &totp::seal_aad(login.user))
            .map_err(|e| e.to_string())?;
        let params = totp::OtpParams {
            algorithm: otp.algorithm,
            digits: otp.digits,
            period: otp.period,
        };
        match otp.kind {
            OtpKind::Totp => {
                if let Some(step) =
                    totp::verify_totp(&secret, &params, now, cfg.totp.window, otp.last_step, code)
                {
                    tx.set_last_step(login.user, step).map_err(se)?;
                    accepted = Some(FactorId::Totp);
                } else if totp::verify_totp(&secret, &params, now, cfg.totp.window, None, code)
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
                    cfg.hotp.look_ahead,
                    code,
                ) {
                    tx.set_counter(login.user, c + 1).map_err(se)?;
                    accepted = Some(FactorId::Hotp);
                }
            }
        }
    }
    let mut backup_left = None;
    if accepted.is_none() && offer.backup && !state.unused_backup.is_empty() {
        let hash = key.code_hash(login.user, code);
        let mut hit = None;
        for (id, stored) in &state.unused_backup {
            if crypto::ct_eq(stored, &hash) && hit.is_none() {
                hit = Some(*id);
            }
        }
        if let Some(id) = hit
            && tx.mark_backup_used(id, now, login.service).map_err(se)?
        {
            accepted = Some(FactorId::Backup);
            backup_left = Some(state.unused_backup.len() - 1);
        }
    }
    let checked = match accepted {
        Some(factor) => {
            tx.record_success(login.user, now, login.service, login.rhost, factor.as_str())
                .map_err(se)?;
            Checked::Accepted {
                factor,
                backup_left,
            }
        }
        None if !count_failure => Checked::Rejected {
            reason,
            failures: state.failures,
            locked_until: 0,
        },
        None => {
            let (failures, locked_until) = tx
                .record_failure(login.user, now, &cfg.rate_limit)
                .map_err(se)?;
            Checked::Rejected {
                reason,
                failures,
                locked_until,
            }
        }
    };
    tx.commit().map_err(se)?;
    Ok(checked)
}

/// Checks raw conversation bytes: bounded, UTF-8, no control characters.
/// Empty is allowed (it means "the default" at the menu).
fn answer_text(raw: &[u8]) -> Result<Zeroizing<String>, &'static str> {
    if raw.len() > MAX_INPUT {
        return Err("too long");
    }
    let text = std::str::from_utf8(raw).map_err(|_| "not valid UTF-8 text")?;
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err("contains control characters");
    }
    Ok(Zeroizing::new(text.to_string()))
}

/// Validates raw conversation bytes and returns the normalised code.
pub fn parse_answer(raw: &[u8]) -> Result<Zeroizing<String>, &'static str> {
    let text = answer_text(raw)?;
    if text.trim().is_empty() {
        return Err("empty");
    }
    factor::normalize_code(&text)
        .map(Zeroizing::new)
        .ok_or("use only the digits (or letters) of the code")
}

/// For the log line: which factor the attempt most likely targeted.
fn factor_guess(state: &UserState, code: &str) -> Option<FactorId> {
    match &state.otp {
        Some(o) if code.len() == o.digits as usize => Some(o.kind.factor()),
        _ if !state.unused_backup.is_empty() => Some(FactorId::Backup),
        Some(o) => Some(o.kind.factor()),
        None => None,
    }
}

fn unavailable(conv: &mut dyn Conversation, audit: &mut Audit, who: &str, why: &str) -> Verdict {
    audit.err(&format!(
        "auth denied {who} reason=unavailable: {}",
        p2fa_core::audit::detail(why)
    ));
    conv.error(MSG_UNAVAILABLE);
    Verdict::Unavailable
}

fn locked(
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

#[cfg(test)]
mod tests {
    use super::*;
    use p2fa_core::config::Unenrolled;
    use p2fa_core::store::OtpRecord;
    use p2fa_testkit::conversation::{Reply, Scripted};

    const SECRET: &[u8] = b"12345678901234567890";
    const T0: i64 = 1_800_000_000;

    /// A store with root's TOTP token and two backup codes, in a temp dir.
    fn setup() -> (tempfile::TempDir, Config, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config {
            db: dir.path().join("state/state.db"),
            key_file: dir.path().join("key"),
            ..Config::default()
        };
        cfg.rate_limit.max_failures = 3;
        let (key, _) = HostKey::load_or_create(&cfg.key_file, Trust::test_runner()).unwrap();
        let mut store = Store::open_or_create(&cfg.db, 1000, Trust::test_runner()).unwrap();
        let tx = store.write().unwrap();
        let rec = OtpRecord {
            kind: OtpKind::Totp,
            sealed: key.seal(SECRET, &totp::seal_aad("root")).unwrap(),
            algorithm: p2fa_core::config::Algorithm::Sha1,
            digits: 6,
            period: 30,
            last_step: None,
            counter: 0,
            created_at: T0,
        };
        tx.put_otp("root", &rec, T0).unwrap();
        let codes = vec!["1111122222".to_string(), "3333344444".to_string()];
        let hashes: Vec<[u8; 32]> = codes.iter().map(|c| key.code_hash("root", c)).collect();
        tx.replace_backup_codes("root", &hashes, T0).unwrap();
        tx.commit().unwrap();
        (dir, cfg, codes)
    }

    /// One login answering exactly `answers` (a prompt too many or an
    /// answer left over fails the test); the verdict and the transcript.
    fn run(cfg: &Config, user: &str, now: i64, answers: &[&str]) -> (Verdict, Vec<String>) {
        let mut conv = Scripted::new(answers.iter().copied());
        let login = Login {
            user,
            service: "test",
            rhost: "",
            tty: "",
            caller_uid: 0,
        };
        let v = authenticate(
            cfg,
            Trust::test_runner(),
            login,
            now,
            &mut conv,
            &mut Audit::null(),
        );
        (v, conv.transcript().to_vec())
    }

    fn code_at(t: i64) -> String {
        let p = totp::OtpParams {
            algorithm: p2fa_core::config::Algorithm::Sha1,
            digits: 6,
            period: 30,
        };
        totp::totp_at_step(SECRET, &p, (t / 30) as u64).to_string()
    }

    #[test]
    fn totp_once_with_injected_clock() {
        let (_d, cfg, _) = setup();
        assert_eq!(run(&cfg, "root", T0, &[&code_at(T0)]).0, Verdict::Success);
        assert_eq!(
            run(&cfg, "root", T0 + 1, &[&code_at(T0)]).0,
            Verdict::Denied,
            "replay"
        );
        assert_eq!(
            run(&cfg, "root", T0 + 30, &[&code_at(T0 + 30)]).0,
            Verdict::Success
        );
        assert_eq!(
            run(&cfg, "root", T0 + 300, &[&code_at(T0 + 200)]).0,
            Verdict::Denied,
            "stale"
        );
    }

    #[test]
    fn backup_code_once_and_counts_down() {
        let (_d, cfg, codes) = setup();
        let (v, msgs) = run(&cfg, "root", T0, &["11111-22222"]);
        assert_eq!(v, Verdict::Success);
        assert!(msgs.iter().any(|m| m.contains("1 left")), "{msgs:?}");
        assert_eq!(run(&cfg, "root", T0, &[&codes[0]]).0, Verdict::Denied);
        assert_eq!(run(&cfg, "root", T0, &[&codes[1]]).0, Verdict::Success);
    }

    #[test]
    fn lockout_grows_and_expires_with_the_clock() {
        let (_d, cfg, _) = setup();
        for i in 0..2 {
            assert_eq!(run(&cfg, "root", T0 + i, &["000000"]).0, Verdict::Denied);
        }
        // Third failure reaches max_failures = 3: locked for 60 s.
        assert_eq!(run(&cfg, "root", T0 + 2, &["000000"]).0, Verdict::Locked);
        // Not even asked for a code (so a right one cannot help).
        let (v, msgs) = run(&cfg, "root", T0 + 30, &[]);
        assert_eq!(v, Verdict::Locked, "refused while locked");
        assert!(
            msgs.iter().all(|m| !m.starts_with('?')),
            "no prompt while locked: {msgs:?}"
        );
        // After the lockout, one more failure locks for 120 s (doubling).
        assert_eq!(run(&cfg, "root", T0 + 63, &["000000"]).0, Verdict::Locked);
        assert_eq!(run(&cfg, "root", T0 + 63 + 119, &[]).0, Verdict::Locked);
        assert_eq!(
            run(&cfg, "root", T0 + 63 + 121, &[&code_at(T0 + 184)]).0,
            Verdict::Success
        );
        // Success reset the counter: a single failure does not lock.
        assert_eq!(run(&cfg, "root", T0 + 400, &["000000"]).0, Verdict::Denied);
    }

    #[test]
    fn malformed_input_is_refused_and_not_counted() {
        let (_d, cfg, _) = setup();
        for bad in ["", "abc;", "12\x1b34", &"9".repeat(100)] {
            assert_eq!(run(&cfg, "root", T0, &[bad]).0, Verdict::Denied);
        }
        let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
        assert_eq!(store.user_state("root").unwrap().failures, 0);
    }

    #[test]
    fn unenrolled_policy_and_unknown_user() {
        let (_d, mut cfg, _) = setup();
        let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
        let tx = store.write().unwrap();
        tx.reset_user("root").unwrap();
        tx.commit().unwrap();
        assert_eq!(run(&cfg, "root", T0, &[]).0, Verdict::Denied);
        cfg.unenrolled = Unenrolled::Allow;
        assert_eq!(run(&cfg, "root", T0, &[]).0, Verdict::Ignore);
        assert_eq!(
            run(&cfg, "no-such-user-pam2fa", T0, &[]).0,
            Verdict::UnknownUser
        );
    }

    #[test]
    fn spent_backup_codes_are_not_unenrolled() {
        let (_d, mut cfg, codes) = setup();
        cfg.unenrolled = Unenrolled::Allow;
        let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
        let tx = store.write().unwrap();
        tx.remove_otp("root").unwrap();
        tx.commit().unwrap();
        for c in &codes {
            assert_eq!(run(&cfg, "root", T0, &[c]).0, Verdict::Success);
        }
        let (v, msgs) = run(&cfg, "root", T0, &[]);
        assert_eq!(v, Verdict::Denied, "unenrolled=allow must not apply");
        assert!(
            msgs.iter().any(|m| m.contains("backup codes are used")),
            "{msgs:?}"
        );
    }

    #[test]
    fn missing_store_or_key_is_unavailable() {
        let (d, mut cfg, _) = setup();
        std::fs::remove_file(&cfg.key_file).unwrap();
        assert_eq!(run(&cfg, "root", T0, &[]).0, Verdict::Unavailable);
        cfg.db = d.path().join("nope.db");
        assert_eq!(run(&cfg, "root", T0, &[]).0, Verdict::Unavailable);
    }

    #[test]
    fn conversation_failure_denies() {
        let (_d, cfg, _) = setup();
        let mut conv = Scripted::new([Reply::fail("the client hung up")]);
        let login = Login {
            user: "root",
            service: "t",
            rhost: "",
            tty: "",
            caller_uid: 0,
        };
        assert_eq!(
            authenticate(
                &cfg,
                Trust::test_runner(),
                login,
                T0,
                &mut conv,
                &mut Audit::null()
            ),
            Verdict::ConversationFailed
        );
    }

    #[test]
    fn parses_answers() {
        assert_eq!(
            parse_answer(b" 123 456\n".trim_ascii_end())
                .unwrap()
                .as_str(),
            "123456"
        );
        assert_eq!(parse_answer(b"12345-67890").unwrap().as_str(), "1234567890");
        assert_eq!(parse_answer(b"").unwrap_err(), "empty");
        assert_eq!(parse_answer(b"   ").unwrap_err(), "empty");
        assert_eq!(parse_answer(&[b'1'; 65]).unwrap_err(), "too long");
        assert_eq!(
            parse_answer(b"\xff\xfe123").unwrap_err(),
            "not valid UTF-8 text"
        );
        assert_eq!(
            parse_answer(b"123\x1b456").unwrap_err(),
            "contains control characters"
        );
        assert_eq!(
            parse_answer(b"12\n34").unwrap_err(),
            "contains control characters"
        );
        assert!(parse_answer(b"12;34").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(30), "30 seconds");
        assert_eq!(human_duration(120), "2 minutes");
        assert_eq!(human_duration(3600), "60 minutes");
        assert_eq!(human_duration(7200), "2 hours");
    }
}

#[cfg(test)]
mod network_tests;
