//! The real `2fa-enroll` binary: interactive enrollment, provisioning,
//! backup code files, status, removal, and who may run it.

mod common;
use common::*;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus};

/// `2fa-enroll` driven like a terminal session: read until a prompt,
/// answer it, repeat.
struct Session {
    child: Child,
    stdout: ChildStdout,
    seen: String,
}

impl Session {
    fn start(env: &Env, args: &[&str]) -> Session {
        let mut child = spawn_piped(
            Command::new(enroll_bin())
                .arg("--config")
                .arg(&env.conf)
                .args(args),
        );
        let stdout = child.stdout.take().unwrap();
        Session {
            child,
            stdout,
            seen: String::new(),
        }
    }

    /// Reads stdout until `pat` appears after everything already consumed;
    /// returns the text up to and including it.
    fn read_until(&mut self, pat: &str) -> String {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(i) = self.seen.find(pat) {
                let rest = self.seen.split_off(i + pat.len());
                return std::mem::replace(&mut self.seen, rest);
            }
            let n = self.stdout.read(&mut buf).unwrap();
            if n == 0 {
                let mut err = String::new();
                let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
                panic!("EOF before {pat:?}; stdout: {}; stderr: {err}", self.seen);
            }
            self.seen.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin, waits; returns (status, remaining stdout, stderr).
    fn finish(mut self) -> (ExitStatus, String, String) {
        drop(self.child.stdin.take());
        let mut out = std::mem::take(&mut self.seen);
        self.stdout.read_to_string(&mut out).unwrap();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (self.child.wait().unwrap(), out, err)
    }
}

/// The `secret=` parameter of the `otpauth://` line.
fn uri_secret(text: &str) -> String {
    let uri = text
        .lines()
        .find_map(|l| l.strip_prefix("URI:"))
        .unwrap_or_else(|| panic!("no URI line in {text}"))
        .trim();
    assert!(uri.starts_with("otpauth://"), "{uri}");
    uri.split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap()
        .to_string()
}

fn uri_line(text: &str) -> String {
    text.lines()
        .find(|l| l.starts_with("URI:"))
        .unwrap()
        .to_string()
}

fn id(flag: &str, user: &str) -> u32 {
    let out = Command::new("id").args([flag, user]).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A TOTP code by oathtool with explicit algorithm, digits and period.
fn oath(secret: &str, t: Option<i64>, alg: &str, digits: u32, period: u32) -> String {
    let mut cmd = Command::new("oathtool");
    cmd.arg(format!("--totp={alg}"))
        .args(["-b", secret, "-d", &digits.to_string()])
        .arg(format!("--time-step-size={period}s"));
    if let Some(t) = t {
        cmd.arg("-N").arg(format!("@{t}"));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Interactive enrollment: the secret shown as a URI, one code typed to
/// confirm, saved; that confirming code is spent, the next step's works.
#[test]
fn interactive_totp_enrollment_spends_the_confirming_code() {
    let user = system_user("p2fa-frank", "frank-pw-1");
    let env = Env::new();
    let mut s = Session::start(&env, &["totp", "--user", &user]);
    let shown = s.read_until("Enter the 6-digit code to confirm: ");
    assert!(shown.contains("Scan this QR code"), "{shown}");
    assert!(
        shown.contains("Settings:   time-based, 6 digits, every 30 s, SHA1"),
        "{shown}"
    );
    let secret = uri_secret(&shown);
    assert_eq!(secret.len(), 32, "160-bit secret expected: {secret}");
    let grouped: Vec<String> = secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    assert!(
        shown.contains(&format!("Secret key: {}", grouped.join(" "))),
        "{shown}"
    );
    let uri = uri_line(&shown);
    assert!(uri.contains("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!(":{user}?secret=")), "{uri}");
    assert!(uri.ends_with("&algorithm=SHA1&digits=6&period=30"), "{uri}");

    let code = totp(&secret, None);
    s.send(&code);
    let (st, out, err) = s.finish();
    assert!(st.success(), "{out}{err}");
    assert!(
        out.contains(&format!("Saved. {user} will be asked for a code at login.")),
        "{out}"
    );
    assert!(out.contains("2fa-enroll backup --user"), "{out}");
    assert!(err.contains("Created host key"), "{err}");
    let status = env.status_json(&user);
    assert_eq!(status["enrolled"], true);
    assert_eq!(status["otp"]["kind"], "totp");

    let step: i64 = env.sql("SELECT last_step FROM otp_tokens").parse().unwrap();
    assert!(
        (step_of(now()) - 2..=step_of(now()) + 1).contains(&step),
        "{step}"
    );
    let a = env.attempt("p2fa", &user, &format!("{code}\n"), None);
    assert!(
        !a.ok,
        "confirming code accepted again at login: {}",
        a.output
    );
    assert!(a.log.contains("reason=replayed-code"), "{}", a.log);

    let t = in_step(step + 1);
    let a = env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", totp(&secret, Some(t))),
        Some(t),
    );
    assert!(a.ok, "{}", a.output);
}

/// Three wrong codes: non-zero exit, nothing saved, and a token the user
/// already had keeps working (a botched re-enrollment locks nobody out).
#[test]
fn interactive_wrong_codes_save_nothing() {
    let user = system_user("p2fa-frank", "frank-pw-1");
    let fresh = system_user("p2fa-gina", "gina-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let before = env.sql("SELECT hex(secret), created_at FROM otp_tokens");

    for who in [&user, &fresh] {
        let mut s = Session::start(&env, &["totp", "--user", who, "--no-qr"]);
        let shown = s.read_until("Enter the 6-digit code to confirm: ");
        assert!(!shown.contains("Scan this QR code"), "--no-qr: {shown}");
        let bad = wrong_totp(&uri_secret(&shown), now());
        for round in 0..3 {
            s.send(&bad);
            if round < 2 {
                let again = s.read_until("Enter the 6-digit code to confirm: ");
                assert!(again.contains("That code does not match"), "{again}");
            }
        }
        let (st, out, err) = s.finish();
        assert!(!st.success(), "{out}");
        assert!(
            err.contains("2fa-enroll: no matching code; nothing was saved"),
            "{err}"
        );
        assert!(!out.contains("Saved"), "{out}");
    }
    assert_eq!(env.status_json(&fresh)["enrolled"], false);
    assert!(env.status_json(&fresh)["otp"].is_null());
    assert_eq!(
        env.sql("SELECT hex(secret), created_at FROM otp_tokens"),
        before
    );
    let a = env.attempt("p2fa", &user, &format!("{}\n", totp(SECRET, None)), None);
    assert!(
        a.ok,
        "old token broken by a failed re-enrollment: {}",
        a.output
    );

    // Giving up (end of input) at the prompt saves nothing either.
    let mut s = Session::start(&env, &["totp", "--user", &fresh]);
    s.read_until("to confirm: ");
    let (st, _, err) = s.finish();
    assert!(!st.success());
    assert!(err.contains("nothing was saved"), "{err}");
    assert_eq!(env.sql("SELECT count(*) FROM otp_tokens"), "1");
}

#[test]
fn bad_secret_refused_clearly() {
    let user = system_user("p2fa-frank", "frank-pw-1");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    for (secret, why) in [
        ("NOT-BASE32!!", "the secret must be base32"),
        ("GEZDGNBVGY3TQOJ0", "the secret must be base32"),
        (
            "ABCDEFGH",
            "the secret decodes to 5 bytes; expected 10 to 64",
        ),
        ("", "the secret must be base32"),
    ] {
        for kind in ["totp", "hotp"] {
            let out = env.enroll(
                &[kind, "--user", &user, "--secret", secret, "--no-verify"],
                "",
            );
            assert!(!out.status.success(), "{kind} {secret:?} accepted");
            assert!(
                stderr(&out).contains(why),
                "{kind} {secret:?}: {}",
                stderr(&out)
            );
        }
    }
    assert_eq!(env.status_json(&user)["enrolled"], false);
    assert_eq!(env.sql("SELECT count(*) FROM otp_tokens"), "0");
    // Pasted with spaces, lowercase and padding: accepted.
    let pasted = "gezd gnbv gy3t qojq gezd gnbv gy3t qojq====";
    env.enroll_ok(
        &["totp", "--user", &user, "--secret", pasted, "--no-verify"],
        "",
    );
    let a = env.attempt("p2fa", &user, &format!("{}\n", totp(SECRET, None)), None);
    assert!(a.ok, "{}", a.output);
}

/// Non-default parameters reach the login: 8 digits, SHA256 (provisioned)
/// and SHA512 with a 60 s period (interactive).
#[test]
fn digits_algorithm_and_period_options() {
    let user = system_user("p2fa-frank", "frank-pw-1");
    let other = system_user("p2fa-gina", "gina-pw-1");
    let env = Env::new();
    env.enroll_ok(
        &[
            "totp",
            "--user",
            &user,
            "--secret",
            SECRET,
            "--digits",
            "8",
            "--algorithm",
            "SHA256",
            "--no-verify",
        ],
        "",
    );
    let st = env.status_json(&user);
    assert_eq!(st["otp"]["digits"], 8);
    assert_eq!(st["otp"]["algorithm"], "SHA256");
    let t = in_step(step_of(now()) + 40);
    let sha1 = totp(SECRET, Some(t));
    let a = env.attempt("p2fa", &user, &format!("{sha1}\n"), Some(t));
    assert!(!a.ok, "SHA1 6-digit code accepted for a SHA256/8 token");
    let code = oath(SECRET, Some(t), "sha256", 8, 30);
    assert_eq!(code.len(), 8);
    let a = env.attempt("p2fa", &user, &format!("{code}\n"), Some(t));
    assert!(a.ok, "{}", a.output);
    let a = env.attempt("p2fa", &user, &format!("{code}\n"), Some(t));
    assert!(!a.ok, "8-digit code replayed");

    let mut s = Session::start(
        &env,
        &[
            "totp",
            "--user",
            &other,
            "--digits",
            "8",
            "--algorithm",
            "sha512",
            "--period",
            "60",
        ],
    );
    let shown = s.read_until("Enter the 8-digit code to confirm: ");
    assert!(
        uri_line(&shown).ends_with("&algorithm=SHA512&digits=8&period=60"),
        "{shown}"
    );
    let secret = uri_secret(&shown);
    s.send(&oath(&secret, None, "sha512", 8, 60));
    let (st, out, err) = s.finish();
    assert!(st.success(), "{out}{err}");
    let step: i64 = env
        .sql(&format!(
            "SELECT last_step FROM otp_tokens WHERE user = '{other}'"
        ))
        .parse()
        .unwrap();
    let t = (step + 1) * 60 + 5;
    let a = env.attempt(
        "p2fa",
        &other,
        &format!("{}\n", oath(&secret, Some(t), "sha512", 8, 60)),
        Some(t),
    );
    assert!(a.ok, "{}", a.output);
}

/// `backup --output FILE`: a new 0600 file owned by the user holding the
/// same codes as the screen; never overwrites; a refused write changes
/// nothing in the store. Root writes it with the user's rights, so it goes
/// where the user can write (their home here).
#[test]
fn backup_output_file() {
    let user = system_user("p2fa-frank", "frank-pw-1");
    let env = Env::new();
    let home = nix::unistd::User::from_name(&user).unwrap().unwrap().dir;
    let file = home.join("p2fa-frank-codes.txt");
    let _ = fs::remove_file(&file);
    let out = env.enroll_ok(
        &[
            "backup",
            "--user",
            &user,
            "--count",
            "6",
            "--output",
            file.to_str().unwrap(),
        ],
        "",
    );
    let shown = parse_backup_codes(&out);
    assert_eq!(shown.len(), 6, "{out}");
    assert!(out.contains("(mode 0600)"), "{out}");
    let meta = fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(meta.uid(), id("-u", &user));
    assert_eq!(meta.gid(), id("-g", &user));
    let text = fs::read_to_string(&file).unwrap();
    assert_eq!(parse_backup_codes(&text), shown);
    assert!(text.contains(&format!("Backup codes for {user}")), "{text}");

    let hashes = env.sql("SELECT group_concat(hex(hash)) FROM backup_codes");
    let again = env.enroll(
        &[
            "backup",
            "--user",
            &user,
            "--output",
            file.to_str().unwrap(),
        ],
        "",
    );
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("must not exist yet"),
        "{}",
        stderr(&again)
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), text, "file overwritten");
    assert_eq!(
        env.sql("SELECT group_concat(hex(hash)) FROM backup_codes"),
        hashes
    );
    let a = env.attempt("p2fa", &user, &format!("{}\n", shown[5]), None);
    assert!(a.ok, "{}", a.output);
    fs::remove_file(&file).unwrap();
}

/// `status --json` has the documented fields; no output of `status` ever
/// contains the secret, the sealed blob or a backup code hash.
#[test]
fn status_fields_and_no_secrets() {
    let user = system_user("p2fa-frank", "frank-pw-1");
    let hotp_user = system_user("p2fa-gina", "gina-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let codes = env.enroll_backup(&user, 4);
    env.enroll_ok(
        &[
            "hotp",
            "--user",
            &hotp_user,
            "--secret",
            SECRET,
            "--counter",
            "5",
            "--no-verify",
        ],
        "",
    );
    let t = in_step(step_of(now()) + 50);
    let a = env.attempt_args(
        &["-I", "rhost=198.51.100.9", "p2fa", &user, "authenticate"],
        format!("{}\n", totp(SECRET, Some(t))).as_bytes(),
        Some(t),
    );
    assert!(a.ok, "{}", a.output);
    let a = env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", wrong_totp(SECRET, t)),
        Some(t),
    );
    assert!(!a.ok);

    let s = env.status_json(&user);
    assert_eq!(s["user"], user.as_str());
    assert_eq!(s["enrolled"], true);
    assert_eq!(s["otp"]["kind"], "totp");
    assert_eq!(s["otp"]["algorithm"], "SHA1");
    assert_eq!(s["otp"]["digits"], 6);
    assert_eq!(s["otp"]["period"], 30);
    assert!(s["otp"]["counter"].is_null());
    assert!((s["otp"]["enrolled_at"].as_i64().unwrap() - now()).abs() < 60);
    assert_eq!(s["backup_codes_remaining"], 4);
    assert_eq!(s["backup_codes_used"], 0);
    assert_eq!(s["failures"], 1);
    assert!(s["locked_until"].is_null());
    assert_eq!(s["last_success"]["time"].as_i64().unwrap() / 10, t / 10);
    assert_eq!(s["last_success"]["service"], "p2fa");
    assert_eq!(s["last_success"]["rhost"], "198.51.100.9");
    assert_eq!(s["last_success"]["factor"], "totp");

    let h = env.status_json(&hotp_user);
    assert_eq!(h["otp"]["kind"], "hotp");
    assert_eq!(h["otp"]["counter"], 5);
    assert!(h["otp"]["period"].is_null());
    assert!(h["last_success"].is_null());

    let text = env.enroll_ok(&["status", "--user", &user], "");
    assert!(text.contains("TOTP: 6 digits, SHA1, every 30 s"), "{text}");
    assert!(text.contains("backup codes: 4 left, 0 used"), "{text}");
    assert!(text.contains("via p2fa from 198.51.100.9 (totp)"), "{text}");

    let mut secrets: Vec<String> = vec![SECRET.into(), SECRET.to_lowercase(), "GEZD GNBV".into()];
    for q in [
        "SELECT hex(secret) FROM otp_tokens",
        "SELECT hex(hash) FROM backup_codes",
    ] {
        for h in env.sql(q).lines() {
            secrets.push(h.to_string());
            secrets.push(h.to_lowercase());
            secrets.push(h[..16].to_string());
        }
    }
    secrets.extend(codes.iter().cloned());
    secrets.extend(codes.iter().map(|c| format!("{}-{}", &c[..5], &c[5..])));
    for args in [
        vec!["status", "--user", &user],
        vec!["status", "--json", "--user", &user],
        vec!["status", "--user", &hotp_user],
        vec!["status", "--all"],
        vec!["status", "--all", "--json"],
    ] {
        let out = env.enroll(&args, "");
        assert!(out.status.success());
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        for s in &secrets {
            assert!(!all.contains(s.as_str()), "{args:?} shows {s}: {all}");
        }
    }
}

#[test]
fn status_all_lists_every_user() {
    let a = system_user("p2fa-frank", "frank-pw-1");
    let b = system_user("p2fa-gina", "gina-pw-1");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let empty = env.enroll_ok(&["status", "--all"], "");
    assert!(empty.contains("No users in the store yet."), "{empty}");
    assert_eq!(
        env.enroll_ok(&["status", "--all", "--json"], "").trim(),
        "[]"
    );

    env.enroll_backup(&b, 3);
    env.enroll_totp(&a);
    let text = env.enroll_ok(&["status", "--all"], "");
    assert!(text.contains(&format!("{a}:")), "{text}");
    assert!(text.contains(&format!("{b}:")), "{text}");
    assert!(text.contains("backup codes: 3 left, 0 used"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&env.enroll_ok(&["status", "--all", "--json"], "")).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![a.as_str(), b.as_str()]);
    let out = env.enroll(&["status", "--all", "--user", &a], "");
    assert!(!out.status.success(), "--all with --user accepted");
}

/// Status text shows a lockout with the way out, and a hostile rhost from
/// the last login cannot put escape sequences on the admin's terminal.
#[test]
fn status_text_shows_lockout_and_is_sanitised() {
    let user = system_user("p2fa-frank", "frank-pw-1");
    let env = Env::with_config("[rate_limit]\nmax_failures = 1\nlockout_seconds = 600\n");
    env.enroll_totp(&user);
    let a = env.attempt_args(
        &[
            "-I",
            "rhost=\x1b]0;pwned\x07\x1b[2Jhost",
            "p2fa",
            &user,
            "authenticate",
        ],
        format!("{}\n", totp(SECRET, None)).as_bytes(),
        None,
    );
    assert!(a.ok, "{}", a.output);
    let a = env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", wrong_totp(SECRET, now())),
        None,
    );
    assert!(!a.ok);
    let text = env.enroll_ok(&["status", "--user", &user], "");
    assert!(text.contains("LOCKED until"), "{text}");
    assert!(
        text.contains(&format!("2fa-enroll unlock --user {user}")),
        "{text}"
    );
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    assert!(text.contains("from ?]0;pwned??[2Jhost"), "{text:?}");
    // JSON keeps the stored value, escaped by the JSON encoder.
    let json = env.enroll_ok(&["status", "--json", "--user", &user], "");
    assert!(!json.contains('\x1b'), "{json:?}");
    assert!(json.contains("\\u001b]0;pwned"), "{json}");
}

#[test]
fn remove_and_reset() {
    let user = system_user("p2fa-frank", "frank-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let codes = env.enroll_backup(&user, 3);

    let out = env.enroll_ok(&["remove", "totp", "--user", &user], "");
    assert!(
        out.contains(&format!("Removed the OTP token of {user}.")),
        "{out}"
    );
    assert!(env.status_json(&user)["otp"].is_null());
    let t = in_step(step_of(now()) + 60);
    let a = env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", totp(SECRET, Some(t))),
        Some(t),
    );
    assert!(!a.ok, "removed TOTP token still works");
    let a = env.attempt("p2fa", &user, &format!("{}\n", codes[0]), None);
    assert!(a.ok, "backup codes lost with the token: {}", a.output);

    let out = env.enroll(&["remove", "totp", "--user", &user], "");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("{user} has no OTP token")),
        "{}",
        stderr(&out)
    );

    let out = env.enroll_ok(&["remove", "backup", "--user", &user], "");
    assert!(out.contains("Removed the backup codes"), "{out}");
    assert!(
        out.contains("now has no second factor: logins are denied"),
        "{out}"
    );
    assert_eq!(env.sql("SELECT count(*) FROM backup_codes"), "0");
    let a = env.attempt("p2fa", &user, &format!("{}\n", codes[1]), None);
    assert!(!a.ok);
    assert!(
        a.output.contains("No second factor is set up"),
        "{}",
        a.output
    );

    env.enroll_totp(&user);
    env.enroll_backup(&user, 2);
    let out = env.enroll_ok(&["reset", "--user", &user], "");
    assert!(
        out.contains(&format!("Removed every factor and counter of {user}")),
        "{out}"
    );
    assert_eq!(
        env.sql("SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM otp_tokens) + (SELECT count(*) FROM backup_codes)"),
        "0"
    );
    let out = env.enroll(&["reset", "--user", &user], "");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing to reset"),
        "{}",
        stderr(&out)
    );
    let out = env.enroll(&["reset"], "");
    assert!(!out.status.success(), "reset without --user accepted");
}

/// Ordinary users are told to ask for sudo, whether or not they can read
/// the config, and nothing is created.
#[test]
fn non_root_gets_the_sudo_hint() {
    let user = system_user("p2fa-frank", "frank-pw-1");
    let env = Env::new();
    let run = |args: &[&str]| env.enroll_as(&user, args);
    for (round, dir_mode, conf_mode) in [
        ("unreadable config", 0o700, 0o600),
        ("readable config", 0o755, 0o644),
    ] {
        fs::set_permissions(env.root(), fs::Permissions::from_mode(dir_mode)).unwrap();
        fs::set_permissions(&env.conf, fs::Permissions::from_mode(conf_mode)).unwrap();
        let readable = run(&["--version"]);
        assert!(readable.status.success());
        for (args, hint) in [
            (vec!["status"], "sudo 2fa-enroll status --user"),
            (vec!["totp"], "sudo 2fa-enroll totp --user"),
            (vec!["backup"], "sudo 2fa-enroll backup --user"),
        ] {
            let out = run(&args);
            assert!(!out.status.success(), "{round} {args:?}");
            let err = stderr(&out);
            assert!(
                err.contains(&format!("{hint} {user}")),
                "{round} {args:?}: {err}"
            );
            assert!(err.contains("not setuid"), "{err}");
        }
    }
    assert!(
        !env.db.exists() && !env.key.exists(),
        "non-root run created files"
    );
}

#[test]
fn unknown_or_invalid_user_refused() {
    let env = Env::new();
    for args in [
        vec![
            "totp",
            "--user",
            "p2fa-nosuchuser",
            "--secret",
            SECRET,
            "--no-verify",
        ],
        vec![
            "hotp",
            "--user",
            "p2fa-nosuchuser",
            "--secret",
            SECRET,
            "--no-verify",
        ],
        vec!["backup", "--user", "p2fa-nosuchuser"],
        vec!["unlock", "--user", "p2fa-nosuchuser"],
        vec!["reset", "--user", "p2fa-nosuchuser"],
        vec!["remove", "backup", "--user", "p2fa-nosuchuser"],
        vec!["status", "--user", "p2fa-nosuchuser"],
    ] {
        assert!(!env.db.exists(), "a refused command created the store");
        let out = env.enroll(&args, "");
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains("2fa-enroll: no such user: p2fa-nosuchuser"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(!env.key.exists(), "a refused command created the host key");
    for bad in ["bad name", "a/b", "x\ny"] {
        let out = env.enroll(&["backup", "--user", bad], "");
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("is not a valid user name"),
            "{}",
            stderr(&out)
        );
    }
}

/// Before `2fa-enroll init`, the commands that only read the store (or
/// change what is in it) create nothing: no store, no directory, no key.
/// `status`, `remove`, `reset`, `unlock` and `devices revoke` have
/// nothing to work on and fail, saying how to make a store; `policy
/// check`, `devices list`, `webauthn list` and the menu answer what is
/// true without one.
#[test]
fn read_only_commands_create_nothing() {
    let user = system_user("p2fa-frank", "frank-pw-1");
    let env = Env::new();
    let no_store = format!(
        "no store yet at {}: run `2fa-enroll init`",
        env.db.display()
    );
    let dir = env.db.parent().unwrap().to_path_buf();
    let nothing_created = |env: &Env, what: &str| {
        for p in [&env.db, &env.key, &env.key.parent().unwrap().to_path_buf()] {
            assert!(!p.exists(), "{what} created {}", p.display());
        }
    };
    for with_dir in [false, true] {
        if with_dir {
            fs::create_dir(&dir).unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        }
        for args in [
            vec!["status", "--user", &user],
            vec!["status", "--user", &user, "--json"],
            vec!["status", "--all"],
            vec!["status", "--all", "--json"],
            vec!["remove", "totp", "--user", &user],
            vec!["reset", "--user", &user],
            vec!["unlock", "--user", &user],
            vec!["devices", "revoke", "--all", "--user", &user],
            vec!["webauthn", "remove", "k", "--user", &user],
        ] {
            let out = env.enroll(&args, "");
            assert!(!out.status.success(), "{args:?}: {}", output_text(&out));
            assert!(
                stderr(&out).contains(&format!("2fa-enroll: {no_store}")),
                "{args:?}: {}",
                output_text(&out)
            );
            assert!(out.stdout.is_empty(), "{args:?}: {}", output_text(&out));
            nothing_created(&env, &args.join(" "));
        }
        for (args, says) in [
            (
                vec!["devices", "list", "--user", &user],
                "No remembered devices (",
            ),
            (vec!["devices", "list", "--all"], "No remembered devices ("),
            (
                vec!["webauthn", "list", "--user", &user],
                "No security keys registered (",
            ),
            (vec!["policy", "check", "--user", &user], "  store: "),
            (
                vec!["menu", "--user", &user],
                "no second factor enrolled (no store yet at",
            ),
        ] {
            let out = env.enroll(&args, "quit\n");
            assert!(out.status.success(), "{args:?}: {}", output_text(&out));
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains(says), "{args:?}: {text}");
            if args[0] != "menu" {
                assert!(text.contains(&no_store), "{args:?}: {text}");
            }
            nothing_created(&env, &args.join(" "));
        }
        // `policy check` says what the module does without a store.
        let out = env.enroll_ok(&["policy", "check", "--user", &user], "");
        assert!(
            out.contains("result: DENIES: no store yet (unavailable)"),
            "{out}"
        );
        env.write_config("unenrolled = \"allow\"");
        let out = env.enroll_ok(&["policy", "check", "--user", &user], "");
        assert!(
            out.contains(
                "result: allows without a factor (no store yet, unenrolled = allow); PAM_IGNORE"
            ),
            "{out}"
        );
        env.write_config("");
        nothing_created(&env, "policy check");
        assert_eq!(dir.exists(), with_dir);
        if with_dir {
            assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        }
    }
    // Once there is a store, the same commands work on it.
    env.enroll_ok(&["init"], "");
    let out = env.enroll_ok(&["status", "--all"], "");
    assert!(out.contains("No users in the store yet."), "{out}");
}

/// First enrollment creates the store and key privately.
#[test]
fn file_modes_after_first_enroll() {
    let user = system_user("p2fa-frank", "frank-pw-1");
    for first in [vec!["init"], vec!["backup", "--user", &user]] {
        let env = Env::new();
        let out = env.enroll(&first, "");
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("Created host key"),
            "{}",
            stderr(&out)
        );
        for (path, mode) in [
            (env.db.parent().unwrap(), 0o700),
            (env.db.as_path(), 0o600),
            (env.key.parent().unwrap(), 0o700),
            (env.key.as_path(), 0o600),
        ] {
            let m = fs::metadata(path).unwrap();
            assert_eq!(m.permissions().mode() & 0o7777, mode, "{}", path.display());
            assert_eq!(m.uid(), 0, "{}", path.display());
        }
        assert_eq!(fs::metadata(&env.key).unwrap().len(), 32);
        let key = fs::read(&env.key).unwrap();
        let again = env.enroll(
            &["totp", "--user", &user, "--secret", SECRET, "--no-verify"],
            "",
        );
        assert!(again.status.success());
        assert!(
            !stderr(&again).contains("Created host key"),
            "key created twice"
        );
        assert_eq!(fs::read(&env.key).unwrap(), key, "key changed");
    }
}

/// The QR code is there, uses half blocks, and fits an 80-column terminal
/// even for a long issuer and user name.
#[test]
fn qr_code_fits_80_columns() {
    let user = system_user("p2fa-long-user-name-1", "long-pw-1");
    let env = Env::with_config(&format!("issuer = \"{}\"", "long-issuer.example".repeat(3)));
    let out = env.enroll_ok(&["totp", "--user", &user, "--no-verify"], "");
    let qr: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("Scan this QR code"))
        .skip(1)
        .take_while(|l| !l.starts_with("Secret key:"))
        .collect();
    assert!(qr.len() >= 15, "no QR code: {out}");
    for l in &qr {
        assert!(
            l.chars().all(|c| " █▀▄".contains(c)),
            "unexpected QR character: {l:?}"
        );
        let cols = l.chars().count();
        assert!(cols <= 80, "QR line of {cols} columns");
        assert_eq!(cols, qr[0].chars().count(), "ragged QR");
    }
    assert!(uri_line(&out).contains("long-issuer.example"), "{out}");
    let no_qr = env.enroll_ok(&["totp", "--user", &user, "--no-verify", "--no-qr"], "");
    assert!(!no_qr.contains('█'), "{no_qr}");
}

/// Every file under `dir` with its length and hash (the WAL index, shared
/// memory every SQLite reader writes its read marks to, by length only;
/// sockets by name only), for "nothing changed" checks.
fn tree_state(dir: &std::path::Path) -> Vec<(String, u64, Vec<u8>)> {
    use sha2::Digest;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let name = p.display().to_string();
            if m.is_dir() {
                todo.push(p);
                out.push((name, 0, vec![]));
            } else if m.is_file() && !name.ends_with("-shm") {
                let bytes = fs::read(&p).unwrap();
                out.push((name, m.len(), sha2::Sha256::digest(&bytes).to_vec()));
            } else {
                out.push((name, m.len(), vec![]));
            }
        }
    }
    out.sort();
    out
}

/// `2fa-enroll check`: `--config PATH` then `check` and `args`.
fn check(env: &Env, args: &[&str]) -> (bool, String) {
    let before = tree_state(env.root());
    let out = env.enroll(&[&["check"], args].concat(), "");
    let text = output_text(&out);
    assert_eq!(
        tree_state(env.root()),
        before,
        "check changed files: {text}"
    );
    // The last line counts; a failure says so on stderr too.
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    assert!(
        last.contains(" error") && last.contains(" warning"),
        "{text}"
    );
    assert_eq!(out.status.success(), last.starts_with("0 errors"), "{text}");
    if !out.status.success() {
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(stderr(&out).contains("2fa-enroll: check failed"), "{text}");
    }
    (out.status.success(), text)
}

/// One line of `check` output for `what` (its first words), or a panic.
fn line<'a>(text: &'a str, level: &str, what: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("{level:<8}{what}")))
        .unwrap_or_else(|| panic!("no `{level} {what}` line in:\n{text}"))
}

/// `check` validates the setup like `sshd -t`: every broken piece is an
/// error line naming it and exit status 1, a good setup exits 0, and it
/// creates and changes nothing (no store, key, migration, key check).
#[test]
fn check_names_each_broken_piece_and_changes_nothing() {
    let user = system_user("p2fa-frank", "frank-pw-1");
    let env = Env::new();
    let sock = env.root().join("2fad.sock");
    let base = format!("[daemon]\nsocket = \"{}\"\n", sock.display());
    env.write_config(&base);
    let conf = env.conf.display().to_string();
    let db = env.db.display().to_string();
    let key = env.key.display().to_string();

    // Before `init`: the store and the key are missing; --config-only is
    // fine. Nothing is created.
    let (ok, text) = check(&env, &[]);
    assert!(!ok, "{text}");
    assert!(
        line(&text, "error", &format!("store {db}")).contains("missing: run `2fa-enroll init`"),
        "{text}"
    );
    assert!(
        line(&text, "error", &format!("host key {key}")).contains("missing"),
        "{text}"
    );
    line(&text, "ok", &format!("config {conf}"));
    let (ok, text) = check(&env, &["--config-only"]);
    assert!(ok, "{text}");
    assert!(!text.contains("store"), "{text}");
    assert!(!env.db.exists() && !env.key.exists());
    assert!(!env.db.parent().unwrap().exists());
    // `config test` is the same.
    let out = env.enroll(&["config", "test", "--config-only"], "");
    assert!(out.status.success(), "{}", output_text(&out));
    line(&output_text(&out), "ok", &format!("config {conf}"));

    // A good setup, after logins (WAL and its index in use).
    env.enroll_ok(&["init"], "");
    env.enroll_totp(&user);
    env.enroll_backup(&user, 2);
    env.service("p2fa", "");
    let a = env.attempt("p2fa", &user, "000000\n", None);
    assert!(!a.ok);
    assert!(Path::new(&format!("{db}-wal")).exists());
    let (ok, text) = check(&env, &[]);
    assert!(ok, "{text}");
    line(&text, "ok", &format!("config {conf}"));
    line(&text, "ok", &format!("store {db}"));
    assert!(
        line(&text, "ok", &format!("host key {key}")).contains("the store records this key"),
        "{text}"
    );
    // 2fad: optional here, so its absence is a warning.
    assert!(
        line(&text, "warning", "2fad").contains("not running"),
        "{text}"
    );
    let row = env.user_row(&user);

    // A socket served by root is fine; one served by anyone else is not.
    {
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let (ok, text) = check(&env, &[]);
        assert!(ok, "{text}");
        line(&text, "ok", &format!("2fad {}", sock.display()));
    }
    fs::remove_file(&sock).unwrap();
    let nobody_dir = env.root().join("nobody");
    fs::create_dir(&nobody_dir).unwrap();
    std::os::unix::fs::chown(&nobody_dir, Some(65534), Some(65534)).unwrap();
    fs::set_permissions(env.root(), fs::Permissions::from_mode(0o711)).unwrap();
    let fake = nobody_dir.join("2fad.sock");
    let mut impostor = spawn_piped(Command::new("runuser").args(["-u", "nobody", "--"]).args([
        "python3",
        "-c",
        "import socket,sys,time\ns=socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.listen()\nprint('ready',flush=True)\ntime.sleep(60)",
    ]).arg(&fake));
    let mut ready = [0u8; 6];
    impostor
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut ready)
        .unwrap();
    env.write_config(&format!("[daemon]\nsocket = \"{}\"\n", fake.display()));
    let (ok, text) = check(&env, &[]);
    let _ = impostor.kill();
    let _ = impostor.wait();
    fs::set_permissions(env.root(), fs::Permissions::from_mode(0o700)).unwrap();
    assert!(!ok, "{text}");
    assert!(
        line(&text, "error", "2fad").contains("served by uid 65534, not root"),
        "{text}"
    );
    // When WebAuthn needs 2fad, its absence is an error.
    env.write_config(&format!("{base}[webauthn]\nenabled = true\n"));
    let (ok, text) = check(&env, &[]);
    assert!(!ok, "{text}");
    assert!(
        line(&text, "error", "2fad").contains("webauthn.enabled needs it"),
        "{text}"
    );
    env.write_config(&base);

    // Each broken piece: (what, break, repair, the error line's start, what it says).
    type Case = (
        &'static str,
        Box<dyn Fn(&Env)>,
        Box<dyn Fn(&Env)>,
        String,
        &'static str,
    );
    let chmod = |p: PathBuf, mode: u32| {
        move |_: &Env| fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap()
    };
    let aside = |p: PathBuf| {
        let q = p.with_extension("aside");
        let (p2, q2) = (p.clone(), q.clone());
        (
            Box::new(move |_: &Env| fs::rename(&p, &q).unwrap()) as Box<dyn Fn(&Env)>,
            Box::new(move |_: &Env| fs::rename(&q2, &p2).unwrap()) as Box<dyn Fn(&Env)>,
        )
    };
    let key_bytes = fs::read(&env.key).unwrap();
    let db_path = env.db.clone();
    let key_path = env.key.clone();
    let (move_store, restore_store) = aside(env.db.clone());
    let (move_key, restore_key) = aside(env.key.clone());
    let base2 = base.clone();
    let base3 = base.clone();
    let base4 = base.clone();
    let cases: Vec<Case> = vec![
        (
            "bad syntax",
            Box::new(move |e: &Env| e.write_config(&format!("{base2}[totp\nwindow = 1\n"))),
            Box::new({
                let b = base.clone();
                move |e: &Env| e.write_config(&b)
            }),
            format!("config {conf}"),
            "line ",
        ),
        (
            "bad value",
            Box::new(move |e: &Env| e.write_config(&format!("{base3}[totp]\nwindow = 99\n"))),
            Box::new({
                let b = base.clone();
                move |e: &Env| e.write_config(&b)
            }),
            format!("config {conf}"),
            "totp.window = 99 is out of range",
        ),
        (
            "unknown key",
            Box::new(move |e: &Env| e.write_config(&format!("{base4}nullokk = true\n"))),
            Box::new({
                let b = base.clone();
                move |e: &Env| e.write_config(&b)
            }),
            format!("config {conf}"),
            "nullokk",
        ),
        (
            "group-writable config",
            Box::new(chmod(env.conf.clone(), 0o664)),
            Box::new(chmod(env.conf.clone(), 0o644)),
            format!("config {conf}"),
            "has mode 0664",
        ),
        (
            "config owned by nobody",
            Box::new({
                let p = env.conf.clone();
                move |_: &Env| std::os::unix::fs::chown(&p, Some(65534), None).unwrap()
            }),
            Box::new({
                let p = env.conf.clone();
                move |_: &Env| std::os::unix::fs::chown(&p, Some(0), None).unwrap()
            }),
            format!("config {conf}"),
            "owned by uid 65534",
        ),
        (
            "missing store",
            move_store,
            restore_store,
            format!("store {db}"),
            "missing: run `2fa-enroll init`",
        ),
        (
            "world-readable store",
            Box::new(chmod(env.db.clone(), 0o644)),
            Box::new(chmod(env.db.clone(), 0o600)),
            format!("store {db}"),
            "has mode 0644",
        ),
        (
            "store schema too new",
            Box::new(|e: &Env| {
                e.sql("PRAGMA user_version = 99");
            }),
            Box::new(|e: &Env| {
                e.sql(&format!(
                    "PRAGMA user_version = {}",
                    p2fa_core::store::current_version()
                ));
            }),
            format!("store {db}"),
            "schema version 99 is newer",
        ),
        (
            "store not a database",
            Box::new({
                let p = db_path.clone();
                move |_: &Env| {
                    fs::rename(&p, p.with_extension("good")).unwrap();
                    fs::write(&p, vec![b'x'; 8192]).unwrap();
                    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
                }
            }),
            Box::new({
                let p = db_path.clone();
                move |_: &Env| fs::rename(p.with_extension("good"), &p).unwrap()
            }),
            format!("store {db}"),
            "store corrupt",
        ),
        (
            "missing key",
            move_key,
            restore_key,
            format!("host key {key}"),
            "missing",
        ),
        (
            "wrong key",
            Box::new({
                let p = key_path.clone();
                move |_: &Env| fs::write(&p, [7u8; 32]).unwrap()
            }),
            Box::new({
                let p = key_path.clone();
                let k = key_bytes.clone();
                move |_: &Env| fs::write(&p, &k).unwrap()
            }),
            format!("host key {key}"),
            "does not match the store",
        ),
        (
            "short key",
            Box::new({
                let p = key_path.clone();
                move |_: &Env| fs::write(&p, [7u8; 16]).unwrap()
            }),
            Box::new({
                let p = key_path.clone();
                let k = key_bytes.clone();
                move |_: &Env| fs::write(&p, &k).unwrap()
            }),
            format!("host key {key}"),
            "16 bytes, expected 32",
        ),
        (
            "key readable by others",
            Box::new(chmod(env.key.clone(), 0o644)),
            Box::new(chmod(env.key.clone(), 0o600)),
            format!("host key {key}"),
            "has mode 0644",
        ),
    ];
    for (what, break_it, repair, start, says) in cases {
        break_it(&env);
        let (ok, text) = check(&env, &[]);
        repair(&env);
        assert!(!ok, "{what}: {text}");
        let l = line(&text, "error", &start);
        assert!(
            l.contains(says),
            "{what}: expected {says:?} in {l:?}\n{text}"
        );
        let (ok, text) = check(&env, &[]);
        assert!(ok, "{what}, repaired: {text}");
    }

    // An older schema is reported as migratable and left as it is.
    let current = p2fa_core::store::current_version();
    env.sql(&format!("PRAGMA user_version = {}", current - 1));
    let (ok, text) = check(&env, &[]);
    assert!(ok, "{text}");
    assert!(
        line(&text, "ok", &format!("store {db}")).contains(&format!(
            "schema {}, migrated to {current} at the next login",
            current - 1
        )),
        "{text}"
    );
    assert_eq!(env.sql("PRAGMA user_version"), (current - 1).to_string());
    env.sql(&format!("PRAGMA user_version = {current}"));
    // A store whose key check value is not recorded yet: nothing recorded.
    env.sql("DELETE FROM meta WHERE name = 'key_check'");
    let (ok, text) = check(&env, &[]);
    assert!(ok, "{text}");
    assert!(
        line(&text, "warning", &format!("host key {key}"))
            .contains("not recorded yet, but every sealed TOTP/HOTP secret opens with it"),
        "{text}"
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM meta WHERE name = 'key_check'"),
        "0"
    );
    assert_eq!(env.user_row(&user), row, "the store changed");
}

/// Ansible's `validate: 2fa-enroll check --config %s` runs on a root-only
/// temporary copy; the network factors' files are checked offline and
/// secrets never shown.
#[test]
fn check_validates_a_candidate_file_and_network_settings() {
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let pki = common::net::Pki::new(&env.root().join("pki"));
    let skey = env.root().join("duo.skey");
    let sock = env.root().join("2fad.sock");
    let duo = |ca: &std::path::Path| {
        format!(
            "[daemon]\nsocket = \"{}\"\n[duo]\nenabled = true\nikey = \"DIABCDEFGHIJKLMNOPQR\"\n\
             api_host = \"api-test.example.com\"\nskey_file = \"{}\"\nca_file = \"{}\"\n",
            sock.display(),
            skey.display(),
            ca.display()
        )
    };
    // The candidate, as Ansible writes it: root-only, in a private
    // temporary directory.
    let tmp = env.root().join(".ansible/tmp/ansible-tmp-1");
    fs::create_dir_all(&tmp).unwrap();
    let candidate = tmp.join("source");
    let write = |text: &str| {
        fs::write(
            &candidate,
            format!(
                "db = \"{}\"\nkey_file = \"{}\"\nlog_socket = \"{}\"\n{text}",
                env.db.display(),
                env.key.display(),
                env.root().join("log.sock").display()
            ),
        )
        .unwrap();
        fs::set_permissions(&candidate, fs::Permissions::from_mode(0o600)).unwrap();
    };
    let validate = || {
        let before = tree_state(env.root());
        let out = Command::new(enroll_bin())
            .args(["check", "--config"])
            .arg(&candidate)
            .output()
            .unwrap();
        assert_eq!(tree_state(env.root()), before);
        (out.status.success(), output_text(&out))
    };
    write(&format!("[daemon]\nsocket = \"{}\"\n", sock.display()));
    let (ok, text) = validate();
    assert!(ok, "{text}");
    line(&text, "ok", &format!("config {}", candidate.display()));
    // Duo with a secret file that is missing, then present but readable by
    // others, then right; a CA file that is missing, then not a
    // certificate.
    write(&duo(&pki.ca));
    let (ok, text) = validate();
    assert!(!ok, "{text}");
    assert!(
        line(&text, "error", "duo").contains(&format!("{}", skey.display())),
        "{text}"
    );
    fs::write(&skey, "duo-secret-key-value\n").unwrap();
    fs::set_permissions(&skey, fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, text) = validate();
    assert!(!ok, "{text}");
    assert!(
        line(&text, "error", "duo").contains("has mode 0644"),
        "{text}"
    );
    fs::set_permissions(&skey, fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, text) = validate();
    assert!(ok, "{text}");
    let l = line(&text, "ok", "duo");
    assert!(
        l.contains("TLS trust") && l.contains("duo.skey from"),
        "{text}"
    );
    assert!(!text.contains("duo-secret-key-value"), "{text}");
    write(&duo(&env.root().join("no-such-ca.pem")));
    let (ok, text) = validate();
    assert!(!ok, "{text}");
    assert!(
        line(&text, "error", "duo").contains("no-such-ca.pem"),
        "{text}"
    );
    write(&duo(&skey));
    let (ok, text) = validate();
    assert!(!ok, "{text}");
    assert!(line(&text, "error", "duo").contains("CA file"), "{text}");
    assert!(!text.contains("duo-secret-key-value"), "{text}");
    // A candidate with an inline secret must be root-only (it is).
    write(&format!(
        "{}[duo]\nenabled = true\nikey = \"DIABCDEFGHIJKLMNOPQR\"\napi_host = \"api-test.example.com\"\nskey = \"inline-secret-value\"\n",
        format_args!("[daemon]\nsocket = \"{}\"\n", sock.display())
    ));
    let (ok, text) = validate();
    assert!(ok, "{text}");
    assert!(!text.contains("inline-secret-value"), "{text}");
    fs::set_permissions(&candidate, fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, text) = validate();
    assert!(!ok, "{text}");
    assert!(
        line(&text, "error", &format!("config {}", candidate.display())).contains("holds a secret"),
        "{text}"
    );
    // A missing explicit file is an error, not the defaults.
    let out = Command::new(enroll_bin())
        .args(["check", "--config"])
        .arg(tmp.join("gone"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    line(
        &output_text(&out),
        "error",
        &format!("config {}", tmp.join("gone").display()),
    );
}
