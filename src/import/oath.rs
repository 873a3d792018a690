//! `/etc/users.oath` (pam_oath / liboath usersfile): one token per line,
//! `TYPE USER PIN HEXSECRET [COUNTER [LASTOTP [TIME]]]`, where TYPE is
//! `HOTP`, `HOTP/E`, `HOTP/T30`, `HOTP/T60/8` and so on.

use super::{Imported, LineError, OtpImport, err};
use crate::config::Algorithm;
use crate::store::OtpKind;
use zeroize::Zeroizing;

fn parse_type(t: &str) -> Option<(OtpKind, u32, u32)> {
    let mut parts = t.split('/');
    if parts.next()? != "HOTP" {
        return None;
    }
    let (mut kind, mut period, mut digits) = (OtpKind::Hotp, 30, 6);
    for p in parts {
        if p == "E" {
            kind = OtpKind::Hotp;
        } else if let Some(s) = p.strip_prefix('T') {
            kind = OtpKind::Totp;
            period = s.parse().ok().filter(|p| (15..=300).contains(p))?;
        } else {
            digits = p.parse().ok().filter(|d| (6..=8).contains(d))?;
        }
    }
    Some((kind, period, digits))
}

fn hex(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    if !s.len().is_multiple_of(2) || s.len() < 20 {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() / 2));
    for pair in s.as_bytes().chunks(2) {
        let h = std::str::from_utf8(pair).ok()?;
        out.push(u8::from_str_radix(h, 16).ok()?);
    }
    Some(out)
}

/// All users in the file, or every bad line.
pub fn parse(text: &str) -> Result<Vec<Imported>, Vec<LineError>> {
    let mut out: Vec<Imported> = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 4 {
            errors.push(err(n, "want TYPE USER PIN SECRET [COUNTER ...]"));
            continue;
        }
        let Some((kind, period, digits)) = parse_type(f[0]) else {
            errors.push(err(n, format!("unknown token type {:?}", f[0])));
            continue;
        };
        let Some(secret) = hex(f[3]) else {
            errors.push(err(n, "secret is not hex of at least 10 bytes"));
            continue;
        };
        let counter = match f.get(4).map(|c| c.parse::<u64>()) {
            None => 0,
            Some(Ok(c)) => c,
            Some(Err(_)) => {
                errors.push(err(n, "counter is not a number"));
                continue;
            }
        };
        let mut notes = Vec::new();
        if !matches!(f[2], "-" | "+") {
            notes.push(
                "the token PIN is not used by pam-2fa (the password is the first factor)".into(),
            );
        }
        if out.iter().any(|u| u.user == f[1]) {
            if let Some(u) = out.iter_mut().find(|u| u.user == f[1]) {
                u.notes.push(format!(
                    "line {n}: another token for this user ignored (one per user)"
                ));
            }
            continue;
        }
        out.push(Imported {
            user: f[1].to_string(),
            otp: Some(OtpImport {
                kind,
                secret,
                algorithm: Algorithm::Sha1,
                digits,
                period,
                counter: if kind == OtpKind::Hotp { counter } else { 0 },
            }),
            backup: Vec::new(),
            notes,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_lines() {
        let f = "# comment\nHOTP/T30 alice - 3132333435363738393031323334353637383930\n\
                 HOTP bob 1234 3132333435363738393031323334353637383930 5 755224 2026-01-01T00:00:00L\n\
                 HOTP/T60/8 carol + 3132333435363738393031323334353637383930\n\
                 HOTP/T30 alice - 3132333435363738393031323334353637383930\n";
        let u = parse(f).unwrap();
        assert_eq!(u.len(), 3);
        let a = u[0].otp.as_ref().unwrap();
        assert_eq!((a.kind, a.period, a.digits), (OtpKind::Totp, 30, 6));
        assert!(u[0].notes[0].contains("ignored"));
        let b = u[1].otp.as_ref().unwrap();
        assert_eq!((b.kind, b.counter), (OtpKind::Hotp, 5));
        assert!(u[1].notes[0].contains("PIN"));
        let c = u[2].otp.as_ref().unwrap();
        assert_eq!((c.period, c.digits), (60, 8));
    }

    #[test]
    fn bad_lines_are_reported() {
        let Err(e) = parse(
            "TOTP x - 00\nHOTP y -\nHOTP z - zz11\nHOTP/T30/9 w - 3132333435363738393031323334353637383930\n",
        ) else {
            panic!("accepted")
        };
        assert_eq!(e.iter().map(|e| e.line).collect::<Vec<_>>(), [1, 2, 3, 4]);
    }
}
