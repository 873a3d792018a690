//! Logins through the real libpam loading the built module (pam_wrapper).

mod common;
use common::*;

#[test]
fn totp_success_then_replay_refused() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let code = totp(SECRET, None);
    let first = env.login(&user, format!("{code}\n").as_bytes());
    assert!(first.ok, "{}", first.output);
    let replay = env.login(&user, format!("{code}\n").as_bytes());
    assert!(!replay.ok, "replayed code accepted: {}", replay.output);
    assert!(
        replay.output.contains("Invalid or already used code"),
        "{}",
        replay.output
    );
    let logs = env.logs().join("\n");
    assert!(
        logs.contains("auth ok user=p2fa-alice service=p2fa"),
        "{logs}"
    );
    assert!(logs.contains("reason=replayed-code"), "{logs}");
    assert!(!logs.contains(&code), "code leaked into the log: {logs}");
}
