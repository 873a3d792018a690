//! TOTP (RFC 6238) and HOTP (RFC 4226) codes, via the `totp-rs` crate.
//!
//! HOTP is TOTP with a one-second step evaluated at "time" = counter, which
//! is exactly RFC 4226's HOTP(K, C); that keeps one well-tested HMAC
//! truncation path for both token kinds.

use crate::config::Algorithm;
use crate::crypto;
use totp_rs::{Algorithm as TotpAlg, Builder};
use zeroize::Zeroizing;

/// Length of generated secrets: 160 bits, as RFC 4226 recommends.
pub const SECRET_LEN: usize = 20;

/// Parameters of one enrolled token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtpParams {
    pub algorithm: Algorithm,
    pub digits: u32,
    /// Seconds per step (TOTP); ignored for HOTP.
    pub period: u32,
}

fn generator(secret: &[u8], algorithm: Algorithm, digits: u32, step: u64) -> totp_rs::Totp {
    let alg = match algorithm {
        Algorithm::Sha1 => TotpAlg::SHA1,
        Algorithm::Sha256 => TotpAlg::SHA256,
        Algorithm::Sha512 => TotpAlg::SHA512,
    };
    // build_noncompliant: imported Google Authenticator secrets are 80 bits,
    // below totp-rs's 128-bit floor; digits and step are validated by us.
    Builder::new()
        .with_algorithm(alg)
        .with_digits(digits.clamp(6, 8) as u8)
        .with_skew(0)
        .with_step_duration(step.max(1))
        .with_secret(secret.to_vec())
        .build_noncompliant()
}

/// The HOTP code for `counter`.
pub fn hotp(secret: &[u8], algorithm: Algorithm, digits: u32, counter: u64) -> Zeroizing<String> {
    Zeroizing::new(
        generator(secret, algorithm, digits, 1)
            .generate(counter)
            .to_string(),
    )
}

/// The TOTP code for time step `step`.
pub fn totp_at_step(secret: &[u8], p: &OtpParams, step: u64) -> Zeroizing<String> {
    hotp(secret, p.algorithm, p.digits, step)
}

/// Checks a TOTP code against steps `now/period ± window`, skipping steps at
/// or before `last_step` (a code is accepted once). Every candidate step is
/// compared in constant time and the loop does not stop early.
pub fn verify_totp(
    secret: &[u8],
    p: &OtpParams,
    now: i64,
    window: u32,
    last_step: Option<i64>,
    code: &str,
) -> Option<i64> {
    if code.len() != p.digits as usize || now < 0 {
        return None;
    }
    let current = now / i64::from(p.period.max(1));
    let mut found = None;
    for step in (current - i64::from(window))..=(current + i64::from(window)) {
        if step < 0 {
            continue;
        }
        let expected = totp_at_step(secret, p, step as u64);
        let fresh = last_step.is_none_or(|last| step > last);
        if crypto::ct_eq(expected.as_bytes(), code.as_bytes()) && fresh && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// Checks an HOTP code against counters `counter..counter+look_ahead`;
/// returns the matching counter (the caller stores it + 1).
pub fn verify_hotp(
    secret: &[u8],
    algorithm: Algorithm,
    digits: u32,
    counter: i64,
    look_ahead: u32,
    code: &str,
) -> Option<i64> {
    if code.len() != digits as usize || counter < 0 {
        return None;
    }
    let mut found = None;
    for c in counter..counter + i64::from(look_ahead) {
        let expected = hotp(secret, algorithm, digits, c as u64);
        if crypto::ct_eq(expected.as_bytes(), code.as_bytes()) && found.is_none() {
            found = Some(c);
        }
    }
    found
}

/// A fresh random secret.
pub fn generate_secret() -> Result<Zeroizing<Vec<u8>>, crypto::CryptoError> {
    Ok(Zeroizing::new(
        crypto::random_array::<SECRET_LEN>()?.to_vec(),
    ))
}

/// Base32 (RFC 4648, no padding), as authenticator apps expect.
pub fn encode_base32(secret: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(base32::encode(
        base32::Alphabet::Rfc4648 { padding: false },
        secret,
    ))
}

/// Parses a base32 secret as people paste it: any case, spaces, dashes and
/// `=` padding allowed. Refuses secrets shorter than 80 bits (the Google
/// Authenticator minimum) or longer than 512 bits.
pub fn decode_base32(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let cleaned: Zeroizing<String> = Zeroizing::new(
        text.chars()
            .filter(|c| !matches!(c, ' ' | '-' | '=' | '\t'))
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    );
    if cleaned.is_empty()
        || !cleaned
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
    {
        return Err("the secret must be base32 (letters A-Z and digits 2-7)".into());
    }
    let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &cleaned)
        .ok_or_else(|| "the secret is not valid base32".to_string())?;
    let bytes = Zeroizing::new(bytes);
    if bytes.len() < 10 || bytes.len() > 64 {
        return Err(format!(
            "the secret decodes to {} bytes; expected 10 to 64",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Percent-encodes a URI component (RFC 3986 unreserved kept).
fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `otpauth://` URI understood by authenticator apps (Key Uri Format).
pub fn otpauth_uri(
    issuer: &str,
    account: &str,
    secret_b32: &str,
    p: &OtpParams,
    hotp_counter: Option<u64>,
) -> Zeroizing<String> {
    let kind = if hotp_counter.is_some() {
        "hotp"
    } else {
        "totp"
    };
    let mut uri = format!(
        "otpauth://{kind}/{}:{}?secret={secret_b32}&issuer={}&algorithm={}&digits={}",
        pct(issuer),
        pct(account),
        pct(issuer),
        p.algorithm.as_str(),
        p.digits
    );
    match hotp_counter {
        Some(c) => uri.push_str(&format!("&counter={c}")),
        None => uri.push_str(&format!("&period={}", p.period)),
    }
    Zeroizing::new(uri)
}

/// Associated data for sealing a user's OTP secret: a blob moved to another
/// user's row does not open.
pub fn seal_aad(user: &str) -> Vec<u8> {
    format!("otp\0{user}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S1: &[u8] = b"12345678901234567890";
    const S256: &[u8] = b"12345678901234567890123456789012";
    const S512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    fn p(algorithm: Algorithm, digits: u32) -> OtpParams {
        OtpParams {
            algorithm,
            digits,
            period: 30,
        }
    }

    /// RFC 6238 Appendix B, all rows, all three algorithms, 8 digits.
    #[test]
    fn rfc6238_vectors() {
        let rows: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, c1, c256, c512) in rows {
            assert_eq!(
                totp_at_step(S1, &p(Algorithm::Sha1, 8), t / 30).as_str(),
                c1,
                "SHA1 t={t}"
            );
            assert_eq!(
                totp_at_step(S256, &p(Algorithm::Sha256, 8), t / 30).as_str(),
                c256,
                "SHA256 t={t}"
            );
            assert_eq!(
                totp_at_step(S512, &p(Algorithm::Sha512, 8), t / 30).as_str(),
                c512,
                "SHA512 t={t}"
            );
            for (secret, alg, code) in [
                (S1, Algorithm::Sha1, c1),
                (S256, Algorithm::Sha256, c256),
                (S512, Algorithm::Sha512, c512),
            ] {
                let step = verify_totp(secret, &p(alg, 8), t as i64, 0, None, code);
                assert_eq!(step, Some((t / 30) as i64));
            }
        }
    }

    /// RFC 4226 Appendix D, counters 0..=9, 6 digits.
    #[test]
    fn rfc4226_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(S1, Algorithm::Sha1, 6, counter as u64).as_str(), *code);
        }
        assert_eq!(
            verify_hotp(S1, Algorithm::Sha1, 6, 0, 10, "520489"),
            Some(9)
        );
        assert_eq!(
            verify_hotp(S1, Algorithm::Sha1, 6, 0, 9, "520489"),
            None,
            "beyond look-ahead"
        );
        assert_eq!(
            verify_hotp(S1, Algorithm::Sha1, 6, 5, 10, "755224"),
            None,
            "counter already past"
        );
    }

    #[test]
    fn window_and_replay() {
        let pp = p(Algorithm::Sha1, 6);
        let now = 1_700_000_000i64;
        let step = now / 30;
        let prev = totp_at_step(S1, &pp, (step - 1) as u64);
        let next2 = totp_at_step(S1, &pp, (step + 2) as u64);
        assert_eq!(verify_totp(S1, &pp, now, 1, None, &prev), Some(step - 1));
        assert_eq!(verify_totp(S1, &pp, now, 0, None, &prev), None);
        assert_eq!(verify_totp(S1, &pp, now, 1, None, &next2), None);
        assert_eq!(
            verify_totp(S1, &pp, now, 1, Some(step - 1), &prev),
            None,
            "replay refused"
        );
        let cur = totp_at_step(S1, &pp, step as u64);
        assert_eq!(
            verify_totp(S1, &pp, now, 1, Some(step - 1), &cur),
            Some(step)
        );
        assert_eq!(
            verify_totp(S1, &pp, now, 1, None, "12345"),
            None,
            "wrong length"
        );
    }

    #[test]
    fn base32_roundtrip_and_errors() {
        let b = encode_base32(S1);
        assert_eq!(b.as_str(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            decode_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq")
                .unwrap()
                .as_slice(),
            S1
        );
        assert!(decode_base32("").is_err());
        assert!(decode_base32("GEZDGNBV1").is_err());
        assert!(decode_base32("GEZDGNBV").is_err(), "too short");
    }

    #[test]
    fn uri() {
        let u = otpauth_uri("My Host", "alice", "ABC", &p(Algorithm::Sha1, 6), None);
        assert_eq!(
            u.as_str(),
            "otpauth://totp/My%20Host:alice?secret=ABC&issuer=My%20Host&algorithm=SHA1&digits=6&period=30"
        );
        let h = otpauth_uri("h", "bob", "ABC", &p(Algorithm::Sha256, 8), Some(3));
        assert!(h.starts_with("otpauth://hotp/h:bob?") && h.ends_with("digits=8&counter=3"));
    }
}
