//! Enrollment inside the login conversation, for users without a factor
//! when the policy offers it: the QR code and secret are shown, one code
//! confirms the new TOTP token, backup codes are shown once, and the login
//! continues. Works over OpenSSH keyboard-interactive because every piece
//! of text travels together with a prompt.

use super::{Conversation, Login, Verdict, answer_text};
use p2fa_core::audit::Audit;
use p2fa_core::config::Config;
use p2fa_core::display::qr;
use p2fa_core::factor::{backup, normalize_code, totp};
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::{OtpKind, OtpRecord, Store};
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
        let key = match super::load_key(self.cfg, self.trust, self.store) {
            Ok(k) => k,
            Err(e) => return self.unavailable(&e),
        };
        let secret = match totp::generate_secret() {
            Ok(s) => s,
            Err(e) => return self.unavailable(&e.to_string()),
        };
        let params = totp::OtpParams {
            algorithm: self.cfg.totp.algorithm,
            digits: self.cfg.totp.digits,
            period: self.cfg.totp.period,
        };
        let b32 = totp::encode_base32(&secret);
        let uri = totp::otpauth_uri(&self.cfg.issuer_name(), user, &b32, &params, None);
        let mut intro = Zeroizing::new(String::from(
            "Two-factor authentication: scan this QR code with an authenticator app\n\
             (Google Authenticator, FreeOTP, Aegis, 1Password, ...):\n",
        ));
        if let Some(q) = qr(&uri) {
            intro.push_str(&q);
        }
        intro.push_str(&format!("\nOr enter this key by hand: {}\n", b32.as_str()));
        let prompt = format!(
            "{}Then enter the {}-digit code the app shows: ",
            intro.as_str(),
            params.digits
        );
        let mut step = None;
        for attempt in 0..TRIES {
            let ask = if attempt == 0 {
                prompt.clone()
            } else {
                format!(
                    "That code does not match. Enter the current {}-digit code: ",
                    params.digits
                )
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
            let now = now + attempt as i64;
            if let Some(s) =
                totp::verify_totp(&secret, &params, now, self.cfg.totp.window, None, &code)
            {
                step = Some(s);
                break;
            }
        }
        let Some(step) = step else {
            self.audit.warning(&format!(
                "auth denied {} reason=inline-enrollment-not-confirmed",
                self.who
            ));
            self.conv.error(
                "The code did not match, so nothing was set up. Try again at your next login.",
            );
            return Verdict::Denied;
        };
        let sealed = match key.seal(&secret, &totp::seal_aad(user)) {
            Ok(s) => s,
            Err(e) => return self.unavailable(&e.to_string()),
        };
        let codes: Vec<Zeroizing<String>> = match backup::generate(self.cfg.backup.count as usize) {
            Ok(c) => c.into_iter().map(Zeroizing::new).collect(),
            Err(e) => return self.unavailable(&e.to_string()),
        };
        let hashes: Vec<[u8; 32]> = codes.iter().map(|c| key.code_hash(user, c)).collect();
        let rec = OtpRecord {
            kind: OtpKind::Totp,
            sealed,
            algorithm: params.algorithm,
            digits: params.digits,
            period: params.period,
            last_step: Some(step),
            counter: 0,
            created_at: now,
        };
        let saved = self.store.write().and_then(|tx| {
            // Someone may have enrolled this user meanwhile: never replace.
            if tx.user_state(user)?.is_enrolled() {
                return Ok(false);
            }
            tx.put_otp(user, &rec, now)?;
            tx.replace_backup_codes(user, &hashes, now)?;
            tx.record_success(user, now, self.login.service, self.login.rhost, "totp")?;
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
        for chunk in codes.chunks(3) {
            let line: Vec<String> = chunk.iter().map(|c| backup::format(c)).collect();
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
        super::unavailable(self.conv, self.audit, self.who, why)
    }
}
