//! pam_2fa: the PAM module, `libpam_2fa.so` (installed as `pam_2fa.so`).
//! Only the FFI edge; the login itself is `p2fa_auth`. Map:

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

/// PAM entry points and conversation (the only PAM FFI).
mod pam;
