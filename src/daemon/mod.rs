//! 2fad, the helper daemon: a unix-socket broker that lets ordinary users
//! manage their own factors without access to the root-only store.
//! (WebAuthn ceremonies join it with the FIDO factor.)

pub mod broker;
pub mod client;
pub mod protocol;
pub mod server;
pub mod web;
pub mod webauthn;

/// The dev-only software authenticator, for unit tests (not shipped).
#[cfg(test)]
#[path = "../../tests/support/softkey.rs"]
pub(crate) mod softkey;
#[cfg(test)]
mod webauthn_upgrade;
