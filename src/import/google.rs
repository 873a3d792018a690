//! `~/.google_authenticator` (libpam-google-authenticator): the base32
//! secret on the first line, `" OPTION` lines, then 8-digit scratch codes.

use super::{Imported, LineError, OtpImport, err};
use crate::config::Algorithm;
use crate::factor::totp;
use crate::store::OtpKind;
use zeroize::Zeroizing;

pub fn parse(text: &str, user: &str) -> Result<Imported, Vec<LineError>> {
    let mut errors = Vec::new();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    let secret = match lines.next() {
        Some((n, l)) => match totp::decode_base32(l) {
            Ok(s) if s.len() >= 10 => Some(s),
            Ok(_) => {
                errors.push(err(n, "secret is shorter than 80 bits"));
                None
            }
            Err(_) => {
                errors.push(err(n, "first line is not a base32 secret"));
                None
            }
        },
        None => {
            errors.push(err(1, "empty file"));
            None
        }
    };
    let mut hotp_counter = None;
    let mut totp_seen = false;
    let mut period = 30;
    let mut notes = Vec::new();
    let mut backup = Vec::new();
    for (n, l) in lines {
        if l.is_empty() {
            continue;
        }
        if let Some(opt) = l.strip_prefix('"') {
            let mut words = opt.split_whitespace();
            match words.next() {
                Some("TOTP_AUTH") => totp_seen = true,
                Some("HOTP_COUNTER") => match words.next().and_then(|w| w.parse::<u64>().ok()) {
                    Some(c) => hotp_counter = Some(c),
                    None => errors.push(err(n, "HOTP_COUNTER needs a number")),
                },
                Some("STEP_SIZE") => match words.next().and_then(|w| w.parse::<u32>().ok()) {
                    Some(p) if (15..=300).contains(&p) => period = p,
                    _ => errors.push(err(n, "STEP_SIZE must be 15..300")),
                },
                Some("WINDOW_SIZE") => match words.next().and_then(|w| w.parse::<u32>().ok()) {
                    Some(w) if (1..=21).contains(&w) => notes.push(format!(
                        "window size {w} (±{} steps) is not per user here: totp.window in the config applies",
                        (w - 1) / 2
                    )),
                    _ => errors.push(err(n, "WINDOW_SIZE must be 1..21")),
                },
                Some("RATE_LIMIT") => {
                    notes.push("RATE_LIMIT replaced by the store's rate_limit settings".into())
                }
                Some("DISALLOW_REUSE") => {
                    notes.push("codes are always single-use here (DISALLOW_REUSE)".into())
                }
                Some(other) => notes.push(format!("option {other} ignored")),
                None => {}
            }
            continue;
        }
        if l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()) {
            backup.push(Zeroizing::new(l.to_string()));
        } else {
            errors.push(err(n, "neither an option nor an 8-digit scratch code"));
        }
    }
    if totp_seen && hotp_counter.is_some() {
        errors.push(err(1, "both TOTP_AUTH and HOTP_COUNTER are set"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let (kind, counter) = match hotp_counter {
        Some(c) => (OtpKind::Hotp, c),
        None => (OtpKind::Totp, 0),
    };
    Ok(Imported {
        user: user.to_string(),
        otp: secret.map(|secret| OtpImport {
            kind,
            secret,
            algorithm: Algorithm::Sha1,
            digits: 6,
            period,
            counter,
        }),
        backup,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typical_file() {
        let f = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\" RATE_LIMIT 3 30 1700000000\n\" WINDOW_SIZE 17\n\" DISALLOW_REUSE 56666666\n\" TOTP_AUTH\n12345678\n87654321\n";
        let i = parse(f, "alice").unwrap();
        let o = i.otp.unwrap();
        assert_eq!(o.kind, OtpKind::Totp);
        assert_eq!(o.secret.as_slice(), b"12345678901234567890");
        assert_eq!(i.backup.len(), 2);
        assert!(
            i.notes.iter().any(|n| n.contains("±8 steps")),
            "{:?}",
            i.notes
        );
    }

    #[test]
    fn hotp_and_errors_with_line_numbers() {
        let i = parse("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\" HOTP_COUNTER 7\n", "b").unwrap();
        let o = i.otp.unwrap();
        assert_eq!((o.kind, o.counter), (OtpKind::Hotp, 7));
        let Err(e) = parse("not base32!\n12345\n\" STEP_SIZE 9\n", "c") else {
            panic!("accepted")
        };
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 3], "{e:?}");
        assert!(
            e.iter().all(|e| !e.msg.contains("not base32!")),
            "no secret in errors"
        );
        assert!(parse("", "d").is_err_and(|e| e[0].line == 1));
    }
}
