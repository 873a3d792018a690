//! The Duo factors' attempts: a bypass Duo's preauth granted, a push /
//! phone call / SMS passcodes started and polled, and a passcode Duo
//! checks (counted before Duo is asked). `duo.rs` has preauth, failmode
//! and the meaning of Duo's errors.

use super::super::attempt::{At, Check, Counted, Factor, Stop, Vouched};
use super::super::error::AuthError;
use super::super::{Run, parse_answer};
use super::duo::{Ready, duo_text};
use p2fa_core::audit::clean;
use p2fa_core::clock::Deadline;
use p2fa_core::factor::FactorId;
use p2fa_net::network::DuoAnswer;
use std::time::Duration;

/// Longest single long-poll of `auth_status`.
const POLL_SLICE: Duration = Duration::from_secs(10);

/// Duo's preauth said "allow" (a bypass set in Duo): recorded, but
/// reported as PAM_IGNORE, since nothing was proven.
pub(super) struct Bypass {
    pub note: String,
}

impl Factor for Bypass {
    fn challenge(&mut self, _: &mut Run<'_>) -> Result<(), Stop> {
        Ok(())
    }

    fn verify(&mut self, _: &At<'_>) -> Result<Check, AuthError> {
        Ok(Check::Accepted {
            factor: FactorId::DuoBypass,
            note: std::mem::take(&mut self.note),
            backup_left: None,
        })
    }
}

/// A push, a phone call or passcodes by SMS through Duo.
pub(super) struct DuoCall<'d> {
    pub ready: &'d Ready,
    pub choice: FactorId,
    pub found: Option<Vouched>,
}

impl Factor for DuoCall<'_> {
    /// Starts the Duo transaction and waits for its answer (long polls
    /// of `auth_status`, bounded by `push_timeout_seconds`).
    fn challenge(&mut self, run: &mut Run<'_>) -> Result<(), Stop> {
        self.found = Some(call(run, self.ready, self.choice)?);
        Ok(())
    }

    fn verify(&mut self, _: &At<'_>) -> Result<Check, AuthError> {
        let factor = match self.choice {
            FactorId::DuoPush | FactorId::DuoPhone => self.choice,
            _ => FactorId::DuoSms,
        };
        Ok(self
            .found
            .as_ref()
            .map_or(Check::refused(factor, "push-timeout"), |v| v.check(factor)))
    }
}

fn call(run: &mut Run<'_>, ready: &Ready, choice: FactorId) -> Result<Vouched, Stop> {
    let (factor, device) = match choice {
        FactorId::DuoPush => (choice, &ready.push),
        FactorId::DuoPhone => (choice, &ready.phone),
        _ => (FactorId::DuoSms, &ready.sms),
    };
    let Some(device) = device else {
        return Err(Stop::Done(
            run.bad_input("that Duo factor is not available"),
        ));
    };
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let rhost = if run.login.rhost.is_empty() {
        "this machine"
    } else {
        run.login.rhost
    };
    let info = p2fa_net::delivery::fill(
        &run.cfg.duo.push_info,
        &[
            ("host", host.as_str()),
            ("service", run.login.service),
            ("rhost", rhost),
        ],
    );
    let push_info = vec![("Login".to_string(), info)];
    let deadline = Deadline::after(Duration::from_secs(run.cfg.duo.push_timeout_seconds));
    let txid = match run
        .net
        .duo_start(run.cfg, &ready.username, factor, &device.id, &push_info)
    {
        Ok(t) => t,
        Err(f) => return Err(Stop::Done(run.duo_error(&f, true))),
    };
    run.audit.info(&format!(
        "duo {factor} started {} device={}",
        run.who,
        clean(&device.name)
    ));
    let name = duo_text(&device.name);
    let prompt = match factor {
        FactorId::DuoPush => {
            format!("Duo push sent to {name}. Approve it, then press Enter (or type a passcode): ")
        }
        FactorId::DuoPhone => {
            format!("Calling {name}. Answer and approve, then press Enter (or type a passcode): ")
        }
        _ => format!("Duo sent passcodes by SMS to {name}. Passcode: "),
    };
    let answer = match run.conv.ask(&prompt, run.cfg.echo_code) {
        Ok(a) => a,
        Err(e) => return Err(Stop::Done(run.conv_failed(&e))),
    };
    if !answer.iter().all(u8::is_ascii_whitespace) || factor == FactorId::DuoSms {
        // A passcode typed instead: that is its own attempt.
        return Err(Stop::Done(match parse_answer(&answer) {
            Ok(code) => run.duo_passcode(ready, &code, None),
            Err(why) => run.bad_input(why),
        }));
    }
    loop {
        let left = deadline.remaining();
        if left.is_zero() {
            return Ok(Vouched::No {
                reason: "push-timeout",
            });
        }
        match run.net.duo_status(run.cfg, &txid, left.min(POLL_SLICE)) {
            Ok(DuoAnswer::Allow) => {
                return Ok(Vouched::Yes {
                    note: String::new(),
                });
            }
            Ok(DuoAnswer::Deny(msg)) => {
                run.audit.warning(&format!(
                    "duo {factor} denied {} ({})",
                    run.who,
                    duo_text(&msg)
                ));
                return Ok(Vouched::No {
                    reason: "push-denied",
                });
            }
            Ok(DuoAnswer::Waiting) => continue,
            Err(f) => return Err(Stop::Done(run.duo_error(&f, true))),
        }
    }
}

/// A passcode Duo checks; counted as a failure before Duo is asked.
pub(super) struct DuoPasscode<'d> {
    pub ready: &'d Ready,
    pub code: &'d str,
    pub counted: Counted,
    pub found: Option<Vouched>,
}

impl Factor for DuoPasscode<'_> {
    fn challenge(&mut self, run: &mut Run<'_>) -> Result<(), Stop> {
        let (failures, _) = self.counted;
        match run
            .net
            .duo_passcode(run.cfg, &self.ready.username, self.code)
        {
            Ok(DuoAnswer::Allow) => {
                self.found = Some(Vouched::Yes {
                    note: String::new(),
                });
                Ok(())
            }
            Ok(_) => {
                self.found = Some(Vouched::No {
                    reason: "wrong-code",
                });
                Ok(())
            }
            Err(f) => {
                run.audit.warning(&format!(
                    "auth failed {} factor={} reason=not-verified failures={failures}/{}",
                    run.who,
                    FactorId::DuoPasscode,
                    run.cfg.rate_limit.max_failures
                ));
                Err(Stop::Done(run.duo_error(&f, true)))
            }
        }
    }

    /// Duo's "allow" records the success (which clears the count); a
    /// refusal was counted before Duo was asked.
    fn verify(&mut self, _: &At<'_>) -> Result<Check, AuthError> {
        Ok(match &self.found {
            Some(Vouched::Yes { .. }) => Check::ok(FactorId::DuoPasscode),
            _ => Check::Rejected {
                factor: Some(FactorId::DuoPasscode),
                reason: "wrong-code",
                count: false,
                log: None,
                hint: None,
            },
        })
    }

    fn precounted(&self) -> Option<Counted> {
        Some(self.counted)
    }
}
