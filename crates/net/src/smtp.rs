//! One message over SMTP, on the calling thread, under one deadline.
//!
//! lettre builds the message, the envelope and the command lines
//! ([`crate::email`]); this module holds the conversation. It exists
//! because lettre's blocking transport bounds each socket read, not the
//! whole send: a server that trickles a long multi-line reply (a `250-`
//! line every few hundred milliseconds) restarts that timeout with every
//! line and holds the login for as long as it likes, and lettre's async
//! transport needs a runtime. Here every read and write on the socket
//! ([`Bounded`]) waits at most for what is left of the one deadline, so
//! the whole send, TLS handshakes and a trickled reply included, ends by
//! it; a send never touches another connection (two logins in one process
//! time out independently).
//!
//! What the deadline does not cover: the name lookup (`getaddrinfo` on
//! the calling thread, bounded by the resolver's own settings; a relay
//! given as an IP address is not looked up).
//!
//! The protocol (RFC 5321): greeting, EHLO, STARTTLS when asked for
//! (required: a server that does not offer it gets nothing more; anything
//! the server sent after its answer to STARTTLS is refused, not read as if
//! it came over TLS), EHLO again, AUTH PLAIN or LOGIN (only over TLS),
//! MAIL, RCPT, DATA with the message's line ends made CRLF and its dots
//! stuffed, QUIT. Replies are read line by line with a cap on the length
//! of a line and on the number of lines.

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::commands::{Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, MailBodyParameter, MailParameter};
use p2fa_core::clock::Deadline;
use rustls::ClientConnection;
use rustls::pki_types::ServerName;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// Longest reply line we accept (RFC 5321 allows 512; Postfix's limit).
const MAX_LINE: usize = 1000;
/// Most lines in one reply (an EHLO answer has a dozen or two).
const MAX_LINES: usize = 100;

/// How the connection is protected.
pub enum Security {
    /// Clear text (a loopback relay only; config validation sees to it).
    Plain,
    /// STARTTLS, required.
    StartTls(Arc<rustls::ClientConfig>),
    /// TLS from the first byte.
    Tls(Arc<rustls::ClientConfig>),
}

/// Where and how to send.
pub struct Relay<'a> {
    pub host: &'a str,
    pub port: u16,
    pub security: Security,
    /// Bound on each TCP connect attempt (and never past `deadline`).
    pub connect_timeout: Duration,
    /// The end of the whole send.
    pub deadline: Deadline,
}

/// Why a send failed.
#[derive(Debug, PartialEq, Eq)]
pub enum SmtpError {
    /// The deadline passed: the server was too slow somewhere.
    Deadline,
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// Anything else, described for the log (the server's own words
    /// included; never our credentials or the message).
    Failed(String),
}

fn failed(m: impl Into<String>) -> SmtpError {
    SmtpError::Failed(m.into())
}

/// A timeout on the socket is the deadline (every wait is bounded by it);
/// a TLS failure says so.
fn io_error(e: io::Error) -> SmtpError {
    if matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        return SmtpError::Deadline;
    }
    match crate::transport::tls_failure(&e) {
        Some(t) => failed(format!("TLS: {t}")),
        None => failed(e.to_string()),
    }
}

/// Sends `message` (already formatted, as lettre's `Message::formatted`)
/// to the envelope's recipients; AUTH when `credentials` are given.
pub fn send(
    relay: &Relay,
    credentials: Option<&Credentials>,
    envelope: &Envelope,
    message: &[u8],
) -> Result<(), SmtpError> {
    let tcp = connect(relay)?;
    let plain = Stream::Plain(Bounded {
        tcp,
        deadline: relay.deadline,
    });
    let mut conn = match &relay.security {
        Security::Tls(config) => Conn::new(plain.into_tls(config, relay.host)?),
        _ => Conn::new(plain),
    };
    let greeting = conn.reply()?;
    conn.expect("greeting", &greeting, 2)?;
    let mut caps = conn.ehlo()?;
    if let Security::StartTls(config) = &relay.security {
        if !caps.starttls {
            return Err(failed(
                "STARTTLS is required but the server does not offer it; nothing was sent",
            ));
        }
        let r = conn.command("STARTTLS\r\n")?;
        conn.expect("STARTTLS", &r, 2)?;
        conn = conn.into_tls(config, relay.host)?;
        caps = conn.ehlo()?;
    }
    if let Some(credentials) = credentials {
        if !conn.stream.is_tls() {
            return Err(failed("AUTH refused: the connection is not encrypted"));
        }
        conn.auth(&caps, credentials)?;
    }
    let mut params = Vec::new();
    let non_ascii = |a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii();
    if envelope.from().is_some_and(non_ascii) || envelope.to().iter().any(non_ascii) {
        if !caps.smtputf8 {
            return Err(failed(
                "an address is not ASCII and the server does not offer SMTPUTF8",
            ));
        }
        params.push(MailParameter::SmtpUtfEight);
    }
    if !message.is_ascii() {
        if !caps.eight_bit_mime {
            return Err(failed(
                "the message is not ASCII and the server does not offer 8BITMIME",
            ));
        }
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let r = conn.command(&Mail::new(envelope.from().cloned(), params).to_string())?;
    conn.expect("MAIL FROM", &r, 2)?;
    for to in envelope.to() {
        let r = conn.command(&Rcpt::new(to.clone(), vec![]).to_string())?;
        conn.expect("RCPT TO", &r, 2)?;
    }
    let r = conn.command("DATA\r\n")?;
    conn.expect("DATA", &r, 3)?;
    // The message holds the code.
    conn.write(&Zeroizing::new(data_block(message)))?;
    let r = conn.reply()?;
    conn.expect("the message", &r, 2)?;
    // Delivered. QUIT is a courtesy: its answer is not waited for.
    let _ = conn.write(b"QUIT\r\n");
    Ok(())
}

/// The TCP connection: every address of the host in turn, each attempt
/// bounded by the connect timeout and the deadline.
fn connect(relay: &Relay) -> Result<TcpStream, SmtpError> {
    let addrs: Vec<SocketAddr> = (relay.host, relay.port)
        .to_socket_addrs()
        .map_err(|e| failed(format!("cannot resolve the host: {e}")))?
        .collect();
    let mut last = failed("the host has no address");
    for addr in addrs {
        let left = relay.deadline.remaining();
        if left.is_zero() {
            return Err(SmtpError::Deadline);
        }
        let limit = relay.connect_timeout.min(left);
        match TcpStream::connect_timeout(&addr, limit) {
            Ok(tcp) => return Ok(tcp),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                last = if limit < relay.connect_timeout {
                    SmtpError::Deadline
                } else {
                    SmtpError::ConnectTimeout
                };
            }
            Err(e) => last = failed(e.to_string()),
        }
    }
    Err(last)
}

/// A TCP socket whose every read and write waits at most until the
/// deadline (the socket's timeout is set to what is left before each
/// call). Writes go through std's `write`, which sends with
/// `MSG_NOSIGNAL`: a peer that resets the connection makes the write fail
/// instead of raising SIGPIPE in the host process (`write_vectored` is
/// left at its default, which calls `write`; std's own would use `writev`,
/// which has no such flag).
struct Bounded {
    tcp: TcpStream,
    deadline: Deadline,
}

impl Bounded {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.remaining();
        if left.is_zero() {
            Err(io::ErrorKind::TimedOut.into())
        } else {
            Ok(left)
        }
    }
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            self.tcp.set_read_timeout(Some(self.left()?))?;
            match self.tcp.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            self.tcp.set_write_timeout(Some(self.left()?))?;
            match self.tcp.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

enum Stream {
    Plain(Bounded),
    Tls(Box<rustls::StreamOwned<ClientConnection, Bounded>>),
}

impl Stream {
    fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// TLS over this (clear) connection, the handshake done here so that a
    /// certificate we do not accept is reported as such.
    fn into_tls(self, config: &Arc<rustls::ClientConfig>, host: &str) -> Result<Stream, SmtpError> {
        let Stream::Plain(mut sock) = self else {
            return Err(failed("TLS is already on"));
        };
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| failed("the host is no valid name for TLS"))?;
        let mut conn = ClientConnection::new(Arc::clone(config), name)
            .map_err(|e| failed(format!("TLS setup: {e}")))?;
        conn.complete_io(&mut sock).map_err(io_error)?;
        if conn.is_handshaking() {
            return Err(failed("the TLS handshake did not complete"));
        }
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, sock))))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A server reply: its code and its lines' text.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    /// The code and text on one line, for the log.
    fn describe(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" ").trim())
    }
}

/// What the server offers (its EHLO answer).
#[derive(Debug, Default, PartialEq, Eq)]
struct Capabilities {
    starttls: bool,
    auth_plain: bool,
    auth_login: bool,
    eight_bit_mime: bool,
    smtputf8: bool,
}

impl Capabilities {
    fn of(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities::default();
        // The first line is the server's name and greeting.
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            match words.next().map(str::to_ascii_uppercase).as_deref() {
                Some("STARTTLS") => caps.starttls = true,
                Some("8BITMIME") => caps.eight_bit_mime = true,
                Some("SMTPUTF8") => caps.smtputf8 = true,
                Some("AUTH") => {
                    for m in words {
                        match m.to_ascii_uppercase().as_str() {
                            "PLAIN" => caps.auth_plain = true,
                            "LOGIN" => caps.auth_login = true,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        caps
    }
}

struct Conn {
    stream: Stream,
    /// Bytes read from the server and not yet taken as a line.
    input: Vec<u8>,
}

impl Conn {
    fn new(stream: Stream) -> Conn {
        Conn {
            stream,
            input: Vec::new(),
        }
    }

    fn into_tls(self, config: &Arc<rustls::ClientConfig>, host: &str) -> Result<Conn, SmtpError> {
        // Whatever came after the answer to STARTTLS was sent in clear and
        // would be taken for the first answers over TLS (CVE-2011-0411 and
        // its kin): refuse it.
        if !self.input.is_empty() {
            return Err(failed(
                "the server sent more after its answer to STARTTLS; refused",
            ));
        }
        Ok(Conn::new(self.stream.into_tls(config, host)?))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), SmtpError> {
        self.stream.write_all(bytes).map_err(io_error)?;
        self.stream.flush().map_err(io_error)
    }

    /// Sends one command line (with its CRLF) and reads the reply.
    fn command(&mut self, line: &str) -> Result<Reply, SmtpError> {
        self.write(line.as_bytes())?;
        self.reply()
    }

    /// Refuses a reply whose code is not in the hundred `class` (2: done,
    /// 3: go on).
    fn expect(&self, what: &str, reply: &Reply, class: u16) -> Result<(), SmtpError> {
        if reply.code / 100 == class {
            Ok(())
        } else {
            Err(failed(format!("{what} refused: {}", reply.describe())))
        }
    }

    fn ehlo(&mut self) -> Result<Capabilities, SmtpError> {
        let r = self.command(&Ehlo::new(ClientId::default()).to_string())?;
        self.expect("EHLO", &r, 2)?;
        Ok(Capabilities::of(&r))
    }

    /// AUTH PLAIN, or LOGIN when the server offers only that.
    fn auth(&mut self, caps: &Capabilities, credentials: &Credentials) -> Result<(), SmtpError> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let answer = |m: Mechanism, challenge: Option<&str>| {
            m.response(credentials, challenge)
                .map(|r| Zeroizing::new(b64.encode(Zeroizing::new(r).as_bytes())))
                .map_err(|_| failed("AUTH: the server's challenge is not one we answer"))
        };
        let mut reply = if caps.auth_plain {
            let first = answer(Mechanism::Plain, None)?;
            self.command(&Zeroizing::new(format!(
                "AUTH PLAIN {}\r\n",
                first.as_str()
            )))?
        } else if caps.auth_login {
            self.command("AUTH LOGIN\r\n")?
        } else {
            return Err(failed(
                "the server offers neither AUTH PLAIN nor AUTH LOGIN",
            ));
        };
        // LOGIN asks for the user name, then the password.
        for _ in 0..3 {
            if reply.code != 334 || caps.auth_plain {
                break;
            }
            let challenge = reply
                .lines
                .first()
                .and_then(|l| l.split_whitespace().next())
                .and_then(|w| b64.decode(w).ok())
                .and_then(|c| String::from_utf8(c).ok())
                .ok_or_else(|| failed("AUTH: the server's challenge is not base64"))?;
            let next = answer(Mechanism::Login, Some(&challenge))?;
            reply = self.command(&Zeroizing::new(format!("{}\r\n", next.as_str())))?;
        }
        if reply.code == 235 {
            Ok(())
        } else {
            Err(failed(format!("AUTH refused: {}", reply.describe())))
        }
    }

    /// One line from the server, without its line end.
    fn line(&mut self) -> Result<Vec<u8>, SmtpError> {
        loop {
            if let Some(end) = self.input.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.input.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.input.len() > MAX_LINE {
                return Err(failed(format!("a reply line longer than {MAX_LINE} bytes")));
            }
            let mut chunk = [0u8; 1024];
            let n = self.stream.read(&mut chunk).map_err(io_error)?;
            if n == 0 {
                return Err(failed("the server closed the connection"));
            }
            self.input.extend_from_slice(&chunk[..n]);
        }
    }

    /// One reply: `NNN-text` lines up to the `NNN text` (or bare `NNN`)
    /// that ends it, all with the same code.
    fn reply(&mut self) -> Result<Reply, SmtpError> {
        let mut reply = Reply {
            code: 0,
            lines: Vec::new(),
        };
        loop {
            if reply.lines.len() == MAX_LINES {
                return Err(failed(format!("a reply of more than {MAX_LINES} lines")));
            }
            let raw = self.line()?;
            let text = String::from_utf8_lossy(&raw);
            let bad = || {
                failed(format!(
                    "not an SMTP reply: {:?}",
                    p2fa_core::audit::printable(&text, 80)
                ))
            };
            let code: u16 = text
                .get(..3)
                .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|c| c.parse().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(bad)?;
            if reply.code != 0 && reply.code != code {
                return Err(bad());
            }
            reply.code = code;
            let last = match raw.get(3) {
                None | Some(b' ') => true,
                Some(b'-') => false,
                Some(_) => return Err(bad()),
            };
            reply.lines.push(text.get(4..).unwrap_or("").to_string());
            if last {
                return Ok(reply);
            }
        }
    }
}

/// The DATA block: every line end made CRLF (a lone CR or LF could end
/// the data early at a server that takes it for one: SMTP smuggling), a
/// dot doubled at the start of a line, then the `.` line that ends it.
fn data_block(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut line_start = true;
    let mut i = 0;
    while i < message.len() {
        let b = message[i];
        match b {
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                // CRLF is one line end.
                if b == b'\r' && message.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                line_start = true;
            }
            _ => {
                if line_start && b == b'.' {
                    out.push(b'.');
                }
                out.push(b);
                line_start = false;
            }
        }
        i += 1;
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_dot_stuffed_with_crlf_line_ends() {
        assert_eq!(data_block(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(data_block(b".x"), b"..x\r\n.\r\n");
        // Lone LF and CR become CRLF, and what follows them is a line start.
        assert_eq!(data_block(b"a\n.\nb\r.\r"), b"a\r\n..\r\nb\r\n..\r\n.\r\n");
        assert_eq!(data_block(b""), b".\r\n");
        // A dot inside a line stays single.
        assert_eq!(data_block(b"a.b\r\n"), b"a.b\r\n.\r\n");
    }

    fn reply_of(bytes: &[u8]) -> Result<Reply, SmtpError> {
        // A connected pair: the server half is written, then closed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut server = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (client, _) = listener.accept().unwrap();
        server.write_all(bytes).unwrap();
        drop(server);
        let mut conn = Conn::new(Stream::Plain(Bounded {
            tcp: client,
            deadline: Deadline::after(Duration::from_secs(5)),
        }));
        conn.reply()
    }

    #[test]
    fn replies_are_read_line_by_line() {
        let r = reply_of(
            b"250-mail.example\r\n250-STARTTLS\r\n250-auth login Plain\r\n250 8BITMIME\r\n",
        )
        .unwrap();
        assert_eq!(r.code, 250);
        let caps = Capabilities::of(&r);
        assert!(caps.starttls && caps.auth_login && caps.auth_plain && caps.eight_bit_mime);
        assert!(!caps.smtputf8);
        assert_eq!(reply_of(b"354\r\n").unwrap().code, 354);
        // A lone space line, as a hostile EHLO answer might have.
        let r = reply_of(b"250-x\r\n250- \r\n250 \r\n").unwrap();
        assert_eq!(Capabilities::of(&r), Capabilities::default());
        for bad in [
            &b"250-a\r\n251 b\r\n"[..],
            b"25 x\r\n",
            b"abc\r\n",
            b"250x\r\n",
            b"199 too low\r\n",
        ] {
            assert!(
                matches!(reply_of(bad), Err(SmtpError::Failed(ref m)) if m.contains("not an SMTP reply")),
                "{bad:?}"
            );
        }
        let long = [b"250 ".as_slice(), &[b'a'; 2000]].concat();
        assert!(matches!(reply_of(&long), Err(SmtpError::Failed(ref m)) if m.contains("longer")));
        let many = b"250-x\r\n".repeat(200);
        assert!(matches!(reply_of(&many), Err(SmtpError::Failed(ref m)) if m.contains("lines")));
        assert!(
            matches!(reply_of(b"250-x\r\n"), Err(SmtpError::Failed(ref m)) if m.contains("closed"))
        );
    }

    #[test]
    fn a_trickled_reply_ends_at_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut server = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (client, _) = listener.accept().unwrap();
        let writer = std::thread::spawn(move || {
            for _ in 0..40 {
                if server.write_all(b"250-still here\r\n").is_err() {
                    break;
                }
                p2fa_core::clock::sleep(Duration::from_millis(50));
            }
        });
        let mut conn = Conn::new(Stream::Plain(Bounded {
            tcp: client,
            deadline: Deadline::after(Duration::from_millis(400)),
        }));
        let watch = p2fa_core::clock::Stopwatch::start();
        assert_eq!(conn.reply(), Err(SmtpError::Deadline));
        assert!(
            watch.elapsed() < Duration::from_millis(1500),
            "{:?}",
            watch.elapsed()
        );
        drop(conn);
        writer.join().unwrap();
    }
}
