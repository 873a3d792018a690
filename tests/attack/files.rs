//! Imports and enrollment files (issue 11, items 27 to 29): an import run
//! again must not revive a code used here, absurd numbers in a file are
//! refused with FILE:LINE, and `backup --output` run by root for a user
//! must not write where that user could not.

use crate::common::{Env, SECRET, fresh_step, hotp, now, output_text, step_of, system_user, totp};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;

const PASSWORD: &str = "Files-imp0rt-Horse";
/// SECRET in hex, for pam_oath's usersfile.
const HEX: &str = "3132333435363738393031323334353637383930";

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// `2fa-enroll import ARGS FILE`, with `--apply` if `apply`.
fn import(env: &Env, args: &[&str], file: &Path, apply: bool) -> Output {
    let mut a = vec!["import"];
    a.extend(args);
    a.push(file.to_str().unwrap());
    if apply {
        a.push("--apply");
    }
    env.enroll(&a, "")
}

/// [`import`] that must succeed; what it printed.
fn import_ok(env: &Env, args: &[&str], file: &Path, apply: bool) -> String {
    let o = import(env, args, file, apply);
    assert!(o.status.success(), "{}", output_text(&o));
    output_text(&o)
}

/// Item 27: re-running `import google-authenticator --apply` brought back
/// the scratch code and the TOTP step already used here. Import, log in
/// (through libpam) with the TOTP code and a scratch code, import the same
/// file again: the dry run says the used codes stay used, and after
/// `--apply` both codes are still refused; the unused scratch code works.
#[test]
fn reimporting_google_authenticator_does_not_revive_used_codes() {
    let user = system_user("p2fa-ni-ga", PASSWORD);
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let file = env.root().join("google_authenticator");
    write(
        &file,
        &format!("{SECRET}\n\" TOTP_AUTH\n\" WINDOW_SIZE 3\n13572468\n24681357\n"),
    );
    let import = |apply| {
        import_ok(
            &env,
            &["google-authenticator", "--user", &user],
            &file,
            apply,
        )
    };
    import(true);

    fresh_step(12);
    let code = totp(SECRET, None);
    let a = env.attempt("p2fa", &user, &format!("{code}\n"), None);
    assert!(a.ok, "imported TOTP refused: {}\n{}", a.output, a.log);
    let a = env.attempt("p2fa", &user, "1357-2468\n", None);
    assert!(a.ok, "scratch code refused: {}\n{}", a.output, a.log);
    let used_step = step_of(now());

    let dry = import(false);
    assert!(
        dry.contains(&format!(
            "{user}: would import a TOTP token (6 digits, every 30 s, SHA1) and 1 scratch code as backup codes; replaces the current TOTP token (the same secret) and the 1 unused backup code; codes used here stay used (time steps up to {used_step} are spent); leaves out 1 scratch code used here already"
        )),
        "{dry}"
    );
    let applied = import(true);
    assert!(applied.contains("codes used here stay used"), "{applied}");

    let a = env.attempt("p2fa", &user, &format!("{code}\n"), None);
    assert!(!a.ok, "the used TOTP code works again: {}", a.log);
    assert!(a.log.contains("reason=replayed-code"), "{}", a.log);
    let a = env.attempt("p2fa", &user, "1357-2468\n", None);
    assert!(!a.ok, "the used scratch code works again: {}", a.log);
    let a = env.attempt("p2fa", &user, "2468-1357\n", None);
    assert!(a.ok, "the unused scratch code: {}\n{}", a.output, a.log);
    // Used codes stay on record, so a third import cannot revive them.
    import(true);
    let a = env.attempt("p2fa", &user, "1357-2468\n", None);
    assert!(!a.ok, "third import revived a scratch code: {}", a.log);
    let a = env.attempt("p2fa", &user, "2468-1357\n", None);
    assert!(!a.ok, "third import revived a scratch code: {}", a.log);
}

/// Item 27, pam_oath: re-importing `/etc/users.oath` reset an HOTP
/// counter below the codes used here.
#[test]
fn reimporting_users_oath_does_not_rewind_the_hotp_counter() {
    let user = system_user("p2fa-ni-oath", PASSWORD);
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let file = env.root().join("users.oath");
    write(&file, &format!("HOTP {user} - {HEX} 0\n"));
    let import = |apply| import_ok(&env, &["oath", "--user", &user], &file, apply);
    import(true);
    for c in 0..2 {
        let a = env.attempt("p2fa", &user, &format!("{}\n", hotp(SECRET, c)), None);
        assert!(a.ok, "counter {c}: {}\n{}", a.output, a.log);
    }
    let dry = import(false);
    assert!(
        dry.contains("the same secret") && dry.contains("the counter stays at 2 or more"),
        "{dry}"
    );
    import(true);
    for c in 0..2 {
        let a = env.attempt("p2fa", &user, &format!("{}\n", hotp(SECRET, c)), None);
        assert!(!a.ok, "used counter {c} works again: {}", a.log);
    }
    let a = env.attempt("p2fa", &user, &format!("{}\n", hotp(SECRET, 2)), None);
    assert!(a.ok, "next counter: {}\n{}", a.output, a.log);
}

/// Item 28: `DISALLOW_REUSE 9223372036854775807` (and other absurd
/// numbers) were imported silently and made every code a "used" one. The
/// file is refused with FILE:LINE, nothing is written, and the token the
/// user has keeps working.
#[test]
fn absurd_numbers_in_imported_files_are_refused_with_file_and_line() {
    let user = system_user("p2fa-ni-absurd", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&user);
    let before = env.user_row(&user);
    let ga = env.root().join("ga-absurd");
    let oath = env.root().join("oath-absurd");
    let cases: Vec<(&Path, String, Vec<&str>, String)> = vec![
        (
            &ga,
            format!("{SECRET}\n\" TOTP_AUTH\n\" DISALLOW_REUSE 9223372036854775807\n"),
            vec!["google-authenticator", "--user", &user],
            format!("{}:3: DISALLOW_REUSE", ga.display()),
        ),
        (
            &ga,
            format!(
                "{SECRET}\n\" RATE_LIMIT 3 30\n\" DISALLOW_REUSE {}\n\" TOTP_AUTH\n",
                step_of(now()) + 1000
            ),
            vec!["google-authenticator", "--user", &user],
            format!("{}:3: DISALLOW_REUSE", ga.display()),
        ),
        (
            &ga,
            format!("{SECRET}\n\" HOTP_COUNTER 4611686018427387903\n"),
            vec!["google-authenticator", "--user", &user],
            format!("{}:2: HOTP_COUNTER", ga.display()),
        ),
        (
            &oath,
            format!("HOTP {user} - {HEX} 4611686018427387903\n"),
            vec!["oath"],
            format!("{}:1: the counter is larger than", oath.display()),
        ),
    ];
    for (path, content, args, want) in cases {
        write(path, &content);
        for apply in [false, true] {
            let o = import(&env, &args, path, apply);
            let t = output_text(&o);
            assert!(!o.status.success(), "{content:?} imported: {t}");
            assert!(t.contains(&want), "expected {want:?}: {t}");
            assert!(t.contains("nothing was imported"), "{t}");
            assert_eq!(env.user_row(&user), before, "{content:?}: store changed");
        }
    }
    fresh_step(10);
    let a = env.attempt("p2fa", &user, &format!("{}\n", totp(SECRET, None)), None);
    assert!(a.ok, "{}\n{}", a.output, a.log);
}

/// Item 29: `sudo 2fa-enroll backup --user U --output ~U/dir/codes` with
/// `~U/dir` a symlink the user made to a directory only root may write:
/// the file was created there and handed to the user. Now the file is
/// written with the user's own rights, so it lands only where the user
/// could have written it; the refusal changes nothing, the old codes
/// still work. A plain path in the home works and is the user's, 0600.
#[test]
fn backup_output_through_a_users_symlink_is_written_with_the_users_rights() {
    let user = system_user("p2fa-ni-bak", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&user);
    let old = env.enroll_backup(&user, 2);
    let pw = nix::unistd::User::from_name(&user).unwrap().unwrap();
    let home = pw.dir.clone();
    // Only root may write here (its parent, the Env dir, is root's too).
    let victim = env.root().join("root-only");
    fs::create_dir(&victim).unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).unwrap();
    let link = home.join("codes-dir");
    let _ = fs::remove_file(&link);
    let st = std::process::Command::new("runuser")
        .args(["-u", &user, "--", "ln", "-s"])
        .arg(&victim)
        .arg(&link)
        .status()
        .unwrap();
    assert!(st.success());

    let target = link.join("backup-codes.txt");
    let o = env.enroll(
        &[
            "backup",
            "--user",
            &user,
            "--count",
            "3",
            "--output",
            target.to_str().unwrap(),
        ],
        "",
    );
    let t = output_text(&o);
    assert!(
        fs::read_dir(&victim).unwrap().next().is_none(),
        "a file was created in the root-only directory: {t}"
    );
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("cannot create"), "{t}");
    assert_eq!(
        env.status_json(&user)["backup_codes_remaining"],
        2,
        "the codes changed although the file was refused"
    );
    let a = env.attempt("p2fa", &user, &format!("{}\n", old[0]), None);
    assert!(a.ok, "old code: {}\n{}", a.output, a.log);

    // An ordinary path in the home: created by the user, 0600.
    let plain = home.join("p2fa-ni-codes.txt");
    let _ = fs::remove_file(&plain);
    let backup_to_plain = || {
        env.enroll(
            &[
                "backup",
                "--user",
                &user,
                "--output",
                plain.to_str().unwrap(),
            ],
            "",
        )
    };
    let o = backup_to_plain();
    assert!(o.status.success(), "{}", output_text(&o));
    let meta = fs::symlink_metadata(&plain).unwrap();
    assert_eq!(meta.uid(), pw.uid.as_raw());
    assert_eq!(meta.gid(), pw.gid.as_raw());
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert!(meta.is_file());
    // An existing file is never overwritten.
    let o = backup_to_plain();
    assert!(!o.status.success(), "{}", output_text(&o));
    fs::remove_file(&plain).unwrap();
    fs::remove_file(&link).unwrap();
}
