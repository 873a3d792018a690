//! E-mail codes over SMTP (lettre): STARTTLS (required, never a silent
//! fallback to clear text), implicit TLS, or plain for a local relay.
//!
//! Timeouts: lettre applies its one timeout to the TCP connect and to each
//! read and write after the greeting, but not to the TLS handshake of an
//! implicit-TLS (`tls = "tls"`) connection, which it runs before setting
//! the socket timeouts: a server that accepts the connection and then says
//! nothing would hang the login for ever. So `send` also keeps one overall
//! deadline (`timeout_ms`) with a helper thread, see [`Deadline`].

use super::delivery::{DeliveryError, fill};
use crate::config::{EmailConfig, SmtpTls};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Address, Message, SmtpTransport, Transport};
use std::collections::HashSet;
use std::os::fd::RawFd;
use std::sync::mpsc;
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

/// The sockets open in this process: descriptor -> socket inode. Inodes,
/// not descriptor numbers, tell old sockets from new ones: a number is
/// reused at once (the directory listing itself holds one while it runs).
fn open_sockets() -> Option<Vec<(RawFd, u64)>> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(
        dir.filter_map(|e| {
            let e = e.ok()?;
            let fd: RawFd = e.file_name().to_str()?.parse().ok()?;
            let link = std::fs::read_link(e.path()).ok()?;
            let inode = link
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()?;
            Some((fd, inode))
        })
        .collect(),
    )
}

/// Inodes of the TCP sockets whose remote port is `port`, from the
/// kernel's tables (`/proc/self/net/tcp` and `tcp6`).
fn tcp_inodes_to(port: u16) -> HashSet<u64> {
    let mut out = HashSet::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            // sl local_address rem_address st queues timer retrnsmt uid timeout inode
            let f: Vec<&str> = line.split_whitespace().collect();
            let remote_port = f
                .get(2)
                .and_then(|r| r.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if remote_port == Some(port)
                && let Some(inode) = f.get(9).and_then(|i| i.parse().ok())
            {
                out.insert(inode);
            }
        }
    }
    out
}

/// Shuts down the TCP sockets connected to `port` that were not open
/// (`before`: their inodes) when the send began: lettre's socket for this
/// send. A blocked read or write on it then fails at once (EOF / EPIPE;
/// Rust's socket writes use MSG_NOSIGNAL, so no SIGPIPE reaches the host
/// process).
fn shut_new_sockets(before: &HashSet<u64>, port: u16) -> usize {
    use nix::sys::socket::{Shutdown, shutdown};
    let Some(now) = open_sockets() else { return 0 };
    let to_port = tcp_inodes_to(port);
    let mut n = 0;
    for (fd, inode) in now {
        if !before.contains(&inode)
            && to_port.contains(&inode)
            && shutdown(fd, Shutdown::Both).is_ok()
        {
            n += 1;
        }
    }
    n
}

/// One deadline for a whole SMTP send. A helper thread waits for it; if
/// the send is still running then, it shuts down the sockets to the SMTP
/// port opened since the send began (in a PAM host, our own blocked call is
/// the only one opening sockets), which makes lettre fail at once. The
/// thread is stopped and joined before `send` returns, on every path.
struct Deadline {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<bool>>,
}

impl Deadline {
    fn start(after: Duration, port: u16) -> Result<Deadline, String> {
        let before: Option<HashSet<u64>> =
            open_sockets().map(|v| v.into_iter().map(|(_, inode)| inode).collect());
        let (stop, wait) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("2fa-smtp-deadline".into())
            .spawn(move || match wait.recv_timeout(after) {
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(before) = before {
                        shut_new_sockets(&before, port);
                    }
                    true
                }
                _ => false,
            })
            .map_err(|e| format!("cannot start the SMTP deadline thread: {e}"))?;
        Ok(Deadline {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops and joins the thread; true when the deadline had passed.
    fn finish(mut self) -> bool {
        self.stop.take();
        self.thread.take().is_some_and(|t| t.join().unwrap_or(true))
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// True when lettre gave up waiting: a connect timeout (TimedOut) or a
/// read/write timeout (EAGAIN on Linux).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            )
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
/// first byte, `none` is clear text for a local relay. Certificates are
/// verified against the system CA bundle plus `ca_file` (`crate::net`). AUTH when `username`
/// is set. Time: lettre's per-step timeout is `connect_timeout_ms` (at most
/// `timeout_ms`), and the whole send ends by `timeout_ms`. The error's
/// detail never holds the code or the password.
pub fn send(
    cfg: &EmailConfig,
    issuer: &str,
    user: &str,
    to: &str,
    code: &str,
) -> Result<(), DeliveryError> {
    let mut password = String::new();
    let r = send_inner(cfg, issuer, user, to, code, &mut password);
    r.map_err(|e| e.redact(&[code, password.as_str()]))
}

fn send_inner(
    cfg: &EmailConfig,
    issuer: &str,
    user: &str,
    to: &str,
    code: &str,
    password_out: &mut String,
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
            // The fixed trust store of crate::net (system bundle plus
            // ca_file), never lettre's default, which would read
            // SSL_CERT_FILE / SSL_CERT_DIR from the caller's environment.
            let mut b = TlsParameters::builder(cfg.smtp_host.clone())
                .certificate_store(CertificateStore::None);
            for der in crate::net::trust_anchors(cfg.net().ca_file.as_deref()).map_err(fail)? {
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
    // lettre has one timeout, applied to the connect and to every read and
    // write: use the tighter of the two configured values; the Deadline
    // bounds the whole send (and the implicit-TLS handshake) by timeout_ms.
    let step = Duration::from_millis(cfg.connect_timeout_ms.min(cfg.timeout_ms));
    let mut builder = SmtpTransport::builder_dangerous(cfg.smtp_host.as_str())
        .port(cfg.smtp_port)
        .tls(tls)
        .timeout(Some(step));
    if !cfg.username.is_empty() {
        let password = crate::config::secret(&cfg.password, &cfg.password_file, "email.password")
            .map_err(|e| fail(e.0))?;
        password_out.clone_from(&password);
        builder = builder.credentials(Credentials::new(cfg.username.clone(), password));
    }
    let mailer = builder.build();
    let deadline =
        Deadline::start(Duration::from_millis(cfg.timeout_ms), cfg.smtp_port).map_err(fail)?;
    let result = mailer.send(&message);
    let expired = deadline.finish();
    let peer = format!("SMTP {}:{}", cfg.smtp_host, cfg.smtp_port);
    match result {
        Ok(_) => Ok(()),
        Err(_) if expired => Err(fail(format!(
            "{peer}: no answer within {} ms",
            cfg.timeout_ms
        ))),
        Err(e) if timed_out(&e) => Err(fail(format!(
            "{peer}: timed out (no answer within {} ms)",
            step.as_millis()
        ))),
        Err(e) => Err(fail(format!("{peer}: {}", crate::net::error_chain(&e)))),
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
