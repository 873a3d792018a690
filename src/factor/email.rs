//! E-mail codes over SMTP (lettre): STARTTLS (required, never a silent
//! fallback to clear text), implicit TLS, or plain for a local relay.

use super::delivery::{DeliveryError, fill};
use crate::config::{EmailConfig, SmtpTls};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, Message, SmtpTransport, Transport};
use std::time::Duration;

/// Lower-cases the domain and checks the address parses.
pub fn normalize_address(input: &str) -> Result<String, String> {
    let s = input.trim();
    let bad = || {
        format!(
            "{:?} is not an e-mail address",
            crate::audit::printable(s, 60)
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

/// Sends `code` to `to`.
pub fn send(
    cfg: &EmailConfig,
    issuer: &str,
    user: &str,
    to: &str,
    code: &str,
) -> Result<(), DeliveryError> {
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
    let tls = match cfg.tls {
        SmtpTls::None => Tls::None,
        mode => {
            let mut b = TlsParameters::builder(cfg.smtp_host.clone());
            if let Some(ca) = &cfg.net().ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| fail(format!("CA file {}: {e}", ca.display())))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| fail(format!("CA file {}: {e}", ca.display())))?;
                b = b.add_root_certificate(cert);
            }
            let params = b.build().map_err(|e| fail(format!("TLS setup: {e}")))?;
            if mode == SmtpTls::Tls {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        }
    };
    // lettre has one timeout, applied to the connect and to every read and
    // write: use the tighter of the two configured values.
    let timeout = Duration::from_millis(cfg.connect_timeout_ms.min(cfg.timeout_ms));
    let mut builder = SmtpTransport::builder_dangerous(cfg.smtp_host.as_str())
        .port(cfg.smtp_port)
        .tls(tls)
        .timeout(Some(timeout));
    if !cfg.username.is_empty() {
        let password = crate::config::secret(&cfg.password, &cfg.password_file, "email.password")
            .map_err(|e| fail(e.0))?;
        builder = builder.credentials(Credentials::new(cfg.username.clone(), password));
    }
    let mailer = builder.build();
    mailer.send(&message).map(|_| ()).map_err(|e| {
        fail(format!(
            "SMTP {}:{}: {}",
            cfg.smtp_host,
            cfg.smtp_port,
            crate::net::error_chain(&e)
        ))
    })
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
