//! The one place that builds HTTP clients for the network factors.
//!
//! A client is built for one PAM call and dropped before it returns:
//! reqwest's blocking client runs a runtime on a helper thread and joins it
//! on drop, so nothing outlives the call (sshd forks after PAM). Timeouts
//! always come from the config; TLS is always verified, with an optional
//! extra CA for private gateways and test stand-ins.

use crate::config::NetRules;
use std::time::Duration;

/// Largest response body we read from a gateway or Duo.
pub const MAX_RESPONSE_BYTES: u64 = 256 * 1024;

/// A blocking client with the configured timeouts and trust.
pub fn http_client(net: &NetRules) -> Result<reqwest::blocking::Client, String> {
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
