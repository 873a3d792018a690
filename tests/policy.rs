//! Admin policy end to end: methods per group with real groups, exempt
//! accounts, the grace period moved with faketime, remembered devices
//! through a real sshd (and never for sudo-like services), inline
//! enrollment over sshd, and `2fa-enroll policy check`.

mod common;

use common::sshd::Sshd;
use common::{Env, SECRET, output_text, system_user, totp};
use std::process::Command;

const PASSWORD: &str = "P0licy-p2fa-Horse";

/// Creates `group` (if missing) and puts `user` in it.
fn in_group(user: &str, group: &str) {
    let lock = std::fs::File::create("/tmp/pam2fa-test-useradd.lock").unwrap();
    lock.lock().unwrap();
    let _ = Command::new("groupadd").arg(group).output();
    let st = Command::new("usermod")
        .args(["-aG", group, user])
        .status()
        .unwrap();
    assert!(st.success(), "usermod -aG {group} {user}");
}

#[test]
fn methods_per_group_and_exemptions() {
    let admin = system_user("p2fa-pol-adm", PASSWORD);
    let robot = system_user("p2fa-pol-bot", PASSWORD);
    in_group(&admin, "p2fa-admins");
    in_group(&robot, "p2fa-robots");
    let env = Env::with_config(
        "[policy]\nexempt_groups = [\"p2fa-robots\"]\n\
         [policy.groups.p2fa-admins]\nmethods = [\"totp\"]\n",
    );
    let codes = env.enroll_backup(&admin, 2);
    // Admins may only use TOTP: backup codes alone get them nowhere.
    let a = env.attempt("p2fa", &admin, &format!("{}\n", codes[0]), None);
    assert!(!a.ok, "{}", a.output);
    assert!(
        a.output.contains("not allowed for your group"),
        "{}",
        a.output
    );
    assert!(
        a.log.contains("reason=factor-not-allowed-for-group"),
        "{}",
        a.log
    );
    env.enroll_totp(&admin);
    let a = env.attempt("p2fa", &admin, &format!("{}\n", codes[0]), None);
    assert!(
        !a.ok,
        "a backup code is still refused for an admin: {}",
        a.output
    );
    common::fresh_step(5);
    let a = env.attempt("p2fa", &admin, &format!("{}\n", totp(SECRET, None)), None);
    assert!(a.ok, "{}", a.output);
    // The exempt group logs in without being asked anything (PAM_IGNORE:
    // the rest of the stack decides; here pam_permit).
    env.service_key_and_code("p2fa-kc", "");
    let a = env.attempt("p2fa-kc", &robot, "", None);
    assert!(a.ok, "{}", a.output);
    assert!(!a.output.contains("Verification code"), "{}", a.output);
    assert!(
        a.log.contains("reason=exempt-group:p2fa-robots"),
        "{}",
        a.log
    );

    let out = env.enroll_ok(
        &["policy", "check", "--user", &admin, "--service", "sshd"],
        "",
    );
    assert!(
        out.contains("allowed methods: totp (from group p2fa-admins)"),
        "{out}"
    );
    assert!(
        out.contains("enrolled but not usable: backup (not allowed for this user)"),
        "{out}"
    );
    assert!(out.contains("result: asks for one of: totp"), "{out}");
    let out = env.enroll_ok(&["policy", "check", "--user", &robot], "");
    assert!(out.contains("exempt (exempt-group:p2fa-robots)"), "{out}");
}

#[test]
fn grace_period_with_faketime() {
    let user = system_user("p2fa-pol-grace", PASSWORD);
    let env = Env::with_config("unenrolled = \"grace\"\n[policy]\ngrace_days = 2\n");
    env.enroll_ok(&["init"], "");
    // Grace lets the user through with PAM_IGNORE: the stack of a host
    // where pam_2fa is the only auth module, which ends with pam_permit.
    env.service_key_and_code("p2fa", "");
    let t0 = 1_900_000_000;
    let a = env.attempt("p2fa", &user, "", Some(t0));
    assert!(a.ok, "{}", a.output);
    assert!(
        a.output.contains("mandatory for this account in 2 days"),
        "{}",
        a.output
    );
    assert!(
        a.log.contains("reason=unenrolled-grace days_left=2"),
        "{}",
        a.log
    );
    let a = env.attempt("p2fa", &user, "", Some(t0 + 86_400 + 60));
    assert!(a.ok);
    assert!(a.output.contains("in 1 day."), "{}", a.output);
    let out = env.enroll_ok(
        &["policy", "check", "--user", &user, "--service", "p2fa"],
        "",
    );
    assert!(out.contains("grace period"), "{out}");
    let a = env.attempt("p2fa", &user, "", Some(t0 + 2 * 86_400 + 1));
    assert!(!a.ok, "grace is over: {}", a.output);
    assert!(
        a.output.contains("grace period for setting up"),
        "{}",
        a.output
    );
    // Another service that the config keeps strict.
    env.write_config("unenrolled = \"grace\"\n[policy.services.p2fa]\nunenrolled = \"required\"\n");
    let a = env.attempt("p2fa", &user, "", Some(t0));
    assert!(!a.ok);
    assert!(a.log.contains("reason=no-factor-enrolled"), "{}", a.log);
}

#[test]
fn remembered_device_over_sshd_not_for_other_source_and_revocable() {
    let user = system_user("p2fa-pol-rem", PASSWORD);
    let env = Env::with_config("[remember]\nenabled = true\nhours = 12\n");
    env.enroll_totp(&user);
    let sshd = Sshd::start(&env, "");
    let pw = format!("password={PASSWORD}");
    common::fresh_step(10);
    let code = format!("verification code={}", totp(SECRET, None));
    let out = sshd.login(&user, &["--answer", &pw, "--answer", &code]);
    assert!(out.status.success(), "{}", output_text(&out));
    // Same source: no code asked (a wrong one is offered, to be sure).
    let wrong = "verification code=000000";
    let out = sshd.login(&user, &["--answer", &pw, "--answer", wrong]);
    let t = output_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(!t.contains("prompt: Verification code"), "{t}");
    // Another source (::1 is another rhost): asked again.
    let out = sshd.login_from("::1", &user, &["--answer", &pw, "--answer", wrong]);
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(t.contains("prompt: Verification code"), "{t}");

    let list = env.enroll_ok(&["devices", "list", "--user", &user], "");
    assert!(list.contains("rhost 127.0.0.1"), "{list}");
    assert!(!list.contains("::1"), "{list}");
    env.enroll_ok(&["devices", "revoke", "--all", "--user", &user], "");
    let out = sshd.login(&user, &["--answer", &pw, "--answer", wrong]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "revoked: asked again\n{}",
        output_text(&out)
    );
}

#[test]
fn sudo_is_never_remembered_unless_enabled() {
    let user = system_user("p2fa-pol-sudo", PASSWORD);
    let env = Env::with_config("[remember]\nenabled = true\n");
    env.enroll_totp(&user);
    env.service("sudo-p2fa", "");
    common::fresh_step(8);
    let a = env.attempt(
        "sudo-p2fa",
        &user,
        &format!("{}\n", totp(SECRET, None)),
        None,
    );
    assert!(a.ok, "{}", a.output);
    let a = env.attempt("sudo-p2fa", &user, "000000\n", None);
    assert!(!a.ok, "sudo remembered: {}", a.output);
    assert!(a.output.contains("Verification code"), "{}", a.output);
    // The admin can turn it on for sudo explicitly.
    env.write_config("[remember]\nenabled = true\nsudo = true\n");
    common::fresh_step(8);
    let t = common::now() + 30;
    let a = env.attempt(
        "sudo-p2fa",
        &user,
        &format!("{}\n", totp(SECRET, Some(t))),
        Some(t),
    );
    assert!(a.ok, "{}", a.output);
    let a = env.attempt("sudo-p2fa", &user, "", Some(t + 5));
    assert!(a.ok, "remembered for sudo once enabled: {}", a.output);
    assert!(a.log.contains("factor=remembered"), "{}", a.log);
    // ... and it expires (12 h by default).
    let a = env.attempt("sudo-p2fa", &user, "000000\n", Some(t + 12 * 3600 + 60));
    assert!(!a.ok, "{}", a.output);
}

#[test]
fn inline_enrollment_over_sshd() {
    let user = system_user("p2fa-pol-inline", PASSWORD);
    let env = Env::with_config("[policy]\ninline_enrollment = true\n");
    // Make sure the user starts without any factor (tests may rerun).
    let _ = env.enroll(&["reset", "--user", &user], "");
    env.enroll_ok(&["init"], "");
    let sshd = Sshd::start(&env, "");
    let pw = format!("password={PASSWORD}");
    let out = sshd.login(
        &user,
        &[
            "--answer",
            &pw,
            "--answer-totp",
            "code the app shows",
            "--answer-totp",
            "does not match",
            "--answer",
            "press enter to continue=",
        ],
    );
    let t = output_text(&out);
    assert!(out.status.success(), "{t}\n{}", sshd.log_text());
    assert!(t.contains("scan this QR code"), "{t}");
    assert!(t.contains("These backup codes let you in"), "{t}");
    let st = env.status_json(&user);
    assert_eq!(st["otp"]["kind"], "totp", "{st}");
    assert_eq!(st["backup_codes_remaining"], 15, "{st}");
    // From now on the user is enrolled: a wrong code is refused.
    let out = sshd.login(
        &user,
        &["--answer", &pw, "--answer", "verification code=000000"],
    );
    assert_eq!(out.status.code(), Some(5), "{}", output_text(&out));
}
