//! p2fa-testkit: dev-only support for tests and benchmarks, never a
//! dependency of what ships. Map:

// Test support may read the clocks directly (clippy.toml's rule is for the programs).
#![allow(clippy::disallowed_methods)]

/// A scripted PAM conversation that fails the test on a prompt it has
/// no answer for and on answers left over.
pub mod conversation;
/// CPU time of a process from /proc (benchmarks).
pub mod cpu;
/// A software WebAuthn authenticator (P-256, "none" attestation).
pub mod softkey;
