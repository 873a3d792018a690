//! The password and the code in one answer, for clients that show a
//! single password field (OpenVPN's auth-pam plugin, xrdp, some VPN
//! appliances): the module arguments `forward_pass`, `use_first_pass` and
//! `try_first_pass`, with pam_google_authenticator's meaning.
//!
//! - `forward_pass`: the module's one prompt is "Password & verification
//!   code: "; the code is taken off the end of the answer, checked, and
//!   the password in front of it handed on in `PAM_AUTHTOK`, so a
//!   following `auth required pam_unix.so use_first_pass` checks it.
//! - `use_first_pass`: the answer is `PAM_AUTHTOK` as an earlier module
//!   left it; the module never prompts. A missing `PAM_AUTHTOK`, or one
//!   that does not end in a code, is a refusal (not counted: nothing was
//!   guessed).
//! - `try_first_pass`: as `use_first_pass`, but when `PAM_AUTHTOK` is
//!   unset, does not end in a code, or ends in a code that is wrong, the
//!   module asks as usual (the combined prompt with `forward_pass`).
//!
//! After a code taken from a combined answer is accepted, `PAM_AUTHTOK`
//! is the password part (possibly empty) in every mode.
//!
//! **How the code is split off.** Only codes the module checks itself can
//! share a field with the password: TOTP and HOTP codes and backup codes.
//! The code is the answer's last characters, ASCII digits only, in the
//! lengths the user's own code factors have: the token's `digits` (6 to
//! 8) when they have a TOTP or HOTP token, and, when they have unused
//! backup codes, 10 digits (a generated code), `12345-67890` (one as
//! shown) and 8 digits (a scratch code imported from google-authenticator).
//! Every candidate of one answer is checked in one transaction, each only
//! against the factor its length belongs to: the first that fits wins,
//! and when none does, the attempt counts as one failure toward the
//! lockout, like a wrong code at the prompt. So one answer is at most one
//! TOTP/HOTP guess and three backup-code guesses (33 bits each).
//!
//! Duo passcodes are not taken from a combined answer: their length
//! depends on where they come from (6 digits from Duo Mobile, 7 by SMS,
//! 6 or 8 from a token, 9 for a bypass code), so the split would be a
//! guess, and every candidate would be a call to Duo counted by Duo's own
//! lockout. Nor are SMS or e-mail codes (they must be sent first), pushes,
//! security keys or questions. A user with none of the code factors is
//! refused under `use_first_pass` and `forward_pass` (logged as
//! `reason=no-code-factor`, not counted); under `try_first_pass` they get
//! the usual prompt and menu. A remembered device is not used in these
//! modes (it would skip the code but leave the code on the password).
//!
//! Under `try_first_pass` a password that happens to end in digits looks
//! like password + code: the check fails, is counted and logged as a
//! failed attempt, and the module then asks for the code. Sites whose
//! passwords may end in digits use `use_first_pass` or `forward_pass`
//! (where the answer is always password + code) rather than
//! `try_first_pass`.

use super::attempt::{At, Check, Factor, Stop};
use super::error::AuthError;
use super::factors::code::Codes;
use super::offer::Offer;
use super::report::denied;
use super::{Run, Verdict};
use p2fa_core::config::FirstPass;
use p2fa_core::factor::FactorId;
use zeroize::Zeroizing;

/// The prompt of `forward_pass`, as pam_google_authenticator words it.
pub const COMBINED_PROMPT: &str = "Password & verification code: ";

/// Longest combined answer looked at: a long passphrase plus a code.
pub const MAX_COMBINED: usize = 512;

/// One way to read an answer as password + code.
struct Split {
    password: Zeroizing<Vec<u8>>,
    code: Zeroizing<String>,
    /// Checked against the TOTP/HOTP token (else the backup codes).
    otp: bool,
}

/// The code lengths a user's factors can have, for [`splits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lengths {
    /// Digits of the user's TOTP/HOTP token, when it may be used.
    pub otp: Option<usize>,
    /// The user has unused backup codes that may be used.
    pub backup: bool,
}

impl Lengths {
    fn any(&self) -> bool {
        self.otp.is_some() || self.backup
    }
}

/// `answer`'s last `n` bytes when they are all ASCII digits, with the
/// rest in front.
fn digit_tail(answer: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    let at = answer.len().checked_sub(n)?;
    let (pw, tail) = answer.split_at(at);
    tail.iter().all(u8::is_ascii_digit).then_some((pw, tail))
}

/// Every way `answer` reads as password + a code of the user's (see the
/// module docs), in checking order: the token's code, then backup codes.
fn splits(answer: &[u8], lengths: Lengths) -> Vec<Split> {
    let mut out = Vec::new();
    let mut push = |pw: &[u8], code: &[u8], otp: bool| {
        let code: String = code
            .iter()
            .filter(|b| b.is_ascii_digit())
            .map(|&b| char::from(b))
            .collect();
        out.push(Split {
            password: Zeroizing::new(pw.to_vec()),
            code: Zeroizing::new(code),
            otp,
        });
    };
    if let Some((pw, code)) = lengths.otp.and_then(|d| digit_tail(answer, d)) {
        push(pw, code, true);
    }
    if lengths.backup {
        if let Some((pw, code)) = digit_tail(answer, 10) {
            push(pw, code, false);
        }
        // As shown: 12345-67890.
        if let Some(at) = answer.len().checked_sub(11) {
            let (pw, tail) = answer.split_at(at);
            let shown = tail[5] == b'-'
                && tail[..5].iter().all(u8::is_ascii_digit)
                && tail[6..].iter().all(u8::is_ascii_digit);
            if shown {
                push(pw, tail, false);
            }
        }
        if let Some((pw, code)) = digit_tail(answer, 8) {
            push(pw, code, false);
        }
    }
    out
}

/// The candidates of one answer, checked in one transaction.
struct Combined {
    splits: Vec<Split>,
    /// Which split was accepted.
    matched: Option<usize>,
    /// The factor a failure is logged under: the first candidate's.
    factor: FactorId,
}

impl Factor for Combined {
    /// The answer is in hand: nothing to ask.
    fn challenge(&mut self, _: &mut Run<'_>) -> Result<(), Stop> {
        Ok(())
    }

    fn verify(&mut self, at: &At<'_>) -> Result<Check, AuthError> {
        let mut reason = "wrong-code";
        for (i, s) in self.splits.iter().enumerate() {
            let mut codes = Codes {
                code: &s.code,
                otp: s.otp,
                backup: !s.otp,
            };
            match codes.verify(at)? {
                accepted @ Check::Accepted { .. } => {
                    self.matched = Some(i);
                    return Ok(accepted);
                }
                Check::Rejected {
                    reason: "replayed-code",
                    ..
                } => reason = "replayed-code",
                Check::Rejected { .. } => {}
            }
        }
        Ok(Check::Rejected {
            factor: Some(self.factor),
            reason,
            count: true,
            log: None,
            hint: None,
        })
    }
}

/// What came of a combined answer.
enum Taken {
    /// The login ends with this verdict (logged, shown, and on success the
    /// password handed on).
    Done(Verdict),
    /// No candidate: the answer does not end in a code of the user's.
    NoCode,
    /// Checked, wrong and counted, quietly (`try_first_pass` asks next).
    Wrong,
}

impl Run<'_> {
    /// The code lengths the user's offered code factors have.
    fn lengths(&self, offer: &Offer) -> Lengths {
        Lengths {
            otp: self
                .state
                .otp
                .as_ref()
                .filter(|_| offer.otp)
                .map(|o| o.digits as usize),
            backup: offer.backup,
        }
    }

    /// A login under `forward_pass`, `use_first_pass` or `try_first_pass`
    /// (see the module docs).
    pub(super) fn single_field(&mut self, offer: Offer) -> Verdict {
        let pass = self.cfg.pass;
        let lengths = self.lengths(&offer);
        if !lengths.any() {
            if pass.first_pass == FirstPass::Try {
                self.audit.debug(|| {
                    "debug: try_first_pass: no TOTP, HOTP or backup code to take from one field; asking as usual".into()
                });
                return self.go(offer);
            }
            // No factor at all, offered Duo only by `duo.users = "all"`:
            // Duo cannot share the field, but whether Duo knows the user
            // decides between this refusal (as for any Duo user) and the
            // unenrolled policy.
            if self.only_duo_by_all.is_some()
                && let super::factors::duo::Pre::Done(v) = self.duo_preauth(false)
            {
                return v;
            }
            let arg = if pass.first_pass == FirstPass::Use {
                "use_first_pass"
            } else {
                "forward_pass"
            };
            self.audit.warning(&format!(
                "{arg}: the user has no TOTP, HOTP or backup code, the only factors that can share one field with the password"
            ));
            return denied(
                self.conv,
                self.audit,
                &self.who,
                "no-code-factor",
                "This login takes the password and a verification code in one answer, but this account has no verification-code factor. Ask an administrator.",
            );
        }
        if pass.first_pass != FirstPass::Prompt {
            let use_only = pass.first_pass == FirstPass::Use;
            let arg = if use_only {
                "use_first_pass"
            } else {
                "try_first_pass"
            };
            match self.conv.first_pass() {
                None if use_only => {
                    self.audit
                        .warning(&format!("{arg}: no PAM_AUTHTOK from an earlier module"));
                    return denied(
                        self.conv,
                        self.audit,
                        &self.who,
                        "no-authtok",
                        "No password and verification code were given.",
                    );
                }
                None => self
                    .audit
                    .debug(|| format!("debug: {arg}: PAM_AUTHTOK is unset; asking")),
                Some(tok) => {
                    self.audit.debug(|| {
                        format!("debug: {arg}: checking the code at the end of PAM_AUTHTOK")
                    });
                    match self.take(&tok, lengths, !use_only) {
                        Taken::Done(v) => return v,
                        Taken::NoCode if use_only => {
                            return self
                                .bad_input("PAM_AUTHTOK does not end in a verification code");
                        }
                        Taken::NoCode => self.audit.debug(|| {
                            format!("debug: {arg}: PAM_AUTHTOK does not end in a code; asking")
                        }),
                        Taken::Wrong => self.audit.debug(|| {
                            format!("debug: {arg}: the code in PAM_AUTHTOK was refused; asking")
                        }),
                    }
                }
            }
        }
        if !pass.forward_pass {
            return self.go(offer);
        }
        let answer = match self.conv.ask(COMBINED_PROMPT, false) {
            Ok(a) => a,
            Err(e) => return self.conv_failed(&e),
        };
        if answer.is_empty() {
            return self.bad_input("empty");
        }
        match self.take(&answer, lengths, false) {
            Taken::Done(v) => v,
            Taken::NoCode | Taken::Wrong => {
                self.bad_input("the answer does not end in a verification code")
            }
        }
    }

    /// Checks the codes at the end of `answer` in one transaction; on
    /// success hands the password in front of the code on. `quiet`: a
    /// wrong code is counted and logged but not shown, and reported as
    /// [`Taken::Wrong`] unless it locked the account.
    fn take(&mut self, answer: &[u8], lengths: Lengths, quiet: bool) -> Taken {
        if answer.len() > MAX_COMBINED {
            return Taken::Done(self.bad_input("too long"));
        }
        let splits = splits(answer, lengths);
        let Some(first) = splits.first() else {
            return Taken::NoCode;
        };
        let factor = match (first.otp, &self.state.otp) {
            (true, Some(o)) => o.kind.factor(),
            _ => FactorId::Backup,
        };
        let mut combined = Combined {
            splits,
            matched: None,
            factor,
        };
        let outcome = match self.check(&mut combined) {
            Ok(o) => o,
            Err(v) => return Taken::Done(v),
        };
        self.quiet_refusal = quiet;
        let verdict = self.report(outcome);
        self.quiet_refusal = false;
        match (verdict, combined.matched) {
            (Verdict::Success, Some(i)) => {
                let password = &combined.splits[i].password;
                if let Err(e) = self.conv.forward_pass(password) {
                    return Taken::Done(
                        self.unavailable(&format!(
                            "cannot hand the password on in PAM_AUTHTOK: {e}"
                        )),
                    );
                }
                Taken::Done(Verdict::Success)
            }
            (Verdict::Denied, _) if quiet => Taken::Wrong,
            (v, _) => Taken::Done(v),
        }
    }
}

/// Under `forward_pass`, a user the policy lets through without a second
/// factor (exempt, or unenrolled under `allow` or `grace`) still has a
/// password for the next module: ask for it alone ("Password: ") and hand
/// it on. Under `use_first_pass` / `try_first_pass`, `PAM_AUTHTOK` already
/// holds it.
pub(super) fn pass_through(
    cfg: &p2fa_core::config::Config,
    conv: &mut dyn super::Conversation,
    audit: &mut p2fa_core::audit::Audit,
    who: &str,
) -> Verdict {
    if !cfg.pass.forward_pass || cfg.pass.first_pass != FirstPass::Prompt {
        return Verdict::Ignore;
    }
    let answer = match conv.ask("Password: ", false) {
        Ok(a) => a,
        Err(e) => {
            audit.warning(&format!(
                "auth denied {who} reason=conversation-failed ({})",
                p2fa_core::audit::detail(&e)
            ));
            return Verdict::ConversationFailed;
        }
    };
    if answer.len() > MAX_COMBINED {
        audit.warning(&format!("auth denied {who} reason=bad-input (too long)"));
        conv.error("That is not a valid password: too long.");
        return Verdict::Denied;
    }
    if let Err(e) = conv.forward_pass(&answer) {
        return super::report::unavailable(
            conv,
            audit,
            who,
            &format!("cannot hand the password on in PAM_AUTHTOK: {e}"),
        );
    }
    audit
        .debug(|| "debug: forward_pass: no second factor needed; the password is handed on".into());
    Verdict::Ignore
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(answer: &str, lengths: Lengths) -> Vec<(String, String, bool)> {
        splits(answer.as_bytes(), lengths)
            .into_iter()
            .map(|s| {
                (
                    String::from_utf8(s.password.to_vec()).unwrap(),
                    s.code.to_string(),
                    s.otp,
                )
            })
            .collect()
    }

    fn s(pw: &str, code: &str, otp: bool) -> (String, String, bool) {
        (pw.into(), code.into(), otp)
    }

    #[test]
    fn splits_at_the_lengths_the_users_codes_have() {
        let totp6 = Lengths {
            otp: Some(6),
            backup: false,
        };
        assert_eq!(read("hunter2123456", totp6), [s("hunter2", "123456", true)]);
        assert_eq!(read("123456", totp6), [s("", "123456", true)]);
        assert_eq!(read("hunter2", totp6), []);
        assert_eq!(read("pw12345", totp6), []);
        assert_eq!(read("12345", totp6), []);
        assert_eq!(read("pw 123456", totp6), [s("pw ", "123456", true)]);
        let totp8 = Lengths {
            otp: Some(8),
            backup: false,
        };
        assert_eq!(read("pw12345678", totp8), [s("pw", "12345678", true)]);
        let both = Lengths {
            otp: Some(6),
            backup: true,
        };
        assert_eq!(
            read("pw1234567890", both),
            [
                s("pw1234", "567890", true),
                s("pw", "1234567890", false),
                s("pw12", "34567890", false),
            ]
        );
        assert_eq!(read("pw12345-67890", both), [s("pw", "1234567890", false)]);
        let backup = Lengths {
            otp: None,
            backup: true,
        };
        assert_eq!(read("pw123456", backup), []);
        assert_eq!(read("x12345-67890", backup), [s("x", "1234567890", false)]);
        assert_eq!(read("12345-6789a", backup), []);
        // Non-UTF-8 passwords are the next module's business.
        let raw = splits(b"\xff\xfe123456", totp6);
        assert_eq!(&raw[0].password[..], b"\xff\xfe");
        // Non-ASCII digits are not a code.
        assert_eq!(read("pw１２３４５６", totp6), []);
    }
}
