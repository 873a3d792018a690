//! The one place that builds HTTP clients and TLS trust for the network
//! factors.
//!
//! **Nothing runs on another thread.** The HTTP client is ureq's, put
//! together here from its parts ([`http_client`]): its TCP connector, a
//! TLS connector over the rustls configuration built here ([`tls_config`])
//! and a name resolver that looks the host up on the calling thread
//! (ureq's own starts a thread for the lookup whenever a timeout is set).
//! So every byte is read and written by the thread that made the call, no
//! runtime and no helper thread exists, and nothing can outlive the PAM
//! call (sshd forks after PAM). The SMTP client ([`crate::smtp`]) uses the
//! same [`tls_config`] on a socket of its own. Timeouts always come from
//! the config; TLS is always verified. std writes to a TCP socket with
//! `MSG_NOSIGNAL`, so a peer that resets the connection while a request is
//! written makes the write fail instead of raising SIGPIPE in the host
//! (pamtester, su and other PAM hosts keep SIGPIPE's default action).
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
//! regular file of bounded size). Proxies are off: the HTTP client's
//! connector chain has no proxy step and its config none; the SMTP client
//! knows no proxies; neither writes an SSLKEYLOGFILE. Redirects are not
//! followed.
//!
//! Everything that can fail in the setup (reading and parsing the CA
//! files) happens in [`tls_config`], before any connection is opened.
//!
//! TLS is rustls with the *ring* crypto provider, for HTTP and SMTP alike.
//! Not OpenSSL: every login loads the module, and linking libssl/libcrypto
//! made every fresh process (sudo, su, each sshd connection) load and
//! initialise them (about 1.7 ms of `pam_start`, measured by
//! `scripts/bench`) in case the login used SMS, e-mail or Duo. `2fad` uses
//! rustls too (its HTTPS listener, crates/daemon/src/web.rs); nothing in
//! the tree links OpenSSL.

use p2fa_core::config::NetRules;
use p2fa_core::secure_fs::Trust;
use rustls::ClientConnection;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::ToSocketAddrs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::time::{Duration as UDuration, Instant as UInstant};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, TcpConnector,
    Transport, TransportAdapter,
};

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
/// key exchange either.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes *ring* the rustls process default, for code that builds an HTTPS
/// client of its own (the tests' reqwest clients: reqwest is built without
/// a provider). The module does not call it (it passes the provider
/// explicitly); a second install is a harmless no-op.
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
/// 1.2 and 1.3, no ALPN (the HTTP client adds `http/1.1`), no client
/// certificate, no key log.
pub fn tls_config(ca_file: Option<&Path>, trust: Trust) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for der in trust_anchors(ca_file, trust)? {
        roots
            .add(der)
            .map_err(|e| format!("CA certificate not usable: {e}"))?;
    }
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// An HTTP client with the configured timeouts and trust, for one PAM
/// call: `connect_timeout_ms` bounds resolving the name, the TCP connect
/// and the TLS handshake (ureq's connect stage; the lookup itself is
/// bounded by the resolver's own settings, see [`CallingThreadResolver`]),
/// `timeout_ms` the whole exchange, body included. HTTP status codes are
/// answers, not errors (the callers look at them); redirects are returned
/// as they are, never followed.
pub fn http_client(net: &NetRules, trust: Trust) -> Result<ureq::Agent, String> {
    let mut tls = tls_config(net.ca_file.as_deref(), trust)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_millis(net.connect_timeout_ms)))
        .timeout_global(Some(Duration::from_millis(net.timeout_ms)))
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .user_agent(concat!("pam-2fa/", env!("CARGO_PKG_VERSION")))
        .build();
    let connector = ().chain(TcpConnector::default()).chain(FixedTrustTls {
        config: Arc::new(tls),
    });
    Ok(ureq::Agent::with_parts(
        config,
        connector,
        CallingThreadResolver,
    ))
}

/// ureq's name resolution, on the calling thread: `getaddrinfo` as every
/// C client does, bounded by the resolver's settings (resolv.conf's
/// `timeout` and `attempts`), not by `connect_timeout_ms`. ureq's default
/// resolver runs the lookup on a thread it starts whenever a timeout is
/// set and leaves behind when the timeout passes; here no thread is ever
/// started. A host that is an IP address is not looked up at all.
#[derive(Debug)]
struct CallingThreadResolver;

impl Resolver for CallingThreadResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(ureq::Error::BadUri("no scheme or host".into()));
        };
        let Some(host_port) = DefaultResolver::host_and_port(scheme, authority) else {
            return Err(ureq::Error::BadUri("unknown scheme".into()));
        };
        let mut addrs = self.empty();
        // ureq keeps at most 16 addresses (its own resolver's limit).
        for addr in host_port.to_socket_addrs()?.take(16) {
            addrs.push(addr);
        }
        if addrs.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(addrs)
    }
}

/// ureq's TLS step with the [`tls_config`] made here (ureq's own rustls
/// connector builds its configuration itself, from its own settings).
/// Like ureq's: it wraps the TCP transport when the URL is `https`, and
/// the handshake runs within what is left of the connect stage's time.
struct FixedTrustTls {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for FixedTrustTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FixedTrustTls")
    }
}

impl<In: Transport> Connector<In> for FixedTrustTls {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .host()
            .ok_or(ureq::Error::Tls("no host name to verify"))?;
        // An IPv6 address comes in brackets.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_string())
            .map_err(|_| ureq::Error::Tls("the host is no valid name for TLS"))?;
        let mut conn = ClientConnection::new(self.config.clone(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        // details.timeout was measured when the connect stage began; the
        // TCP connect has used some of it since.
        let mut timeout = details.timeout;
        if let (UInstant::Exact(began), UInstant::Exact(now), UDuration::Exact(left)) =
            (details.now, (details.current_time)(), timeout.after)
        {
            timeout.after =
                UDuration::Exact(left.saturating_sub(now.saturating_duration_since(began)));
        }
        sock.set_timeout(timeout);
        conn.complete_io(&mut sock).map_err(rustls_error)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: rustls::StreamOwned { conn, sock },
        })))
    }
}

/// An I/O error that carries a rustls error (how rustls reports a
/// certificate or TLS protocol failure) becomes ureq's TLS error, so
/// [`classify`] finds it; any other stays what it was.
fn rustls_error(e: std::io::Error) -> ureq::Error {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(t) => ureq::Error::Rustls(t.clone()),
        None => ureq::Error::from(e),
    }
}

/// A TLS connection as a ureq transport (as ureq's own rustls transport).
struct TlsTransport {
    buffers: LazyBuffers,
    stream: rustls::StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        use std::io::Write;
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output).map_err(rustls_error)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        use std::io::Read;
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input).map_err(rustls_error)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// Reads at most [`MAX_RESPONSE_BYTES`] of a response body.
pub fn read_body(resp: ureq::http::Response<ureq::Body>) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut body = Vec::new();
    resp.into_body()
        .into_reader()
        .take(MAX_RESPONSE_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("reading response: {}", describe_io(&e)))?;
    if body.len() as u64 > MAX_RESPONSE_BYTES {
        return Err("response larger than 256 KiB".into());
    }
    Ok(body)
}

/// What went wrong with an HTTP exchange, in the terms the callers decide
/// on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpFailure {
    /// The certificate the peer presented is not one we accept (another
    /// host's, an untrusted issuer, expired, no subjectAltName) or the TLS
    /// protocol failed: rustls's description.
    Tls(String),
    /// A timeout ran out; `connecting`: while resolving or connecting
    /// (the connect stage's own timeout), before any request was sent.
    Timeout { connecting: bool },
    /// No (usable) answer otherwise: refused, reset, no such host, not
    /// HTTP. Never holds the URL (a webhook URL may hold an API key).
    Other(String),
}

/// Sorts a ureq error into an [`HttpFailure`].
pub fn classify(e: &ureq::Error) -> HttpFailure {
    use ureq::Error as E;
    match e {
        E::Rustls(t) => HttpFailure::Tls(t.to_string()),
        E::Tls(t) => HttpFailure::Tls((*t).to_string()),
        E::Timeout(t) => HttpFailure::Timeout {
            connecting: matches!(t, ureq::Timeout::Connect | ureq::Timeout::Resolve),
        },
        E::Io(io) => match tls_failure(io) {
            Some(t) => HttpFailure::Tls(t),
            None if io.kind() == std::io::ErrorKind::TimedOut => {
                HttpFailure::Timeout { connecting: false }
            }
            None => HttpFailure::Other(describe_io(io)),
        },
        E::BadUri(_) => HttpFailure::Other("invalid URL".into()),
        E::HostNotFound => HttpFailure::Other("host not found".into()),
        other => HttpFailure::Other(other.to_string()),
    }
}

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpFailure::Tls(t) => write!(f, "TLS: {t}"),
            HttpFailure::Timeout { connecting: true } => f.write_str("timed out connecting"),
            HttpFailure::Timeout { connecting: false } => f.write_str("timed out"),
            HttpFailure::Other(m) => f.write_str(m),
        }
    }
}

/// An I/O error on one line, with what it wraps (a rustls error, or a
/// ureq error such as a timeout while the body was read).
fn describe_io(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => match inner.downcast_ref::<ureq::Error>() {
            Some(u) => classify_inner(u),
            None => error_chain(inner),
        },
        None => e.to_string(),
    }
}

fn classify_inner(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => describe_io(io),
        other => classify(other).to_string(),
    }
}

/// An error and its causes on one line (the useful part, "connection
/// refused" or the TLS verification failure, is often in a source).
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
/// own error type inside an `io::Error`, which may itself be wrapped; an
/// `io::Error`'s `source()` skips the error it wraps, so the walk steps
/// into it with `get_ref` instead.
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
        // rustls's stream, then a transport wrapping that error again.
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
    fn a_bad_ca_file_fails_before_any_connection() {
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

    #[test]
    fn ureq_errors_are_classified() {
        use std::io::{Error, ErrorKind};
        let cert = || rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        for e in [
            ureq::Error::Rustls(cert()),
            ureq::Error::Io(Error::new(ErrorKind::InvalidData, cert())),
        ] {
            assert!(
                matches!(classify(&e), HttpFailure::Tls(ref t) if t.contains("UnknownIssuer")),
                "{e:?}"
            );
        }
        assert_eq!(
            classify(&ureq::Error::Timeout(ureq::Timeout::Connect)),
            HttpFailure::Timeout { connecting: true }
        );
        for t in [ureq::Timeout::Global, ureq::Timeout::RecvResponse] {
            assert_eq!(
                classify(&ureq::Error::Timeout(t)),
                HttpFailure::Timeout { connecting: false }
            );
        }
        let refused = ureq::Error::Io(Error::new(ErrorKind::ConnectionRefused, "refused"));
        assert!(matches!(classify(&refused), HttpFailure::Other(ref m) if m.contains("refused")));
        let url = ureq::Error::BadUri("https://h/KEY-IN-URL".into());
        assert!(!classify(&url).to_string().contains("KEY"));
    }
}
