//! WebAuthn across the fleet (README "WebAuthn in a fleet"): two hosts
//! share one PostgreSQL database, and each runs its own 2fad; both 2fads
//! serve one public name (`public_url` with host A's port, `rp_id`
//! localhost), as two instances behind a load balancer would. The
//! "load balancer" is this test: it sends the browser's requests for a
//! link started on host A to 2fad B's port, with the same origin in the
//! assertion. Pending ceremonies are in the shared table, so B serves
//! A's link, and A's PAM module reads the result B wrote. Also: replays,
//! expiry, one answer posted to both 2fads at once, a proof for a change,
//! and `2fa-enroll migrate` from the previous fleet schema.

mod common;
use common::daemon::Daemon;
use common::fleet::{ROLE, ROLE_PASSWORD, TwoHosts, host_env};
use common::interactive::Session;
use common::pg::PgServer;
use common::*;
use p2fa_proto::protocol::{ErrorCode, Op, Request, Response, VERSION};
use p2fa_testkit::softkey::SoftKey;
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

type Fleet = TwoHosts;

impl Fleet {
    /// The signature counter stored for `user`'s key `name`.
    fn counter(&self, user: &str, name: &str) -> u64 {
        let c = self.sql(&format!(
            "SELECT credential FROM p2fa.webauthn_credentials WHERE username = '{user}' AND name = '{name}'"
        ));
        let v: Value = serde_json::from_str(&c).unwrap();
        v["cred"]["counter"].as_u64().unwrap()
    }
}

/// A root request on `d`'s socket for `user` (as the PAM module sends).
fn call(d: &Daemon, user: &str, op: Op) -> Response {
    let req = Request {
        version: VERSION,
        user: Some(user.into()),
        proof: None,
        op,
    };
    p2fa_proto::client::call(&d.socket, &req).unwrap()
}

fn link(d: &Daemon, user: &str, op: Op) -> String {
    match call(d, user, op) {
        Response::Link { token, .. } => token,
        other => panic!("{other:?}"),
    }
}

fn login_link(d: &Daemon, user: &str) -> String {
    link(
        d,
        user,
        Op::WebauthnLogin {
            service: "test".into(),
            rhost: String::new(),
        },
    )
}

fn result_of(d: &Daemon, user: &str, token: &str) -> Response {
    call(
        d,
        user,
        Op::WebauthnResult {
            token: token.into(),
        },
    )
}

/// The page's options for `token`, from `d`.
fn page_options(d: &Daemon, token: &str) -> Value {
    let (status, body) = d.http_get(&format!("/api/options/{token}"));
    assert!(status.contains(" 200"), "{status}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["options"].clone()
}

/// A user with one software key, "soft", registered through 2fad A.
fn with_key(f: &Fleet, user: &str) -> SoftKey {
    let token = link(
        &f.wa,
        user,
        Op::WebauthnRegister {
            name: "soft".into(),
        },
    );
    let mut sk = SoftKey::new();
    let body = sk.register(&page_options(&f.wa, &token), &f.origin);
    let r =
        f.wa.http_post(&format!("/api/finish/{token}"), &body.to_string());
    assert!(r.contains(" 200"), "{r}\n{}", f.wa.log());
    assert!(matches!(
        result_of(&f.wa, user, &token),
        Response::Done { .. }
    ));
    assert_eq!(
        f.sql(&format!(
            "SELECT count(*) FROM p2fa.webauthn_credentials WHERE username = '{user}'"
        )),
        "1"
    );
    sk
}

/// A PAM login on host A, approved in the browser through 2fad B: it
/// passes, the counter is stored once (by B), the same answer sent to A
/// is refused, and the ceremony's row is gone once A's module read it.
#[test]
fn a_login_on_one_host_is_completed_through_the_other_2fad() {
    let user = system_user("p2fa-fwa1", "Fleet-wa-p2fa");
    let f = Fleet::start();
    let mut sk = with_key(&f, &user);

    let mut s = Session::start(&f.a.svc_dir, "p2fa", &user);
    let p = s.expect_prompt("Approve this login", WAIT);
    let url = common::daemon::url_in(&p);
    assert!(url.starts_with(&format!("{}/l/", f.origin)), "{url}");
    let token = common::daemon::token_of(&url);
    // The row names host A and holds only a hash of the token.
    let rows = f.sql("SELECT host, kind, username FROM p2fa.webauthn_ceremonies");
    assert_eq!(rows, format!("host-a|login|{user}"));
    let all = f.sql("SELECT t::text FROM p2fa.webauthn_ceremonies t");
    assert!(!all.contains(&token), "the token is stored");

    // The browser, sent to B: the page, its options, the answer.
    let (page, _) = f.wb.http_get(&format!("/l/{token}"));
    assert!(page.contains(" 200"), "{page}");
    let opts = page_options(&f.wb, &token);
    let body = sk.assert(&opts, &f.origin).to_string();
    let r = f.wb.http_post(&format!("/api/finish/{token}"), &body);
    assert!(r.contains(" 200"), "{r}\n{}", f.wb.log());
    // The same answer, replayed to A: refused.
    let again = f.wa.http_post(&format!("/api/finish/{token}"), &body);
    assert!(again.contains(" 400"), "{again}");

    s.answer("");
    let o = s.finish(WAIT);
    assert!(o.ok, "{}\n{}\n{}", o.transcript, f.wa.log(), f.wb.log());
    assert_eq!(f.counter(&user, "soft"), 1);
    assert_eq!(
        f.sql(&format!(
            "SELECT c.last_used_host, u.last_success_host, u.failures,
                    (SELECT count(*) FROM p2fa.key_warnings k WHERE k.username = u.name)
             FROM p2fa.webauthn_credentials c JOIN p2fa.users u ON u.name = c.username
             WHERE u.name = '{user}'"
        )),
        "host-b|host-a|0|0"
    );
    // Taken: the row is gone, and a replay to either 2fad is refused.
    assert_eq!(f.sql("SELECT count(*) FROM p2fa.webauthn_ceremonies"), "0");
    for d in [&f.wa, &f.wb] {
        let r = d.http_post(&format!("/api/finish/{token}"), &body);
        assert!(r.contains(" 400"), "{r}");
    }
    assert_eq!(f.counter(&user, "soft"), 1);
    // The other host logs in with the same key, through its own 2fad.
    let mut s = Session::start(&f.b.svc_dir, "p2fa", &user);
    let p = s.expect_prompt("Approve this login", WAIT);
    let token = common::daemon::token_of(&common::daemon::url_in(&p));
    let body = sk.assert(&page_options(&f.wa, &token), &f.origin);
    let r =
        f.wa.http_post(&format!("/api/finish/{token}"), &body.to_string());
    assert!(r.contains(" 200"), "{r}");
    s.answer("");
    let o = s.finish(WAIT);
    assert!(o.ok, "{}", o.transcript);
    assert_eq!(f.counter(&user, "soft"), 2);
}

/// An expired ceremony is refused on both 2fads, and its result is
/// "expired"; a result is read only on the host that started the login.
#[test]
fn expired_and_foreign_ceremonies_are_refused() {
    let user = system_user("p2fa-fwa2", "Fleet-wa-p2fa");
    let f = Fleet::start();
    let mut sk = with_key(&f, &user);

    // Host B's 2fad does not hand out (or use up) the result of A's login.
    let token = login_link(&f.wa, &user);
    let body = sk.assert(&page_options(&f.wb, &token), &f.origin);
    let r =
        f.wb.http_post(&format!("/api/finish/{token}"), &body.to_string());
    assert!(r.contains(" 200"), "{r}");
    match result_of(&f.wb, &user, &token) {
        Response::Error { code, message } => {
            assert_eq!(code, ErrorCode::Failed);
            assert!(message.contains("unknown"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        result_of(&f.wa, &user, &token),
        Response::Done { .. }
    ));

    // Expired (moved back in the shared table): dead everywhere.
    let token = login_link(&f.wa, &user);
    let opts = page_options(&f.wb, &token);
    f.sql("UPDATE p2fa.webauthn_ceremonies SET expires_at = expires_at - 1000");
    for d in [&f.wa, &f.wb] {
        let (status, _) = d.http_get(&format!("/api/options/{token}"));
        assert!(status.contains(" 404"), "{status}");
    }
    let body = sk.assert(&opts, &f.origin).to_string();
    for d in [&f.wb, &f.wa] {
        let r = d.http_post(&format!("/api/finish/{token}"), &body);
        assert!(r.contains(" 400"), "{r}");
    }
    match result_of(&f.wa, &user, &token) {
        Response::Error { code, message } => {
            assert_eq!(code, ErrorCode::Failed);
            assert!(message.contains("expired"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Only the good login moved the counter.
    assert_eq!(f.counter(&user, "soft"), 1);
    // A later ceremony deletes what expired a minute ago.
    f.sql(&format!(
        "INSERT INTO p2fa.webauthn_ceremonies (token_hash, username, host, by_uid, kind,
           service, rhost, state, options, created_at, expires_at)
         VALUES (sha256('x'::bytea), '{user}', 'host-a', 0, 'login', 't', '', 'x', '{{}}', 0, 0)"
    ));
    assert_eq!(f.sql("SELECT count(*) FROM p2fa.webauthn_ceremonies"), "1");
    let _ = login_link(&f.wb, &user);
    assert_eq!(
        f.sql("SELECT count(*), min(host) FROM p2fa.webauthn_ceremonies"),
        "1|host-b"
    );
}

/// The same answer posted to both 2fads at once: exactly one verifies
/// it (the claim is one conditional UPDATE), the counter moves once, and
/// the login's result is approved once.
#[test]
fn one_answer_posted_to_both_2fads_at_once_completes_once() {
    let user = system_user("p2fa-fwa3", "Fleet-wa-p2fa");
    let f = Fleet::start();
    let mut sk = with_key(&f, &user);
    const ROUNDS: u64 = 6;
    for round in 1..=ROUNDS {
        let token = login_link(&f.wa, &user);
        let body = sk
            .assert(&page_options(&f.wa, &token), &f.origin)
            .to_string();
        let path = format!("/api/finish/{token}");
        let posted: Vec<String> = std::thread::scope(|s| {
            let a = s.spawn(|| f.wa.http_post(&path, &body));
            let b = s.spawn(|| f.wb.http_post(&path, &body));
            vec![a.join().unwrap(), b.join().unwrap()]
        });
        assert_eq!(
            posted.iter().filter(|r| r.contains(" 200")).count(),
            1,
            "round {round}: {posted:?}"
        );
        assert_eq!(
            posted.iter().filter(|r| r.contains(" 400")).count(),
            1,
            "round {round}: {posted:?}"
        );
        assert!(matches!(
            result_of(&f.wa, &user, &token),
            Response::Done { .. }
        ));
        // Taken once.
        assert!(matches!(
            result_of(&f.wa, &user, &token),
            Response::Error {
                code: ErrorCode::Failed,
                ..
            }
        ));
        assert_eq!(f.counter(&user, "soft"), round);
    }
    assert_eq!(
        f.sql(&format!(
            "SELECT count(*) FROM p2fa.key_warnings WHERE username = '{user}'"
        )),
        "0"
    );
}

/// A fleet on schema v1 (the previous release): `2fa-enroll migrate`
/// adds the ceremony table as v2 with `min_reader` 1, so hosts still on
/// the previous release keep logging in.
#[test]
fn migrate_adds_the_ceremony_table_to_a_v1_fleet() {
    use p2fa_pg::wire::{Conn, ConnectConfig, Tls};
    let pg = PgServer::start();
    let db = pg.create_db();
    pg.create_role(ROLE, ROLE_PASSWORD);
    pg.psql("postgres", &format!("ALTER DATABASE {db} OWNER TO {ROLE}"));
    let url = pg
        .url(ROLE, &db)
        .replace(&format!("{ROLE}@"), &format!("{ROLE}:{ROLE_PASSWORD}@"));
    let mut cc = ConnectConfig::from_url(&url, p2fa_core::secure_fs::Trust::test_runner()).unwrap();
    cc.tls = Tls::VerifyFull {
        ca_file: Some(pg.ca_file()),
        client_cert: None,
    };
    let mut conn = Conn::connect(&cc).unwrap();
    let v1 = &p2fa_pg::schema::MIGRATIONS[..1];
    assert_eq!(
        p2fa_pg::schema::migrate(&mut conn, v1, "previous", "host-a", 1).unwrap(),
        (0, 1)
    );
    drop(conn);
    let a = host_env(&pg, &db, "host-a");
    let out = a.enroll_ok(&["migrate"], "");
    // To this release's schema (v3 added the login history, v4 the profile
    // links and sessions).
    let now = p2fa_pg::schema::MIGRATIONS.len();
    assert!(
        out.contains(&format!("migrated from v1 to v{now}")),
        "{out}"
    );
    assert_eq!(
        pg.psql(
            &db,
            "SELECT version, min_reader, to_regclass('p2fa.webauthn_ceremonies') IS NOT NULL
             FROM p2fa.schema_version"
        )
        .trim(),
        format!("{now}|1|t")
    );
}

/// A proof for a change (the user's own `2fa-enroll`, through host A's
/// 2fad) approved in the browser through 2fad B: host B's 2fad does not
/// accept it, host A's uses it up once.
#[test]
fn a_proof_approved_through_the_other_2fad_is_used_once_on_its_host() {
    use p2fa_proto::protocol::Proof;
    let user = system_user("p2fa-fwa4", "Fleet-wa-p2fa");
    let f = Fleet::start();
    let mut sk = with_key(&f, &user);
    // As the user (not root: root needs no proof).
    let ask = |d: &Daemon, proof: Option<Proof>, op: Op| -> Value {
        let req = Request {
            version: VERSION,
            user: None,
            proof,
            op,
        };
        d.ask(&user, &serde_json::to_string(&req).unwrap())
    };
    let purpose = p2fa_proto::protocol::purpose(&Op::Backup).unwrap();
    let r = ask(&f.wa, None, Op::WebauthnProve { purpose });
    let token = r["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();
    let body = sk.assert(&page_options(&f.wb, &token), &f.origin);
    let posted =
        f.wb.http_post(&format!("/api/finish/{token}"), &body.to_string());
    assert!(posted.contains(" 200"), "{posted}");
    let with_proof = || Some(Proof::Webauthn(token.clone()));
    // Host B's 2fad: not its proof (and it stays for host A).
    let r = ask(&f.wb, with_proof(), Op::Backup);
    assert!(r.to_string().contains("unknown"), "{r}");
    let r = ask(&f.wa, with_proof(), Op::Backup);
    assert!(r.to_string().contains("codes"), "{r}");
    // Used up.
    let r = ask(&f.wa, with_proof(), Op::Backup);
    assert!(r.to_string().contains("unknown"), "{r}");
    assert_eq!(f.sql("SELECT count(*) FROM p2fa.webauthn_ceremonies"), "0");
    assert_eq!(
        f.sql(&format!(
            "SELECT count(*) FROM p2fa.backup_codes WHERE username = '{user}'"
        )),
        p2fa_core::config::Config::default()
            .backup
            .count
            .to_string()
    );
}
