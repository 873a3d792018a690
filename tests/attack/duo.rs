//! Duo (issue 11, section A, and item 20): nothing an attacker can cause
//! may count as "Duo is unreachable", and `failmode = "safe"` never opens
//! for a caller who can fake an outage.
//!
//! Everything goes through the real interface: the built module loaded by
//! libpam (pamtester or tests/c/pam_once.c through pam_wrapper, as root,
//! which is what sshd and login are), or real setuid sudo run by an
//! ordinary user (who can signal it and chooses its environment), against
//! the Duo stand-in (tests/mock/duo_server.py), which checks signatures
//! strictly, like Duo: over the host name without the port.

use crate::common::interactive::Session;
use crate::common::net::{DUO_IKEY, DUO_SKEY, Pki, Stub, closed_port, duo_server, json_lines};
use crate::common::sudo::{PASSWORD, Sudo};
use crate::common::{Attempt, Env, SECRET, now, system_user, totp, wrong_totp};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// A Duo user's devices and passcode, for the scenario file.
fn duo_user() -> Value {
    json!({"preauth": "auth", "push": "approve", "passcodes": ["7654321"],
           "devices": [{"device": "DP1", "display_name": "iPhone (XXX-XXX-0100)",
                        "capabilities": ["push", "phone", "sms"]}]})
}

/// A Duo stand-in with its own CA, and an Env whose config points at it.
struct Site {
    env: Env,
    pki: Pki,
    stub: Stub,
    scenario: PathBuf,
    log: PathBuf,
}

impl Site {
    /// Stand-in serving `pki`'s default certificate; `users` get
    /// [`duo_user`] in the scenario.
    fn new(users: &[&str], failmode: &str) -> Site {
        let env = Env::new();
        let pki = Pki::new(&env.root().join("pki"));
        let scenario = env.root().join("duo-scenario.json");
        let log = env.root().join("duo.jsonl");
        let stub = duo_stand_in(&env, &pki.cert, &pki.key, users, &scenario, &log);
        let site = Site {
            env,
            pki,
            stub,
            scenario,
            log,
        };
        site.config(failmode, "");
        site
    }

    /// Rewrites the config: Duo at the stand-in with the site's CA as
    /// `ca_file`, `failmode`, then `extra` (a `ca_file` there replaces it).
    fn config(&self, failmode: &str, extra: &str) {
        self.config_for(&format!("127.0.0.1:{}", self.stub.port), failmode, extra);
    }

    fn config_for(&self, api_host: &str, failmode: &str, extra: &str) {
        duo_config(&self.env, api_host, &self.pki.ca, failmode, extra);
    }

    /// Sets one top-level key of the scenario (a user, or a `*` key such
    /// as `*modes`), keeping the rest; atomically.
    fn set(&self, key: &str, value: Value) {
        let mut sc: Value =
            serde_json::from_str(&std::fs::read_to_string(&self.scenario).unwrap()).unwrap();
        sc[key] = value;
        let tmp = self.scenario.with_extension("tmp");
        std::fs::write(&tmp, sc.to_string()).unwrap();
        std::fs::rename(tmp, &self.scenario).unwrap();
    }

    fn requests(&self) -> Vec<Value> {
        json_lines(&self.log)
    }

    fn enroll_duo(&self, user: &str) {
        self.env
            .enroll_ok(&["duo", "--user", user, "--no-check"], "");
    }

    /// One login through pamtester as root (sshd's and login's view).
    fn login(&self, user: &str, input: &str) -> Attempt {
        self.env.attempt("p2fa", user, input, None)
    }
}

/// Starts a Duo stand-in with `cert`/`key` whose scenario gives `users`
/// [`duo_user`].
fn duo_stand_in(
    env: &Env,
    cert: &Path,
    key: &Path,
    users: &[&str],
    scenario: &Path,
    log: &Path,
) -> Stub {
    let mut sc = json!({});
    for u in users {
        sc[*u] = duo_user();
    }
    std::fs::write(scenario, sc.to_string()).unwrap();
    duo_server(cert, key, scenario, log, &[], env.root())
}

/// `env`'s config with Duo at `api_host`, `ca` as `ca_file` (unless
/// `extra` sets one), `failmode`, short timeouts, then `extra`.
fn duo_config(env: &Env, api_host: &str, ca: &Path, failmode: &str, extra: &str) {
    let skey = env.root().join("duo-skey");
    write_secret(&skey, DUO_SKEY);
    let ca = if extra.contains("ca_file") {
        String::new()
    } else {
        format!("ca_file = \"{}\"\n", ca.display())
    };
    env.write_config(&format!(
        "[duo]\nenabled = true\nikey = \"{DUO_IKEY}\"\nskey_file = \"{}\"\n\
         api_host = \"{api_host}\"\nfailmode = \"{failmode}\"\ntimeout_ms = 1500\n\
         connect_timeout_ms = 1000\npush_timeout_seconds = 5\n{ca}{extra}\n",
        skey.display()
    ));
}

fn write_secret(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// What a login denied for a reason other than an outage must look like:
/// no success, no failmode, and no "unreachable" told to the user.
fn assert_denied_not_outage(a: &Attempt, what: &str) {
    assert!(!a.ok, "{what}: let in\n{a:?}");
    assert!(
        !a.log.contains("failmode-safe") && !a.output.contains("failmode"),
        "{what}: failmode applied\n{a:?}"
    );
    assert!(
        !a.output.to_lowercase().contains("unreachable"),
        "{what}: the user was told Duo is unreachable\n{a:?}"
    );
}

/// Waits until the stand-in has logged more than `n` requests to `path`.
fn wait_for_request(site: &Site, path: &str, n: usize) {
    let deadline = Instant::now() + WAIT;
    while site.requests().iter().filter(|r| r["path"] == path).count() <= n {
        assert!(Instant::now() < deadline, "no {path} request arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Item 4: under sudo the caller is an ordinary user (real uid = the user;
/// sudo is setuid) who can stop the process. `kill -STOP` while preauth is
/// on the wire, `kill -CONT` after timeout_ms: the answer and the timeout
/// are both "ready" when the process resumes, and the timeout made
/// `failmode = safe` let the user in. Now safe applies only when the real
/// uid is 0 (sshd, login); a real outage under sudo is denied too, while a
/// root caller with the same config still gets the admin's failmode.
#[test]
fn sudo_user_stopping_sudo_during_preauth_does_not_get_in_under_failmode_safe() {
    let site = Site::new(&["p2fa-sudo-duostop"], "safe");
    let sudo = Sudo::new(&site.env, "duostop");
    site.enroll_duo(&sudo.user);
    // Duo answers preauth after 1 s; timeout_ms is 1.5 s.
    site.set("*delays", json!({"/auth/v2/preauth": 1.0}));
    for round in 0..4 {
        let before = site
            .requests()
            .iter()
            .filter(|r| r["path"] == "/auth/v2/preauth")
            .count();
        // Password, then an empty answer at the factor menu (no approval).
        let running = sudo.spawn(&[], &format!("{PASSWORD}\n\n"));
        wait_for_request(&site, "/auth/v2/preauth", before);
        let pid = running.sudo_pid();
        assert!(
            running.signal_as_user("STOP", pid),
            "the user could not stop their sudo: the attack needs it"
        );
        std::thread::sleep(Duration::from_millis(2500));
        assert!(running.signal_as_user("CONT", pid));
        running.continue_all();
        let run = running.finish();
        run.assert_refused();
        assert!(
            !run.log.contains("failmode-safe"),
            "round {round}: failmode applied under sudo\n{run:?}"
        );
    }

    // A real outage under sudo: denied as well, and the log says why.
    site.config_for(&format!("127.0.0.1:{}", closed_port()), "safe", "");
    let run = sudo.run(&format!("{PASSWORD}\n"));
    run.assert_refused();
    assert!(
        run.log.contains("failmode safe not applied")
            && run
                .log
                .contains(&format!("real uid {}", uid_of(&sudo.user))),
        "{run:?}"
    );
    // The same outage with root as the caller (sshd, login): the admin's
    // failmode = safe holds. It lets the user through with PAM_IGNORE (no
    // factor was checked), so the stack is that of a host where pam_2fa
    // is the only auth module, which ends with pam_permit.
    site.env.service_key_and_code("p2fa-kc", "");
    let a = site.env.attempt("p2fa-kc", &sudo.user, "", None);
    assert!(a.ok, "root caller, Duo down, failmode safe: {a:?}");
    assert!(
        a.log.contains("reason=duo-unreachable-failmode-safe"),
        "{a:?}"
    );
}

fn uid_of(user: &str) -> String {
    let out = std::process::Command::new("id")
        .args(["-u", user])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A TCP listener that counts the connections made to it (a "proxy" the
/// caller's HTTPS_PROXY points at).
struct Counter {
    port: u16,
    seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Counter {
    fn start() -> Counter {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let s = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                s.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(c);
            }
        });
        Counter { port, seen }
    }

    fn count(&self) -> usize {
        self.seen.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Item 4: under sudo the caller sets sudo's environment. sudo shows PAM
/// modules (through its getenv hook) only what `env_reset` keeps, so the
/// site here keeps the TLS and proxy variables, as Debian's sudoers
/// suggests for proxies (`env_keep += "https_proxy ..."`); su keeps
/// everything. An attacker's Duo stand-in (certificate from the
/// attacker's own CA, answering preauth "allow", a bypass) was then
/// trusted through SSL_CERT_FILE or SSL_CERT_DIR. Trust is now the system
/// bundle plus `ca_file`, never the environment, and proxies from it are
/// ignored.
#[test]
fn caller_environment_does_not_choose_tls_trust_or_proxy() {
    let user = "p2fa-sudo-duoenv";
    let site = Site::new(&[user], "secure");
    let sudo = Sudo::with_defaults(
        &site.env,
        "duoenv",
        ", env_keep += \"SSL_CERT_FILE SSL_CERT_DIR HTTPS_PROXY https_proxy ALL_PROXY\"",
    );
    site.enroll_duo(&sudo.user);
    site.set(user, json!({"preauth": "allow"}));
    // No ca_file: only the system's trust store counts.
    site.config("secure", "ca_file = \"\"");
    let attacker_ca = site.pki.ca.to_str().unwrap().to_string();
    let cert_dir = site.env.root().join("attacker-certs");
    std::fs::create_dir(&cert_dir).unwrap();
    std::fs::copy(&site.pki.ca, cert_dir.join("attacker.pem")).unwrap();
    let rehash = std::process::Command::new("openssl")
        .arg("rehash")
        .arg(&cert_dir)
        .status()
        .unwrap();
    assert!(rehash.success());
    let proxy = Counter::start();
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);

    let cert_dir = cert_dir.to_str().unwrap().to_string();
    for vars in [
        vec![
            ("SSL_CERT_FILE", attacker_ca.as_str()),
            ("HTTPS_PROXY", proxy_url.as_str()),
            ("https_proxy", proxy_url.as_str()),
            ("ALL_PROXY", proxy_url.as_str()),
        ],
        vec![("SSL_CERT_DIR", cert_dir.as_str())],
    ] {
        let run = sudo.spawn(&vars, &format!("{PASSWORD}\n")).finish();
        run.assert_refused();
        assert!(
            !run.log.contains("duo-preauth-allow"),
            "the attacker's Duo was believed with {vars:?}\n{run:?}"
        );
        assert!(run.log.contains("certificate"), "{vars:?}\n{run:?}");
    }
    assert_eq!(proxy.count(), 0, "a connection went to the caller's proxy");
    assert!(
        site.requests().is_empty(),
        "a request reached the untrusted server: {:?}",
        site.requests()
    );

    // Root's environment does not choose trust either (one rule for all).
    let mut cmd = site
        .env
        .pamtester(&[], None, &["p2fa", user, "authenticate"]);
    cmd.env("SSL_CERT_FILE", &attacker_ca);
    let a = site.env.attempt_cmd(cmd, b"");
    assert!(!a.ok, "{a:?}");
    assert!(site.requests().is_empty());
}

/// Item 1: a Duo stand-in whose certificate is for another host, from an
/// untrusted issuer, expired, or names its host only in the CN. These are
/// what an attacker in the path can produce; they used to count as "Duo
/// unreachable", so `failmode = safe` let the user in. Now each denies,
/// and the log names the certificate problem in full.
#[test]
fn certificate_errors_deny_under_failmode_safe_and_are_logged() {
    let user = "p2fa-duo-cert";
    system_user(user, PASSWORD);
    let env = Env::new();
    let pki = Pki::new(&env.root().join("pki"));
    let other_ca = Pki::new(&env.root().join("other-pki"));
    duo_config(&env, "127.0.0.1:443", &pki.ca, "safe", "");
    env.enroll_ok(&["duo", "--user", user, "--no-check"], "");
    for (i, (what, (cert, key), cause)) in [
        (
            "another host",
            pki.leaf(
                "otherhost",
                "/CN=other.example",
                "subjectAltName=DNS:other.example",
                None,
            ),
            "certificate not valid for name",
        ),
        (
            "untrusted issuer",
            (other_ca.cert.clone(), other_ca.key.clone()),
            "UnknownIssuer",
        ),
        (
            "expired",
            pki.leaf(
                "expired",
                "/CN=localhost",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                Some("-3d"),
            ),
            "certificate expired",
        ),
        (
            "CN only",
            pki.leaf("cnonly", "/CN=127.0.0.1", "", None),
            "is not valid for any names",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let scenario = env.root().join(format!("scenario-{i}.json"));
        let log = env.root().join(format!("duo-{i}.jsonl"));
        let stub = duo_stand_in(&env, &cert, &key, &[user], &scenario, &log);
        duo_config(
            &env,
            &format!("127.0.0.1:{}", stub.port),
            &pki.ca,
            "safe",
            "",
        );
        let a = env.attempt("p2fa", user, "", None);
        check_cert_denial(what, cause, &a);
        assert!(json_lines(&log).is_empty(), "{what}: a request was sent");
    }
}

fn check_cert_denial(what: &str, cause: &str, a: &Attempt) {
    assert_denied_not_outage(a, what);
    assert!(
        a.log.contains("reason=duo-tls-error") && a.log.contains(cause),
        "{what}: the log must name the certificate problem ({cause})\n{}",
        a.log
    );
}

/// Item 2: an answer that is not Duo's (invalid JSON, cut short, or valid
/// JSON of the wrong shape) on preauth, auth or auth_status is a protocol
/// error: denied under `failmode = safe`, never "Duo is unreachable".
#[test]
fn malformed_duo_answers_deny_under_failmode_safe() {
    let user = "p2fa-duo-json";
    system_user(user, PASSWORD);
    let site = Site::new(&[user], "safe");
    site.enroll_duo(user);
    for mode in ["garbage", "truncated", "badjson"] {
        for (path, input) in [
            ("/auth/v2/preauth", ""),
            // "push" starts a push (auth), Enter polls (auth_status).
            ("/auth/v2/auth", "push\n"),
            ("/auth/v2/auth_status", "push\n\n"),
            // A Duo passcode typed at the menu goes to auth.
            ("/auth/v2/auth", "7654321\n"),
        ] {
            site.set("*modes", json!({path: mode}));
            let a = site.login(user, input);
            let what = format!("{mode} on {path} after {input:?}");
            assert_denied_not_outage(&a, &what);
            assert!(
                a.log.contains("reason=duo-protocol-error"),
                "{what}\n{}",
                a.log
            );
        }
    }
}

/// Item 3: once preauth has answered, Duo is reachable; a failing auth or
/// auth_status (HTTP 500, a reset connection, no answer within timeout_ms)
/// denies, as duo_unix does, instead of applying `failmode = safe`.
#[test]
fn errors_after_a_good_preauth_deny_under_failmode_safe() {
    let user = "p2fa-duo-after";
    system_user(user, PASSWORD);
    let site = Site::new(&[user], "safe");
    site.enroll_duo(user);
    site.set("*hang_seconds", json!(4));
    for (path, mode, input) in [
        ("/auth/v2/auth", "500", "push\n"),
        ("/auth/v2/auth", "reset", "push\n"),
        ("/auth/v2/auth", "hang", "push\n"),
        ("/auth/v2/auth", "500", "7654321\n"),
        ("/auth/v2/auth_status", "500", "push\n\n"),
        ("/auth/v2/auth_status", "reset", "push\n\n"),
    ] {
        site.set("*modes", json!({path: mode}));
        let a = site.login(user, input);
        let what = format!("{mode} on {path}");
        assert!(!a.ok, "{what}: let in\n{a:?}");
        assert!(!a.log.contains("failmode-safe"), "{what}\n{a:?}");
        assert!(
            a.log.contains("reason=duo-error-after-preauth"),
            "{what}\n{a:?}\n{}",
            a.log
        );
    }
    // The same outage at preauth is the admin's failmode (root caller):
    // PAM_IGNORE, so the stack of a host where pam_2fa is the only auth
    // module (ending with pam_permit) lets the user in.
    site.set("*modes", json!({"/auth/v2/preauth": "500"}));
    site.env.service_key_and_code("p2fa-kc", "");
    let a = site.env.attempt("p2fa-kc", user, "", None);
    assert!(a.ok, "{a:?}");
    assert!(
        a.log.contains("reason=duo-unreachable-failmode-safe"),
        "{a:?}"
    );
}

/// Item 5: a user with TOTP and Duo types wrong 6-digit codes. Each was
/// checked as TOTP without being counted, then sent to Duo as a passcode;
/// when Duo failed, the guess was never counted. Now every code typed at
/// the prompt is counted exactly once, whatever Duo does afterwards (and a
/// right Duo passcode still works and clears the count).
#[test]
fn wrong_codes_with_totp_and_duo_are_each_counted_once() {
    let user = "p2fa-duo-count";
    system_user(user, PASSWORD);
    let site = Site::new(&[user], "safe");
    site.config("safe", "[rate_limit]\nmax_failures = 50\n");
    site.enroll_duo(user);
    site.env.enroll_totp(user);
    let failures = || site.env.sql("SELECT failures FROM users");
    let mut expected = 0;
    site.set("*hang_seconds", json!(4));
    for (mode, tries) in [
        ("500", 3),
        ("reset", 2),
        ("garbage", 2),
        ("hang", 1),
        ("ok", 3),
    ] {
        site.set("*modes", json!({"/auth/v2/auth": mode}));
        for _ in 0..tries {
            let wrong = wrong_totp(SECRET, now());
            let a = site.login(user, &format!("{wrong}\n"));
            assert!(!a.ok, "{mode}: {a:?}");
            expected += 1;
            assert_eq!(
                failures(),
                expected.to_string(),
                "Duo {mode}: each wrong code counts once\n{a:?}"
            );
        }
    }
    let auths = site
        .requests()
        .iter()
        .filter(|r| r["path"] == "/auth/v2/auth" && r["params"]["factor"] == "passcode")
        .count();
    assert_eq!(
        auths, 11,
        "every wrong 6-digit code was also tried as a Duo passcode"
    );
    // A right Duo passcode at the same prompt: in, and the count is cleared.
    let a = site.login(user, "7654321\n");
    assert!(a.ok, "{a:?}");
    assert_eq!(failures(), "0");
    // And a right TOTP code is still a TOTP login.
    crate::common::fresh_step(5);
    let a = site.login(user, &format!("{}\n", totp(SECRET, None)));
    assert!(a.ok, "{a:?}");
}

/// Item 6: Duo signs and checks the host without the port (the stand-in
/// is as strict as Duo: a signature over `host:port` gets 40103), and
/// `ipaddr` carries the login's source when PAM_RHOST is an IP address.
#[test]
fn requests_are_signed_for_the_bare_host_and_carry_the_source_address() {
    let user = "p2fa-duo-sign";
    system_user(user, PASSWORD);
    let site = Site::new(&[user], "secure");
    site.enroll_duo(user);
    site.set(user, {
        let mut u = duo_user();
        u["passcodes_reusable"] = json!(true);
        u
    });
    site.set("*require_ipaddr", json!("192.0.2.7"));
    let a = site.env.attempt_args(
        &["-I", "rhost=192.0.2.7", "p2fa", user, "authenticate"],
        b"7654321\n",
        None,
    );
    assert!(a.ok, "{a:?}\n{:?}", site.requests());
    let reqs = site.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    for r in &reqs {
        assert_eq!(r["verified"], true, "{r}");
        assert_eq!(r["signed_host"], "127.0.0.1", "{r}");
        assert_eq!(r["host"], format!("127.0.0.1:{}", site.stub.port), "{r}");
        assert_eq!(r["params"]["ipaddr"], "192.0.2.7", "{r}");
    }
    // A host name (or no rhost) is not an address: no ipaddr.
    site.set("*require_ipaddr", Value::Null);
    for args in [
        vec![
            "-I",
            "rhost=client.example.org",
            "p2fa",
            user,
            "authenticate",
        ],
        vec!["p2fa", user, "authenticate"],
    ] {
        let a = site.env.attempt_args(&args, b"7654321\n", None);
        assert!(a.ok, "{a:?}");
    }
    let reqs = site.requests();
    assert_eq!(reqs.len(), 6);
    assert!(
        reqs[2..]
            .iter()
            .all(|r| r["params"].get("ipaddr").is_none()),
        "{reqs:?}"
    );
}

/// Item 20: when the HTTP client could not be built, reqwest's runtime
/// thread outlived pam_authenticate (sshd forks after PAM). A `ca_file`
/// whose PEM block decodes but is no certificate got as far as reqwest's
/// build, which failed inside the runtime thread and returned without
/// joining it. The HTTP client is ureq now, which starts no thread at all
/// (crates/net/src/transport.rs); this keeps it so: no thread may be left
/// after any of these PAM calls.
#[test]
fn no_thread_outlives_a_pam_call_whose_http_client_cannot_be_built() {
    let user = "p2fa-duo-thread";
    system_user(user, PASSWORD);
    let site = Site::new(&[user], "safe");
    site.enroll_duo(user);
    let bad = site.env.root().join("bad-ca.pem");
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\
         -----END CERTIFICATE-----\n",
    )
    .unwrap();
    site.config("safe", &format!("ca_file = \"{}\"\n", bad.display()));
    let mut log = Vec::new();
    for i in 0..25 {
        let s = Session::start(&site.env.svc_dir, "p2fa", user);
        let o = s.finish(WAIT);
        assert!(!o.ok, "{}", o.transcript);
        assert_eq!(
            o.threads_after, o.threads_before,
            "try {i}: a thread outlived the PAM call\n{}",
            o.transcript
        );
        log.extend(site.env.logs());
    }
    let log = log.join("\n");
    assert!(log.contains("bad-ca.pem"), "{log}");
    assert!(site.requests().is_empty());
}
