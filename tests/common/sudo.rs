//! Real sudo (setuid, Debian's 1.9.x) with pam_2fa in its stack, run as an
//! ordinary test user through `runuser`: the harness of tests/sudo_login.rs
//! and of the attacker's-view tests (tests/attack/).
//!
//! /etc/pam.d/sudo and /etc/sudoers are never touched. Each test writes
//! - `/etc/sudoers.d/p2fa-test-<tag>-<pid>`: sudo rights for its own user
//!   and `Defaults:<user> pam_service=p2fa-sudo-<tag>-<pid>`, checked with
//!   `visudo -cf` and renamed into place at mode 0440 (sudo skips names with
//!   a dot, so a concurrent sudo never reads a half-written file);
//! - `/etc/pam.d/p2fa-sudo-<tag>-<pid>`: `pam_unix` (requisite, as in
//!   Debian's common-auth) then the built module with this test's config.
//!
//! Both go away on drop, also when the test panics. One user per test; a
//! per-user lock file serialises the same test across concurrent runs (a
//! user with two `pam_service` defaults would get whichever sudo read last)
//! and lets a run clean up what a killed run left behind.
//!
//! sudo reads every hidden prompt from stdin with `-S`, so the password and
//! then the code are fed on stdin. `-p` is not used: it sets sudo's
//! `passprompt_override`, which would relabel the module's prompt as a
//! password prompt. `-k` plus `timestamp_timeout=0` keep sudo from caching
//! credentials between runs (checked with `sudo -n`).

use super::{Env, module_path, system_user};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "Sud0-p2fa-Horse";

/// One test's sudo rights and PAM service (removed on drop).
pub struct Sudo<'a> {
    env: &'a Env,
    pub user: String,
    pub service: String,
    sudoers: PathBuf,
    pam: PathBuf,
    /// The command sudo runs creates this file: proof that it ran.
    marker: PathBuf,
    /// Held until after the files are gone (fields drop after `drop`).
    _lock: fs::File,
}

/// One `sudo` run.
#[derive(Debug)]
pub struct SudoRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    /// Whether the command ran (as root) at all.
    pub ran: bool,
    /// pam_2fa's log lines from this run.
    pub log: String,
}

impl SudoRun {
    /// Success: exit 0, the command ran as root.
    pub fn assert_ran_as_root(&self) {
        assert!(self.ok, "sudo failed: {self:?}");
        assert_eq!(self.stdout, "root", "{self:?}");
        assert!(self.ran, "command did not run: {self:?}");
    }

    /// Refusal: non-zero exit, the command never ran.
    pub fn assert_refused(&self) {
        assert!(!self.ok, "sudo succeeded: {self:?}");
        assert_eq!(self.stdout, "", "command produced output: {self:?}");
        assert!(!self.ran, "command ran although sudo failed: {self:?}");
    }
}

impl<'a> Sudo<'a> {
    /// Sets up sudo for user `p2fa-sudo-<tag>` (created with `PASSWORD`)
    /// through a PAM service that uses `env`'s config.
    pub fn new(env: &'a Env, tag: &str) -> Sudo<'a> {
        Sudo::with_defaults(env, tag, "")
    }

    /// [`Sudo::new`] with more sudoers `Defaults` for the user (`extra`
    /// is appended to that line, e.g. `, env_keep += "SSL_CERT_FILE"`).
    pub fn with_defaults(env: &'a Env, tag: &str, extra: &str) -> Sudo<'a> {
        assert!(tag.bytes().all(|b| b.is_ascii_lowercase()), "{tag}");
        let lock = fs::File::create(format!("/tmp/pam2fa-test-sudo-{tag}.lock")).unwrap();
        lock.lock().unwrap();
        // A killed run of this test cannot be running now: its files are stale.
        remove_matching(Path::new("/etc/sudoers.d"), &format!("p2fa-test-{tag}-"));
        remove_matching(Path::new("/etc/pam.d"), &format!("p2fa-sudo-{tag}-"));

        let user = system_user(&format!("p2fa-sudo-{tag}"), PASSWORD);
        let unique = format!("{tag}-{}", std::process::id());
        let service = format!("p2fa-sudo-{unique}");
        let sudo = Sudo {
            env,
            user,
            sudoers: PathBuf::from("/etc/sudoers.d").join(format!("p2fa-test-{unique}")),
            pam: PathBuf::from("/etc/pam.d").join(&service),
            service,
            marker: env.root().join("command-ran"),
            _lock: lock,
        };

        fs::write(
            &sudo.pam,
            format!(
                "auth requisite pam_unix.so\n\
                 auth required {} config={}\n\
                 account required pam_unix.so\n\
                 session required pam_permit.so\n",
                module_path().display(),
                env.conf.display()
            ),
        )
        .unwrap();

        if let Err(e) = sudo.try_write_sudoers(extra) {
            panic!("{e}");
        }
        sudo
    }

    /// (Re)writes this test's sudoers file; `extra` is appended to its
    /// `Defaults:<user>` line (e.g. `, !pam_silent`). On visudo's
    /// complaint the old file stays and the complaint is returned.
    pub fn try_write_sudoers(&self, extra: &str) -> Result<(), String> {
        let user = &self.user;
        let text = format!(
            "{user} ALL=(ALL) ALL\n\
             Defaults:{user} pam_service={}, timestamp_timeout=0, !lecture, !mail_badpass{extra}\n",
            self.service
        );
        // Dotted name: ignored by sudo's @includedir until renamed.
        let tmp = self.sudoers.with_extension("tmp");
        fs::write(&tmp, &text).unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o440)).unwrap();
        let check = Command::new("visudo")
            .arg("-cf")
            .arg(&tmp)
            .output()
            .unwrap();
        if !check.status.success() {
            let _ = fs::remove_file(&tmp);
            return Err(format!(
                "visudo -cf rejected {text:?}: {}",
                String::from_utf8_lossy(&check.stderr)
            ));
        }
        fs::rename(&tmp, &self.sudoers).unwrap();
        Ok(())
    }

    /// `sudo -S -k sh -c 'touch MARKER; id -un'` as the test user, with
    /// `input` on stdin.
    pub fn run(&self, input: &str) -> SudoRun {
        self.spawn(&[], input).finish()
    }

    /// Starts that sudo with `vars` added to the caller's environment (what
    /// an ordinary user controls) and `input` on stdin; the caller may act
    /// on the running sudo (signal it as the user) before `finish`.
    pub fn spawn(&self, vars: &[(&str, &str)], input: &str) -> Running<'_> {
        let _ = fs::remove_file(&self.marker);
        let _ = self.env.logs();
        let mut child = Command::new("runuser")
            .args(["-u", &self.user, "--", "env"])
            .args(vars.iter().map(|(k, v)| format!("{k}={v}")))
            .args(["sudo", "-S", "-k", "--"])
            .args(["/bin/sh", "-c", "touch \"$1\" && id -un", "sh"])
            .arg(&self.marker)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        // sudo may stop reading early (e.g. after a wrong password).
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
        Running { sudo: self, child }
    }

    /// sudo's password prompt came first, then the module's code prompt.
    pub fn assert_password_then_code_prompt(&self, run: &SudoRun) {
        let pw = run
            .stderr
            .find(&format!("[sudo] password for {}: ", self.user))
            .unwrap_or_else(|| panic!("no password prompt: {run:?}"));
        let code = run
            .stderr
            .find("Verification code: ")
            .unwrap_or_else(|| panic!("no code prompt: {run:?}"));
        assert!(pw < code, "code asked before the password: {run:?}");
    }

    /// The start of the module's log line for this user and service,
    /// from the end of the `sudo[PID]` header on.
    pub fn log_prefix(&self, outcome: &str) -> String {
        format!(
            "]: pam_2fa({service}:auth): auth {outcome} user={} service={service} rhost=- ",
            self.user,
            service = self.service
        )
    }
}

/// A sudo started by [`Sudo::spawn`].
pub struct Running<'a> {
    sudo: &'a Sudo<'a>,
    child: Child,
}

impl Running<'_> {
    /// The pid of the sudo process (runuser's child, through `env`'s
    /// exec), waiting up to 10 s for it to exist.
    pub fn sudo_pid(&self) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        let runuser = self.child.id();
        loop {
            let kids = fs::read_to_string(format!("/proc/{runuser}/task/{runuser}/children"))
                .unwrap_or_default();
            for pid in kids.split_whitespace() {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "sudo" {
                    return pid.parse().unwrap();
                }
            }
            assert!(Instant::now() < deadline, "no sudo process under runuser");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `kill -SIG PID` run as the test user (what the user can do to the
    /// sudo they started); true when the signal was delivered.
    pub fn signal_as_user(&self, sig: &str, pid: u32) -> bool {
        Command::new("runuser")
            .args(["-u", &self.sudo.user, "--", "kill", &format!("-{sig}")])
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success()
    }

    /// Resumes the whole run (as root): runuser, like su, stops itself
    /// when its child stops and waits to be continued, as a shell's `fg`
    /// would do.
    pub fn continue_all(&self) {
        let st = Command::new("kill")
            .args(["-CONT", "--", &format!("-{}", self.child.id())])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Waits (at most 60 s) for sudo to end and collects the run.
    pub fn finish(mut self) -> SudoRun {
        // The output is a few lines, far below a pipe's capacity: safe to
        // wait before reading it.
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", self.child.id())])
                    .status();
                let out = self.child.wait_with_output().unwrap();
                panic!("sudo hung for 60 s: {out:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = self.child.wait_with_output().unwrap();
        let run = SudoRun {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            ran: self.sudo.marker.exists(),
            log: self.sudo.env.logs().join("\n"),
        };
        for bad in [
            "panicked",
            "Segmentation fault",
            "parse error",
            "syntax error",
        ] {
            assert!(!run.stderr.contains(bad), "{bad}: {run:?}");
        }
        // pam_syslog()'s form, with sudo as the host program.
        for line in run.log.lines() {
            let p = super::pam_line(line).unwrap_or_else(|| panic!("not a pam_2fa line: {line}"));
            assert_eq!(p.ident, "sudo", "{line}");
            assert_eq!(p.service, self.sudo.service, "{line}");
        }
        run
    }
}

impl Drop for Sudo<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.sudoers);
        let _ = fs::remove_file(self.sudoers.with_extension("tmp"));
        let _ = fs::remove_file(&self.pam);
    }
}

/// Removes the files in `dir` whose names start with `prefix`.
fn remove_matching(dir: &Path, prefix: &str) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            let _ = fs::remove_file(entry.path());
        }
    }
}
