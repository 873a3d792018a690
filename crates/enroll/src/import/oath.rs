//! `/etc/users.oath` (pam_oath / liboath usersfile): one token per line,
//! `TYPE USER PIN HEXSECRET [COUNTER [LASTOTP [TIME]]]`, `#` comments.
//!
//! TYPE is `HOTP`, `HOTP/E` or `HOTP/E/D` for counter tokens and
//! `HOTP/T30`, `HOTP/T60/8`, ... (`/T<period>[/<digits>]`) for time tokens;
//! digits default to 6, the HMAC is SHA1. PIN is `-` (none), `+` (checked
//! elsewhere) or the token PIN. liboath rewrites COUNTER, LASTOTP and TIME
//! after each login: for counter tokens COUNTER is then the counter of
//! LASTOTP, which is spent, so the next counter is one more.

use super::{Imported, LineError, MAX_COUNTER, OtpImport, Parsed, err, lines};
use p2fa_core::config::Algorithm;
use p2fa_core::crypto;
use p2fa_core::factor::totp;
use p2fa_core::store::OtpKind;
use zeroize::Zeroizing;

/// `(kind, period, digits)` of a token type.
fn parse_type(t: &str) -> Option<(OtpKind, u32, u32)> {
    let mut parts = t.split('/');
    if parts.next()? != "HOTP" {
        return None;
    }
    let (mut kind, mut period) = (OtpKind::Hotp, 30);
    match parts.next() {
        None => return Some((kind, period, 6)),
        Some("E") => {}
        Some(p) => {
            let secs = p.strip_prefix('T')?;
            if !secs.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            kind = OtpKind::Totp;
            period = secs.parse().ok().filter(|p| (15..=300).contains(p))?;
        }
    }
    let digits = match parts.next() {
        None => 6,
        Some(d) if d.len() == 1 => d.parse().ok().filter(|d| (6..=8).contains(d))?,
        Some(_) => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((kind, period, digits))
}

fn hex(s: &str) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    if s.is_empty() || !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the secret is not hex (an even number of digits 0-9, a-f)");
    }
    if s.len() < 20 {
        return Err("the secret is shorter than 80 bits, too weak to keep: enroll this user anew");
    }
    if s.len() > 128 {
        return Err("the secret is longer than 64 bytes");
    }
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() / 2));
    for pair in s.as_bytes().chunks(2) {
        let h = std::str::from_utf8(pair).map_err(|_| "the secret is not hex")?;
        out.push(u8::from_str_radix(h, 16).map_err(|_| "the secret is not hex")?);
    }
    Ok(out)
}

/// liboath's `%Y-%m-%dT%H:%M:%SL` (local time).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'L',
            _ => c.is_ascii_digit(),
        })
}

/// One line, or what is wrong with it.
fn parse_line(n: usize, l: &str) -> Result<Imported, LineError> {
    let f: Vec<&str> = l.split_whitespace().collect();
    if f.len() < 4 {
        return Err(err(
            n,
            "want TYPE USER PIN SECRET [COUNTER [LASTOTP [TIME]]]",
        ));
    }
    if f.len() > 7 {
        return Err(err(n, "more than 7 fields"));
    }
    let (kind, period, digits) = parse_type(f[0]).ok_or_else(|| {
        err(
            n,
            "unknown token type (want HOTP, HOTP/E, HOTP/E/8, HOTP/T30, HOTP/T60/8, ...)",
        )
    })?;
    let user = f[1];
    if !p2fa_core::users::valid_name(user) {
        return Err(err(n, "invalid user name"));
    }
    let secret = hex(f[3]).map_err(|m| err(n, m))?;
    let counter = match f.get(4) {
        None => 0,
        Some(c) => match c.parse::<u64>() {
            Ok(c) if c <= MAX_COUNTER => c,
            Ok(_) => {
                return Err(err(
                    n,
                    format!(
                        "the counter is larger than {MAX_COUNTER}, more than any token reaches"
                    ),
                ));
            }
            Err(_) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(err(
                    n,
                    format!(
                        "the counter is larger than {MAX_COUNTER}, more than any token reaches"
                    ),
                ));
            }
            Err(_) => return Err(err(n, "the counter is not a number")),
        },
    };
    let last_otp = match f.get(5) {
        None => None,
        Some(o) if (6..=8).contains(&o.len()) && o.bytes().all(|b| b.is_ascii_digit()) => {
            Some(Zeroizing::new(o.to_string()))
        }
        Some(_) => return Err(err(n, "the last OTP field is not a 6-8 digit code")),
    };
    if let Some(t) = f.get(6)
        && !is_timestamp(t)
    {
        return Err(err(n, "the time field is not like 2006-12-07T11:37:45L"));
    }
    let mut notes = Vec::new();
    if !matches!(f[2], "-" | "+") {
        notes
            .push("the token PIN is not carried over (the password stays the first factor)".into());
    }
    let (counter, last_code) = match kind {
        OtpKind::Hotp => {
            // liboath keeps the counter of the last accepted code: spent.
            let spent = last_otp.as_ref().is_some_and(|o| {
                crypto::ct_eq(
                    totp::hotp(&secret, Algorithm::Sha1, digits, counter).as_bytes(),
                    o.as_bytes(),
                )
            });
            (counter + u64::from(spent), None)
        }
        OtpKind::Totp => (0, last_otp),
    };
    Ok(Imported {
        user: user.to_string(),
        line: n,
        otp: Some(OtpImport {
            kind,
            secret,
            algorithm: Algorithm::Sha1,
            digits,
            period,
            counter,
            last_step: None,
            last_code,
            window: None,
        }),
        backup: Vec::new(),
        notes,
    })
}

/// Every user in the file (the first token of each) and every bad line.
pub fn parse(text: &str) -> Parsed<Imported> {
    let mut entries: Vec<Imported> = Vec::new();
    let mut errors = Vec::new();
    for (n, l) in lines(text) {
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        match parse_line(n, l) {
            Err(e) => errors.push(e),
            Ok(i) => match entries.iter_mut().find(|u| u.user == i.user) {
                Some(first) => first.notes.push(format!(
                    "line {n}: another token for this user ignored (pam-2fa keeps one OTP token per user; this is the one from line {})",
                    first.line
                )),
                None => entries.push(i),
            },
        }
    }
    Parsed { entries, errors }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "3132333435363738393031323334353637383930";

    fn ok(text: &str) -> Vec<Imported> {
        let p = parse(text);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        p.entries
    }

    #[test]
    fn types() {
        assert_eq!(parse_type("HOTP"), Some((OtpKind::Hotp, 30, 6)));
        assert_eq!(parse_type("HOTP/E"), Some((OtpKind::Hotp, 30, 6)));
        assert_eq!(parse_type("HOTP/E/7"), Some((OtpKind::Hotp, 30, 7)));
        assert_eq!(parse_type("HOTP/T30"), Some((OtpKind::Totp, 30, 6)));
        assert_eq!(parse_type("HOTP/T30/6"), Some((OtpKind::Totp, 30, 6)));
        assert_eq!(parse_type("HOTP/T60/8"), Some((OtpKind::Totp, 60, 8)));
        for bad in [
            "TOTP",
            "hotp",
            "HOTP/",
            "HOTP/6",
            "HOTP/T",
            "HOTP/T+30",
            "HOTP/T5",
            "HOTP/T30/9",
            "HOTP/T30/08",
            "HOTP/E/8/1",
            "HOTP/X",
        ] {
            assert_eq!(parse_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn users_tokens_and_duplicates() {
        let f = format!(
            "# comment\n\n  HOTP/T30 alice - {HEX}\n\
             HOTP\tbob 1234 {HEX} 5\n\
             HOTP/T60/8 carol + {}\n\
             HOTP/T30 alice - {HEX}\n",
            HEX.to_uppercase()
        );
        let u = ok(&f);
        assert_eq!(u.len(), 3);
        let a = u[0].otp.as_ref().unwrap();
        assert_eq!(
            (a.kind, a.period, a.digits, a.counter),
            (OtpKind::Totp, 30, 6, 0)
        );
        assert_eq!(a.secret.as_slice(), b"12345678901234567890");
        assert_eq!(u[0].line, 3);
        assert!(
            u[0].notes[0].contains("line 6: another token"),
            "{:?}",
            u[0].notes
        );
        let b = u[1].otp.as_ref().unwrap();
        assert_eq!((b.kind, b.counter), (OtpKind::Hotp, 5));
        assert!(u[1].notes[0].contains("PIN"));
        let c = u[2].otp.as_ref().unwrap();
        assert_eq!((c.period, c.digits), (60, 8));
        assert!(u[2].notes.is_empty());
    }

    #[test]
    fn last_otp_marks_the_counter_spent() {
        // RFC 4226 test vectors: counter 4 -> 338314, 5 -> 254676.
        let u = ok(&format!(
            "HOTP a - {HEX} 4 338314 2026-01-01T10:00:00L\nHOTP b - {HEX} 4 254676\nHOTP c - {HEX} 4\n"
        ));
        let counters: Vec<u64> = u.iter().map(|i| i.otp.as_ref().unwrap().counter).collect();
        assert_eq!(counters, [5, 4, 4]);
        let t = ok(&format!(
            "HOTP/T30 d - {HEX} 17 123456 2026-01-01T10:00:00L\n"
        ));
        let o = t[0].otp.as_ref().unwrap();
        assert_eq!(o.last_code.as_deref().map(String::as_str), Some("123456"));
        assert_eq!(o.counter, 0);
    }

    #[test]
    fn bad_lines_are_reported_with_numbers() {
        let p = parse(&format!(
            "TOTP x - {HEX}\nHOTP y -\nHOTP z - zz11\nHOTP/T30/9 w - {HEX}\n\
             HOTP v - {HEX} -1\nHOTP u - 3132333435\nHOTP t:x - {HEX}\n\
             HOTP s - {HEX} 1 12ab\nHOTP r - {HEX} 1 123456 yesterday\n\
             HOTP q - {HEX} 1 123456 2026-01-01T10:00:00L extra\n\
             HOTP/T30 fine - {HEX}\nHOTP p - {HEX}0\n"
        ));
        let lines: Vec<usize> = p.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12], "{:?}", p.errors);
        assert_eq!(p.entries.len(), 1);
        assert!(p.errors[5].msg.contains("shorter than 80 bits"));
        for e in &p.errors {
            assert!(!e.msg.contains("3132") && !e.msg.contains("zz11"), "{e}");
        }
    }

    #[test]
    fn absurd_counters_are_refused() {
        let p = parse(&format!(
            "HOTP a - {HEX} 4294967295
HOTP b - {HEX} 4294967296
             HOTP c - {HEX} 9223372036854775807
HOTP d - {HEX} 99999999999999999999999
"
        ));
        let lines: Vec<usize> = p.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4], "{:?}", p.errors);
        assert!(p.errors.iter().all(|e| e.msg.contains("larger than")));
        assert_eq!(p.entries[0].otp.as_ref().unwrap().counter, 4294967295);
    }
}
