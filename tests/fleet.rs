//! Fleet mode (`store = "postgres"`, docs/fleet.md): two simulated hosts,
//! each with its own config, host name, syslog and PAM services, share
//! one PostgreSQL database and one fleet key. Through real libpam and
//! the built module: an enrollment made on one host logs in on the
//! other; a TOTP step, a backup code and the failure count are the
//! fleet's, not a host's; 64 logins with one valid code over two hosts
//! give exactly one success; a stopped server denies as unavailable, and
//! after a crash restart nothing spent comes back and no failure is lost.

mod common;
use common::pg::PgServer;
use common::race::race;
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

const ROLE: &str = "pam2fa";
const ROLE_PASSWORD: &str = "pam2fa-login-pw";

struct Fleet {
    pg: PgServer,
    db: String,
    a: Env,
    b: Env,
}

/// One host: an Env whose config names the fleet database and `host`.
fn host_env(pg: &PgServer, db: &str, host: &str, extra: &str) -> Env {
    let env = Env::new();
    let pw = env.root().join("pg.password");
    fs::write(&pw, format!("{ROLE_PASSWORD}\n")).unwrap();
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
    env.write_config(&format!(
        "store = \"postgres\"\nhost_id = \"{host}\"\n{extra}\n[postgres]\nurl = \"{}\"\n\
         password_file = \"{}\"\nca_file = \"{}\"\n",
        pg.url(ROLE, db),
        pw.display(),
        pg.ca_file().display()
    ));
    env
}

impl Fleet {
    /// A database owned by the login role, `2fa-enroll init` on host A
    /// (creates the schema and the fleet key), the key copied to B as
    /// config management would, and `init` on B.
    fn new(extra: &str) -> Fleet {
        let pg = PgServer::start();
        let db = pg.create_db();
        pg.create_role(ROLE, ROLE_PASSWORD);
        pg.psql("postgres", &format!("ALTER DATABASE {db} OWNER TO {ROLE}"));
        let a = host_env(&pg, &db, "host-a", extra);
        let b = host_env(&pg, &db, "host-b", extra);
        let out = a.enroll_ok(&["init"], "");
        assert!(out.contains("fleet schema migrated from v0"), "{out}");
        let key = fs::read(&a.key).unwrap();
        let dir = b.key.parent().unwrap();
        fs::create_dir_all(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(&b.key, &key).unwrap();
        fs::set_permissions(&b.key, fs::Permissions::from_mode(0o600)).unwrap();
        let out = b.enroll_ok(&["init"], "");
        assert!(out.contains("(current); host host-b registered"), "{out}");
        Fleet { pg, db, a, b }
    }

    fn sql(&self, q: &str) -> String {
        self.pg.psql(&self.db, q).trim().to_string()
    }
}

#[test]
fn init_creates_the_schema_once_and_registers_each_host() {
    let f = Fleet::new("");
    assert_eq!(f.sql("SELECT name FROM p2fa.hosts ORDER BY name"), "host-a\nhost-b");
    assert_eq!(f.sql("SELECT version FROM p2fa.schema_version"), "1");
    // Neither host made a SQLite store.
    assert!(!f.a.db.exists() && !f.b.db.exists());
    // The key check value is the fleet's: a host with another key file
    // is refused before it writes anything.
    let c = host_env(&f.pg, &f.db, "host-c", "");
    let out = c.enroll(&["init"], "");
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains("key"), "{}", output_text(&out));
}

#[test]
fn enrolled_on_one_host_logs_in_on_another_and_a_step_is_spent_fleet_wide() {
    let user = system_user("p2fa-fleet1", "fleet1-pw-1");
    let f = Fleet::new("");
    f.a.enroll_totp(&user);
    let t = now();
    fresh_step(5);
    let code = totp(SECRET, None);
    let on_b = f.b.attempt("p2fa", &user, &format!("{code}\n"), None);
    assert!(on_b.ok, "{}\n{}", on_b.output, on_b.log);
    assert!(on_b.log.contains("auth ok"), "{}", on_b.log);
    // The same code on host A: refused as a replay, and counted.
    let on_a = f.a.attempt("p2fa", &user, &format!("{code}\n"), None);
    assert!(!on_a.ok, "{}", on_a.output);
    assert!(on_a.output.contains("Invalid or already used code."), "{}", on_a.output);
    assert!(on_a.log.contains("reason=replayed-code"), "{}", on_a.log);
    assert_eq!(
        f.sql(&format!(
            "SELECT t.last_used_host, u.last_success_host, u.failures, u.last_failure_host
             FROM p2fa.otp_tokens t JOIN p2fa.users u ON u.name = t.username
             WHERE u.name = '{user}'"
        )),
        "host-b|host-b|1|host-a"
    );
    assert!(t > 0);
}

#[test]
fn a_backup_code_works_once_across_the_fleet() {
    let user = system_user("p2fa-fleet2", "fleet2-pw-1");
    let f = Fleet::new("");
    let codes = f.b.enroll_backup(&user, 3);
    let first = f.a.attempt("p2fa", &user, &format!("{}\n", codes[0]), None);
    assert!(first.ok, "{}\n{}", first.output, first.log);
    let again = f.b.attempt("p2fa", &user, &format!("{}\n", codes[0]), None);
    assert!(!again.ok, "{}", again.output);
    let other = f.b.attempt("p2fa", &user, &format!("{}\n", codes[1]), None);
    assert!(other.ok, "{}\n{}", other.output, other.log);
    assert_eq!(
        f.sql("SELECT used_host FROM p2fa.backup_codes WHERE used_at IS NOT NULL ORDER BY used_at, id"),
        "host-a\nhost-b"
    );
}

#[test]
fn failures_and_lockout_count_across_the_fleet() {
    let user = system_user("p2fa-fleet3", "fleet3-pw-1");
    let f = Fleet::new("[rate_limit]\nmax_failures = 3\n");
    f.a.enroll_totp(&user);
    let bad = wrong_totp(SECRET, now());
    for env in [&f.a, &f.b, &f.a] {
        let r = env.attempt("p2fa", &user, &format!("{bad}\n"), None);
        assert!(!r.ok, "{}", r.output);
    }
    assert_eq!(
        f.sql(&format!("SELECT failures, locked_until > 0 FROM p2fa.users WHERE name = '{user}'")),
        "3|t"
    );
    // Locked on B by failures on A and B: even the right code is refused,
    // before it is compared.
    fresh_step(5);
    let r = f.b.attempt("p2fa", &user, &format!("{}\n", totp(SECRET, None)), None);
    assert!(!r.ok, "{}", r.output);
    assert!(r.output.contains("Too many failed attempts"), "{}", r.output);
    assert!(r.log.contains("reason=locked failures=3"), "{}", r.log);
    // The admin unlocks from either host.
    f.a.enroll_ok(&["unlock", "--user", &user], "");
    fresh_step(5);
    let r = f.b.attempt("p2fa", &user, &format!("{}\n", totp(SECRET, None)), None);
    assert!(r.ok, "{}\n{}", r.output, r.log);
}

/// 32 logins on each host, all answering with the one valid code at
/// once: exactly one is accepted, each of the 63 others is counted once.
#[test]
fn sixty_four_logins_over_two_hosts_one_code_one_success() {
    let user = system_user("p2fa-fleet4", "fleet4-pw-1");
    let f = Fleet::new("[rate_limit]\nmax_failures = 1000\n");
    f.a.enroll_totp(&user);
    fresh_step(8);
    let code = format!("{}\n", totp(SECRET, None));
    let (ok_a, out_a, logs_a, ok_b, out_b, logs_b) = std::thread::scope(|s| {
        let ra = s.spawn(|| race(&f.a, &user, &code, 32));
        let rb = s.spawn(|| race(&f.b, &user, &code, 32));
        let (oa, outa, la) = ra.join().unwrap();
        let (ob, outb, lb) = rb.join().unwrap();
        (oa, outa, la, ob, outb, lb)
    });
    assert_eq!(ok_a + ok_b, 1, "{ok_a} on A + {ok_b} on B accepted one code");
    let logs: Vec<&String> = logs_a.iter().chain(&logs_b).collect();
    for o in out_a.iter().chain(&out_b) {
        assert!(!o.contains("unavailable"), "{o}\n{logs:#?}");
    }
    assert_eq!(logs.iter().filter(|l| l.contains("auth ok ")).count(), 1);
    assert_eq!(
        logs.iter().filter(|l| l.contains("reason=replayed-code")).count(),
        63,
        "{logs:#?}"
    );
    for l in &logs {
        assert!(!l.contains("unreachable") && !l.contains("busy"), "{l}");
    }
    // The success reset the count wherever it landed; the racers after it
    // are what is left, so the count is at most 63 and each host's lines
    // agree with it.
    let m: u32 = f
        .sql(&format!("SELECT failures FROM p2fa.users WHERE name = '{user}'"))
        .parse()
        .unwrap();
    assert!(m <= 63, "{m}");
    let last_host = f.sql(&format!(
        "SELECT last_success_host FROM p2fa.users WHERE name = '{user}'"
    ));
    assert_eq!(last_host, if ok_a == 1 { "host-a" } else { "host-b" });
}

#[test]
fn a_stopped_server_denies_as_unavailable_and_a_crash_loses_nothing() {
    let user = system_user("p2fa-fleet5", "fleet5-pw-1");
    let f = Fleet::new("");
    let codes = f.a.enroll_backup(&user, 3);
    let bad = "0000000000";
    let r = f.a.attempt("p2fa", &user, &format!("{bad}\n"), None);
    assert!(!r.ok);
    let r = f.b.attempt("p2fa", &user, &format!("{}\n", codes[0]), None);
    assert!(r.ok, "{}\n{}", r.output, r.log);
    // A crash (no checkpoint): the committed failure and the spent code
    // survive it.
    f.pg.restart_immediate();
    let again = f.a.attempt("p2fa", &user, &format!("{}\n", codes[0]), None);
    assert!(!again.ok, "a spent code came back after the crash: {}", again.output);
    assert_eq!(
        f.sql(&format!("SELECT failures FROM p2fa.users WHERE name = '{user}'")),
        "1"
    );
    // Server down: every login is refused as unavailable, with a log
    // line that says why, and quickly (connect_timeout_ms, not a hang).
    f.pg.stop();
    let started = std::time::Instant::now();
    let down = f.b.attempt("p2fa", &user, &format!("{}\n", codes[1]), None);
    assert!(!down.ok, "{}", down.output);
    assert!(down.output.contains("unavailable"), "{}", down.output);
    assert!(
        down.log.contains("reason=unavailable: store unreachable"),
        "{}",
        down.log
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // Back up: the next login works, and nothing was counted meanwhile.
    f.pg.start_again();
    let up = f.b.attempt("p2fa", &user, &format!("{}\n", codes[1]), None);
    assert!(up.ok, "{}\n{}", up.output, up.log);
    assert_eq!(
        f.sql(&format!(
            "SELECT count(*) FROM p2fa.backup_codes WHERE username = '{user}' AND used_at IS NOT NULL"
        )),
        "2"
    );
}
