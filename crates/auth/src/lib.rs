//! p2fa-auth: one login attempt, as plain Rust over a conversation and a
//! network trait (the PAM module adapts it to PAM). Map:

/// One authentication: menu, prompt, verify, record, log; policy hooks
/// (inline enrollment, remembered devices).
pub mod flow;
