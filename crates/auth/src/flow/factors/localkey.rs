//! A local FIDO2 key at login (the console, like pam_u2f): find the key
//! with `fido2-token -L`, ask it to sign a fresh random client-data hash
//! with `fido2-assert`, and verify the answer in Rust against the stored
//! public key and counter, inside one store transaction.
//!
//! A missing key, no touch in time or a key that does not hold the
//! user's credential is not an attack: the user gets a clear message and
//! the menu again without the key (other factors), and nothing is
//! counted. A signature, relying party, flag or counter that does not
//! check out is a counted failure.

use super::super::attempt::{At, Check, Factor, Stop};
use super::super::error::AuthError;
use super::super::{Run, Verdict};
use p2fa_core::audit::clean;
use p2fa_core::config::UserVerification;
use p2fa_core::factor::FactorId;
use p2fa_core::factor::fido2;
use p2fa_core::fido2_tools::{self, AssertFailure, Device, ToolError};
use p2fa_core::store::LocalKey;

/// The factor in logs, `last_success_factor` and remembered devices.
const FACTOR: FactorId = FactorId::LocalKey;

/// PAM_RHOST values that still mean "at this machine": none, or loopback.
pub fn is_local_rhost(rhost: &str) -> bool {
    let h = rhost.trim();
    if h.is_empty()
        || h.eq_ignore_ascii_case("localhost")
        || h.eq_ignore_ascii_case("localhost.localdomain")
    {
        return true;
    }
    let h = h.trim_start_matches('[').trim_end_matches(']');
    match h.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => a.is_loopback(),
        Ok(std::net::IpAddr::V6(a)) => {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

impl Run<'_> {
    fn tools(&self) -> fido2_tools::Tools {
        fido2_tools::from_config(&self.cfg.webauthn, self.trust)
    }

    /// The first authenticator plugged in, or the message why there is none.
    pub(in super::super) fn local_device(&mut self) -> Result<Device, String> {
        match self.tools().devices() {
            Ok(list) => list.into_iter().next().ok_or_else(|| {
                self.audit
                    .info(&format!("local key not offered {}: no device", self.who));
                "No security key is plugged in.".to_string()
            }),
            Err(e) => {
                self.audit.err(&format!(
                    "local key not offered {}: {}",
                    self.who,
                    clean_long(&e.to_string())
                ));
                Err("Security keys cannot be used on this machine right now.".into())
            }
        }
    }

    /// One touch; `None` when the key is not usable now (already shown
    /// and logged: the caller offers the other factors).
    pub(in super::super) fn local_key(&mut self, dev: &Device) -> Option<Verdict> {
        self.attempt_usable(&mut Touch {
            dev: dev.clone(),
            touched: None,
        })
    }

    /// Logs why the key is not usable now, tells the user, returns the
    /// message for the menu that follows. Not a counted failure.
    fn local_fallback(&mut self, reason: &str, detail: &str, msg: &str) -> Stop {
        self.audit.warning(&format!(
            "local key unusable {} reason={reason} ({})",
            self.who,
            clean_long(detail)
        ));
        self.conv.error(msg);
        Stop::Unusable
    }
}

/// A touch of a local key: the challenge runs the tool, the check
/// verifies its answer against the stored key and counter.
struct Touch {
    dev: Device,
    touched: Option<Touched>,
}

struct Touched {
    key: LocalKey,
    cdh: Vec<u8>,
    need_uv: bool,
    answer: fido2_tools::Assertion,
}

impl Factor for Touch {
    fn challenge(&mut self, run: &mut Run<'_>) -> Result<(), Stop> {
        let dev = &self.dev;
        let keys = match run.store.local_keys(run.login.user) {
            Ok(k) => k,
            Err(e) => return Err(Stop::Done(run.unavailable(&e.to_string()))),
        };
        let need_uv = run.cfg.webauthn.local_user_verification == UserVerification::Required;
        let tools = run.tools();
        let key = if keys.len() == 1 {
            keys.into_iter().next()
        } else {
            // The tool takes one credential per run. A silent probe (no
            // touch, up=false) finds the one this key holds, as pam_u2f does.
            let mut found = None;
            for k in keys {
                let Ok(cdh) = p2fa_core::crypto::random_array::<{ fido2::CDH_LEN }>() else {
                    return Err(Stop::Done(run.unavailable("no randomness")));
                };
                match tools.get_assertion(&dev.path, &k.rp_id, &k.credential_id, &cdh, false, false)
                {
                    Ok(Ok(_)) => {
                        found = Some(k);
                        break;
                    }
                    Ok(Err(_)) => {}
                    Err(e) => {
                        return Err(run.local_fallback("probe", &e.to_string(), MSG_NO_ANSWER));
                    }
                }
            }
            found
        };
        let Some(key) = key else {
            return Err(run.local_fallback("not-registered", &dev.path, MSG_NOT_REGISTERED));
        };
        let Ok(cdh) = p2fa_core::crypto::random_array::<{ fido2::CDH_LEN }>() else {
            return Err(Stop::Done(run.unavailable("no randomness")));
        };
        run.conv.info(if need_uv {
            "Touch your security key and let it verify you (fingerprint)."
        } else {
            "Touch your security key."
        });
        let secs = run.cfg.webauthn.local_timeout_seconds;
        let answer = match tools.get_assertion(
            &dev.path,
            &key.rp_id,
            &key.credential_id,
            &cdh,
            true,
            need_uv,
        ) {
            Ok(Ok(a)) => a,
            Err(ToolError::Timeout) => {
                return Err(run.local_fallback(
                    "timeout",
                    &format!("{secs}s"),
                    &format!("No touch within {secs} seconds."),
                ));
            }
            Err(e) => {
                return Err(run.local_fallback("tool-failed", &e.to_string(), MSG_NO_ANSWER));
            }
            Ok(Err(f)) => {
                let (reason, msg) = match &f {
                    AssertFailure::NoCredential => ("not-registered", MSG_NOT_REGISTERED),
                    AssertFailure::DeviceGone => ("device-gone", "The security key was removed."),
                    AssertFailure::KeyTimeout => ("timeout", "No touch in time."),
                    AssertFailure::UvUnsupported => (
                        "uv-unsupported",
                        "This security key cannot verify you as this system requires (fingerprint or built-in verification).",
                    ),
                    AssertFailure::Other(_) => ("tool-failed", MSG_NO_ANSWER),
                };
                let detail = match f {
                    AssertFailure::Other(m) => m,
                    other => format!("{other:?}"),
                };
                return Err(run.local_fallback(reason, &detail, msg));
            }
        };
        self.touched = Some(Touched {
            key,
            cdh: cdh.to_vec(),
            need_uv,
            answer,
        });
        Ok(())
    }

    /// The signature, relying party, flags and counter, against the key
    /// as stored now (a clone answering an old challenge shows up as a
    /// counter that did not grow).
    fn verify(&mut self, at: &At<'_>) -> Result<Check, AuthError> {
        let Some(t) = &self.touched else {
            return Ok(Check::refused(FACTOR, "no-answer"));
        };
        let (user, a, cdh) = (at.login.user, &t.answer, t.cdh.as_slice());
        let checked = match at.tx.local_key(user, &t.key.credential_id)? {
            None => Err(fido2::Refusal::Malformed(
                "the key was removed during the login",
            )),
            Some(_) if a.rp_id != t.key.rp_id || a.cdh != cdh => Err(fido2::Refusal::Malformed(
                "the tool answered for another relying party or challenge",
            )),
            Some(stored) => fido2::check_assertion(
                &stored.rp_id,
                &stored.public_key,
                stored.counter,
                t.need_uv,
                &a.auth_data,
                cdh,
                &a.signature,
            ),
        };
        Ok(match checked {
            Ok(ok) => {
                at.tx
                    .use_local_key(user, &t.key.credential_id, ok.counter, at.now)?;
                Check::Accepted {
                    factor: FACTOR,
                    note: format!(
                        " key={} uv={}",
                        clean(&t.key.name),
                        if ok.user_verified { "yes" } else { "no" }
                    ),
                    backup_left: None,
                }
            }
            Err(refusal) => Check::Rejected {
                factor: Some(FACTOR),
                reason: refusal.reason(),
                count: true,
                log: Some((
                    "local key refused",
                    format!(" key={}: {refusal}", clean(&t.key.name)),
                )),
                hint: None,
            },
        })
    }
}

const MSG_NOT_REGISTERED: &str = "This security key is not registered for your account.";
const MSG_NO_ANSWER: &str = "The security key did not answer.";

/// Tool messages for the log: one line, printable, bounded.
fn clean_long(s: &str) -> String {
    p2fa_core::audit::printable(&s.replace(['\n', '\r'], " "), 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts() {
        for h in [
            "",
            "localhost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
            "LOCALHOST",
        ] {
            assert!(is_local_rhost(h), "{h}");
        }
        for h in [
            "203.0.113.5",
            "::ffff:10.0.0.1",
            "example.org",
            "localhost.evil.example",
            "10.0.0.1",
        ] {
            assert!(!is_local_rhost(h), "{h}");
        }
    }
}
