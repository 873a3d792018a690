//! The client side of the 2fad socket: one request, one answer, with a
//! deadline; for the PAM module (which first checks that root serves the
//! socket), `2fa-enroll` and the tests.

use super::protocol::{self, Request, Response};
use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long `2fa-enroll` waits for an answer.
const CLI_WAIT: Duration = Duration::from_secs(120);
/// How long the PAM module waits for 2fad's answer: a hung daemon must
/// not hold a login for minutes.
const MODULE_WAIT: Duration = Duration::from_secs(10);

/// The uid of the process at the other end, from SO_PEERCRED.
pub fn peer_uid(s: &UnixStream) -> io::Result<u32> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(s, PeerCredentials)
        .map(|c| c.uid())
        .map_err(io::Error::from)
}

/// One request/response round trip, for `2fa-enroll` and tests.
pub fn call(path: &Path, req: &Request) -> io::Result<Response> {
    call_checked(path, req, false, CLI_WAIT)
}

/// [`call`] that first makes sure the process serving the socket runs as
/// root, so a socket planted by someone else is never trusted with a login
/// (the PAM module uses this).
pub fn call_root(path: &Path, req: &Request) -> io::Result<Response> {
    call_checked(path, req, true, MODULE_WAIT)
}

fn call_checked(
    path: &Path,
    req: &Request,
    need_root: bool,
    wait: Duration,
) -> io::Result<Response> {
    let mut s = UnixStream::connect(path)?;
    s.set_write_timeout(Some(wait))?;
    if need_root {
        let uid = peer_uid(&s)?;
        if uid != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the process serving {} runs as uid {uid}, not root",
                    path.display()
                ),
            ));
        }
    }
    s.set_read_timeout(Some(wait))?;
    // A busy 2fad answers before reading and hangs up: the answer is
    // still there to read after a failed write.
    let sent = send_nosignal(&s, req);
    match protocol::read_frame(&mut s) {
        Ok(Some(frame)) => serde_json::from_slice(&frame)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Ok(None) => Err(sent.err().unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "2fad closed the connection")
        })),
        Err(e) => Err(sent.err().unwrap_or(e)),
    }
}

/// Writes a request frame with MSG_NOSIGNAL: the PAM module runs inside
/// other programs (sshd, sudo), whose SIGPIPE handling is theirs, so a
/// closed socket must be an error here, never a signal.
fn send_nosignal(s: &UnixStream, req: &Request) -> io::Result<()> {
    use nix::sys::socket::{MsgFlags, send};
    use std::os::fd::AsRawFd;
    let data = serde_json::to_vec(req).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + data.len());
    protocol::write_frame(&mut frame, &data)?;
    let mut off = 0;
    while off < frame.len() {
        match send(s.as_raw_fd(), &frame[off..], MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => off += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    Ok(())
}
