//! Shared harness for the integration tests: a private temp directory with
//! its own config, store, key and syslog socket; PAM service files loaded
//! by the real libpam through pam_wrapper; the real `2fa-enroll` binary;
//! codes computed by `oathtool` (an independent TOTP implementation).
//!
//! Tests that make an [`Env`] or a [`system_user`] need root (the module
//! as shipped believes root-owned files only; they create users, start
//! sshd, configure sudo) and refuse to run without it ([`needs_root`]);
//! the unit and flow tests (`cargo test --workspace --lib`) need no root.
//! They also need `pamtester`, `libpam-wrapper` and `oathtool`;
//! `scripts/test` installs them.
//!
//! A login is one [`Env::attempt`] (or [`Env::attempt_args`] with a whole
//! pamtester argument list, or [`Env::attempt_cmd`] with a command from
//! [`Env::pamtester`]): pamtester through pam_wrapper, the answers on its
//! stdin, and the log lines the attempt produced.
#![allow(dead_code)]

pub mod daemon;
pub mod fido2;
pub mod fleet;
pub mod interactive;
pub mod mount_ns;
pub mod net;
pub mod pg;
pub mod race;
pub mod sshd;
pub mod sudo;

use std::fs;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A well-known test secret (RFC 6238's SHA1 key) in base32.
pub const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// Directory holding the built binaries and `libpam_2fa.so`: the
/// workspace's target/<profile>. They belong to other packages of the
/// workspace, so Cargo gives the tests no `CARGO_BIN_EXE_*` for them; this
/// test program itself runs from target/<profile>/deps.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    assert_eq!(
        deps.file_name().and_then(|n| n.to_str()),
        Some("deps"),
        "{}: a test program outside target/<profile>/deps",
        exe.display()
    );
    deps.parent().unwrap().to_path_buf()
}

/// A built program of the workspace, which must exist.
fn built(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} missing: run `cargo build --workspace` first",
        p.display()
    );
    p
}

pub fn module_path() -> PathBuf {
    let p = built("libpam_2fa.so");
    // The tests build neither the binaries nor the cdylib (other packages
    // of the workspace): refuse to test a module older than the code the
    // binaries were built from.
    let so_time = std::fs::metadata(&p).unwrap().modified().unwrap();
    let bin_time = std::fs::metadata(enroll_bin()).unwrap().modified().unwrap();
    assert!(
        so_time + std::time::Duration::from_secs(120) >= bin_time,
        "{} is older than 2fa-enroll: run `cargo build --workspace` (scripts/test does) before the tests",
        p.display()
    );
    p
}

pub fn enroll_bin() -> PathBuf {
    built("2fa-enroll")
}

/// The `2fad` daemon.
pub fn daemon_bin() -> PathBuf {
    built("2fad")
}

/// Starts `cmd` with stdin, stdout and stderr piped.
pub fn spawn_piped(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `cmd` with `input` on its stdin (then closed) and collects its
/// output. A command that exits without reading all of its input (a
/// refusal before any prompt) closes the pipe first: that broken pipe is
/// not an error here, the exit status and output are what tests check.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = spawn_piped(cmd);
    match child.stdin.take().unwrap().write_all(input) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.unwrap(),
    }
    child.wait_with_output().unwrap()
}

/// stdout then stderr of a finished command, as text (for messages and
/// `contains` checks).
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Fails the test at once, saying why, unless it runs as root: the one
/// check for every test that needs root (called by [`Env::with_config`]
/// and [`system_user`]).
pub fn needs_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: it drives the module as shipped, which believes root-owned \
         files only, and creates users or starts sshd, sudo or 2fad. Run the integration \
         tests as root (sudo scripts/test); as an ordinary user, `cargo test --workspace \
         --lib` (scripts/unit-tests) runs the unit and flow tests"
    );
}

/// Creates a system user (idempotent, safe under parallel tests) with the
/// given password, and returns its name.
pub fn system_user(name: &str, password: &str) -> String {
    needs_root();
    let lock = fs::File::create("/tmp/pam2fa-test-useradd.lock").unwrap();
    lock.lock().unwrap();
    let exists = Command::new("id")
        .arg(name)
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        let st = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/bash", name])
            .status()
            .unwrap();
        assert!(st.success(), "useradd {name}");
    }
    let mut chpasswd = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(chpasswd.stdin.take().unwrap(), "{name}:{password}").unwrap();
    assert!(chpasswd.wait().unwrap().success());
    name.to_string()
}

/// The TOTP code for `secret` at Unix time `at` (now if `None`), by oathtool.
pub fn totp(secret: &str, at: Option<i64>) -> String {
    totp_with(secret, at, &[])
}

pub fn totp_with(secret: &str, at: Option<i64>, extra: &[&str]) -> String {
    let mut cmd = Command::new("oathtool");
    cmd.args(["--totp", "-b", secret]).args(extra);
    if let Some(t) = at {
        cmd.arg("-N").arg(format!("@{t}"));
    }
    let out = cmd.output().expect("oathtool");
    assert!(
        out.status.success(),
        "oathtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn hotp(secret: &str, counter: u64) -> String {
    let out = Command::new("oathtool")
        .args(["--hotp", "-b", secret, "-c", &counter.to_string()])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `faketime` wants a date; this formats Unix time for it (UTC).
pub fn faketime_arg(t: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{t}"), "+%Y-%m-%d %H:%M:%S"])
        .output()
        .unwrap();
    format!("@{}", String::from_utf8(out.stdout).unwrap().trim())
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One isolated installation: config, store, key, service files, syslog.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
    pub db: PathBuf,
    pub key: PathBuf,
    pub svc_dir: PathBuf,
    pub log: UnixDatagram,
}

impl Env {
    pub fn new() -> Env {
        Env::with_config("")
    }

    /// `extra` is appended to the generated config file.
    pub fn with_config(extra: &str) -> Env {
        needs_root();
        let dir = tempfile::Builder::new()
            .prefix("pam2fa-test")
            .tempdir()
            .unwrap();
        let root = dir.path().to_path_buf();
        let db = root.join("state/state.db");
        let key = root.join("keys/2fa.key");
        let svc_dir = root.join("pam.d");
        fs::create_dir(&svc_dir).unwrap();
        let log_path = root.join("log.sock");
        let log = UnixDatagram::bind(&log_path).unwrap();
        log.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let conf = root.join("2fa.conf");
        let env = Env {
            dir,
            conf,
            db,
            key,
            svc_dir,
            log,
        };
        env.write_config(extra);
        env.service("p2fa", "");
        env
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Rewrites the config file: the paths of this Env plus `extra`.
    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "db = \"{}\"\nkey_file = \"{}\"\nlog_socket = \"{}\"\n{extra}\n",
            self.db.display(),
            self.key.display(),
            self.root().join("log.sock").display()
        );
        fs::write(&self.conf, text).unwrap();
    }

    /// Writes PAM service `name`: `auth required pam_2fa.so config=... <args>`.
    pub fn service(&self, name: &str, args: &str) {
        self.service_lines(
            name,
            &format!(
                "auth required {} config={} {args}\naccount required pam_permit.so\n",
                module_path().display(),
                self.conf.display()
            ),
        );
    }

    /// Writes PAM service `name` for a host where pam_2fa is the only
    /// auth module (SSH key + code): `auth required pam_2fa.so ...`, then
    /// `auth required pam_permit.so`, as google-authenticator documents
    /// for `nullok`. A user the policy lets through without a factor gets
    /// PAM_IGNORE from the module, and pam_permit lets them in.
    pub fn service_key_and_code(&self, name: &str, args: &str) {
        self.service_lines(
            name,
            &format!(
                "auth required {} config={} {args}
auth required pam_permit.so
account required pam_permit.so
",
                module_path().display(),
                self.conf.display()
            ),
        );
    }

    pub fn service_lines(&self, name: &str, text: &str) {
        fs::write(self.svc_dir.join(name), text).unwrap();
    }

    /// Runs the real `2fa-enroll --config <this env> args...` with `stdin`.
    pub fn enroll(&self, args: &[&str], stdin: &str) -> Output {
        run_with_input(
            Command::new(enroll_bin())
                .arg("--config")
                .arg(&self.conf)
                .args(args),
            stdin.as_bytes(),
        )
    }

    /// Runs `2fa-enroll --config <this env> args...` as the ordinary
    /// `user` (through runuser), with no input.
    pub fn enroll_as(&self, user: &str, args: &[&str]) -> Output {
        Command::new("runuser")
            .args(["-u", user, "--"])
            .arg(enroll_bin())
            .arg("--config")
            .arg(&self.conf)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `enroll` that must succeed; returns stdout.
    pub fn enroll_ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.enroll(args, stdin);
        assert!(
            out.status.success(),
            "2fa-enroll {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Provisions the test TOTP secret for `user` without prompting.
    pub fn enroll_totp(&self, user: &str) {
        self.enroll_ok(
            &["totp", "--user", user, "--secret", SECRET, "--no-verify"],
            "",
        );
    }

    /// Creates backup codes for `user` and returns them (digits only).
    pub fn enroll_backup(&self, user: &str, count: u32) -> Vec<String> {
        let out = self.enroll_ok(
            &["backup", "--user", user, "--count", &count.to_string()],
            "",
        );
        parse_backup_codes(&out)
    }

    /// Syslog lines received so far (drains the socket).
    pub fn logs(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut buf = vec![0u8; 8192];
        self.log.set_nonblocking(true).unwrap();
        while let Ok(n) = self.log.recv(&mut buf) {
            lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        self.log.set_nonblocking(false).unwrap();
        lines
    }

    /// Runs SQL against the store with the sqlite3 CLI (for assertions).
    pub fn sql(&self, query: &str) -> String {
        let out = Command::new("sqlite3")
            .arg(&self.db)
            .arg(query)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sqlite3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

/// Extracts `12345-67890` style codes from `2fa-enroll backup` output.
pub fn parse_backup_codes(out: &str) -> Vec<String> {
    out.split_whitespace()
        .filter(|w| {
            w.len() == 11
                && w.as_bytes()[5] == b'-'
                && w.replace('-', "").chars().all(|c| c.is_ascii_digit())
        })
        .map(|w| w.replace('-', ""))
        .collect()
}

// ---------------------------------------------------------------------------
// Logins: `Env::attempt` and its variants.
//
// The module logs to a datagram socket whose queue holds only
// `net.unix.max_dgram_qlen` (often 10) unread lines; every attempt drains
// it as it goes, and runs with more concurrent loggers read it from a
// thread (`collect_logs`).
// ---------------------------------------------------------------------------

/// One pamtester run plus the log lines it produced.
#[derive(Debug)]
pub struct Attempt {
    pub ok: bool,
    pub output: String,
    pub log: String,
    /// The pid of the command started: pamtester's own (env, unshare and
    /// sh exec it) unless faketime runs it (faketime forks).
    pub pid: u32,
}

/// One of the module's log lines taken apart: it has the form libpam's
/// `pam_syslog()` gives module lines,
/// `<pri>Mmm dd hh:mm:ss IDENT[PID]: pam_2fa(SERVICE:HOOK): MESSAGE`.
#[derive(Debug, PartialEq, Eq)]
pub struct PamLine<'a> {
    /// The host program's name (`pamtester`, `sshd`, `sudo`).
    pub ident: &'a str,
    pub pid: u32,
    pub service: &'a str,
    pub hook: &'a str,
    pub message: &'a str,
}

/// [`PamLine`] of `line`, or `None` when it lacks that form.
pub fn pam_line(line: &str) -> Option<PamLine<'_>> {
    let (header, rest) = line.split_once("]: ")?;
    let (head, pid) = header.rsplit_once('[')?;
    let ident = head.rsplit_once(' ')?.1;
    let rest = rest.strip_prefix("pam_2fa(")?;
    let (call, message) = rest.split_once("): ")?;
    let (service, hook) = call.rsplit_once(':')?;
    Some(PamLine {
        ident,
        pid: pid.parse().ok()?,
        service,
        hook,
        message,
    })
}

impl Attempt {
    /// The log messages without their `<pri>date IDENT[pid]: pam_2fa(...): `
    /// headers (a pid could contain a 6-digit code by chance); lines of
    /// other programs on the same socket (2fad) lose their
    /// `<pri>date IDENT[pid]: ` only.
    pub fn log_messages(&self) -> String {
        self.log
            .lines()
            .map(|l| match pam_line(l) {
                Some(p) => p.message,
                None => l.split_once("]: ").map_or(l, |(_, m)| m),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The log lines taken apart ([`pam_line`]); each must be the
    /// module's, from `pamtester` as the host program, for `service`.
    pub fn pam_lines(&self, service: &str) -> Vec<PamLine<'_>> {
        self.log
            .lines()
            .map(|l| {
                let p = pam_line(l).unwrap_or_else(|| panic!("not a pam_2fa line: {l:?}"));
                assert_eq!(p.ident, "pamtester", "{l}");
                assert_eq!(p.service, service, "{l}");
                assert_eq!(p.hook, "auth", "{l}");
                p
            })
            .collect()
    }

    /// The PAM verdict must never be a crash of the module: a panic maps to
    /// PAM_SERVICE_ERR and pam-bindings' own guard to PAM_ABORT.
    pub fn assert_no_crash(&self) {
        for bad in [
            "Critical error - immediate abort",
            "panicked",
            "Segmentation fault",
        ] {
            assert!(!self.output.contains(bad), "{bad}: {}", self.output);
        }
    }
}

/// Serialises the tests' pam_wrapper runs across threads and processes.
///
/// pam_wrapper (1.1.x) gives each process a copy of the service files in
/// `/tmp/pam.X`, X one of 62 letters, picked by lstat-then-mkdir and
/// carrying on when mkdir fails with EEXIST. Two pamtesters starting
/// together can end up in the same directory, and one then runs with the
/// other's service file, that is another Env's config and store: a test
/// sees a login it never set up. Hold this lock for the whole run of any
/// pamtester that uses pam_wrapper. (race.rs avoids pam_wrapper instead.)
pub fn pam_wrapper_lock() -> fs::File {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/pam2fa-test-pam-wrapper.lock")
        .unwrap();
    f.lock().unwrap();
    f
}

impl Env {
    /// The pamtester command of every login: pamtester through
    /// pam_wrapper with the whole pamtester argument list (`-I rhost=..`,
    /// service, user, operation), optionally run under `prefix` (e.g.
    /// `runuser -u bob --`) and faketime. The pam_wrapper variables are set
    /// with `env` right before pamtester, so a PAM-using prefix such as
    /// runuser is not itself redirected.
    pub fn pamtester(&self, prefix: &[&str], faketime: Option<i64>, args: &[&str]) -> Command {
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg("env");
                c
            }
            None => Command::new("env"),
        };
        cmd.arg("LD_PRELOAD=libpam_wrapper.so")
            .arg("PAM_WRAPPER=1")
            .arg(format!(
                "PAM_WRAPPER_SERVICE_DIR={}",
                self.svc_dir.display()
            ));
        if let Some(t) = faketime {
            cmd.args(["TZ=UTC", "faketime", "-f"]).arg(faketime_arg(t));
        }
        cmd.arg("pamtester").args(args);
        cmd
    }

    /// Authenticates `user` via `service` (at Unix time `at` by faketime,
    /// or now), with `input` (the answers, one per line) on pamtester's
    /// stdin, and returns the result with the log lines of this attempt
    /// (earlier unread lines are discarded first).
    pub fn attempt(&self, service: &str, user: &str, input: &str, at: Option<i64>) -> Attempt {
        self.attempt_args(&[service, user, "authenticate"], input.as_bytes(), at)
    }

    /// `attempt` with a full pamtester argument list and raw input bytes.
    pub fn attempt_args(&self, args: &[&str], input: &[u8], at: Option<i64>) -> Attempt {
        self.attempt_cmd(self.pamtester(&[], at, args), input)
    }

    /// `attempt` for a command from [`Env::pamtester`] (under a prefix, or
    /// changed before it runs), feeding `input` on its stdin. pamtester's
    /// verdict line must agree with its exit status, and the module must
    /// not have crashed.
    pub fn attempt_cmd(&self, mut cmd: Command, input: &[u8]) -> Attempt {
        let _ = self.logs();
        let (ok, output, pid) = {
            let _serial = pam_wrapper_lock();
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            let pid = child.id();
            {
                let mut stdin = child.stdin.take().unwrap();
                let _ = stdin.write_all(input);
            }
            let out = child.wait_with_output().unwrap();
            (out.status.success(), output_text(&out), pid)
        };
        assert_eq!(
            ok,
            output.contains("successfully authenticated"),
            "{output}"
        );
        let a = Attempt {
            ok,
            output,
            log: self.logs().join("\n"),
            pid,
        };
        a.assert_no_crash();
        a
    }

    /// Reads the syslog socket from a thread until `LogCollector::finish`,
    /// for runs with more concurrent loggers than the socket queue holds.
    pub fn collect_logs(&self) -> LogCollector {
        let sock = self.log.try_clone().unwrap();
        sock.set_nonblocking(false).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut buf = vec![0u8; 8192];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => lines.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    Err(_) if stop2.load(std::sync::atomic::Ordering::SeqCst) => break,
                    Err(_) => {}
                }
            }
            lines
        });
        LogCollector { stop, handle }
    }

    /// `2fa-enroll status --json --user USER`, parsed.
    pub fn status_json(&self, user: &str) -> serde_json::Value {
        let out = self.enroll_ok(&["status", "--json", "--user", user], "");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// A row of the store as text, for before/after comparisons.
    pub fn user_row(&self, user: &str) -> String {
        self.sql(&format!(
            "SELECT u.failures, u.locked_until, u.last_success_at, t.last_step, t.counter, \
             (SELECT count(*) FROM backup_codes b WHERE b.user = u.name AND b.used_at IS NULL) \
             FROM users u LEFT JOIN otp_tokens t ON t.user = u.name WHERE u.name = '{user}'"
        ))
    }
}

pub struct LogCollector {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Vec<String>>,
}

impl LogCollector {
    /// Stops after the socket has been quiet for one read timeout.
    pub fn finish(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.join().unwrap()
    }
}

/// Waits until the current 30-second TOTP step has at least `secs` seconds
/// left, so a code computed now is still current when the module checks it.
pub fn fresh_step(secs: i64) {
    let left = 30 - now() % 30;
    if left < secs {
        std::thread::sleep(Duration::from_secs(left as u64 + 1));
    }
}

/// TOTP step (30 s) containing Unix time `t`.
pub fn step_of(t: i64) -> i64 {
    t / 30
}

/// A time 5 s into step `step`, so a short run never crosses a boundary.
pub fn in_step(step: i64) -> i64 {
    step * 30 + 5
}

/// A 6-digit code that is not the code of any step within 5 of time `t`.
pub fn wrong_totp(secret: &str, t: i64) -> String {
    let near: Vec<String> = (-5..=5).map(|d| totp(secret, Some(t + 30 * d))).collect();
    (0..1_000_000u32)
        .map(|n| format!("{:06}", (n * 7919 + 123_457) % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// target/screenshots/, where the browser tests leave their screenshots
/// for reviewers (made if missing).
pub fn screenshot_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots");
    fs::create_dir_all(&d).unwrap();
    d
}
