//! The one place that builds HTTP clients for the network factors.
//!
//! A client is built for one PAM call and dropped before it returns:
//! reqwest's blocking client runs a runtime on a helper thread and joins it
//! on drop, so nothing outlives the call (sshd forks after PAM). Timeouts
//! always come from the config; TLS is always verified, with an optional
//! extra CA for private gateways and test stand-ins.
//!
//! TLS is rustls with the *ring* crypto provider, for reqwest here and for
//! lettre (SMTP, `factor::email`) alike. Certificates are checked by
//! rustls-platform-verifier, which on Linux reads the system CA store (the
//! files OpenSSL would read under `/etc/ssl/certs`, honouring
//! `SSL_CERT_FILE` and `SSL_CERT_DIR`), plus `ca_file`. Not OpenSSL: every
//! login loads the module, and linking libssl/libcrypto made every fresh
//! process (sudo, su, each sshd connection) load and initialise them
//! (about 1.7 ms of `pam_start`, measured by `scripts/bench`) in case the
//! login used SMS, e-mail or Duo. `2fad` uses rustls too (its HTTPS
//! listener, src/daemon/web.rs); nothing in the tree links OpenSSL.

use crate::config::NetRules;
use std::time::Duration;

/// Largest response body we read from a gateway or Duo.
pub const MAX_RESPONSE_BYTES: u64 = 256 * 1024;

/// Makes *ring* the rustls process default, which reqwest then uses (it is
/// built without a provider of its own). The default is a static of the
/// rustls copy inside this binary or module: no thread, nothing shared
/// with the host process; a second install is a harmless no-op.
///
/// rustls deprecates its *ring* provider because *ring* has no
/// post-quantum key exchange; the alternative, aws-lc-rs, adds 2.2 MB and
/// 3200 relocations to the module (+0.1 ms per `pam_start`, measured). The
/// links this protects carry one-time codes that expire within minutes and
/// gateway credentials; the OpenSSL 3.0 this replaces had no post-quantum
/// key exchange either.
#[allow(deprecated)]
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A blocking client with the configured timeouts and trust.
pub fn http_client(net: &NetRules) -> Result<reqwest::blocking::Client, String> {
    ensure_crypto_provider();
    let mut b = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_millis(net.connect_timeout_ms))
        .timeout(Duration::from_millis(net.timeout_ms))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pam-2fa/", env!("CARGO_PKG_VERSION")))
        .no_proxy();
    if let Some(path) = &net.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("bad CA file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("no certificate in CA file {}", path.display()));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))
}

/// Reads at most [`MAX_RESPONSE_BYTES`] of a response body.
pub fn read_body(resp: reqwest::blocking::Response) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut body = Vec::new();
    resp.take(MAX_RESPONSE_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("reading response: {e}"))?;
    if body.len() as u64 > MAX_RESPONSE_BYTES {
        return Err("response larger than 256 KiB".into());
    }
    Ok(body)
}

/// An error and its causes on one line: reqwest and lettre keep the useful
/// part ("connection refused", the TLS verification failure) in sources.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}
