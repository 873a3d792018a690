//! The fleet store (docs/fleet.md): PostgreSQL as a second backend of
//! the store interface, so many hosts share one enrollment per user.
//!
//! - [`wire`]: a small synchronous PostgreSQL client (startup, TLS,
//!   SCRAM, the extended query protocol), every read and write under a
//!   deadline, no thread and no runtime, since it runs inside the PAM
//!   host process.
//! - [`schema`]: the fleet schema, its migrations and the rolling-upgrade
//!   rule.
//! - [`store`]: [`store::PgStore`], the store interface on it.
//! - [`open`]: the one place that picks the backend from the config.
//! - [`pool`]: 2fad's idle connections (`daemon.store_pool`); the PAM
//!   module and 2fa-enroll never use it.

pub mod open;
pub mod pool;
pub mod schema;
pub mod store;
pub mod wire;

pub use open::{Mode, open};
