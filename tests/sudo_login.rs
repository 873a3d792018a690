//! Real sudo (setuid, Debian's 1.9.x) with pam_2fa in its stack, run as an
//! ordinary test user through `runuser`.
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

mod common;

use common::*;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "Sud0-p2fa-Horse";

/// One test's sudo rights and PAM service (removed on drop).
struct Sudo<'a> {
    env: &'a Env,
    user: String,
    service: String,
    sudoers: PathBuf,
    pam: PathBuf,
    /// The command sudo runs creates this file: proof that it ran.
    marker: PathBuf,
    /// Held until after the files are gone (fields drop after `drop`).
    _lock: fs::File,
}

/// One `sudo` run.
#[derive(Debug)]
struct SudoRun {
    ok: bool,
    stdout: String,
    stderr: String,
    /// Whether the command ran (as root) at all.
    ran: bool,
    /// pam_2fa's log lines from this run.
    log: String,
}

impl SudoRun {
    /// Success: exit 0, the command ran as root.
    fn assert_ran_as_root(&self) {
        assert!(self.ok, "sudo failed: {self:?}");
        assert_eq!(self.stdout, "root", "{self:?}");
        assert!(self.ran, "command did not run: {self:?}");
    }

    /// Refusal: non-zero exit, the command never ran.
    fn assert_refused(&self) {
        assert!(!self.ok, "sudo succeeded: {self:?}");
        assert_eq!(self.stdout, "", "command produced output: {self:?}");
        assert!(!self.ran, "command ran although sudo failed: {self:?}");
    }
}

impl<'a> Sudo<'a> {
    /// Sets up sudo for user `p2fa-sudo-<tag>` (created with `PASSWORD`)
    /// through a PAM service that uses `env`'s config.
    fn new(env: &'a Env, tag: &str) -> Sudo<'a> {
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

        sudo.write_sudoers("");
        sudo
    }

    /// (Re)writes this test's sudoers file; `extra` is added to its
    /// `Defaults:<user>` line (e.g. `!pam_silent`).
    fn write_sudoers(&self, extra: &str) {
        if let Err(e) = self.try_write_sudoers(extra) {
            panic!("{e}");
        }
    }

    /// [`Sudo::write_sudoers`], or visudo's complaint (the old file stays).
    fn try_write_sudoers(&self, extra: &str) -> Result<(), String> {
        let user = &self.user;
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(", {extra}")
        };
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
    fn run(&self, input: &str) -> SudoRun {
        let _ = fs::remove_file(&self.marker);
        let _ = self.env.logs();
        let mut child = Command::new("runuser")
            .args(["-u", &self.user, "--", "sudo", "-S", "-k", "--"])
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
        // The output is a few lines, far below a pipe's capacity: safe to
        // wait before reading it.
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let out = child.wait_with_output().unwrap();
                panic!("sudo hung for 60 s: {out:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let run = SudoRun {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            ran: self.marker.exists(),
            log: self.env.logs().join("\n"),
        };
        for bad in [
            "panicked",
            "Segmentation fault",
            "parse error",
            "syntax error",
        ] {
            assert!(!run.stderr.contains(bad), "{bad}: {run:?}");
        }
        run
    }

    /// sudo's password prompt came first, then the module's code prompt.
    fn assert_password_then_code_prompt(&self, run: &SudoRun) {
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

    /// The start of the module's log line for this user and service.
    fn log_prefix(&self, outcome: &str) -> String {
        format!(
            "auth {outcome} user={} service={} rhost=- ",
            self.user, self.service
        )
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

/// Password and current TOTP code: the command runs as root. Right
/// password, wrong code: refused, nothing runs, the failure is counted and
/// logged. A code is not accepted twice and sudo caches nothing.
#[test]
fn sudo_needs_password_and_totp_code() {
    let env = Env::new();
    let sudo = Sudo::new(&env, "totp");
    env.enroll_totp(&sudo.user);

    let wrong = wrong_totp(SECRET, now());
    let run = sudo.run(&format!("{PASSWORD}\n{wrong}\n"));
    run.assert_refused();
    sudo.assert_password_then_code_prompt(&run);
    // The stdin ran dry at sudo's second try.
    assert!(run.stderr.contains("Sorry, try again."), "{run:?}");
    // sudo authenticates with PAM_SILENT: the module's message stays quiet.
    assert!(!run.stderr.contains("Invalid"), "{run:?}");
    assert!(
        run.log.contains(&format!(
            "{}factor=totp reason=wrong-code failures=1/5",
            sudo.log_prefix("failed")
        )),
        "{run:?}"
    );
    assert!(!run.log.contains(&wrong), "code in the log: {run:?}");
    assert_eq!(
        env.sql("SELECT failures, last_step IS NULL FROM users, otp_tokens"),
        "1|1"
    );

    fresh_step(10);
    let code = totp(SECRET, None);
    let run = sudo.run(&format!("{PASSWORD}\n{code}\n"));
    run.assert_ran_as_root();
    sudo.assert_password_then_code_prompt(&run);
    assert!(
        run.log
            .contains(&format!("{}factor=totp", sudo.log_prefix("ok"))),
        "{run:?}"
    );
    assert!(!run.log.contains(&code), "code in the log: {run:?}");
    assert_eq!(
        env.sql("SELECT failures, last_success_service, last_success_factor FROM users"),
        format!("0|{}|totp", sudo.service)
    );

    // No cached credentials: a non-interactive sudo right after is refused.
    let n = Command::new("runuser")
        .args(["-u", &sudo.user, "--", "sudo", "-n", "true"])
        .output()
        .unwrap();
    assert!(!n.status.success(), "sudo cached credentials: {n:?}");
    assert!(
        String::from_utf8_lossy(&n.stderr).contains("a password is required"),
        "{n:?}"
    );

    // The same code again, by the right user with the right password.
    let run = sudo.run(&format!("{PASSWORD}\n{code}\n"));
    run.assert_refused();
    assert!(
        run.log.contains(&format!(
            "{}factor=totp reason=replayed-code",
            sudo.log_prefix("failed")
        )),
        "{run:?}"
    );
}

/// A mistyped code is retried within one sudo ("Sorry, try again."): the
/// second password + code pair works, and the success clears the count.
#[test]
fn sudo_retry_after_wrong_code() {
    let env = Env::new();
    let sudo = Sudo::new(&env, "retry");
    env.enroll_totp(&sudo.user);
    fresh_step(10);
    let code = totp(SECRET, None);
    let wrong = wrong_totp(SECRET, now());
    let run = sudo.run(&format!("{PASSWORD}\n{wrong}\n{PASSWORD}\n{code}\n"));
    run.assert_ran_as_root();
    assert_eq!(
        run.stderr.matches("Verification code: ").count(),
        2,
        "{run:?}"
    );
    assert!(run.stderr.contains("Sorry, try again."), "{run:?}");
    let failed = run
        .log
        .find(&format!(
            "{}factor=totp reason=wrong-code failures=1/5",
            sudo.log_prefix("failed")
        ))
        .unwrap_or_else(|| panic!("{run:?}"));
    let ok = run
        .log
        .find(&format!("{}factor=totp", sudo.log_prefix("ok")))
        .unwrap_or_else(|| panic!("{run:?}"));
    assert!(failed < ok, "{run:?}");
    assert_eq!(env.sql("SELECT failures FROM users"), "0");
}

/// A backup code works for sudo exactly once. A wrong password stops the
/// stack before the module (requisite pam_unix, as Debian's common-auth
/// does), so it neither asks for nor uses up a code.
#[test]
fn sudo_backup_code_once() {
    let env = Env::new();
    let sudo = Sudo::new(&env, "backup");
    env.enroll_totp(&sudo.user);
    let codes = env.enroll_backup(&sudo.user, 3);
    assert_eq!(codes.len(), 3);
    let unused = || {
        env.sql(&format!(
            "SELECT count(*) FROM backup_codes WHERE user = '{}' AND used_at IS NULL",
            sudo.user
        ))
    };

    let run = sudo.run(&format!("{PASSWORD}\n{}\n", codes[0]));
    run.assert_ran_as_root();
    sudo.assert_password_then_code_prompt(&run);
    // PAM_SILENT: no "2 left" from the module under sudo.
    assert!(!run.stderr.contains("left"), "{run:?}");
    assert!(
        run.log
            .contains(&format!("{}factor=backup", sudo.log_prefix("ok"))),
        "{run:?}"
    );
    assert!(!run.log.contains(&codes[0]), "code in the log: {run:?}");
    assert_eq!(unused(), "2");
    assert_eq!(
        env.sql("SELECT used_service FROM backup_codes WHERE used_at IS NOT NULL"),
        sudo.service
    );

    let run = sudo.run(&format!("{PASSWORD}\n{}\n", codes[0]));
    run.assert_refused();
    assert!(
        run.log.contains(&format!(
            "{}factor=backup reason=wrong-code failures=1/5",
            sudo.log_prefix("failed")
        )),
        "{run:?}"
    );

    let run = sudo.run(&format!("not-{PASSWORD}\n{}\n", codes[1]));
    run.assert_refused();
    assert!(!run.stderr.contains("Verification code"), "{run:?}");
    assert!(
        run.log.is_empty(),
        "module ran after a bad password: {run:?}"
    );
    assert_eq!(unused(), "2");

    let run = sudo.run(&format!("{PASSWORD}\n{}\n", codes[1]));
    run.assert_ran_as_root();
    assert_eq!(unused(), "1");
    assert_eq!(env.sql("SELECT failures FROM users"), "0");
}

/// sudo authenticates with PAM_SILENT unless `Defaults !pam_silent`, and
/// the module honours it: the user sees none of its messages. So the log
/// line must explain every silent refusal: the wrong code that locks the
/// account says so, a locked account says "locked"; with `!pam_silent`
/// the user is told too.
#[test]
fn sudo_lockout_is_logged_and_shown_only_without_pam_silent() {
    let env = Env::with_config("[rate_limit]\nmax_failures = 2\nlockout_seconds = 600\n");
    let sudo = Sudo::new(&env, "silent");
    env.enroll_totp(&sudo.user);
    let wrong = wrong_totp(SECRET, now());
    let run = sudo.run(&format!("{PASSWORD}\n{wrong}\n"));
    run.assert_refused();
    assert!(
        run.log.contains(&format!(
            "{}factor=totp reason=wrong-code failures=1/2",
            sudo.log_prefix("failed")
        )),
        "{run:?}"
    );
    // The failure that locks the account: logged as locking it.
    let run = sudo.run(&format!("{PASSWORD}\n{wrong}\n"));
    run.assert_refused();
    assert!(
        run.log.contains(&format!(
            "{}factor=totp reason=wrong-code failures=2/2 locked=600s",
            sudo.log_prefix("failed")
        )),
        "the lockout is not in the log: {run:?}"
    );
    assert!(!run.stderr.contains("Too many"), "PAM_SILENT: {run:?}");

    // Locked: even the right code is refused, silently, and the log says
    // why.
    fresh_step(10);
    let code = totp(SECRET, None);
    let run = sudo.run(&format!("{PASSWORD}\n{code}\n"));
    run.assert_refused();
    assert!(
        !run.stderr.contains("Verification code"),
        "asked while locked: {run:?}"
    );
    assert!(!run.stderr.contains("Too many"), "PAM_SILENT: {run:?}");
    assert!(
        run.log.contains(&format!(
            "{}reason=locked failures=2 remaining=",
            sudo.log_prefix("denied")
        )),
        "{run:?}"
    );

    // A site that wants the reasons shown: `Defaults !pam_silent`, which
    // sudo has since 1.9.16.
    match sudo.try_write_sudoers("!pam_silent") {
        Ok(()) => {
            let run = sudo.run(&format!("{PASSWORD}\n{code}\n"));
            run.assert_refused();
            assert!(
                run.stderr
                    .contains("Too many failed attempts. Try again in 10 minutes."),
                "{run:?}"
            );
            assert!(run.log.contains("reason=locked"), "{run:?}");
        }
        Err(e) => {
            // An older sudo (Debian 12 has 1.9.13) always passes
            // PAM_SILENT and has no such option, as the README says.
            let v = Command::new("sudo").arg("-V").output().unwrap();
            let v = String::from_utf8_lossy(&v.stdout).into_owned();
            let version: Vec<u32> = v
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("Sudo version "))
                .unwrap_or_else(|| panic!("{v}"))
                .split(|c: char| !c.is_ascii_digit())
                .take(3)
                .map(|n| n.parse().unwrap())
                .collect();
            assert!(
                version < vec![1, 9, 16],
                "sudo {version:?} refused !pam_silent: {e}"
            );
            assert!(e.contains("unknown defaults entry"), "{e}");
            // The same PAM stack called without PAM_SILENT (pamtester, real
            // libpam, /etc/pam.d): the locked user is told.
            let mut child = Command::new("pamtester")
                .args([&sudo.service, &sudo.user, "authenticate"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{PASSWORD}\n{code}\n").as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!out.status.success(), "{text}");
            assert!(
                text.contains("Too many failed attempts. Try again in 10 minutes."),
                "{text}"
            );
            assert!(env.logs().join("\n").contains("reason=locked"));
        }
    }
}

/// A refusal with nothing shown must still be explained in the log: an
/// unenrolled user offered inline enrollment under sudo, whose answer
/// never comes (stdin ends after the password).
#[test]
fn sudo_abandoned_inline_enrollment_is_logged() {
    let env = Env::with_config("unenrolled = \"allow\"\n[policy]\ninline_enrollment = true\n");
    let sudo = Sudo::new(&env, "inline");
    env.enroll_ok(&["init"], "");
    let run = sudo.run(&format!("{PASSWORD}\n"));
    run.assert_refused();
    assert!(
        run.stderr.contains("Set up two-factor authentication now?"),
        "{run:?}"
    );
    assert!(
        run.log.contains(&format!(
            "{}reason=conversation-failed",
            sudo.log_prefix("denied")
        )),
        "no reason logged: {run:?}"
    );
}
