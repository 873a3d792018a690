//! pam-2fa: a second factor for Linux logins.
//!
//! The crate is both the PAM module (`libpam_2fa.so`, installed as
//! `pam_2fa.so`) and the library behind the `2fa-enroll` CLI. Map:

/// Syslog (authpriv) with sanitised fields.
pub mod audit;
/// Unix time.
pub mod clock;
/// `/etc/security/2fa.conf` + module arguments -> one validated `Config`.
pub mod config;
/// Host key, sealing, keyed code hashes, constant-time compare.
pub mod crypto;
/// 2fad: the socket broker for self-service enrollment.
pub mod daemon;
/// The `2fa-enroll` commands.
pub mod enroll;
/// The second factors themselves (TOTP/HOTP, backup codes).
pub mod factor;
/// One authentication: prompt, verify, record, log.
pub mod flow;
/// Readers for google-authenticator, pam_oath and pam_u2f files.
pub mod import;
/// HTTP clients for the network factors (timeouts, TLS trust).
pub mod net;
/// PAM entry points and conversation (the only PAM FFI).
pub mod pam;
/// Who must use what (unenrolled users for now).
pub mod policy;
/// Root-ownership and permission checks, private file creation.
pub mod secure_fs;
/// SQLite store: schema, migrations, typed operations.
pub mod store;
/// passwd lookups.
pub mod users;
