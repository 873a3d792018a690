//! Who must use what. For now: what happens to users with no factor.
//! (Per-group methods, grace periods and remembered devices plug in here.)

use crate::config::{Config, Unenrolled};

/// Decision for a user that has no usable second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoFactor {
    /// Let them in; the admin chose `unenrolled = "allow"`.
    Allow,
    /// Deny (the default).
    Deny,
}

pub fn without_factor(cfg: &Config) -> NoFactor {
    match cfg.unenrolled {
        Unenrolled::Allow => NoFactor::Allow,
        Unenrolled::Deny => NoFactor::Deny,
    }
}
