//! `2fa-enroll` with no command: the interactive menu, driven on stdin;
//! and `reset --method`.

mod common;

use common::{Env, system_user};

#[test]
fn menu_adds_regenerates_and_removes() {
    let user = system_user("p2fa-menu", "Menu-p2fa-pw");
    let env = Env::with_config("[questions]\nenabled = true\ncount = 1\nask = 1\n");
    let script = "help\nbackup\nregenerate backup\nadd questions\n2\nParis\nParis\n\
                  default questions\nremove backup\ny\nremove sms\ny\nfrobnicate\nstatus\nquit\n";
    let out = env.enroll(&["menu", "--user", &user], script);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("Two-factor authentication for p2fa-menu."),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("Backup codes for p2fa-menu").count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("Saved 1 security questions"), "{stdout}");
    assert!(
        stdout.contains("Removed the backup codes of p2fa-menu"),
        "{stdout}"
    );
    assert!(
        stderr.contains("p2fa-menu has no SMS phone number"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown action"), "{stderr}");
    let st = env.status_json(&user);
    assert_eq!(st["backup_codes_remaining"], 0, "{st}");
    assert_eq!(st["questions"], 1, "{st}");
    assert_eq!(st["default_factor"], "questions", "{st}");

    // reset --method removes one method only.
    env.enroll_ok(&["backup", "--user", &user, "--count", "3"], "");
    env.enroll_ok(&["reset", "--user", &user, "--method", "questions"], "");
    let st = env.status_json(&user);
    assert_eq!(st["questions"], 0, "{st}");
    assert_eq!(st["backup_codes_remaining"], 3, "{st}");
    assert_eq!(
        st["default_factor"],
        serde_json::Value::Null,
        "default cleared with its factor"
    );
}
