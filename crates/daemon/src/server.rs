//! The socket side of 2fad: bind (or take the socket systemd passed),
//! learn each peer's uid from the kernel, and serve frames on a thread per
//! connection.
//!
//! Nobody can take 2fad away from the others: at most
//! `daemon.max_clients` connections at once, of which one ordinary user
//! holds at most `max_clients_per_user` and ordinary users together leave
//! `reserved_for_root` for root (the PAM module); every frame must arrive
//! whole within [`FRAME_DEADLINE`]; a client over a limit is answered
//! "busy" at once, never left with a broken pipe.

use super::broker::Broker;
use p2fa_core::audit::Audit;
use p2fa_core::clock::{self, Deadline};
use p2fa_core::config::{Config, DaemonConfig};
use p2fa_core::secure_fs::Trust;
use p2fa_proto::client::peer_uid;
use p2fa_proto::protocol::{self, ErrorCode, Request, Response};
use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one request frame may take to arrive, from the moment 2fad
/// waits for it (a connection that sends nothing is closed then too).
/// Real clients write a whole frame at once.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(5);
/// How long 2fad waits for a client to take its answer.
const WRITE_WAIT: Duration = Duration::from_secs(5);

/// Connections being served: in total, by ordinary users, and per uid.
#[derive(Default)]
struct Slots {
    total: usize,
    users: usize,
    per_uid: HashMap<u32, usize>,
}

impl Slots {
    /// Takes a slot for `uid`, or says why not.
    fn take(&mut self, cfg: &DaemonConfig, uid: u32) -> Result<(), &'static str> {
        let max = cfg.max_clients as usize;
        if self.total >= max {
            return Err("2fad is busy (every connection slot is in use); try again in a moment");
        }
        if uid != 0 {
            let mine = self.per_uid.get(&uid).copied().unwrap_or(0);
            if mine >= cfg.max_clients_per_user as usize {
                return Err(
                    "2fad is busy: you have too many connections open to it at once; close them or try again in a moment",
                );
            }
            if self.users >= max.saturating_sub(cfg.reserved_for_root as usize) {
                return Err(
                    "2fad is busy (all connection slots for users are in use); try again in a moment",
                );
            }
            *self.per_uid.entry(uid).or_default() += 1;
            self.users += 1;
        }
        self.total += 1;
        Ok(())
    }

    fn give_back(&mut self, uid: u32) {
        self.total = self.total.saturating_sub(1);
        if uid != 0
            && let Some(n) = self.per_uid.get_mut(&uid)
        {
            self.users = self.users.saturating_sub(1);
            *n -= 1;
            if *n == 0 {
                self.per_uid.remove(&uid);
            }
        }
    }
}

/// A slot held by one connection's thread, returned however it ends.
struct Held {
    slots: Arc<Mutex<Slots>>,
    uid: u32,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .give_back(self.uid);
    }
}

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
    // Bound and opened to all under a temporary name, then renamed into
    // place (replacing a stale socket): whoever finds the socket finds it
    // listening and 0666. Bound at `path` itself, a client in the moment
    // between bind and listen would be refused, and one before the chmod
    // denied, while 2fad starts.
    let tmp = path.with_file_name(format!(".2fad.{}", std::process::id()));
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = UnixListener::bind(&tmp)?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(l)
}

/// Serves the broker on `listener`; `trust` says whose files to believe
/// (`2fad` passes [`Trust::ROOT`]).
pub fn serve(cfg: Arc<Config>, trust: Trust, listener: UnixListener) -> io::Result<()> {
    let mut broker = Broker::new(trust);
    let mut web = None;
    if cfg.webauthn.enabled {
        let c = Arc::new(super::webauthn::Ceremonies::new(&cfg, trust).map_err(io::Error::other)?);
        let profiles = Arc::new(super::profile::session::Profiles::new(&cfg, trust));
        broker.ceremonies = Some(c.clone());
        broker.profiles = Some(profiles.clone());
        web = Some((c, profiles));
    }
    let broker = Arc::new(broker);
    // The web server acts through the broker (the profile page).
    if let Some((c, profiles)) = web {
        let site = Arc::new(super::profile::Site {
            cfg: cfg.clone(),
            broker: broker.clone(),
            profiles,
            ceremonies: c.clone(),
        });
        super::web::start(cfg.clone(), c, site).map_err(io::Error::other)?;
    }
    let slots = Arc::new(Mutex::new(Slots::default()));
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                eprintln!("2fad: accept: {e}");
                clock::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let Ok(uid) = peer_uid(&stream) else {
            continue;
        };
        let taken = slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(&cfg.daemon, uid);
        if let Err(why) = taken {
            busy(stream, why);
            continue;
        }
        let held = Held {
            slots: slots.clone(),
            uid,
        };
        let (cfg, broker) = (cfg.clone(), broker.clone());
        std::thread::spawn(move || {
            let _ = connection(&cfg, &broker, stream, uid);
            drop(held);
        });
    }
    Ok(())
}

/// Answers a client over a limit without blocking the accept loop: reads
/// whatever request it already sent (so closing does not reset the
/// connection under the answer), says "busy", and hangs up.
fn busy(mut s: UnixStream, why: &str) {
    if s.set_nonblocking(true).is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained <= protocol::MAX_FRAME + 4 {
        match s.read(&mut sink) {
            Ok(n) if n > 0 => drained += n,
            _ => break,
        }
    }
    let _ = protocol::send(&mut s, &Response::error(ErrorCode::Busy, why));
    let _ = s.shutdown(std::net::Shutdown::Write);
}

fn connection(cfg: &Config, broker: &Broker, mut s: UnixStream, uid: u32) -> io::Result<()> {
    s.set_write_timeout(Some(WRITE_WAIT))?;
    let mut audit = Audit::new(&cfg.log_socket, "2fad", false);
    loop {
        let frame = match protocol::read_frame_by(&s, Deadline::after(FRAME_DEADLINE)) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                let msg = format!(
                    "no complete request within {} seconds; closing",
                    FRAME_DEADLINE.as_secs()
                );
                let _ = protocol::send(&mut s, &Response::error(ErrorCode::BadRequest, msg));
                return Ok(());
            }
            Err(e) => {
                // Oversized or truncated: say why, then hang up.
                let _ = protocol::send(
                    &mut s,
                    &Response::error(ErrorCode::BadRequest, e.to_string()),
                );
                return Ok(());
            }
        };
        let resp = match serde_json::from_slice::<Request>(&frame) {
            Ok(req) => broker.handle(cfg, &mut audit, uid, req),
            Err(e) => {
                let msg = format!("malformed request: {e}");
                protocol::send(&mut s, &Response::error(ErrorCode::BadRequest, msg))?;
                return Ok(());
            }
        };
        protocol::send(&mut s, &resp)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_uid_gets_its_share_and_root_its_reserve() {
        let cfg = DaemonConfig {
            max_clients: 6,
            max_clients_per_user: 2,
            reserved_for_root: 2,
            ..DaemonConfig::default()
        };
        let mut s = Slots::default();
        assert!(s.take(&cfg, 1000).is_ok());
        assert!(s.take(&cfg, 1000).is_ok());
        assert!(
            s.take(&cfg, 1000)
                .unwrap_err()
                .contains("too many connections")
        );
        assert!(s.take(&cfg, 1001).is_ok());
        assert!(s.take(&cfg, 1001).is_ok());
        // Users together stop at max_clients - reserved_for_root ...
        assert!(s.take(&cfg, 1002).unwrap_err().contains("busy"));
        // ... root goes on to max_clients.
        assert!(s.take(&cfg, 0).is_ok());
        assert!(s.take(&cfg, 0).is_ok());
        assert!(s.take(&cfg, 0).is_err());
        s.give_back(1000);
        assert!(s.take(&cfg, 1002).is_ok());
        assert!(s.take(&cfg, 1000).is_err(), "all six in use");
        // A free root slot stays root's.
        s.give_back(0);
        assert!(s.take(&cfg, 1000).is_err());
        s.give_back(1002);
        assert!(s.take(&cfg, 1000).is_ok());
        assert_eq!(s.per_uid.get(&1000), Some(&2));
        for _ in 0..2 {
            s.give_back(1001);
        }
        assert!(!s.per_uid.contains_key(&1001));
    }

    #[test]
    fn a_frame_has_one_deadline_however_it_is_split() {
        use std::io::Write;
        let deadline = || Deadline::after(Duration::from_millis(400));
        // Whole: read. Idle: a quiet end, not an error.
        let (mut a, b) = UnixStream::pair().unwrap();
        protocol::write_frame(&mut a, b"{}").unwrap();
        assert_eq!(
            protocol::read_frame_by(&b, deadline()).unwrap(),
            Some(b"{}".to_vec())
        );
        let start = clock::Stopwatch::start();
        assert_eq!(protocol::read_frame_by(&b, deadline()).unwrap(), None);
        assert!(start.elapsed() < Duration::from_secs(2));
        // Trickled: cut when the frame's deadline passes.
        let writer = std::thread::spawn(move || {
            for byte in [0u8, 0, 0, 8, b'{', b'}', b' ', b' '] {
                if a.write_all(&[byte]).is_err() {
                    break;
                }
                clock::sleep(Duration::from_millis(150));
            }
        });
        let e = protocol::read_frame_by(&b, deadline()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(b);
        writer.join().unwrap();
    }
}
