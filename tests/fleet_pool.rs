//! 2fad's idle fleet-store connections (`daemon.store_pool`,
//! docs/fleet.md §4) against a private PostgreSQL with
//! `log_connections` on, so the server itself counts the connections:
//! sequential requests through 2fad share one connection, `store_pool =
//! 0` connects per request (the same count, so it measures something),
//! and a pooled connection the server killed (a DBA's
//! pg_terminate_backend, a crash restart) is replaced without the
//! request failing or being applied twice.

mod common;
use common::daemon::Daemon;
use common::pg::PgServer;
use common::*;
use p2fa_proto::protocol::{Op, Proof, Request, Response, VERSION};
use serde_json::Value;
use std::fs;
use std::time::{Duration, Instant};

const ROLE: &str = "pam2fa";
const ROLE_PASSWORD: &str = "pam2fa-pool-pw";
/// Requests per measurement.
const N: usize = 20;

struct Host {
    pg: PgServer,
    db: String,
    env: Env,
    d: Daemon,
}

/// A fleet database (owned by the login role, `log_connections` on),
/// one host initialised on it, and its 2fad with `daemon` lines.
fn host(daemon: &str) -> Host {
    let pg = PgServer::start();
    let db = pg.create_db();
    pg.create_role(ROLE, ROLE_PASSWORD);
    pg.psql("postgres", &format!("ALTER DATABASE {db} OWNER TO {ROLE}"));
    pg.psql("postgres", "ALTER SYSTEM SET log_connections = on");
    pg.psql("postgres", "SELECT pg_reload_conf()");
    // New backends see the reload once the postmaster has read it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while pg.psql("postgres", "SHOW log_connections").trim() != "on" {
        assert!(Instant::now() < deadline, "log_connections stays off");
        std::thread::sleep(Duration::from_millis(50));
    }
    let env = Env::new();
    env.write_config(&pg.fleet_config(&env, &db, "host-a", (ROLE, ROLE_PASSWORD), ""));
    env.enroll_ok(&["init"], "");
    let d = Daemon::socket_only_with(&env, daemon);
    Host { pg, db, env, d }
}

impl Host {
    /// Connections the server accepted for the login role so far.
    fn connections(&self) -> usize {
        self.pg
            .log()
            .matches(&format!("connection authorized: user={ROLE} "))
            .count()
    }

    fn sql(&self, q: &str) -> String {
        self.pg.psql(&self.db, q).trim().to_string()
    }

    /// Root asks 2fad for `user`'s status (as `2fa-enroll status` does).
    fn ask_status(&self, user: &str) -> Response {
        let req = Request {
            version: VERSION,
            user: Some(user.into()),
            proof: None,
            op: Op::Status,
        };
        p2fa_proto::client::call(&self.d.socket, &req).unwrap()
    }

    /// [`Host::ask_status`], which must answer.
    fn status(&self, user: &str) {
        let r = self.ask_status(user);
        assert!(
            matches!(r, Response::Status { .. }),
            "{r:?}\n2fad: {}\nserver: {}",
            self.d.log(),
            self.pg.log()
        );
    }

    /// Waits until the server has `n` sessions of the login role (a
    /// closed or killed session's backend ends a moment later).
    fn wait_sessions(&self, n: usize) {
        let q = format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{ROLE}'");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.sql(&q);
            if got == n.to_string() {
                return;
            }
            assert!(Instant::now() < deadline, "{got} sessions, not {n}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `n` status requests; the server connections they made.
    fn connections_for(&self, user: &str, n: usize) -> usize {
        let before = self.connections();
        for _ in 0..n {
            self.status(user);
        }
        self.connections() - before
    }
}

#[test]
fn sequential_requests_share_a_pooled_connection() {
    let h = host("");
    let made = h.connections_for("root", N);
    eprintln!("store_pool = 4: {N} requests, {made} server connections");
    assert!(
        (1..=2).contains(&made),
        "{N} requests made {made} connections with the default store_pool = 4"
    );
    // With the pool warm, none at all.
    assert_eq!(h.connections_for("root", N), 0);
    // The idle one is what the server sees of 2fad between requests.
    h.wait_sessions(1);
}

#[test]
fn store_pool_0_connects_per_request() {
    let h = host("store_pool = 0");
    let made = h.connections_for("root", N);
    eprintln!("store_pool = 0: {N} requests, {made} server connections");
    assert!(made >= N, "{N} requests made only {made} connections");
    // None is kept.
    h.wait_sessions(0);
}

/// A wrong TOTP code as `user`'s proof for new backup codes (counted as
/// a failure, changes nothing else); the answer.
fn wrong_proof(h: &Host, user: &str) -> Value {
    let right = totp(SECRET, None);
    let wrong: String = right
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                char::from_digit((c.to_digit(10).unwrap() + 1) % 10, 10).unwrap()
            } else {
                c
            }
        })
        .collect();
    let req = Request {
        version: VERSION,
        user: None,
        proof: Some(Proof::Code(wrong)),
        op: Op::Backup,
    };
    h.d.ask(user, &serde_json::to_string(&req).unwrap())
}

fn failures(h: &Host, user: &str) -> String {
    h.sql(&format!(
        "SELECT failures FROM p2fa.users WHERE name = '{user}'"
    ))
}

/// The pooled connection is killed under 2fad, by a DBA and by a crash
/// restart: the next request finds it dead at its checkout check, gets a
/// fresh connection, and is applied once (its failure counted once).
#[test]
fn a_killed_pooled_connection_is_replaced_and_nothing_is_applied_twice() {
    let user = system_user("p2fa-pool1", "Pool-p2fa-1");
    let h = host("");
    h.env.enroll_totp(&user);
    h.status(&user);
    assert_eq!(h.connections_for(&user, 3), 0, "the pool is warm");

    // A DBA ends 2fad's idle session.
    let killed = h.pg.psql(
        "postgres",
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{ROLE}'"),
    );
    assert_eq!(killed.trim(), "t", "one idle connection: {killed}");
    h.wait_sessions(0);
    let before = h.connections();
    let r = wrong_proof(&h, &user);
    assert_eq!(r["code"], "wrong_code", "{r}\n{}", h.d.log());
    assert_eq!(failures(&h, &user), "1", "{r}");
    assert_eq!(h.connections() - before, 1, "one fresh connection");

    // A crash restart of the server.
    h.pg.restart_immediate();
    let before = h.connections();
    let r = wrong_proof(&h, &user);
    assert_eq!(r["code"], "wrong_code", "{r}\n{}", h.d.log());
    assert_eq!(failures(&h, &user), "2", "{r}");
    assert_eq!(h.connections() - before, 1, "one fresh connection");
    // And it is pooled again.
    assert_eq!(h.connections_for(&user, 3), 0);
}

fn unavailable(r: &Response) -> bool {
    matches!(
        r,
        Response::Error {
            code: p2fa_proto::protocol::ErrorCode::Unavailable,
            ..
        }
    )
}

/// The pool does not outlive the connection settings: a password file
/// changed under a running 2fad is used by the next request (a wrong
/// one fails it), not bypassed by a connection made with the old one.
#[test]
fn changed_settings_are_not_served_by_old_connections() {
    let h = host("");
    h.status("root");
    assert_eq!(h.connections_for("root", 3), 0, "the pool is warm");
    let pw = h.env.root().join("pg.password");
    fs::write(&pw, "not-the-password\n").unwrap();
    let r = h.ask_status("root");
    assert!(unavailable(&r), "{r:?}");
    assert!(
        h.pg.log().contains("password authentication failed"),
        "the new password was tried"
    );
    fs::write(&pw, format!("{ROLE_PASSWORD}\n")).unwrap();
    assert_eq!(h.connections_for("root", 3), 1);
}

/// The schema is checked on every checkout, not once per connection: a
/// fleet schema made newer under a running 2fad (another host's
/// `2fa-enroll migrate` to a release this one cannot read) is refused by
/// the next request, pooled connection or not.
#[test]
fn a_newer_schema_is_seen_by_the_next_request() {
    let h = host("");
    h.status("root");
    assert_eq!(h.connections_for("root", 3), 0, "the pool is warm");
    let (v, m) = (
        h.sql("SELECT version FROM p2fa.schema_version"),
        h.sql("SELECT min_reader FROM p2fa.schema_version"),
    );
    h.sql("UPDATE p2fa.schema_version SET version = 999, min_reader = 999");
    let r = h.ask_status("root");
    assert!(unavailable(&r), "{r:?}");
    h.sql(&format!(
        "UPDATE p2fa.schema_version SET version = {v}, min_reader = {m}"
    ));
    h.status("root");
}
