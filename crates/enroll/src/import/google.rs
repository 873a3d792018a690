//! `~/.google_authenticator` (libpam-google-authenticator): the base32
//! secret on the first line, then `" OPTION [VALUE...]` lines, then 8-digit
//! scratch codes, one per line.
//!
//! Semantics follow pam_google_authenticator: the file is time-based when
//! it has `" TOTP_AUTH`, counter-based when it has `" HOTP_COUNTER N` (the
//! next counter to accept), and otherwise only its scratch codes work.
//! Codes are always 6 digits, HMAC-SHA1. `WINDOW_SIZE` counts codes in all
//! (default 3, i.e. one step either side), `STEP_SIZE` is the period (1..60
//! s), `DISALLOW_REUSE` lists spent time steps. Numbers outside a sane
//! range (a counter above [`MAX_COUNTER`], a spent step more than
//! [`MAX_FUTURE_SECONDS`] ahead of the clock) refuse the file with the line.

use super::{Imported, LineError, MAX_COUNTER, MAX_FUTURE_SECONDS, OtpImport, Parsed, err, lines};
use p2fa_core::config::Algorithm;
use p2fa_core::factor::totp;
use p2fa_core::store::OtpKind;
use zeroize::Zeroizing;

/// google-authenticator's window when the file has no `WINDOW_SIZE`.
pub const DEFAULT_WINDOW: u32 = 3;

fn number<T: std::str::FromStr + PartialOrd>(
    word: Option<&str>,
    range: std::ops::RangeInclusive<T>,
) -> Option<T> {
    word.and_then(|w| w.parse::<T>().ok())
        .filter(|v| range.contains(v))
}

/// The options pam_google_authenticator writes.
const KNOWN: [&str; 8] = [
    "TOTP_AUTH",
    "HOTP_COUNTER",
    "STEP_SIZE",
    "WINDOW_SIZE",
    "RATE_LIMIT",
    "DISALLOW_REUSE",
    "TIME_SKEW",
    "RESETTING_TIME_SKEW",
];

/// Parses the file of `user`, at Unix time `now` (spent steps are checked
/// against it). An entry is returned only when the whole file is valid.
pub fn parse(text: &str, user: &str, now: i64) -> Parsed<Imported> {
    let mut errors: Vec<LineError> = Vec::new();
    let mut notes = Vec::new();
    let mut lines = lines(text);
    let secret = match lines.next() {
        Some((_, "")) | None => {
            errors.push(err(1, "the first line must be the base32 secret"));
            None
        }
        Some((n, l)) => match totp::decode_base32(l) {
            Ok(s) => Some(s),
            Err(e) => {
                errors.push(err(n, format!("first line: {e}")));
                None
            }
        },
    };
    let mut seen: Vec<(&str, usize)> = Vec::new();
    let mut totp_line = None;
    let mut hotp: Option<(usize, u64)> = None;
    let mut period = 30;
    let mut window = None;
    // The DISALLOW_REUSE line and its steps, checked once STEP_SIZE is known.
    let mut reuse: Option<(usize, Vec<i64>)> = None;
    let mut backup: Vec<Zeroizing<String>> = Vec::new();
    for (n, l) in lines {
        if l.is_empty() {
            continue;
        }
        if let Some(opt) = l.strip_prefix('"') {
            let mut words = opt.split_whitespace();
            let Some(name) = words.next() else {
                errors.push(err(n, "empty option line"));
                continue;
            };
            // An unknown word is not repeated: it could be anything.
            let Some(name) = KNOWN.iter().copied().find(|k| *k == name) else {
                notes.push(format!("line {n}: unknown option ignored"));
                continue;
            };
            if let Some((_, first)) = seen.iter().find(|(s, _)| *s == name) {
                errors.push(err(n, format!("{name} repeats the option on line {first}")));
                continue;
            }
            seen.push((name, n));
            match name {
                "TOTP_AUTH" => totp_line = Some(n),
                "HOTP_COUNTER" => match number(words.next(), 1..=MAX_COUNTER) {
                    Some(c) => hotp = Some((n, c)),
                    None => errors.push(err(
                        n,
                        format!("HOTP_COUNTER must be a counter from 1 to {MAX_COUNTER}"),
                    )),
                },
                "STEP_SIZE" => match number(words.next(), 1..=60) {
                    Some(p) => period = p,
                    None => errors.push(err(n, "STEP_SIZE must be 1..60 seconds")),
                },
                "WINDOW_SIZE" => match number(words.next(), 1..=100) {
                    Some(w) => window = Some(w),
                    None => errors.push(err(n, "WINDOW_SIZE must be 1..100")),
                },
                "RATE_LIMIT" => {
                    let attempts = number(words.next(), 1..=100u32);
                    let seconds = number(words.next(), 1..=3600u32);
                    let stamps_ok = words.all(|w| w.parse::<u64>().is_ok());
                    match (attempts, seconds, stamps_ok) {
                        (Some(a), Some(s), true) => notes.push(format!(
                            "RATE_LIMIT ({a} logins per {s} s) is not carried over: the rate_limit settings of the config apply"
                        )),
                        _ => errors.push(err(
                            n,
                            "RATE_LIMIT must be ATTEMPTS (1..100) SECONDS (1..3600) [TIMESTAMP...]",
                        )),
                    }
                }
                "DISALLOW_REUSE" => {
                    let steps: Result<Vec<i64>, _> = words.map(str::parse::<i64>).collect();
                    match steps {
                        Ok(s) if s.iter().all(|&v| v >= 0) => reuse = Some((n, s)),
                        _ => errors.push(err(n, "DISALLOW_REUSE may only list time steps")),
                    }
                }
                "TIME_SKEW" => match words.next().map(str::parse::<i64>) {
                    Some(Ok(0)) => {}
                    Some(Ok(s)) => notes.push(format!(
                        "TIME_SKEW {s}: google-authenticator made up for a phone clock {s} step(s) off; pam-2fa does not, so check the phone's clock"
                    )),
                    _ => errors.push(err(n, "TIME_SKEW must be a whole number of steps")),
                },
                // State of a time-skew reset in progress: nothing to keep.
                _ => {}
            }
            continue;
        }
        let is_scratch =
            l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()) && l.as_bytes()[0] != b'0';
        if !is_scratch {
            errors.push(err(
                n,
                "neither an option (\" NAME) nor a scratch code (8 digits, not starting with 0)",
            ));
        } else if backup.iter().any(|c| c.as_str() == l) {
            notes.push(format!("line {n}: repeated scratch code counted once"));
        } else {
            backup.push(Zeroizing::new(l.to_string()));
        }
    }
    // A spent step must be a time that has come (give or take a clock that
    // ran ahead): every code up to the last one becomes unusable here.
    let latest = i128::from(now) + i128::from(MAX_FUTURE_SECONDS);
    let last_step = match reuse {
        Some((n, steps))
            if steps
                .iter()
                .any(|&s| i128::from(s) * i128::from(period) > latest) =>
        {
            errors.push(err(
                n,
                format!(
                    "DISALLOW_REUSE lists a time step more than {} minutes ahead of this machine's clock (with STEP_SIZE {period}): every code up to it would be refused; check the clocks, or delete the line",
                    MAX_FUTURE_SECONDS / 60
                ),
            ));
            None
        }
        Some((_, steps)) => steps.into_iter().max(),
        None => None,
    };
    let kind = match (totp_line, hotp) {
        (Some(t), Some((h, _))) => {
            errors.push(err(
                t.max(h),
                "both TOTP_AUTH and HOTP_COUNTER: a google-authenticator file is time- or counter-based, not both",
            ));
            None
        }
        (Some(_), None) => Some(OtpKind::Totp),
        (None, Some(_)) => Some(OtpKind::Hotp),
        (None, None) => {
            notes.push(
                "neither TOTP_AUTH nor HOTP_COUNTER: google-authenticator accepted only the scratch codes of this file, so the secret is not imported".into(),
            );
            None
        }
    };
    if !errors.is_empty() {
        return Parsed {
            entries: Vec::new(),
            errors,
        };
    }
    let otp = match (kind, secret) {
        (Some(kind), Some(secret)) => Some(OtpImport {
            kind,
            secret,
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: if kind == OtpKind::Totp { period } else { 30 },
            counter: hotp.map_or(0, |(_, c)| c),
            last_step: last_step.filter(|_| kind == OtpKind::Totp),
            last_code: None,
            window: Some(window.unwrap_or(DEFAULT_WINDOW)),
        }),
        _ => None,
    };
    Parsed {
        entries: vec![Imported {
            user: user.to_string(),
            line: 1,
            otp,
            backup,
            notes,
        }],
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    /// The clock for these files (steps 56666666 are 2023).
    const NOW: i64 = 1_800_000_000;

    fn one(text: &str) -> Imported {
        let mut p = parse(text, "alice", NOW);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        p.entries.pop().unwrap()
    }

    fn bad_lines(text: &str) -> Vec<usize> {
        let p = parse(text, "alice", NOW);
        assert!(p.entries.is_empty());
        p.errors.iter().map(|e| e.line).collect()
    }

    #[test]
    fn typical_totp_file() {
        let i = one(&format!(
            "{S}\n\" RATE_LIMIT 3 30 1700000000 1700000005\n\" WINDOW_SIZE 17\n\" DISALLOW_REUSE 56666665 56666666\n\" TOTP_AUTH\n12345678\n87654321\n"
        ));
        assert_eq!(i.user, "alice");
        let o = i.otp.unwrap();
        assert_eq!(o.kind, OtpKind::Totp);
        assert_eq!(o.secret.as_slice(), b"12345678901234567890");
        assert_eq!((o.digits, o.period, o.algorithm), (6, 30, Algorithm::Sha1));
        assert_eq!(o.window, Some(17));
        assert_eq!(o.last_step, Some(56666666));
        let codes: Vec<&str> = i.backup.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes, ["12345678", "87654321"]);
        assert!(
            i.notes
                .iter()
                .any(|n| n.contains("RATE_LIMIT (3 logins per 30 s)"))
        );
    }

    #[test]
    fn minimal_and_optional_parts() {
        // As google-authenticator writes it: CRLF tolerated, default window.
        let i = one(&format!("{}\r\n\" TOTP_AUTH\r\n", S.to_lowercase()));
        let o = i.otp.unwrap();
        assert_eq!((o.window, o.last_step, o.period), (Some(3), None, 30));
        assert!(i.backup.is_empty() && i.notes.is_empty());
        let o = one(&format!(
            "{S}\n\" STEP_SIZE 60\n\" TOTP_AUTH\n\" DISALLOW_REUSE\n"
        ))
        .otp
        .unwrap();
        assert_eq!((o.period, o.last_step), (60, None));
        // 80-bit secrets (16 base32 characters) are google-authenticator's default.
        assert_eq!(
            one("GEZDGNBVGY3TQOJQ\n\" TOTP_AUTH\n")
                .otp
                .unwrap()
                .secret
                .len(),
            10
        );
    }

    #[test]
    fn hotp_file() {
        let i = one(&format!(
            "{S}\n\" HOTP_COUNTER 7\n\" WINDOW_SIZE 5\n11111111\n"
        ));
        let o = i.otp.unwrap();
        assert_eq!((o.kind, o.counter, o.window), (OtpKind::Hotp, 7, Some(5)));
        assert_eq!(o.last_step, None);
        assert_eq!(i.backup.len(), 1);
    }

    #[test]
    fn scratch_codes_only() {
        let i = one(&format!(
            "{S}\n\" RESETTING_TIME_SKEW 1+1\n22222222\n22222222\n"
        ));
        assert!(i.otp.is_none());
        assert_eq!(i.backup.len(), 1);
        assert!(i.notes.iter().any(|n| n.contains("neither TOTP_AUTH")));
        assert!(i.notes.iter().any(|n| n.contains("repeated scratch code")));
    }

    #[test]
    fn notes_for_unknown_options_and_skew() {
        let i = one(&format!(
            "{S}\n\" TOTP_AUTH\n\" TIME_SKEW -2\n\" FUTURE_THING 1\n\" x\n"
        ));
        assert!(i.notes.iter().any(|n| n.contains("TIME_SKEW -2")));
        assert!(
            i.notes
                .iter()
                .any(|n| n.contains("line 4: unknown option ignored"))
        );
        assert!(
            i.notes
                .iter()
                .any(|n| n.contains("line 5: unknown option ignored"))
        );
        assert!(
            i.notes.iter().all(|n| !n.contains("FUTURE")),
            "{:?}",
            i.notes
        );
    }

    #[test]
    fn malformed_lines_are_numbered() {
        assert_eq!(bad_lines(""), [1]);
        assert_eq!(bad_lines("\n\" TOTP_AUTH\n"), [1]);
        assert_eq!(
            bad_lines("not base32!\n12345\n\" STEP_SIZE 90\n"),
            [1, 2, 3]
        );
        assert_eq!(
            bad_lines(&format!("{S}\n\" TOTP_AUTH\n01234567\n123456789\nabc\n")),
            [3, 4, 5]
        );
        assert_eq!(
            bad_lines(&format!("{S}\n\" HOTP_COUNTER 0\n\" WINDOW_SIZE 101\n")),
            [2, 3]
        );
        assert_eq!(
            bad_lines(&format!("{S}\n\" HOTP_COUNTER x\n\" RATE_LIMIT 3\n")),
            [2, 3]
        );
        assert_eq!(
            bad_lines(&format!("{S}\n\" TOTP_AUTH\n\" DISALLOW_REUSE 5 x\n\"\n")),
            [3, 4]
        );
        assert_eq!(
            bad_lines(&format!("{S}\n\" TOTP_AUTH\n\" HOTP_COUNTER 3\n")),
            [3]
        );
        assert_eq!(
            bad_lines(&format!("{S}\n\" TOTP_AUTH\n\" TOTP_AUTH\n")),
            [3]
        );
        assert_eq!(
            bad_lines(&format!("{S}\n\" TOTP_AUTH\n\" TIME_SKEW 1.5\n")),
            [3]
        );
        // Absurd numbers: a counter no token reaches, spent steps ahead of
        // the clock (they would refuse every code until then).
        assert_eq!(
            bad_lines(&format!("{S}\n\" HOTP_COUNTER 4294967296\n")),
            [2]
        );
        assert_eq!(
            bad_lines(&format!(
                "{S}\n\" TOTP_AUTH\n\" DISALLOW_REUSE 9223372036854775807\n"
            )),
            [3]
        );
        let soon = (NOW + 3000) / 30;
        let later = (NOW + 4000) / 30;
        assert_eq!(
            one(&format!("{S}\n\" TOTP_AUTH\n\" DISALLOW_REUSE 1 {soon}\n"))
                .otp
                .unwrap()
                .last_step,
            Some(soon)
        );
        assert_eq!(
            bad_lines(&format!("{S}\n\" DISALLOW_REUSE {later}\n\" TOTP_AUTH\n")),
            [2]
        );
        // With 60 s steps the same number is twice as far ahead.
        assert_eq!(
            bad_lines(&format!(
                "{S}\n\" TOTP_AUTH\n\" DISALLOW_REUSE {soon}\n\" STEP_SIZE 60\n"
            )),
            [3]
        );
        // Too short (40 bits) and too long (over 512 bits).
        assert_eq!(bad_lines("GEZDGNBV\n\" TOTP_AUTH\n"), [1]);
        assert_eq!(bad_lines(&format!("{}\n\" TOTP_AUTH\n", S.repeat(4))), [1]);
    }

    #[test]
    fn errors_never_quote_the_file() {
        let secretish = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U";
        let p = parse(
            &format!("{secretish}!\n{secretish}\n\" {secretish} 1\n\" HOTP_COUNTER {secretish}\n"),
            "u",
            NOW,
        );
        assert_eq!(p.errors.len(), 3, "{:?}", p.errors);
        for e in &p.errors {
            assert!(!e.msg.contains(secretish) && !e.msg.contains("MFRG"), "{e}");
        }
    }
}
