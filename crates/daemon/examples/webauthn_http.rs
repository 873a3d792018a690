//! Benchmark helper for scripts/bench: WebAuthn verifications per second
//! through a real, separately running 2fad, the way browsers reach it
//! (HTTP on a loopback port), and 2fad's own CPU time per verification.
//! Prints one JSON line.
//!
//!     webauthn_http USER,USER,... [ROUNDS] [2FAD]
//!
//! The USERs must exist (2fad refuses unknown users; scripts/bench passes
//! its bench users), one client each: 16 is what 2fad's web server runs
//! at once (its blocking threads). 2FAD is the 2fad binary (default: the
//! release build beside this example). It is started on a throw-away
//! store with plain HTTP on 127.0.0.1. Each user registers a software key (through
//! 2fad's socket as root, like 2fa-enroll, and its web endpoints). Each
//! round every user gets 16 login links over the socket (what the PAM
//! module asks for), whose answers are signed before the clock starts;
//! then CLIENTS threads, each on one keep-alive HTTP connection, post
//! their answers one after the other, and each answer is counted only
//! when 2fad said 200, which it says after the key's counter is durable
//! (group commit). The results are then read over the socket: every one
//! must be approved. `http_per_s` is all posted answers over the timed
//! parts; `daemon_cpu_ms_each` is 2fad's CPU time (user + system, from
//! /proc) over the timed parts per verification: 2fad's work alone,
//! whatever the clients cost.

// A benchmark: it times with the clocks directly.
#![allow(clippy::disallowed_methods)]

use p2fa_core::config::Config;
use p2fa_core::secure_fs::Trust;
use p2fa_proto::protocol::{Op, Request, Response, VERSION};
use p2fa_testkit::softkey::SoftKey;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Links per user per round (`webauthn.max_pending_per_user` allows 20).
const PER_ROUND: usize = 16;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(users) = args.get(1) else {
        eprintln!("usage: webauthn_http USER,USER,... [ROUNDS] [2FAD]");
        std::process::exit(2);
    };
    let users: Vec<&str> = users.split(',').filter(|u| !u.is_empty()).collect();
    let clients = users.len();
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(8);
    let bin = args.get(3).map(PathBuf::from).unwrap_or_else(beside_me);
    let dir = std::env::temp_dir().join(format!("p2fa-wa-http-{}", std::process::id()));
    let d = Daemon::start(&bin, &dir);
    let origin = format!("http://localhost:{}", d.port);

    let mut keys: Vec<(String, SoftKey)> = users
        .iter()
        .map(|user| {
            let user = user.to_string();
            let token = match d.call(
                &user,
                Op::WebauthnRegister {
                    name: "bench".into(),
                },
            ) {
                Response::Link { token, .. } => token,
                other => panic!("register: {other:?}"),
            };
            let mut sk = SoftKey::new();
            let mut http = Http::connect(d.port);
            let body = sk.register(&http.options(&token), &origin).to_string();
            assert_eq!(http.post(&format!("/api/finish/{token}"), &body), 200);
            (user, sk)
        })
        .collect();

    let (mut wall, mut cpu, mut lat_ns) = (0.0, 0.0, Vec::new());
    for _ in 0..rounds {
        // Links and their answers, made before the clock starts.
        let work: Vec<(String, Vec<(String, String)>)> = keys
            .iter_mut()
            .map(|(user, sk)| {
                let mut http = Http::connect(d.port);
                let answers = (0..PER_ROUND)
                    .map(|_| {
                        let token = match d.call(
                            user,
                            Op::WebauthnLogin {
                                service: "bench".into(),
                                rhost: String::new(),
                            },
                        ) {
                            Response::Link { token, .. } => token,
                            other => panic!("login: {other:?}"),
                        };
                        let body = sk.assert(&http.options(&token), &origin).to_string();
                        (token, body)
                    })
                    .collect();
                (user.clone(), answers)
            })
            .collect();
        let ready = Barrier::new(clients + 1);
        let (w, c, lat) = std::thread::scope(|s| {
            let handles: Vec<_> = work
                .iter()
                .map(|(_, answers)| {
                    let (ready, port) = (&ready, d.port);
                    s.spawn(move || {
                        let mut http = Http::connect(port);
                        ready.wait();
                        answers
                            .iter()
                            .map(|(token, body)| {
                                let t = Instant::now();
                                let status = http.post(&format!("/api/finish/{token}"), body);
                                assert_eq!(status, 200, "an answer was refused");
                                t.elapsed().as_nanos() as u64
                            })
                            .collect::<Vec<u64>>()
                    })
                })
                .collect();
            let cpu0 = d.cpu_seconds();
            ready.wait();
            let t = Instant::now();
            let lat: Vec<u64> = handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect();
            (t.elapsed().as_secs_f64(), d.cpu_seconds() - cpu0, lat)
        });
        wall += w;
        cpu += c;
        lat_ns.extend(lat);
        // Every answer approved, as the PAM module would read it.
        for (user, answers) in &work {
            for (token, _) in answers {
                let r = d.call(
                    user,
                    Op::WebauthnResult {
                        token: token.clone(),
                    },
                );
                assert!(matches!(r, Response::Done { .. }), "not approved: {r:?}");
            }
        }
    }
    lat_ns.sort_unstable();
    let m = lat_ns.len();
    println!(
        "{{\"clients\":{clients},\"http_verifications\":{m},\"http_per_s\":{:.1},\
         \"http_median_ms\":{:.3},\"http_p95_ms\":{:.3},\"daemon_cpu_ms_each\":{:.3},\
         \"daemon_per_cpu_s\":{:.1}}}",
        m as f64 / wall,
        lat_ns[m / 2] as f64 / 1e6,
        lat_ns[m * 95 / 100] as f64 / 1e6,
        cpu * 1e3 / m as f64,
        m as f64 / cpu.max(0.01),
    );
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `2fad` beside this example (target/release/examples/ -> target/release/).
fn beside_me() -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    me.parent()
        .and_then(Path::parent)
        .map(|d| d.join("2fad"))
        .expect("target directory")
}

/// The 2fad under test, killed on drop.
struct Daemon {
    child: Child,
    socket: PathBuf,
    port: u16,
    /// Receives 2fad's audit lines (and drops them) so logging costs
    /// what it costs with a syslog daemon.
    _log: UnixDatagram,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(bin: &Path, dir: &Path) -> Daemon {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir.join("state")).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let cfg = Config {
            db: dir.join("state/state.db"),
            key_file: dir.join("key"),
            ..Config::default()
        };
        p2fa_core::crypto::HostKey::load_or_create(&cfg.key_file, Trust::test_runner()).unwrap();
        drop(p2fa_core::store::Store::open_or_create(&cfg.db, 1000, Trust::test_runner()).unwrap());
        let log_path = dir.join("log.sock");
        let log = UnixDatagram::bind(&log_path).unwrap();
        let drain = log.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while drain.recv(&mut buf).is_ok() {}
        });
        let socket = dir.join("socket");
        let conf = dir.join("2fa.conf");
        std::fs::write(
            &conf,
            format!(
                "db = \"{}\"\nkey_file = \"{}\"\nlog_socket = \"{}\"\n[daemon]\nsocket = \"{}\"\n\
                 max_clients = 512\n[webauthn]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n\
                 public_url = \"http://localhost:{port}\"\nrp_id = \"localhost\"\n\
                 max_pending_per_user = {}\n",
                cfg.db.display(),
                cfg.key_file.display(),
                log_path.display(),
                socket.display(),
                PER_ROUND + 1,
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("--config")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let d = Daemon {
            child,
            socket,
            port,
            _log: log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(d.socket.exists() && TcpStream::connect(("127.0.0.1", port)).is_ok()) {
            assert!(Instant::now() < deadline, "2fad did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// A root request on the socket for `user`, as the PAM module sends.
    fn call(&self, user: &str, op: Op) -> Response {
        let req = Request {
            version: VERSION,
            user: Some(user.into()),
            proof: None,
            op,
        };
        p2fa_proto::client::call(&self.socket, &req).unwrap()
    }

    /// 2fad's CPU time (user + system).
    fn cpu_seconds(&self) -> f64 {
        p2fa_testkit::cpu::seconds(&self.child.id().to_string())
    }
}

/// One keep-alive HTTP/1.1 connection to 2fad.
struct Http {
    r: BufReader<TcpStream>,
}

impl Http {
    fn connect(port: u16) -> Http {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        Http {
            r: BufReader::new(s),
        }
    }

    /// The status and body of one request.
    fn request(&mut self, head: &str, body: &str) -> (u16, String) {
        let s = self.r.get_mut();
        s.write_all(
            format!(
                "{head}Host: localhost\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.r.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap();
            }
        }
        let mut buf = vec![0u8; len];
        self.r.read_exact(&mut buf).unwrap();
        (status, String::from_utf8_lossy(&buf).into_owned())
    }

    fn post(&mut self, path: &str, body: &str) -> u16 {
        self.request(
            &format!("POST {path} HTTP/1.1\r\nContent-Type: application/json\r\n"),
            body,
        )
        .0
    }

    /// The options the page would hand to the browser for `token`.
    fn options(&mut self, token: &str) -> serde_json::Value {
        let (status, body) = self.request(&format!("GET /api/options/{token} HTTP/1.1\r\n"), "");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["options"].clone()
    }
}
