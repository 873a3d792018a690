//! What a user may use at this login: enrolled, enabled by the admin and
//! allowed for their groups; and the menu built from it.

use super::factors::duo::Ready;
use p2fa_core::config::Config;
use p2fa_core::factor::FactorId;
use p2fa_core::policy;
use p2fa_core::store::UserState;

/// The factors a user can use right now: enrolled and enabled.
#[derive(Debug, Clone, Default)]
pub(super) struct Offer {
    pub otp: bool,
    pub backup: bool,
    pub sms: Option<String>,
    pub email: Option<String>,
    pub duo: bool,
    pub questions: bool,
    pub webauthn: bool,
    /// A local FIDO2 key (console), when one is also plugged in.
    pub local_key: bool,
}

impl Offer {
    pub fn of(cfg: &Config, s: &UserState, allowed: &Option<Vec<String>>) -> Offer {
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

    /// What a user has enrolled, for a `debug` line: factor names and
    /// counts, never a secret or an address.
    pub fn enrolled(s: &UserState) -> String {
        let mut out = Vec::new();
        if let Some(o) = &s.otp {
            out.push(format!("{}({} digits)", o.kind.factor(), o.digits));
        }
        if !s.unused_backup.is_empty() || s.used_backup > 0 {
            out.push(format!(
                "backup({} unused, {} used)",
                s.unused_backup.len(),
                s.used_backup
            ));
        }
        for (on, name) in [
            (s.sms.is_some(), "sms"),
            (s.email.is_some(), "email"),
            (s.duo, "duo"),
        ] {
            if on {
                out.push(name.into());
            }
        }
        for (n, name) in [
            (s.questions, "questions"),
            (s.webauthn, "webauthn"),
            (s.local_keys, "local-keys"),
        ] {
            if n > 0 {
                out.push(format!("{name}({n})"));
            }
        }
        if out.is_empty() {
            "nothing".into()
        } else {
            out.join(",")
        }
    }

    /// What is offered, for a `debug` line; a factor the user has but may
    /// not use here is left out (config or group policy).
    pub fn describe(&self) -> String {
        let mut out = Vec::new();
        for (on, name) in [
            (self.otp, "otp"),
            (self.backup, "backup"),
            (self.sms.is_some(), "sms"),
            (self.email.is_some(), "email"),
            (self.duo, "duo"),
            (self.questions, "questions"),
            (self.webauthn, "webauthn"),
            (self.local_key, "local-key"),
        ] {
            if on {
                out.push(name);
            }
        }
        if out.is_empty() {
            "nothing".into()
        } else {
            out.join(",")
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.otp
            && !self.backup
            && self.sms.is_none()
            && self.email.is_none()
            && !self.duo
            && !self.questions
            && !self.webauthn
            && !self.local_key
    }

    pub fn local_code(&self) -> bool {
        self.otp || self.backup
    }

    /// The menu's factors, in menu order: Duo's devices, SMS (or Duo's
    /// passcodes by SMS), e-mail, "key" (a local key when one is offered,
    /// else 2fad's WebAuthn), questions. Codes need no entry: the prompt
    /// takes one whenever [`Offer::local_code`] or Duo is offered.
    pub fn menu(&self, duo: Option<&Ready>) -> Vec<FactorId> {
        let mut choices = Vec::new();
        if let Some(d) = duo {
            if d.push.is_some() {
                choices.push(FactorId::DuoPush);
            }
            if d.phone.is_some() {
                choices.push(FactorId::DuoPhone);
            }
        }
        if self.sms.is_some() {
            choices.push(FactorId::Sms);
        } else if duo.is_some_and(|d| d.sms.is_some()) {
            choices.push(FactorId::DuoSms);
        }
        if self.email.is_some() {
            choices.push(FactorId::Email);
        }
        if self.webauthn || self.local_key {
            choices.push(FactorId::Webauthn);
        }
        if self.questions {
            choices.push(FactorId::Questions);
        }
        choices
    }
}
