//! 2fad for the attacker's-view tests: the real daemon on a socket and a
//! localhost web port, ordinary users reaching it through runuser (the
//! real `2fa-enroll`, or the raw client in tests/mock/twofad_client.py),
//! and a real headless Chromium with a virtual authenticator
//! (tests/webauthn_browser.py) answering its links.

use super::Env;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mock/twofad_client.py");

pub struct Daemon {
    child: Child,
    /// A root-owned 0755 directory ordinary users can reach: the socket and
    /// a readable copy of the config live here.
    pub public: PathBuf,
    pub socket: PathBuf,
    /// The config copy for ordinary users' `2fa-enroll --config`.
    pub conf: PathBuf,
    pub port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.public);
    }
}

impl Daemon {
    /// 2fad with WebAuthn on http://localhost:PORT. Rewrites `env`'s config
    /// (so the PAM module finds the same socket); `daemon` and `webauthn`
    /// are extra lines for those sections.
    pub fn start(env: &Env, daemon: &str, webauthn: &str) -> Daemon {
        let public = std::env::temp_dir().join(format!(
            "p2fa-atk-{}-{}",
            std::process::id(),
            env.root().file_name().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(&public).unwrap();
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = public.join("socket");
        let port = super::net::closed_port();
        env.write_config(&format!(
            "[daemon]\nsocket = \"{}\"\n{daemon}\n[webauthn]\nenabled = true\n\
             listen = \"127.0.0.1:{port}\"\npublic_url = \"http://localhost:{port}\"\n\
             rp_id = \"localhost\"\n{webauthn}\n",
            socket.display()
        ));
        let conf = public.join("2fa.conf");
        std::fs::copy(&env.conf, &conf).unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_2fad"))
            .arg("--config")
            .arg(&env.conf)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() || std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "2fad did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon {
            child,
            public,
            socket,
            conf,
            port,
        }
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

    /// `2fa-enroll --config <public copy> args` as `user`, with `stdin`.
    pub fn enroll_as(&self, user: &str, args: &[&str], stdin: &str) -> Output {
        let mut c = Command::new("runuser")
            .args(["-u", user, "--"])
            .arg(super::enroll_bin())
            .arg("--config")
            .arg(&self.conf)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    }

    /// `2fa-enroll args` as `user` (or root with `user == "root"` and the
    /// Env's own config), answering the link it prints with `browser`:
    /// opens the first `http://` URL, then presses Enter. Returns the
    /// browser's verdict and everything the command printed.
    pub fn enroll_with_browser(
        &self,
        user: &str,
        args: &[&str],
        browser: &mut Browser,
        before: &str,
    ) -> (String, String, bool) {
        let mut child = Command::new("runuser")
            .args(["-u", user, "--"])
            .arg(super::enroll_bin())
            .arg("--config")
            .arg(&self.conf)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
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
            if let Some(u) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                url = Some(u.to_string());
                break;
            }
        }
        let verdict = match url {
            Some(u) => browser.cmd(&format!("open {u}")),
            None => "no link".into(),
        };
        let _ = writeln!(stdin);
        drop(stdin);
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        let st = child.wait_with_output().unwrap();
        transcript.push_str(&rest);
        transcript.push_str(&String::from_utf8_lossy(&st.stderr));
        (verdict, transcript, st.status.success())
    }

    /// GET on 2fad's web port; (status line, body).
    pub fn http_get(&self, path: &str) -> (String, String) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
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
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "POST {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
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

/// Registers a browser key for `user` as root (no proof needed: root may
/// act for anyone) with the virtual authenticator.
pub fn register_key(env: &Env, browser: &mut Browser, user: &str, name: &str) {
    let mut child = Command::new(super::enroll_bin())
        .arg("--config")
        .arg(&env.conf)
        .args(["webauthn", "add", "--name", name, "--user", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut transcript = String::new();
    let mut url = None;
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        transcript.push_str(&line);
        if let Some(u) = line.split_whitespace().find(|w| w.contains("/r/")) {
            url = Some(u.to_string());
            break;
        }
    }
    let url = url.unwrap_or_else(|| panic!("no link:\n{transcript}"));
    let r = browser.cmd(&format!("open {url}"));
    assert!(r.starts_with("done"), "{r}\n{transcript}");
    writeln!(child.stdin.take().unwrap()).unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let st = child.wait_with_output().unwrap();
    assert!(
        st.status.success(),
        "{transcript}{rest}{}",
        String::from_utf8_lossy(&st.stderr)
    );
}

/// Whether `path` exists (for "2fad created nothing" checks).
pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}
