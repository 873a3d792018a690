//! The socket under one deadline, plain or TLS, and message framing.
//!
//! Every read and write waits at most for what is left of the current
//! deadline (the socket's timeout is set to it before each system call, as
//! in `p2fa_net::smtp`), so a server trickling a byte at a time cannot
//! stretch a call past it. Writes go through `send(MSG_NOSIGNAL)` for TCP
//! and Unix sockets alike: the module runs inside sshd, sudo and su, whose
//! SIGPIPE handling is theirs, so a peer that closed the connection must be
//! an error here, never a signal.

use super::PgError;
use p2fa_core::clock::Deadline;
use rustls::ClientConnection;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

/// Largest message we accept from the server (type byte not counted).
/// Nothing this client reads comes near it; a larger length is a broken
/// or hostile server, and refusing it bounds our memory.
pub const MAX_MESSAGE: usize = 1024 * 1024;

/// Most bytes we read from the server for one call (connecting counts as
/// one): the deadline bounds the time, this the memory a server flooding
/// us with rows or notices could make the PAM host allocate.
pub const MAX_CALL_BYTES: usize = 64 * 1024 * 1024;

pub enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A socket whose every read and write is bounded by `deadline`.
pub struct Bounded {
    pub sock: Sock,
    pub deadline: Deadline,
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
            let left = self.left()?;
            let r = match &mut self.sock {
                Sock::Tcp(s) => s.set_read_timeout(Some(left)).and_then(|()| s.read(buf)),
                Sock::Unix(s) => s.set_read_timeout(Some(left)).and_then(|()| s.read(buf)),
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use nix::sys::socket::{MsgFlags, send};
        loop {
            let left = self.left()?;
            let fd = match &self.sock {
                Sock::Tcp(s) => {
                    s.set_write_timeout(Some(left))?;
                    s.as_fd().as_raw_fd()
                }
                Sock::Unix(s) => {
                    s.set_write_timeout(Some(left))?;
                    s.as_fd().as_raw_fd()
                }
            };
            match send(fd, buf, MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => return Ok(n),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(io::Error::from(e)),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The connection, clear or TLS.
pub enum Stream {
    Plain(Bounded),
    Tls(Box<rustls::StreamOwned<ClientConnection, Bounded>>),
}

impl Stream {
    pub fn bounded(&mut self) -> &mut Bounded {
        match self {
            Stream::Plain(b) => b,
            Stream::Tls(s) => &mut s.sock,
        }
    }

    pub fn set_deadline(&mut self, deadline: Deadline) {
        self.bounded().deadline = deadline;
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    pub fn is_unix(&self) -> bool {
        match self {
            Stream::Plain(b) => matches!(b.sock, Sock::Unix(_)),
            Stream::Tls(s) => matches!(s.sock.sock, Sock::Unix(_)),
        }
    }

    /// The server's certificate (the first of its chain), once TLS is up.
    pub fn server_cert(&self) -> Option<&[u8]> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(s) => s.conn.peer_certificates()?.first().map(|c| c.as_ref()),
        }
    }

    /// TLS over this clear connection, the handshake done here so that a
    /// certificate we do not accept is reported as such.
    pub fn into_tls(
        self,
        config: &Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    ) -> Result<Stream, String> {
        let Stream::Plain(mut sock) = self else {
            return Err("TLS is already on".into());
        };
        let mut conn = ClientConnection::new(Arc::clone(config), name)
            .map_err(|e| format!("TLS setup: {e}"))?;
        while conn.is_handshaking() {
            match conn.complete_io(&mut sock) {
                Ok((0, 0)) if conn.is_handshaking() => {
                    return Err("the server closed the connection during the TLS handshake".into());
                }
                Ok(_) => {}
                Err(e) => return Err(format!("TLS handshake: {}", describe(&e))),
            }
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

/// An I/O error in words; a timeout is the deadline.
pub fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".into(),
        io::ErrorKind::UnexpectedEof => "the server closed the connection".into(),
        _ => e.to_string(),
    }
}

/// A stream with a read buffer, reading whole backend messages.
pub struct Framed {
    pub stream: Stream,
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    pos: usize,
    /// Bytes the current call may still read ([`MAX_CALL_BYTES`]).
    budget: usize,
}

impl Framed {
    pub fn new(stream: Stream) -> Framed {
        Framed {
            stream,
            buf: Vec::new(),
            pos: 0,
            budget: MAX_CALL_BYTES,
        }
    }

    /// A new call: a new deadline and a fresh read budget.
    pub fn start_call(&mut self, deadline: Deadline) {
        self.stream.set_deadline(deadline);
        self.budget = MAX_CALL_BYTES;
    }

    fn fill(&mut self, want: usize) -> Result<(), PgError> {
        if self.pos > 0 && self.buf.len() - self.pos < want {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        while self.buf.len() - self.pos < want {
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(PgError::Lost("the server closed the connection".into())),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(PgError::Lost(describe(&e))),
            }
        }
        Ok(())
    }

    /// One byte (the SSLRequest answer), read from the socket alone so
    /// nothing after it is buffered in the clear.
    pub fn read_byte(&mut self) -> Result<u8, PgError> {
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => Err(PgError::Lost("the server closed the connection".into())),
            Ok(_) => Ok(b[0]),
            Err(e) => Err(PgError::Lost(describe(&e))),
        }
    }

    /// One message: its type byte and body.
    pub fn read_msg(&mut self) -> Result<(u8, Vec<u8>), PgError> {
        self.fill(5)?;
        let head = &self.buf[self.pos..self.pos + 5];
        let tag = head[0];
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len < 4 {
            return Err(PgError::Lost(format!("malformed message length {len}")));
        }
        if len > MAX_MESSAGE {
            return Err(PgError::Lost(format!(
                "a message of {len} bytes (more than {MAX_MESSAGE})"
            )));
        }
        self.budget = self.budget.checked_sub(1 + len).ok_or_else(|| {
            PgError::Lost(format!(
                "the server sent more than {MAX_CALL_BYTES} bytes for one call"
            ))
        })?;
        self.fill(1 + len)?;
        let body = self.buf[self.pos + 5..self.pos + 1 + len].to_vec();
        self.pos += 1 + len;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        Ok((tag, body))
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), PgError> {
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|e| PgError::Lost(describe(&e)))
    }
}
