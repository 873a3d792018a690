//! p2fa-proto: how the PAM module and `2fa-enroll` talk to `2fad`. Map:

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

/// Client side of the 2fad socket: one request, one answer, a deadline.
pub mod client;
/// The 2fad socket protocol: frames, requests, responses.
pub mod protocol;
