//! 2fad (issue 11, section B): an ordinary user's shell asking the broker
//! for factors without proving one, a daemon that recreates a missing
//! store, one user starving the socket, abandoned and cloned WebAuthn
//! ceremonies, a user reading their own login result, and approval pages
//! without context. Everything goes through the real 2fad socket (as a
//! real system user, via runuser), its real web port, the real PAM module
//! and a real Chromium with a virtual authenticator.

use crate::common::daemon::{Browser, CLIENT, Daemon, exists, register_key, token_of, url_in};
use crate::common::interactive::Session;
use crate::common::{Env, SECRET, output_text, parse_backup_codes, system_user, totp};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const PW: &str = "Attack-p2fa-9";
const SECRET2: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const WAIT: Duration = Duration::from_secs(60);
const STATUS: &str = r#"{"version":1,"op":"status"}"#;
const BACKUP: &str = r#"{"version":1,"op":"backup"}"#;

fn uid(user: &str) -> String {
    let o = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// A fresh store with `users` known to it and nothing enrolled.
fn fresh(users: &[&str]) -> Env {
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    for u in users {
        let _ = env.enroll(&["reset", "--user", u], "");
    }
    env
}

fn backup_count(env: &Env, user: &str) -> String {
    env.sql(&format!(
        "SELECT count(*) FROM backup_codes WHERE user = '{user}' AND used_at IS NULL"
    ))
}

fn error_code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("")
}

/// Item 7: once a user has a factor, no change without a proof of one,
/// checked and counted like a login.
#[test]
fn a_users_shell_cannot_add_factors_without_proving_one() {
    let alice = system_user("p2fa-atk-d1", PW); // TOTP only
    let bob = system_user("p2fa-atk-d2", PW); // backup codes only
    let env = fresh(&[&alice, &bob]);
    env.enroll_totp(&alice);
    let bob_codes = env.enroll_backup(&bob, 5);
    let d = Daemon::start(&env, "", "");

    // Raw requests, as a hijacked shell would send them: refused.
    let r = d.ask(&alice, BACKUP);
    assert_eq!(
        error_code(&r),
        "needs_current",
        "backup codes for free: {r}"
    );
    let r = d.ask(
        &alice,
        r#"{"version":1,"op":"webauthn_register","name":"evil"}"#,
    );
    assert_eq!(error_code(&r), "needs_current", "a key link for free: {r}");
    totp_without_proof(&d, &bob);
    assert_eq!(backup_count(&env, &alice), "0");
    assert!(env.status_json(&bob)["otp"].is_null());

    // Through 2fa-enroll: no answer, nothing; a wrong code is counted.
    let o = d.enroll_as(&alice, &["backup"], "");
    assert!(!o.status.success(), "{}", output_text(&o));
    assert_eq!(backup_count(&env, &alice), "0");
    let wrong = crate::common::wrong_totp(SECRET, crate::common::now());
    let o = d.enroll_as(&alice, &["backup"], &format!("{wrong}\n"));
    assert!(!o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("not a valid current code"),
        "{}",
        output_text(&o)
    );
    assert_eq!(env.status_json(&alice)["failures"], 1);
    assert_eq!(backup_count(&env, &alice), "0");

    // A current code: accepted, recorded as a success of 2fad, logged.
    crate::common::fresh_step(8);
    let _ = env.logs();
    let o = d.enroll_as(&alice, &["backup"], &format!("{}\n", totp(SECRET, None)));
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(
        parse_backup_codes(&output_text(&o)).len(),
        15,
        "{}",
        output_text(&o)
    );
    let st = env.status_json(&alice);
    assert_eq!(st["failures"], 0, "{st}");
    assert_eq!(st["last_success"]["service"], "2fad", "{st}");
    let logs = env.logs().join("\n");
    let added = format!(
        "factor added user={alice} factor=backup by uid={}",
        uid(&alice)
    );
    assert!(
        logs.lines()
            .any(|l| l.starts_with("<85>") && l.contains(&added) && l.contains("proof=totp")),
        "no notice (authpriv.notice = <85>) {added:?}: {logs}"
    );

    // Bob proves with a backup code; TOTP is then added.
    crate::common::fresh_step(8);
    let o = d.enroll_as(
        &bob,
        &["totp", "--secret", SECRET2, "--no-qr"],
        &format!("{}\n{}\n", bob_codes[0], totp(SECRET2, None)),
    );
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(env.status_json(&bob)["otp"]["kind"], "totp");
    assert_eq!(backup_count(&env, &bob), "4", "the proof was spent");
}

/// Bob (backup codes only) confirms a new TOTP secret with a valid code
/// from it, but proves nothing about his existing factor.
fn totp_without_proof(d: &Daemon, bob: &str) {
    crate::common::fresh_step(8);
    let lines = d.raw(
        bob,
        &[
            &format!(r#"{{"version":1,"op":"totp_begin","secret":"{SECRET2}"}}"#),
            &format!(
                r#"{{"version":1,"op":"totp_finish","code":"{}"}}"#,
                totp(SECRET2, None)
            ),
        ],
    );
    assert!(
        lines.len() == 2 && lines[1].contains(r#""code":"needs_current""#),
        "TOTP added without proof: {lines:?}"
    );
}

/// Item 7: a user whose only factor is a security key proves with an
/// assertion: a 2fad login ceremony whose approval is a single-use proof
/// bound to that user and that change. (The review's case: a WebAuthn-only
/// user got 15 backup codes for the asking and logged in with one.)
#[test]
fn a_webauthn_only_user_proves_with_an_assertion() {
    let carol = system_user("p2fa-atk-w1", PW);
    let env = fresh(&[&carol]);
    let d = Daemon::start(&env, "", "");
    let mut browser = Browser::start();
    register_key(&env, &mut browser, &carol, "k1");

    let r = d.ask(&carol, BACKUP);
    assert_eq!(error_code(&r), "needs_current", "{r}");
    assert_eq!(backup_count(&env, &carol), "0");

    // 2fa-enroll backup: a link, the assertion, then the codes.
    let _ = env.logs();
    let (verdict, out, ok) = d.enroll_with_browser(&carol, &["backup"], &mut browser, "");
    assert!(verdict.starts_with("done"), "{verdict}\n{out}");
    assert!(ok, "{out}");
    assert_eq!(parse_backup_codes(&out).len(), 15, "{out}");
    let logs = env.logs().join("\n");
    assert!(
        logs.contains(&format!(
            "factor added user={carol} factor=backup by uid={}",
            uid(&carol)
        )) && logs.contains("proof=webauthn"),
        "{logs}"
    );

    // A proof serves once, and only the change it was given for.
    let prove = |browser: &mut Browser, purpose: &str| -> String {
        let r = d.ask(
            &carol,
            &format!(r#"{{"version":1,"op":"webauthn_prove","purpose":"{purpose}"}}"#),
        );
        let url = r["url"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}"))
            .to_string();
        let verdict = browser.cmd(&format!("open {url}"));
        assert!(verdict.starts_with("done"), "{verdict}");
        token_of(&url)
    };
    let tok = prove(&mut browser, "backup");
    let with = |op: &str, tok: &str| {
        d.ask(
            &carol,
            &format!(r#"{{"version":1,{op},"proof":{{"webauthn":"{tok}"}}}}"#),
        )
    };
    let r = with(r#""op":"webauthn_register","name":"k2""#, &tok);
    assert_eq!(error_code(&r), "wrong_proof", "{r}");
    let r = with(r#""op":"backup""#, &tok);
    assert_eq!(r["result"], "backup_codes", "{r}");
    let r = with(r#""op":"backup""#, &tok);
    assert_eq!(error_code(&r), "wrong_proof", "reused: {r}");
    // Someone else's (root's) login ceremony is no proof either.
    let r = d.ask(
        "root",
        &format!(r#"{{"version":1,"user":"{carol}","op":"webauthn_login"}}"#),
    );
    let login_tok = token_of(r["url"].as_str().unwrap());
    assert!(
        browser
            .cmd(&format!("open {}", r["url"].as_str().unwrap()))
            .starts_with("done")
    );
    let r = with(r#""op":"backup""#, &login_tok);
    assert_eq!(error_code(&r), "wrong_proof", "{r}");

    // A refused (tampered) assertion is counted like a failed login.
    let before = env.status_json(&carol)["failures"].as_u64().unwrap();
    let r = d.ask(
        &carol,
        r#"{"version":1,"op":"webauthn_prove","purpose":"backup"}"#,
    );
    let url = r["url"].as_str().unwrap().to_string();
    let r = browser.cmd(&format!("capture {url}"));
    let mut body: Value = serde_json::from_str(r.strip_prefix("body ").unwrap()).unwrap();
    tamper_signature(&mut body);
    let st = d.http_post(
        &format!("/api/finish/{}", token_of(&url)),
        &body.to_string(),
    );
    assert!(st.contains(" 400"), "{st}");
    let r = with(r#""op":"backup""#, &token_of(&url));
    assert_ne!(r["result"], "backup_codes", "{r}");
    assert_eq!(
        env.status_json(&carol)["failures"].as_u64().unwrap(),
        before + 1
    );
}

/// Flips a bit of the assertion's signature.
fn tamper_signature(body: &mut Value) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let sig = body["response"]["signature"]
        .as_str()
        .unwrap()
        .trim_end_matches('=');
    let mut bytes = b64.decode(sig).unwrap();
    let n = bytes.len() - 1;
    bytes[n] ^= 1;
    body["response"]["signature"] = Value::String(b64.encode(bytes));
}

/// Item 8: 2fad never creates the store or the host key; it says
/// "unavailable" until root runs `2fa-enroll init`.
#[test]
fn twofad_never_creates_the_store_or_the_host_key() {
    let dave = system_user("p2fa-atk-s1", PW);
    let env = Env::new();
    let d = Daemon::start(&env, "", "");
    let root_status = format!(r#"{{"version":1,"user":"{dave}","op":"status"}}"#);
    for (who, frame) in [
        (dave.as_str(), STATUS),
        (dave.as_str(), BACKUP),
        (
            dave.as_str(),
            r#"{"version":1,"op":"webauthn_register","name":"k"}"#,
        ),
        ("root", root_status.as_str()),
    ] {
        let r = d.ask(who, frame);
        assert_eq!(error_code(&r), "unavailable", "{who} {frame}: {r}");
    }
    let o = d.enroll_as(&dave, &["backup"], "");
    assert!(!o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("unavailable"),
        "{}",
        output_text(&o)
    );
    assert!(!exists(&env.db), "2fad created the store");
    assert!(
        !exists(env.db.parent().unwrap()),
        "2fad created the store directory"
    );
    assert!(!exists(&env.key), "2fad created a host key");

    // root's init creates them; then 2fad serves.
    env.enroll_ok(&["init"], "");
    let r = d.ask(&dave, STATUS);
    assert_eq!(r["result"], "status", "{r}");
    // A key that goes missing later is not replaced by a new one (that
    // would orphan every sealed secret).
    std::fs::remove_file(&env.key).unwrap();
    let r = d.ask(&dave, BACKUP);
    assert_eq!(error_code(&r), "unavailable", "{r}");
    assert!(!exists(&env.key), "2fad created a new host key");
}

/// Starts the raw client holding `n` connections as `user`, each kept
/// busy with a request a second (idle ones 2fad closes after 5 s); returns
/// the child (stdin open: they stay held) and what each connection saw.
fn hold(d: &Daemon, user: &str, n: usize) -> (std::process::Child, Vec<String>) {
    let mut child = Command::new("runuser")
        .args(["-u", user, "--", "/usr/bin/python3", CLIENT, "hold"])
        .arg(&d.socket)
        .arg(n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "client ended: {seen:?}"
        );
        if line.trim() == "held" {
            break;
        }
        seen.push(line.trim().to_string());
    }
    (child, seen)
}

fn release(mut child: std::process::Child) {
    drop(child.stdin.take());
    let _ = child.wait();
}

/// Item 10: one user holding connections takes only their own share:
/// root (and so the PAM module) and other users are still served, and the
/// extra client is told "busy" (not "Broken pipe").
#[test]
fn one_user_holding_connections_does_not_starve_2fad() {
    let eve = system_user("p2fa-atk-c1", PW);
    let frank = system_user("p2fa-atk-c2", PW);
    let gina = system_user("p2fa-atk-c3", PW);
    let wendy = system_user("p2fa-atk-c4", PW);
    let env = fresh(&[&eve, &frank, &gina, &wendy]);
    let d = Daemon::start(
        &env,
        "max_clients = 6\nmax_clients_per_user = 2\nreserved_for_root = 2",
        "",
    );
    let mut browser = Browser::start();
    register_key(&env, &mut browser, &wendy, "k");

    // Eve opens as many connections as 2fad serves at once, and keeps
    // them.
    let (held, seen) = hold(&d, &eve, 6);
    assert_eq!(
        seen.iter().filter(|l| *l == "served").count(),
        2,
        "per-user limit: {seen:?}"
    );
    assert!(
        seen.iter()
            .filter(|l| l.starts_with("reply"))
            .all(|l| l.contains(r#""code":"busy""#) && l.contains("connections")),
        "{seen:?}"
    );
    // Root is served, and so is the PAM module (a WebAuthn login's link).
    let r = d.ask("root", STATUS);
    assert_eq!(r["result"], "status", "{r}");
    {
        let mut s = Session::start(&env.svc_dir, "p2fa", &wendy);
        s.expect_prompt("Approve this login", WAIT);
    }
    // Another user is served; Eve's next client is told why, clearly.
    let r = d.ask(&frank, STATUS);
    assert_eq!(r["result"], "status", "{r}");
    let o = d.enroll_as(&eve, &["status"], "");
    assert!(!o.status.success(), "{}", output_text(&o));
    assert!(output_text(&o).contains("busy"), "{}", output_text(&o));
    assert!(
        !output_text(&o).contains("Broken pipe"),
        "{}",
        output_text(&o)
    );

    // Ordinary users together leave root its reserved slots.
    let (held_f, seen_f) = hold(&d, &frank, 2);
    assert!(seen_f.iter().all(|l| l == "served"), "{seen_f:?}");
    let r = d.ask(&gina, STATUS);
    assert_eq!(error_code(&r), "busy", "{r}");
    let r = d.ask("root", STATUS);
    assert_eq!(r["result"], "status", "{r}");

    release(held);
    release(held_f);
    std::thread::sleep(Duration::from_millis(300));
    let r = d.ask(&eve, STATUS);
    assert_eq!(r["result"], "status", "served again: {r}");
}

/// Item 10: a frame sent one byte at a time (each byte well inside any
/// per-read timeout) is cut when the frame's own deadline passes.
#[test]
fn a_trickled_frame_is_cut_at_the_frame_deadline() {
    let eve = system_user("p2fa-atk-c5", PW);
    let env = fresh(&[&eve]);
    let d = Daemon::start(&env, "", "");
    let o = Command::new("runuser")
        .args(["-u", &eve, "--", "/usr/bin/python3", CLIENT, "trickle"])
        .arg(&d.socket)
        .arg(STATUS)
        .arg("0.5")
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let secs: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(secs < 9.0, "held for {secs} s: {line}");
    assert!(!line.contains(r#""result":"status""#), "served: {line}");
}

/// Item 11: logins abandoned at the link (input ends, or Enter without
/// approving) free their link; registration links have their own quota.
#[test]
fn abandoned_login_ceremonies_do_not_use_up_the_link_quota() {
    let hank = system_user("p2fa-atk-q1", PW);
    let env = fresh(&[&hank]);
    let d = Daemon::start(&env, "", "max_pending_per_user = 3");
    let mut browser = Browser::start();
    register_key(&env, &mut browser, &hank, "k");

    for input in ["", "", "", "\n\n\n", "\n\n\n"] {
        let a = env.attempt("p2fa", &hank, input, None);
        assert!(!a.ok, "{}", a.output);
        assert!(a.output.contains("Approve this login"), "{}", a.output);
    }
    let login = |browser: &mut Browser| {
        let mut s = Session::start(&env.svc_dir, "p2fa", &hank);
        let p = s.expect_prompt("Approve this login", WAIT);
        assert!(
            browser
                .cmd(&format!("open {}", url_in(&p)))
                .starts_with("done")
        );
        s.answer("");
        let o = s.finish(WAIT);
        assert!(o.ok, "{}", o.transcript);
    };
    login(&mut browser);

    // Registration links (root may open them for anyone) do not take
    // login links away.
    for i in 0..3 {
        let r = d.ask(
            "root",
            &format!(r#"{{"version":1,"user":"{hank}","op":"webauthn_register","name":"r{i}"}}"#),
        );
        assert_eq!(r["result"], "link", "{r}");
    }
    login(&mut browser);
}

/// Item 12: a cloned key answering a ceremony that started before two
/// newer logins is refused (its counter is not above the stored one),
/// logged at warning level and shown by `2fa-enroll status`.
#[test]
fn a_clone_answering_a_stale_ceremony_is_refused_and_reported() {
    let ivan = system_user("p2fa-atk-k1", PW);
    let env = fresh(&[&ivan]);
    let d = Daemon::start(&env, "", "");
    let mut browser = Browser::start();
    register_key(&env, &mut browser, &ivan, "yubi");
    let start = |d: &Daemon| -> String {
        let r = d.ask(
            "root",
            &format!(r#"{{"version":1,"user":"{ivan}","op":"webauthn_login"}}"#),
        );
        r["url"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}"))
            .to_string()
    };
    let result = |tok: &str| {
        d.ask(
            "root",
            &format!(r#"{{"version":1,"user":"{ivan}","op":"webauthn_result","token":"{tok}"}}"#),
        )
    };

    // Ceremony A starts; its answer is held back (the clone's).
    let stale = start(&d);
    let r = browser.cmd(&format!("capture {stale}"));
    let body = r
        .strip_prefix("body ")
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();
    // Two genuine logins move the stored counter on.
    for _ in 0..2 {
        let url = start(&d);
        assert!(browser.cmd(&format!("open {url}")).starts_with("done"));
        assert_eq!(result(&token_of(&url))["result"], "done");
    }
    let _ = env.logs();
    let st = d.http_post(&format!("/api/finish/{}", token_of(&stale)), &body);
    assert!(st.contains(" 400"), "stale clone accepted: {st}");
    let r = result(&token_of(&stale));
    assert_eq!(error_code(&r), "failed", "{r}");
    let logs = env.logs().join("\n");
    assert!(
        logs.lines().any(|l| l.starts_with("<84>")
            && l.contains("clone")
            && l.contains(&format!("user={ivan}"))
            && l.contains("key=yubi")
            && l.contains("stored=")),
        "{logs}"
    );
    let st = env.status_json(&ivan);
    assert_eq!(st["key_warnings"][0]["key"], "yubi", "{st}");
    let shown = env.enroll_ok(&["status", "--user", &ivan], "");
    assert!(
        shown.contains("possible clone") && shown.contains("yubi"),
        "{shown}"
    );
    // The user sees it too, through 2fad.
    let o = d.enroll_as(&ivan, &["status"], "");
    assert!(
        output_text(&o).contains("possible clone"),
        "{}",
        output_text(&o)
    );
}

/// Item 13: only root (the PAM module) reads a login ceremony's result: a
/// user's shell reading it first would consume it and fail the login.
#[test]
fn a_user_cannot_read_their_own_login_result() {
    let judy = system_user("p2fa-atk-r1", PW);
    let env = fresh(&[&judy]);
    let d = Daemon::start(&env, "", "");
    let mut browser = Browser::start();
    register_key(&env, &mut browser, &judy, "k");

    let mut s = Session::start(&env.svc_dir, "p2fa", &judy);
    let p = s.expect_prompt("Approve this login", WAIT);
    let url = url_in(&p);
    assert!(browser.cmd(&format!("open {url}")).starts_with("done"));
    let r = d.ask(
        &judy,
        &format!(
            r#"{{"version":1,"op":"webauthn_result","token":"{}"}}"#,
            token_of(&url)
        ),
    );
    assert_eq!(error_code(&r), "denied", "{r}");
    s.answer("");
    let o = s.finish(WAIT);
    assert!(o.ok, "{}", o.transcript);
}

/// Item 14: the page says whose login it approves (user, host, service,
/// source address, time) and shows the matching code the prompt shows.
#[test]
fn the_approval_page_shows_the_login_and_a_matching_code() {
    let kate = system_user("p2fa-atk-p1", PW);
    let env = fresh(&[&kate]);
    let d = Daemon::start(&env, "", "");
    let mut browser = Browser::start();
    register_key(&env, &mut browser, &kate, "k");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();

    let mut s = Session::start_from(&env.svc_dir, "p2fa", &kate, Some("192.0.2.7"));
    let p = s.expect_prompt("Approve this login", WAIT);
    let code: String = p
        .split("matching code ")
        .nth(1)
        .unwrap_or_else(|| panic!("no matching code in the prompt: {p}"))
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert_eq!(code.len(), 4, "{p}");
    let url = url_in(&p);
    let (status, body) = d.http_get(&format!("/api/options/{}", token_of(&url)));
    assert!(status.contains(" 200"), "{status}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let c = &v["options"]["context"];
    assert_eq!(c["user"], kate.as_str(), "{v}");
    assert_eq!(c["host"], host.as_str(), "{v}");
    assert_eq!(c["service"], "p2fa", "{v}");
    assert_eq!(c["rhost"], "192.0.2.7", "{v}");
    assert_eq!(c["code"], code.as_str(), "{v}");
    let t = c["time"].as_i64().unwrap_or(0);
    assert!((t - crate::common::now()).abs() < 120, "{v}");

    assert!(browser.cmd(&format!("open {url}")).starts_with("done"));
    let shown = browser.cmd("text context");
    for want in [
        kate.as_str(),
        host.as_str(),
        "p2fa",
        "192.0.2.7",
        code.as_str(),
    ] {
        assert!(shown.contains(want), "{want} not on the page: {shown}");
    }
    s.answer("");
    let o = s.finish(WAIT);
    assert!(o.ok, "{}", o.transcript);

    // A registration page says what it registers, for whom.
    let r = d.ask(
        "root",
        &format!(r#"{{"version":1,"user":"{kate}","op":"webauthn_register","name":"laptop"}}"#),
    );
    let (_, body) = d.http_get(&format!("/api/options/{}", r["token"].as_str().unwrap()));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["options"]["context"]["user"], kate.as_str(), "{v}");
    assert_eq!(v["options"]["context"]["action"], "register", "{v}");
    assert_eq!(v["options"]["context"]["code"], r["code"], "{v}");
}
