//! `2fa-enroll rekey` on a SQLite store (docs/rekey.md), through the
//! real 2fa-enroll and pamtester with the built module: TOTP, backup
//! codes and security questions keep working through `new`, `switch`,
//! `convert` and `finish`; new rows are written with the new generation;
//! after `convert` TOTP needs the new key alone and backup codes and
//! answers are wrapped (they need both keys); a missing key is
//! "unavailable", never a counted failure; answers a login gets all
//! right are re-hashed plainly under the new generation (a wrong answer
//! or a locked account leaves them wrapped) and then need the new key
//! alone; `finish` succeeds without any user action and `rekey new`
//! refuses while wrapped rows remain; `--drop` spends them and reports
//! the users, and never turns a user into an unenrolled one; once the
//! last wrapped answers are re-hashed by a login, `finish` retires the
//! old generation without `--drop`; a used backup code never comes back.

mod common;
use common::daemon::Daemon;
use common::interactive::Session;
use common::*;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const QCONF: &str = "[questions]\nenabled = true\ncount = 2\nask = 2\n";
const QS: [(&str, &str); 2] = [
    ("What was the name of your first school?", "Springfield"),
    ("In which city did your parents meet?", "Zurich"),
];

/// The config with `key_file` and `extra` top-level keys.
fn write_keys(env: &Env, key_file: &Path, extra: &str) {
    let text = format!(
        "db = \"{}\"\nkey_file = \"{}\"\nlog_socket = \"{}\"\n{extra}\n{QCONF}",
        env.db.display(),
        key_file.display(),
        env.root().join("log.sock").display(),
    );
    std::fs::write(&env.conf, text).unwrap();
}

/// The config with the Env's own key file and `extra` top-level keys.
fn config(env: &Env, extra: &str) {
    write_keys(env, &env.key, extra);
}

/// A TOTP login in the next step.
fn totp_ok(env: &Env, user: &str, step: &mut i64, why: &str) {
    *step += 1;
    let t = in_step(*step);
    let a = code_login(env, user, &totp(SECRET, Some(t)), t);
    assert!(a.ok, "TOTP {why}: {}\n{}", a.output, a.log);
}

fn key_line(name: &str, p: &Path) -> String {
    format!("{name} = \"{}\"\n", p.display())
}

fn enroll_questions(env: &Env, user: &str) {
    let input: String = QS
        .iter()
        .enumerate()
        .map(|(i, (_, a))| format!("{}\n{a}\n{a}\n", i + 1))
        .collect();
    let out = env.enroll_ok(&["questions", "--user", user], &input);
    assert!(out.contains("Saved 2 security questions"), "{out}");
}

/// A login answering the questions (the user's only factor).
fn questions_login(env: &Env, user: &str) -> (bool, String) {
    let mut s = Session::start(&env.svc_dir, "p2fa", user);
    for _ in 0..2 {
        let p = s.expect_prompt("?", WAIT);
        let a = QS.iter().find(|(q, _)| p.contains(q)).unwrap().1;
        s.answer(a);
    }
    let o = s.finish(WAIT);
    (o.ok, o.transcript)
}

/// A questions login on a host without the answers' key: unavailable
/// before any question is asked, no failure counted.
fn questions_unavailable(env: &Env, user: &str) {
    let before = failures(env, user);
    let a = env.attempt("p2fa", user, "Springfield\nZurich\n", None);
    assert!(!a.ok, "{}", a.output);
    assert!(a.log.contains("unavailable"), "{}", a.log);
    assert_eq!(failures(env, user), before);
}

/// A login with `code` at time `t`.
fn code_login(env: &Env, user: &str, code: &str, t: i64) -> Attempt {
    env.attempt("p2fa", user, &format!("{code}\n"), Some(t))
}

fn failures(env: &Env, user: &str) -> i64 {
    env.status_json(user)["failures"].as_i64().unwrap()
}

/// `key_gen inner_gen` of each of `user`'s answers, by index ("-": not
/// wrapped).
fn answer_gens(env: &Env, user: &str) -> String {
    env.sql(&format!(
        "SELECT key_gen || ' ' || ifnull(inner_gen, '-') FROM questions \
         WHERE user = '{user}' ORDER BY idx"
    ))
}

fn answer_hashes(env: &Env, user: &str) -> String {
    env.sql(&format!(
        "SELECT answer_hash FROM questions WHERE user = '{user}' ORDER BY idx"
    ))
}

/// Algorithm, version and argon2 parameters of each PHC string (one a
/// line), without salt and output.
fn argon2_params(hashes: &str) -> Vec<String> {
    hashes
        .lines()
        .map(|l| l.split('$').take(4).collect::<Vec<_>>().join("$"))
        .collect()
}

/// A questions login with `answers` (in stored order: both are asked).
fn answer(env: &Env, user: &str, answers: &str) -> Attempt {
    env.attempt("p2fa", user, answers, None)
}

#[test]
fn rekey_on_sqlite_keeps_every_factor_working() {
    let user = system_user("p2fa-rekey", "Rekey-p2fa-1");
    let quser = system_user("p2fa-rekeyq", "Rekey-p2fa-2");
    let late = system_user("p2fa-rekeyl", "Rekey-p2fa-3");
    let solo = system_user("p2fa-rekeys", "Rekey-p2fa-4");
    // Never answers between convert and finish: stays wrapped.
    let wuser = system_user("p2fa-rekeyw", "Rekey-p2fa-6");
    let env = Env::with_config(QCONF);
    env.enroll_ok(&["init"], "");
    env.enroll_totp(&user);
    let codes = env.enroll_backup(&user, 8);
    env.enroll_totp(&solo);
    enroll_questions(&env, &quser);
    enroll_questions(&env, &wuser);
    let old_key = env.key.clone();
    let next_key = env.root().join("keys/2fa.key.next");
    let mut step = step_of(now()) + 2;
    totp_ok(&env, &user, &mut step, "before rekey");

    // `finish` and `convert` have nothing to do yet; `switch` has no key.
    assert!(!env.enroll(&["rekey", "finish"], "").status.success());
    assert!(!env.enroll(&["rekey", "switch"], "").status.success());

    // 1. new: writes the key, records its check value; hosts still write
    //    generation 0.
    let out = env.enroll_ok(&["rekey", "new"], "");
    assert!(out.contains("generation 1"), "{out}");
    assert!(next_key.exists());
    let again = env.enroll(&["rekey", "new"], "");
    assert!(!again.status.success(), "a second next key needs --replace");
    config(&env, &key_line("next_key_file", &next_key));
    totp_ok(&env, &user, &mut step, "after new");
    let a = code_login(&env, &user, &codes[0], in_step(step));
    assert!(a.ok, "backup code after new: {}", a.log);
    assert!(questions_login(&env, &quser).0, "questions after new");

    // 2. switch: new rows are generation 1, old ones still verify.
    let out = env.enroll_ok(&["rekey", "switch"], "");
    assert!(out.contains("generation 1"), "{out}");
    env.enroll_totp(&late);
    assert_eq!(
        env.sql(&format!(
            "SELECT key_gen FROM otp_tokens WHERE user = '{late}'"
        ))
        .trim(),
        "1"
    );
    let late_codes = env.enroll_backup(&late, 2);
    assert_eq!(
        env.sql(&format!(
            "SELECT DISTINCT key_gen FROM backup_codes WHERE user = '{late}'"
        ))
        .trim(),
        "1"
    );
    totp_ok(&env, &user, &mut step, "after switch (old row)");
    let a = code_login(&env, &user, &codes[1], in_step(step));
    assert!(a.ok, "old backup code after switch: {}", a.log);
    let a = code_login(&env, &late, &late_codes[0], in_step(step));
    assert!(a.ok, "new backup code after switch: {}", a.log);
    assert!(questions_login(&env, &quser).0, "questions after switch");

    // A host configured with the old key alone is unavailable now, and
    // counts no failure.
    config(&env, "");
    let before = failures(&env, &user);
    let a = code_login(&env, &user, &codes[2], in_step(step));
    assert!(!a.ok);
    assert!(a.log.contains("unavailable"), "{}", a.log);
    assert_eq!(failures(&env, &user), before);
    questions_unavailable(&env, &quser);

    // The admin's new config: key_file is the new key, the old one is
    // the previous.
    let write_swapped = |extra: &str| write_keys(&env, &next_key, extra);
    write_swapped(&key_line("previous_key_file", &old_key));
    totp_ok(&env, &user, &mut step, "swapped config");

    // 3. convert: TOTP secrets re-sealed with generation 1, every backup
    //    code (used ones too) and answer hash of generation 0 wrapped.
    let hash_of = |id: &str| {
        env.sql(&format!(
            "SELECT hex(hash) || ' ' || key_gen || ' ' || ifnull(inner_gen, '-') \
             FROM backup_codes WHERE id = {id}"
        ))
        .trim()
        .to_string()
    };
    let first_id = env
        .sql(&format!(
            "SELECT min(id) FROM backup_codes WHERE user = '{user}'"
        ))
        .trim()
        .to_string();
    let plain = hash_of(&first_id);
    assert!(plain.ends_with(" 0 -"), "{plain}");
    let answer_before = answer_hashes(&env, &quser);
    let out = env.enroll_ok(&["rekey", "convert"], "");
    assert!(out.contains("Re-sealed 2 TOTP/HOTP"), "{out}");
    assert!(
        out.contains("Wrapped 8 backup codes and 4 security answers of generation 0"),
        "{out}"
    );
    assert_eq!(
        env.sql(&format!(
            "SELECT key_gen FROM otp_tokens WHERE user = '{user}'"
        ))
        .trim(),
        "1"
    );
    let wrapped = hash_of(&first_id);
    assert!(wrapped.ends_with(" 1 0"), "{wrapped}");
    assert_ne!(
        wrapped,
        plain.replace(" 0 -", " 1 0"),
        "the hash itself changed"
    );
    assert_eq!(
        env.sql(&format!(
            "SELECT count(*) FROM backup_codes WHERE user = '{user}' AND key_gen = 1 AND inner_gen = 0"
        ))
        .trim(),
        "8"
    );
    assert_eq!(
        env.sql(&format!(
            "SELECT DISTINCT key_gen || ' ' || ifnull(inner_gen, '-') FROM backup_codes \
             WHERE user = '{late}'"
        ))
        .trim(),
        "1 -",
        "rows of the new generation are not wrapped"
    );
    let answer_after = answer_hashes(&env, &quser);
    assert_eq!(answer_gens(&env, &quser), "1 0\n1 0");
    assert_ne!(answer_before, answer_after);
    let salt_params = |h: &str| {
        h.lines()
            .map(|l| l.rsplit_once('$').unwrap().0.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(salt_params(&answer_before), salt_params(&answer_after));
    // A second convert changes nothing (no double wrap).
    let out = env.enroll_ok(&["rekey", "convert"], "");
    assert!(
        out.contains("Wrapped 0 backup codes and 0 security answers"),
        "{out}"
    );
    assert_eq!(hash_of(&first_id), wrapped);
    let status = env.enroll_ok(&["rekey", "status"], "");
    assert!(status.contains("Writing with generation 1"), "{status}");
    assert!(
        status.contains("backup_codes  generation 1 wrapping 0: 6 rows"),
        "{status}"
    );
    assert!(
        status.contains("questions     generation 1 wrapping 0: 4 rows"),
        "{status}"
    );

    // TOTP with the new key alone (a user whose only factor it is); a
    // wrapped code needs the previous key too: without it the user is
    // unavailable before any code is compared (never a counted failure,
    // no guessing), and so are the wrapped answers.
    write_swapped("");
    totp_ok(&env, &solo, &mut step, "new key alone after convert");
    let before = failures(&env, &user);
    let a = code_login(&env, &user, &codes[3], in_step(step));
    assert!(!a.ok);
    assert!(a.log.contains("unavailable"), "{}", a.log);
    step += 1;
    let bad = wrong_totp(SECRET, in_step(step));
    let a = code_login(&env, &user, &bad, in_step(step));
    assert!(!a.ok);
    assert!(a.log.contains("unavailable"), "{}", a.log);
    assert_eq!(failures(&env, &user), before);
    questions_unavailable(&env, &quser);

    // Both keys: a code issued before the rotation logs in once, then
    // it is used; the answers set before it verify.
    write_swapped(&key_line("previous_key_file", &old_key));
    let a = code_login(&env, &user, &codes[3], in_step(step));
    assert!(a.ok, "wrapped backup code after convert: {}", a.log);
    let a = code_login(&env, &user, &codes[3], in_step(step));
    assert!(!a.ok, "a used wrapped backup code came back");
    let a = code_login(&env, &user, &codes[0], in_step(step));
    assert!(!a.ok, "a used backup code came back");

    // A wrong answer (the second) is refused and counted, and re-hashes
    // nothing, not even the right first one.
    let before = failures(&env, &quser);
    let a = answer(&env, &quser, "Springfield\nBoston\n");
    assert!(!a.ok, "a wrong answer: {}", a.output);
    assert!(!a.log.contains("rehashed"), "{}", a.log);
    assert_eq!(failures(&env, &quser), before + 1);
    assert_eq!(answer_gens(&env, &quser), "1 0\n1 0");
    assert_eq!(answer_hashes(&env, &quser), answer_after);
    // Nor does a locked account, right answers or not.
    env.sql(&format!(
        "UPDATE users SET locked_until = {} WHERE name = '{quser}'",
        now() + 3600
    ));
    let a = answer(&env, &quser, "Springfield\nZurich\n");
    assert!(!a.ok, "locked: {}", a.output);
    assert_eq!(answer_gens(&env, &quser), "1 0\n1 0");
    assert_eq!(answer_hashes(&env, &quser), answer_after);
    env.sql(&format!(
        "UPDATE users SET locked_until = 0 WHERE name = '{quser}'"
    ));
    // Every answer right: the wrapped answers verify, and are re-hashed
    // plainly under generation 1 (new salt, the argon2 parameters of newly
    // set answers) in the transaction that records the success.
    let a = answer(&env, &quser, "Springfield\nZurich\n");
    assert!(
        a.ok,
        "wrapped answers after convert: {}\n{}",
        a.output, a.log
    );
    assert!(a.log.contains("rehashed-answers=2"), "{}", a.log);
    assert_eq!(failures(&env, &quser), 0);
    assert_eq!(answer_gens(&env, &quser), "1 -\n1 -");
    let rehashed = answer_hashes(&env, &quser);
    for (new, old) in rehashed.lines().zip(answer_after.lines()) {
        assert_ne!(new, old);
        assert!(!answer_before.contains(new), "a new hash: {new}");
    }
    assert_eq!(argon2_params(&rehashed), argon2_params(&answer_before));
    let status = env.enroll_ok(&["rekey", "status"], "");
    assert!(
        status.contains("questions     generation 1: 2 rows"),
        "{status}"
    );
    assert!(
        status.contains("questions     generation 1 wrapping 0: 2 rows"),
        "{status}"
    );
    // Re-hashed once: the next login writes nothing.
    let a = answer(&env, &quser, "Springfield\nZurich\n");
    assert!(a.ok, "{}\n{}", a.output, a.log);
    assert!(!a.log.contains("rehashed"), "{}", a.log);
    assert_eq!(answer_hashes(&env, &quser), rehashed);
    // They need the new key alone now; wuser's wrapped ones do not.
    write_swapped("");
    assert!(
        questions_login(&env, &quser).0,
        "re-hashed answers with the new key alone"
    );
    questions_unavailable(&env, &wuser);
    write_swapped(&key_line("previous_key_file", &old_key));

    // 4. finish: nothing is keyed by generation 0 alone, so it succeeds
    //    without any user making new codes or answers, and says how many
    //    wrapped rows still need the previous key.
    let out = env.enroll_ok(&["rekey", "finish"], "");
    assert!(
        out.contains("Nothing is keyed by generation 0 alone"),
        "{out}"
    );
    assert!(
        out.contains("5 unused backup codes and 2 security answers of 2 users are wrapped"),
        "{out}"
    );
    assert!(!out.contains("retired"), "{out}");
    // Wrapped rows keep working while hosts have previous_key_file.
    let a = code_login(&env, &user, &codes[4], in_step(step));
    assert!(a.ok, "wrapped backup code after finish: {}", a.log);
    let a = code_login(&env, &user, &codes[4], in_step(step));
    assert!(!a.ok, "a used wrapped backup code came back after finish");
    assert!(
        questions_login(&env, &quser).0,
        "re-hashed answers after finish"
    );
    // Without previous_key_file a wrapped code is unavailable, not a
    // failure.
    write_swapped("");
    let before = failures(&env, &user);
    let a = code_login(&env, &user, &codes[5], in_step(step));
    assert!(!a.ok);
    assert!(a.log.contains("unavailable"), "{}", a.log);
    assert_eq!(failures(&env, &user), before);
    questions_unavailable(&env, &wuser);
    assert!(
        questions_login(&env, &quser).0,
        "re-hashed answers without the previous key"
    );
    write_swapped(&key_line("previous_key_file", &old_key));

    // No third generation while wrapped rows remain (no double wrap).
    let o = env.enroll(&["rekey", "new"], "");
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("4 backup codes and 2 security answers of 2 users are still wrapped"),
        "{text}"
    );
    assert!(text.contains("finish --drop"), "{text}");

    // finish --drop retires generation 0 now; it keeps the user whose
    // only factor is the wrapped answers.
    let o = env.enroll(&["rekey", "finish", "--drop"], "");
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(text.contains(&wuser), "{text}");
    assert!(
        !text.contains(&quser),
        "re-hashed answers need nothing: {text}"
    );
    assert!(
        text.contains(&format!("{user}: dropped 4 unused backup codes")),
        "{text}"
    );
    assert_eq!(env.status_json(&user)["backup_codes_remaining"], 0);
    assert_eq!(answer_gens(&env, &wuser), "1 0\n1 0");
    // wuser's answers are all that needs generation 0 now: a wrong one
    // leaves them so (finish still cannot retire it), the right ones are
    // re-hashed, and then finish retires generation 0 without --drop
    // and without wuser setting new answers.
    let a = answer(&env, &wuser, "Boston\nZurich\n");
    assert!(!a.ok, "a wrong answer: {}", a.output);
    assert_eq!(answer_gens(&env, &wuser), "1 0\n1 0");
    let out = env.enroll_ok(&["rekey", "finish"], "");
    assert!(
        out.contains("0 unused backup codes and 2 security answers of 1 users are wrapped"),
        "{out}"
    );
    assert!(!out.contains("retired"), "{out}");
    let a = answer(&env, &wuser, "Springfield\nZurich\n");
    assert!(a.ok, "{}\n{}", a.output, a.log);
    assert!(a.log.contains("rehashed-answers=2"), "{}", a.log);
    assert_eq!(answer_gens(&env, &wuser), "1 -\n1 -");
    let status = env.enroll_ok(&["rekey", "status"], "");
    assert!(!status.contains("wrapping"), "{status}");
    assert!(
        status.contains("No row needs generation 0 any more"),
        "{status}"
    );
    let out = env.enroll_ok(&["rekey", "finish"], "");
    assert!(out.contains("Generation 0 retired"), "{out}");

    // Without the previous key: everything left works, answers set anew
    // after the rotation too.
    write_swapped("");
    totp_ok(&env, &user, &mut step, "after finish");
    assert!(
        questions_login(&env, &quser).0,
        "re-hashed answers after finish"
    );
    assert!(
        questions_login(&env, &wuser).0,
        "answers re-hashed by a login after finish"
    );
    enroll_questions(&env, &quser);
    assert_eq!(answer_gens(&env, &quser), "1 -\n1 -");
    assert!(questions_login(&env, &quser).0, "new answers after finish");
    let a = code_login(&env, &late, &late_codes[1], in_step(step));
    assert!(a.ok, "generation-1 backup code after finish: {}", a.log);
    for c in [&codes[0], &codes[6]] {
        let a = code_login(&env, &user, c, in_step(step));
        assert!(!a.ok, "a used or dropped backup code came back");
    }
    // The old key is no longer any generation: a host still using it as
    // key_file is unavailable.
    config(&env, "");
    step += 1;
    let t = in_step(step);
    let a = code_login(&env, &user, &totp(SECRET, Some(t)), t);
    assert!(!a.ok);
    assert!(a.log.contains("unavailable"), "{}", a.log);
}

/// 2fad loads the same keys as a login (key_file + previous_key_file):
/// after a rotation its proof check takes a wrapped backup code issued
/// before it, once; the user's new codes replace the wrapped ones, and
/// `finish` then retires the old generation.
#[test]
fn twofad_takes_a_wrapped_backup_code_as_proof() {
    let user = system_user("p2fa-rekeyd", "Rekey-p2fa-5");
    let env = Env::with_config(QCONF);
    env.enroll_ok(&["init"], "");
    env.enroll_totp(&user);
    let codes = env.enroll_backup(&user, 4);
    let old_key = env.key.clone();
    let next_key = env.root().join("keys/2fa.key.next");
    env.enroll_ok(&["rekey", "new"], "");
    config(&env, &key_line("next_key_file", &next_key));
    env.enroll_ok(&["rekey", "switch"], "");
    write_keys(&env, &next_key, &key_line("previous_key_file", &old_key));
    let out = env.enroll_ok(&["rekey", "convert"], "");
    assert!(out.contains("Wrapped 4 backup codes"), "{out}");
    let d = Daemon::socket_only(&env);
    let o = d.enroll_as(&user, &["backup"], &format!("{}\n", codes[0]));
    assert!(o.status.success(), "{}", output_text(&o));
    let fresh = parse_backup_codes(&String::from_utf8_lossy(&o.stdout));
    assert!(!fresh.is_empty(), "{}", output_text(&o));
    assert_eq!(
        env.sql(&format!(
            "SELECT count(*) FROM backup_codes WHERE user = '{user}' \
             AND used_at IS NULL AND inner_gen IS NOT NULL"
        ))
        .trim(),
        "0"
    );
    assert_eq!(env.status_json(&user)["failures"], 0);
    let t = in_step(step_of(now()) + 2);
    let a = code_login(&env, &user, &codes[0], t);
    assert!(!a.ok, "the code spent as proof came back");
    let a = code_login(&env, &user, &fresh[0], t);
    assert!(a.ok, "a new code: {}", a.log);
    let out = env.enroll_ok(&["rekey", "finish"], "");
    assert!(out.contains("Generation 0 retired"), "{out}");
}
