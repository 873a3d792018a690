//! Why a login could not be decided: the store or the host key failed.
//! Mapped once, by [`Run::check`](super::Run::check) and the entry point,
//! to "unavailable" (logged with the cause, the user told to contact an
//! administrator); never to a counted failure.

use p2fa_core::crypto::CryptoError;
use p2fa_core::store::StoreError;
use std::fmt;

#[derive(Debug)]
pub enum AuthError {
    Store(StoreError),
    /// A sealed secret did not open, or randomness failed.
    Crypto(CryptoError),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Store(e) => write!(f, "{e}"),
            AuthError::Crypto(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AuthError {}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Store(e)
    }
}

impl From<CryptoError> for AuthError {
    fn from(e: CryptoError) -> Self {
        AuthError::Crypto(e)
    }
}
