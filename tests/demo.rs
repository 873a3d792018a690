//! `scripts/demo --once` — the README's first command — builds the module
//! (release), starts sshd with pam_2fa, enrolls the demo user and logs in
//! over SSH with password + TOTP. Slow (a release build and up to 31 s
//! waiting for a fresh TOTP step), and needs root like every other test.

use std::path::Path;
use std::process::Command;

#[test]
fn demo_script_logs_in_once() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo");
    // `timeout` so a wedged demo fails the test instead of hanging it; its
    // TERM reaches the script's trap, which stops sshd and cleans up.
    let out = Command::new("timeout")
        .args(["--kill-after=30", "1200"])
        .arg(&demo)
        .arg("--once")
        .output()
        .expect("timeout scripts/demo --once");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "scripts/demo --once failed:\n{text}");

    // Enrollment showed the QR code and the otpauth:// URI.
    assert!(text.contains("Scan this QR code"), "{text}");
    assert!(
        text.contains("URI:        otpauth://totp/pam-2fa%20demo:p2fa-demo?secret="),
        "{text}"
    );
    // The client saw both prompts, in order, and the command ran as the
    // demo user over ssh.
    let pw = text.find("prompt: Password: ").expect(&text);
    let code = text.find("prompt: Verification code: ").expect(&text);
    assert!(pw < code, "{text}");
    assert!(
        text.contains("logged in as p2fa-demo on"),
        "the command ran as the demo user over ssh:\n{text}"
    );
    // pam_2fa, on sshd's PAM service, logged the success.
    assert!(
        text.contains("auth ok user=p2fa-demo service=sshd rhost=127.0.0.1 factor=totp"),
        "{text}"
    );

    // Cleanup: the temporary directory is gone and the demo password locked.
    let dir = text
        .lines()
        .find_map(|l| l.strip_prefix("==> working in "))
        .and_then(|l| l.split_whitespace().next())
        .expect(&text);
    assert!(
        dir.starts_with("/tmp/pam2fa-demo."),
        "unexpected temp dir {dir}"
    );
    assert!(!Path::new(dir).exists(), "{dir} left behind");
    let pid = text
        .lines()
        .find_map(|l| l.strip_prefix("==> sshd (pid "))
        .and_then(|l| l.split(')').next())
        .expect(&text);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(dir),
        "the demo's sshd (pid {pid}) outlived it"
    );
    let shadow = Command::new("getent")
        .args(["shadow", "p2fa-demo"])
        .output()
        .unwrap();
    let shadow = String::from_utf8_lossy(&shadow.stdout);
    assert!(
        shadow.split(':').nth(1).is_some_and(|h| h.starts_with('!')),
        "the demo password must be locked after the demo"
    );
}
