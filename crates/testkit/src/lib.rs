//! p2fa-testkit: dev-only support for tests and benchmarks, never a
//! dependency of what ships. Map:

/// A software WebAuthn authenticator (P-256, "none" attestation).
pub mod softkey;
