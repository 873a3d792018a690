//! E-mail codes over SMTP: STARTTLS (required, never a silent fallback to
//! clear text), implicit TLS, or plain for a local relay.
//!
//! lettre builds the message; [`crate::smtp`] sends it, on the calling
//! thread, over a socket whose every read and write is bounded by what is
//! left of one deadline: `timeout_ms` bounds the whole send (connect, TLS
//! handshakes, every command and reply, however slowly a server trickles
//! its answer), `connect_timeout_ms` each TCP connect. Only the name
//! lookup of a relay given by name is outside it (the resolver's own
//! timeouts). When the deadline passes, the one socket this send opened
//! is closed and nothing else; no thread is started.

use super::delivery::{DeliveryError, fill};
use crate::smtp::{Relay, Security, SmtpError};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, Message};
use p2fa_core::clock::Deadline;
use p2fa_core::config::{EmailConfig, SmtpTls};
use p2fa_core::secure_fs::Trust;
use std::sync::Arc;
use std::time::Duration;

/// Lower-cases the domain and checks the address parses.
pub fn normalize_address(input: &str) -> Result<String, String> {
    let s = input.trim();
    let bad = || {
        format!(
            "{:?} is not an e-mail address",
            p2fa_core::audit::printable(s, 60)
        )
    };
    if s.len() > 254 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad());
    }
    let a: Address = s.parse().map_err(|_| bad())?;
    if !a.domain().contains('.') && a.domain() != "localhost" {
        return Err(bad());
    }
    Ok(format!("{}@{}", a.user(), a.domain().to_ascii_lowercase()))
}

/// `alice@example.com` -> `a***@example.com`.
pub fn mask_address(addr: &str) -> String {
    match addr.split_once('@') {
        Some((user, domain)) => {
            let first: String = user.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

fn fail(detail: impl Into<String>) -> DeliveryError {
    DeliveryError::new("e-mail", detail)
}

/// Sends `code` to `to` through `cfg.smtp_host`, with the configured
/// subject and body templates (`{code}`, `{user}`, `{issuer}`).
///
/// TLS: `starttls` requires the upgrade (a server that does not offer
/// STARTTLS gets nothing, not even the envelope), `tls` is TLS from the
/// first byte, `none` is clear text and only to a loopback relay, never
/// with AUTH (refused here as well as by config validation, see
/// [`EmailConfig::clear_text_refusal`]). Certificates are verified against
/// the system CA bundle plus `ca_file` (`crate::transport`). AUTH when
/// `username` is set (only over TLS). Time: each TCP connect is bounded by
/// `connect_timeout_ms` (at most `timeout_ms`), the whole send by
/// `timeout_ms`. The error's detail never holds the code or the password.
pub fn send(
    cfg: &EmailConfig,
    trust: Trust,
    issuer: &str,
    user: &str,
    to: &str,
    code: &str,
) -> Result<(), DeliveryError> {
    let mut password = String::new();
    let r = send_inner(cfg, trust, issuer, user, to, code, &mut password);
    r.map_err(|e| e.redact(&[code, password.as_str()]))
}

fn send_inner(
    cfg: &EmailConfig,
    trust: Trust,
    issuer: &str,
    user: &str,
    to: &str,
    code: &str,
    password_out: &mut String,
) -> Result<(), DeliveryError> {
    if let Some(why) = cfg.clear_text_refusal() {
        return Err(fail(why));
    }
    let values = [("code", code), ("user", user), ("issuer", issuer)];
    let from: Mailbox = cfg
        .from
        .parse()
        .map_err(|e| fail(format!("email.from: {e}")))?;
    let to: Mailbox = to.parse().map_err(|e| fail(format!("recipient: {e}")))?;
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(fill(&cfg.subject, &values))
        .header(ContentType::TEXT_PLAIN)
        .body(fill(&cfg.body, &values))
        .map_err(|e| fail(format!("building the message: {e}")))?;
    let deadline = Deadline::after(Duration::from_millis(cfg.timeout_ms));
    let security = match cfg.tls {
        SmtpTls::None => Security::Plain,
        mode => {
            // The fixed trust store of crate::transport (system bundle plus
            // ca_file), never one from the caller's environment.
            let tls = crate::transport::tls_config(cfg.net().ca_file.as_deref(), trust)
                .map(Arc::new)
                .map_err(fail)?;
            if mode == SmtpTls::Tls {
                Security::Tls(tls)
            } else {
                Security::StartTls(tls)
            }
        }
    };
    let credentials = if cfg.username.is_empty() {
        None
    } else {
        let password =
            p2fa_core::config::secret(&cfg.password, &cfg.password_file, "email.password", trust)
                .map_err(|e| fail(e.0))?;
        password_out.clone_from(&password);
        Some(Credentials::new(cfg.username.clone(), password))
    };
    let connect_ms = cfg.connect_timeout_ms.min(cfg.timeout_ms);
    let relay = Relay {
        host: &cfg.smtp_host,
        port: cfg.smtp_port,
        security,
        connect_timeout: Duration::from_millis(connect_ms),
        deadline,
    };
    let peer = format!("SMTP {}:{}", cfg.smtp_host, cfg.smtp_port);
    let formatted = zeroize::Zeroizing::new(message.formatted());
    match crate::smtp::send(&relay, credentials.as_ref(), message.envelope(), &formatted) {
        Ok(()) => Ok(()),
        Err(SmtpError::Deadline) => Err(fail(format!(
            "{peer}: no answer within {} ms",
            cfg.timeout_ms
        ))),
        Err(SmtpError::ConnectTimeout) => Err(fail(format!(
            "{peer}: timed out connecting (no answer within {connect_ms} ms)"
        ))),
        Err(SmtpError::Failed(m)) => Err(fail(format!("{peer}: {m}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            normalize_address(" Alice@Example.COM ").unwrap(),
            "Alice@example.com"
        );
        for bad in [
            "alice",
            "alice@",
            "@example.com",
            "a b@example.com",
            "alice@example",
            "a\n@x.org",
        ] {
            assert!(normalize_address(bad).is_err(), "{bad}");
        }
        assert_eq!(mask_address("alice@example.com"), "a***@example.com");
        assert_eq!(mask_address("nonsense"), "***");
    }
}
