//! Local FIDO2 security keys on the console, end to end: the real
//! `2fa-enroll webauthn add --local` and the built module under the real
//! libpam (pam_wrapper + pamtester), with a software authenticator behind
//! libfido2's tool syntax (tests/mock/fido2_tools; these machines have no
//! USB, so no real or virtual HID key). Each test copies the stand-in into
//! its own root-owned directory and points `webauthn.fido2_tools_dir` at it;
//! files in its `state/` switch misbehaviours on.

mod common;

use common::fido2::{DEVICE, Keys, hostname, run, webauthn_section};
use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;

fn env_for(keys: &Keys, extra: &str) -> Env {
    Env::with_config(&webauthn_section(keys, 5, extra))
}

fn enroll_key(env: &Env, user: &str, name: &str) -> String {
    env.enroll_ok(
        &["webauthn", "add", "--local", "--name", name, "--user", user],
        "",
    )
}

fn counter(env: &Env, user: &str) -> String {
    env.sql(&format!(
        "SELECT counter FROM local_keys WHERE user = '{user}'"
    ))
}

fn failures(env: &Env, user: &str) -> String {
    env.sql(&format!("SELECT failures FROM users WHERE name = '{user}'"))
}

#[test]
fn enroll_then_log_in_by_touching_the_key() {
    let user = system_user("p2fa-lkey", "lkey-pw-1");
    let keys = Keys::new();
    let env = env_for(&keys, "");
    let out = enroll_key(&env, &user, "YubiKey 5");
    assert!(out.contains("Touch your security key"), "{out}");
    assert!(
        out.contains("Registered the local security key \"YubiKey 5\""),
        "{out}"
    );
    let rp = format!("pam://{}", hostname());
    let calls = keys.calls();
    assert!(calls.contains("fido2-token -L"), "{calls}");
    assert!(
        calls.contains(&format!(
            "fido2-cred -M {DEVICE} es256 rp={rp} user={user} cdh_len=32 uid_len=32"
        )),
        "{calls}"
    );
    assert_eq!(
        env.sql(
            "SELECT name, rp_id, length(credential_id), length(public_key), counter FROM local_keys"
        ),
        format!("YubiKey 5|{rp}|64|65|10")
    );
    let list = env.enroll_ok(&["webauthn", "list", "--user", &user], "");
    assert!(
        list.contains("YubiKey 5") && list.contains("(local)"),
        "{list}"
    );
    assert_eq!(env.status_json(&user)["local_keys"], 1);

    // The only factor: the module starts it at once, no prompt.
    let a = env.attempt("p2fa", &user, "", None);
    assert!(a.ok, "{}", a.output);
    assert!(
        a.output.contains("Touch your security key."),
        "{}",
        a.output
    );
    assert!(
        a.log.contains(&format!(
            "auth ok user={user} service=p2fa rhost=- factor=localkey key=YubiKey_5 uv=no"
        )),
        "{}",
        a.log
    );
    let calls = keys.calls();
    assert!(
        calls.contains(&format!(
            "fido2-assert -G -t up=true {DEVICE} rp={rp} cdh_len=32"
        )),
        "{calls}"
    );
    assert!(
        !calls.contains("uv=true"),
        "uv requested though discouraged: {calls}"
    );
    assert_eq!(counter(&env, &user), "11");
    assert!(env.attempt("p2fa", &user, "", None).ok);
    assert_eq!(counter(&env, &user), "12");
    assert_eq!(
        env.sql(&format!(
            "SELECT last_success_factor FROM users WHERE name = '{user}'"
        )),
        "localkey"
    );

    keys.calls();
    // Removed: the user has nothing left, and `unenrolled = deny`.
    let out = env.enroll_ok(&["webauthn", "remove", "YubiKey 5", "--user", &user], "");
    assert!(out.contains("Removed the key"), "{out}");
    assert_eq!(env.sql("SELECT count(*) FROM local_keys"), "0");
    let a = env.attempt("p2fa", &user, "", None);
    assert!(!a.ok, "{}", a.output);
    assert!(!keys.calls().contains("fido2-assert"));
}

/// Another authenticator, a tampered signature and a counter that goes
/// back are refused, counted, and leave the stored counter alone.
#[test]
fn forged_answers_are_refused_and_counted() {
    let user = system_user("p2fa-lkey", "lkey-pw-1");
    let keys = Keys::new();
    let env = env_for(&keys, "");
    enroll_key(&env, &user, "yk");
    assert!(env.attempt("p2fa", &user, "", None).ok);
    assert_eq!(counter(&env, &user), "11");
    for (n, (mode, reason)) in [
        ("wrong-key", "bad-signature"),
        ("tamper-sig", "bad-signature"),
        ("counter-back", "counter-regression"),
    ]
    .into_iter()
    .enumerate()
    {
        keys.set(mode, true);
        let a = env.attempt("p2fa", &user, "", None);
        keys.set(mode, false);
        assert!(!a.ok, "{mode} accepted: {}", a.output);
        assert!(
            a.output.contains("The security key's answer was refused."),
            "{mode}: {}",
            a.output
        );
        assert!(
            a.log.contains(&format!(
                "factor=localkey reason={reason} failures={}/5",
                n + 1
            )),
            "{mode}: {}",
            a.log
        );
        assert_eq!(counter(&env, &user), "11", "{mode} moved the counter");
        assert_eq!(failures(&env, &user), (n + 1).to_string());
    }
    // The genuine key still works (it counted the forged runs too) and
    // clears the failures.
    let a = env.attempt("p2fa", &user, "", None);
    assert!(a.ok, "{}", a.output);
    assert_eq!(failures(&env, &user), "0");
    assert!(counter(&env, &user).parse::<u32>().unwrap() > 11);
}

#[test]
fn user_verification_required_but_not_done_is_refused() {
    let user = system_user("p2fa-lkey", "lkey-pw-1");
    let keys = Keys::new();
    let env = env_for(&keys, "local_user_verification = \"required\"\n");
    enroll_key(&env, &user, "bio");
    keys.calls();
    keys.set("no-uv", true);
    let a = env.attempt("p2fa", &user, "", None);
    assert!(!a.ok, "{}", a.output);
    assert!(a.log.contains("reason=no-user-verification"), "{}", a.log);
    assert_eq!(counter(&env, &user), "10");
    assert!(keys.calls().contains("-t up=true -t uv=true"));
    keys.set("no-uv", false);
    let a = env.attempt("p2fa", &user, "", None);
    assert!(a.ok, "{}", a.output);
    assert!(
        a.log.contains("factor=localkey key=bio uv=yes"),
        "{}",
        a.log
    );
    // The key counted the refused assertion too.
    assert_eq!(counter(&env, &user), "12");
}

/// No key plugged in, or no touch in time: the user gets a message and
/// the other factors; with nothing else, a denial that is not counted.
#[test]
fn no_device_and_no_touch_fall_back_to_the_other_factors() {
    let user = system_user("p2fa-lkey", "lkey-pw-1");
    let only = system_user("p2fa-lkey2", "lkey-pw-2");
    let keys = Keys::new();
    let env = env_for(&keys, "");
    env.enroll_totp(&user);
    enroll_key(&env, &user, "yk");
    enroll_key(&env, &only, "yk2");
    keys.calls();

    keys.set("no-device", true);
    let t1 = in_step(step_of(now()) + 20);
    let a = env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", totp(SECRET, Some(t1))),
        Some(t1),
    );
    assert!(a.ok, "{}", a.output);
    assert!(a.output.contains("Verification code: "), "{}", a.output);
    assert!(
        !a.output.contains("key"),
        "key offered without a device: {}",
        a.output
    );
    let a = env.attempt("p2fa", &only, "", None);
    assert!(!a.ok, "{}", a.output);
    assert!(
        a.output
            .contains("No security key is plugged in. Plug in your security key and try again."),
        "{}",
        a.output
    );
    assert_eq!(
        failures(&env, &only),
        "0",
        "no device is not a failed attempt"
    );
    let calls = keys.calls();
    assert!(
        calls.contains("fido2-token -L") && !calls.contains("fido2-assert"),
        "{calls}"
    );
    keys.set("no-device", false);

    // No touch: killed at local_timeout_seconds, then the menu without the key.
    env.write_config(&webauthn_section(&keys, 2, ""));
    keys.set("hang", true);
    let t2 = in_step(step_of(now()) + 40);
    let started = std::time::Instant::now();
    let a = env.attempt(
        "p2fa",
        &user,
        &format!("key\n{}\n", totp(SECRET, Some(t2))),
        Some(t2),
    );
    assert!(a.ok, "{}", a.output);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        a.output.contains("Verification code, or 1 key: "),
        "{}",
        a.output
    );
    assert!(
        a.output.contains("No touch within 2 seconds."),
        "{}",
        a.output
    );
    assert!(
        a.log
            .contains("local key unusable user=p2fa-lkey service=p2fa rhost=- reason=timeout"),
        "{}",
        a.log
    );
    assert!(a.log.contains("factor=totp"), "{}", a.log);
    let a = env.attempt("p2fa", &only, "", None);
    assert!(!a.ok, "{}", a.output);
    assert!(
        a.output.contains("No touch within 2 seconds."),
        "{}",
        a.output
    );
    assert_eq!(failures(&env, &only), "0");
    assert_eq!(counter(&env, &only), "10");
    assert!(
        keys.running().is_empty(),
        "left running: {:?}",
        keys.running()
    );
}

/// With `local_remote = false` (the default) a login with a remote
/// PAM_RHOST never touches the key; `local_remote = true` offers it.
#[test]
fn remote_logins_are_not_offered_the_key() {
    let user = system_user("p2fa-lkey", "lkey-pw-1");
    let only = system_user("p2fa-lkey2", "lkey-pw-2");
    let keys = Keys::new();
    let env = env_for(&keys, "");
    env.service("p2fa-remote", "webauthn.local_remote=true");
    env.enroll_totp(&user);
    enroll_key(&env, &user, "yk");
    enroll_key(&env, &only, "yk2");
    keys.calls();

    fresh_step(10);
    let a = env.attempt_args(
        &["-I", "rhost=203.0.113.9", "p2fa", &user, "authenticate"],
        format!("{}\n", totp(SECRET, None)).as_bytes(),
        None,
    );
    assert!(a.ok, "{}", a.output);
    assert!(
        a.output.contains("Verification code: ") && !a.output.contains("key"),
        "{}",
        a.output
    );
    let a = env.attempt_args(
        &["-I", "rhost=203.0.113.9", "p2fa", &only, "authenticate"],
        b"",
        None,
    );
    assert!(!a.ok, "{}", a.output);
    assert!(
        a.output.contains("works only at this machine's console"),
        "{}",
        a.output
    );
    assert!(a.log.contains("reason=local-key-console-only"), "{}", a.log);
    assert_eq!(keys.calls(), "", "the key was touched for a remote login");

    // Loopback is still this machine.
    let a = env.attempt_args(
        &["-I", "rhost=127.0.0.1", "p2fa", &only, "authenticate"],
        b"",
        None,
    );
    assert!(a.ok, "{}", a.output);
    let a = env.attempt_args(
        &[
            "-I",
            "rhost=203.0.113.9",
            "p2fa-remote",
            &only,
            "authenticate",
        ],
        b"",
        None,
    );
    assert!(a.ok, "{}", a.output);
    assert!(keys.calls().contains("fido2-assert"));
}

#[test]
fn enrollment_refusals() {
    let user = system_user("p2fa-lkey", "lkey-pw-1");
    let keys = Keys::new();
    let env = Env::with_config(&webauthn_section(&keys, 2, ""));
    let fail = |args: &[&str]| {
        let out = env.enroll(args, "");
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let add = ["webauthn", "add", "--local", "--name", "k", "--user", &user];
    keys.set("no-device", true);
    assert!(fail(&add).contains("no security key found"));
    keys.set("no-device", false);
    let err = fail(&[
        "webauthn",
        "add",
        "--local",
        "--name",
        "k",
        "--user",
        &user,
        "--device",
        "/dev/other",
    ]);
    assert!(
        err.contains("no security key at /dev/other") && err.contains(DEVICE),
        "{err}"
    );
    keys.set("hang", true);
    let started = std::time::Instant::now();
    let err = fail(&add);
    assert!(err.contains("nothing was saved"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    keys.set("hang", false);
    assert!(keys.running().is_empty());
    assert!(!env.db.exists(), "a refused enrollment created the store");
    enroll_key(&env, &user, "k");
    assert!(fail(&add).contains("already has a key named \"k\""));

    // Off in the config: a clear message naming the switch.
    env.write_config("");
    assert!(fail(&add).contains("local_keys = true"));
    // An ordinary user is sent to an administrator.
    let out = Command::new("runuser")
        .args(["-u", &user, "--"])
        .arg(enroll_bin())
        .args([
            "--config",
            "/nonexistent/2fa.conf",
            "webauthn",
            "add",
            "--local",
            "--name",
            "k",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sudo 2fa-enroll webauthn add --local"),
        "{err}"
    );
}

/// The stand-in's output is what real libfido2 accepts: `fido2-cred -V`
/// and `fido2-assert -V` of the Debian package verify it.
#[test]
fn stand_in_speaks_the_real_tools_formats() {
    let keys = Keys::new();
    let cdh = "ZmlkbzItY2RoLWZvci10aGUtc3RhbmQtaW4tY2hlY2s=";
    let made = run(
        &keys.path.join("fido2-cred"),
        &["-M", DEVICE, "es256"],
        &format!("{cdh}\npam://check\nroot\ndXNlci1pZA==\n"),
    );
    let verified = run(Path::new("/usr/bin/fido2-cred"), &["-V"], &made);
    let mut lines = verified.lines();
    let cred_id = lines.next().unwrap().to_string();
    let pem: String = lines.map(|l| format!("{l}\n")).collect();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{verified}");
    let asserted = run(
        &keys.path.join("fido2-assert"),
        &["-G", "-t", "up=true", DEVICE],
        &format!("{cdh}\npam://check\n{cred_id}\n"),
    );
    let pub_file = keys.path.join("state/pub.pem");
    fs::write(&pub_file, pem).unwrap();
    run(
        Path::new("/usr/bin/fido2-assert"),
        &["-V", "-p", pub_file.to_str().unwrap(), "es256"],
        &asserted,
    );
    // And a wrong relying party is refused like a real key does.
    let out = Command::new(keys.path.join("fido2-assert"))
        .args(["-G", "-t", "up=true", DEVICE])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("{cdh}\npam://other\n{cred_id}\n").as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FIDO_ERR_NO_CREDENTIALS"));
}
