//! Migration imports through the real `2fa-enroll import`, with fixtures in
//! all three formats (valid and malformed), followed by logins through the
//! real libpam (pamtester + pam_wrapper) with the imported secrets; codes
//! are computed by oathtool, pam_u2f credentials are made and used by the
//! fido2-tools stand-in (tests/mock/fido2_tools). Every test name starts
//! with `import_`.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::fido2::{Keys, hostname, webauthn_section};
use common::{Env, SECRET, hotp, in_step, now, step_of, system_user, totp, totp_with};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

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

fn ok(r: &common::Attempt) -> bool {
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
    assert!(!ok(&env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", totp(SECRET, Some(t))),
        Some(t)
    )));
    let t = in_step(spent + 1);
    assert!(
        ok(&env.attempt(
            "p2fa",
            &user,
            &format!("{}\n", totp(SECRET, Some(t))),
            Some(t)
        )),
        "imported TOTP secret"
    );
    let t = in_step(spent + 2);
    assert!(!ok(&env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", totp(OTHER, Some(t))),
        Some(t)
    )));
    // Scratch codes are backup codes now; the old backup codes are gone.
    assert!(!ok(&env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", old_codes[0]),
        None
    )));
    assert!(
        ok(&env.attempt("p2fa", &user, "1122-3344\n", None)),
        "GA scratch code as a backup code"
    );
    assert!(
        !ok(&env.attempt("p2fa", &user, "11223344\n", None)),
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
        !ok(&env.attempt("p2fa", &user, &format!("{}\n", hotp(SECRET, 6)), None)),
        "spent counter"
    );
    assert!(
        ok(&env.attempt("p2fa", &user, &format!("{}\n", hotp(SECRET, 7)), None)),
        "imported HOTP"
    );
    assert!(
        !ok(&env.attempt("p2fa", &user, &format!("{}\n", hotp(SECRET, 7)), None)),
        "once"
    );
    assert!(
        ok(&env.attempt("p2fa", &user, &format!("{}\n", hotp(SECRET, 9)), None)),
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
        ok(&env.attempt("p2fa", &a, &format!("{}\n", totp(SECRET, Some(t))), Some(t))),
        "imported TOTP (first line of the user)"
    );
    let t = t + 30;
    assert!(!ok(&env.attempt(
        "p2fa",
        &a,
        &format!("{}\n", totp(OTHER, Some(t))),
        Some(t)
    )));
    assert!(
        !ok(&env.attempt("p2fa", &b, &format!("{}\n", hotp(SECRET, 4)), None)),
        "spent with pam_oath"
    );
    assert!(
        ok(&env.attempt("p2fa", &b, &format!("{}\n", hotp(SECRET, 5)), None)),
        "imported HOTP"
    );
    let t = now();
    let code = totp_with(SECRET, Some(t), &["--digits=8", "--time-step-size=60s"]);
    assert_eq!(code.len(), 8);
    assert!(
        ok(&env.attempt("p2fa", &c, &format!("{code}\n"), Some(t))),
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
                "{user}:{kh},{pk},es256,+presence\n{user}\n{user}:{kh},{pk},rsa,+presence\n{user}:{kh},{pk},es256,+touch\n{user}:{kh}\n{user}:{kh},{short},es256,+presence\n{user}:{kh},{pk},es256,+presence:{kh},{off},es256,+presence\n{user}:{kh},04{}\n",
                "ab".repeat(64),
                kh = B64.encode([9u8; 64]),
                pk = B64.encode(p256_xy(1)),
                off = B64.encode({
                    let mut p = p256_xy(1);
                    p[63] ^= 1;
                    p
                }),
                short = B64.encode([4u8; 20]),
            ),
            vec![
                "u2f-bad:2: no credentials after the user name",
                "u2f-bad:3: credential 1: the COSE type must be es256, eddsa or rs256",
                "u2f-bad:4: credential 1: unknown option",
                "u2f-bad:5: credential 1: a credential is KEYHANDLE,PUBKEY,COSETYPE,OPTIONS",
                "u2f-bad:6: credential 1: the public key has the wrong length",
                "u2f-bad:7: credential 2: the es256 public key is not a point on P-256",
                "u2f-bad:8: credential 1: an old-format public key must be a P-256 point in hex",
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

/// A P-256 public key as pamu2fcfg writes it (x || y), from a fixed seed.
fn p256_xy(seed: u8) -> Vec<u8> {
    let k = p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).unwrap();
    k.verifying_key().to_sec1_point(false).as_bytes()[1..].to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn local_keys_table(env: &Env) -> String {
    env.sql(
        "SELECT user, name, hex(credential_id), hex(public_key), rp_id, counter FROM local_keys ORDER BY user, name",
    )
}

/// pam_u2f lines of every kind: es256 credentials (current and pre-1.1
/// format) become local keys next to what the user has; eddsa, resident
/// and rs256 are reported; then the imported credentials log in through
/// the real libpam with the stand-in key that made them.
#[test]
fn import_pam_u2f_dry_run_apply_and_login_with_the_imported_keys() {
    let a = system_user("p2fa-imp-u2a", "Imp0rt-p2fa-5");
    let b = system_user("p2fa-imp-u2b", "Imp0rt-p2fa-5");
    let c = system_user("p2fa-imp-u2c", "Imp0rt-p2fa-5");
    let keys = Keys::new();
    let on = webauthn_section(&keys, 5, "");
    let env = Env::with_config(&on);
    env.enroll_ok(&["init"], "");
    let rp = format!("pam://{}", hostname());
    // a registered a key with pam-2fa already, under the name the import
    // would pick first.
    env.enroll_ok(
        &[
            "webauthn",
            "add",
            "--local",
            "--name",
            "pam_u2f-1",
            "--user",
            &a,
        ],
        "",
    );
    // The credentials pamu2fcfg made on the key, as pam_u2f >= 1.1 and
    // pam_u2f < 1.1 (web-safe base64 key handle, hex SEC1 point) wrote them.
    let (kh1, pk1) = keys.pamu2fcfg(&rp, &a);
    let (kh2, pk2) = keys.pamu2fcfg(&rp, &a);
    let (kh3, pk3) = keys.pamu2fcfg(&rp, &b);
    let ed = B64.encode([0x5au8; 32]);
    let rs = B64.encode([0x33u8; 259]);
    let file = env.root().join("u2f_mappings");
    write(
        &file,
        &format!(
            "# pam_u2f authfile\n\
             {a}:{},{},es256,+presence:{},{},es256,+presence+pin:{},{ed},eddsa,+presence+verification:*,{},es256,+presence\n\
             {b}:{},04{}\n\
             {c}:*,{},es256,+presence:{},{rs},rs256,+presence\n\
             p2fa-imp-nosuch:{},{},es256,+presence\n",
            B64.encode(&kh1),
            B64.encode(&pk1),
            B64.encode(&kh2),
            B64.encode(&pk2),
            B64.encode([0x11u8; 64]),
            B64.encode(p256_xy(7)),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&kh3),
            hex(&pk3).to_lowercase(),
            B64.encode(p256_xy(8)),
            B64.encode([0x22u8; 64]),
            B64.encode([0x44u8; 64]),
            B64.encode(p256_xy(9)),
        ),
        0o644,
    );
    let f = file.to_str().unwrap();
    // Imported with local keys off: a note, nothing refused.
    env.write_config("");
    let before = local_keys_table(&env);
    assert_eq!(before.lines().count(), 1, "{before}");
    let o = env.enroll(&["import", "pam-u2f", f], "");
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    let text = out(&o);
    for want in [
        format!("note: the keys are bound to the relying party \"{rp}\""),
        "note: local security keys are off: imported keys are offered at login only once local_keys = true".into(),
        format!("{a}: would add 2 local keys; keeps the 1 security key {a} has\n"),
        "credential 1 (es256 +presence): local key \"pam_u2f-2\" (pam_u2f-1 taken by".into(),
        "credential 2 (es256 +presence+pin): local key \"pam_u2f-3\"\n".into(),
        "credential 3 (eddsa +presence+verification): not imported: pam-2fa checks ES256 signatures only".into(),
        "credential 4 (es256 resident +presence): not imported: a resident credential (key handle *)".into(),
        format!("sudo 2fa-enroll webauthn add --local --user {a} --name NAME"),
        "note: credential 2: +pin: pam-2fa does not ask for a FIDO2 PIN".into(),
        format!("{b}: would add 1 local key\n"),
        "credential 1 (es256 +presence, pam_u2f < 1.1 format): local key \"pam_u2f-1\"\n".into(),
        format!("{c}: nothing to import\n"),
        "credential 2 (rs256 +presence): not imported".into(),
        "p2fa-imp-nosuch: skipped: no such user on this system (line 5)".into(),
        "Dry run: nothing was written. Run again with --apply to add 3 local keys for 2 users.".into(),
    ] {
        assert!(text.contains(&want), "missing {want:?}:\n{text}");
    }
    assert!(!text.contains("writable by others"), "0644: {text}");
    assert_eq!(local_keys_table(&env), before, "the dry run wrote");

    // --user keeps one user's line.
    let o = env.enroll(&["import", "pam-u2f", "--user", &b, f], "");
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("add 1 local key for 1 user") && !out(&o).contains(&a));

    let o = env.enroll(&["import", "pam-u2f", f, "--apply"], "");
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    let text = out(&o);
    assert!(
        text.contains(&format!("{a}: added 2 local keys"))
            && text.contains(&format!("{b}: added 1 local key"))
            && text.contains("Imported 3 local keys for 2 users from"),
        "{text}"
    );
    let table = local_keys_table(&env);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 4, "{table}");
    assert_eq!(
        &rows[1..],
        [
            format!("{a}|pam_u2f-2|{}|04{}|{rp}|0", hex(&kh1), hex(&pk1)),
            format!("{a}|pam_u2f-3|{}|04{}|{rp}|0", hex(&kh2), hex(&pk2)),
            format!("{b}|pam_u2f-1|{}|04{}|{rp}|0", hex(&kh3), hex(&pk3)),
        ]
    );
    assert!(
        rows[0].starts_with(&format!("{a}|pam_u2f-1|")),
        "kept: {table}"
    );
    let logs = env.logs().join("\n");
    assert!(
        logs.contains(&format!(
            "imported user={a} from=pam-u2f file={f} local_keys=2 not_imported=2 rp_id={rp} by=root"
        )) && logs.contains(&format!("imported user={b} from=pam-u2f")),
        "{logs}"
    );
    assert!(!logs.contains(&c), "nothing imported for {c}: {logs}");
    let list = env.enroll_ok(&["webauthn", "list", "--user", &a], "");
    assert_eq!(list.matches("(local)").count(), 3, "{list}");
    assert!(list.contains("pam_u2f-3"), "{list}");
    assert_eq!(env.status_json(&b)["local_keys"], 1);

    // Run again: the same credentials are there already; nothing changes.
    let o = env.enroll(&["import", "pam-u2f", f, "--apply"], "");
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains(
            "credential 1 (es256 +presence): not imported: registered already as \"pam_u2f-2\""
        ) && out(&o).contains("Nothing to import."),
        "{}",
        out(&o)
    );
    assert_eq!(local_keys_table(&env), table);

    // Logins: local keys on. a's own key goes, so the probe must find an
    // imported one; b has only the old-format credential.
    env.write_config(&on);
    env.enroll_ok(&["webauthn", "remove", "pam_u2f-1", "--user", &a], "");
    keys.calls();
    let at = env.attempt("p2fa", &a, "", None);
    assert!(at.ok, "{}", at.output);
    assert!(
        at.log.contains(&format!(
            "auth ok user={a} service=p2fa rhost=- factor=localkey key=pam_u2f-2"
        )),
        "{}",
        at.log
    );
    let calls = keys.calls();
    assert!(
        calls.contains(&format!(
            "fido2-assert -G -t up=true /dev/hidraw-p2fa-mock0 rp={rp}"
        )),
        "{calls}"
    );
    let at = env.attempt("p2fa", &b, "", None);
    assert!(at.ok, "{}", at.output);
    assert!(
        at.log.contains("factor=localkey key=pam_u2f-1"),
        "{}",
        at.log
    );
    // The first login set the counters pam_u2f never kept.
    for (user, name) in [(&a, "pam_u2f-2"), (&b, "pam_u2f-1")] {
        let n: u32 = env
            .sql(&format!(
                "SELECT counter FROM local_keys WHERE user = '{user}' AND name = '{name}'"
            ))
            .parse()
            .unwrap();
        assert!(n > 10, "{user} {name}: counter {n}");
    }
    // c has nothing: with unenrolled = deny, refused without touching the key.
    keys.calls();
    let at = env.attempt("p2fa", &c, "", None);
    assert!(!at.ok, "{}", at.output);
    assert!(!keys.calls().contains("fido2-assert"));
}

/// A user's own authfile gives keys to that user only; a credential in
/// two users' lines goes to the first; `--rp-id` binds the keys to another
/// origin, which the key must then be asked for.
#[test]
fn import_pam_u2f_user_files_shared_credentials_and_rp_id() {
    let d = system_user("p2fa-imp-u2d", "Imp0rt-p2fa-7");
    let e = system_user("p2fa-imp-u2e", "Imp0rt-p2fa-7");
    let keys = Keys::new();
    let env = Env::with_config(&webauthn_section(&keys, 5, ""));
    env.enroll_ok(&["init"], "");
    let rp = format!("pam://{}", hostname());
    let (kh, pk) = keys.pamu2fcfg(&rp, &d);
    let line = |user: &str| {
        format!(
            "{user}:{},{},es256,+presence",
            B64.encode(&kh),
            B64.encode(&pk)
        )
    };

    // ~d/.config/Yubico/u2f_keys, owned by d, with a line for e too: pam_u2f
    // would never read it for e.
    let (dir, uid, gid) = home(&d);
    let cfg_dir = dir.join(".config/Yubico");
    fs::create_dir_all(&cfg_dir).unwrap();
    let own = cfg_dir.join("u2f_keys");
    write(&own, &format!("{}\n{}\n", line(&d), line(&e)), 0o600);
    nix::unistd::chown(&own, Some(uid), Some(gid)).unwrap();
    let o = env.enroll(&["import", "pam-u2f", own.to_str().unwrap()], "");
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains(&format!(
            "{e}: skipped: the file belongs to uid {uid}, not to {e}, and pam_u2f reads a user's own file only for that user (line 2)"
        )) && out(&o).contains(&format!("{d}: would add 1 local key")),
        "{}",
        out(&o)
    );
    // --user without a file reads that default path.
    let o = env.enroll(&["import", "pam-u2f", "--user", &d, "--apply"], "");
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains(&format!("pam_u2f file {}:", own.display()))
            && out(&o).contains("Imported 1 local key for 1 user"),
        "{}",
        out(&o)
    );
    assert_eq!(
        env.sql("SELECT user, name FROM local_keys"),
        format!("{d}|pam_u2f-1")
    );

    // A root-owned, world-writable central file naming the same credential
    // for d and e, with another origin.
    let central = env.root().join("u2f_mappings");
    write(&central, &format!("{}\n{}\n", line(&e), line(&d)), 0o666);
    let o = env.enroll(
        &[
            "import",
            "pam-u2f",
            central.to_str().unwrap(),
            "--rp-id",
            "pam://other-origin",
        ],
        "",
    );
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    for want in [
        "note: the file is writable by others (mode 0666)",
        "note: the keys are bound to the relying party \"pam://other-origin\"",
        &format!("note: keys registered here with webauthn add --local use \"{rp}\""),
        &format!("{e}: nothing to import"),
        &format!(
            "not imported: registered already for {d} as \"pam_u2f-1\": in pam-2fa a credential belongs to one user"
        ),
        &format!("{d}: nothing to import"),
        "not imported: registered already as \"pam_u2f-1\"",
    ] {
        assert!(text.contains(want), "missing {want:?}:\n{text}");
    }
    // Both users new to the store: the first line of the file gets it.
    let env2 = Env::with_config(&webauthn_section(&keys, 5, ""));
    let o = env2.enroll(
        &[
            "import",
            "pam-u2f",
            central.to_str().unwrap(),
            "--rp-id",
            "pam://other-origin",
            "--apply",
        ],
        "",
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains(&format!(
            "not imported: the same credential as {e}'s, imported for {e}"
        )),
        "{}",
        out(&o)
    );
    assert_eq!(
        env2.sql("SELECT user, name, rp_id FROM local_keys"),
        format!("{e}|pam_u2f-1|pam://other-origin")
    );
    // The key holds the credential for pam://HOST only: asked for the
    // other origin it has none, so e is not let in (and nothing counted).
    let at = env2.attempt("p2fa", &e, "", None);
    assert!(!at.ok, "{}", at.output);
    assert!(
        keys.calls()
            .contains("fido2-assert -G -t up=true /dev/hidraw-p2fa-mock0 rp=pam://other-origin"),
        "asked for the imported origin"
    );
    assert!(
        !env2
            .sql(&format!("SELECT failures FROM users WHERE name = '{e}'"))
            .starts_with('1'),
        "a key without the credential is not a failed attempt"
    );
    let o = env.enroll(
        &[
            "import",
            "pam-u2f",
            "--rp-id",
            "pam://a b",
            central.to_str().unwrap(),
        ],
        "",
    );
    assert!(!o.status.success());
    assert!(
        err(&o).contains("--rp-id must be 1 to 255 characters"),
        "{}",
        err(&o)
    );
}

#[test]
fn import_as_ordinary_user_is_told_to_ask_an_administrator() {
    let user = system_user("p2fa-imp-usr", "Imp0rt-p2fa-6");
    let env = Env::new();
    let run = |args: &[&str]| env.enroll_as(&user, args);
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
            "sudo 2fa-enroll import pam-u2f --user",
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
