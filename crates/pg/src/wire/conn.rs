//! Connecting (TCP or Unix socket, TLS, startup, authentication) and
//! running statements.

use super::msg::{self, Reader};
use super::scram::{self, Binding, Scram};
use super::stream::{Bounded, Framed, Sock, Stream};
use super::{Addr, ChannelBinding, ConnectConfig, Outcome, PgError, Row, Tls, TxStatus, Value};
use p2fa_core::clock::Deadline;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// The live state of a [`super::Conn`].
pub struct Inner {
    pub io: Framed,
    pub status: TxStatus,
    pub params: Vec<(String, String)>,
}

fn lost(m: impl Into<String>) -> PgError {
    PgError::Lost(m.into())
}

/// The client certificate's chain and key, presented when the server
/// asks for one (`hostssl ... cert`).
#[derive(Debug)]
struct ClientCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Largest client certificate chain and key files we read.
const MAX_PEM: u64 = 256 * 1024;

/// The TLS configuration: `p2fa_net::transport`'s trust (system CAs plus
/// `ca_file`, host names verified) and the client certificate. The
/// chain must be a trusted file like the CA file; the key root-owned and
/// readable by its owner only.
fn tls_config(
    ca_file: Option<&Path>,
    client_cert: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    trust: p2fa_core::secure_fs::Trust,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use p2fa_core::secure_fs::{NO_GROUP_OR_WORLD, NO_GROUP_OR_WORLD_WRITE, read_trusted};
    let mut config = p2fa_net::transport::tls_config(ca_file, trust)?;
    if let Some((cert, key)) = client_cert {
        let chain_pem = read_trusted(
            cert,
            "client certificate",
            NO_GROUP_OR_WORLD_WRITE,
            MAX_PEM,
            trust,
        )
        .map_err(|e| e.to_string())?;
        let key_pem = read_trusted(key, "client key", NO_GROUP_OR_WORLD, MAX_PEM, trust)
            .map_err(|e| e.to_string())?;
        let chain = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("client certificate {}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "no certificate in client certificate {}",
                cert.display()
            ));
        }
        let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| format!("client key {}: {e}", key.display()))?;
        let certified =
            rustls::sign::CertifiedKey::from_der(chain, key_der, config.crypto_provider())
                .map_err(|e| format!("client certificate and key: {e}"))?;
        config.client_auth_cert_resolver = Arc::new(ClientCert(Arc::new(certified)));
    }
    Ok(Arc::new(config))
}

/// Why `Tls::Off` may not be used for `addr`, if it may not: only a
/// loopback IP address (nobody else sees the bytes) or a Unix socket.
fn plain_tcp_refusal(host: &str) -> Option<String> {
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => None,
        _ => Some(format!(
            "{host}: TLS is off, which is allowed only to a loopback IP address or a Unix socket"
        )),
    }
}

/// A Unix socket is believed only in a directory that root or postgres
/// owns and others cannot write to: anyone else could put a server of
/// their own there (and learn the password).
fn check_socket_dir(dir: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let postgres = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw());
    if meta.uid() != 0 && Some(meta.uid()) != postgres {
        return Err(format!(
            "socket directory {} is owned by uid {}, not root or postgres",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o002 != 0 {
        return Err(format!(
            "socket directory {} is writable by others",
            dir.display()
        ));
    }
    Ok(())
}

pub fn connect(cfg: &ConnectConfig) -> Result<Inner, PgError> {
    let deadline = Deadline::after(cfg.connect_timeout);
    if let Some(p) = &cfg.password
        && !super::url::password_ok(p)
    {
        return Err(PgError::Connect(
            "the password must be printable ASCII".into(),
        ));
    }
    for s in [&cfg.user, &cfg.dbname, &cfg.application_name] {
        if s.contains('\0') {
            return Err(PgError::Connect(
                "a NUL byte in the user, database or application name".into(),
            ));
        }
    }
    if cfg.addrs.is_empty() {
        return Err(PgError::Connect("no server address".into()));
    }
    let tls = match &cfg.tls {
        Tls::VerifyFull {
            ca_file,
            client_cert,
        } => Some(
            tls_config(ca_file.as_deref(), client_cert.as_ref(), cfg.trust)
                .map_err(PgError::Connect)?,
        ),
        Tls::Off => {
            // Refused before anything is sent anywhere.
            for addr in &cfg.addrs {
                if let Addr::Tcp(host, _) = addr
                    && let Some(why) = plain_tcp_refusal(host)
                {
                    return Err(PgError::Connect(why));
                }
            }
            None
        }
    };
    let mut failures = Vec::new();
    for addr in &cfg.addrs {
        let name = match addr {
            Addr::Tcp(h, p) => format!("{h}:{p}"),
            Addr::Unix(d, p) => format!("{}/.s.PGSQL.{p}", d.display()),
        };
        if deadline.passed() {
            failures.push(format!("{name}: connect timeout"));
            break;
        }
        match attempt(cfg, addr, tls.as_ref(), deadline) {
            Ok(inner) => return Ok(inner),
            Err(why) => failures.push(format!("{name}: {why}")),
        }
    }
    Err(PgError::Connect(failures.join("; ")))
}

/// The socket to one address.
fn open(addr: &Addr, deadline: Deadline) -> Result<Sock, String> {
    match addr {
        Addr::Unix(dir, port) => {
            check_socket_dir(dir)?;
            let path = dir.join(format!(".s.PGSQL.{port}"));
            // A local connect does not block on the network.
            UnixStream::connect(&path)
                .map(Sock::Unix)
                .map_err(|e| e.to_string())
        }
        Addr::Tcp(host, port) => {
            // getaddrinfo on the calling thread (as p2fa_net::transport):
            // bounded by the resolver's settings, not by the deadline.
            let addrs: Vec<_> = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve: {e}"))?
                .collect();
            let mut last = "the host has no address".to_string();
            for sa in addrs {
                let left = deadline.remaining();
                if left.is_zero() {
                    return Err("connect timeout".into());
                }
                match TcpStream::connect_timeout(&sa, left) {
                    Ok(tcp) => {
                        let _ = tcp.set_nodelay(true);
                        return Ok(Sock::Tcp(tcp));
                    }
                    Err(e) => last = format!("{sa}: {}", super::stream::describe(&e)),
                }
            }
            Err(last)
        }
    }
}

fn text(e: PgError) -> String {
    match e {
        PgError::Connect(m) | PgError::Lost(m) => m,
        PgError::Server { code, message } => format!("{message} (SQLSTATE {code})"),
    }
}

/// One address: socket, TLS, startup, authentication, and the primary
/// check. Every failure is a sentence for the caller's log.
fn attempt(
    cfg: &ConnectConfig,
    addr: &Addr,
    tls: Option<&Arc<rustls::ClientConfig>>,
    deadline: Deadline,
) -> Result<Inner, String> {
    let sock = open(addr, deadline)?;
    let mut io = Framed::new(Stream::Plain(Bounded { sock, deadline }));
    if let (Some(config), Addr::Tcp(host, _)) = (tls, addr) {
        let name = ServerName::try_from(host.clone())
            .map_err(|_| "the host is no valid name for TLS".to_string())?;
        let mut req = Vec::new();
        msg::put(&mut req, 0, |b| msg::i32(b, msg::SSL_REQUEST));
        io.write_all(&req).map_err(text)?;
        match io.read_byte().map_err(text)? {
            b'S' => {}
            b'N' => return Err("the server does not offer TLS".into()),
            _ => return Err("the server answered the TLS request with nonsense".into()),
        }
        let Framed { stream, .. } = io;
        io = Framed::new(stream.into_tls(config, name)?);
    }
    let mut startup = Vec::new();
    msg::put(&mut startup, 0, |b| {
        msg::i32(b, msg::PROTOCOL_3_0);
        for (k, v) in [
            ("user", &cfg.user),
            ("database", &cfg.dbname),
            ("application_name", &cfg.application_name),
        ] {
            msg::cstr(b, k);
            msg::cstr(b, v);
        }
        b.push(0);
    });
    io.write_all(&startup).map_err(text)?;
    authenticate(&mut io, cfg)?;
    let mut inner = Inner {
        io,
        status: TxStatus::Idle,
        params: Vec::new(),
    };
    // ParameterStatus, BackendKeyData, then ReadyForQuery.
    loop {
        let (tag, body) = inner.io.read_msg().map_err(text)?;
        match tag {
            b'S' => inner.set_param(&body).map_err(text)?,
            b'K' | b'N' => {}
            b'E' => return Err(server_error(&body)),
            b'Z' => {
                inner.set_status(&body).map_err(text)?;
                break;
            }
            t => return Err(format!("unexpected message {:?} at startup", t as char)),
        }
    }
    if cfg.require_primary {
        let standby = match inner.param("in_hot_standby") {
            Some(v) => v == "on",
            None => {
                let out = inner
                    .pipeline(&[("SELECT pg_is_in_recovery()", &[])], deadline)
                    .map_err(text)?;
                match out.first().and_then(|o| o.rows.first()) {
                    Some(row) => row.bool(0).map_err(text)?,
                    None => return Err("pg_is_in_recovery() returned no row".into()),
                }
            }
        };
        if standby {
            return Err("a standby (in recovery), and a primary is needed".into());
        }
    }
    Ok(inner)
}

fn server_error(body: &[u8]) -> String {
    match msg::error_fields(body) {
        Ok((code, message)) => format!("{message} (SQLSTATE {code})"),
        Err(_) => "a malformed error from the server".into(),
    }
}

/// The authentication exchange, up to AuthenticationOk.
fn authenticate(io: &mut Framed, cfg: &ConnectConfig) -> Result<(), String> {
    let secure_channel = io.stream.is_tls() || io.stream.is_unix();
    let mut scram: Option<Scram> = None;
    let mut plus = false;
    let mut scram_done = false;
    let password = || {
        cfg.password
            .clone()
            .ok_or_else(|| "the server asks for a password and none is configured".to_string())
    };
    loop {
        let (tag, body) = io.read_msg().map_err(text)?;
        match tag {
            b'E' => return Err(server_error(&body)),
            b'N' => continue,
            b'R' => {}
            t => {
                return Err(format!(
                    "unexpected message {:?} during authentication",
                    t as char
                ));
            }
        }
        let mut r = Reader::new(&body);
        match r.i32().map_err(text)? {
            0 => {
                if scram.is_some() && !scram_done {
                    return Err(
                        "the server skipped the end of SCRAM (it did not prove it knows the password)"
                            .into(),
                    );
                }
                if cfg.channel_binding == ChannelBinding::Require && !plus {
                    return Err(
                        "channel binding is required, but the server authenticated us without it"
                            .into(),
                    );
                }
                return Ok(());
            }
            3 => {
                if !secure_channel {
                    return Err(
                        "the server asks for the password in clear text over a connection without TLS; refused"
                            .into(),
                    );
                }
                if cfg.channel_binding == ChannelBinding::Require {
                    return Err(
                        "channel binding is required, but the server asks for a clear-text password"
                            .into(),
                    );
                }
                let pw = password()?;
                // Sized up front: no copy of the password is left behind
                // in a freed buffer.
                let mut out = Zeroizing::new(Vec::with_capacity(pw.len() + 8));
                msg::put(&mut out, b'p', |b| msg::cstr(b, &pw));
                io.write_all(&out).map_err(text)?;
            }
            5 => {
                return Err(
                    "the server asks for MD5 password authentication, which is refused: an MD5 hash \
                     is as good as the password to whoever reads it, and the server proves nothing \
                     (use scram-sha-256 in pg_hba.conf and password_encryption)"
                        .into(),
                );
            }
            10 => {
                if scram.is_some() {
                    return Err("the server restarted SASL".into());
                }
                let mut mechs = Vec::new();
                loop {
                    let m = r.cstr().map_err(text)?;
                    if m.is_empty() {
                        break;
                    }
                    mechs.push(m);
                }
                let has = |m: &str| mechs.iter().any(|x| x == m);
                let cert_hash = io.stream.server_cert().and_then(scram::server_end_point);
                let (mech, binding) = match (cfg.channel_binding, cert_hash) {
                    (ChannelBinding::Disable, _) => ("SCRAM-SHA-256", Binding::None),
                    (_, Some(hash)) if has("SCRAM-SHA-256-PLUS") => {
                        plus = true;
                        ("SCRAM-SHA-256-PLUS", Binding::Plus(hash))
                    }
                    (ChannelBinding::Require, _) => {
                        return Err(if io.stream.is_tls() {
                            "channel binding is required, but the server does not offer SCRAM-SHA-256-PLUS \
                             (or its certificate's signature hash is not usable for it)"
                                .into()
                        } else {
                            "channel binding is required, which needs TLS".into()
                        });
                    }
                    // 'y' tells the server we could bind but it offered no
                    // -PLUS (a server that did would see a downgrade); a
                    // certificate whose hash we cannot take is 'n'.
                    (ChannelBinding::Prefer, _)
                        if io.stream.is_tls() && !has("SCRAM-SHA-256-PLUS") =>
                    {
                        ("SCRAM-SHA-256", Binding::NotOffered)
                    }
                    (ChannelBinding::Prefer, _) => ("SCRAM-SHA-256", Binding::None),
                };
                if !has("SCRAM-SHA-256") && !plus {
                    return Err(format!(
                        "the server offers only SASL mechanisms we do not speak: {}",
                        mechs.join(", ")
                    ));
                }
                let s = Scram::new("", password()?, Scram::random_nonce()?, binding);
                let first = s.client_first();
                let mut out = Vec::new();
                msg::put(&mut out, b'p', |b| {
                    msg::cstr(b, mech);
                    msg::i32(b, i32::try_from(first.len()).unwrap_or(i32::MAX));
                    b.extend_from_slice(first.as_bytes());
                });
                io.write_all(&out).map_err(text)?;
                scram = Some(s);
            }
            11 => {
                let s = scram
                    .as_mut()
                    .ok_or("SASLContinue without SASL".to_string())?;
                let last = Zeroizing::new(s.client_final(r.rest())?);
                let mut out = Zeroizing::new(Vec::new());
                msg::put(&mut out, b'p', |b| b.extend_from_slice(last.as_bytes()));
                io.write_all(&out).map_err(text)?;
            }
            12 => {
                let s = scram.as_ref().ok_or("SASLFinal without SASL".to_string())?;
                s.verify_server_final(r.rest())?;
                scram_done = true;
            }
            n => {
                return Err(format!(
                    "the server asks for an authentication method we do not speak ({n})"
                ));
            }
        }
    }
}

impl Inner {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn set_param(&mut self, body: &[u8]) -> Result<(), PgError> {
        let (k, v) = msg::parameter_status(body)?;
        match self.params.iter_mut().find(|(n, _)| *n == k) {
            Some(slot) => slot.1 = v,
            None => self.params.push((k, v)),
        }
        Ok(())
    }

    fn set_status(&mut self, body: &[u8]) -> Result<(), PgError> {
        self.status = match body {
            b"I" => TxStatus::Idle,
            b"T" => TxStatus::InTransaction,
            b"E" => TxStatus::Failed,
            _ => return Err(lost("malformed ReadyForQuery")),
        };
        Ok(())
    }

    pub fn pipeline(
        &mut self,
        stmts: &[(&str, &[Value<'_>])],
        deadline: Deadline,
    ) -> Result<Vec<Outcome>, PgError> {
        let mut out = Vec::new();
        for (sql, params) in stmts {
            // Nothing was sent: the connection is as good as before.
            msg::extended(&mut out, sql, params).map_err(|m| PgError::Server {
                code: "22023".into(),
                message: m,
            })?;
        }
        msg::put(&mut out, b'S', |_| {});
        self.io.start_call(deadline);
        self.io.write_all(&out)?;
        let mut results = Vec::new();
        let mut current = Outcome::default();
        let mut types: Arc<[u32]> = Arc::from(Vec::new());
        let mut error = None;
        loop {
            let (tag, body) = self.io.read_msg()?;
            match tag {
                b'1' | b'2' | b'n' | b'N' | b'A' => {}
                b'T' => types = Arc::from(msg::row_description(&body)?),
                b'D' => {
                    let values = msg::data_row(&body)?;
                    if values.len() != types.len() {
                        return Err(lost("a row that does not match its description"));
                    }
                    current.rows.push(Row {
                        types: Arc::clone(&types),
                        values,
                    });
                }
                b'C' | b'I' => {
                    if tag == b'C' {
                        current.affected = msg::affected(&body)?;
                    }
                    results.push(std::mem::take(&mut current));
                    types = Arc::from(Vec::new());
                }
                b'E' => {
                    if error.is_none() {
                        let (code, message) = msg::error_fields(&body)?;
                        error = Some(PgError::Server { code, message });
                    }
                }
                b'S' => self.set_param(&body)?,
                b'Z' => {
                    self.set_status(&body)?;
                    break;
                }
                t => return Err(lost(format!("unexpected message {:?}", t as char))),
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        if results.len() != stmts.len() {
            return Err(lost(format!(
                "{} results for {} statements",
                results.len(),
                stmts.len()
            )));
        }
        Ok(results)
    }

    pub fn simple(&mut self, sql: &str, deadline: Deadline) -> Result<(), PgError> {
        if sql.contains('\0') {
            return Err(PgError::Server {
                code: "22023".into(),
                message: "a statement holds a NUL byte".into(),
            });
        }
        let mut out = Vec::new();
        msg::put(&mut out, b'Q', |b| msg::cstr(b, sql));
        self.io.start_call(deadline);
        self.io.write_all(&out)?;
        let mut error = None;
        loop {
            let (tag, body) = self.io.read_msg()?;
            match tag {
                b'T' | b'D' | b'C' | b'I' | b'N' | b'A' => {}
                b'E' => {
                    if error.is_none() {
                        let (code, message) = msg::error_fields(&body)?;
                        error = Some(PgError::Server { code, message });
                    }
                }
                b'S' => self.set_param(&body)?,
                b'Z' => {
                    self.set_status(&body)?;
                    break;
                }
                // COPY is never used; a server starting one is confused.
                t => return Err(lost(format!("unexpected message {:?}", t as char))),
            }
        }
        error.map_or(Ok(()), Err)
    }

    /// Terminate, best effort, within `limit`.
    pub fn terminate(&mut self, limit: Duration) {
        let mut out = Vec::new();
        msg::put(&mut out, b'X', |_| {});
        self.io.start_call(Deadline::after(limit));
        let _ = self.io.write_all(&out);
        if let Stream::Tls(s) = &mut self.io.stream {
            s.conn.send_close_notify();
            let _ = std::io::Write::flush(s);
        }
    }
}
