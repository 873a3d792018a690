//! pam-2fa: a second factor for Linux logins.
//!
//! The crate is both the PAM module (`libpam_2fa.so`, installed as
//! `pam_2fa.so`) and the library behind the `2fa-enroll` CLI and the `2fad`
//! daemon. Map:

/// Syslog (authpriv) with sanitised fields.
pub mod audit;
/// Unix time.
pub mod clock;
/// `/etc/security/2fa.conf` + module arguments -> one validated `Config`.
pub mod config;
/// Host key, sealing, keyed code hashes, constant-time compare.
pub mod crypto;
/// 2fad: socket broker for self-service enrollment, WebAuthn ceremonies
/// and their web page.
pub mod daemon;
/// Terminal text shared by the login flow and the CLI: the QR code.
pub mod display;
/// The `2fa-enroll` commands.
pub mod enroll;
/// The second factors: TOTP/HOTP, backup codes, SMS, e-mail, Duo,
/// security questions, local FIDO2 key checks.
pub mod factor;
/// libfido2's fido2-token/-cred/-assert as bounded subprocesses (local
/// security keys on the console).
pub mod fido2_tools;
/// One authentication: menu, prompt, verify, record, log; policy hooks
/// (inline enrollment, remembered devices).
pub mod flow;
/// Readers for google-authenticator, pam_oath and pam_u2f files.
pub mod import;
/// Is the host key the one the store was made with? (key check value)
pub mod keycheck;
/// HTTP clients for the network factors (timeouts, TLS trust).
pub mod net;
/// PAM entry points and conversation (the only PAM FFI).
pub mod pam;
/// Who must use what: exemptions, methods per group, grace periods.
pub mod policy;
/// Trusted inputs: root-owned files and directory chains, bounded
/// non-blocking reads, private file creation.
pub mod secure_fs;
/// SQLite store: schema, migrations, typed operations.
pub mod store;
/// passwd and group lookups.
pub mod users;
