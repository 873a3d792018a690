//! Migration imports through the real `2fa-enroll import`, with fixtures in
//! all three formats (valid and malformed), followed by logins through the
//! real libpam (pamtester + pam_wrapper) with the imported secrets; codes
//! are computed by oathtool. Every test name starts with `import_`.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Env, SECRET, enroll_bin, hotp, in_step, now, step_of, system_user, totp, totp_with};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// SECRET in hex (RFC 4226's key).
const HEX: &str = "3132333435363738393031323334353637383930";
/// Another secret, for tokens that must be replaced or ignored.
const OTHER: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const OTHER_HEX: &str = "48656c6c6f21deadbeef48656c6c6f21deadbeef";
const SCRATCH: [&str; 2] = ["11223344", "55667788"];

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Nothing secret in what the command printed.
fn assert_no_secrets(o: &Output) {
    let text = format!("{}{}", out(o), err(o));
    for s in [SECRET, HEX, OTHER, OTHER_HEX, "GEZDGNBV", "31323334"]
        .iter()
        .chain(SCRATCH.iter())
    {
        assert!(!text.contains(s), "{s} printed:\n{text}");
    }
    assert!(!text.contains("1122") && !text.contains("5566"), "{text}");
}

/// What a dry run must leave alone: every user's status and the rows.
fn snapshot(env: &Env, users: &[&str]) -> String {
    let mut s: Vec<String> = users
        .iter()
        .map(|u| env.status_json(u).to_string())
        .collect();
    s.push(
        env.sql("SELECT user, kind, hex(secret), counter, last_step FROM otp_tokens ORDER BY user"),
    );
    s.push(env.sql("SELECT user, hex(hash), used_at FROM backup_codes ORDER BY id"));
    s.join("\n")
}

fn home(user: &str) -> (PathBuf, nix::unistd::Uid, nix::unistd::Gid) {
    let u = nix::unistd::User::from_name(user).unwrap().unwrap();
    (u.dir, u.uid, u.gid)
}

fn write(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn ok(r: &common::PamResult) -> bool {
    r.ok
}

#[test]
fn import_google_authenticator_default_file_dry_run_then_apply_and_login() {
    let user = system_user("p2fa-imp-ga", "Imp0rt-p2fa-1");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    // Enrolled before: an old token and old backup codes, both replaced.
    env.enroll_ok(
        &["totp", "--user", &user, "--secret", OTHER, "--no-verify"],
        "",
    );
    let old_codes = env.enroll_backup(&user, 3);

    // The file as google-authenticator leaves it in the user's home: the
    // code of step `spent` was used (DISALLOW_REUSE) and must stay spent.
    let spent = step_of(now()) + 100;
    let (dir, uid, gid) = home(&user);
    let file = dir.join(".google_authenticator");
    write(
        &file,
        &format!(
            "{SECRET}\n\" RATE_LIMIT 3 30 1700000000\n\" WINDOW_SIZE 17\n\" DISALLOW_REUSE {} {spent}\n\" TOTP_AUTH\n{}\n{}\n",
            spent - 1,
            SCRATCH[0],
            SCRATCH[1]
        ),
        0o400,
    );
    nix::unistd::chown(&file, Some(uid), Some(gid)).unwrap();

    let before = snapshot(&env, &[&user]);
    let o = env.enroll(&["import", "google-authenticator", "--user", &user], "");
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    let text = out(&o);
    assert!(
        text.contains(&format!(
            "{user}: would import a TOTP token (6 digits, every 30 s, SHA1) and 2 scratch codes as backup codes; replaces the current TOTP token and the 3 unused backup codes"
        )),
        "{text}"
    );
    assert!(
        text.contains(&file.display().to_string()),
        "default path: {text}"
    );
    assert!(
        text.contains(
            "WINDOW_SIZE 17 (codes from 8 step(s) before to 8 after) differs from totp.window = 1"
        ),
        "{text}"
    );
    assert!(text.contains("RATE_LIMIT (3 logins per 30 s)"), "{text}");
    assert!(text.contains("Dry run: nothing was written"), "{text}");
    assert!(!text.contains("accessible to others"), "0400 file: {text}");
    assert_no_secrets(&o);
    assert_eq!(snapshot(&env, &[&user]), before, "the dry run wrote");

    let o = env.enroll(
        &["import", "google-authenticator", "--user", &user, "--apply"],
        "",
    );
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains(&format!("{user}: imported a TOTP token")),
        "{}",
        out(&o)
    );
    assert!(out(&o).contains("Imported 1 user from"), "{}", out(&o));
    assert_no_secrets(&o);
    let logs = env.logs().join("\n");
    assert!(
        logs.contains(&format!("imported user={user} from=google-authenticator"))
            && logs.contains("otp=totp backup_codes=2 replaced=true by=root"),
        "{logs}"
    );
    assert!(
        !logs.contains(SECRET) && !logs.contains(SCRATCH[0]),
        "{logs}"
    );
    let st = env.status_json(&user);
    assert_eq!(st["otp"]["kind"], "totp", "{st}");
    assert_eq!(st["backup_codes_remaining"], 2, "{st}");

    // TOTP: the spent step is refused, the next one works; the old token
    // is gone.
    let t = in_step(spent);
    assert!(!ok(&env.login_at(
        &user,
        format!("{}\n", totp(SECRET, Some(t))).as_bytes(),
        t
    )));
    let t = in_step(spent + 1);
    assert!(
        ok(&env.login_at(&user, format!("{}\n", totp(SECRET, Some(t))).as_bytes(), t)),
        "imported TOTP secret"
    );
    let t = in_step(spent + 2);
    assert!(!ok(&env.login_at(
        &user,
        format!("{}\n", totp(OTHER, Some(t))).as_bytes(),
        t
    )));
    // Scratch codes are backup codes now; the old backup codes are gone.
    assert!(!ok(
        &env.login(&user, format!("{}\n", old_codes[0]).as_bytes())
    ));
    assert!(
        ok(&env.login(&user, b"1122-3344\n")),
        "GA scratch code as a backup code"
    );
    assert!(
        !ok(&env.login(&user, b"11223344\n")),
        "a backup code works once"
    );
    assert_eq!(env.status_json(&user)["backup_codes_remaining"], 1);
}

#[test]
fn import_google_authenticator_hotp_file_and_unknown_user() {
    let user = system_user("p2fa-imp-gh", "Imp0rt-p2fa-2");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let file = env.root().join("ga-hotp");
    write(
        &file,
        &format!("{SECRET}\n\" HOTP_COUNTER 7\n\" WINDOW_SIZE 3\n"),
        0o600,
    );
    let f = file.to_str().unwrap();

    // A user the system does not know is reported and skipped.
    let o = env.enroll(
        &[
            "import",
            "google-authenticator",
            "--user",
            "p2fa-imp-nosuch",
            f,
            "--apply",
        ],
        "",
    );
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains("p2fa-imp-nosuch: skipped: no such user on this system"),
        "{}",
        out(&o)
    );
    assert!(out(&o).contains("Nothing to import."), "{}", out(&o));
    assert_eq!(env.sql("SELECT count(*) FROM otp_tokens"), "0");

    let o = env.enroll(
        &[
            "import",
            "google-authenticator",
            "--user",
            &user,
            f,
            "--apply",
        ],
        "",
    );
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    let text = out(&o);
    assert!(
        text.contains(&format!(
            "{user}: imported an HOTP token (6 digits, next counter 7, SHA1)\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("WINDOW_SIZE 3 (the next 3 counters) differs from hotp.look_ahead = 10"),
        "{text}"
    );
    assert_no_secrets(&o);
    assert_eq!(env.status_json(&user)["otp"]["counter"], 7);
    assert!(
        !ok(&env.login(&user, format!("{}\n", hotp(SECRET, 6)).as_bytes())),
        "spent counter"
    );
    assert!(
        ok(&env.login(&user, format!("{}\n", hotp(SECRET, 7)).as_bytes())),
        "imported HOTP"
    );
    assert!(
        !ok(&env.login(&user, format!("{}\n", hotp(SECRET, 7)).as_bytes())),
        "once"
    );
    assert!(
        ok(&env.login(&user, format!("{}\n", hotp(SECRET, 9)).as_bytes())),
        "look-ahead"
    );
}

#[test]
fn import_oath_usersfile_dry_run_then_apply_and_login() {
    let a = system_user("p2fa-imp-oa", "Imp0rt-p2fa-3");
    let b = system_user("p2fa-imp-ob", "Imp0rt-p2fa-3");
    let c = system_user("p2fa-imp-oc", "Imp0rt-p2fa-3");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let file = env.root().join("users.oath");
    // b used counter 4 with pam_oath (liboath rewrote the line): it is
    // spent, 5 is next. a's second line is ignored (one token per user).
    write(
        &file,
        &format!(
            "# users.oath\n\n\
             HOTP/T30\t{a}\t-\t{HEX}\n\
             HOTP\t{b}\t-\t{HEX}\t4\t{}\t2026-01-01T10:00:00L\n\
             HOTP/T60/8 {c} 1234 {}\n\
             HOTP/T30 p2fa-imp-nosuch - {HEX}\n\
             HOTP/T30 {a} - {OTHER_HEX}\n",
            hotp(SECRET, 4),
            HEX.to_uppercase()
        ),
        0o600,
    );
    let f = file.to_str().unwrap();
    let users = [a.as_str(), b.as_str(), c.as_str()];
    let before = snapshot(&env, &users);
    let o = env.enroll(&["import", "oath", f], "");
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    let text = out(&o);
    for want in [
        format!("{a}: would import a TOTP token (6 digits, every 30 s, SHA1)\n"),
        "line 7: another token for this user ignored".to_string(),
        format!("{b}: would import an HOTP token (6 digits, next counter 5, SHA1)\n"),
        format!("{c}: would import a TOTP token (8 digits, every 60 s, SHA1)\n"),
        "the token PIN is not carried over".to_string(),
        "p2fa-imp-nosuch: skipped: no such user on this system (line 6)".to_string(),
        "Run again with --apply to import 3 users.".to_string(),
    ] {
        assert!(text.contains(&want), "missing {want:?}:\n{text}");
    }
    assert_no_secrets(&o);
    assert_eq!(snapshot(&env, &users), before, "the dry run wrote");

    // --user keeps one user's line.
    let o = env.enroll(&["import", "oath", "--user", &b, f], "");
    assert!(o.status.success());
    assert!(out(&o).contains(&format!("{b}: would import")) && !out(&o).contains(&a));

    let o = env.enroll(&["import", "oath", f, "--apply"], "");
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert!(out(&o).contains("Imported 3 users from"), "{}", out(&o));
    assert_no_secrets(&o);

    let t = now();
    assert!(
        ok(&env.login_at(&a, format!("{}\n", totp(SECRET, Some(t))).as_bytes(), t)),
        "imported TOTP (first line of the user)"
    );
    let t = t + 30;
    assert!(!ok(&env.login_at(
        &a,
        format!("{}\n", totp(OTHER, Some(t))).as_bytes(),
        t
    )));
    assert!(
        !ok(&env.login(&b, format!("{}\n", hotp(SECRET, 4)).as_bytes())),
        "spent with pam_oath"
    );
    assert!(
        ok(&env.login(&b, format!("{}\n", hotp(SECRET, 5)).as_bytes())),
        "imported HOTP"
    );
    let t = now();
    let code = totp_with(SECRET, Some(t), &["--digits=8", "--time-step-size=60s"]);
    assert_eq!(code.len(), 8);
    assert!(
        ok(&env.login_at(&c, format!("{code}\n").as_bytes(), t)),
        "8 digits, 60 s"
    );
    let st = env.status_json(&c);
    assert_eq!(
        (st["otp"]["digits"].clone(), st["otp"]["period"].clone()),
        (8.into(), 60.into()),
        "{st}"
    );
}

#[test]
fn import_malformed_files_are_refused_with_line_numbers() {
    let user = system_user("p2fa-imp-bad", "Imp0rt-p2fa-4");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let cases: Vec<(&str, Vec<&str>, String, Vec<&str>)> = vec![
        (
            "ga-bad",
            vec!["google-authenticator", "--user", &user],
            format!(
                "{SECRET}\n\" TOTP_AUTH\n\" STEP_SIZE 0\n1234\n{}\n\" WINDOW_SIZE\n",
                SCRATCH[0]
            ),
            vec![
                "ga-bad:3: STEP_SIZE must be 1..60 seconds",
                "ga-bad:4: neither an option",
                "ga-bad:6: WINDOW_SIZE must be 1..100",
            ],
        ),
        (
            "ga-secret",
            vec!["google-authenticator", "--user", &user],
            format!("{}\n\" TOTP_AUTH\n", &SECRET[..8]),
            vec!["ga-secret:1: first line: the secret decodes to 5 bytes"],
        ),
        (
            "oath-bad",
            vec!["oath"],
            format!(
                "HOTP/T30 {user} - {HEX}\nTOTP {user} - {HEX}\nHOTP {user} - {HEX}zz\nHOTP/T30 {user}\nHOTP {user} - {HEX} x\nHOTP/T90/9 {user} - {HEX}\n"
            ),
            vec![
                "oath-bad:2: unknown token type",
                "oath-bad:3: the secret is not hex",
                "oath-bad:4: want TYPE USER PIN SECRET",
                "oath-bad:5: the counter is not a number",
                "oath-bad:6: unknown token type",
            ],
        ),
        (
            "oath-binary",
            vec!["oath"],
            format!("HOTP/T30 {user} - {HEX}\n\u{0}\n"),
            vec!["oath-binary:2: NUL byte"],
        ),
        (
            "u2f-bad",
            vec!["pam-u2f"],
            format!(
                "{user}:{kh},{pk},es256,+presence\n{user}\n{user}:{kh},{pk},rsa,+presence\n{user}:{kh},{pk},es256,+touch\n{user}:{kh}\n{user}:{kh},{short},es256,+presence\n",
                kh = B64.encode([9u8; 64]),
                pk = B64.encode([4u8; 64]),
                short = B64.encode([4u8; 20]),
            ),
            vec![
                "u2f-bad:2: no credentials after the user name",
                "u2f-bad:3: credential 1: the COSE type must be es256, eddsa or rs256",
                "u2f-bad:4: credential 1: unknown option",
                "u2f-bad:5: credential 1: a credential is KEYHANDLE,PUBKEY,COSETYPE,OPTIONS",
                "u2f-bad:6: credential 1: the public key has the wrong length",
            ],
        ),
    ];
    let before = snapshot(&env, &[&user]);
    for (name, args, text, wants) in &cases {
        let path = env.root().join(name);
        write(&path, text, 0o600);
        for apply in [false, true] {
            let mut argv = vec!["import"];
            argv.extend(args.iter().copied());
            argv.push(path.to_str().unwrap());
            if apply {
                argv.push("--apply");
            }
            let o = env.enroll(&argv, "");
            assert!(!o.status.success(), "{name} accepted:\n{}", out(&o));
            let e = err(&o);
            for w in wants {
                assert!(e.contains(w), "{name}: missing {w:?} in:\n{e}");
            }
            assert!(
                e.lines()
                    .filter(|l| l.starts_with(&format!("{}:", path.display())))
                    .count()
                    == wants.len(),
                "{name}: exactly the bad lines:\n{e}"
            );
            assert!(
                e.contains("nothing was imported; fix them and run again"),
                "{e}"
            );
            assert_no_secrets(&o);
        }
    }
    assert_eq!(snapshot(&env, &[&user]), before, "a refused import wrote");
}

#[test]
fn import_pam_u2f_is_reported_but_never_applied() {
    let user = system_user("p2fa-imp-u2f", "Imp0rt-p2fa-5");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let kh = B64.encode([9u8; 64]);
    let file = env.root().join("u2f_mappings");
    write(
        &file,
        &format!(
            "{user}:{kh},{},es256,+presence:*,{},eddsa,+presence+verification\n\
             p2fa-imp-nosuch:{kh},{}\n",
            B64.encode([4u8; 64]),
            B64.encode([5u8; 32]),
            format_args!("04{}", "ab".repeat(64)),
        ),
        0o644,
    );
    let f = file.to_str().unwrap();
    let before = snapshot(&env, &[&user]);
    let o = env.enroll(&["import", "pam-u2f", f], "");
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    let text = out(&o);
    for want in [
        format!(
            "{user}: 2 credentials (es256 +presence, eddsa resident +presence+verification): cannot be imported"
        ),
        "p2fa-imp-nosuch: skipped: no such user on this system (line 2)".into(),
        "pam://HOSTNAME".into(),
        "sudo 2fa-enroll webauthn add --user NAME".into(),
        "[webauthn] enabled = true".into(),
    ] {
        assert!(text.contains(&want), "missing {want:?}:\n{text}");
    }
    let o = env.enroll(&["import", "pam-u2f", f, "--apply"], "");
    assert!(!o.status.success(), "--apply accepted: {}", out(&o));
    assert!(
        err(&o).contains("--apply: pam_u2f credentials cannot be imported")
            && err(&o).contains("nothing was written"),
        "{}",
        err(&o)
    );
    assert_eq!(snapshot(&env, &[&user]), before);
    assert_eq!(env.status_json(&user)["webauthn"], 0);
}

#[test]
fn import_as_ordinary_user_is_told_to_ask_an_administrator() {
    let user = system_user("p2fa-imp-usr", "Imp0rt-p2fa-6");
    let env = Env::new();
    let run = |args: &[&str]| {
        Command::new("runuser")
            .args(["-u", &user, "--"])
            .arg(enroll_bin())
            .arg("--config")
            .arg(&env.conf)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for (args, hint) in [
        (
            vec!["import", "google-authenticator"],
            "sudo 2fa-enroll import google-authenticator --user",
        ),
        (
            vec!["import", "oath", "/etc/users.oath", "--apply"],
            "sudo 2fa-enroll import oath FILE --user",
        ),
        (
            vec!["import", "pam-u2f", "/etc/u2f_mappings"],
            "sudo 2fa-enroll import pam-u2f FILE --user",
        ),
    ] {
        let o = run(&args);
        assert!(!o.status.success(), "{args:?}");
        let e = err(&o);
        assert!(e.contains(&format!("{hint} {user}")), "{args:?}: {e}");
        assert!(
            e.contains("Ask an administrator") && e.contains("not setuid"),
            "{e}"
        );
    }
    assert!(
        !env.db.exists() && !env.key.exists(),
        "a non-root run created files"
    );
}
