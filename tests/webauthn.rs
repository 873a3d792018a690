//! WebAuthn end to end: 2fad's link, a real headless Chromium with a
//! virtual authenticator (DevTools WebAuthn domain) registering a key and
//! approving logins through the real libpam and a real sshd; another
//! authenticator is refused, and a used link is dead. Concurrent logins
//! of software keys through the web endpoint exercise the group commit of
//! their counters, also on a full disk.

mod common;

use common::daemon::{Browser, Daemon, WebOptions, add_key, token_of, url_in};
use common::interactive::Session;
use common::sshd::Sshd;
use common::{Env, system_user};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

/// `2fa-enroll webauthn add` with the browser approving the printed link:
/// the browser's verdict, a newline, then everything the command printed.
fn register(env: &Env, browser: &mut Browser, user: &str, name: &str) -> String {
    let (r, transcript, _) = add_key(env, browser, user, name);
    format!("{r}\n{transcript}")
}

#[test]
fn register_then_login_with_a_virtual_authenticator() {
    let user = system_user("p2fa-wa1", "Webauthn-p2fa");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let _ = env.enroll(&["reset", "--user", &user], "");
    let d = Daemon::start(&env, "", "");
    let mut browser = Browser::start();

    let out = register(&env, &mut browser, &user, "virtual key");
    assert!(out.starts_with("done"), "{out}");
    assert!(out.contains("Registered the key \"virtual key\""), "{out}");
    let list = env.enroll_ok(&["webauthn", "list", "--user", &user], "");
    assert!(list.contains("virtual key"), "{list}");
    assert_eq!(env.status_json(&user)["webauthn"], 1);

    // Login through the real libpam: the only factor, so the link comes at once.
    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    let p = s.expect_prompt("Approve this login", WAIT);
    let url = url_in(&p);
    assert!(url.contains("/l/"), "{url}");
    assert!(browser.cmd(&format!("open {url}")).starts_with("done"));
    s.answer("");
    let o = s.finish(WAIT);
    assert!(o.ok, "{}", o.transcript);
    // The link is dead now.
    let (status, _) = d.http_get(&format!("/api/options/{}", token_of(&url)));
    assert!(status.contains(" 404"), "{status}");

    // Another authenticator (no credential for this user): refused.
    assert_eq!(browser.cmd("new-authenticator"), "ok");
    let mut s = Session::start(&env.svc_dir, "p2fa", &user);
    let p = s.expect_prompt("Approve this login", WAIT);
    let r = browser.cmd(&format!("open {}", url_in(&p)));
    assert!(r.starts_with("failed"), "{r}");
    s.answer("");
    s.expect_prompt("Not approved yet", WAIT);
    s.answer("");
    s.expect_prompt("Not approved yet", WAIT);
    s.answer("");
    let o = s.finish(WAIT);
    assert!(!o.ok, "{}", o.transcript);
    assert_eq!(env.status_json(&user)["failures"], 1);
}

#[test]
fn webauthn_login_over_sshd() {
    let user = system_user("p2fa-wa2", "Webauthn-p2fa");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let _ = env.enroll(&["reset", "--user", &user], "");
    let _d = Daemon::start(&env, "", "");
    let mut browser = Browser::start();
    let out = register(&env, &mut browser, &user, "k1");
    assert!(out.starts_with("done"), "{out}");

    let sshd = Sshd::start(&env, "");
    let url_file = env.root().join("url");
    let answer_file = env.root().join("approved");
    let (uf, af) = (url_file.clone(), answer_file.clone());
    let driver = std::thread::spawn(move || {
        let deadline = Instant::now() + WAIT;
        while !uf.exists() {
            assert!(Instant::now() < deadline, "no URL from the ssh client");
            std::thread::sleep(Duration::from_millis(50));
        }
        let url = std::fs::read_to_string(&uf).unwrap();
        let r = browser.cmd(&format!("open {url}"));
        std::fs::write(&af, "ok").unwrap();
        r
    });
    let o = sshd.login(
        &user,
        &[
            "--answer",
            "password=Webauthn-p2fa",
            "--url-file",
            url_file.to_str().unwrap(),
            "--answer-file",
            &format!("press enter={}", answer_file.display()),
        ],
    );
    let r = driver.join().unwrap();
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(r.starts_with("done"), "{r}");
    assert!(o.status.success(), "{t}\n{}", sshd.log_text());
    assert!(t.contains("Approve this login"), "{t}");
}

fn b64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .unwrap()
}

fn unb64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Asks 2fad (as root, like the PAM module) for a login link.
fn login_link(d: &Daemon, user: &str) -> (String, String) {
    use p2fa_proto::protocol::{Op, Request, Response, VERSION};
    let req = Request {
        version: VERSION,
        user: Some(user.into()),
        proof: None,
        op: Op::WebauthnLogin {
            service: "test".into(),
            rhost: String::new(),
        },
    };
    match p2fa_proto::client::call(&d.socket, &req).unwrap() {
        Response::Link { url, token, .. } => (url, token),
        other => panic!("{other:?}"),
    }
}

fn result_of(d: &Daemon, user: &str, token: &str) -> p2fa_proto::protocol::Response {
    use p2fa_proto::protocol::{Op, Request, VERSION};
    let req = Request {
        version: VERSION,
        user: Some(user.into()),
        proof: None,
        op: Op::WebauthnResult {
            token: token.into(),
        },
    };
    p2fa_proto::client::call(&d.socket, &req).unwrap()
}

/// Real assertions from the virtual authenticator, altered one way each:
/// 2fad's verification must refuse every one, and accept the untouched
/// control.
#[test]
fn tampered_replayed_and_foreign_assertions_are_refused() {
    use serde_json::Value;
    let user = system_user("p2fa-wa3", "Webauthn-p2fa");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let _ = env.enroll(&["reset", "--user", &user], "");
    let d = Daemon::start(&env, "", "");
    let mut browser = Browser::start();
    assert!(register(&env, &mut browser, &user, "k").starts_with("done"));

    let capture = |browser: &mut Browser, url: &str| -> Value {
        let r = browser.cmd(&format!("capture {url}"));
        let body = r.strip_prefix("body ").unwrap_or_else(|| panic!("{r}"));
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    let set = |v: &mut Value, path: &[&str], f: &dyn Fn(Vec<u8>) -> Vec<u8>| {
        let mut cur = &mut *v;
        for p in path {
            cur = &mut cur[*p];
        }
        let bytes = f(b64(cur.as_str().unwrap()));
        *cur = Value::String(unb64(&bytes));
    };
    let origin = format!("http://localhost:{}", d.port());
    type Mutation<'a> = Box<dyn Fn(&mut Value) + 'a>;
    let variants: Vec<(&str, Mutation<'_>)> = vec![
        (
            "tampered signature",
            Box::new(|v| {
                set(v, &["response", "signature"], &|mut b| {
                    let n = b.len() - 1;
                    b[n] ^= 1;
                    b
                })
            }),
        ),
        (
            "wrong origin",
            Box::new(move |v| {
                set(v, &["response", "clientDataJSON"], &|b| {
                    String::from_utf8(b)
                        .unwrap()
                        .replace(&origin, "http://evil.example")
                        .into_bytes()
                })
            }),
        ),
        (
            "wrong rp_id",
            Box::new(|v| {
                set(v, &["response", "authenticatorData"], &|mut b| {
                    b[0] ^= 0xff;
                    b
                })
            }),
        ),
        (
            "unknown credential",
            Box::new(|v| {
                let fake = unb64(&[7u8; 32]);
                v["id"] = Value::String(fake.clone());
                v["rawId"] = Value::String(fake);
            }),
        ),
    ];
    for (what, mutate) in variants {
        let (url, token) = login_link(&d, &user);
        let mut body = capture(&mut browser, &url);
        mutate(&mut body);
        let r = d.http_post(&format!("/api/finish/{token}"), &body.to_string());
        assert!(r.contains(" 400"), "{what} accepted: {r}");
        assert!(
            matches!(result_of(&d, &user, &token), p2fa_proto::protocol::Response::Error { ref code, .. } if *code == p2fa_proto::protocol::ErrorCode::Failed),
            "{what}"
        );
    }
    // Control: an untouched assertion for its own link is accepted ...
    let (url_a, token_a) = login_link(&d, &user);
    let body_a = capture(&mut browser, &url_a);
    let r = d.http_post(&format!("/api/finish/{token_a}"), &body_a.to_string());
    assert!(r.contains(" 200"), "{r}");
    assert!(matches!(
        result_of(&d, &user, &token_a),
        p2fa_proto::protocol::Response::Done { .. }
    ));
    // ... once: the same link again is dead, and replaying the assertion
    // on a new link (another challenge) is refused.
    let r = d.http_post(&format!("/api/finish/{token_a}"), &body_a.to_string());
    assert!(r.contains(" 400"), "reused link: {r}");
    let (_, token_b) = login_link(&d, &user);
    let r = d.http_post(&format!("/api/finish/{token_b}"), &body_a.to_string());
    assert!(r.contains(" 400"), "replayed assertion accepted: {r}");
    // Only root may start login ceremonies, and users see only their keys.
    let other = system_user("p2fa-wa4", "Webauthn-p2fa");
    let script = format!(
        r#"import socket,struct,sys
s=socket.socket(socket.AF_UNIX);s.connect("{}")
for req in ['{{"version":1,"op":"webauthn_login"}}','{{"version":1,"user":"{user}","op":"webauthn_list"}}']:
    d=req.encode();s.sendall(struct.pack(">I",len(d))+d)
    n=struct.unpack(">I",s.recv(4))[0];print(s.recv(n).decode())"#,
        d.socket.display()
    );
    let o = Command::new("runuser")
        .args(["-u", &other, "--", "/usr/bin/python3", "-c", &script])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.matches(r#""code":"denied""#).count(), 2, "{out}");
}

/// With cert_file/key_file, 2fad serves the page over verified HTTPS.
#[test]
fn https_with_the_configured_certificate() {
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let pki = common::net::Pki::new(&env.root().join("pki"));
    let d = Daemon::start_web(
        &env,
        WebOptions {
            tls: Some((&pki.cert, &pki.key)),
            ..WebOptions::default()
        },
    );
    let port = d.port();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).unwrap()).unwrap();
    // reqwest is built without a crypto provider of its own (as in the module).
    p2fa_net::transport::ensure_crypto_provider();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let r = client
        .get(format!("https://localhost:{port}/l/sometoken"))
        .send()
        .unwrap();
    let csp = r
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_string());
    let page = r.text().unwrap();
    drop(d);
    assert!(page.contains("<script src=\"/static/app.js\">"), "{page}");
    assert!(csp.unwrap_or_default().contains("default-src 'self'"));
}

/// The module only trusts a 2fad running as root: a socket served by an
/// ordinary user (say, planted at a configured path) is refused.
#[test]
fn module_refuses_a_socket_not_served_by_root() {
    let user = system_user("p2fa-wa5", "Webauthn-p2fa");
    let mallory = system_user("p2fa-wa-mal", "Webauthn-p2fa");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let _ = env.enroll(&["reset", "--user", &user], "");
    let dir = std::env::temp_dir().join(format!("p2fa-wa-fake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let sock = dir.join("socket");
    env.write_config(&format!(
        "[daemon]\nsocket = \"{}\"\n[webauthn]\nenabled = true\npublic_url = \"http://localhost:1\"\n",
        sock.display()
    ));
    env.sql(&format!(
        "INSERT INTO users (name, created_at) VALUES ('{user}', 0)"
    ));
    env.sql(&format!(
        "INSERT INTO webauthn_credentials (user, name, credential, created_at) VALUES ('{user}', 'k', '{{}}', 0)"
    ));
    // A fake "2fad" that approves everything, run by an ordinary user.
    let fake = r#"
import json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666); s.listen(5)
while True:
    c, _ = s.accept()
    n = struct.unpack(">I", c.recv(4))[0]; c.recv(n)
    d = json.dumps({"result": "link", "url": "http://localhost:1/l/x", "token": "x"}).encode()
    c.sendall(struct.pack(">I", len(d)) + d); c.close()
"#;
    let mut child = Command::new("runuser")
        .args(["-u", &mallory, "--", "/usr/bin/python3", "-c", fake])
        .arg(&sock)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let a = env.attempt("p2fa", &user, "\n\n\n", None);
    // runuser's child outlives a kill of runuser itself.
    let _ = Command::new("pkill").args(["-u", &mallory]).status();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!a.ok, "{}", a.output);
    assert!(a.log.contains("not root"), "{}", a.log);
}

/// A link dies when `link_seconds` have passed (2fad's clock sped up 30x
/// with faketime, so 30 s pass in one).
#[test]
fn expired_links_are_dead() {
    use p2fa_proto::protocol::{Op, Request, Response, VERSION};
    let user = system_user("p2fa-wa6", "Webauthn-p2fa");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let d = Daemon::start_web(
        &env,
        WebOptions {
            webauthn: "link_seconds = 30",
            faketime: Some("+0 x30"),
            ..WebOptions::default()
        },
    );
    let ask = |op: Op| {
        let req = Request {
            version: VERSION,
            user: Some(user.clone()),
            proof: None,
            op,
        };
        p2fa_proto::client::call(&d.socket, &req).unwrap()
    };
    let Response::Link { token, .. } = ask(Op::WebauthnRegister { name: "k".into() }) else {
        panic!("no link")
    };
    let (live, _) = d.http_get(&format!("/api/options/{token}"));
    assert!(live.contains(" 200"), "{live}");
    std::thread::sleep(Duration::from_millis(1500)); // ~45 s for 2fad
    let (dead, _) = d.http_get(&format!("/api/options/{token}"));
    let result = ask(Op::WebauthnResult {
        token: token.clone(),
    });
    // 2fad stops before the checks (faketime's whole group).
    drop(d);
    assert!(dead.contains(" 404"), "{dead}");
    assert!(
        matches!(result, Response::Error { ref code, ref message } if *code == p2fa_proto::protocol::ErrorCode::Failed && message.contains("expired")),
        "{result:?}"
    );
}

/// A root request on 2fad's socket for `user`.
fn call(d: &Daemon, user: &str, op: p2fa_proto::protocol::Op) -> p2fa_proto::protocol::Response {
    let req = p2fa_proto::protocol::Request {
        version: p2fa_proto::protocol::VERSION,
        user: Some(user.into()),
        proof: None,
        op,
    };
    p2fa_proto::client::call(&d.socket, &req).unwrap()
}

/// The page's options for `token`, fetched over HTTP.
fn page_options(d: &Daemon, token: &str) -> serde_json::Value {
    let (status, body) = d.http_get(&format!("/api/options/{token}"));
    assert!(status.contains(" 200"), "{status}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["options"].clone()
}

/// Registers a software key named `name` for `user` over the socket and
/// the web endpoints.
fn soft_key(d: &Daemon, user: &str, name: &str) -> p2fa_testkit::softkey::SoftKey {
    use p2fa_proto::protocol::{Op, Response};
    let token = match call(d, user, Op::WebauthnRegister { name: name.into() }) {
        Response::Link { token, .. } => token,
        other => panic!("{other:?}"),
    };
    let mut sk = p2fa_testkit::softkey::SoftKey::new();
    let body = sk.register(&page_options(d, &token), &origin(d));
    let r = d.http_post(&format!("/api/finish/{token}"), &body.to_string());
    assert!(r.contains(" 200"), "{r}");
    sk
}

fn origin(d: &Daemon) -> String {
    format!("http://localhost:{}", d.port())
}

/// A login link's token and `sk`'s answer to it.
fn answered(d: &Daemon, user: &str, sk: &mut p2fa_testkit::softkey::SoftKey) -> (String, String) {
    let (_, token) = login_link(d, user);
    let body = sk.assert(&page_options(d, &token), &origin(d));
    (token, body.to_string())
}

/// The counters 2fad stored, by key name.
fn stored_counters(env: &Env, user: &str) -> std::collections::BTreeMap<String, u64> {
    let store = p2fa_core::store::Store::open_existing(
        &env.db,
        1000,
        p2fa_core::secure_fs::Trust::test_runner(),
    )
    .unwrap();
    store
        .webauthn_credentials(user)
        .unwrap()
        .into_iter()
        .map(|c| {
            let v: serde_json::Value = serde_json::from_str(&c.credential).unwrap();
            (c.name, v["cred"]["counter"].as_u64().unwrap())
        })
        .collect()
}

/// Group commit through 2fad's real web endpoint: 8 keys log in at
/// once, 6 times each; every answer is approved, every counter stored.
/// Then two answers of one key with one counter, posted at once: one
/// passes, the other is refused as a clone.
#[test]
fn concurrent_logins_over_http_all_pass_and_one_counter_passes_once() {
    use p2fa_proto::protocol::Response;
    let user = system_user("p2fa-wa6", "Webauthn-p2fa");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let _ = env.enroll(&["reset", "--user", &user], "");
    let d = Daemon::start(&env, "", "max_pending_per_user = 20");
    let mut keys: Vec<_> = (0..8)
        .map(|i| soft_key(&d, &user, &format!("k{i}")))
        .collect();
    const ROUNDS: u64 = 6;
    std::thread::scope(|s| {
        for sk in keys.iter_mut() {
            let (d, user) = (&d, &user);
            s.spawn(move || {
                for _ in 0..ROUNDS {
                    let (token, body) = answered(d, user, sk);
                    let r = d.http_post(&format!("/api/finish/{token}"), &body);
                    assert!(r.contains(" 200"), "{r}");
                    assert!(
                        matches!(result_of(d, user, &token), Response::Done { .. }),
                        "not approved"
                    );
                }
            });
        }
    });
    let counters = stored_counters(&env, &user);
    assert_eq!(counters.len(), 8, "{counters:?}");
    assert!(counters.values().all(|&n| n == ROUNDS), "{counters:?}");

    let sk = &mut keys[0];
    let (token_a, body_a) = answered(&d, &user, sk);
    sk.counter -= 1;
    let (token_b, body_b) = answered(&d, &user, sk);
    let posted: Vec<String> = std::thread::scope(|s| {
        let a = s.spawn(|| d.http_post(&format!("/api/finish/{token_a}"), &body_a));
        let b = s.spawn(|| d.http_post(&format!("/api/finish/{token_b}"), &body_b));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    assert_eq!(
        posted.iter().filter(|r| r.contains(" 200")).count(),
        1,
        "{posted:?}"
    );
    assert_eq!(
        posted.iter().filter(|r| r.contains(" 400")).count(),
        1,
        "{posted:?}"
    );
    let done = [&token_a, &token_b]
        .iter()
        .filter(|t| matches!(result_of(&d, &user, t), Response::Done { .. }))
        .count();
    assert_eq!(done, 1);
    assert_eq!(stored_counters(&env, &user)["k0"], ROUNDS + 1);
}

/// A tmpfs for one test, unmounted when dropped (lazily if still busy).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0700,uid=0,gid=0"))
            .arg("tmpfs")
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", path.display());
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// The store's disk is full when 8 keys' genuine answers arrive at once:
/// the commit of their counters fails (SQLite writes the log at COMMIT),
/// so every one is refused and none approved, and nothing is stored.
/// With room again the same keys log in.
#[test]
fn a_failed_counter_commit_refuses_every_login_of_its_batch() {
    use p2fa_proto::protocol::Response;
    let user = system_user("p2fa-wa7", "Webauthn-p2fa");
    let env = Env::new();
    let dir = env.db.parent().unwrap().to_path_buf();
    let _fs = Tmpfs::mount(&dir, "1m");
    env.enroll_ok(&["init"], "");
    let _ = env.enroll(&["reset", "--user", &user], "");
    let d = Daemon::start(&env, "", "max_pending_per_user = 20");
    let mut keys: Vec<_> = (0..8)
        .map(|i| soft_key(&d, &user, &format!("k{i}")))
        .collect();
    let answers: Vec<(String, String)> =
        keys.iter_mut().map(|sk| answered(&d, &user, sk)).collect();
    let filler = dir.join("filler");
    let _ = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", filler.display()))
        .arg("bs=4k")
        .stderr(std::process::Stdio::null())
        .status();
    let posted: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = answers
            .iter()
            .map(|(token, body)| {
                let d = &d;
                s.spawn(move || d.http_post(&format!("/api/finish/{token}"), body))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (r, (token, _)) in posted.iter().zip(&answers) {
        assert!(
            r.contains(" 400"),
            "approved without a durable counter: {r}"
        );
        match result_of(&d, &user, token) {
            Response::Error { message, .. } => assert!(message.contains("store full"), "{message}"),
            other => panic!("a login of a failed batch was not refused: {other:?}"),
        }
    }
    std::fs::remove_file(&filler).unwrap();
    assert!(
        stored_counters(&env, &user).values().all(|&n| n == 0),
        "a failed commit left a counter"
    );
    for sk in keys.iter_mut() {
        let (token, body) = answered(&d, &user, sk);
        let r = d.http_post(&format!("/api/finish/{token}"), &body);
        assert!(r.contains(" 200"), "{r}");
    }
    assert!(
        stored_counters(&env, &user).values().all(|&n| n == 2),
        "{:?}",
        stored_counters(&env, &user)
    );
    drop(d);
}
