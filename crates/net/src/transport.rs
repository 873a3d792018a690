//! The one place that builds HTTP clients and TLS trust for the network
//! factors.
//!
//! A client is built for one PAM call and dropped before it returns:
//! reqwest's blocking client runs a runtime on a helper thread and joins it
//! on drop, so nothing outlives the call (sshd forks after PAM). Timeouts
//! always come from the config; TLS is always verified.
//!
//! **Trust never comes from the caller's environment.** Under sudo or su the
//! module runs in the caller's process with the caller's environment, so
//! `SSL_CERT_FILE`, `SSL_CERT_DIR`, `HTTPS_PROXY` and the like are chosen by
//! the very user being authenticated; honouring them would let that user
//! pick which Duo server (or SMS gateway) to believe. So the trust store is
//! fixed, for every caller (root included, which keeps one rule and one
//! test): the first of [`SYSTEM_CA_BUNDLES`] that exists (the distribution's
//! CA bundle, root-owned), plus the configured `ca_file`. Both are checked
//! like every other input (root-owned, not writable by group or others, a
//! regular file of bounded size). Proxies are off (`no_proxy`); lettre
//! reads no proxy variables; neither client writes an SSLKEYLOGFILE.
//!
//! The rustls `ClientConfig` is built here, before reqwest is called, and
//! handed over with `use_preconfigured_tls`: reqwest's blocking builder
//! starts its runtime thread first and builds the TLS setup inside it, and
//! when that build fails it returns without joining the thread, which then
//! outlives the PAM call. With the TLS config ready-made, every fallible
//! step (reading and parsing the CA files) happens before any thread
//! exists; should reqwest still fail (it cannot start a runtime), the call
//! waits for its thread to end ([`wait_for_runtime_threads`]).
//!
//! TLS is rustls with the *ring* crypto provider, for reqwest here and for
//! lettre (SMTP, [`crate::email`], through [`trust_anchors`]) alike. Not
//! OpenSSL: every login loads the module, and linking libssl/libcrypto made
//! every fresh process (sudo, su, each sshd connection) load and initialise
//! them (about 1.7 ms of `pam_start`, measured by `scripts/bench`) in case
//! the login used SMS, e-mail or Duo. `2fad` uses rustls too (its HTTPS
//! listener, crates/daemon/src/web.rs); nothing in the tree links OpenSSL.

use p2fa_core::clock::{self, Deadline};
use p2fa_core::config::NetRules;
use p2fa_core::secure_fs::Trust;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Largest response body we read from a gateway or Duo.
pub const MAX_RESPONSE_BYTES: u64 = 256 * 1024;

/// The system CA bundles we look for, in order; the first that exists is
/// the system's trust store. Fixed paths: never from the environment.
pub const SYSTEM_CA_BUNDLES: &[&str] = &[
    // Debian, Ubuntu, Arch, Gentoo
    "/etc/ssl/certs/ca-certificates.crt",
    // Fedora, RHEL, CentOS
    "/etc/pki/tls/certs/ca-bundle.crt",
    // openSUSE
    "/etc/ssl/ca-bundle.pem",
    // Alpine and others
    "/etc/ssl/cert.pem",
];

/// Largest CA file we read (the Debian bundle is about 220 KiB).
const MAX_CA_FILE: u64 = 4 * 1024 * 1024;

/// The *ring* crypto provider, passed explicitly (no process-wide
/// default is installed: nothing global is left in the host process).
///
/// rustls deprecates its *ring* provider because *ring* has no
/// post-quantum key exchange; the alternative, aws-lc-rs, adds 2.2 MB and
/// 3200 relocations to the module (+0.1 ms per `pam_start`, measured). The
/// links this protects carry one-time codes that expire within minutes and
/// gateway credentials; the OpenSSL 3.0 this replaces had no post-quantum
/// key exchange either. lettre picks *ring* itself (its `ring` feature).
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes *ring* the rustls process default, for code that builds a
/// reqwest client of its own (the tests' HTTPS clients): reqwest is built
/// without a provider. The module does not call it (it passes the
/// provider explicitly); a second install is a harmless no-op.
#[allow(deprecated)]
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Reads a PEM file that decides whom we trust, with the checks of every
/// trusted input ([`p2fa_core::secure_fs::read_trusted`]: a root-owned regular
/// file, not writable by group or others, opened without blocking, in a
/// root-owned directory chain, at most [`MAX_CA_FILE`] bytes). Symlinks are
/// resolved first (Debian's `/etc/ssl/certs/*.pem` are links into
/// `/usr/share/ca-certificates`) and the file they lead to is what is
/// checked; the directories holding the links are root-owned, so nobody
/// else can swap them between the two steps.
fn read_ca_file(path: &Path, what: &str, trust: Trust) -> Result<Vec<u8>, String> {
    let real = std::fs::canonicalize(path)
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    p2fa_core::secure_fs::read_trusted(
        &real,
        what,
        p2fa_core::secure_fs::NO_GROUP_OR_WORLD_WRITE,
        MAX_CA_FILE,
        trust,
    )
    .map(|pem| pem.to_vec())
    .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

/// The certificates we trust: the system bundle (certificates in it that
/// are not usable trust anchors are skipped, as every TLS library does)
/// plus every certificate of `ca_file`, each of which must be a usable
/// trust anchor (a `ca_file` that is wrong is the admin's mistake and is
/// reported, not half-used). `trust`: whose files to believe
/// ([`Trust::ROOT`] outside tests).
pub fn trust_anchors(
    ca_file: Option<&Path>,
    trust: Trust,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut anchors = Vec::new();
    let mut scratch = rustls::RootCertStore::empty();
    if let Some(bundle) = SYSTEM_CA_BUNDLES.iter().map(Path::new).find(|p| p.exists()) {
        let pem = read_ca_file(bundle, "system CA bundle", trust)?;
        for der in CertificateDer::pem_slice_iter(&pem).flatten() {
            if scratch.add(der.clone()).is_ok() {
                anchors.push(der);
            }
        }
    }
    if let Some(path) = ca_file {
        let pem = read_ca_file(path, "CA file", trust)?;
        let mut n = 0;
        for der in CertificateDer::pem_slice_iter(&pem) {
            let der = der.map_err(|e| format!("bad CA file {}: {e}", path.display()))?;
            scratch.add(der.clone()).map_err(|e| {
                format!(
                    "bad CA file {}: certificate {} is not usable: {e}",
                    path.display(),
                    n + 1
                )
            })?;
            anchors.push(der);
            n += 1;
        }
        if n == 0 {
            return Err(format!("no certificate in CA file {}", path.display()));
        }
    }
    if anchors.is_empty() {
        return Err(format!(
            "no CA certificates to trust: none of {} exists and no ca_file is set",
            SYSTEM_CA_BUNDLES.join(", ")
        ));
    }
    Ok(anchors)
}

/// The rustls client configuration: [`trust_anchors`] only, *ring*, TLS
/// 1.2 and 1.3, HTTP/1.1, no client certificate, no key log.
pub fn tls_config(ca_file: Option<&Path>, trust: Trust) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for der in trust_anchors(ca_file, trust)? {
        roots
            .add(der)
            .map_err(|e| format!("CA certificate not usable: {e}"))?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A blocking client with the configured timeouts and trust.
///
/// Its runtime thread, which does all the socket I/O, starts with SIGPIPE
/// blocked: a peer that resets the connection while a request is written
/// (hyper writes with `writev`, which raises SIGPIPE) must make that write
/// fail, not kill the host process (pamtester, su and other PAM hosts keep
/// SIGPIPE's default action; sshd ignores it). A blocked, thread-directed
/// SIGPIPE dies with the thread. The caller's own signal mask is restored
/// before this returns.
pub fn http_client(net: &NetRules, trust: Trust) -> Result<reqwest::blocking::Client, String> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    let tls = tls_config(net.ca_file.as_deref(), trust)?;
    let builder = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_millis(net.connect_timeout_ms))
        .timeout(Duration::from_millis(net.timeout_ms))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pam-2fa/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .use_preconfigured_tls(tls);
    let mut pipe = SigSet::empty();
    pipe.add(Signal::SIGPIPE);
    let old = pipe
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .map_err(|e| format!("cannot block SIGPIPE for the HTTP client: {e}"))?;
    // Nothing is written on this thread while SIGPIPE is blocked here, so
    // no SIGPIPE can be pending for it when the old mask comes back.
    let built = builder.build();
    let restored = old.thread_set_mask();
    if let Err(e) = restored {
        drop(built);
        return Err(format!("cannot restore the signal mask: {e}"));
    }
    built.map_err(|e| {
        wait_for_runtime_threads(Duration::from_secs(2));
        format!("cannot build HTTP client: {}", error_chain(&e))
    })
}

/// The name reqwest gives its blocking client's runtime thread, as
/// `/proc/self/task/*/comm` shows it (cut to 15 bytes).
const RUNTIME_THREAD: &str = "reqwest-interna";

/// After a failed build: reqwest has left its runtime thread to finish on
/// its own; wait (at most `limit`) until no such thread is left, so none
/// outlives the PAM call.
fn wait_for_runtime_threads(limit: Duration) {
    let deadline = Deadline::after(limit);
    while runtime_threads() > 0 && !deadline.passed() {
        clock::sleep(Duration::from_millis(2));
    }
}

fn runtime_threads() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end() == RUNTIME_THREAD)
        })
        .count()
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

/// The TLS failure behind `e`, if any: a certificate the peer presented
/// that we do not accept (another host's, an untrusted issuer, expired, no
/// subjectAltName) or a TLS protocol error. rustls reports these as its
/// own error type, which tokio-rustls and hyper-rustls wrap in `io::Error`s
/// (two deep); an `io::Error`'s `source()` skips the error it wraps, so
/// the walk steps into it with `get_ref` instead.
pub fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    for _ in 0..32 {
        let err = cur?;
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_bundle_is_found_at_its_fixed_path() {
        // (That the environment is never consulted is tested end to end,
        // with SSL_CERT_FILE/SSL_CERT_DIR set by a sudo caller and by root,
        // in tests/attack/duo.rs.)
        let a = trust_anchors(None, Trust::test_runner()).expect("this machine has a CA bundle");
        assert!(a.len() > 20, "{}", a.len());
    }

    #[test]
    fn ca_file_must_be_root_owned_regular_and_usable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        // A PEM block that decodes but is no certificate.
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = trust_anchors(Some(&garbage), Trust::test_runner()).unwrap_err();
        assert!(e.contains("is not usable"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        assert!(
            trust_anchors(Some(&empty), Trust::test_runner())
                .unwrap_err()
                .contains("no certificate")
        );
        std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = trust_anchors(Some(&empty), Trust::test_runner()).unwrap_err();
        assert!(e.contains("must not be writable by group or others"), "{e}");
        let e = trust_anchors(Some(dir.path()), Trust::test_runner()).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let e = trust_anchors(Some(&fifo), Trust::test_runner()).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn tls_failures_are_found_however_deep_they_are_wrapped() {
        use std::io::{Error, ErrorKind};
        let cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        // tokio-rustls, then hyper-rustls, then a boxed source.
        let wrapped = Error::other(Error::new(ErrorKind::InvalidData, cert));
        let found = tls_failure(&wrapped).expect("found");
        assert!(
            found.contains("invalid peer certificate: UnknownIssuer"),
            "{found}"
        );
        let refused = Error::new(ErrorKind::ConnectionRefused, "connection refused");
        assert_eq!(tls_failure(&Error::other(refused)), None);
    }

    #[test]
    fn a_bad_ca_file_fails_before_reqwest_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let net = NetRules {
            connect_timeout_ms: 1000,
            timeout_ms: 1000,
            ca_file: Some(garbage),
        };
        let Err(e) = http_client(&net, Trust::test_runner()) else {
            panic!("a client was built with a bad CA file")
        };
        assert!(e.contains("is not usable"), "{e}");
    }
}
