//! The production Duo client (crates/net/src/duo.rs) against the local Duo
//! stand-in (tests/mock/duo_server.py), which checks the Date header and
//! the HMAC-SHA512 signature of every request over real HTTPS with a CA
//! made for each test. Every test runs its own stand-in on its own port.

mod common;

use common::net::{DUO_IKEY, DUO_SKEY, Pki, Stub, closed_port, duo_server, json_lines};
use p2fa_core::config::DuoConfig;
use p2fa_core::secure_fs::Trust;
use p2fa_net::duo::{
    AuthResult, DuoClient, DuoError, Preauth, authorization, canon_params, canonical, rfc2822,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Whose files the clients believe: the user running the test (root
/// under scripts/test, where the module believes root alone).
fn trust() -> Trust {
    Trust::test_runner()
}

const IKEY: &str = DUO_IKEY;
const SKEY: &str = DUO_SKEY;
const PHONE: &str = "DPFZRS9FB0D46QFTM891";

struct Duo {
    dir: tempfile::TempDir,
    stub: Stub,
    pki: Pki,
}

impl Duo {
    fn start() -> Duo {
        Duo::start_with(&[])
    }

    /// A stand-in with the default scenario; `extra` goes on its command line.
    fn start_with(extra: &[&str]) -> Duo {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(&dir.path().join("pki"));
        let scenario = dir.path().join("scenario.json");
        std::fs::write(&scenario, "{}").unwrap();
        let log = dir.path().join("requests.jsonl");
        let stub = duo_server(&pki.cert, &pki.key, &scenario, &log, extra, dir.path());
        let duo = Duo { dir, stub, pki };
        duo.scenario(json!({
            "alice@example.com": {"preauth": "auth", "devices": [
                {"device": PHONE, "display_name": "iOS (XXX-XXX-0100)",
                 "capabilities": ["auto", "push", "sms", "phone", "mobile_otp"]}],
                "push": "approve", "push_delay": 0.2, "passcodes": ["123456"]},
            "bob": {"preauth": "deny"},
            "carol": {"preauth": "allow"},
            "dave": {"preauth": "auth", "devices": [], "push": "deny", "push_delay": 0.2},
            "erin": {"preauth": "auth", "devices": [], "push": "timeout"},
            "frank": {"preauth": "auth", "devices": [], "push": "fraud", "push_delay": 0.1},
            "grace": {"preauth": "maybe"},
            "jörg": {"preauth": "allow"},
        }));
        duo
    }

    /// Replaces the scenario (atomically, as the stand-in re-reads it on
    /// every request).
    fn scenario(&self, v: Value) {
        let p = self.dir.path().join("scenario.json");
        let tmp = self.dir.path().join("scenario.tmp");
        std::fs::write(&tmp, v.to_string()).unwrap();
        std::fs::rename(tmp, p).unwrap();
    }

    fn cfg(&self) -> DuoConfig {
        DuoConfig {
            enabled: true,
            ikey: IKEY.into(),
            skey: SKEY.into(),
            api_host: format!("127.0.0.1:{}", self.stub.port),
            ca_file: self.pki.ca.to_str().unwrap().into(),
            timeout_ms: 2000,
            connect_timeout_ms: 1000,
            push_timeout_seconds: 10,
            usernames: [("alice".to_string(), "alice@example.com".to_string())].into(),
            ..DuoConfig::default()
        }
    }

    fn client(&self) -> DuoClient {
        DuoClient::new(&self.cfg(), trust()).unwrap()
    }

    fn requests(&self) -> Vec<Value> {
        json_lines(&self.dir.path().join("requests.jsonl"))
    }

    fn auth_requests(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["path"] == "/auth/v2/auth")
            .collect()
    }
}

/// Polls until the transaction leaves "waiting" (at most 10 s).
fn settle(c: &DuoClient, tx: &str) -> p2fa_net::duo::AuthStatus {
    let t = Instant::now();
    loop {
        let s = c.auth_status(tx, Duration::from_secs(5)).unwrap();
        if s.result != AuthResult::Waiting || t.elapsed() > Duration::from_secs(10) {
            return s;
        }
    }
}

fn is_rfc2822(d: &str) -> bool {
    // "Tue, 21 Aug 2012 17:29:18 -0000"
    let b = d.as_bytes();
    d.len() == 31
        && &d[3..5] == ", "
        && d.ends_with(" -0000")
        && b[7] == b' '
        && b[11] == b' '
        && b[16] == b' '
        && b[19] == b':'
        && b[22] == b':'
}

#[test]
fn duo_preauth_results_and_what_duo_received() {
    let duo = Duo::start();
    let cfg = duo.cfg();
    let c = duo.client();
    // The login name "alice" maps to the Duo username "alice@example.com".
    match c.preauth(cfg.username("alice")).unwrap() {
        Preauth::Auth(d) => {
            assert_eq!(d.len(), 1);
            assert_eq!(d[0].device, PHONE);
            assert_eq!(d[0].display_name, "iOS (XXX-XXX-0100)");
            assert!(d[0].can("push") && d[0].can("sms") && d[0].can("phone"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(c.preauth(cfg.username("bob")).unwrap(), Preauth::Deny(m) if m.contains("disabled"))
    );
    assert!(matches!(c.preauth("carol").unwrap(), Preauth::Allow(_)));
    match c.preauth("nobody").unwrap() {
        Preauth::Enroll { url, msg } => {
            assert!(url.starts_with("https://"), "{url}");
            assert!(msg.contains("Enroll"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    // Non-ASCII usernames are encoded (UTF-8, percent) and signed alike.
    assert!(matches!(c.preauth("jörg").unwrap(), Preauth::Allow(_)));
    let e = c.preauth("grace").unwrap_err();
    assert!(matches!(e, DuoError::Malformed(_)), "{e:?}");
    assert!(!e.failmode_applies(), "a protocol error is no outage");

    let reqs = duo.requests();
    assert_eq!(reqs.len(), 6);
    for r in &reqs {
        assert_eq!(r["verified"], true, "{r}");
        assert_eq!(r["method"], "POST");
        assert_eq!(r["path"], "/auth/v2/preauth");
        assert_eq!(r["query"], "", "POST params travel in the body");
        assert_eq!(r["host"], format!("127.0.0.1:{}", duo.stub.port));
        assert_eq!(r["signed_host"], "127.0.0.1", "signed without the port");
        assert!(is_rfc2822(r["date"].as_str().unwrap()), "{r}");
        assert_eq!(r["params"].as_object().unwrap().len(), 1, "{r}");
    }
    let users: Vec<&str> = reqs
        .iter()
        .map(|r| r["params"]["username"].as_str().unwrap())
        .collect();
    assert_eq!(
        users,
        [
            "alice@example.com",
            "bob",
            "carol",
            "nobody",
            "jörg",
            "grace"
        ]
    );
}

#[test]
fn duo_push_approve_deny_fraud_and_pushinfo() {
    let duo = Duo::start();
    let c = duo.client();
    let info = vec![
        (
            "Login".to_string(),
            "host1 (sshd) from 192.0.2.7".to_string(),
        ),
        ("Server IP".to_string(), "10.0.0.1".to_string()),
    ];
    let tx = c.auth_push("alice@example.com", PHONE, &info).unwrap();
    let first = c.auth_status(&tx, Duration::from_secs(5)).unwrap();
    let s = if first.result == AuthResult::Waiting {
        assert_eq!(first.status, "pushed", "{first:?}");
        settle(&c, &tx)
    } else {
        first
    };
    assert_eq!(s.result, AuthResult::Allow, "{s:?}");

    let push = &duo.auth_requests()[0];
    assert_eq!(push["verified"], true);
    assert_eq!(push["params"]["username"], "alice@example.com");
    assert_eq!(push["params"]["factor"], "push");
    assert_eq!(push["params"]["device"], PHONE);
    assert_eq!(push["params"]["async"], "1");
    assert_eq!(
        push["params"]["pushinfo"],
        "Login=host1%20%28sshd%29%20from%20192.0.2.7&Server%20IP=10.0.0.1"
    );
    assert_eq!(
        push["pushinfo"],
        json!({"Login": "host1 (sshd) from 192.0.2.7", "Server IP": "10.0.0.1"})
    );
    let status_reqs: Vec<Value> = duo
        .requests()
        .into_iter()
        .filter(|r| r["path"] == "/auth/v2/auth_status")
        .collect();
    assert!(!status_reqs.is_empty());
    for r in &status_reqs {
        assert_eq!(r["method"], "GET");
        assert_eq!(r["verified"], true);
        assert_eq!(r["params"]["txid"], tx.as_str());
        assert_eq!(r["query"], format!("txid={tx}"), "GET params in the query");
        assert_eq!(r["user"], "alice@example.com");
    }

    let tx = c.auth_push("dave", "auto", &[]).unwrap();
    let s = settle(&c, &tx);
    assert_eq!((s.result, s.status.as_str()), (AuthResult::Deny, "deny"));
    assert!(s.status_msg.contains("denied"), "{s:?}");
    assert!(
        duo.auth_requests()[1]["params"].get("pushinfo").is_none(),
        "no empty pushinfo"
    );

    let tx = c.auth_push("frank", "auto", &[]).unwrap();
    let s = settle(&c, &tx);
    assert_eq!((s.result, s.status.as_str()), (AuthResult::Deny, "fraud"));

    // A push nobody answers stays "waiting" (the stand-in holds each
    // long-poll for up to 1 s, then says so).
    let tx = c.auth_push("erin", "auto", &[]).unwrap();
    let t = Instant::now();
    let s = c.auth_status(&tx, Duration::from_secs(5)).unwrap();
    assert_eq!(
        (s.result, s.status.as_str()),
        (AuthResult::Waiting, "pushed")
    );
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn duo_long_poll_that_outlasts_the_wait_is_still_waiting() {
    // Duo holds auth_status until something changes. Running out of the
    // caller's wait there is "still waiting", never an outage (which with
    // failmode=safe would let an ignored push in).
    let duo = Duo::start();
    duo.scenario(json!({
        "*poll_hold": 20,
        "erin": {"preauth": "auth", "devices": [], "push": "timeout"},
    }));
    let mut cfg = duo.cfg();
    cfg.push_timeout_seconds = 2;
    let c = DuoClient::new(&cfg, trust()).unwrap();
    let tx = c.auth_push("erin", "auto", &[]).unwrap();
    let t = Instant::now();
    let s = c.auth_status(&tx, Duration::from_secs(1)).unwrap();
    assert_eq!((s.result, s.status.as_str()), (AuthResult::Waiting, ""));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    // The wait is capped by push_timeout_seconds (2 s here).
    let t = Instant::now();
    let s = c.auth_status(&tx, Duration::from_secs(60)).unwrap();
    assert_eq!(s.result, AuthResult::Waiting);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
        "{took:?}"
    );
    // A dead server during polling is still an error.
    drop(duo);
    let e = c.auth_status(&tx, Duration::from_secs(1)).unwrap_err();
    assert!(e.failmode_applies(), "{e:?}");
}

#[test]
fn duo_sends_ipaddr_with_preauth_and_auth_when_known() {
    let duo = Duo::start();
    let c = DuoClient::new(&duo.cfg(), trust())
        .unwrap()
        .with_ipaddr(Some("2001:db8::7".parse().unwrap()));
    assert!(matches!(
        c.preauth("alice@example.com").unwrap(),
        Preauth::Auth(_)
    ));
    let tx = c.auth_push("alice@example.com", PHONE, &[]).unwrap();
    settle(&c, &tx);
    c.auth_passcode("alice@example.com", "123456").unwrap();
    for r in duo.requests() {
        assert_eq!(r["verified"], true, "{r}");
        let want = if r["path"] == "/auth/v2/auth_status" {
            Value::Null
        } else {
            json!("2001:db8::7")
        };
        assert_eq!(r["params"]["ipaddr"], want, "{r}");
    }
    // Unknown source (no rhost, or a host name): no ipaddr.
    let c = duo.client();
    c.preauth("carol").unwrap();
    assert!(
        duo.requests().last().unwrap()["params"]
            .get("ipaddr")
            .is_none()
    );
}

#[test]
fn duo_phone_sms_and_passcodes() {
    let duo = Duo::start();
    let c = duo.client();
    let tx = c.auth_phone("alice@example.com", PHONE).unwrap();
    assert_eq!(settle(&c, &tx).result, AuthResult::Allow);

    let s = c.auth_sms("alice@example.com", PHONE).unwrap();
    assert_eq!((s.result, s.status.as_str()), (AuthResult::Deny, "sent"));

    let s = c.auth_passcode("alice@example.com", "123456").unwrap();
    assert_eq!(s.result, AuthResult::Allow);
    // Duo's passcodes are single-use; the stand-in's too.
    let s = c.auth_passcode("alice@example.com", "123456").unwrap();
    assert_eq!(s.result, AuthResult::Deny);
    let s = c.auth_passcode("alice@example.com", "654321").unwrap();
    assert_eq!(s.result, AuthResult::Deny);
    assert!(s.status_msg.contains("Incorrect"), "{s:?}");

    let auths = duo.auth_requests();
    let seen: Vec<(&str, &str, &str)> = auths
        .iter()
        .map(|r| {
            let p = &r["params"];
            (
                p["factor"].as_str().unwrap(),
                p["device"].as_str().unwrap_or("-"),
                p["async"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("phone", PHONE, "1"),
            ("sms", PHONE, "-"),
            ("passcode", "-", "-"),
            ("passcode", "-", "-"),
            ("passcode", "-", "-"),
        ]
    );
    assert_eq!(auths[2]["params"]["passcode"], "123456");
    assert!(
        auths
            .iter()
            .all(|r| r["verified"] == true && r["params"]["username"] == "alice@example.com")
    );
}

#[test]
fn duo_wrong_keys_are_a_refusal_not_an_outage() {
    let duo = Duo::start();
    let mut cfg = duo.cfg();
    cfg.skey = "not-the-secret-key-at-all-0000000000000".into();
    let e = DuoClient::new(&cfg, trust())
        .unwrap()
        .preauth("carol")
        .unwrap_err();
    assert!(
        matches!(&e, DuoError::Rejected { code: 40103, .. }),
        "{e:?}"
    );
    assert!(!e.failmode_applies());
    assert!(
        !e.to_string().contains("not-the-secret"),
        "no secret in errors: {e}"
    );
    cfg = duo.cfg();
    cfg.ikey = "DIXXXXXXXXXXXXXXXXXX".into();
    let e = DuoClient::new(&cfg, trust())
        .unwrap()
        .preauth("carol")
        .unwrap_err();
    assert!(matches!(e, DuoError::Rejected { code: 40102, .. }), "{e:?}");
    assert!(!e.failmode_applies());
    let reqs = duo.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r["verified"] == false));
    assert_eq!(reqs[0]["code"], 40103);
    assert_eq!(reqs[0]["status"], 401);
}

#[test]
fn duo_outages_and_protocol_errors_are_told_apart_and_bounded() {
    let duo = Duo::start();
    let c = duo.client();
    // No answer (an outage, where failmode may apply) versus an answer that
    // is not Duo's (a protocol error, which never is an outage).
    for (mode, malformed) in [
        ("500", false),
        ("reset", false),
        ("garbage", true),
        ("truncated", true),
        ("badjson", true),
    ] {
        duo.scenario(json!({"*mode": mode, "carol": {"preauth": "allow"}}));
        let e = c.preauth("carol").unwrap_err();
        assert_eq!(e.failmode_applies(), !malformed, "{mode}: {e:?}");
        assert_eq!(
            matches!(e, DuoError::Malformed(_)),
            malformed,
            "{mode}: {e:?}"
        );
        if !malformed {
            assert!(matches!(e, DuoError::Unreachable(_)), "{mode}: {e:?}");
        }
    }
    // Rate limiting is Duo answering: a refusal, so flooding Duo cannot
    // turn failmode=safe into a bypass.
    duo.scenario(json!({"*mode": "429"}));
    let e = c.preauth("carol").unwrap_err();
    assert!(matches!(e, DuoError::Rejected { code: 42901, .. }), "{e:?}");
    assert!(!e.failmode_applies());

    // Per endpoint: preauth works, starting the push fails.
    duo.scenario(json!({"*modes": {"/auth/v2/auth": "500"},
        "dave": {"preauth": "auth", "devices": []}}));
    assert!(matches!(c.preauth("dave").unwrap(), Preauth::Auth(_)));
    let e = c.auth_push("dave", "auto", &[]).unwrap_err();
    assert!(matches!(e, DuoError::Unreachable(_)), "{e:?}");
    duo.scenario(json!({"*modes": {"/auth/v2/auth": "badjson"}}));
    let e = c.auth_push("dave", "auto", &[]).unwrap_err();
    assert!(matches!(e, DuoError::Malformed(_)), "{e:?}");
    let e = c.auth_passcode("dave", "123456").unwrap_err();
    assert!(matches!(e, DuoError::Malformed(_)), "{e:?}");
    // Per user: only henry's requests get garbage.
    duo.scenario(
        json!({"henry": {"preauth": "auth", "devices": [], "mode": "garbage"},
        "carol": {"preauth": "allow"}}),
    );
    let e = c.preauth("henry").unwrap_err();
    assert!(matches!(e, DuoError::Malformed(_)), "{e:?}");
    assert!(matches!(c.preauth("carol").unwrap(), Preauth::Allow(_)));

    // A server that accepts and never answers: timeout_ms (2 s) holds.
    duo.scenario(json!({"*mode": "hang"}));
    let t = Instant::now();
    let e = c.preauth("carol").unwrap_err();
    let took = t.elapsed();
    assert!(
        matches!(&e, DuoError::Unreachable(m) if m.contains("timed out")),
        "{e:?}"
    );
    assert!(e.failmode_applies());
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
        "timeout_ms 2000 held: {took:?}"
    );
    assert_eq!(
        duo.requests().last().unwrap()["mode"],
        "hang",
        "the hung request did arrive"
    );

    // Nothing listening.
    let mut cfg = duo.cfg();
    cfg.api_host = format!("127.0.0.1:{}", closed_port());
    let t = Instant::now();
    let e = DuoClient::new(&cfg, trust())
        .unwrap()
        .preauth("carol")
        .unwrap_err();
    assert!(matches!(e, DuoError::Unreachable(_)), "{e:?}");
    assert!(e.failmode_applies());
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn duo_tls_is_verified() {
    let duo = Duo::start();
    // The name works as well as the address (both are in the certificate).
    let mut cfg = duo.cfg();
    cfg.api_host = format!("LocalHost:{}", duo.stub.port);
    assert!(matches!(
        DuoClient::new(&cfg, trust())
            .unwrap()
            .preauth("carol")
            .unwrap(),
        Preauth::Allow(_)
    ));
    assert_eq!(
        duo.requests()[0]["host"],
        format!("localhost:{}", duo.stub.port)
    );

    // A different CA: a certificate error, never an outage.
    let other = tempfile::tempdir().unwrap();
    let wrong_ca = Pki::new(other.path()).ca;
    let mut cfg = duo.cfg();
    cfg.ca_file = wrong_ca.to_str().unwrap().into();
    let e = DuoClient::new(&cfg, trust())
        .unwrap()
        .preauth("carol")
        .unwrap_err();
    assert!(
        matches!(&e, DuoError::Tls(m) if m.contains("invalid peer certificate: UnknownIssuer")),
        "{e:?}"
    );
    assert!(!e.failmode_applies());
    // Only the system roots.
    cfg.ca_file = String::new();
    assert!(
        DuoClient::new(&cfg, trust())
            .unwrap()
            .preauth("carol")
            .is_err(),
        "system roots do not trust the test CA"
    );
    assert_eq!(duo.requests().len(), 1, "nothing else reached the server");

    // The right CA, but a certificate for another name.
    let (cert, key) = duo.pki.leaf(
        "other",
        "/CN=other.example",
        "subjectAltName=DNS:other.example",
        None,
    );
    let other_dir = duo.dir.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let scenario = other_dir.join("scenario.json");
    std::fs::write(
        &scenario,
        json!({"carol": {"preauth": "allow"}}).to_string(),
    )
    .unwrap();
    let log = other_dir.join("requests.jsonl");
    let stub = duo_server(&cert, &key, &scenario, &log, &[], &other_dir);
    let mut cfg = duo.cfg();
    cfg.api_host = format!("127.0.0.1:{}", stub.port);
    let e = DuoClient::new(&cfg, trust())
        .unwrap()
        .preauth("carol")
        .unwrap_err();
    assert!(
        matches!(&e, DuoError::Tls(m) if m.contains("certificate not valid for name")),
        "{e:?}"
    );
    assert!(json_lines(&log).is_empty(), "no request over a bad TLS");
}

#[test]
fn duo_bad_input_is_refused_before_sending() {
    let duo = Duo::start();
    let c = duo.client();
    for e in [
        c.preauth("").unwrap_err(),
        c.preauth("alice\nroot").unwrap_err(),
        c.auth_push("alice", "DP1&factor=passcode", &[])
            .unwrap_err(),
        c.auth_push("alice", "", &[]).unwrap_err(),
        c.auth_phone("alice", "../x").unwrap_err(),
        c.auth_sms("alice\u{7}", PHONE).unwrap_err(),
        c.auth_passcode("alice", "12 34 56").unwrap_err(),
        c.auth_passcode("alice", "").unwrap_err(),
        c.auth_status("../../admin", Duration::from_secs(1))
            .unwrap_err(),
    ] {
        assert!(matches!(e, DuoError::BadInput(_)), "{e:?}");
        assert!(!e.failmode_applies());
        assert!(!e.to_string().contains("34"), "no passcode in errors: {e}");
    }
    assert!(duo.requests().is_empty());
}

#[test]
fn duo_ping_and_check() {
    let duo = Duo::start();
    let c = duo.client();
    let now = p2fa_core::clock::unix_now();
    assert!((c.ping().unwrap() - now).abs() < 60);
    assert!((c.check().unwrap() - now).abs() < 60);
    let paths: Vec<Value> = duo.requests().iter().map(|r| r["path"].clone()).collect();
    assert_eq!(paths, ["/auth/v2/ping", "/auth/v2/check"]);
    let mut cfg = duo.cfg();
    cfg.skey = "wrong".into();
    assert!(matches!(
        DuoClient::new(&cfg, trust()).unwrap().check(),
        Err(DuoError::Rejected { code: 40103, .. })
    ));
}

/// Sends a hand-made request to the stand-in, to check that it refuses what
/// Duo would refuse.
fn raw(
    duo: &Duo,
    method: &str,
    path: &str,
    date: Option<&str>,
    auth: Option<&str>,
    body_params: &[(&str, &str)],
) -> (u16, Value) {
    // reqwest is built without a crypto provider of its own: the module's
    // TLS setup, trusting the test CA.
    let http = reqwest::blocking::Client::builder()
        .use_preconfigured_tls(p2fa_net::transport::tls_config(Some(&duo.pki.ca), trust()).unwrap())
        .no_proxy()
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{}{path}", duo.stub.port);
    let mut req = if method == "GET" {
        http.get(format!("{url}?{}", canon_params(body_params)))
    } else {
        http.post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(canon_params(body_params))
    };
    if let Some(d) = date {
        req = req.header("Date", d);
    }
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[test]
fn duo_stand_in_checks_date_and_signature() {
    let duo = Duo::start_with(&["--skew", "30"]);
    // Duo's clients sign the host name without the port.
    let host = "127.0.0.1".to_string();
    let params = [("username", "carol")];
    let sign_for = |host: &str, date: &str, signed: &[(&str, &str)], skey: &str| {
        authorization(
            IKEY,
            skey,
            &canonical(date, "POST", host, "/auth/v2/preauth", signed),
        )
    };
    let sign =
        |date: &str, signed: &[(&str, &str)], skey: &str| sign_for(&host, date, signed, skey);
    let now = rfc2822(p2fa_core::clock::unix_now());
    let code = |(status, v): (u16, Value)| (status, v["code"].as_i64().unwrap_or(0));

    // A good request.
    let (s, v) = raw(
        &duo,
        "POST",
        "/auth/v2/preauth",
        Some(&now),
        Some(&sign(&now, &params, SKEY)),
        &params,
    );
    assert_eq!((s, v["stat"].as_str()), (200, Some("OK")), "{v}");
    // Signed over host:port (what Duo refuses; the stand-in too).
    let with_port = format!("127.0.0.1:{}", duo.stub.port);
    let r = raw(
        &duo,
        "POST",
        "/auth/v2/preauth",
        Some(&now),
        Some(&sign_for(&with_port, &now, &params, SKEY)),
        &params,
    );
    assert_eq!(code(r), (401, 40103));
    // ipaddr must be an address.
    let bad_ip = [("ipaddr", "not-an-address"), ("username", "carol")];
    let r = raw(
        &duo,
        "POST",
        "/auth/v2/preauth",
        Some(&now),
        Some(&sign(&now, &bad_ip, SKEY)),
        &bad_ip,
    );
    assert_eq!(code(r), (400, 40002));
    // Signed for other parameters than sent.
    let r = raw(
        &duo,
        "POST",
        "/auth/v2/preauth",
        Some(&now),
        Some(&sign(&now, &[("username", "bob")], SKEY)),
        &params,
    );
    assert_eq!(code(r), (401, 40103));
    // Wrong secret key.
    let r = raw(
        &duo,
        "POST",
        "/auth/v2/preauth",
        Some(&now),
        Some(&sign(&now, &params, "other")),
        &params,
    );
    assert_eq!(code(r), (401, 40103));
    // No credentials; garbled credentials.
    let r = raw(&duo, "POST", "/auth/v2/preauth", Some(&now), None, &params);
    assert_eq!(code(r), (401, 40101));
    let r = raw(
        &duo,
        "POST",
        "/auth/v2/preauth",
        Some(&now),
        Some("Basic !!!"),
        &params,
    );
    assert_eq!(code(r), (401, 40101));
    // No Date, a garbled Date, a Date outside --skew (30 s), signed or not.
    let r = raw(
        &duo,
        "POST",
        "/auth/v2/preauth",
        None,
        Some(&sign(&now, &params, SKEY)),
        &params,
    );
    assert_eq!(code(r), (401, 40105));
    for bad in [
        "yesterday".to_string(),
        "2012-08-21T17:29:18Z".to_string(),
        now.replace(", ", " "),
    ] {
        let r = raw(
            &duo,
            "POST",
            "/auth/v2/preauth",
            Some(&bad),
            Some(&sign(&bad, &params, SKEY)),
            &params,
        );
        assert_eq!(code(r), (401, 40105), "{bad}");
    }
    let old = rfc2822(p2fa_core::clock::unix_now() - 120);
    let r = raw(
        &duo,
        "POST",
        "/auth/v2/preauth",
        Some(&old),
        Some(&sign(&old, &params, SKEY)),
        &params,
    );
    assert_eq!(code(r), (401, 40105));
    // Signed for POST, sent as GET.
    let r = raw(
        &duo,
        "GET",
        "/auth/v2/preauth",
        Some(&now),
        Some(&sign(&now, &params, SKEY)),
        &params,
    );
    assert_eq!(code(r), (401, 40103));

    let log = duo.requests();
    assert_eq!(log.len(), 13);
    // The good request, and the one refused for its ipaddr.
    assert_eq!(
        log.iter().filter(|r| r["verified"] == true).count(),
        2,
        "{log:?}"
    );
    assert_eq!(
        log.iter().filter(|r| r["status"] == 200).count(),
        1,
        "{log:?}"
    );
}
