//! The socket side of 2fad: bind (or take the socket systemd passed),
//! learn each peer's uid from the kernel, and serve frames on a thread per
//! connection, at most `daemon.max_clients` at once.

use super::broker::Broker;
use super::protocol::{self, Request, Response};
use crate::audit::Audit;
use crate::config::Config;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long a connection may sit idle between requests.
const IDLE: Duration = Duration::from_secs(120);
/// How long the PAM module waits for 2fad's answer: a hung daemon must
/// not hold a login for minutes.
const MODULE_WAIT: Duration = Duration::from_secs(10);

/// The listening socket: systemd's (socket activation) if it passed one,
/// else a fresh one at `path` (directory 0755 root, socket 0666).
pub fn listener(path: &Path) -> io::Result<UnixListener> {
    let mut fds = listenfd::ListenFd::from_env();
    if let Ok(Some(l)) = fds.take_unix_listener(0) {
        return Ok(l);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(l)
}

/// The uid of the process at the other end, from SO_PEERCRED.
pub fn peer_uid(s: &UnixStream) -> io::Result<u32> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(s, PeerCredentials)
        .map(|c| c.uid())
        .map_err(io::Error::from)
}

pub fn serve(cfg: Arc<Config>, listener: UnixListener) -> io::Result<()> {
    let mut broker = Broker::default();
    if cfg.webauthn.enabled {
        let c = Arc::new(super::webauthn::Ceremonies::new(&cfg).map_err(io::Error::other)?);
        super::web::start(cfg.clone(), c.clone()).map_err(io::Error::other)?;
        broker.ceremonies = Some(c);
    }
    let broker = Arc::new(broker);
    let busy = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                eprintln!("2fad: accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if busy.load(Ordering::SeqCst) >= cfg.daemon.max_clients as usize {
            let mut s = stream;
            let _ = protocol::send(
                &mut s,
                &Response::error("unavailable", "2fad is busy; try again"),
            );
            continue;
        }
        busy.fetch_add(1, Ordering::SeqCst);
        let (cfg, broker, busy) = (cfg.clone(), broker.clone(), busy.clone());
        std::thread::spawn(move || {
            let _ = connection(&cfg, &broker, stream);
            busy.fetch_sub(1, Ordering::SeqCst);
        });
    }
    Ok(())
}

fn connection(cfg: &Config, broker: &Broker, mut s: UnixStream) -> io::Result<()> {
    let uid = peer_uid(&s)?;
    s.set_read_timeout(Some(IDLE))?;
    s.set_write_timeout(Some(IDLE))?;
    let mut audit = Audit::new(&cfg.log_socket, "2fad", false);
    loop {
        let frame = match protocol::read_frame(&mut s) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(e) => {
                // Oversized or truncated: say why, then hang up.
                let _ = protocol::send(&mut s, &Response::error("bad_request", e.to_string()));
                return Ok(());
            }
        };
        let resp = match serde_json::from_slice::<Request>(&frame) {
            Ok(req) => broker.handle(cfg, &mut audit, uid, req),
            Err(e) => {
                let msg = format!("malformed request: {e}");
                protocol::send(&mut s, &Response::error("bad_request", msg))?;
                return Ok(());
            }
        };
        protocol::send(&mut s, &resp)?;
    }
}

/// One request/response round trip, for `2fa-enroll` and tests.
pub fn call(path: &Path, req: &Request) -> io::Result<Response> {
    call_checked(path, req, false, IDLE)
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
    protocol::send(&mut s, req)?;
    let frame = protocol::read_frame(&mut s)?.ok_or_else(|| {
        io::Error::new(io::ErrorKind::UnexpectedEof, "2fad closed the connection")
    })?;
    serde_json::from_slice(&frame).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
