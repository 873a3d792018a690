//! 2fad, the helper daemon: a unix-socket broker that lets ordinary users
//! manage their own factors without access to the root-only store.
//! (WebAuthn ceremonies join it with the FIDO factor.)

pub mod broker;
pub mod protocol;
pub mod server;
pub mod softkey;
pub mod web;
pub mod webauthn;
