//! Real sudo with pam_2fa in its stack. /etc/pam.d/sudo and /etc/sudoers
//! are never touched: a drop-in under /etc/sudoers.d gives the test user
//! sudo rights and points sudo at a PAM service of our own
//! (`Defaults:<user> pam_service=...`), both removed on drop.

mod common;

use common::{Env, SECRET, system_user, totp};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const PASSWORD: &str = "Sud0-p2fa-Horse";

/// The sudoers drop-in and PAM service for one test.
struct SudoSetup {
    sudoers: PathBuf,
    pam: PathBuf,
}

impl SudoSetup {
    fn new(env: &Env, user: &str, tag: &str) -> SudoSetup {
        let service = format!("p2fa-sudo-{tag}");
        let pam = PathBuf::from("/etc/pam.d").join(&service);
        std::fs::write(
            &pam,
            format!(
                "auth required pam_unix.so\n\
                 auth required {} config={}\n\
                 account required pam_unix.so\n\
                 session required pam_permit.so\n",
                common::module_path().display(),
                env.conf.display()
            ),
        )
        .unwrap();
        let sudoers = PathBuf::from("/etc/sudoers.d").join(format!("p2fa-test-{tag}"));
        let text = format!(
            "{user} ALL=(ALL) ALL\nDefaults:{user} pam_service={service}\nDefaults:{user} !lecture\n"
        );
        let tmp = std::env::temp_dir().join(format!("p2fa-sudoers-{tag}"));
        std::fs::write(&tmp, &text).unwrap();
        let check = Command::new("visudo")
            .arg("-cf")
            .arg(&tmp)
            .output()
            .unwrap();
        assert!(check.status.success(), "visudo: {check:?}");
        std::fs::remove_file(&tmp).unwrap();
        let setup = SudoSetup { sudoers, pam };
        std::fs::write(&setup.sudoers, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&setup.sudoers, std::fs::Permissions::from_mode(0o440)).unwrap();
        setup
    }
}

impl Drop for SudoSetup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sudoers);
        let _ = std::fs::remove_file(&self.pam);
    }
}

/// `sudo -S -k id -un` as `user`, with `input` on stdin (password, then
/// code: sudo -S reads every hidden prompt from stdin).
fn sudo(user: &str, input: &str) -> (bool, String, String) {
    let mut child = Command::new("runuser")
        .args(["-u", user, "--", "sudo", "-S", "-k", "id", "-un"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sudo_asks_for_the_code_after_the_password() {
    let user = system_user("p2fa-sudo1", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&user);
    let _setup = SudoSetup::new(&env, &user, "a");
    let logs = env.collect_logs();

    let wrong = common::wrong_totp(SECRET, common::now());
    let (ok, out, err) = sudo(&user, &format!("{PASSWORD}\n{wrong}\n"));
    assert!(!ok, "wrong code ran the command: {out} {err}");
    assert_ne!(out, "root", "{err}");
    assert!(err.contains("Verification code: "), "{err}");

    common::fresh_step(8);
    let code = totp(SECRET, None);
    let (ok, out, err) = sudo(&user, &format!("{PASSWORD}\n{code}\n"));
    assert!(ok, "sudo failed: {err}");
    assert_eq!(out, "root");
    assert!(err.contains("Verification code: "), "{err}");

    let lines = logs.finish().join("\n");
    assert!(
        lines.contains(&format!(
            "auth ok user={user} service=p2fa-sudo-a rhost=- factor=totp"
        )),
        "{lines}"
    );
    assert!(
        lines.contains(&format!("auth failed user={user} service=p2fa-sudo-a")),
        "{lines}"
    );
}

#[test]
fn sudo_with_a_backup_code_once() {
    let user = system_user("p2fa-sudo2", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&user);
    let codes = env.enroll_backup(&user, 3);
    let _setup = SudoSetup::new(&env, &user, "b");
    let (ok, out, err) = sudo(&user, &format!("{PASSWORD}\n{}\n", codes[1]));
    assert!(ok, "{err}");
    assert_eq!(out, "root");
    // sudo passes PAM_SILENT (its `pam_silent` default), so the module
    // keeps "2 left" to itself.
    assert!(!err.contains("left"), "PAM_SILENT honoured: {err}");
    assert_eq!(
        env.sql(&format!(
            "SELECT count(*) FROM backup_codes WHERE user='{user}' AND used_at IS NULL"
        )),
        "2"
    );
    let (ok, _, err) = sudo(&user, &format!("{PASSWORD}\n{}\n", codes[1]));
    assert!(!ok, "backup code reused: {err}");
    // Wrong password: the code is never even asked for usefully, and no
    // success is possible.
    let (ok, _, _) = sudo(&user, &format!("wrong-password\n{}\n", codes[2]));
    assert!(!ok);
}
