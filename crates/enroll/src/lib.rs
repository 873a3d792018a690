//! p2fa-enroll: the `2fa-enroll` command line (src/main.rs is its thin
//! main). Map:

/// The `2fa-enroll` commands.
pub mod enroll;
/// Readers for google-authenticator, pam_oath and pam_u2f files.
pub mod import;
