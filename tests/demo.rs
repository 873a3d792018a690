//! `scripts/demo --once` — the README's first command — builds the module,
//! starts sshd with pam_2fa, enrolls the demo user and logs in over SSH.

use std::process::Command;

#[test]
fn demo_script_logs_in_once() {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo"))
        .arg("--once")
        .output()
        .expect("scripts/demo");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Scan this QR code"), "{text}");
    assert!(
        text.contains("logged in as p2fa-demo on"),
        "the command ran as the demo user over ssh:\n{text}"
    );
    assert!(text.contains("prompt: Verification code: "), "{text}");
}
