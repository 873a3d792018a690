//! p2fa-proto: how the PAM module and `2fa-enroll` talk to `2fad`. Map:

/// Client side of the 2fad socket: one request, one answer, a deadline.
pub mod client;
/// The 2fad socket protocol: frames, requests, responses.
pub mod protocol;
