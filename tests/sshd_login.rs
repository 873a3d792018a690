//! A real OpenSSH sshd on a loopback port with pam_unix + pam_2fa, and a
//! scripted keyboard-interactive client (paramiko): password + TOTP logs
//! in and runs a command; a wrong or replayed code does not.
//!
//! sshd always uses the PAM service `sshd`; `common::sshd` gives it our own
//! stack through pam_wrapper, so `/etc/pam.d/sshd` is never touched. The
//! client (`tests/ssh_client.py`) prints every prompt it answers to stderr
//! as `prompt: ...` and exits 5 when authentication fails.

mod common;

use common::sshd::Sshd;
use common::{Env, SECRET, output_text, system_user, totp};

const PASSWORD: &str = "Corr3ct-Horse-p2fa";

/// Exit status of `ssh_client.py` when the server refuses authentication.
const AUTH_FAILED: i32 = 5;

/// The pam_2fa log lines (headers stripped) that mention `needle`. Each
/// has pam_syslog()'s form with sshd as the host program:
/// `sshd[PID]: pam_2fa(sshd:auth): ...`.
fn lines_with<'a>(lines: &'a str, needle: &str) -> Vec<&'a str> {
    lines
        .lines()
        .filter(|l| l.contains(needle))
        .map(|l| {
            let p = common::pam_line(l).unwrap_or_else(|| panic!("not a pam_2fa line: {l}"));
            assert_eq!(
                (p.ident, p.service, p.hook),
                ("sshd", "sshd", "auth"),
                "{l}"
            );
            p.message
        })
        .collect()
}

#[test]
fn password_and_totp_over_ssh() {
    let user = system_user("p2fa-ssh1", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&user);
    let logs = env.collect_logs();
    let sshd = Sshd::start(&env, "");

    // A code with at least 10 s of its step left, so the replay below is
    // checked while the code is still current (a code of an old step
    // would be refused as wrong, not as replayed).
    common::fresh_step(10);
    let code = totp(SECRET, None);
    let pw = format!("password={PASSWORD}");
    let good = format!("verification code={code}");
    let out = sshd.login(&user, &["--answer", &pw, "--answer", &good]);
    let t = output_text(&out);
    assert!(
        out.status.success(),
        "login failed:\n{t}\n{}",
        sshd.log_text()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), user, "{t}");
    // pam_unix asks first, then pam_2fa, each as its own
    // keyboard-interactive prompt.
    let password_at = t.find("prompt: Password: ").expect(&t);
    let code_at = t.find("prompt: Verification code: ").expect(&t);
    assert!(password_at < code_at, "{t}");

    // The same code again: replay refused.
    let out = sshd.login(&user, &["--answer", &pw, "--answer", &good]);
    let t = output_text(&out);
    assert_eq!(
        out.status.code(),
        Some(AUTH_FAILED),
        "replayed code accepted:\n{t}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "{t}"
    );

    // A wrong code (not the code of any nearby step).
    let wrong = format!(
        "verification code={}",
        common::wrong_totp(SECRET, common::now())
    );
    let out = sshd.login(&user, &["--answer", &pw, "--answer", &wrong]);
    let t = output_text(&out);
    assert_eq!(
        out.status.code(),
        Some(AUTH_FAILED),
        "wrong code accepted:\n{t}"
    );
    assert!(t.contains("prompt: Verification code: "), "{t}");
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "{t}"
    );

    drop(sshd);
    let lines = logs.finish().join("\n");
    let who = format!("user={user} service=sshd rhost=127.0.0.1");
    let ok = lines_with(&lines, "auth ok");
    assert_eq!(ok, [format!("auth ok {who} factor=totp")], "{lines}");
    let replayed = lines_with(&lines, "reason=replayed-code");
    assert_eq!(replayed.len(), 1, "{lines}");
    assert!(
        replayed[0].starts_with(&format!(
            "auth failed {who} factor=totp reason=replayed-code"
        )),
        "{lines}"
    );
    let wrong = lines_with(&lines, "reason=wrong-code");
    assert_eq!(wrong.len(), 1, "{lines}");
    assert!(
        wrong[0].starts_with(&format!("auth failed {who} factor=totp reason=wrong-code")),
        "{lines}"
    );
    assert!(
        !lines.contains(&code),
        "a code must never be logged:\n{lines}"
    );
    assert!(!lines.contains(PASSWORD), "{lines}");
}

#[test]
fn backup_code_over_ssh_once() {
    let user = system_user("p2fa-ssh2", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&user);
    let codes = env.enroll_backup(&user, 2);
    let sshd = Sshd::start(&env, "");
    let pw = format!("password={PASSWORD}");
    let bc = format!("verification code={}", codes[0]);
    let out = sshd.login(&user, &["--answer", &pw, "--answer", &bc]);
    let t = output_text(&out);
    // (The "1 left" note comes after the last prompt; OpenSSH shows PAM
    // text only together with a prompt, so it does not reach the client.)
    assert!(out.status.success(), "{t}\n{}", sshd.log_text());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), user);
    assert_eq!(
        env.sql(&format!(
            "SELECT count(*) FROM backup_codes WHERE user='{user}' AND used_at IS NOT NULL"
        )),
        "1"
    );
    let out = sshd.login(&user, &["--answer", &pw, "--answer", &bc]);
    assert_eq!(
        out.status.code(),
        Some(AUTH_FAILED),
        "backup code reused:\n{}",
        output_text(&out)
    );

    // A valid, unused backup code does not make up for a wrong password:
    // pam_unix is really in sshd's stack.
    let unused = format!("verification code={}", codes[1]);
    let out = sshd.login(
        &user,
        &["--answer", "password=not-the-password", "--answer", &unused],
    );
    let t = output_text(&out);
    assert_eq!(
        out.status.code(),
        Some(AUTH_FAILED),
        "wrong password accepted:\n{t}"
    );
    assert!(t.contains("prompt: Password: "), "{t}");
}
