//! p2fa-net: the network factors' clients, the only network code the PAM
//! module loads. Map:

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

/// Confirming a new phone number or address with a code sent to it.
pub mod confirm;
/// Shared by the SMS and e-mail senders: errors, templates, masked addresses.
pub mod delivery;
/// Duo Auth API client (preauth, push, passcode).
pub mod duo;
/// E-mail codes over SMTP.
pub mod email;
/// The [`network::Network`] trait the login flow calls, and its live
/// implementation over the clients here.
pub mod network;
/// SMS codes through an HTTP gateway.
pub mod sms;
/// One message over SMTP on the calling thread, under one deadline.
pub mod smtp;
/// HTTP clients and TLS trust for the network factors (timeouts, no
/// caller-chosen trust, no thread).
pub mod transport;
