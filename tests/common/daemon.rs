//! 2fad for the tests: the real daemon on a socket (and, for WebAuthn, a
//! localhost web port), ordinary users reaching it through runuser (the
//! real `2fa-enroll`, or the raw client in tests/mock/twofad_client.py),
//! and a real headless Chromium with a virtual authenticator
//! (tests/webauthn_browser.py) answering its links.

use super::{Env, spawn_piped};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mock/twofad_client.py");

pub struct Daemon {
    child: Child,
    /// A root-owned 0755 directory ordinary users can reach: the socket, a
    /// readable copy of the config and 2fad's log (0600) live here.
    pub public: PathBuf,
    pub socket: PathBuf,
    /// The config copy for ordinary users' `2fa-enroll --config`.
    pub conf: PathBuf,
    /// The web port, if 2fad serves WebAuthn.
    port: Option<u16>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // 2fad leads its own process group; under faketime it is a child
        // of faketime, so the whole group is ended.
        let pid = self.child.id();
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        let _ = self.child.kill();
        // A faketime killed here leaves its shared-memory files, named
        // after its pid; a later faketime given that pid (pid_max is
        // 32768 on a 2-CPU machine) would fail "sem_open: File exists".
        // Removed before the wait, while the pid (a zombie) cannot be
        // anyone else's yet.
        for f in [
            format!("faketime_shm_{pid}"),
            format!("sem.faketime_sem_{pid}"),
        ] {
            let _ = std::fs::remove_file(Path::new("/dev/shm").join(f));
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.public);
    }
}

/// How [`Daemon::start_web`] sets up 2fad's WebAuthn side.
#[derive(Default)]
pub struct WebOptions<'a> {
    /// Extra lines for the `[daemon]` section.
    pub daemon: &'a str,
    /// Extra lines for the `[webauthn]` section.
    pub webauthn: &'a str,
    /// Certificate and key files: HTTPS, with an `https://` public URL.
    pub tls: Option<(&'a Path, &'a Path)>,
    /// Runs 2fad under `faketime -f SPEC` (`"+0 x30"`: 30 times as fast).
    pub faketime: Option<&'a str>,
}

/// The directory for a Daemon of `env` (see [`Daemon::public`]).
fn public_dir(env: &Env) -> PathBuf {
    let public = std::env::temp_dir().join(format!(
        "p2fa-2fad-{}-{}",
        std::process::id(),
        env.root().file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&public).unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o755)).unwrap();
    public
}

impl Daemon {
    /// 2fad with WebAuthn on http://localhost:PORT. Rewrites `env`'s config
    /// (so the PAM module finds the same socket); `daemon` and `webauthn`
    /// are extra lines for those sections.
    pub fn start(env: &Env, daemon: &str, webauthn: &str) -> Daemon {
        Daemon::start_web(
            env,
            WebOptions {
                daemon,
                webauthn,
                ..WebOptions::default()
            },
        )
    }

    /// [`Daemon::start`] with the choices of `web`.
    pub fn start_web(env: &Env, web: WebOptions) -> Daemon {
        let public = public_dir(env);
        let socket = public.join("socket");
        let port = super::net::closed_port();
        let (scheme, tls) = match web.tls {
            Some((cert, key)) => (
                "https",
                format!(
                    "cert_file = \"{}\"\nkey_file = \"{}\"\n",
                    cert.display(),
                    key.display()
                ),
            ),
            None => ("http", String::new()),
        };
        env.write_config(&format!(
            "[daemon]\nsocket = \"{}\"\n{}\n[webauthn]\nenabled = true\n\
             listen = \"127.0.0.1:{port}\"\npublic_url = \"{scheme}://localhost:{port}\"\n\
             rp_id = \"localhost\"\n{tls}{}\n",
            socket.display(),
            web.daemon,
            web.webauthn
        ));
        let conf = public.join("2fa.conf");
        std::fs::copy(&env.conf, &conf).unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut cmd = match web.faketime {
            Some(spec) => {
                let mut c = Command::new("faketime");
                c.args(["-f", spec])
                    .arg(super::daemon_bin())
                    .env("TZ", "UTC");
                c
            }
            None => Command::new(super::daemon_bin()),
        };
        cmd.arg("--config").arg(&env.conf);
        Daemon::spawn(cmd, public, socket, conf, Some(port))
    }

    /// 2fad with its web server on 127.0.0.1:`port` for a config that
    /// has everything else already (the fleet tests): `env`'s config gets
    /// a `[daemon]` socket and a `[webauthn]` section with `webauthn`'s
    /// lines (`public_url`, `rp_id`, ...) appended, so that the PAM
    /// module finds this 2fad, and several 2fads may serve one
    /// `public_url`.
    pub fn start_appended(env: &Env, port: u16, webauthn: &str) -> Daemon {
        let public = public_dir(env);
        let socket = public.join("socket");
        let text = std::fs::read_to_string(&env.conf).unwrap();
        std::fs::write(
            &env.conf,
            format!(
                "{text}\n[daemon]\nsocket = \"{}\"\n[webauthn]\nenabled = true\n\
                 listen = \"127.0.0.1:{port}\"\n{webauthn}\n",
                socket.display()
            ),
        )
        .unwrap();
        let conf = public.join("2fa.conf");
        std::fs::copy(&env.conf, &conf).unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut cmd = Command::new(super::daemon_bin());
        cmd.arg("--config").arg(&env.conf);
        Daemon::spawn(cmd, public, socket, conf, Some(port))
    }

    /// 2fad serving `env`'s store on its socket only (no web server), for
    /// ordinary users: `env`'s own config is left as it is, and 2fad and
    /// the users read a copy with a `[daemon]` section added. The socket's
    /// directory does not exist before: 2fad makes it.
    pub fn socket_only(env: &Env) -> Daemon {
        Daemon::socket_only_with(env, "")
    }

    /// [`Daemon::socket_only`] with more `[daemon]` lines (`store_pool`).
    pub fn socket_only_with(env: &Env, daemon: &str) -> Daemon {
        let public = public_dir(env);
        let socket = public.join("run/socket");
        let conf = public.join("2fa.conf");
        let text = std::fs::read_to_string(&env.conf).unwrap();
        std::fs::write(
            &conf,
            format!(
                "{text}\n[daemon]\nsocket = \"{}\"\n{daemon}\n",
                socket.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut cmd = Command::new(super::daemon_bin());
        cmd.arg("--config").arg(&conf);
        Daemon::spawn(cmd, public, socket, conf, None)
    }

    /// Runs `cmd` (2fad, maybe wrapped) in its own process group with
    /// stderr to `public/2fad.log`, and waits until it serves the socket
    /// and the web port.
    fn spawn(
        mut cmd: Command,
        public: PathBuf,
        socket: PathBuf,
        conf: PathBuf,
        port: Option<u16>,
    ) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(public.join("2fad.log"))
            .unwrap();
        let child = cmd.stderr(log).process_group(0).spawn().unwrap();
        let mut d = Daemon {
            child,
            public,
            socket,
            conf,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !d.socket.exists()
            || port.is_some_and(|p| std::net::TcpStream::connect(("127.0.0.1", p)).is_err())
        {
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("2fad exited ({st}): {}", d.log());
            }
            assert!(Instant::now() < deadline, "2fad did not start: {}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// The web port (panics for [`Daemon::socket_only`]).
    pub fn port(&self) -> u16 {
        self.port.expect("2fad was started without its web server")
    }

    /// What 2fad wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.public.join("2fad.log")).unwrap_or_default()
    }

    /// Sends 2fad SIGHUP (as `systemctl reload` would).
    pub fn hangup(&self) {
        let st = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Frames sent on one connection by `user` with the raw client; one
    /// answer line per frame.
    pub fn raw(&self, user: &str, frames: &[&str]) -> Vec<String> {
        let o = Command::new("runuser")
            .args(["-u", user, "--", "/usr/bin/python3", CLIENT, "frames"])
            .arg(&self.socket)
            .args(frames)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            o.status.success(),
            "raw client: {text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        text.lines().map(str::to_string).collect()
    }

    /// One frame, one answer, parsed.
    pub fn ask(&self, user: &str, frame: &str) -> serde_json::Value {
        let lines = self.raw(user, &[frame]);
        serde_json::from_str(&lines[0]).unwrap_or_else(|e| panic!("{e}: {lines:?}"))
    }

    /// `2fa-enroll --config <public copy> args` as `user`.
    pub fn enroll_cmd(&self, user: &str, args: &[&str]) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", user, "--"])
            .arg(super::enroll_bin())
            .arg("--config")
            .arg(&self.conf)
            .args(args);
        c
    }

    /// `2fa-enroll --config <public copy> args` as `user`, with `stdin`.
    pub fn enroll_as(&self, user: &str, args: &[&str], stdin: &str) -> Output {
        super::run_with_input(&mut self.enroll_cmd(user, args), stdin.as_bytes())
    }

    /// `2fa-enroll --config <public copy> args` as `user` (through
    /// runuser, root included), writing `before` to its stdin and
    /// answering the link it prints with `browser`: opens the first
    /// `http://` URL, then presses Enter. Returns the browser's verdict
    /// ("no link" if none came), everything the command printed, and
    /// whether it succeeded.
    pub fn enroll_with_browser(
        &self,
        user: &str,
        args: &[&str],
        browser: &mut Browser,
        before: &str,
    ) -> (String, String, bool) {
        let child = spawn_piped(&mut self.enroll_cmd(user, args));
        let (verdict, transcript, ok) =
            follow_link(child, before, browser, |w| w.starts_with("http://"));
        (verdict.unwrap_or_else(|| "no link".into()), transcript, ok)
    }

    /// Sends `request` to 2fad's web port; the whole answer.
    fn http(&self, request: &str) -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port())).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        r
    }

    /// GET on 2fad's web port; (status line, body).
    pub fn http_get(&self, path: &str) -> (String, String) {
        let r = self.http(&format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n"));
        let status = r.lines().next().unwrap_or("").to_string();
        let body = r
            .split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or("")
            .to_string();
        (status, body)
    }

    /// POST on 2fad's web port; the status line.
    pub fn http_post(&self, path: &str, body: &str) -> String {
        let r = self.http(&format!(
            "POST {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        r.lines().next().unwrap_or("").to_string()
    }
}

/// The token at the end of a link.
pub fn token_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

/// The first `http://` URL in `text`.
pub fn url_in(text: &str) -> String {
    text.split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {text}"))
        .to_string()
}

/// Runs tests/webauthn_browser.py: Chromium with a virtual authenticator.
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
}

impl Browser {
    pub fn start() -> Browser {
        let mut child = Command::new("/usr/bin/python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/webauthn_browser.py"
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "browser driver: {line}");
        Browser { child, stdin, out }
    }

    /// One driver command (see tests/webauthn_browser.py), one answer line.
    pub fn cmd(&mut self, c: &str) -> String {
        writeln!(self.stdin, "{c}").unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim().to_string()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}

/// Writes `before` to a started `2fa-enroll` (all of its stdio piped)
/// that shows a link and then waits for Enter, reads what it prints up to
/// the first word `is_link` accepts, has `browser` open that link, then
/// presses Enter and waits for the end. Returns the browser's verdict
/// (None: no link came), everything the command printed, and whether it
/// succeeded.
fn follow_link(
    mut child: Child,
    before: &str,
    browser: &mut Browser,
    is_link: fn(&str) -> bool,
) -> (Option<String>, String, bool) {
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(before.as_bytes()).unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut transcript = String::new();
    let mut url = None;
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        transcript.push_str(&line);
        if let Some(u) = line.split_whitespace().find(|w| is_link(w)) {
            url = Some(u.to_string());
            break;
        }
    }
    let verdict = url.map(|u| browser.cmd(&format!("open {u}")));
    let _ = writeln!(stdin);
    drop(stdin);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let st = child.wait_with_output().unwrap();
    transcript.push_str(&rest);
    transcript.push_str(&String::from_utf8_lossy(&st.stderr));
    (verdict, transcript, st.status.success())
}

/// `2fa-enroll webauthn add` for `user` as root (no proof needed: root may
/// act for anyone), with `browser` approving the registration link.
/// Returns the browser's verdict, everything the command printed, and
/// whether it succeeded; panics if it printed no link.
pub fn add_key(env: &Env, browser: &mut Browser, user: &str, name: &str) -> (String, String, bool) {
    let child = spawn_piped(
        Command::new(super::enroll_bin())
            .arg("--config")
            .arg(&env.conf)
            .args(["webauthn", "add", "--name", name, "--user", user]),
    );
    let (verdict, transcript, ok) = follow_link(child, "", browser, |w| w.contains("/r/"));
    let verdict = verdict.unwrap_or_else(|| panic!("no link:\n{transcript}"));
    (verdict, transcript, ok)
}

/// Registers a browser key for `user` as root with the virtual
/// authenticator ([`add_key`], which must succeed).
pub fn register_key(env: &Env, browser: &mut Browser, user: &str, name: &str) {
    let (r, transcript, ok) = add_key(env, browser, user, name);
    assert!(r.starts_with("done"), "{r}\n{transcript}");
    assert!(ok, "{transcript}");
}

/// Whether `path` exists (for "2fad created nothing" checks).
pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}
