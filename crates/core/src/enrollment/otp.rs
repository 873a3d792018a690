//! A TOTP or HOTP token being set up.

use super::EnrollError;
use crate::config::{Algorithm, Config};
use crate::crypto::HostKey;
use crate::factor::totp::{self, OtpParams};
use crate::store::{OtpKind, OtpRecord, Tx};
use zeroize::Zeroizing;

/// A secret on its way into the store. Confirming it with a code spends
/// that code (TOTP step / HOTP counter), so the code the user typed to
/// prove the setup cannot be replayed at a login.
pub struct OtpSetup {
    pub kind: OtpKind,
    secret: Zeroizing<Vec<u8>>,
    pub params: OtpParams,
    /// HOTP: the next counter expected.
    counter: i64,
    /// TOTP: the step the confirming code used.
    last_step: Option<i64>,
}

impl OtpSetup {
    /// A TOTP token with the configured parameters; a fresh random
    /// secret unless one is given (base32, as people paste it).
    pub fn totp(cfg: &Config, secret: Option<&str>) -> Result<OtpSetup, EnrollError> {
        Self::totp_with(
            OtpParams {
                algorithm: cfg.totp.algorithm,
                digits: cfg.totp.digits,
                period: cfg.totp.period,
            },
            secret,
        )
    }

    /// A TOTP token with explicit parameters (the CLI's flags).
    pub fn totp_with(params: OtpParams, secret: Option<&str>) -> Result<OtpSetup, EnrollError> {
        Ok(OtpSetup {
            kind: OtpKind::Totp,
            secret: secret_from(secret)?,
            params,
            counter: 0,
            last_step: None,
        })
    }

    /// An HOTP token starting at `counter` (tokens that count presses).
    pub fn hotp(
        algorithm: Algorithm,
        digits: u32,
        counter: u64,
        secret: Option<&str>,
    ) -> Result<OtpSetup, EnrollError> {
        let counter = i64::try_from(counter)
            .ok()
            .filter(|c| *c <= i64::MAX / 2)
            .ok_or_else(|| EnrollError::Invalid("--counter is too large".into()))?;
        Ok(OtpSetup {
            kind: OtpKind::Hotp,
            secret: secret_from(secret)?,
            params: OtpParams {
                algorithm,
                digits,
                period: 30,
            },
            counter,
            last_step: None,
        })
    }

    /// A token from another system's file (the importers): its secret,
    /// parameters and the counter / last spent step it had there.
    pub fn imported(
        kind: OtpKind,
        secret: &[u8],
        params: OtpParams,
        counter: i64,
        last_step: Option<i64>,
    ) -> OtpSetup {
        OtpSetup {
            kind,
            secret: Zeroizing::new(secret.to_vec()),
            params,
            counter,
            last_step,
        }
    }

    /// HOTP: the counter the next code is expected at.
    pub fn counter(&self) -> u64 {
        self.counter as u64
    }

    /// The secret in base32, for typing it into an app by hand.
    pub fn base32(&self) -> Zeroizing<String> {
        totp::encode_base32(&self.secret)
    }

    /// The `otpauth://` URI (the QR code's content).
    pub fn uri(&self, issuer: &str, user: &str) -> Zeroizing<String> {
        let counter = (self.kind == OtpKind::Hotp).then_some(self.counter as u64);
        totp::otpauth_uri(issuer, user, &self.base32(), &self.params, counter)
    }

    /// Does `code` come from this secret now? If so it is spent (the
    /// saved token starts after it). `now` is Unix seconds; `window` and
    /// `look_ahead` are the config's.
    pub fn confirm(&mut self, cfg: &Config, now: i64, code: &str) -> bool {
        match self.kind {
            OtpKind::Totp => {
                match totp::verify_totp(
                    &self.secret,
                    &self.params,
                    now,
                    cfg.totp.window,
                    None,
                    code,
                ) {
                    Some(step) => {
                        self.last_step = Some(step);
                        true
                    }
                    None => false,
                }
            }
            OtpKind::Hotp => match totp::verify_hotp(
                &self.secret,
                self.params.algorithm,
                self.params.digits,
                self.counter,
                cfg.hotp.look_ahead,
                code,
            ) {
                Some(c) => {
                    self.counter = c + 1;
                    true
                }
                None => false,
            },
        }
    }

    /// The sealed record to store for `user` (the secret opens only with
    /// this host key and only in this user's row).
    pub fn record(&self, key: &HostKey, user: &str, now: i64) -> Result<OtpRecord, EnrollError> {
        Ok(OtpRecord {
            kind: self.kind,
            sealed: key.seal(&self.secret, &totp::seal_aad(user))?,
            algorithm: self.params.algorithm,
            digits: self.params.digits,
            period: self.params.period,
            last_step: self.last_step,
            counter: self.counter,
            created_at: now,
            key_gen: key.key_gen(),
        })
    }
}

fn secret_from(given: Option<&str>) -> Result<Zeroizing<Vec<u8>>, EnrollError> {
    match given {
        Some(text) => totp::decode_base32(text).map_err(EnrollError::Invalid),
        None => Ok(totp::generate_secret()?),
    }
}

/// What [`save_otp`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// Stored; `replaced` says whether an earlier token stopped working.
    Stored { replaced: bool },
    /// Not stored: `only_if_unenrolled` was asked and the user has a
    /// factor by now (set up elsewhere meanwhile).
    AlreadyEnrolled,
}

/// Stores `rec` for `user` in the caller's transaction (the caller
/// commits, so it can add more in the same one). With
/// `only_if_unenrolled`, a user who has any factor by now keeps it: inline
/// enrollment must never replace what was set up elsewhere meanwhile.
pub fn save_otp(
    tx: &Tx<'_>,
    user: &str,
    rec: &OtpRecord,
    now: i64,
    only_if_unenrolled: bool,
) -> Result<Saved, EnrollError> {
    let state = tx.user_state(user)?;
    if only_if_unenrolled && state.is_enrolled() {
        return Ok(Saved::AlreadyEnrolled);
    }
    tx.put_otp(user, rec, now)?;
    Ok(Saved::Stored {
        replaced: state.otp.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "JBSWY3DPEHPK3PXP";

    #[test]
    fn a_confirming_totp_code_is_spent_in_the_record() {
        let cfg = Config::default();
        let mut s = OtpSetup::totp(&cfg, Some(SECRET)).unwrap();
        assert_eq!(s.base32().as_str(), SECRET);
        let now = 1_700_000_000;
        let secret = totp::decode_base32(SECRET).unwrap();
        let code = totp::totp_at_step(&secret, &s.params, (now / 30) as u64);
        assert!(!s.confirm(&cfg, now, "000000x"));
        assert!(s.confirm(&cfg, now, &code));
        let key = HostKey::from_bytes(&[7; 32]);
        let rec = s.record(&key, "alice", now).unwrap();
        assert_eq!(rec.last_step, Some(now / 30));
        assert_eq!(
            key.open(&rec.sealed, &totp::seal_aad("alice"))
                .unwrap()
                .as_slice(),
            secret.as_slice()
        );
        assert!(key.open(&rec.sealed, &totp::seal_aad("bob")).is_err());
    }

    #[test]
    fn hotp_confirmation_moves_the_counter_past_the_code() {
        let cfg = Config::default();
        let mut s = OtpSetup::hotp(Algorithm::Sha1, 6, 5, Some(SECRET)).unwrap();
        let secret = totp::decode_base32(SECRET).unwrap();
        let code = totp::hotp(&secret, Algorithm::Sha1, 6, 6);
        assert!(s.confirm(&cfg, 0, &code));
        let rec = s.record(&HostKey::from_bytes(&[1; 32]), "u", 0).unwrap();
        assert_eq!(rec.counter, 7);
        assert!(s.uri("Host", "u").contains("counter=7"));
    }

    #[test]
    fn bad_secrets_and_counters_are_refused_with_a_reason() {
        let cfg = Config::default();
        assert!(matches!(
            OtpSetup::totp(&cfg, Some("not base32!")),
            Err(EnrollError::Invalid(m)) if m.contains("base32")
        ));
        assert!(matches!(
            OtpSetup::hotp(Algorithm::Sha1, 6, u64::MAX, None),
            Err(EnrollError::Invalid(m)) if m.contains("too large")
        ));
        let fresh = OtpSetup::totp(&cfg, None).unwrap();
        assert_eq!(fresh.base32().len(), 32, "160-bit secrets");
    }
}
