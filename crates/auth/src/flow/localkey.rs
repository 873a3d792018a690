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

use super::{Run, Verdict, locked};
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
    pub(super) fn local_device(&mut self) -> Result<Device, String> {
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

    /// One touch. `Err(message)`: not usable now, already shown and
    /// logged; the caller offers the other factors.
    pub(super) fn local_key(&mut self, dev: &Device) -> Result<Verdict, String> {
        let keys = match self.store.local_keys(self.login.user) {
            Ok(k) => k,
            Err(e) => return Ok(self.unavailable(&e.to_string())),
        };
        let need_uv = self.cfg.webauthn.local_user_verification == UserVerification::Required;
        let tools = self.tools();
        let key = if keys.len() == 1 {
            keys.into_iter().next()
        } else {
            // The tool takes one credential per run. A silent probe (no
            // touch, up=false) finds the one this key holds, as pam_u2f does.
            let mut found = None;
            for k in keys {
                let Ok(cdh) = p2fa_core::crypto::random_array::<{ fido2::CDH_LEN }>() else {
                    return Ok(self.unavailable("no randomness"));
                };
                match tools.get_assertion(&dev.path, &k.rp_id, &k.credential_id, &cdh, false, false)
                {
                    Ok(Ok(_)) => {
                        found = Some(k);
                        break;
                    }
                    Ok(Err(_)) => {}
                    Err(e) => {
                        return Err(self.local_fallback("probe", &e.to_string(), MSG_NO_ANSWER));
                    }
                }
            }
            found
        };
        let Some(key) = key else {
            return Err(self.local_fallback("not-registered", &dev.path, MSG_NOT_REGISTERED));
        };
        let Ok(cdh) = p2fa_core::crypto::random_array::<{ fido2::CDH_LEN }>() else {
            return Ok(self.unavailable("no randomness"));
        };
        self.conv.info(if need_uv {
            "Touch your security key and let it verify you (fingerprint)."
        } else {
            "Touch your security key."
        });
        let secs = self.cfg.webauthn.local_timeout_seconds;
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
                return Err(self.local_fallback(
                    "timeout",
                    &format!("{secs}s"),
                    &format!("No touch within {secs} seconds."),
                ));
            }
            Err(e) => {
                return Err(self.local_fallback("tool-failed", &e.to_string(), MSG_NO_ANSWER));
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
                return Err(self.local_fallback(reason, &detail, msg));
            }
        };
        Ok(self.local_verify(&key, &cdh, need_uv, &answer))
    }

    /// Checks the answer and records the outcome in one transaction.
    fn local_verify(
        &mut self,
        key: &LocalKey,
        cdh: &[u8],
        need_uv: bool,
        a: &fido2_tools::Assertion,
    ) -> Verdict {
        let now = self.now();
        let user = self.login.user;
        let se = |e: p2fa_core::store::StoreError| e.to_string();
        let outcome = (|| -> Result<Outcome, String> {
            let tx = self.store.write().map_err(se)?;
            let state = tx.user_state(user).map_err(se)?;
            if state.locked_until > now {
                return Ok(Outcome::Locked(state.locked_until - now, state.failures));
            }
            let checked = match tx.local_key(user, &key.credential_id).map_err(se)? {
                None => Err(fido2::Refusal::Malformed(
                    "the key was removed during the login",
                )),
                Some(_) if a.rp_id != key.rp_id || a.cdh != cdh => Err(fido2::Refusal::Malformed(
                    "the tool answered for another relying party or challenge",
                )),
                Some(stored) => fido2::check_assertion(
                    &stored.rp_id,
                    &stored.public_key,
                    stored.counter,
                    need_uv,
                    &a.auth_data,
                    cdh,
                    &a.signature,
                ),
            };
            let outcome = match checked {
                Ok(ok) => {
                    tx.use_local_key(user, &key.credential_id, ok.counter, now)
                        .map_err(se)?;
                    tx.record_success(
                        user,
                        now,
                        self.login.service,
                        self.login.rhost,
                        FACTOR.as_str(),
                    )
                    .map_err(se)?;
                    Outcome::Accepted(ok)
                }
                Err(r) => {
                    let (failures, until) = tx
                        .record_failure(user, now, &self.cfg.rate_limit)
                        .map_err(se)?;
                    Outcome::Refused(r, failures, until)
                }
            };
            tx.commit().map_err(se)?;
            Ok(outcome)
        })();
        match outcome {
            Ok(Outcome::Accepted(ok)) => {
                self.audit.info(&format!(
                    "auth ok {} factor={FACTOR} key={} uv={}",
                    self.who,
                    clean(&key.name),
                    if ok.user_verified { "yes" } else { "no" }
                ));
                self.proven = Some(FACTOR);
                Verdict::Success
            }
            Ok(Outcome::Refused(refusal, failures, until)) => {
                self.audit.warning(&format!(
                    "local key refused {} key={}: {}",
                    self.who,
                    clean(&key.name),
                    refusal
                ));
                self.rejected(Some(FACTOR), refusal.reason(), failures, until)
            }
            Ok(Outcome::Locked(remaining, failures)) => {
                locked(self.conv, self.audit, &self.who, remaining, failures)
            }
            Err(e) => self.unavailable(&e),
        }
    }

    /// Logs why the key is not usable now, tells the user, returns the
    /// message for the menu that follows. Not a counted failure.
    fn local_fallback(&mut self, reason: &str, detail: &str, msg: &str) -> String {
        self.audit.warning(&format!(
            "local key unusable {} reason={reason} ({})",
            self.who,
            clean_long(detail)
        ));
        self.conv.error(msg);
        msg.to_string()
    }
}

enum Outcome {
    Accepted(fido2::Asserted),
    Refused(fido2::Refusal, u32, i64),
    Locked(i64, u32),
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
