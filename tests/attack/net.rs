//! Network factors: nothing in clear, no secret in the log, no login
//! disturbing another's connection (issue 11, items 22 to 25).
//!
//! A "remote" server here is a stand-in on 127.0.0.1 reached through a
//! name that is not a loopback literal: the command under test runs in a
//! private mount namespace whose `/etc/hosts` maps `*.p2fa-net.test` to
//! 127.0.0.1 (and whose `/dev/log` is the Env's log socket, where a module
//! with a refused config logs). So a client that would talk to a remote
//! host in clear is caught doing it: the stand-in records what it got.

use crate::common::net::{Pki, SMS_CONTROL, SMS_LOG, Stub, json_lines, sms_gateway};
use crate::common::{Attempt, Env, mount_ns, output_text, system_user};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const PASSWORD: &str = "Net-imp0rt-Horse";
const MAIL_HOST: &str = "mail.p2fa-net.test";
const GW_HOST: &str = "gw.p2fa-net.test";
const SID: &str = "ACnetimport0123456789abcdef0123";
const TOKEN: &str = "tok-from-file-9f8e7d6c5b4a";

/// The test names in the namespace's /etc/hosts.
fn hosts() -> String {
    format!("127.0.0.1 localhost\n::1 localhost\n127.0.0.1 {MAIL_HOST} {GW_HOST}\n")
}

/// A login through libpam inside the namespace.
fn attempt_ns(env: &Env, user: &str, input: &str) -> Attempt {
    mount_ns::attempt(env, Some(&hosts()), &["p2fa", user, "authenticate"], input)
}

/// `2fa-enroll --config CONF args...` inside the namespace, no input.
fn enroll_ns(env: &Env, args: &[&str]) -> Output {
    let prefix = mount_ns::prefix(env, Some(&hosts()));
    Command::new(&prefix[0])
        .args(&prefix[1..])
        .arg(crate::common::enroll_bin())
        .arg("--config")
        .arg(&env.conf)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn write_secret(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// An SMTP sink (tests/mock/smtp_sink.py) and what it received.
struct Sink {
    stub: Stub,
    log: PathBuf,
    _pki: Pki,
}

fn smtp_sink(dir: &Path, tls: &str, extra: &[&str]) -> Sink {
    let pki = Pki::new(&dir.join(format!("pki-smtp-{tls}")));
    let log = dir.join(format!("mail-{tls}.jsonl"));
    let mut args = vec![
        "--log",
        log.to_str().unwrap(),
        "--tls",
        tls,
        "--cert",
        pki.cert.to_str().unwrap(),
        "--key",
        pki.key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let stub = Stub::start("smtp_sink.py", &args, dir);
    Sink {
        stub,
        log,
        _pki: pki,
    }
}

impl Sink {
    fn mails(&self) -> Vec<serde_json::Value> {
        json_lines(&self.log)
    }
}

/// The module's config-error line must name the problem.
fn assert_refused_config(a: &Attempt, why: &str) {
    assert!(!a.ok, "login succeeded: {}", a.output);
    assert!(
        a.log.contains("configuration error, denying"),
        "no config error logged: {}\n{}",
        a.log,
        a.output
    );
    assert!(a.log.contains(why), "expected {why:?} in: {}", a.log);
    assert!(
        !a.output.contains("Code sent"),
        "a code was sent: {}",
        a.output
    );
}

/// Item 22: `email.tls = "none"` to a host that is not a loopback
/// address sent the code (and would send the AUTH password) in clear.
/// Now the config is refused, by the module and by 2fa-enroll, naming the
/// key; the relay receives nothing. AUTH is never sent without TLS, even
/// to a local relay. A local relay without AUTH keeps working.
#[test]
fn email_in_clear_to_a_remote_host_is_refused() {
    let user = system_user("p2fa-ni-mail", PASSWORD);
    let env = Env::new();
    let sink = smtp_sink(env.root(), "none", &[]);
    let port = sink.stub.port;
    let mail_conf = |host: &str, extra: &str| {
        format!(
            "[email]\nenabled = true\nsmtp_host = \"{host}\"\nsmtp_port = {port}\ntls = \"none\"\n\
             from = \"2fa@example.com\"\nresend_after_seconds = 0\n{extra}"
        )
    };
    env.write_config(&mail_conf("127.0.0.1", ""));
    env.enroll_ok(
        &[
            "email",
            "--user",
            &user,
            "--address",
            "ni-mail@example.com",
            "--no-verify",
        ],
        "",
    );

    // A name for a remote host, and literal remote addresses.
    for host in [
        MAIL_HOST,
        "192.0.2.77",
        "[2001:db8::25]",
        "127.0.0.1.nip.io",
    ] {
        env.write_config(&mail_conf(host, ""));
        let out = enroll_ns(
            &env,
            &["email", "--user", &user, "--address", "x@example.com"],
        );
        let t = output_text(&out);
        assert!(!out.status.success(), "{host}: 2fa-enroll sent: {t}");
        assert!(
            t.contains("email.tls = \"none\"") && t.contains("loopback"),
            "{host}: 2fa-enroll does not say why: {t}"
        );
    }
    env.write_config(&mail_conf(MAIL_HOST, ""));
    let a = attempt_ns(&env, &user, "000000\n");
    assert_refused_config(&a, "email.tls = \"none\"");
    assert!(
        sink.mails().is_empty(),
        "a code went out in clear: {:?}",
        sink.mails()
    );

    // AUTH over a plain connection, even to a loopback relay: refused.
    let pw = env.root().join("smtp-pw");
    write_secret(&pw, "clear-pw-6a5b4c");
    let auth_sink = smtp_sink(
        env.root(),
        "none",
        &["--user", "mailer", "--password", "clear-pw-6a5b4c"],
    );
    let auth_conf = format!(
        "[email]\nenabled = true\nsmtp_host = \"localhost\"\nsmtp_port = {}\ntls = \"none\"\n\
         from = \"2fa@example.com\"\nusername = \"mailer\"\npassword_file = \"{}\"\n",
        auth_sink.stub.port,
        pw.display()
    );
    env.write_config(&auth_conf);
    let out = env.enroll(
        &["email", "--user", &user, "--address", "y@example.com"],
        "",
    );
    let t = output_text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("email.username"), "{t}");
    let a = attempt_ns(&env, &user, "000000\n");
    assert_refused_config(&a, "email.username");
    assert!(
        auth_sink.mails().is_empty(),
        "AUTH went out in clear: {:?}",
        auth_sink.mails()
    );

    // A local relay without AUTH: still allowed, the login works.
    for host in ["127.0.0.1", "localhost"] {
        env.write_config(&mail_conf(host, ""));
        let before = sink.mails().len();
        let out = env.enroll(
            &["email", "--user", &user, "--address", "ni-mail@example.com"],
            "000000\n000000\n000000\n",
        );
        assert!(
            !out.status.success(),
            "wrong code accepted: {}",
            output_text(&out)
        );
        assert!(
            sink.mails().len() > before,
            "{host}: nothing sent to the local relay: {}",
            output_text(&out)
        );
    }
}

/// A Twilio-compatible gateway and webhook (tests/mock/sms_gateway.py).
struct Gateway {
    stub: Stub,
    log: PathBuf,
    control: PathBuf,
    _pki: Pki,
}

fn gateway(dir: &Path, extra: &[&str]) -> Gateway {
    let pki = Pki::new(&dir.join("pki-gw"));
    let stub = sms_gateway(&pki, SID, TOKEN, "Bearer hook-key-31337", extra, dir);
    Gateway {
        stub,
        log: dir.join(SMS_LOG),
        control: dir.join(SMS_CONTROL),
        _pki: pki,
    }
}

/// `auth_token_file` for the gateway: TOKEN, root-only.
fn token_file(env: &Env) -> PathBuf {
    let path = env.root().join("twilio-token");
    write_secret(&path, TOKEN);
    path
}

/// Enrolls `user`'s phone without a confirming text.
fn enroll_phone(env: &Env, user: &str) {
    env.enroll_ok(
        &[
            "sms",
            "--user",
            user,
            "--phone",
            "+15551234567",
            "--no-verify",
        ],
        "",
    );
}

fn twilio_conf(base_url: &str, token_file: &Path, ca: &str) -> String {
    format!(
        "[sms]\nenabled = true\ngateway = \"twilio\"\n{ca}\n[sms.twilio]\nbase_url = \"{base_url}\"\n\
         account_sid = \"{SID}\"\nauth_token_file = \"{}\"\nfrom = \"+15550001111\"\n",
        token_file.display()
    )
}

/// Item 23: an `http://` gateway or webhook URL sent the account SID, the
/// token and the code in clear. Refused now (module and 2fa-enroll) unless
/// the host is a loopback address; the gateway receives nothing.
#[test]
fn sms_gateway_over_plain_http_is_refused() {
    let user = system_user("p2fa-ni-sms", PASSWORD);
    let env = Env::new();
    let token_file = token_file(&env);
    let gw = gateway(env.root(), &["--plain"]);
    let port = gw.stub.port;
    env.write_config(&twilio_conf(
        &format!("http://127.0.0.1:{port}"),
        &token_file,
        "",
    ));
    enroll_phone(&env, &user);
    let remote_twilio = twilio_conf(&format!("http://{GW_HOST}:{port}"), &token_file, "");
    let remote_hook = format!(
        "[sms]\nenabled = true\ngateway = \"webhook\"\n[sms.webhook]\n\
         url = \"http://{GW_HOST}:{port}/hook\"\n[sms.webhook.headers]\n\
         Authorization = \"Bearer hook-key-31337\"\n"
    );
    for (what, conf, key) in [
        ("twilio", &remote_twilio, "sms.twilio.base_url"),
        ("webhook", &remote_hook, "sms.webhook.url"),
    ] {
        env.write_config(conf);
        let out = enroll_ns(&env, &["sms", "--user", &user, "--phone", "+15557654321"]);
        let t = output_text(&out);
        assert!(!out.status.success(), "{what}: 2fa-enroll sent: {t}");
        assert!(
            t.contains(key) && t.contains("https"),
            "{what}: 2fa-enroll does not say why: {t}"
        );
        let a = attempt_ns(&env, &user, "000000\n");
        assert_refused_config(&a, key);
        assert!(
            json_lines(&gw.log).is_empty(),
            "{what}: credentials went out in clear: {:?}",
            json_lines(&gw.log)
        );
    }
}

/// Item 24: the Twilio token read from `auth_token_file` was not redacted
/// from a logged gateway error that echoed it. A gateway that repeats the
/// credentials it received (plain and as the Basic header) in its error:
/// the log line names the failure, but holds neither form of the token.
#[test]
fn gateway_error_never_logs_a_token_loaded_from_a_file() {
    let user = system_user("p2fa-ni-echo", PASSWORD);
    let env = Env::new();
    let token_file = token_file(&env);
    let gw = gateway(env.root(), &[]);
    fs::write(&gw.control, r#"{"mode": "echo"}"#).unwrap();
    let ca = format!("ca_file = \"{}\"", gw._pki.ca.display());
    env.write_config(&twilio_conf(
        &format!("https://127.0.0.1:{}", gw.stub.port),
        &token_file,
        &ca,
    ));
    enroll_phone(&env, &user);
    let a = env.attempt("p2fa", &user, "\n", None);
    assert!(!a.ok, "{}", a.output);
    assert!(
        a.log.contains("bad request from"),
        "the gateway's error is not logged: {}",
        a.log
    );
    let basic = base64_std(&format!("{SID}:{TOKEN}"));
    for secret in [TOKEN, basic.as_str()] {
        assert!(
            !a.log.contains(secret),
            "secret {secret:?} in the log: {}",
            a.log
        );
        assert!(!a.output.contains(secret), "{}", a.output);
    }
    // The same through 2fa-enroll's confirmation send.
    let out = env.enroll(&["sms", "--user", &user, "--phone", "+15557654321"], "");
    let t = output_text(&out);
    assert!(!out.status.success(), "{t}");
    for secret in [TOKEN, basic.as_str()] {
        assert!(!t.contains(secret), "secret {secret:?} shown: {t}");
    }
}

fn base64_std(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Item 25: the SMTP overall deadline shut down every socket to the SMTP
/// port opened since its send began, so in a process running two logins
/// at once, one login's deadline killed the other's connection. Two sends
/// in one process to one relay: the relay stalls the first (a "250-" line
/// every 0.2 s, so only the overall deadline ends it); the second is slow
/// but within its own deadline and must be delivered.
#[test]
fn concurrent_smtp_sends_time_out_only_their_own_connection() {
    use p2fa_core::config::{EmailConfig, SmtpTls};
    use p2fa_core::secure_fs::Trust;
    use p2fa_net::email;
    let trust = Trust::test_runner;
    let dir = tempfile::tempdir().unwrap();
    let sink = smtp_sink(
        dir.path(),
        "starttls",
        &[
            "--trickle",
            "stalled@example.com=30",
            "--trickle",
            "slow@example.com=2.5",
        ],
    );
    let cfg = |timeout_ms: u64| EmailConfig {
        enabled: true,
        smtp_host: "localhost".into(),
        smtp_port: sink.stub.port,
        tls: SmtpTls::Starttls,
        from: "2fa@example.com".into(),
        ca_file: sink._pki.ca.to_str().unwrap().into(),
        connect_timeout_ms: 3000,
        timeout_ms,
        ..EmailConfig::default()
    };
    let stalled_cfg = cfg(1500);
    let slow_cfg = cfg(10_000);
    let stalled = std::thread::spawn(move || {
        let t = Instant::now();
        let r = email::send(
            &stalled_cfg,
            trust(),
            "h",
            "a",
            "stalled@example.com",
            "111111",
        );
        (r, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let slow = std::thread::spawn(move || {
        let t = Instant::now();
        let r = email::send(&slow_cfg, trust(), "h", "b", "slow@example.com", "222222");
        (r, t.elapsed())
    });
    let (r1, t1) = stalled.join().unwrap();
    let (r2, t2) = slow.join().unwrap();
    let e = r1.expect_err("the stalled send succeeded");
    assert!(e.detail().contains("no answer within"), "{e}");
    assert!(t1 < Duration::from_millis(3000), "stalled send took {t1:?}");
    assert!(
        r2.is_ok(),
        "the other login's send was cut by the first one's deadline after {t2:?}: {r2:?}"
    );
    let m = sink.mails();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["rcpt_tos"], serde_json::json!(["slow@example.com"]));
    assert!(m[0]["data"].as_str().unwrap().contains("222222"));
}
