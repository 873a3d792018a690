//! E-mail codes over SMTP (lettre): STARTTLS (required, never a silent
//! fallback to clear text), implicit TLS, or plain for a local relay.
//!
//! Timeouts: the whole conversation (resolve, connect, TLS handshake,
//! every command) runs as one future on a current-thread tokio runtime
//! built for the send, under `tokio::time::timeout(timeout_ms)`; lettre
//! bounds the TCP connect by `connect_timeout_ms`. When the deadline
//! passes the future is dropped, which closes the one socket this send
//! opened and nothing else. (The blocking transport could not be stopped
//! from outside: its per-read timeout restarts with every line a server
//! trickles, and the helper thread that used to enforce the deadline had
//! to guess which socket was lettre's, and in a process running two logins
//! at once it shut down the other login's connection too.) The runtime
//! runs on the calling thread; a name lookup runs on its blocking pool,
//! which dropping the runtime joins, so no thread outlives `send`.

use super::delivery::{DeliveryError, fill};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use p2fa_core::config::{EmailConfig, SmtpTls};
use p2fa_core::secure_fs::Trust;
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

/// True when lettre gave up connecting: its connect timeout (TimedOut).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Sends `code` to `to` through `cfg.smtp_host`, with the configured
/// subject and body templates (`{code}`, `{user}`, `{issuer}`).
///
/// TLS: `starttls` requires the upgrade (a server that does not offer
/// STARTTLS gets nothing, not even the envelope), `tls` is TLS from the
/// first byte, `none` is clear text and only to a loopback relay, never
/// with AUTH (refused here as well as by config validation, see
/// [`EmailConfig::clear_text_refusal`]). Certificates are verified against
/// the system CA bundle plus `ca_file` (`crate::transport`). AUTH when `username` is set. Time: the
/// TCP connect is bounded by `connect_timeout_ms` (at most `timeout_ms`),
/// the whole send by `timeout_ms`. The error's detail never holds the code
/// or the password.
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
    let tls = match cfg.tls {
        SmtpTls::None => Tls::None,
        mode => {
            // The fixed trust store of crate::transport (system bundle plus
            // ca_file), never lettre's default, which would read
            // SSL_CERT_FILE / SSL_CERT_DIR from the caller's environment.
            let mut b = TlsParameters::builder(cfg.smtp_host.clone())
                .certificate_store(CertificateStore::None);
            for der in crate::transport::trust_anchors(cfg.net().ca_file.as_deref(), trust)
                .map_err(fail)?
            {
                let cert = Certificate::from_der(der.to_vec())
                    .map_err(|e| fail(format!("CA certificate: {e}")))?;
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
    let mut builder =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.smtp_host.as_str())
            .port(cfg.smtp_port)
            .tls(tls)
            .timeout(Some(Duration::from_millis(
                cfg.connect_timeout_ms.min(cfg.timeout_ms),
            )));
    if !cfg.username.is_empty() {
        let password =
            p2fa_core::config::secret(&cfg.password, &cfg.password_file, "email.password", trust)
                .map_err(|e| fail(e.0))?;
        password_out.clone_from(&password);
        builder = builder.credentials(Credentials::new(cfg.username.clone(), password));
    }
    let mailer = builder.build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| fail(format!("cannot start the SMTP client: {e}")))?;
    let total = Duration::from_millis(cfg.timeout_ms);
    let result =
        runtime.block_on(async { tokio::time::timeout(total, mailer.send(message)).await });
    drop(mailer);
    drop(runtime);
    let peer = format!("SMTP {}:{}", cfg.smtp_host, cfg.smtp_port);
    match result {
        Ok(Ok(_)) => Ok(()),
        Err(_elapsed) => Err(fail(format!(
            "{peer}: no answer within {} ms",
            cfg.timeout_ms
        ))),
        Ok(Err(e)) if timed_out(&e) => Err(fail(format!(
            "{peer}: timed out connecting (no answer within {} ms)",
            cfg.connect_timeout_ms.min(cfg.timeout_ms)
        ))),
        Ok(Err(e)) => Err(fail(format!(
            "{peer}: {}",
            crate::transport::error_chain(&e)
        ))),
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
