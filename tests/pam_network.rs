//! SMS, e-mail and Duo end to end: the built module loaded by the real
//! libpam (tests/c/pam_once.c, prompt by prompt) and by a real sshd, with
//! the production clients talking to the local stand-ins. Also checks that
//! no thread outlives a PAM call that went over the network.

mod common;

use common::interactive::Session;
use common::net::{
    Pki, Stub, closed_port, duo_conf, duo_server, json_lines, mail_env, sms_env, wait_code,
};
use common::sshd::Sshd;
use common::{Env, system_user};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "Netw0rk-p2fa-Horse";

/// Runs `2fa-enroll` with a confirmation code that only exists once the
/// command has sent it: feeds stdin from a thread that waits for it.
fn enroll_confirmed(env: &Env, args: &[&str], log: &Path, field: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(common::enroll_bin())
        .arg("--config")
        .arg(&env.conf)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let before = json_lines(log).len();
    let code = wait_code(log, before + 1, field);
    writeln!(child.stdin.take().unwrap(), "{code}").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn email_code_through_libpam_and_sshd() {
    let user = system_user("p2fa-net1", PASSWORD);
    let env = Env::new();
    let (mail, conf) = mail_env(env.root());
    env.write_config(&conf);
    // Wrong confirmation code: nothing saved.
    let out = env.enroll(
        &["email", "--user", &user, "--address", "net1@example.com"],
        "000000\n000001\n000002\n",
    );
    assert!(!out.status.success());
    assert_eq!(env.status_json(&user)["email"], serde_json::Value::Null);
    let text = enroll_confirmed(
        &env,
        &["email", "--user", &user, "--address", "Net1@Example.com"],
        &mail.log,
        "data",
    );
    assert!(text.contains("N***@example.com"), "{text}");
    assert_eq!(env.status_json(&user)["email"], "Net1@example.com");

    // Only factor is e-mail: the code is sent straight away.
    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    let p = s.expect_prompt("Code sent to N***@example.com: ", WAIT);
    assert!(!p.contains("Net1@"), "{p}");
    let code = wait_code(&mail.log, 3, "data");
    s.answer(&code);
    let o = s.finish(WAIT);
    assert!(o.ok, "{}", o.transcript);
    assert_eq!(
        o.threads_after, o.threads_before,
        "a thread outlived the PAM call:\n{}",
        o.transcript
    );

    // Over ssh: password, then the e-mailed code (known only after the prompt).
    let sshd = Sshd::start(&env, "");
    let answer_file = env.root().join("mailed-code");
    let log = mail.log.clone();
    let af = answer_file.clone();
    let feeder = std::thread::spawn(move || {
        let code = wait_code(&log, 4, "data");
        std::fs::write(af, code).unwrap();
    });
    let pw = format!("password={PASSWORD}");
    let af = format!("code sent={}", answer_file.display());
    let out = sshd.login(&user, &["--answer", &pw, "--answer-file", &af]);
    feeder.join().unwrap();
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{t}\n{}", sshd.log_text());
    assert!(t.contains("prompt: Code sent to N***@example.com: "), "{t}");
}

#[test]
fn sms_code_from_the_menu_and_gateway_failure() {
    let user = system_user("p2fa-net2", PASSWORD);
    let env = Env::new();
    let (sms, conf) = sms_env(env.root());
    env.write_config(&conf);
    env.enroll_totp(&user);
    let out = env.enroll(&["sms", "--user", &user, "--phone", "555 123 4567"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("country code"));
    enroll_confirmed(
        &env,
        &["sms", "--user", &user, "--phone", "+1 555 123 4567"],
        &sms.log,
        "body",
    );
    let logs = env.collect_logs();

    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    s.expect_prompt("Verification code, or 1 sms: ", WAIT);
    s.answer("sms");
    s.expect_prompt("Code sent to +1 *** *** 4567: ", WAIT);
    let code = wait_code(&sms.log, 2, "body");
    assert_eq!(json_lines(&sms.log)[1]["to"], "+15551234567");
    s.answer(&code);
    let o = s.finish(WAIT);
    assert!(o.ok, "{}", o.transcript);
    assert_eq!(o.threads_after, o.threads_before, "{}", o.transcript);

    // Gateway down with a 500: clear message, denied, no code left behind.
    std::fs::write(&sms.control, json!({"mode": "500"}).to_string()).unwrap();
    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    s.expect_prompt("1 sms", WAIT);
    s.answer("1");
    let o = s.finish(WAIT);
    assert!(!o.ok);
    assert!(
        o.transcript.contains("Could not send the SMS code"),
        "{}",
        o.transcript
    );
    assert_eq!(o.threads_after, o.threads_before);
    // Slow gateway: bounded by timeout_ms.
    std::fs::write(
        &sms.control,
        json!({"mode": "slow", "delay": 8}).to_string(),
    )
    .unwrap();
    let t = Instant::now();
    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    s.expect_prompt("1 sms", WAIT);
    s.answer("sms");
    let o = s.finish(WAIT);
    assert!(!o.ok);
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    let lines = logs.finish().join("\n");
    assert!(lines.contains("factor=sms reason=send-failed"), "{lines}");
    assert!(lines.contains("gateway timed out"), "{lines}");
    assert!(!lines.contains(&code), "no code in the log");
}

struct Duo {
    _stub: Stub,
    log: PathBuf,
    scenario: PathBuf,
    _pki: Pki,
}

fn duo_env(dir: &Path, failmode: &str) -> (Duo, String) {
    let pki = Pki::new(&dir.join("pki-duo"));
    let log = dir.join("duo.jsonl");
    let scenario = dir.join("duo-scenario.json");
    std::fs::write(
        &scenario,
        json!({
            "p2fa-net3": {"preauth": "auth", "push": "approve", "passcodes": ["7654321"],
                "devices": [{"device": "DP1", "display_name": "iPhone (XXX-XXX-0100)",
                             "capabilities": ["push", "phone", "sms"]}]},
        })
        .to_string(),
    )
    .unwrap();
    let stub = duo_server(&pki.cert, &pki.key, &scenario, &log, &[], dir);
    let conf = duo_conf(dir, stub.port, &pki, failmode);
    (
        Duo {
            _stub: stub,
            log,
            scenario,
            _pki: pki,
        },
        conf,
    )
}

#[test]
fn duo_push_passcode_and_deny_through_libpam() {
    let user = system_user("p2fa-net3", PASSWORD);
    let env = Env::new();
    let (duo, conf) = duo_env(env.root(), "secure");
    env.write_config(&conf);
    let out = env.enroll_ok(&["duo", "--user", &user], "");
    assert!(
        out.contains("iPhone (XXX-XXX-0100) (push, phone, sms)"),
        "{out}"
    );
    env.enroll_ok(&["default", "push", "--user", &user], "");

    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    s.expect_prompt(
        "Verification code, or 1 push, 2 phone, 3 sms [Enter: push]: ",
        WAIT,
    );
    s.answer("");
    s.expect_prompt(
        "Duo push sent to iPhone (XXX-XXX-0100). Approve it, then press Enter",
        WAIT,
    );
    s.answer("");
    let o = s.finish(WAIT);
    assert!(o.ok, "{}", o.transcript);
    assert_eq!(o.threads_after, o.threads_before, "{}", o.transcript);
    let reqs = json_lines(&duo.log);
    assert!(reqs.iter().all(|r| r["verified"] == true), "{reqs:?}");
    let push = reqs
        .iter()
        .find(|r| r["params"]["factor"] == "push")
        .unwrap();
    assert!(
        push["params"]["pushinfo"]
            .as_str()
            .unwrap()
            .contains("%28p2fa%29"),
        "{push}"
    );

    // A Duo passcode typed at the first prompt.
    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    s.expect_prompt("[Enter: push]", WAIT);
    s.answer("7654321");
    assert!(s.finish(WAIT).ok);

    // A denied push fails and counts.
    let mut sc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&duo.scenario).unwrap()).unwrap();
    sc["p2fa-net3"]["push"] = json!("deny");
    std::fs::write(&duo.scenario, sc.to_string()).unwrap();
    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    s.expect_prompt("[Enter: push]", WAIT);
    s.answer("push");
    s.expect_prompt("Duo push sent", WAIT);
    s.answer("");
    let o = s.finish(WAIT);
    assert!(!o.ok);
    assert!(
        o.transcript.contains("The request was denied."),
        "{}",
        o.transcript
    );
    assert_eq!(env.status_json(&user)["failures"], 1);
}

#[test]
fn duo_failmode_when_duo_is_down() {
    let user = system_user("p2fa-net4", PASSWORD);
    let env = Env::new();
    let pki = Pki::new(&env.root().join("pki"));
    let down = closed_port();
    env.write_config(&duo_conf(env.root(), down, &pki, "secure"));
    env.enroll_ok(&["duo", "--user", &user, "--no-check"], "");
    // failmode=safe lets the user through with PAM_IGNORE; the stack of a
    // host where pam_2fa is the only auth module ends with pam_permit.
    env.service_key_and_code("p2fa", "");
    let attempt = |env: &Env| {
        let s = Session::start(&env.svc_dir, "p2fa", &user);
        s.finish(WAIT)
    };
    let o = attempt(&env);
    assert!(!o.ok, "secure failmode let a login in:\n{}", o.transcript);
    assert!(
        o.transcript.contains("result 9 "),
        "PAM_AUTHINFO_UNAVAIL: {}",
        o.transcript
    );
    env.write_config(&duo_conf(env.root(), down, &pki, "safe"));
    let o = attempt(&env);
    assert!(o.ok, "{}\n{:?}", o.transcript, env.logs());
    assert!(o.transcript.contains("failmode safe"), "{}", o.transcript);
    // A Duo that accepts the connection and never answers is "down" too,
    // within timeout_ms (1.5 s).
    let (duo, _) = duo_env(env.root(), "safe");
    std::fs::write(&duo.scenario, json!({"*mode": "hang"}).to_string()).unwrap();
    env.write_config(&duo_conf(env.root(), duo._stub.port, &duo._pki, "safe"));
    let t = Instant::now();
    let o = attempt(&env);
    assert!(o.ok, "{}", o.transcript);
    // Not a speed check: the stand-in never answers, so without the
    // timeout this login would hang until WAIT. The margin covers a busy
    // machine (process start, lock waits).
    assert!(t.elapsed() < Duration::from_secs(12), "{:?}", t.elapsed());
    env.write_config(&duo_conf(env.root(), duo._stub.port, &duo._pki, "secure"));
    assert!(!attempt(&env).ok);
    // With TOTP as well, Duo being down just hides Duo, even in safe mode.
    env.enroll_totp(&user);
    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    s.expect_prompt("Verification code: ", WAIT);
    s.answer("000000");
    assert!(!s.finish(WAIT).ok);
}

#[test]
fn duo_push_over_sshd_is_visible() {
    let user = system_user("p2fa-net5", PASSWORD);
    let env = Env::new();
    let (duo, conf) = duo_env(env.root(), "secure");
    let mut sc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&duo.scenario).unwrap()).unwrap();
    sc[&user] = sc["p2fa-net3"].clone();
    std::fs::write(&duo.scenario, sc.to_string()).unwrap();
    env.write_config(&conf);
    env.enroll_ok(&["duo", "--user", &user], "");
    let sshd = Sshd::start(&env, "");
    let pw = format!("password={PASSWORD}");
    let out = sshd.login(
        &user,
        &[
            "--answer",
            &pw,
            "--answer",
            "verification code=push",
            "--answer",
            "duo push sent=",
            "--timeout",
            "30",
        ],
    );
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{t}\n{}", sshd.log_text());
    assert!(
        t.contains("prompt: Duo push sent to iPhone (XXX-XXX-0100). Approve it, then press Enter"),
        "{t}"
    );
    assert!(json_lines(&duo.log).iter().any(|r| {
        r["params"]["pushinfo"]
            .as_str()
            .is_some_and(|p| p.contains("sshd"))
    }));
}

/// Preauth requests the stand-in Duo received for `user`.
fn preauths(log: &Path, user: &str) -> usize {
    json_lines(log)
        .iter()
        .filter(|r| r["path"] == "/auth/v2/preauth" && r["user"] == user)
        .count()
}

/// `duo.users = "all"`: a user with no `2fa-enroll duo` row (and no
/// factor at all) whom Duo knows logs in with a push; a denied push is a
/// counted failure; with the default `enrolled` the same user is not
/// offered Duo (not even asked about) and falls under the unenrolled
/// policy; with TOTP as well, Duo is offered next to it.
#[test]
fn duo_users_all_offers_duo_without_a_row() {
    let user = system_user("p2fa-duoall1", PASSWORD);
    let env = Env::new();
    let (duo, conf) = duo_env(env.root(), "secure");
    let mut sc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&duo.scenario).unwrap()).unwrap();
    sc[&user] = sc["p2fa-net3"].clone();
    std::fs::write(&duo.scenario, sc.to_string()).unwrap();
    env.enroll_ok(&["init"], "");
    env.write_config(&format!("{conf}users = \"all\"\n"));

    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    s.expect_prompt("Verification code, or 1 push, 2 phone, 3 sms: ", WAIT);
    s.answer("push");
    s.expect_prompt("Duo push sent to iPhone (XXX-XXX-0100)", WAIT);
    s.answer("");
    let o = s.finish(WAIT);
    assert!(o.ok, "{}\n{:?}", o.transcript, env.logs());
    assert!(
        env.logs()
            .iter()
            .any(|l| l.contains(&format!("auth ok user={user}")) && l.contains("factor=duo-push")),
        "no success line"
    );
    let st = env.status_json(&user);
    assert_eq!(
        (st["duo"].as_bool(), st["enrolled"].as_bool()),
        (Some(false), Some(false))
    );
    assert!(json_lines(&duo.log).iter().all(|r| r["verified"] == true));
    let out = env.enroll_ok(&["status", "--user", &user], "");
    assert!(out.contains("Duo: offered by duo.users = \"all\""), "{out}");

    // A denied push: refused, and counted (the users row is made then).
    sc[&user]["push"] = json!("deny");
    std::fs::write(&duo.scenario, sc.to_string()).unwrap();
    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    s.expect_prompt("1 push", WAIT);
    s.answer("push");
    s.expect_prompt("Duo push sent", WAIT);
    s.answer("");
    let o = s.finish(WAIT);
    assert!(!o.ok, "{}", o.transcript);
    assert!(
        o.transcript.contains("The request was denied."),
        "{}",
        o.transcript
    );
    assert_eq!(env.status_json(&user)["failures"], 1);

    // The default, `enrolled`: Duo is not asked, the user has no factor.
    let before = preauths(&duo.log, &user);
    env.write_config(&conf);
    let o = Session::start(&env.svc_dir, "p2fa", &user).finish(WAIT);
    assert!(!o.ok, "{}", o.transcript);
    assert!(
        o.transcript
            .contains("No second factor is set up for this account"),
        "{}",
        o.transcript
    );
    assert_eq!(preauths(&duo.log, &user), before, "Duo was asked");
    let out = env.enroll_ok(&["status", "--user", &user], "");
    assert!(!out.contains("Duo:"), "{out}");

    // With TOTP as well, `all` offers Duo next to it, as a row would.
    env.enroll_totp(&user);
    env.write_config(&format!("{conf}users = \"all\"\n"));
    sc[&user]["push"] = json!("approve");
    std::fs::write(&duo.scenario, sc.to_string()).unwrap();
    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    s.expect_prompt("Verification code, or 1 push, 2 phone, 3 sms: ", WAIT);
    s.answer("push");
    s.expect_prompt("Duo push sent", WAIT);
    s.answer("");
    assert!(s.finish(WAIT).ok);
    env.write_config(&conf);
    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    s.expect_prompt("Verification code: ", WAIT);
    s.answer("000000");
    assert!(!s.finish(WAIT).ok);
}

/// `duo.users = "all"`, a user with no factor whom Duo does not know
/// (preauth `enroll`): the unenrolled policy, `deny` refusing and `allow`
/// letting them through (PAM_IGNORE: pam_permit after the module decides).
#[test]
fn duo_users_all_unknown_to_duo_is_unenrolled() {
    let user = system_user("p2fa-duoall2", PASSWORD);
    let env = Env::new();
    let (duo, conf) = duo_env(env.root(), "secure");
    env.enroll_ok(&["init"], "");
    env.service_key_and_code("p2fa", "");
    let all = format!("{conf}users = \"all\"\n");
    env.write_config(&all);
    let out = env.enroll_ok(&["policy", "check", "--user", &user], "");
    assert!(
        out.contains(
            "asks for duo (duo.users = all) when Duo knows the user; when Duo does not: DENIES"
        ),
        "{out}"
    );
    let o = Session::start(&env.svc_dir, "p2fa", &user).finish(WAIT);
    assert!(
        !o.ok,
        "unenrolled=deny let a user Duo does not know in:\n{}",
        o.transcript
    );
    assert!(
        o.transcript
            .contains("No second factor is set up for this account"),
        "{}",
        o.transcript
    );
    assert_eq!(preauths(&duo.log, &user), 1, "Duo was not asked");
    assert!(
        env.logs()
            .iter()
            .any(|l| l.contains("reason=not-enrolled-in-duo (duo.users = all)")),
        "no log line"
    );

    env.write_config(&format!("unenrolled = \"allow\"\n{all}"));
    let o = Session::start(&env.svc_dir, "p2fa", &user).finish(WAIT);
    assert!(o.ok, "{}\n{:?}", o.transcript, env.logs());
    assert!(
        env.logs()
            .iter()
            .any(|l| l.contains("reason=unenrolled-allowed-by-policy")),
        "not the unenrolled policy"
    );
    assert_eq!(preauths(&duo.log, &user), 2);
}

/// `duo.users = "all"` and Duo down, for a user with no factor: never the
/// unenrolled policy. `secure` is unavailable even where `unenrolled =
/// allow`; `safe` lets them through only where `unenrolled = allow`
/// would have, since Duo might not know them.
#[test]
fn duo_users_all_outage_is_failmode_never_the_unenrolled_policy() {
    let user = system_user("p2fa-duoall3", PASSWORD);
    let env = Env::new();
    let pki = Pki::new(&env.root().join("pki"));
    let down = closed_port();
    env.enroll_ok(&["init"], "");
    env.service_key_and_code("p2fa", "");
    let conf = |unenrolled: &str, failmode: &str| {
        format!(
            "unenrolled = \"{unenrolled}\"\n{}users = \"all\"\n",
            duo_conf(env.root(), down, &pki, failmode)
        )
    };
    let attempt = || Session::start(&env.svc_dir, "p2fa", &user).finish(WAIT);
    env.write_config(&conf("allow", "secure"));
    let o = attempt();
    assert!(
        !o.ok,
        "an outage let a user in under secure:\n{}",
        o.transcript
    );
    assert!(
        o.transcript.contains("result 9 "),
        "PAM_AUTHINFO_UNAVAIL: {}",
        o.transcript
    );
    env.write_config(&conf("deny", "safe"));
    let o = attempt();
    assert!(
        !o.ok,
        "safe let a user with no factor in under unenrolled=deny:\n{}",
        o.transcript
    );
    assert!(o.transcript.contains("result 9 "), "{}", o.transcript);
    assert!(
        env.logs()
            .iter()
            .any(|l| l.contains("failmode safe not applied: the user has no factor")),
        "no log line"
    );
    env.write_config(&conf("allow", "safe"));
    let o = attempt();
    assert!(o.ok, "{}\n{:?}", o.transcript, env.logs());
    assert!(o.transcript.contains("failmode safe"), "{}", o.transcript);
}
