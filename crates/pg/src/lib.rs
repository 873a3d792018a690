//! The fleet store (docs/fleet.md): PostgreSQL as a second backend of
//! the store interface, so many hosts share one enrollment per user.
//!
//! - [`wire`]: a small synchronous PostgreSQL client (startup, TLS,
//!   SCRAM, the extended query protocol), every read and write under a
//!   deadline, no thread and no runtime, since it runs inside the PAM
//!   host process.

pub mod wire;
