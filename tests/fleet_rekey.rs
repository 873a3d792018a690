//! `2fa-enroll rekey` in fleet mode (docs/rekey.md): two simulated hosts
//! share one PostgreSQL database and the fleet key, as in tests/fleet.rs.
//! A host without the next key is unavailable after `rekey switch` (and
//! counts no failure) until it gets the key; backup codes and answers
//! made before the rotation are wrapped by `convert` and verify with
//! both keys (a host without the previous one: unavailable); answers a
//! login gets all right are re-hashed plainly under the new generation
//! (a wrong answer leaves them wrapped) and then need the new key alone
//! on every host; `finish` needs no user action, `rekey new` refuses
//! while wrapped rows remain, and once logins re-hashed the last wrapped
//! answers `finish` retires the old generation without `--drop`; the
//! fleet rotates the key while the other host keeps logging in, with no
//! failure and no "unavailable".

mod common;
use common::fleet::copy_key;
use common::pg::PgServer;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

const ROLE: &str = "pam2fa";
const ROLE_PASSWORD: &str = "pam2fa-login-pw";
const QCONF: &str = "[questions]\nenabled = true\ncount = 2\nask = 2\n";
/// The answers to built-in questions 1 and 2, in that order (with
/// `ask = 2` both are asked, in stored order).
const ANSWERS: &str = "Springfield\nZurich\n";

fn enroll_questions(h: &Host, user: &str) {
    let out = h.env.enroll_ok(
        &["questions", "--user", user],
        "1\nSpringfield\nSpringfield\n2\nZurich\nZurich\n",
    );
    assert!(out.contains("Saved 2 security questions"), "{out}");
}

/// A questions login on `h` (the user's only factor).
fn questions_login(h: &Host, user: &str) -> Attempt {
    h.env.attempt("p2fa", user, ANSWERS, None)
}

struct Host {
    env: Env,
    /// The fleet part of the config (store, host, database).
    fleet: String,
}

impl Host {
    /// Writes the config atomically (a login running meanwhile reads the
    /// old or the new file, never half of one): the fleet settings plus
    /// `key_file` and `keys` (next/previous key lines).
    fn config(&self, key_file: &Path, keys: &str) {
        let text = format!(
            "db = \"{}\"\nkey_file = \"{}\"\nlog_socket = \"{}\"\n{keys}\n{}",
            self.env.db.display(),
            key_file.display(),
            self.env.root().join("log.sock").display(),
            self.fleet
        );
        let tmp = self.env.root().join("2fa.conf.new");
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, &self.env.conf).unwrap();
    }
}

struct Fleet {
    pg: PgServer,
    db: String,
    a: Host,
    b: Host,
}

fn host(pg: &PgServer, db: &str, name: &str) -> Host {
    let env = Env::new();
    let fleet = pg.fleet_config(&env, db, name, (ROLE, ROLE_PASSWORD), "") + QCONF;
    let h = Host { env, fleet };
    h.config(&h.env.key.clone(), "");
    h
}

impl Fleet {
    fn new() -> Fleet {
        let pg = PgServer::start();
        let db = pg.create_db();
        pg.create_role(ROLE, ROLE_PASSWORD);
        pg.psql("postgres", &format!("ALTER DATABASE {db} OWNER TO {ROLE}"));
        let a = host(&pg, &db, "host-a");
        let b = host(&pg, &db, "host-b");
        a.env.enroll_ok(&["init"], "");
        copy_key(&a.env.key, &b.env.key);
        b.env.enroll_ok(&["init"], "");
        Fleet { pg, db, a, b }
    }

    fn sql(&self, q: &str) -> String {
        self.pg.psql(&self.db, q).trim().to_string()
    }

    /// `rekey new` on A; returns the new key's path on A and B (copied).
    fn new_key(&self) -> (PathBuf, PathBuf) {
        let out = self.a.env.enroll_ok(&["rekey", "new"], "");
        assert!(out.contains("generation 1"), "{out}");
        let on_a = self.a.env.root().join("keys/2fa.key.next");
        let on_b = self.b.env.root().join("keys/2fa.key.next");
        copy_key(&on_a, &on_b);
        (on_a, on_b)
    }
}

fn next_line(p: &Path) -> String {
    format!("next_key_file = \"{}\"\n", p.display())
}

fn previous_line(p: &Path) -> String {
    format!("previous_key_file = \"{}\"\n", p.display())
}

/// A login on `h` in the next TOTP step, with `code` or the TOTP code.
fn login(h: &Host, user: &str, code: Option<&str>, step: &mut i64) -> Attempt {
    *step += 1;
    let t = in_step(*step);
    let c = code.map_or_else(|| totp(SECRET, Some(t)), str::to_string);
    h.env.attempt("p2fa", user, &format!("{c}\n"), Some(t))
}

/// `key_gen inner_gen` of each of `user`'s answers, by index ("-": not
/// wrapped).
fn answer_gens(f: &Fleet, user: &str) -> String {
    f.sql(&format!(
        "SELECT key_gen || ' ' || coalesce(inner_gen::text, '-') FROM p2fa.questions \
         WHERE username = '{user}' ORDER BY idx"
    ))
}

fn failures(f: &Fleet, user: &str) -> String {
    f.sql(&format!(
        "SELECT failures FROM p2fa.users WHERE name = '{user}'"
    ))
}

#[test]
fn a_host_without_the_next_key_is_unavailable_after_switch() {
    let user = system_user("p2fa-frk1", "frk1-pw-1");
    let f = Fleet::new();
    let quser = system_user("p2fa-frk1q", "frk1-pw-3");
    // Answers only after finish: stays wrapped until then.
    let wuser = system_user("p2fa-frk1w", "frk1-pw-4");
    f.a.env.enroll_totp(&user);
    let codes = f.a.env.enroll_backup(&user, 4);
    enroll_questions(&f.a, &quser);
    enroll_questions(&f.b, &wuser);
    let (next_a, next_b) = f.new_key();
    f.a.config(&f.a.env.key, &next_line(&next_a));
    // Only A has the next key; B still logs in before the switch.
    let mut step = step_of(now()) + 2;
    let r = login(&f.b, &user, None, &mut step);
    assert!(r.ok, "B before switch: {}\n{}", r.output, r.log);
    // B cannot switch (it lacks the key); A can.
    let o = f.b.env.enroll(&["rekey", "switch"], "");
    assert!(!o.status.success(), "{}", output_text(&o));
    // B is active in the fleet and has not reported the key: refused,
    // naming it, unless forced.
    let o = f.a.env.enroll(&["rekey", "switch"], "");
    assert!(!o.status.success());
    assert!(output_text(&o).contains("host-b"), "{}", output_text(&o));
    f.a.env.enroll_ok(&["rekey", "switch", "--force"], "");
    assert_eq!(
        f.sql("SELECT convert_from(value, 'UTF8') FROM p2fa.meta WHERE name = 'key_gen'"),
        "1"
    );

    // B without the next key: unavailable, nothing counted, nothing spent.
    let before = failures(&f, &user);
    let r = login(&f.b, &user, None, &mut step);
    assert!(!r.ok, "{}", r.output);
    assert!(r.log.contains("unavailable"), "{}", r.log);
    let r = login(&f.b, &user, Some(&codes[0]), &mut step);
    assert!(!r.ok);
    assert_eq!(failures(&f, &user), before);
    assert_eq!(
        f.sql(&format!(
            "SELECT count(*) FROM p2fa.backup_codes WHERE username = '{user}' AND used_at IS NULL"
        )),
        "4"
    );
    // Nor can B enroll (it would write with a generation it does not
    // have).
    let o = f.b.env.enroll(&["backup", "--user", &user], "");
    assert!(!o.status.success(), "{}", output_text(&o));

    // A logs in, and writes generation 1.
    let r = login(&f.a, &user, None, &mut step);
    assert!(r.ok, "A after switch: {}\n{}", r.output, r.log);
    let late = system_user("p2fa-frk1b", "frk1-pw-2");
    f.a.env.enroll_totp(&late);
    assert_eq!(
        f.sql(&format!(
            "SELECT key_gen FROM p2fa.otp_tokens WHERE username = '{late}'"
        )),
        "1"
    );

    // B gets the key: works again, old and new rows alike.
    f.b.config(&f.b.env.key, &next_line(&next_b));
    let r = login(&f.b, &user, Some(&codes[0]), &mut step);
    assert!(r.ok, "B with the key: {}\n{}", r.output, r.log);
    let r = login(&f.b, &user, None, &mut step);
    assert!(r.ok, "B TOTP with the key: {}\n{}", r.output, r.log);

    // Convert from B; TOTP then needs the new key alone.
    f.b.env.enroll_ok(&["rekey", "convert"], "");
    assert_eq!(
        f.sql(&format!(
            "SELECT key_gen FROM p2fa.otp_tokens WHERE username = '{user}'"
        )),
        "1"
    );
    f.a.config(&next_a, "");
    // The old backup codes still need the previous key: unavailable,
    // before the (right) TOTP code is even compared; nothing counted.
    let before = failures(&f, &user);
    let r = login(&f.a, &user, None, &mut step);
    assert!(!r.ok, "{}", r.output);
    assert!(r.log.contains("unavailable"), "{}", r.log);
    assert_eq!(failures(&f, &user), before);
    // A user with rows of the new generation only needs nothing else.
    let r = login(&f.a, &late, None, &mut step);
    assert!(r.ok, "A with the new key alone: {}\n{}", r.output, r.log);
    // Convert wrapped the codes: with both keys an unused code issued
    // before the rotation logs in once, on A; on B it is then used.
    assert_eq!(
        f.sql(&format!(
            "SELECT count(*) FROM p2fa.backup_codes WHERE username = '{user}' \
             AND key_gen = 1 AND inner_gen = 0"
        )),
        "4"
    );
    f.a.config(&next_a, &previous_line(&f.a.env.key));
    let r = login(&f.a, &user, Some(&codes[1]), &mut step);
    assert!(r.ok, "wrapped code with both keys: {}\n{}", r.output, r.log);
    let r = login(&f.b, &user, Some(&codes[1]), &mut step);
    assert!(!r.ok, "a used wrapped code on the other host: {}", r.output);
    // Answers set before the rotation are wrapped; a wrong one re-hashes
    // nothing; right ones verify and are re-hashed plainly under
    // generation 1 (on A), and then verify on B too.
    assert_eq!(answer_gens(&f, &quser), "1 0\n1 0");
    let wrapped = f.sql(&format!(
        "SELECT answer_hash FROM p2fa.questions WHERE username = '{quser}' ORDER BY idx"
    ));
    let r =
        f.a.env
            .attempt("p2fa", &quser, "Springfield\nBoston\n", None);
    assert!(!r.ok, "a wrong answer: {}", r.output);
    assert_eq!(failures(&f, &quser), "1");
    assert_eq!(answer_gens(&f, &quser), "1 0\n1 0");
    let r = questions_login(&f.a, &quser);
    assert!(r.ok, "wrapped answers on A: {}\n{}", r.output, r.log);
    assert!(r.log.contains("rehashed-answers=2"), "{}", r.log);
    assert_eq!(failures(&f, &quser), "0");
    assert_eq!(answer_gens(&f, &quser), "1 -\n1 -");
    let rehashed = f.sql(&format!(
        "SELECT answer_hash FROM p2fa.questions WHERE username = '{quser}' ORDER BY idx"
    ));
    for (new, old) in rehashed.lines().zip(wrapped.lines()) {
        assert_ne!(new, old);
    }
    let r = questions_login(&f.b, &quser);
    assert!(r.ok, "re-hashed answers on B: {}\n{}", r.output, r.log);
    assert!(!r.log.contains("rehashed"), "{}", r.log);
    assert_eq!(answer_gens(&f, &wuser), "1 0\n1 0");

    // finish succeeds without users making anything new, and says what
    // still needs the previous key.
    let out = f.a.env.enroll_ok(&["rekey", "finish"], "");
    assert!(
        out.contains("Nothing is keyed by generation 0 alone"),
        "{out}"
    );
    assert!(
        out.contains("2 unused backup codes and 2 security answers of 2 users are wrapped"),
        "{out}"
    );
    let status = f.b.env.enroll_ok(&["rekey", "status"], "");
    assert!(
        status.contains("backup_codes  generation 1 wrapping 0: 2 rows"),
        "{status}"
    );
    // Wrapped rows still verify after finish (on B, both keys).
    let r = login(&f.b, &user, Some(&codes[2]), &mut step);
    assert!(r.ok, "wrapped code after finish: {}\n{}", r.output, r.log);
    // A without previous_key_file: a wrapped code is unavailable there,
    // never a counted failure; so are the wrapped answers.
    f.a.config(&next_a, "");
    let before = failures(&f, &user);
    let r = login(&f.a, &user, Some(&codes[3]), &mut step);
    assert!(!r.ok);
    assert!(r.log.contains("unavailable"), "{}", r.log);
    assert_eq!(failures(&f, &user), before);
    let qbefore = failures(&f, &wuser);
    let r = questions_login(&f.a, &wuser);
    assert!(!r.ok);
    assert!(r.log.contains("unavailable"), "{}", r.log);
    assert_eq!(failures(&f, &wuser), qbefore);
    // The re-hashed answers need the new key alone.
    let r = questions_login(&f.a, &quser);
    assert!(
        r.ok,
        "re-hashed answers, new key alone: {}\n{}",
        r.output, r.log
    );
    // No third generation while wrapped rows remain.
    let o = f.a.env.enroll(&["rekey", "new"], "");
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("1 backup codes and 2 security answers of 2 users are still wrapped"),
        "{text}"
    );
    // The code that was unavailable on A works once with both keys.
    f.a.config(&next_a, &previous_line(&f.a.env.key));
    let r = login(&f.a, &user, Some(&codes[3]), &mut step);
    assert!(
        r.ok,
        "wrapped code with both keys again: {}\n{}",
        r.output, r.log
    );
    let r = login(&f.a, &user, Some(&codes[3]), &mut step);
    assert!(!r.ok, "a used wrapped code came back");

    // wuser's answers are all that needs generation 0 now; a login on B
    // re-hashes them, and finish then retires generation 0 without
    // --drop and without wuser setting new answers.
    let r = questions_login(&f.b, &wuser);
    assert!(r.ok, "wrapped answers on B: {}\n{}", r.output, r.log);
    assert!(r.log.contains("rehashed-answers=2"), "{}", r.log);
    assert_eq!(answer_gens(&f, &wuser), "1 -\n1 -");
    let status = f.a.env.enroll_ok(&["rekey", "status"], "");
    assert!(!status.contains("wrapping"), "{status}");
    let out = f.a.env.enroll_ok(&["rekey", "finish"], "");
    assert!(out.contains("Generation 0 retired"), "{out}");
    f.a.config(&next_a, "");
    f.b.config(&next_b, "");
    for (h, u) in [(&f.a, &quser), (&f.b, &wuser), (&f.a, &wuser)] {
        let r = questions_login(h, u);
        assert!(r.ok, "after finish, new key alone: {}\n{}", r.output, r.log);
    }
}

#[test]
fn the_fleet_rotates_while_the_other_host_logs_in() {
    let user = system_user("p2fa-frk2", "frk2-pw-1");
    let f = Fleet::new();
    f.a.env.enroll_totp(&user);
    let stop = AtomicBool::new(false);
    let results = std::thread::scope(|s| {
        let b = &f.b;
        let stop = &stop;
        let user = &user;
        let logins = s.spawn(move || {
            let mut step = step_of(now()) + 2;
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                step += 1;
                let t = in_step(step);
                let r = b.env.attempt(
                    "p2fa",
                    user,
                    &format!("{}\n", totp(SECRET, Some(t))),
                    Some(t),
                );
                seen.push((r.ok, r.output, r.log));
            }
            seen
        });
        let pause = || std::thread::sleep(std::time::Duration::from_millis(1500));
        pause();
        let (next_a, next_b) = f.new_key();
        f.a.config(&f.a.env.key, &next_line(&next_a));
        f.b.config(&f.b.env.key, &next_line(&next_b));
        // B reports its keys (any `rekey` command does), so the switch
        // finds every active host ready.
        let out = f.b.env.enroll_ok(&["rekey", "status"], "");
        assert!(out.contains("This host has generation(s) 0, 1"), "{out}");
        // Logins that read the old config finish before the switch.
        pause();
        f.a.env.enroll_ok(&["rekey", "switch"], "");
        pause();
        f.a.config(&next_a, &previous_line(&f.a.env.key));
        f.b.config(&next_b, &previous_line(&f.b.env.key));
        pause();
        f.a.env.enroll_ok(&["rekey", "convert"], "");
        pause();
        let out = f.a.env.enroll_ok(&["rekey", "finish"], "");
        assert!(out.contains("Generation 0 retired"), "{out}");
        f.a.config(&next_a, "");
        f.b.config(&next_b, "");
        pause();
        stop.store(true, Ordering::SeqCst);
        logins.join().unwrap()
    });
    assert!(results.len() >= 5, "only {} logins ran", results.len());
    for (ok, output, log) in &results {
        assert!(ok, "a login during the rotation failed: {output}\n{log}");
        assert!(!log.contains("unavailable"), "{log}");
    }
    assert_eq!(failures(&f, &user), "0");
    assert_eq!(
        f.sql(&format!(
            "SELECT key_gen FROM p2fa.otp_tokens WHERE username = '{user}'"
        )),
        "1"
    );
}
