//! 2fad, the helper daemon: a unix-socket broker that lets ordinary users
//! manage their own factors without access to the root-only store.
//! (WebAuthn ceremonies join it with the FIDO factor.) src/main.rs is the
//! `2fad` binary's thin main; the protocol and its client are `p2fa_proto`.
//! Map:

/// The requests 2fad serves: self-service enrollment, proofs, WebAuthn.
pub mod broker;
/// Group commit: the counter updates of concurrent WebAuthn logins in
/// one durable store transaction.
pub mod commit;
/// Fleet mode: the idle store connections kept between requests.
pub mod pool;
/// The self-service profile page in the browser (`2fa-enroll web`).
pub mod profile;
/// The socket side: bind, peer uid, connection limits, frame deadlines.
pub mod server;
/// Fleet mode: pending WebAuthn ceremonies in the shared store.
pub mod shared;
/// The HTTPS server for the WebAuthn approval page.
pub mod web;
/// WebAuthn ceremonies (webauthn-rs): registration and login approval.
pub mod webauthn;
/// Tests: credentials stored by an older release still verify.
#[cfg(test)]
mod webauthn_upgrade;
