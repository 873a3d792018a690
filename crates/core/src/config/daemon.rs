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
    /// Connections served at once, all users together; a client over a
    /// limit is told "busy" at once.
    pub max_clients: u32,
    /// Connections one ordinary user (uid) may hold at once, so one user
    /// cannot take every slot.
    pub max_clients_per_user: u32,
    /// Slots of `max_clients` only root (the PAM module, root's
    /// 2fa-enroll) may use: ordinary users together get the rest.
    pub reserved_for_root: u32,
    /// Seconds an unfinished enrollment (a shown TOTP secret) stays valid.
    pub pending_seconds: u64,
    /// Fleet mode (`store = "postgres"`): idle database connections 2fad
    /// keeps for its next requests instead of connecting (TCP, TLS,
    /// SCRAM) for each; 0 connects per request. Each idle one is closed
    /// after 30 s unused (docs/fleet.md §4).
    pub store_pool: u32,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket: "/run/2fad/socket".into(),
            max_clients: 64,
            max_clients_per_user: 4,
            reserved_for_root: 16,
            pending_seconds: 600,
            store_pool: 4,
        }
    }
}

/// WebAuthn / FIDO2 through 2fad: the PAM prompt shows a short-lived link
/// to 2fad's page, where the browser runs the ceremony.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebauthnConfig {
    pub enabled: bool,
    /// Address 2fad's web server listens on.
    pub listen: String,
    /// The URL users open (what a reverse proxy or DNS name points at).
    /// Plain http is accepted only for localhost (browsers treat it as a
    /// secure context; nothing else does).
    pub public_url: String,
    /// WebAuthn relying party id: the host name of public_url or a parent
    /// domain of it. Credentials are bound to it.
    pub rp_id: String,
    pub rp_name: String,
    /// PEM certificate chain and key for HTTPS (empty: plain HTTP, which
    /// is only allowed with a localhost public_url).
    pub cert_file: String,
    pub key_file: String,
    /// Seconds a login or registration link stays valid.
    pub link_seconds: u64,
    /// Open links per user at once.
    pub max_pending_per_user: u32,
    /// Seconds a profile page session (`2fa-enroll web`) lasts once its
    /// link is opened; the link itself must be opened within
    /// `link_seconds`.
    pub profile_seconds: u64,
    /// Local security keys: a FIDO2 key plugged into this machine answers
    /// directly at the console (`login`, `sudo`), through libfido2's tools,
    /// as with pam_u2f. Independent of `enabled` (no 2fad needed).
    pub local_keys: bool,
    /// Relying party of local credentials; empty means `pam://HOSTNAME`,
    /// pam_u2f's default, so its credentials can be imported.
    pub local_rp_id: String,
    /// `discouraged` (touch only, pam_u2f's default), `preferred` (take
    /// what the key does) or `required` (the key must verify the user
    /// itself: fingerprint or built-in UV; PIN entry is not supported).
    pub local_user_verification: UserVerification,
    /// Offer the local key when PAM_RHOST names another machine (sshd).
    /// Off: someone touching a key left in the server must not approve a
    /// remote login.
    pub local_remote: bool,
    /// Directory with `fido2-token`, `fido2-cred`, `fido2-assert`
    /// (package fido2-tools); root-owned, run without a shell.
    pub fido2_tools_dir: PathBuf,
    /// Seconds one tool run (waiting for a touch) may take; then it is
    /// killed and the login falls back to the other factors.
    pub local_timeout_seconds: u64,
}

/// How much a local key must prove about the person touching it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UserVerification {
    Discouraged,
    Preferred,
    Required,
}

impl Default for WebauthnConfig {
    fn default() -> Self {
        WebauthnConfig {
            enabled: false,
            listen: "127.0.0.1:8443".into(),
            public_url: "https://localhost:8443".into(),
            rp_id: "localhost".into(),
            rp_name: "pam-2fa".into(),
            cert_file: String::new(),
            key_file: String::new(),
            link_seconds: 120,
            max_pending_per_user: 3,
            profile_seconds: 600,
            local_keys: false,
            local_rp_id: String::new(),
            local_user_verification: UserVerification::Discouraged,
            local_remote: false,
            fido2_tools_dir: "/usr/bin".into(),
            local_timeout_seconds: 30,
        }
    }
}

impl super::Config {
    pub(super) fn validate_daemon(&self) -> Result<(), super::ConfigError> {
        let w = &self.webauthn;
        let err = |m: &str| Err(super::ConfigError(m.to_string()));
        if w.enabled {
            let Some(rest) = w
                .public_url
                .strip_prefix("https://")
                .or_else(|| w.public_url.strip_prefix("http://"))
            else {
                return err("webauthn.public_url must be an http(s) URL");
            };
            let host = rest.split(['/', ':']).next().unwrap_or("");
            if w.public_url.starts_with("http://") && host != "localhost" {
                return err(
                    "webauthn.public_url may be plain http only for localhost; use https and cert_file/key_file",
                );
            }
            if host != w.rp_id && !host.ends_with(&format!(".{}", w.rp_id)) {
                return err(
                    "webauthn.rp_id must be the host of public_url or a parent domain of it",
                );
            }
            if w.cert_file.is_empty() != w.key_file.is_empty() {
                return err("webauthn.cert_file and webauthn.key_file go together");
            }
        }
        if !(30..=900).contains(&w.link_seconds) {
            return err("webauthn.link_seconds must be 30..=900");
        }
        if !(60..=3600).contains(&w.profile_seconds) {
            return err("webauthn.profile_seconds must be 60..=3600");
        }
        if !(1..=20).contains(&w.max_pending_per_user) {
            return err("webauthn.max_pending_per_user must be 1..=20");
        }
        if !w.fido2_tools_dir.is_absolute() {
            return err("webauthn.fido2_tools_dir must be an absolute path");
        }
        if !(1..=300).contains(&w.local_timeout_seconds) {
            return err("webauthn.local_timeout_seconds must be 1..=300");
        }
        let rp = &w.local_rp_id;
        if rp.len() > 255 || rp.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return err(
                "webauthn.local_rp_id must be at most 255 characters without spaces or control characters (empty: pam://HOSTNAME)",
            );
        }
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
        if !(1..=d.max_clients).contains(&d.max_clients_per_user) {
            return Err(super::ConfigError(
                "daemon.max_clients_per_user must be 1..=max_clients".into(),
            ));
        }
        if d.reserved_for_root >= d.max_clients {
            return Err(super::ConfigError(
                "daemon.reserved_for_root must be below max_clients (ordinary users need a slot)"
                    .into(),
            ));
        }
        if !(30..=3600).contains(&d.pending_seconds) {
            return Err(super::ConfigError(
                "daemon.pending_seconds must be 30..=3600".into(),
            ));
        }
        if d.store_pool > 64 {
            return Err(super::ConfigError(
                "daemon.store_pool must be 0..=64 (0: a new connection per request)".into(),
            ));
        }
        Ok(())
    }
}
