//! The production SMS and e-mail senders against local stand-ins that
//! speak the real protocols: a Twilio-compatible HTTPS API and a webhook
//! (tests/mock/sms_gateway.py) and an SMTP server (aiosmtpd,
//! tests/mock/smtp_sink.py) with STARTTLS, implicit TLS and AUTH.
//!
//! Every test starts its own stand-ins on their own ports in their own temp
//! dir (CA and server certificate made there with the openssl CLI), so the
//! tests run in parallel and again and again; stand-ins die on drop.

#[path = "common/net.rs"]
mod net;

use net::{Pki, SMS_CONTROL, SMS_LOG, Stub, closed_port, json_lines, sms_gateway};
use p2fa_core::config::{EmailConfig, SmsConfig, SmsGateway, SmtpTls};
use p2fa_core::secure_fs::Trust;
use p2fa_net::{email, sms};
use serde_json::json;
use std::time::{Duration, Instant};

/// Whose files the clients believe: the user running the test (root
/// under scripts/test, where the module believes root alone).
fn trust() -> Trust {
    Trust::test_runner()
}

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
        let stub = sms_gateway(&pki, SID, TOKEN, "Bearer hook-secret", &[], dir.path());
        Gateway { dir, pki, stub }
    }

    fn control(&self, v: serde_json::Value) {
        std::fs::write(self.dir.path().join(SMS_CONTROL), v.to_string()).unwrap();
    }

    fn messages(&self) -> Vec<serde_json::Value> {
        json_lines(&self.dir.path().join(SMS_LOG))
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
    sms::send(
        &gw.twilio(),
        trust(),
        "host1",
        "alice",
        "+15551234567",
        "246810",
    )
    .unwrap();
    let m = gw.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["kind"], "twilio");
    assert_eq!(
        m[0]["path"],
        format!("/2010-04-01/Accounts/{SID}/Messages.json")
    );
    assert_eq!(m[0]["auth_user"], SID);
    assert_eq!(m[0]["to"], "+15551234567");
    assert_eq!(m[0]["from"], "+15550001111");
    assert_eq!(m[0]["from_field"], "From");
    assert_eq!(
        m[0]["body"],
        "Your host1 login code is 246810. It expires in 5 minutes."
    );

    // A Messaging Service SID goes in its own field; a custom template.
    let mut c = gw.twilio();
    c.twilio.from = "MG0123456789abcdef0123456789abcdef".into();
    c.twilio.base_url.push('/');
    c.message = "{issuer}: {code} (for {user})".into();
    sms::send(&c, trust(), "h", "bob", "+447700900123", "13579246").unwrap();
    let m = &gw.messages()[1];
    assert_eq!(m["from"], "MG0123456789abcdef0123456789abcdef");
    assert_eq!(m["from_field"], "MessagingServiceSid");
    assert_eq!(m["to"], "+447700900123");
    assert_eq!(m["body"], "h: 13579246 (for bob)");
}

#[test]
fn twilio_errors_are_reported_without_secrets() {
    let gw = Gateway::start();
    let mut c = gw.twilio();
    c.twilio.auth_token = "wrong-token".into();
    let e = sms::send(&c, trust(), "h", "alice", "+15551234567", "246810").unwrap_err();
    assert!(
        e.detail().contains("401") && e.detail().contains("20003 Authenticate"),
        "{e}"
    );
    for secret in ["wrong-token", TOKEN, "246810"] {
        assert!(!e.to_string().contains(secret), "{secret} in {e}");
        assert!(!e.user_message().contains(secret));
    }
    assert!(e.user_message().contains("Could not send the SMS code"));

    let e = sms::send(&gw.twilio(), trust(), "h", "alice", "+1555", "246810").unwrap_err();
    assert!(
        e.detail().contains("400") && e.detail().contains("21211"),
        "{e}"
    );

    gw.control(json!({"mode": "500"}));
    let e = sms::send(
        &gw.twilio(),
        trust(),
        "h",
        "alice",
        "+15551234567",
        "246810",
    )
    .unwrap_err();
    assert!(e.detail().contains("500"), "{e}");

    gw.control(json!({"mode": "nosid"}));
    let e = sms::send(
        &gw.twilio(),
        trust(),
        "h",
        "alice",
        "+15551234567",
        "246810",
    )
    .unwrap_err();
    assert!(e.detail().contains("without a message sid"), "{e}");

    gw.control(json!({"mode": "slow", "delay": 5}));
    let t = Instant::now();
    let e = sms::send(
        &gw.twilio(),
        trust(),
        "h",
        "alice",
        "+15551234567",
        "246810",
    )
    .unwrap_err();
    let took = t.elapsed();
    assert!(e.detail().contains("gateway timed out"), "{e}");
    // timeout_ms is 1500
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(3000),
        "{took:?}"
    );
    assert!(gw.messages().is_empty());
}

#[test]
fn tls_is_verified_and_down_gateway_fails_fast() {
    let gw = Gateway::start();
    let mut c = gw.twilio();
    c.ca_file = String::new();
    let e = sms::send(&c, trust(), "h", "alice", "+15551234567", "1").unwrap_err();
    assert!(e.detail().contains("certificate"), "{e}");
    assert!(
        gw.messages().is_empty(),
        "nothing sent over an unverified connection"
    );
    let mut c = gw.twilio();
    c.twilio.base_url = format!("https://127.0.0.1:{}", closed_port());
    let t = Instant::now();
    let e = sms::send(&c, trust(), "h", "alice", "+15551234567", "1").unwrap_err();
    assert!(e.detail().contains("unreachable"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn webhook_escapes_json_and_sends_headers() {
    let gw = Gateway::start();
    let user = "o\"brien\\x\ny";
    sms::send(&gw.webhook(), trust(), "h", user, "+15551234567", "135790").unwrap();
    let m = gw.messages();
    assert_eq!(m[0]["kind"], "webhook");
    assert_eq!(m[0]["method"], "POST");
    assert_eq!(m[0]["content_type"], "application/json");
    assert_eq!(m[0]["authorization"], "Bearer hook-secret");
    // The gateway parsed the body as JSON; the values came through intact.
    let f = &m[0]["fields"];
    assert_eq!(f["to"], "+15551234567");
    assert_eq!(f["who"], user);
    assert_eq!(
        f["text"],
        "Your h login code is 135790. It expires in 5 minutes."
    );

    let mut c = gw.webhook();
    c.webhook.method = "PUT".into();
    sms::send(&c, trust(), "h", "a", "+15551234567", "1").unwrap();
    assert_eq!(gw.messages()[1]["method"], "PUT");

    let mut c = gw.webhook();
    c.webhook.headers.clear();
    let e = sms::send(&c, trust(), "h", "a", "+15551234567", "1").unwrap_err();
    assert!(e.detail().contains("401"), "{e}");
    gw.control(json!({"mode": "500"}));
    let e = sms::send(&gw.webhook(), trust(), "h", "a", "+15551234567", "1").unwrap_err();
    assert!(e.detail().contains("webhook answered 500"), "{e}");
    assert_eq!(gw.messages().len(), 2);
}

#[test]
fn webhook_form_encoding() {
    let gw = Gateway::start();
    let mut c = gw.webhook();
    c.webhook.content_type = "application/x-www-form-urlencoded".into();
    c.webhook.body = "to={phone}&msg={message}&user={user}&code={code}".into();
    sms::send(&c, trust(), "h", "a&b=c d", "+15551234567", "864200").unwrap();
    let m = gw.messages();
    let f = &m[0]["fields"];
    assert_eq!(f["to"], "+15551234567");
    assert_eq!(f["user"], "a&b=c d");
    assert_eq!(f["code"], "864200");
    assert_eq!(
        f["msg"],
        "Your h login code is 864200. It expires in 5 minutes."
    );
}

#[test]
fn webhook_url_never_reaches_the_log() {
    // A webhook URL may carry an API key; errors must not repeat it.
    let mut c = SmsConfig {
        enabled: true,
        gateway: SmsGateway::Webhook,
        ..SmsConfig::default()
    };
    c.webhook.url = format!(
        "https://127.0.0.1:{}/send?api_key=KEY-IN-URL-123",
        closed_port()
    );
    let e = sms::send(&c, trust(), "h", "a", "+15551234567", "1").unwrap_err();
    assert!(e.detail().contains("127.0.0.1"), "{e}");
    assert!(!e.detail().contains("KEY-IN-URL-123"), "{e}");
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
    email::send(&c, trust(), "host1", "alice", "alice@example.com", "975310").unwrap();
    let m = s.mails();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["mail_from"], "2fa@example.com");
    assert_eq!(m[0]["rcpt_tos"], json!(["alice@example.com"]));
    assert_eq!(m[0]["auth_user"], "mailer");
    let data = m[0]["data"].as_str().unwrap();
    assert!(data.contains("Subject: Your host1 login code"), "{data}");
    assert!(data.contains("To: alice@example.com"), "{data}");
    assert!(
        data.contains("Your login code for alice on host1 is 975310."),
        "{data}"
    );

    c.password = "wr0ng-pw-xyz".into();
    let t = Instant::now();
    let e = email::send(&c, trust(), "h", "alice", "alice@example.com", "864213").unwrap_err();
    assert!(e.detail().contains("535"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    for secret in ["wr0ng-pw-xyz", "864213"] {
        assert!(!e.to_string().contains(secret), "{secret} in {e}");
    }
    assert_eq!(
        s.mails().len(),
        1,
        "nothing delivered without authentication"
    );

    // Without credentials the server refuses the mail.
    let mut c = s.cfg(SmtpTls::Starttls);
    c.username.clear();
    assert!(email::send(&c, trust(), "h", "alice", "alice@example.com", "1").is_err());
    assert_eq!(s.mails().len(), 1);
}

#[test]
fn email_implicit_tls_and_plain() {
    let s = sink("tls", false);
    email::send(
        &s.cfg(SmtpTls::Tls),
        trust(),
        "h",
        "bob",
        "bob@example.com",
        "111222",
    )
    .unwrap();
    assert!(s.mails()[0]["data"].as_str().unwrap().contains("111222"));
    let mut c = s.cfg(SmtpTls::Tls);
    c.ca_file = String::new();
    assert!(
        email::send(&c, trust(), "h", "bob", "bob@example.com", "1").is_err(),
        "unverified cert"
    );
    assert_eq!(s.mails().len(), 1);

    let p = sink("none", false);
    let mut c = p.cfg(SmtpTls::None);
    c.subject = "Code for {user}".into();
    c.body = "{code}\n".into();
    email::send(&c, trust(), "h", "bob", "bob@example.com", "333444").unwrap();
    let data = p.mails()[0]["data"].as_str().unwrap().to_string();
    assert!(data.contains("Subject: Code for bob"), "{data}");
    assert!(data.contains("333444"), "{data}");
}

#[test]
fn starttls_required_never_falls_back_to_clear() {
    let plain = sink("none", false);
    let e = email::send(
        &plain.cfg(SmtpTls::Starttls),
        trust(),
        "h",
        "bob",
        "bob@example.com",
        "1",
    )
    .unwrap_err();
    assert!(e.detail().contains("STARTTLS"), "{e}");
    assert!(plain.mails().is_empty(), "sent in clear: {e}");
    let s = sink("starttls", false);
    let mut c = s.cfg(SmtpTls::Starttls);
    c.ca_file = String::new();
    assert!(
        email::send(&c, trust(), "h", "bob", "bob@example.com", "1").is_err(),
        "unverified cert"
    );
    assert!(s.mails().is_empty());
    let mut c = s.cfg(SmtpTls::None);
    c.smtp_port = closed_port();
    let t = Instant::now();
    assert!(email::send(&c, trust(), "h", "bob", "bob@example.com", "1").is_err());
    assert!(t.elapsed() < Duration::from_secs(3));
}

/// Runs `f` on a thread and fails (instead of hanging) after `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("still running after {limit:?}"))
}

/// A server that accepts TCP connections and never says a word: the
/// overall deadline ends the wait for its greeting and, with implicit TLS,
/// the handshake.
#[test]
fn silent_smtp_server_is_bounded_in_every_tls_mode() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    for tls in [SmtpTls::Tls, SmtpTls::Starttls, SmtpTls::None] {
        let c = EmailConfig {
            enabled: true,
            smtp_host: "127.0.0.1".into(),
            smtp_port: port,
            tls,
            from: "2fa@example.com".into(),
            connect_timeout_ms: 500,
            timeout_ms: 1000,
            ..EmailConfig::default()
        };
        let (result, took) = within(Duration::from_secs(10), move || {
            let t = Instant::now();
            let r = email::send(&c, trust(), "h", "bob", "bob@example.com", "1");
            (r, t.elapsed())
        });
        let e = result.unwrap_err();
        assert!(
            e.detail().contains("no answer within"),
            "{tls:?}: {e} after {took:?}"
        );
        assert!(took < Duration::from_millis(2500), "{tls:?}: {took:?}");
    }
    drop(silent);
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Runs `send` until a run leaves no more threads than it found. Under
/// nextest (one process per test) the first run decides; under `cargo
/// test` other tests' threads come and go, so a few tries find a quiet
/// moment. Fails when every run left a thread behind.
fn leaves_no_thread(what: &str, send: impl Fn()) {
    for _ in 0..20 {
        let before = threads();
        send();
        if threads() <= before {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: the thread count grew after every send");
}

/// No thread may outlive `send`, on success or on failure (sshd forks
/// after PAM). The clients start none today (ureq with a resolver on the
/// calling thread, the SMTP conversation on the calling thread); this
/// keeps it so (reqwest's blocking client ran a runtime thread, ureq's
/// default resolver starts one per lookup).
#[test]
fn no_thread_outlives_a_send() {
    // Sends are called directly here (a helper thread would blur the
    // count), so a hang would hang the run: abort instead. This thread
    // lives for the whole test, in every before and after count alike.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        eprintln!("no_thread_outlives_a_send: a send hung for 60 s");
        std::process::abort();
    });
    let gw = Gateway::start();
    leaves_no_thread("twilio", || {
        sms::send(&gw.twilio(), trust(), "h", "alice", "+15551234567", "1").unwrap()
    });
    // by host name: the name is looked up (on the calling thread)
    leaves_no_thread("webhook", || {
        sms::send(&gw.webhook(), trust(), "h", "alice", "+15551234567", "1").unwrap()
    });
    let mut c = gw.twilio();
    c.twilio.auth_token = "wrong".into();
    leaves_no_thread("twilio refused", || {
        sms::send(&c, trust(), "h", "alice", "+15551234567", "1").unwrap_err();
    });
    gw.control(json!({"mode": "slow", "delay": 3}));
    let mut c = gw.twilio();
    c.timeout_ms = 300;
    leaves_no_thread("twilio timeout", || {
        sms::send(&c, trust(), "h", "alice", "+15551234567", "1").unwrap_err();
    });

    let s = sink("starttls", false);
    leaves_no_thread("smtp", || {
        email::send(
            &s.cfg(SmtpTls::Starttls),
            trust(),
            "h",
            "bob",
            "bob@example.com",
            "1",
        )
        .unwrap()
    });
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = EmailConfig {
        smtp_host: "127.0.0.1".into(),
        smtp_port: silent.local_addr().unwrap().port(),
        tls: SmtpTls::Tls,
        from: "2fa@example.com".into(),
        timeout_ms: 300,
        ..EmailConfig::default()
    };
    leaves_no_thread("smtp deadline", || {
        email::send(&c, trust(), "h", "bob", "bob@example.com", "1").unwrap_err();
    });
}
