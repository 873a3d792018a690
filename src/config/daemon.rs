//! `2fad` settings.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Unix socket the PAM module and `2fa-enroll` talk to. Its directory
    /// is created root-owned 0755; the socket itself is 0666, because
    /// every request is authorised by the caller's uid (SO_PEERCRED).
    pub socket: PathBuf,
    /// Connections served at once; more wait in the listen queue.
    pub max_clients: u32,
    /// Seconds an unfinished enrollment (a shown TOTP secret) stays valid.
    pub pending_seconds: u64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket: "/run/2fad/socket".into(),
            max_clients: 64,
            pending_seconds: 600,
        }
    }
}

impl super::Config {
    pub(super) fn validate_daemon(&self) -> Result<(), super::ConfigError> {
        let d = &self.daemon;
        if !d.socket.is_absolute() {
            return Err(super::ConfigError(
                "daemon.socket must be an absolute path".into(),
            ));
        }
        if !(1..=10_000).contains(&d.max_clients) {
            return Err(super::ConfigError(
                "daemon.max_clients must be 1..=10000".into(),
            ));
        }
        if !(30..=3600).contains(&d.pending_seconds) {
            return Err(super::ConfigError(
                "daemon.pending_seconds must be 30..=3600".into(),
            ));
        }
        Ok(())
    }
}
