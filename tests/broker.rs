//! 2fad as the enrollment broker: ordinary users (real accounts, via
//! runuser) enroll and replace their own factors through the socket, the
//! peer uid decides who they are, every change after the first factor
//! needs a current code, and bad frames are refused. The result is then
//! used in a real PAM login. (tests/attack/daemon.rs has the attacks.)

mod common;

use common::daemon::Daemon;
use common::fido2::{Keys, webauthn_section};
use common::{Env, SECRET, output_text, parse_backup_codes, system_user, totp};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRET2: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// A raw frame sent by `user` with Python (bypassing the Rust client).
fn raw(user: &str, socket: &Path, payload: &str) -> String {
    let script = r#"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
mode, data = sys.argv[2], sys.argv[3].encode()
if mode == "huge":
    s.sendall(struct.pack(">I", 10_000_000) + b"x" * 100)
else:
    s.sendall(struct.pack(">I", len(data)) + data)
n = struct.unpack(">I", s.recv(4))[0]
buf = b""
while len(buf) < n:
    buf += s.recv(n - len(buf))
print(buf.decode())
"#;
    let (mode, data) = payload.split_once(':').unwrap();
    let o = Command::new("runuser")
        .args(["-u", user, "--", "/usr/bin/python3", "-c", script])
        .arg(socket)
        .arg(mode)
        .arg(data)
        .output()
        .unwrap();
    output_text(&o)
}

#[test]
fn users_enroll_themselves_through_2fad() {
    let alice = system_user("p2fa-brk-a", "Br0ker-p2fa");
    let bob = system_user("p2fa-brk-b", "Br0ker-p2fa");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let _ = env.enroll(&["reset", "--user", &alice], "");
    let d = Daemon::socket_only(&env);

    let o = d.enroll_as(&alice, &["status"], "");
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("no second factor enrolled"),
        "{}",
        output_text(&o)
    );

    common::fresh_step(8);
    let o = d.enroll_as(
        &alice,
        &["totp", "--secret", SECRET, "--no-qr"],
        &format!("{}\n", totp(SECRET, None)),
    );
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(output_text(&o).contains("Saved."), "{}", output_text(&o));
    // Backup codes are a second factor added: a current code first (the
    // next step's: the confirming one is spent).
    let o = d.enroll_as(&alice, &["backup"], "");
    assert!(!o.status.success(), "{}", output_text(&o));
    let o = d.enroll_as(
        &alice,
        &["backup"],
        &format!("{}\n", totp(SECRET, Some(common::now() + 30))),
    );
    assert!(o.status.success(), "{}", output_text(&o));
    let codes = parse_backup_codes(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(codes.len(), 15);

    // Replacing needs a current code: a wrong one changes nothing and counts.
    common::fresh_step(8);
    let o = d.enroll_as(
        &alice,
        &["totp", "--secret", SECRET2, "--no-qr"],
        &format!("99999-99999\n{}\n", totp(SECRET2, None)),
    );
    assert!(!o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("not a valid current code"),
        "{}",
        output_text(&o)
    );
    assert_eq!(env.status_json(&alice)["failures"], 1);
    common::fresh_step(8);
    let o = d.enroll_as(
        &alice,
        &["totp", "--secret", SECRET2, "--no-qr"],
        &format!("{}\n{}\n", codes[0], totp(SECRET2, None)),
    );
    assert!(o.status.success(), "{}", output_text(&o));
    // The new secret works at login; the old one does not.
    let a = env.attempt(
        "p2fa",
        &alice,
        &format!("{}\n", totp(SECRET, Some(common::now() + 30))),
        Some(common::now() + 30),
    );
    assert!(!a.ok, "old secret still works");
    let a = env.attempt(
        "p2fa",
        &alice,
        &format!("{}\n", totp(SECRET2, Some(common::now() + 60))),
        Some(common::now() + 60),
    );
    assert!(a.ok, "{}", a.output);

    // Regenerating backup codes asks for a current code too.
    let o = d.enroll_as(&alice, &["backup"], &format!("{}\n", codes[1]));
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("needs a current code"),
        "{}",
        output_text(&o)
    );
    let o = d.enroll_as(&alice, &["remove", "backup"], &format!("{}\n", codes[2]));
    assert!(
        !o.status.success(),
        "old codes died with the regeneration: {}",
        output_text(&o)
    );

    // Bob cannot act for Alice, whatever he writes in the request.
    let r = raw(
        &bob,
        &d.socket,
        &format!(r#"frame:{{"version":1,"user":"{alice}","op":"backup"}}"#),
    );
    assert!(r.contains(r#""code":"denied""#), "{r}");
    let r = raw(&bob, &d.socket, r#"frame:{"version":1,"op":"status"}"#);
    assert!(
        r.contains(&format!(r#""user":"{bob}""#)),
        "bob sees bob: {r}"
    );
    // Bad frames: refused with a reason, nothing else happens.
    let r = raw(&bob, &d.socket, "huge:x");
    assert!(r.contains("over the 65536-byte limit"), "{r}");
    let r = raw(&bob, &d.socket, "frame:{not json");
    assert!(r.contains("malformed request"), "{r}");
    let r = raw(&bob, &d.socket, r#"frame:{"version":9,"op":"status"}"#);
    assert!(r.contains(r#""code":"version""#), "{r}");
    // Root may act for anyone.
    let r = raw(
        "root",
        &d.socket,
        &format!(r#"frame:{{"version":1,"user":"{alice}","op":"status"}}"#),
    );
    assert!(r.contains(r#""kind":"totp""#), "{r}");
    // Commands that need root still say so.
    let o = d.enroll_as(&bob, &["reset", "--user", &alice], "");
    assert!(
        output_text(&o).contains("sudo 2fa-enroll reset"),
        "{}",
        output_text(&o)
    );
}

/// Local keys (registered by root at the console) through 2fad: a user
/// lists their own, marked local, never another user's; removing one needs
/// a current code of another factor, as for browser keys.
#[test]
fn users_list_and_remove_their_local_keys_through_2fad() {
    let alice = system_user("p2fa-brk-la", "Br0ker-p2fa");
    let bob = system_user("p2fa-brk-lb", "Br0ker-p2fa");
    let keys = Keys::new();
    let env = Env::with_config(&webauthn_section(&keys, 5, ""));
    env.enroll_ok(&["init"], "");
    for (user, name) in [(&alice, "alice key"), (&bob, "bob key")] {
        env.enroll_ok(
            &["webauthn", "add", "--local", "--name", name, "--user", user],
            "",
        );
    }
    let codes = env.enroll_backup(&alice, 3);
    let d = Daemon::socket_only(&env);
    let local_keys = |user: &str| {
        env.sql(&format!(
            "SELECT name FROM local_keys WHERE user = '{user}' ORDER BY name"
        ))
    };

    let o = d.enroll_as(&alice, &["webauthn", "list"], "");
    assert!(o.status.success(), "{}", output_text(&o));
    let list = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(
        list.contains("alice key") && list.trim_end().ends_with("(local)"),
        "{list}"
    );
    assert!(!list.contains("bob key"), "{list}");
    let o = d.enroll_as(&bob, &["webauthn", "list"], "");
    assert!(
        output_text(&o).contains("bob key") && !output_text(&o).contains("alice key"),
        "{}",
        output_text(&o)
    );
    // Naming alice in the request changes nothing: the peer uid decides.
    let r = raw(
        &bob,
        &d.socket,
        &format!(r#"frame:{{"version":1,"user":"{alice}","op":"webauthn_list"}}"#),
    );
    assert!(
        r.contains(r#""code":"denied""#) && !r.contains("alice key"),
        "{r}"
    );

    // Removing: no code, a wrong code, another user's key: nothing changes.
    let remove = |user: &str, name: &str, input: &str| {
        d.enroll_as(user, &["webauthn", "remove", name], input)
    };
    let o = remove(&alice, "alice key", "");
    assert!(!o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("needs a current code"),
        "{}",
        output_text(&o)
    );
    let o = remove(
        &alice,
        "alice key",
        "000000
",
    );
    assert!(!o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("not a valid current code"),
        "{}",
        output_text(&o)
    );
    assert_eq!(env.status_json(&alice)["failures"], 1);
    let o = remove(
        &alice,
        "bob key",
        &format!(
            "{}
",
            codes[0]
        ),
    );
    assert!(!o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("no key named \"bob key\""),
        "{}",
        output_text(&o)
    );
    assert_eq!(local_keys(&alice), "alice key");
    assert_eq!(local_keys(&bob), "bob key");

    // With a current backup code the key goes, and only it.
    let _ = env.logs();
    let o = remove(
        &alice,
        "alice key",
        &format!(
            "{}
",
            codes[1]
        ),
    );
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("Removed the key \"alice key\"."),
        "{}",
        output_text(&o)
    );
    assert_eq!(local_keys(&alice), "");
    assert_eq!(local_keys(&bob), "bob key");
    let logs = env.logs().join("\n");
    assert!(
        logs.contains(&format!(
            "factor removed user={alice} factor=webauthn by uid="
        )) && logs.contains(&format!("({alice}) via=2fad proof=backup key=alice_key")),
        "{logs}"
    );
    assert!(!logs.contains(&codes[1]), "{logs}");
    let o = d.enroll_as(&alice, &["webauthn", "list"], "");
    assert!(
        output_text(&o).contains("No security keys registered."),
        "{}",
        output_text(&o)
    );

    // bob has no other factor to prove himself with through 2fad (a local
    // key answers only at the console): his key stays until root removes it.
    let o = remove(
        &bob, "bob key", "123456
",
    );
    assert!(!o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("sudo 2fa-enroll webauthn remove \"bob key\" --user"),
        "{}",
        output_text(&o)
    );
    assert_eq!(local_keys(&bob), "bob key");
    env.enroll_ok(&["webauthn", "remove", "bob key", "--user", &bob], "");
    assert_eq!(local_keys(&bob), "");
    drop(d);
}

/// Under systemd socket activation 2fad serves the socket it was passed
/// (LISTEN_FDS), which is what debian/2fad.socket sets up.
#[test]
fn socket_activation() {
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("activated.sock");
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&socket)
        .arg(common::daemon_bin())
        .arg("--config")
        .arg(&env.conf)
        .arg("--socket")
        .arg(dir.path().join("unused.sock"))
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "no socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = raw("root", &socket, r#"frame:{"version":1,"op":"status"}"#);
    let _ = child.kill();
    let _ = child.wait();
    assert!(r.contains(r#""result":"status""#), "{r}");
    assert!(
        !dir.path().join("unused.sock").exists(),
        "used the passed socket"
    );
}

/// Users list and revoke their own remembered devices through 2fad.
#[test]
fn users_manage_their_remembered_devices() {
    let carol = system_user("p2fa-brk-c", "Br0ker-p2fa");
    let env = Env::with_config("[remember]\nenabled = true\n");
    env.enroll_totp(&carol);
    common::fresh_step(5);
    let a = env.attempt("p2fa", &carol, &format!("{}\n", totp(SECRET, None)), None);
    assert!(a.ok, "{}", a.output);
    let d = Daemon::socket_only(&env);
    let o = d.enroll_as(&carol, &["devices", "list"], "");
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("p2fa") && text.contains("tty"), "{text}");
    let o = d.enroll_as(&carol, &["devices", "revoke", "--all"], "");
    assert!(
        output_text(&o).contains("Revoked 1 remembered device"),
        "{}",
        output_text(&o)
    );
    let o = d.enroll_as(&carol, &["devices", "list"], "");
    assert!(
        output_text(&o).contains("No remembered devices"),
        "{}",
        output_text(&o)
    );
    let o = d.enroll_as(
        &carol,
        &["devices", "revoke", "--all", "--user", "root"],
        "",
    );
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("sudo 2fa-enroll devices"),
        "{}",
        output_text(&o)
    );
}
