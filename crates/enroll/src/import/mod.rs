//! Parsers for the files of the modules pam-2fa replaces, so a site can
//! switch without re-enrolling anyone: `~/.google_authenticator`
//! ([`google`]), `/etc/users.oath` of pam_oath ([`oath`]) and pam_u2f
//! authfiles ([`u2f`]).
//!
//! Parsers only read and validate; `2fa-enroll import` decides what to
//! store. They collect every bad line rather than stopping at the first, and
//! their messages name the line but never quote a field that could hold a
//! secret.

pub mod google;
pub mod oath;
pub mod u2f;

use p2fa_core::config::Algorithm;
use p2fa_core::factor::totp;
use p2fa_core::store::OtpKind;
use zeroize::Zeroizing;

/// Largest HOTP counter an import accepts: a token pressed once a second
/// for 136 years. A larger one is a corrupt or hostile file, and would
/// make every code the user's token shows a "used" one (counters only go
/// up), so the file is refused with the line, not imported.
pub const MAX_COUNTER: u64 = u32::MAX as u64;

/// How far ahead of this machine's clock a spent time step may lie. A
/// step in the future means every code up to it counts as used, so an
/// absurd one (`DISALLOW_REUSE 9223372036854775807`) would refuse every
/// code for ever; an hour covers an old server whose clock ran ahead.
pub const MAX_FUTURE_SECONDS: i64 = 3600;

/// An OTP token found in a file.
pub struct OtpImport {
    pub kind: OtpKind,
    pub secret: Zeroizing<Vec<u8>>,
    pub algorithm: Algorithm,
    pub digits: u32,
    pub period: u32,
    /// Next HOTP counter to accept (0 for TOTP).
    pub counter: u64,
    /// TOTP: this step and all before it are spent (google-authenticator's
    /// `DISALLOW_REUSE` list).
    pub last_step: Option<i64>,
    /// TOTP: the last code the old module accepted (pam_oath); resolved
    /// against the clock at import time by [`spent_step`].
    pub last_code: Option<Zeroizing<String>>,
    /// How many codes the old module accepted around the expected one, as
    /// it counted them (google-authenticator's `WINDOW_SIZE`).
    pub window: Option<u32>,
}

impl OtpImport {
    /// Parameters for code computation.
    pub fn params(&self) -> totp::OtpParams {
        totp::OtpParams {
            algorithm: self.algorithm,
            digits: self.digits,
            period: self.period,
        }
    }
}

/// What one user gets from a file.
pub struct Imported {
    pub user: String,
    /// The line the entry came from.
    pub line: usize,
    pub otp: Option<OtpImport>,
    /// Single-use codes (google-authenticator scratch codes), digits only.
    pub backup: Vec<Zeroizing<String>>,
    /// Things worth telling the admin (ignored options, dropped lines, ...).
    pub notes: Vec<String>,
}

/// A line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub msg: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

pub(crate) fn err(line: usize, msg: impl Into<String>) -> LineError {
    LineError {
        line,
        msg: msg.into(),
    }
}

/// Everything a parser found: usable entries and bad lines. An import
/// writes nothing while `errors` is not empty.
pub struct Parsed<T> {
    pub entries: Vec<T>,
    pub errors: Vec<LineError>,
}

/// The file as text, or the first line that is not UTF-8 (or holds a NUL
/// byte, which none of these formats allows).
pub fn text(bytes: &[u8]) -> Result<&str, LineError> {
    let line_of = |pos: usize| bytes[..pos].iter().filter(|&&b| b == b'\n').count() + 1;
    if let Some(pos) = bytes.iter().position(|&b| b == 0) {
        return Err(err(line_of(pos), "NUL byte: this is not a text file"));
    }
    std::str::from_utf8(bytes).map_err(|e| err(line_of(e.valid_up_to()), "not UTF-8 text"))
}

/// Numbered lines with surrounding whitespace (and a CR) removed.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()))
}

/// The last TOTP step the old module had accepted, so it cannot be replayed
/// here: `last_step` as the file gave it, or the step within `window` of
/// `now` whose code is `last_code`.
pub fn spent_step(otp: &OtpImport, now: i64, window: u32) -> Option<i64> {
    if otp.kind != OtpKind::Totp {
        return None;
    }
    let from_code = otp
        .last_code
        .as_ref()
        .and_then(|c| totp::verify_totp(&otp.secret, &otp.params(), now, window, None, c));
    match (otp.last_step, from_code) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reports_the_line_of_bad_bytes() {
        assert_eq!(text(b"a\nb\n").unwrap(), "a\nb\n");
        assert_eq!(text(b"a\nb\n\xff\n").unwrap_err().line, 3);
        assert_eq!(text(b"ok\n\0").unwrap_err().line, 2);
        assert_eq!(text(b"").unwrap(), "");
    }

    fn token(last_step: Option<i64>, last_code: Option<&str>) -> OtpImport {
        OtpImport {
            kind: OtpKind::Totp,
            secret: Zeroizing::new(b"12345678901234567890".to_vec()),
            algorithm: Algorithm::Sha1,
            digits: 8,
            period: 30,
            counter: 0,
            last_step,
            last_code: last_code.map(|c| Zeroizing::new(c.to_string())),
            window: None,
        }
    }

    #[test]
    fn spent_step_from_the_last_code_or_the_file() {
        // RFC 6238: SHA1 at T=59 is 94287082 (step 1).
        assert_eq!(spent_step(&token(None, Some("94287082")), 59, 1), Some(1));
        assert_eq!(
            spent_step(&token(None, Some("94287082")), 59 + 30, 1),
            Some(1)
        );
        // Long ago: outside the window, nothing to protect.
        assert_eq!(
            spent_step(&token(None, Some("94287082")), 59 + 300, 1),
            None
        );
        assert_eq!(spent_step(&token(Some(7), None), 0, 1), Some(7));
        assert_eq!(
            spent_step(&token(Some(0), Some("94287082")), 59, 1),
            Some(1)
        );
        assert_eq!(spent_step(&token(None, Some("00000000")), 59, 1), None);
        let mut h = token(Some(3), None);
        h.kind = OtpKind::Hotp;
        assert_eq!(spent_step(&h, 59, 1), None);
    }
}
