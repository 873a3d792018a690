//! One login, as plain Rust over the [`Conversation`] and [`Network`]
//! traits, so it is testable without PAM or a network; `crates/pam_2fa`
//! adapts it to the real PAM conversation and passes the live network.
//!
//! The life of a login, file by file (README "Life of a login"):
//! `entry.rs` finds the user, applies exemptions, opens the store, checks
//! lockout, the host key and a remembered device; a user without a factor
//! goes to `unenrolled.rs` (and `inline.rs`); everyone else gets a
//! [`run::Run`]: `offer.rs` says what they may use, `menu.rs` asks, and
//! the picked factor (one file each in `factors/`) makes one attempt
//! through `attempt.rs` (the transaction) and `report.rs` (every log line
//! and message). `remember.rs` records the device after a success.
//! `first_pass.rs` is the password and code in one answer
//! (`forward_pass`, `use_first_pass`, `try_first_pass`).

mod attempt;
mod break_glass;
mod entry;
mod error;
mod factors;
mod first_pass;
mod inline;
mod input;
mod menu;
mod offer;
mod remember;
mod report;
mod run;
mod unenrolled;

pub use entry::{authenticate, authenticate_with};
pub use error::AuthError;
pub use factors::code::{Current, check_current};
pub use first_pass::{COMBINED_PROMPT, MAX_COMBINED};
pub use input::{MAX_INPUT, parse_answer};
pub use p2fa_core::conversation::Conversation;
pub use p2fa_net::network::Network;
pub use report::human_duration;

use input::answer_text;
use run::Run;

/// The login being authenticated, as PAM describes it.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    pub user: &'a str,
    pub service: &'a str,
    pub rhost: &'a str,
    /// PAM_TTY ("" when unset); identifies a local login's source.
    pub tty: &'a str,
    /// The real uid of the process the module runs in (its caller: sshd
    /// and login run as root, sudo and su as the invoking user). Only root
    /// gets Duo's `failmode = safe` (see `duo::failmode_safe_allowed`).
    pub caller_uid: u32,
}

/// The module's answer, mapped to a PAM return code by `crates/pam_2fa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A second factor was verified (now, or earlier on a remembered
    /// device).
    Success,
    /// Let through without checking any factor, because the admin's
    /// policy says so: unenrolled under `allow` or `grace`, exempt users
    /// and groups, Duo's preauth "allow" (a bypass set in Duo), Duo's
    /// `failmode = safe`. `PAM_IGNORE`, like google-authenticator's
    /// `nullok`: the rest of the stack decides, so a `sufficient` or
    /// `[success=done]` line never lets such a user in on its own (the
    /// pam-u2f `nouserok` bypass, CVE-2025-23013).
    Ignore,
    /// Wrong, replayed or malformed code, or no factor and policy says deny.
    Denied,
    /// Too many failures; the account is locked for now.
    Locked,
    /// Store, key or randomness unavailable: an admin must look.
    Unavailable,
    UnknownUser,
    ConversationFailed,
}

/// Shown when the module cannot do its job (store, key or config trouble).
pub const MSG_UNAVAILABLE: &str =
    "Two-factor authentication is unavailable right now. Contact your administrator.";

#[cfg(test)]
mod tests;

#[cfg(test)]
mod network_tests;
