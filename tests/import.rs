//! Migration imports through the real CLI, followed by logins through the
//! real libpam with the imported secrets (codes computed by oathtool).

mod common;

use common::{Env, SECRET, hotp, system_user, totp};

const HEX: &str = "3132333435363738393031323334353637383930"; // = SECRET

#[test]
fn google_authenticator_file_dry_run_then_apply_and_login() {
    let user = system_user("p2fa-imp-ga", "Imp0rt-p2fa");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let file = env.root().join("ga");
    std::fs::write(
        &file,
        format!("{SECRET}\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n11223344\n55667788\n"),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = env.enroll_ok(&["import", "google-authenticator", "--user", &user, f], "");
    assert!(
        out.contains("would import TOTP token (6 digits, every 30 s, SHA1) + 2 scratch code(s)"),
        "{out}"
    );
    assert!(out.contains("Dry run"), "{out}");
    assert!(
        !out.contains(SECRET) && !out.contains("11223344"),
        "secrets printed: {out}"
    );
    assert_eq!(
        env.status_json(&user)["otp"],
        serde_json::Value::Null,
        "dry run wrote"
    );

    env.enroll_ok(
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
    common::fresh_step(5);
    assert!(
        env.login(&user, format!("{}\n", totp(SECRET, None)).as_bytes())
            .ok
    );
    assert!(
        env.login(&user, b"1122-3344\n").ok,
        "scratch code works as a backup code"
    );
    assert!(!env.login(&user, b"11223344\n").ok, "once");
}

#[test]
fn oath_usersfile_with_hotp_and_totp() {
    let a = system_user("p2fa-imp-oa", "Imp0rt-p2fa");
    let b = system_user("p2fa-imp-ob", "Imp0rt-p2fa");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let file = env.root().join("users.oath");
    std::fs::write(
        &file,
        format!("# users.oath\nHOTP/T30 {a} - {HEX}\nHOTP {b} - {HEX} 4\nHOTP/T30 nosuchuser-p2fa - {HEX}\n"),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = env.enroll_ok(&["import", "oath", f, "--apply"], "");
    assert!(out.contains("nosuchuser-p2fa: skipped"), "{out}");
    assert!(
        out.contains(&format!(
            "{b}: importing HOTP token (6 digits, next counter 4"
        )),
        "{out}"
    );
    common::fresh_step(5);
    assert!(
        env.login(&a, format!("{}\n", totp(SECRET, None)).as_bytes())
            .ok
    );
    assert!(
        !env.login(&b, format!("{}\n", hotp(SECRET, 3)).as_bytes())
            .ok,
        "counter 3 is spent"
    );
    assert!(
        env.login(&b, format!("{}\n", hotp(SECRET, 4)).as_bytes())
            .ok
    );
}

#[test]
fn malformed_files_are_refused_with_line_numbers() {
    let env = Env::new();
    let bad = env.root().join("bad.oath");
    std::fs::write(
        &bad,
        format!("HOTP/T30 x - {HEX}\nTOTP y - {HEX}\nHOTP z - nothex\n"),
    )
    .unwrap();
    let out = env.enroll(&["import", "oath", bad.to_str().unwrap(), "--apply"], "");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(err.contains("bad.oath:2: unknown token type"), "{err}");
    assert!(err.contains("bad.oath:3: secret is not hex"), "{err}");
    assert!(!err.contains(HEX), "secret in an error: {err}");
    assert!(!env.db.exists() || env.sql("SELECT count(*) FROM otp_tokens") == "0");

    let u2f = env.root().join("u2f_keys");
    std::fs::write(
        &u2f,
        "alice:kh1,pk1,es256,+presence:kh2,pk2,eddsa,+presence\nbob:kh\n",
    )
    .unwrap();
    let out = env.enroll(&["import", "pam-u2f", u2f.to_str().unwrap()], "");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("u2f_keys:2: a credential needs base64 KEYHANDLE,PUBKEY"),
        "{err}"
    );
    std::fs::write(
        &u2f,
        "alice:kh1,pk1,es256,+presence:kh2,pk2,eddsa,+presence\n",
    )
    .unwrap();
    let out = env.enroll(&["import", "pam-u2f", u2f.to_str().unwrap()], "");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(
        text.contains("alice: 2 FIDO credential(s) (es256, eddsa)"),
        "{text}"
    );
    assert!(
        text.contains("pam://HOSTNAME") && text.contains("webauthn add"),
        "{text}"
    );
}
