//! The factors, one file each: its challenge (outside any transaction)
//! and its check (inside the attempt's transaction), as
//! [`Factor`](super::attempt::Factor) implementations.

/// A TOTP/HOTP or backup code typed at the prompt; 2fad's proof check.
pub mod code;
/// Duo: preauth, failmode, what Duo's errors mean.
pub mod duo;
/// Duo's attempts: bypass, push / phone / SMS passcodes, a passcode.
pub mod duo_call;
/// A local FIDO2 key at the console, through libfido2's tools.
pub mod localkey;
/// Security questions.
pub mod questions;
/// A code sent by SMS or e-mail.
pub mod sent;
/// Security keys and platform authenticators through 2fad's page.
pub mod webauthn;
