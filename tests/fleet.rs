//! Fleet mode (`store = "postgres"`, docs/fleet.md): two simulated hosts,
//! each with its own config, host name, syslog and PAM services, share
//! one PostgreSQL database and one fleet key. Through real libpam and
//! the built module: an enrollment made on one host logs in on the
//! other; a TOTP step, a backup code and the failure count are the
//! fleet's, not a host's; 64 logins with one valid code over two hosts
//! give exactly one success; a stopped server denies as unavailable, and
//! after a crash restart nothing spent comes back and no failure is lost.

mod common;
use common::pg::{PLAIN_PASSWORD, PLAIN_USER, PgBouncer, PgServer};
use common::race::race;
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

const ROLE: &str = "pam2fa";
/// For the races: 64 logins connecting at once on a loaded 2-CPU test
/// machine (debug builds) may need longer than the 3 s defaults to
/// connect and to wait for the user's lock; these tests are about who
/// wins, the timeouts have their own tests.
const PATIENT: &str =
    "connect_timeout_ms = 30000\nlock_timeout_ms = 30000\nstatement_timeout_ms = 30000";
const ROLE_PASSWORD: &str = "pam2fa-login-pw";

struct Fleet {
    pg: PgServer,
    db: String,
    a: Env,
    b: Env,
}

/// One host: an Env whose config names the fleet database and `host`;
/// `extra` is top-level keys and sections, `pg_extra` more `[postgres]`
/// keys.
fn host_env(pg: &PgServer, db: &str, host: &str, extra: &str) -> Env {
    host_env_with(pg, db, host, extra, "")
}

fn host_env_with(pg: &PgServer, db: &str, host: &str, extra: &str, pg_extra: &str) -> Env {
    let env = Env::new();
    let fleet = pg.fleet_config(&env, db, host, (ROLE, ROLE_PASSWORD), extra);
    env.write_config(&format!("{fleet}{pg_extra}\n"));
    env
}

impl Fleet {
    /// A database owned by the login role, `2fa-enroll init` on host A
    /// (creates the schema and the fleet key), the key copied to B as
    /// config management would, and `init` on B.
    fn new(extra: &str) -> Fleet {
        Fleet::with(extra, "", "")
    }

    /// [`Fleet::new`] with more `[postgres]` keys for host A and B.
    fn with(extra: &str, a_pg_extra: &str, b_pg_extra: &str) -> Fleet {
        let pg = PgServer::start();
        let db = pg.create_db();
        pg.create_role(ROLE, ROLE_PASSWORD);
        pg.psql("postgres", &format!("ALTER DATABASE {db} OWNER TO {ROLE}"));
        let a = host_env_with(&pg, &db, "host-a", extra, a_pg_extra);
        let b = host_env_with(&pg, &db, "host-b", extra, b_pg_extra);
        let out = a.enroll_ok(&["init"], "");
        assert!(out.contains("fleet schema migrated from v0"), "{out}");
        common::fleet::copy_key(&a.key, &b.key);
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
    assert_eq!(
        f.sql("SELECT name FROM p2fa.hosts ORDER BY name"),
        "host-a\nhost-b"
    );
    assert_eq!(
        f.sql("SELECT version FROM p2fa.schema_version"),
        p2fa_pg::schema::current_version().to_string()
    );
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
    assert!(
        on_a.output.contains("Invalid or already used code."),
        "{}",
        on_a.output
    );
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
        f.sql(
            "SELECT used_host FROM p2fa.backup_codes WHERE used_at IS NOT NULL ORDER BY used_at, id"
        ),
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
        f.sql(&format!(
            "SELECT failures, locked_until > 0 FROM p2fa.users WHERE name = '{user}'"
        )),
        "3|t"
    );
    // Locked on B by failures on A and B: even the right code is refused,
    // before it is compared.
    fresh_step(5);
    let r =
        f.b.attempt("p2fa", &user, &format!("{}\n", totp(SECRET, None)), None);
    assert!(!r.ok, "{}", r.output);
    assert!(
        r.output.contains("Too many failed attempts"),
        "{}",
        r.output
    );
    assert!(r.log.contains("reason=locked failures=3"), "{}", r.log);
    // The admin unlocks from either host.
    f.a.enroll_ok(&["unlock", "--user", &user], "");
    fresh_step(5);
    let r =
        f.b.attempt("p2fa", &user, &format!("{}\n", totp(SECRET, None)), None);
    assert!(r.ok, "{}\n{}", r.output, r.log);
}

/// 32 logins on each host, all answering with the one valid code at
/// once: exactly one is accepted, each of the 63 others is counted once.
#[test]
fn sixty_four_logins_over_two_hosts_one_code_one_success() {
    let user = system_user("p2fa-fleet4", "fleet4-pw-1");
    let f = Fleet::with("[rate_limit]\nmax_failures = 1000\n", PATIENT, PATIENT);
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
    assert_eq!(
        ok_a + ok_b,
        1,
        "{ok_a} on A + {ok_b} on B accepted one code"
    );
    let logs: Vec<&String> = logs_a.iter().chain(&logs_b).collect();
    for o in out_a.iter().chain(&out_b) {
        assert!(!o.contains("unavailable"), "{o}\n{logs:#?}");
    }
    assert_eq!(logs.iter().filter(|l| l.contains("auth ok ")).count(), 1);
    assert_eq!(
        logs.iter()
            .filter(|l| l.contains("reason=replayed-code"))
            .count(),
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
        .sql(&format!(
            "SELECT failures FROM p2fa.users WHERE name = '{user}'"
        ))
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
    assert!(
        !again.ok,
        "a spent code came back after the crash: {}",
        again.output
    );
    assert_eq!(
        f.sql(&format!(
            "SELECT failures FROM p2fa.users WHERE name = '{user}'"
        )),
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

/// With the database down, `postgres.break_glass` lets only root at a
/// console in, on the password alone (PAM_IGNORE, then the rest of the
/// stack), logged at alert; a pts, a remote host, another user, another
/// service or a host without the setting are refused as unavailable,
/// and with the database up it never applies.
#[test]
fn break_glass_lets_only_console_root_in_while_the_store_is_down() {
    let user = system_user("p2fa-fleet6", "fleet6-pw-1");
    let f = Fleet::with(
        "",
        "break_glass = true\nbreak_glass_services = [\"p2fa-console\"]",
        "",
    );
    for env in [&f.a, &f.b] {
        env.service_key_and_code("p2fa-console", "");
        env.service_key_and_code("p2fa-other", "");
    }
    let login = |env: &Env, items: &[&str], service: &str, user: &str| {
        let mut args: Vec<&str> = items.to_vec();
        args.extend([service, user, "authenticate"]);
        env.attempt_args(&args, b"\n", None)
    };
    // Up: root has no factor, and unenrolled = deny refuses them.
    let up = login(&f.a, &["-I", "tty=tty1"], "p2fa-console", "root");
    assert!(!up.ok, "{}", up.output);
    assert!(!up.log.contains("break-glass"), "{}", up.log);
    f.pg.stop();
    let glass = login(&f.a, &["-I", "tty=tty1"], "p2fa-console", "root");
    assert!(glass.ok, "{}\n{}", glass.output, glass.log);
    // authpriv (10 << 3) + alert (1)
    assert!(
        glass.log.contains("<81>")
            && glass
                .log
                .contains("auth break-glass user=root service=p2fa-console")
            && glass.log.contains("tty=tty1 reason=store-unreachable"),
        "{}",
        glass.log
    );
    for (env, items, service, who) in [
        (&f.a, &["-I", "tty=pts/3"][..], "p2fa-console", "root"),
        (
            &f.a,
            &["-I", "tty=tty1", "-I", "rhost=192.0.2.7"][..],
            "p2fa-console",
            "root",
        ),
        (&f.a, &["-I", "tty=tty1"][..], "p2fa-console", user.as_str()),
        (&f.a, &["-I", "tty=tty1"][..], "p2fa-other", "root"),
        (&f.b, &["-I", "tty=tty1"][..], "p2fa-console", "root"),
    ] {
        let r = login(env, items, service, who);
        assert!(!r.ok, "{items:?} {service} {who}: {}", r.output);
        assert!(
            r.log.contains("reason=unavailable: store unreachable"),
            "{}",
            r.log
        );
        assert!(!r.log.contains("break-glass"), "{}", r.log);
    }
}

/// A login on the fleet store starts no thread that outlives it (sshd
/// forks after PAM): pam_once counts the process's threads around one
/// real pam_authenticate.
#[test]
fn a_fleet_login_leaves_no_thread_behind() {
    let user = system_user("p2fa-fleet7", "fleet7-pw-1");
    let f = Fleet::new("");
    f.a.enroll_totp(&user);
    fresh_step(5);
    let mut s = common::interactive::Session::start(&f.b.svc_dir, "p2fa", &user);
    s.expect_prompt("code", std::time::Duration::from_secs(20));
    s.answer(&totp(SECRET, None));
    let out = s.finish(std::time::Duration::from_secs(20));
    assert!(out.ok, "{}", out.transcript);
    assert_eq!(out.threads_after, out.threads_before, "{}", out.transcript);
}

/// The rolling-upgrade rule (docs/fleet.md §2): a newer schema that
/// keeps this release as a reader still serves logins; one that needs a
/// newer reader, or no schema at all, is "unavailable" with what to do,
/// and nothing is counted.
#[test]
fn a_host_uses_a_newer_schema_only_if_it_is_still_a_reader() {
    let user = system_user("p2fa-fleet8", "fleet8-pw-1");
    let f = Fleet::new("");
    let codes = f.a.enroll_backup(&user, 4);
    let next = p2fa_pg::schema::current_version() + 1;
    f.sql(&format!(
        "UPDATE p2fa.schema_version SET version = {next}, min_reader = 1"
    ));
    let r = f.b.attempt("p2fa", &user, &format!("{}\n", codes[0]), None);
    assert!(r.ok, "{}\n{}", r.output, r.log);
    f.sql(&format!(
        "UPDATE p2fa.schema_version SET min_reader = {next}"
    ));
    let r = f.b.attempt("p2fa", &user, &format!("{}\n", codes[1]), None);
    assert!(!r.ok);
    assert!(
        r.log.contains(&format!(
            "needs pam-2fa with schema v{next} or later: upgrade this host"
        )),
        "{}",
        r.log
    );
    f.sql("DELETE FROM p2fa.schema_version");
    let r = f.b.attempt("p2fa", &user, &format!("{}\n", codes[1]), None);
    assert!(!r.ok);
    assert!(
        r.log
            .contains("the fleet schema is empty: run 2fa-enroll init"),
        "{}",
        r.log
    );
    assert_eq!(
        f.sql(&format!(
            "SELECT failures FROM p2fa.users WHERE name = '{user}'"
        )),
        "0"
    );
    f.sql("DROP SCHEMA p2fa CASCADE");
    let r = f.b.attempt("p2fa", &user, &format!("{}\n", codes[1]), None);
    assert!(!r.ok);
    assert!(r.log.contains("the fleet schema is missing"), "{}", r.log);
}

/// Two hosts running `2fa-enroll migrate` at once on an empty database:
/// the schema is created once (the second waits for the lock, then finds
/// nothing to do), and both succeed.
#[test]
fn parallel_migrates_apply_the_schema_once() {
    let pg = PgServer::start();
    let db = pg.create_db();
    pg.create_role(ROLE, ROLE_PASSWORD);
    pg.psql("postgres", &format!("ALTER DATABASE {db} OWNER TO {ROLE}"));
    let a = host_env(&pg, &db, "host-a", "");
    let b = host_env(&pg, &db, "host-b", "");
    let (oa, ob) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.enroll(&["migrate"], ""));
        let tb = s.spawn(|| b.enroll(&["migrate"], ""));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let (ta, tb) = (output_text(&oa), output_text(&ob));
    assert!(oa.status.success() && ob.status.success(), "{ta}\n{tb}");
    let migrated = [&ta, &tb]
        .iter()
        .filter(|t| {
            t.contains(&format!(
                "migrated from v0 to v{}",
                p2fa_pg::schema::current_version()
            ))
        })
        .count();
    assert_eq!(migrated, 1, "{ta}\n{tb}");
    assert_eq!(
        pg.psql(&db, "SELECT version FROM p2fa.schema_version")
            .trim(),
        p2fa_pg::schema::current_version().to_string()
    );
    assert_eq!(
        pg.psql(&db, "SELECT name FROM p2fa.hosts ORDER BY name")
            .trim(),
        "host-a\nhost-b"
    );
}

/// A crash restart of PostgreSQL in the middle of 48 logins with wrong
/// codes: every login ends as a counted failure or "unavailable", and
/// the stored count is at least the failures the logs reported (nothing
/// reported is lost) and at most those plus the unavailable ones (whose
/// COMMIT may have landed without an answer).
#[test]
fn a_crash_mid_storm_loses_no_reported_failure() {
    let user = system_user("p2fa-fleet9", "fleet9-pw-1");
    let f = Fleet::with("[rate_limit]\nmax_failures = 1000\n", PATIENT, PATIENT);
    f.a.enroll_totp(&user);
    let bad = format!("{}\n", wrong_totp(SECRET, now()));
    let (ok, outputs, logs) = std::thread::scope(|s| {
        let storm = s.spawn(|| race(&f.a, &user, &bad, 48));
        std::thread::sleep(std::time::Duration::from_millis(560));
        f.pg.restart_immediate();
        storm.join().unwrap()
    });
    assert_eq!(ok, 0);
    let counted = logs
        .iter()
        .filter(|l| l.contains("auth failed") && l.contains("failures="))
        .count();
    let unavailable = logs
        .iter()
        .filter(|l| l.contains("reason=unavailable"))
        .count();
    assert_eq!(counted + unavailable, 48, "{outputs:#?}\n{logs:#?}");
    let stored: usize = f
        .sql(&format!(
            "SELECT failures FROM p2fa.users WHERE name = '{user}'"
        ))
        .parse()
        .unwrap();
    assert!(
        counted <= stored && stored <= counted + unavailable,
        "counted {counted}, unavailable {unavailable}, stored {stored}"
    );
    // After the crash the store serves logins again.
    fresh_step(5);
    let r =
        f.b.attempt("p2fa", &user, &format!("{}\n", totp(SECRET, None)), None);
    assert!(r.ok, "{}\n{}", r.output, r.log);
}

/// The 64-way race over two hosts through PgBouncer in transaction mode
/// with two server connections (docs/fleet.md §4: the client uses only
/// unnamed statements, transaction-local settings and transaction-level
/// advisory locks, so a pooler that hands each transaction to any server
/// connection keeps every guarantee), while 64 logins wait at their
/// prompts holding no server connection.
#[test]
fn the_race_holds_through_pgbouncer_in_transaction_mode() {
    let user = system_user("p2fa-fleet10", "fleet10-pw-1");
    let pg = PgServer::start();
    let db = pg.create_db();
    pg.psql(
        "postgres",
        &format!("ALTER DATABASE {db} OWNER TO {PLAIN_USER}"),
    );
    let bouncer = PgBouncer::start(&pg, &db, 2);
    let host = |name: &str| {
        let env = Env::new();
        let pw = env.root().join("pg.password");
        fs::write(&pw, PLAIN_PASSWORD).unwrap();
        fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
        env.write_config(&format!(
            "store = \"postgres\"\nhost_id = \"{name}\"\n[rate_limit]\nmax_failures = 1000\n\
             [postgres]\nurl = \"postgresql://{PLAIN_USER}@127.0.0.1:{}/{db}\"\n\
             password_file = \"{}\"\ntls = \"off\"\n{PATIENT}\n",
            bouncer.port,
            pw.display()
        ));
        env
    };
    let (a, b) = (host("host-a"), host("host-b"));
    a.enroll_ok(&["init"], "");
    common::fleet::copy_key(&a.key, &b.key);
    b.enroll_ok(&["init"], "");
    a.enroll_totp(&user);
    fresh_step(8);
    let code = format!("{}\n", totp(SECRET, None));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (ok, logs, most) = std::thread::scope(|s| {
        let watch = s.spawn(|| {
            let mut most = 0usize;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let n: usize = pg
                    .psql(
                        "postgres",
                        &format!(
                            "SELECT count(*) FROM pg_stat_activity WHERE usename = '{PLAIN_USER}'"
                        ),
                    )
                    .trim()
                    .parse()
                    .unwrap();
                most = most.max(n);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            most
        });
        let ra = s.spawn(|| race(&a, &user, &code, 32));
        let rb = s.spawn(|| race(&b, &user, &code, 32));
        let (oa, _, la) = ra.join().unwrap();
        let (ob, _, lb) = rb.join().unwrap();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut logs = la;
        logs.extend(lb);
        (oa + ob, logs, watch.join().unwrap())
    });
    assert_eq!(ok, 1, "{logs:#?}");
    assert_eq!(
        logs.iter()
            .filter(|l| l.contains("reason=replayed-code"))
            .count(),
        63,
        "{logs:#?}"
    );
    assert!(most <= 2, "{most} server connections for a pool of 2");
}

/// A login code the module sends is valid only on the host that sent it
/// (docs/fleet.md §3): typed on host B it is refused (B checks only the
/// code it sent itself), and it still logs in on host A afterwards.
#[test]
fn an_sms_login_code_works_only_on_the_host_that_sent_it() {
    use common::interactive::Session;
    use common::net::{sms_env, wait_code};
    use std::time::Duration;
    let wait = Duration::from_secs(20);
    let user = system_user("p2fa-fleet9", "fleet9-pw-1");
    let gateway = Env::new();
    let (sms, sms_conf) = sms_env(gateway.root());
    let f = Fleet::new(&sms_conf);
    f.a.enroll_ok(
        &[
            "sms",
            "--user",
            &user,
            "--phone",
            "+1 555 123 4567",
            "--no-verify",
        ],
        "",
    );
    // Only factor is SMS: host A sends a code straight away.
    let mut on_a = Session::start(&f.a.svc_dir, "p2fa", &user);
    on_a.expect_prompt("Code sent to +1 *** *** 4567: ", wait);
    let code = wait_code(&sms.log, 1, "body");
    assert_eq!(
        f.sql(&format!(
            "SELECT host, purpose FROM p2fa.sent_codes WHERE username = '{user}'"
        )),
        "host-a|login"
    );
    // The login on A is abandoned; on host B, A's code is refused (B
    // sends a code of its own and checks only that).
    drop(on_a);
    let on_b = f.b.attempt("p2fa", &user, &format!("{code}\n"), None);
    assert!(
        !on_b.ok,
        "host A's code logged in on host B:\n{}",
        on_b.output
    );
    assert!(on_b.log.contains("reason=wrong-code"), "{}", on_b.log);
    assert_eq!(
        f.sql(&format!(
            "SELECT host, used_at IS NULL, attempts FROM p2fa.sent_codes
             WHERE username = '{user}' ORDER BY id"
        )),
        "host-a|t|0\nhost-b|t|1"
    );
    // On host A it still logs in (A reuses the code it sent moments ago).
    let on_a = f.a.attempt("p2fa", &user, &format!("{code}\n"), None);
    assert!(on_a.ok, "{}\n{}", on_a.output, on_a.log);
}
