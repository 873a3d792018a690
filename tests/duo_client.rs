//! The production Duo client (src/factor/duo.rs) against the local Duo
//! stand-in (tests/mock/duo_server.py), which checks the Date header and
//! the HMAC-SHA512 signature of every request over real HTTPS.

mod common;

use common::net::{Pki, Stub, closed_port, json_lines};
use pam_2fa::config::DuoConfig;
use pam_2fa::factor::duo::{AuthResult, DuoClient, DuoError, Preauth};
use serde_json::json;
use std::time::{Duration, Instant};

const IKEY: &str = "DIWJ8X6AEYOR5OMC6TQ1";
const SKEY: &str = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";

struct Duo {
    dir: tempfile::TempDir,
    stub: Stub,
    pki: Pki,
}

impl Duo {
    fn start() -> Duo {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(&dir.path().join("pki"));
        let scenario = dir.path().join("scenario.json");
        std::fs::write(&scenario, "{}").unwrap();
        let log = dir.path().join("requests.jsonl");
        let stub = Stub::start(
            "duo_server.py",
            &[
                "--cert",
                pki.cert.to_str().unwrap(),
                "--key",
                pki.key.to_str().unwrap(),
                "--ikey",
                IKEY,
                "--skey",
                SKEY,
                "--scenario",
                scenario.to_str().unwrap(),
                "--log",
                log.to_str().unwrap(),
            ],
            dir.path(),
        );
        let duo = Duo { dir, stub, pki };
        duo.scenario(json!({
            "alice": {"preauth": "auth", "devices": [
                {"device": "DPFZRS9FB0D46QFTM891", "display_name": "iOS (XXX-XXX-0100)",
                 "capabilities": ["auto", "push", "sms", "phone", "mobile_otp"]}],
                "push": "approve", "passcodes": ["123456"]},
            "bob": {"preauth": "deny"},
            "carol": {"preauth": "allow"},
            "dave": {"preauth": "auth", "devices": [], "push": "deny", "push_delay": 0.2},
            "erin": {"preauth": "auth", "devices": [], "push": "timeout"}
        }));
        duo
    }

    fn scenario(&self, v: serde_json::Value) {
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
            ..DuoConfig::default()
        }
    }

    fn client(&self) -> DuoClient {
        DuoClient::new(&self.cfg()).unwrap()
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        json_lines(&self.dir.path().join("requests.jsonl"))
    }
}

#[test]
fn preauth_results() {
    let duo = Duo::start();
    let c = duo.client();
    match c.preauth("alice").unwrap() {
        Preauth::Auth(d) => {
            assert_eq!(d.len(), 1);
            assert_eq!(d[0].device, "DPFZRS9FB0D46QFTM891");
            assert_eq!(d[0].display_name, "iOS (XXX-XXX-0100)");
            assert!(d[0].capabilities.iter().any(|c| c == "push"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(c.preauth("bob").unwrap(), Preauth::Deny(m) if m.contains("locked out")));
    assert!(matches!(c.preauth("carol").unwrap(), Preauth::Allow(_)));
    match c.preauth("nobody").unwrap() {
        Preauth::Enroll { url, .. } => assert!(url.starts_with("https://enroll.")),
        other => panic!("{other:?}"),
    }
    let reqs = duo.requests();
    assert_eq!(reqs.len(), 4);
    assert!(reqs.iter().all(|r| r["verified"] == true), "{reqs:?}");
    assert_eq!(reqs[0]["path"], "/auth/v2/preauth");
    assert_eq!(reqs[0]["method"], "POST");
    assert_eq!(reqs[0]["params"]["username"], "alice");
}

#[test]
fn push_approve_deny_timeout_and_pushinfo() {
    let duo = Duo::start();
    let c = duo.client();
    let info = vec![(
        "Login".to_string(),
        "host1 (sshd) from 192.0.2.7".to_string(),
    )];
    let tx = c.auth_push("alice", "DPFZRS9FB0D46QFTM891", &info).unwrap();
    let mut last = c.auth_status(&tx, Duration::from_secs(5)).unwrap();
    while last.result == AuthResult::Waiting {
        last = c.auth_status(&tx, Duration::from_secs(5)).unwrap();
    }
    assert_eq!(last.result, AuthResult::Allow);
    let push = duo
        .requests()
        .into_iter()
        .find(|r| r["path"] == "/auth/v2/auth")
        .unwrap();
    assert_eq!(push["params"]["factor"], "push");
    assert_eq!(push["params"]["device"], "DPFZRS9FB0D46QFTM891");
    assert_eq!(push["params"]["async"], "1");
    assert_eq!(
        push["params"]["pushinfo"],
        "Login=host1%20%28sshd%29%20from%20192.0.2.7"
    );

    let tx = c.auth_push("dave", "auto", &[]).unwrap();
    let mut s = c.auth_status(&tx, Duration::from_secs(5)).unwrap();
    while s.result == AuthResult::Waiting {
        s = c.auth_status(&tx, Duration::from_secs(5)).unwrap();
    }
    assert_eq!(s.result, AuthResult::Deny);
    assert!(s.status_msg.contains("denied"), "{s:?}");

    let tx = c.auth_push("erin", "auto", &[]).unwrap();
    let s = c.auth_status(&tx, Duration::from_secs(5)).unwrap();
    assert_eq!(
        s.result,
        AuthResult::Waiting,
        "a long-poll that saw no change"
    );
}

#[test]
fn passcode_phone_and_sms() {
    let duo = Duo::start();
    let c = duo.client();
    assert_eq!(
        c.auth_passcode("alice", "123456").unwrap().result,
        AuthResult::Allow
    );
    assert_eq!(
        c.auth_passcode("alice", "654321").unwrap().result,
        AuthResult::Deny
    );
    let tx = c.auth_phone("alice", "DPFZRS9FB0D46QFTM891").unwrap();
    assert!(!tx.is_empty());
    let s = c.auth_sms("alice", "DPFZRS9FB0D46QFTM891").unwrap();
    assert_eq!((s.result, s.status.as_str()), (AuthResult::Deny, "sent"));
    let factors: Vec<String> = duo
        .requests()
        .iter()
        .filter(|r| r["path"] == "/auth/v2/auth")
        .map(|r| r["params"]["factor"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(factors, ["passcode", "passcode", "phone", "sms"]);
}

#[test]
fn wrong_keys_are_a_refusal_not_an_outage() {
    let duo = Duo::start();
    let mut cfg = duo.cfg();
    cfg.skey = "not-the-secret-key-at-all-0000000000000".into();
    let e = DuoClient::new(&cfg).unwrap().preauth("alice").unwrap_err();
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
    let e = DuoClient::new(&cfg).unwrap().preauth("alice").unwrap_err();
    assert!(matches!(e, DuoError::Rejected { code: 40102, .. }), "{e:?}");
}

#[test]
fn outages_are_failmode_errors_and_bounded() {
    let duo = Duo::start();
    let c = duo.client();
    for (mode, want_malformed) in [("500", false), ("garbage", true), ("badjson", true)] {
        duo.scenario(json!({"*mode": mode}));
        let e = c.preauth("alice").unwrap_err();
        assert!(e.failmode_applies(), "{mode}: {e:?}");
        assert_eq!(
            matches!(e, DuoError::Malformed(_)),
            want_malformed,
            "{mode}: {e:?}"
        );
    }
    duo.scenario(json!({"*mode": "hang"}));
    let t = Instant::now();
    let e = c.preauth("alice").unwrap_err();
    assert!(
        matches!(&e, DuoError::Unreachable(m) if m.contains("timed out")),
        "{e:?}"
    );
    assert!(
        t.elapsed() < Duration::from_millis(3500),
        "timeout_ms 2000 held: {:?}",
        t.elapsed()
    );

    let mut cfg = duo.cfg();
    cfg.api_host = format!("127.0.0.1:{}", closed_port());
    let e = DuoClient::new(&cfg).unwrap().preauth("alice").unwrap_err();
    assert!(matches!(e, DuoError::Unreachable(_)), "{e:?}");
}

#[test]
fn tls_is_verified() {
    let duo = Duo::start();
    let other = tempfile::tempdir().unwrap();
    let wrong_ca = Pki::new(other.path()).ca;
    let mut cfg = duo.cfg();
    cfg.ca_file = wrong_ca.to_str().unwrap().into();
    let e = DuoClient::new(&cfg).unwrap().preauth("alice").unwrap_err();
    assert!(matches!(e, DuoError::Unreachable(_)), "{e:?}");
    assert!(duo.requests().is_empty(), "nothing reached the server");
    cfg.ca_file = String::new();
    assert!(
        DuoClient::new(&cfg).unwrap().preauth("alice").is_err(),
        "system roots do not trust the test CA"
    );
}
