//! A real OpenSSH sshd on a loopback port with pam_unix + pam_2fa, and a
//! scripted keyboard-interactive client (paramiko): password + TOTP logs
//! in and runs a command; a wrong or replayed code does not.

mod common;

use common::sshd::Sshd;
use common::{Env, SECRET, system_user, totp};

const PASSWORD: &str = "Corr3ct-Horse-p2fa";

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn password_and_totp_over_ssh() {
    let user = system_user("p2fa-ssh1", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&user);
    let logs = env.collect_logs();
    let sshd = Sshd::start(&env, "");

    common::fresh_step(10);
    let code = totp(SECRET, None);
    let pw = format!("password={PASSWORD}");
    let good = format!("verification code={code}");
    let out = sshd.login(&user, &["--answer", &pw, "--answer", &good]);
    let t = text(&out);
    assert!(
        out.status.success(),
        "login failed:\n{t}\n{}",
        sshd.log_text()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), user, "{t}");
    assert!(t.contains("prompt: Verification code: "), "{t}");

    // The same code again: replay refused (sshd lets the client retry,
    // each try fails, the client gives up).
    let out = sshd.login(&user, &["--answer", &pw, "--answer", &good]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "replayed code accepted:\n{t}");

    // A wrong code.
    let wrong = format!(
        "verification code={}",
        common::wrong_totp(SECRET, common::now())
    );
    let out = sshd.login(&user, &["--answer", &pw, "--answer", &wrong]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "wrong code accepted:\n{}",
        text(&out)
    );

    // A wrong password never reaches the code check in a useful way.
    let bad_pw = "password=not-the-password".to_string();
    let out = sshd.login(&user, &["--answer", &bad_pw, "--answer", &good]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));

    drop(sshd);
    let lines = logs.finish().join("\n");
    let ok: Vec<&str> = lines.lines().filter(|l| l.contains("auth ok")).collect();
    assert_eq!(ok.len(), 1, "exactly one success:\n{lines}");
    assert!(
        ok[0].contains(&format!(
            "user={user} service=sshd rhost=127.0.0.1 factor=totp"
        )),
        "{lines}"
    );
    assert!(lines.contains("reason=replayed-code"), "{lines}");
    assert!(lines.contains("reason=wrong-code"), "{lines}");
    assert!(!lines.contains(&code), "the code must never be logged");
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
    let t = text(&out);
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
        Some(5),
        "backup code reused:\n{}",
        text(&out)
    );
}
