//! `2fa-enroll migrate --to postgres` (docs/fleet.md §7): two SQLite
//! hosts with different host keys move into one fleet database whose
//! fleet key is host A's. Through the real 2fa-enroll and real logins
//! (libpam, the built module) on a fleet-configured host: a dry run
//! changes nothing (the database's rows compared before and after) and
//! exits 3 on conflicts; --apply moves TOTP secrets (resealed with the
//! fleet key), backup codes only from the host whose key is the fleet key
//! (a used code stays used), keeps the fleet's secret in a conflict
//! unless --choose says local, never lowers the last step, and running it
//! again changes nothing.

mod common;
use common::pg::PgServer;
use common::*;
use std::fs;
use std::path::Path;
use std::process::Output;

/// A TOTP login of `user` with `secret`'s code at time `t` (faketime).
fn totp_login(env: &Env, user: &str, secret: &str, t: i64) -> Attempt {
    env.attempt(
        "p2fa",
        user,
        &format!("{}\n", totp(secret, Some(t))),
        Some(t),
    )
}

const ROLE: &str = "pam2fa";
const ROLE_PASSWORD: &str = "pam2fa-login-pw";
/// Alice's secret on host A (and so in the fleet after A moves in).
const SECRET_A: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
/// Alice's other secret on host B.
const SECRET_B: &str = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U";
/// Bob's, on host B only.
const SECRET_BOB: &str = "KRUGS4ZANFZSAYJAON2GK4TFOQQGC3TE";

/// A fleet-configured host whose key file is a copy of `key`.
fn fleet_env(pg: &PgServer, db: &str, key: &Path) -> Env {
    let env = Env::new();
    env.write_config(&pg.fleet_config(&env, db, "fleet-host", (ROLE, ROLE_PASSWORD), ""));
    common::fleet::copy_key(key, &env.key);
    env
}

/// Every row of every table of the fleet schema, as text.
fn dump(pg: &PgServer, db: &str) -> String {
    let tables = pg.psql(
        db,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'p2fa' ORDER BY 1",
    );
    let mut out = String::new();
    for t in tables.split_whitespace() {
        out.push_str(&format!("== {t}\n"));
        out.push_str(&pg.psql(db, &format!("SELECT x::text FROM p2fa.{t} x ORDER BY 1")));
    }
    out
}

/// `2fa-enroll migrate --to postgres` on the fleet host, from `src`.
fn migrate(fleet: &Env, src: &Env, extra: &[&str]) -> (Output, String) {
    let from_db = src.db.display().to_string();
    let from_key = src.key.display().to_string();
    let mut args = vec![
        "migrate",
        "--to",
        "postgres",
        "--from-db",
        &from_db,
        "--from-key",
        &from_key,
    ];
    args.extend_from_slice(extra);
    let out = fleet.enroll(&args, "");
    let text = output_text(&out);
    (out, text)
}

fn line_of<'a>(text: &'a str, user: &str) -> &'a str {
    let prefix = format!("{user}: ");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for {user} in:\n{text}"))
}

#[test]
fn two_hosts_move_into_the_fleet() {
    let alice = system_user("p2fa-mv-alice", "mv-alice-pw-1");
    let bob = system_user("p2fa-mv-bob", "mv-bob-pw-1");
    let carol = system_user("p2fa-mv-carol", "mv-carol-pw-1");
    // Host A: alice (secret A), carol with backup codes, one of them used.
    let a = Env::new();
    a.enroll_ok(
        &[
            "totp",
            "--user",
            &alice,
            "--secret",
            SECRET_A,
            "--no-verify",
        ],
        "",
    );
    let carol_codes = a.enroll_backup(&carol, 3);
    let used = a.attempt("p2fa", &carol, &format!("{}\n", carol_codes[0]), None);
    assert!(used.ok, "{}\n{}", used.output, used.log);
    // Host B, another host key: alice (secret B), bob with TOTP and codes.
    let b = Env::new();
    b.enroll_ok(
        &[
            "totp",
            "--user",
            &alice,
            "--secret",
            SECRET_B,
            "--no-verify",
        ],
        "",
    );
    b.enroll_ok(
        &[
            "totp",
            "--user",
            &bob,
            "--secret",
            SECRET_BOB,
            "--no-verify",
        ],
        "",
    );
    let bob_codes = b.enroll_backup(&bob, 4);
    assert_ne!(fs::read(&a.key).unwrap(), fs::read(&b.key).unwrap());

    // The fleet: A's key promoted to fleet key.
    let pg = PgServer::start();
    let db = pg.create_db();
    pg.create_role(ROLE, ROLE_PASSWORD);
    pg.psql("postgres", &format!("ALTER DATABASE {db} OWNER TO {ROLE}"));
    let f = fleet_env(&pg, &db, &a.key);
    f.enroll_ok(&["init"], "");
    let sql = |q: &str| pg.psql(&db, q).trim().to_string();
    let base = step_of(now()) + 2;

    // Dry run from A: a plan, no conflicts, nothing written.
    let before = dump(&pg, &db);
    let (out, text) = migrate(&f, &a, &[]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Dry run"), "{text}");
    assert_eq!(
        line_of(&text, &alice),
        format!("{alice}: new in fleet: totp")
    );
    let carol_line = line_of(&text, &carol);
    assert!(
        carol_line.contains("new in fleet: 2 backup codes"),
        "{text}"
    );
    assert!(
        carol_line.contains("1 used backup codes (stay used)"),
        "{text}"
    );
    assert_eq!(
        dump(&pg, &db),
        before,
        "a dry run changed the fleet database"
    );
    assert_eq!(sql("SELECT count(*) FROM p2fa.users"), "0");

    // --apply from A: alice and carol arrive.
    let (out, text) = migrate(&f, &a, &["--apply"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        sql(&format!(
            "SELECT count(*) FILTER (WHERE used_at IS NULL), count(*) FILTER (WHERE used_at IS NOT NULL)
             FROM p2fa.backup_codes WHERE username = '{carol}'"
        )),
        "2|1"
    );
    assert!(
        f.logs()
            .iter()
            .any(|l| l.contains(&format!("migrated to the fleet user={alice}"))),
        "no audit line"
    );
    // Carol's spent code stays spent in the fleet; an unused one works once.
    let r = f.attempt("p2fa", &carol, &format!("{}\n", carol_codes[0]), None);
    assert!(
        !r.ok,
        "a code used on host A logged in through the fleet: {}",
        r.output
    );
    let r = f.attempt("p2fa", &carol, &format!("{}\n", carol_codes[1]), None);
    assert!(r.ok, "{}\n{}", r.output, r.log);
    // Alice's secret A, resealed with the fleet key, logs in.
    let r = f.attempt(
        "p2fa",
        &alice,
        &format!("{}\n", totp(SECRET_A, Some(in_step(base)))),
        Some(in_step(base)),
    );
    assert!(r.ok, "{}\n{}", r.output, r.log);

    // Again from A: nothing to move; in particular carol's code spent in
    // the fleet since is not revived.
    let before = dump(&pg, &db);
    let (out, text) = migrate(&f, &a, &["--apply"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(line_of(&text, &carol).contains("nothing to move"), "{text}");
    assert!(line_of(&text, &alice).contains("nothing to move"), "{text}");
    assert_eq!(dump(&pg, &db), before, "running it again changed the fleet");

    // Dry run from B: alice's conflict, exit 3, nothing written.
    let (out, text) = migrate(&f, &b, &[]);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert_eq!(
        line_of(&text, &alice),
        format!("{alice}: totp conflict (different secret; kept fleet's)")
    );
    let bob_line = line_of(&text, &bob);
    assert!(bob_line.contains("new in fleet: totp"), "{text}");
    assert!(
        bob_line.contains("4 unused backup codes hashed with this host's key cannot move"),
        "{text}"
    );
    assert_eq!(
        dump(&pg, &db),
        before,
        "a dry run changed the fleet database"
    );

    // --apply from B, the fleet's side by default.
    let (out, text) = migrate(&f, &b, &["--apply"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(line_of(&text, &bob).contains("cannot move"), "{text}");
    assert_eq!(
        sql(&format!(
            "SELECT count(*) FROM p2fa.backup_codes WHERE username = '{bob}'"
        )),
        "0"
    );
    let r = f.attempt("p2fa", &bob, &format!("{}\n", bob_codes[0]), None);
    assert!(
        !r.ok,
        "a backup code hashed with B's key logged in: {}",
        r.output
    );
    let t = in_step(base + 1);
    let r = totp_login(&f, &bob, SECRET_BOB, t);
    assert!(r.ok, "{}\n{}", r.output, r.log);
    // Alice kept A's secret: B's code is refused, A's logs in.
    let r = totp_login(&f, &alice, SECRET_B, t);
    assert!(
        !r.ok,
        "B's secret logged in after keeping the fleet's: {}",
        r.output
    );
    let r = totp_login(&f, &alice, SECRET_A, t);
    assert!(r.ok, "{}\n{}", r.output, r.log);
    let step_before = sql(&format!(
        "SELECT last_step FROM p2fa.otp_tokens WHERE username = '{alice}'"
    ));
    assert_eq!(step_before, (base + 1).to_string());

    // --choose alice=local from B: B's secret, the last step not lowered
    // (B's store has none for alice).
    assert_eq!(
        b.sql(&format!(
            "SELECT last_step IS NULL FROM otp_tokens WHERE user = '{alice}'"
        )),
        "1"
    );
    let (out, text) = migrate(&f, &b, &["--apply", "--choose", &format!("{alice}=local")]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        line_of(&text, &alice),
        format!("{alice}: totp conflict (different secret; took this host's)")
    );
    assert_eq!(
        sql(&format!(
            "SELECT last_step FROM p2fa.otp_tokens WHERE username = '{alice}'"
        )),
        step_before,
        "the last step went down"
    );
    let t = in_step(base + 2);
    let r = totp_login(&f, &alice, SECRET_A, t);
    assert!(!r.ok, "A's secret still logs in: {}", r.output);
    let r = totp_login(&f, &alice, SECRET_B, t);
    assert!(r.ok, "{}\n{}", r.output, r.log);
    // A code of the step alice already used (with A's secret) stays refused.
    let old = in_step(base + 1);
    let r = totp_login(&f, &alice, SECRET_B, old);
    assert!(
        !r.ok,
        "a step at or before the fleet's last step logged in: {}",
        r.output
    );
}

#[test]
fn migrate_to_postgres_needs_a_fleet_config_and_plain_migrate_still_works() {
    let user = system_user("p2fa-mv-dave", "mv-dave-pw-1");
    let a = Env::new();
    a.enroll_totp(&user);
    let out = a.enroll_ok(&["migrate"], "");
    assert!(out.contains("schema"), "{out}");
    let db = a.db.display().to_string();
    let r = a.enroll(&["migrate", "--to", "postgres", "--from-db", &db], "");
    assert_eq!(r.status.code(), Some(1), "{}", output_text(&r));
    assert!(
        output_text(&r).contains("must say store = \"postgres\""),
        "{}",
        output_text(&r)
    );
    // The options belong to --to.
    let r = a.enroll(&["migrate", "--apply"], "");
    assert!(!r.status.success(), "{}", output_text(&r));
}

#[test]
fn the_same_secret_keeps_the_later_step_and_the_higher_failure_count() {
    let erin = system_user("p2fa-mv-erin", "mv-erin-pw-1");
    let base = step_of(now()) + 2;
    // Host A: erin logged in at step base+1, then failed twice.
    let a = Env::new();
    a.enroll_ok(
        &["totp", "--user", &erin, "--secret", SECRET_A, "--no-verify"],
        "",
    );
    let t = in_step(base + 1);
    let r = totp_login(&a, &erin, SECRET_A, t);
    assert!(r.ok, "{}\n{}", r.output, r.log);
    for _ in 0..2 {
        let r = a.attempt(
            "p2fa",
            &erin,
            &format!("{}\n", wrong_totp(SECRET_A, t)),
            Some(t),
        );
        assert!(!r.ok, "{}", r.output);
    }
    // The fleet (A's key) has erin with the same secret, no step used, one failure.
    let pg = PgServer::start();
    let db = pg.create_db();
    pg.create_role(ROLE, ROLE_PASSWORD);
    pg.psql("postgres", &format!("ALTER DATABASE {db} OWNER TO {ROLE}"));
    let f = fleet_env(&pg, &db, &a.key);
    f.enroll_ok(&["init"], "");
    f.enroll_ok(
        &["totp", "--user", &erin, "--secret", SECRET_A, "--no-verify"],
        "",
    );
    let r = f.attempt(
        "p2fa",
        &erin,
        &format!("{}\n", wrong_totp(SECRET_A, t)),
        Some(t),
    );
    assert!(!r.ok, "{}", r.output);
    let sql = |q: &str| pg.psql(&db, q).trim().to_string();
    let row = format!(
        "SELECT coalesce(t.last_step::text, 'none'), u.failures FROM p2fa.otp_tokens t
         JOIN p2fa.users u ON u.name = t.username WHERE u.name = '{erin}'"
    );
    assert_eq!(sql(&row), "none|1");

    let (out, text) = migrate(&f, &a, &[]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        line_of(&text, &erin),
        format!("{erin}: updated: totp last step, failures/lockout/first seen (max/max/min)")
    );
    assert_eq!(sql(&row), "none|1", "a dry run changed the fleet");
    let (out, text) = migrate(&f, &a, &["--apply"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(sql(&row), format!("{}|2", base + 1));
    // The step used on host A is spent in the fleet too; the next works.
    let r = totp_login(&f, &erin, SECRET_A, t);
    assert!(
        !r.ok,
        "a step used on host A logged in through the fleet: {}",
        r.output
    );
    let t2 = in_step(base + 2);
    let r = totp_login(&f, &erin, SECRET_A, t2);
    assert!(r.ok, "{}\n{}", r.output, r.log);
}

/// Security keys (WebAuthn) work only with the RP id they were registered
/// for, which the store does not record: the admin says it with
/// --from-rp-id. Without it a dry run counts a conflict and --apply
/// refuses, changing nothing; a key of another RP id than the fleet's is
/// left out and reported; one of the fleet's RP id moves.
#[test]
fn security_keys_move_only_when_registered_for_the_fleets_rp_id() {
    let gus = system_user("p2fa-mv-gus", "mv-gus-pw-1");
    let a = Env::new();
    a.enroll_ok(
        &["totp", "--user", &gus, "--secret", SECRET_A, "--no-verify"],
        "",
    );
    {
        let mut src = p2fa_core::store::Store::open_existing(
            &a.db,
            1000,
            p2fa_core::secure_fs::Trust::test_runner(),
        )
        .unwrap();
        let tx = src.write().unwrap();
        let cred = r#"{"cred":{"cred_id":"Z3VzLWtleS0x","counter":7}}"#;
        assert!(tx.add_webauthn(&gus, "yubi", cred, now()).unwrap());
        tx.commit().unwrap();
    }
    let pg = PgServer::start();
    let db = pg.create_db();
    pg.create_role(ROLE, ROLE_PASSWORD);
    pg.psql("postgres", &format!("ALTER DATABASE {db} OWNER TO {ROLE}"));
    let f = fleet_env(&pg, &db, &a.key);
    let conf = fs::read_to_string(&f.conf).unwrap();
    fs::write(
        &f.conf,
        format!("{conf}[webauthn]\nrp_id = \"2fa.example.com\"\npublic_url = \"https://2fa.example.com\"\n"),
    )
    .unwrap();
    f.enroll_ok(&["init"], "");
    let keys = || {
        pg.psql(&db, "SELECT count(*) FROM p2fa.webauthn_credentials")
            .trim()
            .to_string()
    };

    // Not said: the dry run counts it as a conflict (exit 3) ...
    let (out, text) = migrate(&f, &a, &[]);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        line_of(&text, &gus).contains("1 security keys registered for an RP id not given"),
        "{text}"
    );
    // ... and --apply refuses before writing anything.
    let before = dump(&pg, &db);
    let (out, text) = migrate(&f, &a, &["--apply"]);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("--from-rp-id") && text.contains(&gus),
        "{text}"
    );
    assert_eq!(
        dump(&pg, &db),
        before,
        "a refused --apply changed the fleet"
    );
    // A malformed RP id is refused too.
    let (out, text) = migrate(&f, &a, &["--apply", "--from-rp-id", "a b"]);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("expected a domain name"), "{text}");
    assert_eq!(dump(&pg, &db), before);

    // Registered for this host's own name: left out, said, TOTP moves.
    let (out, text) = migrate(&f, &a, &["--apply", "--from-rp-id", "host-a.example.com"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let line = line_of(&text, &gus);
    assert!(
        line.contains("new in fleet: totp")
            && line.contains("\"yubi\" were registered for RP id \"host-a.example.com\"")
            && line.contains("left out"),
        "{line}"
    );
    assert_eq!(keys(), "0", "a key of another RP id was moved");

    // Registered for the fleet's name: it moves, counter and all.
    let (out, text) = migrate(&f, &a, &["--apply", "--from-rp-id", "2fa.example.com"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        line_of(&text, &gus).contains("new in fleet: security key \"yubi\""),
        "{text}"
    );
    assert_eq!(keys(), "1");
    assert!(
        pg.psql(&db, "SELECT credential FROM p2fa.webauthn_credentials")
            .contains("Z3VzLWtleS0x")
    );
}
