//! p2fa-core: what every pam-2fa program shares, with no network and no
//! PAM: the configuration, the store, the host key, the local factors and
//! the checks on trusted inputs. Map:

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

/// Syslog (authpriv) with sanitised fields.
pub mod audit;
/// Unix time.
pub mod clock;
/// `/etc/security/2fa.conf` + module arguments -> one validated `Config`.
pub mod config;
/// The prompts and messages of one login (the trait PAM's conversation
/// is adapted to).
pub mod conversation;
/// Host key, sealing, keyed code hashes, constant-time compare, random codes.
pub mod crypto;
/// Terminal text shared by the login flow and the CLI: the QR code.
pub mod display;
/// Setting factors up, once for every door (CLI, inline, 2fad, imports):
/// create, show, confirm, seal, store.
pub mod enrollment;
/// The local second factors: TOTP/HOTP, backup codes, security
/// questions, local FIDO2 key checks.
pub mod factor;
/// libfido2's fido2-token/-cred/-assert as bounded subprocesses (local
/// security keys on the console).
pub mod fido2_tools;
/// Is the host key the one the store was made with? (key check value)
pub mod keycheck;
/// Who must use what: exemptions, methods per group, grace periods.
pub mod policy;
/// Trusted inputs: root-owned files and directory chains, bounded
/// non-blocking reads, private file creation.
pub mod secure_fs;
/// SQLite store: schema, migrations, typed operations.
pub mod store;
/// passwd and group lookups.
pub mod users;
