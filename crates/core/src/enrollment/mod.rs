//! Setting a factor up, the same way from every door: `2fa-enroll` (root
//! or the user at a terminal), inline enrollment at login, 2fad's broker
//! (the user's own shell) and the importers. Each door does its own
//! talking (prompts, protocol frames, files); what is created, how it is
//! confirmed, sealed and stored lives here once.
//!
//! The flow for a code factor: [`OtpSetup`] makes (or takes) a secret,
//! the door shows [`OtpSetup::uri`], [`OtpSetup::confirm`] checks the
//! code the user typed and spends it, [`OtpSetup::record`] seals it, and
//! [`save_otp`] writes it inside the caller's transaction. Backup codes:
//! [`BackupSet::generate`], shown once, [`BackupSet::save`].

mod backup;
mod otp;

pub use backup::BackupSet;
pub use otp::{OtpSetup, Saved, save_otp};

use crate::crypto::CryptoError;
use crate::store::StoreError;
use std::fmt;

/// Why a factor could not be set up. The doors map it once: the CLI to
/// its message and exit code, 2fad to a protocol error code, the login
/// flow to "unavailable".
#[derive(Debug)]
pub enum EnrollError {
    /// The input (a pasted secret, a parameter) is not acceptable; the
    /// text says why, for the user.
    Invalid(String),
    /// Randomness or sealing failed: nothing was saved.
    Crypto(CryptoError),
    /// The store refused: nothing was saved.
    Store(StoreError),
}

impl fmt::Display for EnrollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnrollError::Invalid(why) => f.write_str(why),
            EnrollError::Crypto(e) => write!(f, "{e}"),
            EnrollError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for EnrollError {}

impl From<CryptoError> for EnrollError {
    fn from(e: CryptoError) -> Self {
        EnrollError::Crypto(e)
    }
}

impl From<StoreError> for EnrollError {
    fn from(e: StoreError) -> Self {
        EnrollError::Store(e)
    }
}
