//! TLS for the web server: rustls with the *ring* provider (the one the
//! network factors use, p2fa_net::transport), certificate chain and key from PEM
//! files, and renewal without a restart: the pair is reread on SIGHUP and
//! whenever either file changes (size, mtime, inode; polled every
//! [`POLL`]), so certbot-style renewals (new files renamed or symlinked
//! into place) are picked up by themselves. A pair that does not load or
//! whose key does not match the certificate is refused with a log line,
//! and the last good pair keeps serving.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

/// How often the files are checked for a change.
pub const POLL: Duration = Duration::from_secs(2);
/// Largest certificate chain or key file read.
const MAX_FILE: u64 = 1024 * 1024;

/// The pair in service, handed to every handshake.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// What identifies the files' contents without reading them.
type Stamp = Option<[(u64, u64, u64, i64, i64); 2]>;

pub struct Tls {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
    /// The files' stamp when they were last read (loaded or refused).
    tried: Mutex<Stamp>,
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
    };
    Some([one(cert)?, one(key)?])
}

fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut buf = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut buf))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(format!("{}: larger than 1 MiB", path.display()));
    }
    Ok(buf)
}

/// The chain and key from the two files, checked to belong together.
fn load_pair(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let pem = read(cert_file)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e:?}", cert_file.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert_file.display()));
    }
    let key = read(key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|e| format!("{}: no usable private key ({e:?})", key_file.display()))?;
    CertifiedKey::from_der(chain, key, provider)
        .map(Arc::new)
        .map_err(|e| format!("{} and {}: {e}", cert_file.display(), key_file.display()))
}

impl Tls {
    /// Loads the pair; an error here stops 2fad from starting.
    // *ring*, as for the network factors: p2fa_net::transport says why despite its
    // deprecation (no post-quantum key exchange).
    #[allow(deprecated)]
    pub fn load(cert_file: &str, key_file: &str) -> Result<Tls, String> {
        let (cert_file, key_file) = (PathBuf::from(cert_file), PathBuf::from(key_file));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tried = stamp(&cert_file, &key_file);
        let pair = load_pair(&cert_file, &key_file, &provider)
            .map_err(|e| format!("webauthn.cert_file/key_file: {e}"))?;
        let current = Arc::new(Current(RwLock::new(pair)));
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            cert_file,
            key_file,
            provider,
            current,
            tried: Mutex::new(tried),
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Rereads the pair; on success it serves every new handshake.
    pub fn reload(&self, why: &str) {
        let now = stamp(&self.cert_file, &self.key_file);
        *self.tried.lock().unwrap_or_else(|e| e.into_inner()) = now;
        match load_pair(&self.cert_file, &self.key_file, &self.provider) {
            Ok(pair) => {
                *self.current.0.write().unwrap_or_else(|e| e.into_inner()) = pair;
                eprintln!(
                    "2fad: web: {why}: now serving the certificate in {}",
                    self.cert_file.display()
                );
            }
            Err(e) => eprintln!(
                "2fad: web: {why}: certificate not reloaded, the previous one stays in service: {}",
                p2fa_core::audit::detail(&e)
            ),
        }
    }

    /// Starts the watch on the files (inside the runtime).
    pub fn watch_files(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            loop {
                tick.tick().await;
                let me = self.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let now = stamp(&me.cert_file, &me.key_file);
                    let changed = *me.tried.lock().unwrap_or_else(|e| e.into_inner()) != now;
                    // A file missing for a moment (being replaced): wait.
                    if changed && now.is_some() {
                        me.reload("certificate files changed");
                    }
                })
                .await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_unusable_files_are_refused_with_the_path() {
        let d = tempfile::tempdir().unwrap();
        let (c, k) = (d.path().join("c.pem"), d.path().join("k.pem"));
        let err = |c: &Path, k: &Path| match Tls::load(c.to_str().unwrap(), k.to_str().unwrap()) {
            Ok(_) => panic!("loaded"),
            Err(e) => e,
        };
        assert!(err(&c, &k).contains("c.pem"), "{}", err(&c, &k));
        std::fs::write(&c, "not a certificate").unwrap();
        std::fs::write(&k, "not a key").unwrap();
        assert!(err(&c, &k).contains("no certificate"), "{}", err(&c, &k));
    }
}
