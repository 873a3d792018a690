//! The fleet store's PostgreSQL client (crates/pg/src/wire) against a
//! real PostgreSQL cluster (tests/common/pg.rs): SCRAM with and without
//! channel binding, TLS trust and host names, client certificates, plain
//! TCP to loopback, a Unix socket, every parameter type, errors inside a
//! pipeline, multi-host URLs, a stopped server, and no thread left
//! behind. Each test runs its own cluster.

mod common;

use common::net::{Pki, closed_port};
use common::pg::{CERT_USER, PLAIN_PASSWORD, PLAIN_USER, PgServer};
use p2fa_core::secure_fs::Trust;
use p2fa_pg::wire::{Addr, ChannelBinding, Conn, ConnectConfig, PgError, Tls, TxStatus, Value};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// A config for `user` in `db` over TLS with the cluster's CA.
fn config(pg: &PgServer, user: &str, password: Option<&str>, db: &str) -> ConnectConfig {
    let mut c = ConnectConfig::from_url(&pg.url(user, db), Trust::test_runner()).unwrap();
    c.password = password.map(|p| Zeroizing::new(p.to_string()));
    c.tls = Tls::VerifyFull {
        ca_file: Some(pg.ca_file()),
        client_cert: None,
    };
    c
}

/// A role `alice` with a password, a fresh database, and a config for
/// both.
fn alice(pg: &PgServer) -> ConnectConfig {
    pg.create_role("alice", "correct horse");
    let db = pg.create_db();
    config(pg, "alice", Some("correct horse"), &db)
}

fn connect_err(cfg: &ConnectConfig) -> String {
    match Conn::connect(cfg) {
        Ok(_) => panic!("connected"),
        Err(PgError::Connect(m)) => m,
        Err(e) => panic!("not a Connect error: {e:?}"),
    }
}

#[test]
fn scram_login_over_tls() {
    let pg = PgServer::start();
    let cfg = alice(&pg);
    let mut c = Conn::connect(&cfg).unwrap_or_else(|e| panic!("{e}\n{}", pg.log()));
    let out = c.query("SELECT current_user::text", &[]).unwrap();
    assert_eq!(out.rows[0].text(0).unwrap(), "alice");
    assert!(c.parameter("server_version").is_some());
    assert_eq!(c.status(), TxStatus::Idle);
    // The session really is TLS.
    let ssl = c
        .query(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    assert!(ssl.rows[0].bool(0).unwrap());
}

#[test]
fn scram_sha_256_plus_when_channel_binding_is_required() {
    let pg = PgServer::start();
    let mut cfg = alice(&pg);
    cfg.channel_binding = ChannelBinding::Require;
    // The client refuses AuthenticationOk unless SCRAM-SHA-256-PLUS ran
    // to its verified end, so connecting proves it was used.
    let mut c = Conn::connect(&cfg).unwrap_or_else(|e| panic!("{e}\n{}", pg.log()));
    c.simple("SELECT 1").unwrap();
    // Also from a URL.
    let url = format!("{}?channel_binding=require", pg.url("alice", &cfg.dbname));
    let mut u = ConnectConfig::from_url(&url, Trust::test_runner()).unwrap();
    assert_eq!(u.channel_binding, ChannelBinding::Require);
    u.password = cfg.password.clone();
    u.tls = cfg.tls.clone();
    Conn::connect(&u).unwrap();
    // Without TLS there is nothing to bind to.
    let mut plain = config(&pg, PLAIN_USER, Some(PLAIN_PASSWORD), "postgres");
    plain.tls = Tls::Off;
    plain.channel_binding = ChannelBinding::Require;
    let m = connect_err(&plain);
    assert!(m.contains("channel binding"), "{m}");
    // Disabled: plain SCRAM-SHA-256 over TLS.
    cfg.channel_binding = ChannelBinding::Disable;
    Conn::connect(&cfg).unwrap();
}

#[test]
fn a_wrong_password_is_refused() {
    let pg = PgServer::start();
    let mut cfg = alice(&pg);
    cfg.password = Some(Zeroizing::new("wrong horse".into()));
    let m = connect_err(&cfg);
    assert!(m.contains("password authentication failed"), "{m}");
    assert!(m.contains(&format!("127.0.0.1:{}", pg.port)), "{m}");
    assert!(!m.contains("wrong horse"), "{m}");
    // No password at all.
    cfg.password = None;
    let m = connect_err(&cfg);
    assert!(m.contains("none is configured"), "{m}");
}

#[test]
fn a_server_certificate_from_another_ca_is_refused() {
    let pg = PgServer::start();
    let mut cfg = alice(&pg);
    let other = tempfile::tempdir().unwrap();
    let other_pki = Pki::new(&other.path().join("other-ca"));
    cfg.tls = Tls::VerifyFull {
        ca_file: Some(other_pki.ca.clone()),
        client_cert: None,
    };
    let m = connect_err(&cfg);
    assert!(m.contains("TLS") && m.contains("certificate"), "{m}");
}

#[test]
fn a_host_name_the_certificate_does_not_name_is_refused() {
    let pg = PgServer::start();
    let mut cfg = alice(&pg);
    // The server listens on 127.0.0.2 too; its certificate names
    // 127.0.0.1 and localhost only.
    cfg.addrs = vec![Addr::Tcp("127.0.0.2".into(), pg.port)];
    let m = connect_err(&cfg);
    assert!(m.contains("certificate") && m.contains("127.0.0.2"), "{m}");
    // The same server under a name the certificate holds.
    cfg.addrs = vec![Addr::Tcp("localhost".into(), pg.port)];
    Conn::connect(&cfg).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn client_certificate_login() {
    let pg = PgServer::start();
    let db = pg.create_db();
    let mut cfg = config(&pg, CERT_USER, None, &db);
    let (cert, key) = pg.client_cert_for(CERT_USER);
    cfg.tls = Tls::VerifyFull {
        ca_file: Some(pg.ca_file()),
        client_cert: Some((cert.clone(), key.clone())),
    };
    let mut c = Conn::connect(&cfg).unwrap_or_else(|e| panic!("{e}\n{}", pg.log()));
    let out = c.query("SELECT current_user", &[]).unwrap();
    // `name`, read as text.
    assert_eq!(out.rows[0].text(0).unwrap(), CERT_USER);
    drop(c);
    // Without the certificate the server refuses us.
    cfg.tls = Tls::VerifyFull {
        ca_file: Some(pg.ca_file()),
        client_cert: None,
    };
    let m = connect_err(&cfg);
    assert!(m.contains("certificate"), "{m}");
    // A key others can read is refused before connecting.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    cfg.tls = Tls::VerifyFull {
        ca_file: Some(pg.ca_file()),
        client_cert: Some((cert, key)),
    };
    let m = connect_err(&cfg);
    assert!(m.contains("client key"), "{m}");
}

#[test]
fn tls_off_works_to_loopback_only() {
    let pg = PgServer::start();
    let mut cfg = config(&pg, PLAIN_USER, Some(PLAIN_PASSWORD), "postgres");
    cfg.tls = Tls::Off;
    let mut c = Conn::connect(&cfg).unwrap_or_else(|e| panic!("{e}\n{}", pg.log()));
    let ssl = c
        .query(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    assert!(!ssl.rows[0].bool(0).unwrap());
    drop(c);
    // From a URL too.
    let url = format!(
        "postgresql://{PLAIN_USER}:{PLAIN_PASSWORD}@127.0.0.1:{}/postgres?sslmode=disable",
        pg.port
    );
    let u = ConnectConfig::from_url(&url, Trust::test_runner()).unwrap();
    Conn::connect(&u).unwrap();
    // Not to an address that is not loopback: refused before any packet.
    cfg.addrs = vec![Addr::Tcp("192.0.2.7".into(), pg.port)];
    let started = Instant::now();
    let m = connect_err(&cfg);
    assert!(m.contains("loopback"), "{m}");
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[test]
fn unix_socket_login() {
    let pg = PgServer::start();
    let url = format!(
        "postgresql://{PLAIN_USER}:{PLAIN_PASSWORD}@:{}/postgres?host={}",
        pg.port,
        pg.socket_dir().display()
    );
    let cfg = ConnectConfig::from_url(&url, Trust::test_runner()).unwrap();
    let mut c = Conn::connect(&cfg).unwrap_or_else(|e| panic!("{e}\n{}", pg.log()));
    let out = c
        .query(
            "SELECT client_addr IS NULL FROM pg_stat_activity WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    assert!(out.rows[0].bool(0).unwrap());
}

#[test]
fn every_value_type_round_trips() {
    let pg = PgServer::start();
    let cfg = alice(&pg);
    let mut c = Conn::connect(&cfg).unwrap();
    c.simple(
        "CREATE TABLE t (id int8 PRIMARY KEY, b bool, i int4, s text, v varchar(100), x bytea, n int8);
         CREATE TABLE u (id int4)",
    )
    .unwrap();
    let blob: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    let text = "héllo, wörld ' \" \\ ∑";
    let out = c
        .query(
            "INSERT INTO t VALUES ($1, $2, $3, $4, $4, $5, $6)",
            &[
                Value::Int8(i64::MIN),
                Value::Bool(true),
                Value::Int4(i32::MAX),
                Value::Text(text),
                Value::Bytea(&blob),
                Value::Null,
            ],
        )
        .unwrap();
    assert_eq!(out.affected, 1);
    assert!(out.rows.is_empty());
    c.query(
        "INSERT INTO t (id, b, i, s, x) VALUES ($1, $2, $3, $4, $5)",
        &[
            Value::Int8(7),
            Value::Bool(false),
            Value::Int4(-1),
            Value::Text(""),
            Value::Bytea(&[]),
        ],
    )
    .unwrap();
    let out = c
        .query(
            "SELECT id, b, i, s, v, x, n FROM t WHERE id = $1",
            &[Value::Int8(i64::MIN)],
        )
        .unwrap();
    assert_eq!(out.affected, 1);
    let r = &out.rows[0];
    assert_eq!(r.len(), 7);
    assert_eq!(r.i64(0).unwrap(), i64::MIN);
    assert!(r.bool(1).unwrap());
    assert_eq!(r.i64(2).unwrap(), i64::from(i32::MAX));
    assert_eq!(r.text(3).unwrap(), text);
    assert_eq!(r.text(4).unwrap(), text);
    assert_eq!(r.bytes(5).unwrap(), blob);
    assert_eq!(r.opt_i64(6).unwrap(), None);
    assert!(r.is_null(6).unwrap());
    assert!(matches!(r.i64(6), Err(PgError::Lost(_))));
    // A type that does not match is an error, not a panic or a guess.
    assert!(matches!(r.bytes(3), Err(PgError::Lost(_))));
    assert!(matches!(r.text(0), Err(PgError::Lost(_))));
    assert!(matches!(r.bool(99), Err(PgError::Lost(_))));
    let r = &c
        .query(
            "SELECT b, i, s, x, i::int2 FROM t WHERE id = $1",
            &[Value::Int8(7)],
        )
        .unwrap()
        .rows[0];
    assert!(!r.bool(0).unwrap());
    assert_eq!(r.i64(1).unwrap(), -1);
    assert_eq!(r.text(2).unwrap(), "");
    assert_eq!(r.bytes(3).unwrap(), Vec::<u8>::new());
    assert_eq!(r.i64(4).unwrap(), -1);
    // NULL with the type left to the server; opt_ getters.
    let r = &c
        .query(
            "SELECT $1::text, $2::bytea, $3::bool",
            &[Value::Null, Value::Null, Value::Null],
        )
        .unwrap()
        .rows[0];
    assert_eq!(r.opt_text(0).unwrap(), None);
    assert_eq!(r.opt_bytes(1).unwrap(), None);
    assert_eq!(r.opt_bool(2).unwrap(), None);
    // affected for UPDATE, DELETE and INSERT ... SELECT.
    assert_eq!(c.query("UPDATE t SET n = 1", &[]).unwrap().affected, 2);
    assert_eq!(
        c.query("INSERT INTO u SELECT generate_series(1, 5)", &[])
            .unwrap()
            .affected,
        5
    );
    assert_eq!(
        c.query("DELETE FROM u WHERE id > $1", &[Value::Int4(2)])
            .unwrap()
            .affected,
        3
    );
    // Many rows, and rows bigger than one read.
    let big = "z".repeat(100_000);
    let out = c
        .query(
            "SELECT g, $1::text FROM generate_series(1, 50) g",
            &[Value::Text(&big)],
        )
        .unwrap();
    assert_eq!(out.rows.len(), 50);
    assert_eq!(out.rows[49].i64(0).unwrap(), 50);
    assert_eq!(out.rows[49].text(1).unwrap(), big);
}

#[test]
fn an_error_inside_a_pipeline_and_the_next_query_works() {
    let pg = PgServer::start();
    let cfg = alice(&pg);
    let mut c = Conn::connect(&cfg).unwrap();
    c.simple("CREATE TABLE k (id int4 PRIMARY KEY)").unwrap();
    let e = c
        .pipeline(&[
            ("INSERT INTO k VALUES ($1)", &[Value::Int4(1)]),
            ("INSERT INTO k VALUES ($1)", &[Value::Int4(1)]),
            ("INSERT INTO k VALUES ($1)", &[Value::Int4(2)]),
        ])
        .unwrap_err();
    assert!(
        matches!(&e, PgError::Server { code, .. } if code == "23505"),
        "{e:?}"
    );
    assert_eq!(c.status(), TxStatus::Idle);
    // One Sync: one implicit transaction, rolled back as a whole.
    let out = c.query("SELECT count(*) FROM k", &[]).unwrap();
    assert_eq!(out.rows[0].i64(0).unwrap(), 0);
    // A working pipeline returns one outcome per statement.
    let outs = c
        .pipeline(&[
            ("INSERT INTO k VALUES ($1)", &[Value::Int4(1)]),
            ("SELECT id FROM k", &[]),
            ("", &[]),
        ])
        .unwrap();
    assert_eq!(outs.len(), 3);
    assert_eq!(outs[0].affected, 1);
    assert_eq!(outs[1].rows[0].i64(0).unwrap(), 1);
    // A syntax error.
    let e = c.query("SELEKT 1", &[]).unwrap_err();
    assert!(
        matches!(&e, PgError::Server { code, .. } if code == "42601"),
        "{e:?}"
    );
    // Transactions with the simple protocol; errors are reported after
    // draining, and the state follows ReadyForQuery.
    c.simple("BEGIN").unwrap();
    assert_eq!(c.status(), TxStatus::InTransaction);
    let e = c.simple("INSERT INTO k VALUES (1); SELECT 1").unwrap_err();
    assert!(
        matches!(&e, PgError::Server { code, .. } if code == "23505"),
        "{e:?}"
    );
    assert_eq!(c.status(), TxStatus::Failed);
    c.simple("ROLLBACK").unwrap();
    assert_eq!(c.status(), TxStatus::Idle);
    assert_eq!(
        c.query("SELECT 1::int4", &[]).unwrap().rows[0]
            .i64(0)
            .unwrap(),
        1
    );
}

#[test]
fn a_two_host_url_skips_a_closed_port() {
    let pg = PgServer::start();
    let cfg = alice(&pg);
    let url = format!(
        "postgresql://alice:correct%20horse@127.0.0.1:{},127.0.0.1:{}/{}",
        closed_port(),
        pg.port,
        cfg.dbname
    );
    let mut two = ConnectConfig::from_url(&url, Trust::test_runner()).unwrap();
    assert_eq!(two.addrs.len(), 2);
    two.tls = cfg.tls.clone();
    let mut c = Conn::connect(&two).unwrap_or_else(|e| panic!("{e}"));
    c.simple("SELECT 1").unwrap();
}

#[test]
fn a_stopped_server_fails_within_the_connect_timeout() {
    let pg = PgServer::start();
    let mut cfg = alice(&pg);
    let mut before = Conn::connect(&cfg).unwrap();
    pg.stop();
    cfg.connect_timeout = Duration::from_secs(2);
    let started = Instant::now();
    let m = connect_err(&cfg);
    assert!(started.elapsed() < Duration::from_millis(2500), "{m}");
    assert!(m.contains(&format!("127.0.0.1:{}", pg.port)), "{m}");
    // The connection from before is lost, and stays so.
    let e = before.query("SELECT 1", &[]).unwrap_err();
    assert!(matches!(e, PgError::Lost(_)), "{e:?}");
    assert!(matches!(before.simple("SELECT 1"), Err(PgError::Lost(_))));
    pg.start_again();
    let mut c = Conn::connect(&cfg).unwrap();
    pg.restart_immediate();
    assert!(matches!(c.simple("SELECT 1"), Err(PgError::Lost(_))));
    Conn::connect(&cfg).unwrap().simple("SELECT 1").unwrap();
}

fn threads() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Threads:"))
        .unwrap()
        .to_string()
}

/// Nothing runs on another thread: the process has as many threads
/// after a connect, a query and a drop as before (nextest runs each test
/// in a process of its own, so nothing else starts threads meanwhile).
#[test]
fn no_thread_is_started() {
    let pg = PgServer::start();
    let cfg = alice(&pg);
    let before = threads();
    let mut c = Conn::connect(&cfg).unwrap();
    c.query("SELECT $1::int8", &[Value::Int8(5)]).unwrap();
    let during = threads();
    drop(c);
    assert_eq!(before, during);
    assert_eq!(before, threads());
}

/// A standby (a hot standby after a failover, say) is skipped like an
/// unreachable server when a primary is needed, and usable when not.
#[test]
fn a_standby_is_skipped_when_a_primary_is_needed() {
    let pg = PgServer::start();
    let cfg = alice(&pg);
    let standby = pg.start_standby();
    let url = format!(
        "postgresql://alice:correct%20horse@127.0.0.1:{},127.0.0.1:{}/{}",
        standby.port, pg.port, cfg.dbname
    );
    let mut both = ConnectConfig::from_url(&url, Trust::test_runner()).unwrap();
    both.tls = cfg.tls.clone();
    assert!(both.require_primary);
    let mut c = Conn::connect(&both).unwrap_or_else(|e| panic!("{e}\n{}", standby.log()));
    let r = c.query("SELECT pg_is_in_recovery()", &[]).unwrap();
    assert!(!r.rows[0].bool(0).unwrap(), "connected to the standby");
    // The standby alone: refused, saying why.
    let mut only = both.clone();
    only.addrs.truncate(1);
    let m = connect_err(&only);
    assert!(m.contains("standby"), "{m}");
    // Read-only use may take it.
    only.require_primary = false;
    let mut s = Conn::connect(&only).unwrap();
    let r = s.query("SELECT pg_is_in_recovery()", &[]).unwrap();
    assert!(r.rows[0].bool(0).unwrap());
    drop(s);
    drop(c);
    drop(standby);
}
