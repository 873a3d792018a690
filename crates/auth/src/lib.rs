//! p2fa-auth: one login attempt, as plain Rust over a conversation and a
//! network trait (the PAM module adapts it to PAM). Map:

// Code that runs inside the PAM host never panics on purpose: an error is
// a value that becomes a refusal (README "Layout": invariants). Tests may.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable
    )
)]

/// One authentication: menu, prompt, verify, record, log; policy hooks
/// (inline enrollment, remembered devices).
pub mod flow;
