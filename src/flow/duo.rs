//! Duo at login: `preauth` decides whether Duo is offered at all; push and
//! phone are started, shown with a prompt (OpenSSH only displays text that
//! comes with a prompt), and polled until approved, denied or timed out.
//!
//! `failmode` applies only when Duo is the user's only way in: a user who
//! also has a TOTP token or backup codes is simply not offered Duo while it
//! is unreachable, which is safer than `safe` and kinder than `secure`.

use super::network::{DuoAnswer, DuoDevice, DuoPreauth, DuoStart};
use super::{Choice, Run, Verdict, parse_answer};
use crate::audit::clean;
use std::time::{Duration, Instant};

/// Longest single long-poll of `auth_status`.
const POLL_SLICE: Duration = Duration::from_secs(10);

pub(super) enum Pre {
    Ready(Ready),
    /// Duo is not offered this time (unreachable or user not enrolled in
    /// Duo) but other factors are.
    Skip,
    Done(Verdict),
}

/// Duo is usable for this login, with the devices preauth returned.
pub(super) struct Ready {
    username: String,
    pub push: Option<DuoDevice>,
    pub phone: Option<DuoDevice>,
    pub sms: Option<DuoDevice>,
    /// The user has other factors, so Duo's failmode does not apply.
    has_other: bool,
}

/// Duo text reaches a terminal: one printable line, bounded.
fn duo_text(s: &str) -> String {
    crate::audit::printable(s, 200)
}

impl Run<'_> {
    pub(super) fn duo_preauth(&mut self, has_other: bool) -> Pre {
        let username = self.cfg.duo.username(self.login.user).to_string();
        match self.net.duo_preauth(self.cfg, &username) {
            Ok(DuoPreauth::Auth(devices)) => {
                let first = |f: fn(&DuoDevice) -> bool| devices.iter().find(|d| f(d)).cloned();
                Pre::Ready(Ready {
                    push: first(|d| d.push),
                    phone: first(|d| d.phone),
                    sms: first(|d| d.sms),
                    username,
                    has_other,
                })
            }
            Ok(DuoPreauth::Allow(msg)) => {
                let note = format!(" reason=duo-preauth-allow ({})", duo_text(&msg));
                Pre::Done(self.succeed("duo-bypass", &note))
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
            Ok(DuoPreauth::Enroll(msg)) => {
                self.audit.warning(&format!(
                    "auth denied {} factor=duo reason=not-enrolled-in-duo",
                    self.who
                ));
                self.conv.error(&format!("Duo: {}", duo_text(&msg)));
                Pre::Done(Verdict::Denied)
            }
            Err(f) if has_other => {
                self.audit.err(&format!(
                    "duo unavailable, offering other factors {}: {}",
                    self.who,
                    crate::audit::detail(&f.detail)
                ));
                Pre::Skip
            }
            Err(f) if f.failmode => Pre::Done(self.duo_failmode(&f.detail)),
            Err(f) => {
                Pre::Done(self.unavailable(&format!("duo refused the request: {}", f.detail)))
            }
        }
    }

    pub(super) fn duo_factor(&mut self, d: &Ready, choice: Choice) -> Verdict {
        let (how, device, factor) = match choice {
            Choice::Push => (DuoStart::Push, &d.push, "duo-push"),
            Choice::Phone => (DuoStart::Phone, &d.phone, "duo-phone"),
            _ => (DuoStart::Sms, &d.sms, "duo-sms"),
        };
        let Some(device) = device else {
            return self.bad_input("that Duo factor is not available");
        };
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let rhost = if self.login.rhost.is_empty() {
            "this machine"
        } else {
            self.login.rhost
        };
        let info = crate::factor::delivery::fill(
            &self.cfg.duo.push_info,
            &[
                ("host", host.as_str()),
                ("service", self.login.service),
                ("rhost", rhost),
            ],
        );
        let push_info = vec![("Login".to_string(), info)];
        let started = Instant::now();
        let txid = match self
            .net
            .duo_start(self.cfg, &d.username, how, &device.id, &push_info)
        {
            Ok(t) => t,
            Err(f) => return self.duo_broken(d, &f.detail, f.failmode),
        };
        self.audit.info(&format!(
            "duo {factor} started {} device={}",
            self.who,
            clean(&device.name)
        ));
        let name = duo_text(&device.name);
        let prompt = match how {
            DuoStart::Push => format!(
                "Duo push sent to {name}. Approve it, then press Enter (or type a passcode): "
            ),
            DuoStart::Phone => {
                format!(
                    "Calling {name}. Answer and approve, then press Enter (or type a passcode): "
                )
            }
            DuoStart::Sms => format!("Duo sent passcodes by SMS to {name}. Passcode: "),
        };
        let answer = match self.conv.ask(&prompt, self.cfg.echo_code) {
            Ok(a) => a,
            Err(e) => return self.conv_failed(&e),
        };
        if !answer.iter().all(u8::is_ascii_whitespace) || how == DuoStart::Sms {
            return match parse_answer(&answer) {
                Ok(code) => self.duo_passcode(d, &code),
                Err(why) => self.bad_input(why),
            };
        }
        let deadline = started + Duration::from_secs(self.cfg.duo.push_timeout_seconds);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return self.fail(factor, "push-timeout");
            }
            match self.net.duo_status(self.cfg, &txid, left.min(POLL_SLICE)) {
                Ok(DuoAnswer::Allow) => return self.succeed(factor, ""),
                Ok(DuoAnswer::Deny(msg)) => {
                    self.audit.warning(&format!(
                        "duo {factor} denied {} ({})",
                        self.who,
                        duo_text(&msg)
                    ));
                    return self.fail(factor, "push-denied");
                }
                Ok(DuoAnswer::Waiting) => continue,
                Err(f) => return self.duo_broken(d, &f.detail, f.failmode),
            }
        }
    }

    pub(super) fn duo_passcode(&mut self, d: &Ready, code: &str) -> Verdict {
        match self.net.duo_passcode(self.cfg, &d.username, code) {
            Ok(DuoAnswer::Allow) => self.succeed("duo-passcode", ""),
            Ok(_) => self.fail("duo-passcode", "wrong-code"),
            Err(f) => self.duo_broken(d, &f.detail, f.failmode),
        }
    }

    /// Duo failed after preauth worked.
    fn duo_broken(&mut self, d: &Ready, detail: &str, failmode: bool) -> Verdict {
        if failmode && !d.has_other {
            self.duo_failmode(detail)
        } else {
            self.unavailable(&format!("duo: {detail}"))
        }
    }
}
