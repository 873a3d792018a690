//! Real sudo (setuid, Debian's 1.9.x) with pam_2fa in its stack, run as an
//! ordinary test user through `runuser` (harness: tests/common/sudo.rs).

mod common;

use common::sudo::*;
use common::*;
use std::process::Command;

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
    match sudo.try_write_sudoers(", !pam_silent") {
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
            let out = run_with_input(
                Command::new("pamtester").args([&sudo.service, &sudo.user, "authenticate"]),
                format!("{PASSWORD}\n{code}\n").as_bytes(),
            );
            let text = output_text(&out);
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
