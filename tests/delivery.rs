//! The production SMS and e-mail senders against local stand-ins that
//! speak the real protocols: a Twilio-compatible HTTPS API and a webhook
//! (tests/mock/sms_gateway.py) and an SMTP server (aiosmtpd,
//! tests/mock/smtp_sink.py) with STARTTLS, implicit TLS and AUTH.

mod common;

use common::net::{Pki, Stub, closed_port, json_lines};
use pam_2fa::config::{EmailConfig, SmsConfig, SmsGateway, SmtpTls};
use pam_2fa::factor::{email, sms};
use serde_json::json;
use std::time::{Duration, Instant};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-token-for-tests";

struct Gateway {
    dir: tempfile::TempDir,
    pki: Pki,
    stub: Stub,
}

impl Gateway {
    fn start() -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(&dir.path().join("pki"));
        let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
        let stub = Stub::start(
            "sms_gateway.py",
            &[
                "--cert",
                pki.cert.to_str().unwrap(),
                "--key",
                pki.key.to_str().unwrap(),
                "--sid",
                SID,
                "--token",
                TOKEN,
                "--log",
                &p("sms.jsonl"),
                "--control",
                &p("control.json"),
                "--hook-auth",
                "Bearer hook-secret",
            ],
            dir.path(),
        );
        Gateway { dir, pki, stub }
    }

    fn control(&self, v: serde_json::Value) {
        std::fs::write(self.dir.path().join("control.json"), v.to_string()).unwrap();
    }

    fn messages(&self) -> Vec<serde_json::Value> {
        json_lines(&self.dir.path().join("sms.jsonl"))
    }

    fn twilio(&self) -> SmsConfig {
        let mut c = SmsConfig {
            enabled: true,
            gateway: SmsGateway::Twilio,
            ca_file: self.pki.ca.to_str().unwrap().into(),
            timeout_ms: 1500,
            ..SmsConfig::default()
        };
        c.twilio.base_url = format!("https://127.0.0.1:{}", self.stub.port);
        c.twilio.account_sid = SID.into();
        c.twilio.auth_token = TOKEN.into();
        c.twilio.from = "+15550001111".into();
        c
    }

    fn webhook(&self) -> SmsConfig {
        let mut c = self.twilio();
        c.gateway = SmsGateway::Webhook;
        c.webhook.url = format!("https://localhost:{}/hook", self.stub.port);
        c.webhook
            .headers
            .insert("Authorization".into(), "Bearer hook-secret".into());
        c.webhook.body = r#"{"to": "{phone}", "text": "{message}", "who": "{user}"}"#.into();
        c
    }
}

#[test]
fn twilio_sends_the_code() {
    let gw = Gateway::start();
    sms::send(&gw.twilio(), "host1", "alice", "+15551234567", "246810").unwrap();
    let m = gw.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["kind"], "twilio");
    assert_eq!(m[0]["to"], "+15551234567");
    assert_eq!(m[0]["from"], "+15550001111");
    assert_eq!(
        m[0]["body"],
        "Your host1 login code is 246810. It expires in 5 minutes."
    );
    let mut c = gw.twilio();
    c.twilio.from = "MG0123456789abcdef0123456789abcdef".into();
    sms::send(&c, "h", "alice", "+15551234567", "1").unwrap();
    assert_eq!(
        gw.messages()[1]["from"],
        "MG0123456789abcdef0123456789abcdef"
    );
}

#[test]
fn twilio_errors_are_reported_without_secrets() {
    let gw = Gateway::start();
    let mut c = gw.twilio();
    c.twilio.auth_token = "wrong-token".into();
    let e = sms::send(&c, "h", "alice", "+15551234567", "246810").unwrap_err();
    assert!(
        e.detail().contains("401") && e.detail().contains("20003"),
        "{e}"
    );
    assert!(!e.to_string().contains("wrong-token") && !e.to_string().contains("246810"));
    assert!(e.user_message().contains("Could not send"));

    let e = sms::send(&gw.twilio(), "h", "alice", "+1555", "246810").unwrap_err();
    assert!(e.detail().contains("21211"), "{e}");

    gw.control(json!({"mode": "500"}));
    let e = sms::send(&gw.twilio(), "h", "alice", "+15551234567", "246810").unwrap_err();
    assert!(e.detail().contains("500"), "{e}");

    gw.control(json!({"mode": "slow", "delay": 5}));
    let t = Instant::now();
    let e = sms::send(&gw.twilio(), "h", "alice", "+15551234567", "246810").unwrap_err();
    assert!(e.detail().contains("timed out"), "{e}");
    assert!(
        t.elapsed() < Duration::from_millis(3000),
        "{:?}",
        t.elapsed()
    );
    assert!(gw.messages().is_empty());
}

#[test]
fn tls_is_verified_and_down_gateway_fails_fast() {
    let gw = Gateway::start();
    let mut c = gw.twilio();
    c.ca_file = String::new();
    assert!(sms::send(&c, "h", "alice", "+15551234567", "1").is_err());
    assert!(
        gw.messages().is_empty(),
        "nothing sent over an unverified connection"
    );
    let mut c = gw.twilio();
    c.twilio.base_url = format!("https://127.0.0.1:{}", closed_port());
    let t = Instant::now();
    let e = sms::send(&c, "h", "alice", "+15551234567", "1").unwrap_err();
    assert!(e.detail().contains("unreachable"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn webhook_escapes_json_and_sends_headers() {
    let gw = Gateway::start();
    sms::send(&gw.webhook(), "h", "o\"brien", "+15551234567", "135790").unwrap();
    let m = gw.messages();
    assert_eq!(m[0]["kind"], "webhook");
    assert_eq!(m[0]["content_type"], "application/json");
    let body: serde_json::Value = serde_json::from_str(m[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["to"], "+15551234567");
    assert_eq!(body["who"], "o\"brien");
    assert!(body["text"].as_str().unwrap().contains("135790"));
    let mut c = gw.webhook();
    c.webhook.headers.clear();
    let e = sms::send(&c, "h", "a", "+15551234567", "1").unwrap_err();
    assert!(e.detail().contains("401"), "{e}");
    gw.control(json!({"mode": "500"}));
    assert!(sms::send(&gw.webhook(), "h", "a", "+15551234567", "1").is_err());
}

struct Sink {
    dir: tempfile::TempDir,
    pki: Pki,
    stub: Stub,
}

fn sink(tls: &str, auth: bool) -> Sink {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let log = dir.path().join("mail.jsonl");
    let mut args = vec![
        "--log".to_string(),
        log.to_str().unwrap().to_string(),
        "--tls".into(),
        tls.into(),
        "--cert".into(),
        pki.cert.to_str().unwrap().into(),
        "--key".into(),
        pki.key.to_str().unwrap().into(),
    ];
    if auth {
        args.extend(["--user", "mailer", "--password", "s3cret-mail"].map(String::from));
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let stub = Stub::start("smtp_sink.py", &a, dir.path());
    Sink { dir, pki, stub }
}

impl Sink {
    fn cfg(&self, tls: SmtpTls) -> EmailConfig {
        EmailConfig {
            enabled: true,
            smtp_host: "localhost".into(),
            smtp_port: self.stub.port,
            tls,
            from: "Logins <2fa@example.com>".into(),
            ca_file: self.pki.ca.to_str().unwrap().into(),
            timeout_ms: 3000,
            ..EmailConfig::default()
        }
    }
    fn mails(&self) -> Vec<serde_json::Value> {
        json_lines(&self.dir.path().join("mail.jsonl"))
    }
}

#[test]
fn email_over_starttls_with_auth() {
    let s = sink("starttls", true);
    let mut c = s.cfg(SmtpTls::Starttls);
    c.username = "mailer".into();
    c.password = "s3cret-mail".into();
    email::send(&c, "host1", "alice", "alice@example.com", "975310").unwrap();
    let m = s.mails();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["rcpt_tos"][0], "alice@example.com");
    let data = m[0]["data"].as_str().unwrap();
    assert!(data.contains("Subject: Your host1 login code"), "{data}");
    assert!(data.contains("975310"), "{data}");
    c.password = "wr0ng-pw-xyz".into();
    let e = email::send(&c, "h", "alice", "alice@example.com", "1").unwrap_err();
    assert!(e.detail().contains("SMTP"), "{e}");
    assert!(
        !e.to_string().contains("wr0ng-pw-xyz"),
        "password in error: {e}"
    );
    assert_eq!(
        s.mails().len(),
        1,
        "nothing delivered without authentication"
    );
}

#[test]
fn email_implicit_tls_and_plain() {
    let s = sink("tls", false);
    email::send(
        &s.cfg(SmtpTls::Tls),
        "h",
        "bob",
        "bob@example.com",
        "111222",
    )
    .unwrap();
    assert_eq!(s.mails().len(), 1);
    let p = sink("none", false);
    email::send(
        &p.cfg(SmtpTls::None),
        "h",
        "bob",
        "bob@example.com",
        "333444",
    )
    .unwrap();
    assert!(p.mails()[0]["data"].as_str().unwrap().contains("333444"));
}

#[test]
fn starttls_required_never_falls_back_to_clear() {
    let plain = sink("none", false);
    let e = email::send(
        &plain.cfg(SmtpTls::Starttls),
        "h",
        "bob",
        "bob@example.com",
        "1",
    )
    .unwrap_err();
    assert!(plain.mails().is_empty(), "sent in clear: {e}");
    let s = sink("starttls", false);
    let mut c = s.cfg(SmtpTls::Starttls);
    c.ca_file = String::new();
    assert!(
        email::send(&c, "h", "bob", "bob@example.com", "1").is_err(),
        "unverified cert"
    );
    assert!(s.mails().is_empty());
    let mut c = s.cfg(SmtpTls::None);
    c.smtp_port = closed_port();
    let t = Instant::now();
    assert!(email::send(&c, "h", "bob", "bob@example.com", "1").is_err());
    assert!(t.elapsed() < Duration::from_secs(3));
}

/// reqwest's blocking client runs a runtime thread; it must be gone once
/// `send` has returned (sshd forks after PAM).
#[test]
fn no_thread_outlives_a_send() {
    let gw = Gateway::start();
    let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
    // Other tests in this binary run on their own threads; retry a few
    // times to get a quiet moment, comparing before and after each send.
    let mut leaked = true;
    for _ in 0..20 {
        let before = threads();
        sms::send(&gw.twilio(), "h", "alice", "+15551234567", "1").unwrap();
        if threads() <= before {
            leaked = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!leaked, "thread count grew after every send");
}
