//! Enrollment inside the login conversation, for users without a factor
//! when the policy offers it: the QR code and secret are shown, one code
//! confirms the new TOTP token, backup codes are shown once, and the login
//! continues. Works over OpenSSH keyboard-interactive because every piece
//! of text travels together with a prompt.

use super::{Conversation, Login, Verdict, answer_text};
use p2fa_core::audit::Audit;
use p2fa_core::config::Config;
use p2fa_core::display::qr;
use p2fa_core::enrollment::{BackupSet, EnrollError, OtpSetup, Saved, save_otp};
use p2fa_core::factor::{FactorId, normalize_code};
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::Store;
use zeroize::Zeroizing;

/// Wrong codes allowed while confirming.
const TRIES: usize = 3;

pub(super) struct Inline<'a> {
    pub cfg: &'a Config,
    pub trust: Trust,
    pub login: Login<'a>,
    pub who: &'a str,
    pub conv: &'a mut dyn Conversation,
    pub audit: &'a mut Audit,
    pub store: &'a mut Store,
}

impl Inline<'_> {
    /// Asks whether to set up 2FA now (when the user may skip it).
    pub fn wants(&mut self, reason: &str) -> Result<bool, Verdict> {
        let a = self
            .conv
            .ask(
                &format!("{reason} Set up two-factor authentication now? [y/N]: "),
                true,
            )
            .map_err(|e| {
                self.audit.warning(&format!(
                    "auth denied {} reason=conversation-failed (inline enrollment offer: {})",
                    self.who,
                    p2fa_core::audit::detail(&e)
                ));
                Verdict::ConversationFailed
            })?;
        let text = answer_text(&a).unwrap_or_default();
        Ok(matches!(
            text.trim().to_ascii_lowercase().as_str(),
            "y" | "yes"
        ))
    }

    pub fn enroll(&mut self, now: i64) -> Verdict {
        let user = self.login.user;
        let key = match super::entry::load_key(self.cfg, self.trust, self.store) {
            Ok(k) => k,
            Err(e) => return self.unavailable(&e),
        };
        let mut setup = match OtpSetup::totp(self.cfg, None) {
            Ok(s) => s,
            Err(e) => return self.unavailable(&e.to_string()),
        };
        let digits = setup.params.digits;
        let uri = setup.uri(&self.cfg.issuer_name(), user);
        let mut intro = Zeroizing::new(String::from(
            "Two-factor authentication: scan this QR code with an authenticator app\n\
             (Google Authenticator, FreeOTP, Aegis, 1Password, ...):\n",
        ));
        if let Some(q) = qr(&uri) {
            intro.push_str(&q);
        }
        intro.push_str(&format!(
            "\nOr enter this key by hand: {}\n",
            setup.base32().as_str()
        ));
        let prompt = format!(
            "{}Then enter the {digits}-digit code the app shows: ",
            intro.as_str(),
        );
        let mut confirmed = false;
        for attempt in 0..TRIES {
            let ask = if attempt == 0 {
                prompt.clone()
            } else {
                format!("That code does not match. Enter the current {digits}-digit code: ")
            };
            let a = match self.conv.ask(&ask, true) {
                Ok(a) => a,
                Err(e) => {
                    self.audit.warning(&format!(
                        "auth denied {} reason=conversation-failed (inline enrollment abandoned: {})",
                        self.who,
                        p2fa_core::audit::detail(&e)
                    ));
                    return Verdict::ConversationFailed;
                }
            };
            let code = answer_text(&a)
                .ok()
                .and_then(|t| normalize_code(&t))
                .unwrap_or_default();
            if setup.confirm(self.cfg, now + attempt as i64, &code) {
                confirmed = true;
                break;
            }
        }
        if !confirmed {
            self.audit.warning(&format!(
                "auth denied {} reason=inline-enrollment-not-confirmed",
                self.who
            ));
            self.conv.error(
                "The code did not match, so nothing was set up. Try again at your next login.",
            );
            return Verdict::Denied;
        }
        let built = setup.record(&key, user, now).and_then(|rec| {
            let codes = BackupSet::generate(&key, user, self.cfg.backup.count as usize)?;
            Ok((rec, codes))
        });
        let (rec, codes) = match built {
            Ok(b) => b,
            Err(e) => return self.unavailable(&e.to_string()),
        };
        let saved = self
            .store
            .write()
            .map_err(EnrollError::from)
            .and_then(|tx| {
                // Someone may have enrolled this user meanwhile: never replace.
                if save_otp(&tx, user, &rec, now, true)? == Saved::AlreadyEnrolled {
                    return Ok(false);
                }
                codes.save(&tx, user, now)?;
                tx.record_success(
                    user,
                    now,
                    self.login.service,
                    self.login.rhost,
                    FactorId::Totp.as_str(),
                )?;
                tx.commit()?;
                Ok(true)
            });
        match saved {
            Ok(true) => {}
            Ok(false) => {
                self.audit.warning(&format!(
                    "auth denied {} reason=enrolled-elsewhere-meanwhile (inline enrollment not saved)",
                    self.who
                ));
                self.conv.error(
                    "Two-factor authentication was set up elsewhere meanwhile; log in again.",
                );
                return Verdict::Denied;
            }
            Err(e) => return self.unavailable(&e.to_string()),
        }
        self.audit.notice(&format!(
            "auth ok {} factor=totp reason=enrolled-at-login",
            self.who
        ));
        let mut list = Zeroizing::new(String::from(
            "Done. These backup codes let you in if you lose your phone; each works once.\n\
             Write them down now, they are not shown again:\n",
        ));
        for chunk in codes.formatted().chunks(3) {
            let line: Vec<&str> = chunk.iter().map(|c| c.as_str()).collect();
            list.push_str("  ");
            list.push_str(&line.join("   "));
            list.push('\n');
        }
        list.push_str("Press Enter to continue: ");
        // A prompt, not an info message: OpenSSH shows text only with one.
        let _ = self.conv.ask(&list, true);
        Verdict::Success
    }

    fn unavailable(&mut self, why: &str) -> Verdict {
        super::report::unavailable(self.conv, self.audit, self.who, why)
    }
}
