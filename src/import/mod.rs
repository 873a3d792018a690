//! Parsers for the files of the modules pam-2fa replaces, so a site can
//! switch without re-enrolling anyone: `~/.google_authenticator`,
//! `/etc/users.oath` (pam_oath) and pam_u2f authfiles.
//!
//! Parsers only read and validate; `2fa-enroll import` decides what to
//! store. Errors name the file line and never contain a secret.

pub mod google;
pub mod oath;
pub mod u2f;

use crate::config::Algorithm;
use crate::store::OtpKind;
use zeroize::Zeroizing;

/// An OTP token found in a file.
pub struct OtpImport {
    pub kind: OtpKind,
    pub secret: Zeroizing<Vec<u8>>,
    pub algorithm: Algorithm,
    pub digits: u32,
    pub period: u32,
    /// Next HOTP counter (0 for TOTP).
    pub counter: u64,
}

/// What one user gets from a file.
pub struct Imported {
    pub user: String,
    pub otp: Option<OtpImport>,
    /// Single-use codes (google-authenticator scratch codes).
    pub backup: Vec<Zeroizing<String>>,
    /// Things worth telling the admin (ignored options, ...).
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
