//! The shipped fail2ban filter (etc/fail2ban/filter.d/pam-2fa.conf)
//! against log lines the module really wrote through libpam: the real
//! `fail2ban-regex` (Debian's fail2ban) must match every failed
//! second-factor attempt from a remote host, with that host, and nothing
//! else: no success, no policy pass, no debug line, no local failure, and
//! never an address smuggled in through the user name. The jail example
//! passes `fail2ban-client --test`.

mod common;

use common::{Attempt, Env, SECRET, system_user, wrong_totp};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const PASSWORD: &str = "F2b-pass-p2fa";

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A fail2ban config dir with the system's `filter.d/common.conf` (the
/// shared prefix rules every filter includes) and our filter.
fn filter_dir(root: &Path) -> PathBuf {
    let dir = root.join("fail2ban");
    fs::create_dir_all(dir.join("filter.d")).unwrap();
    fs::copy(
        "/etc/fail2ban/filter.d/common.conf",
        dir.join("filter.d/common.conf"),
    )
    .expect("fail2ban (Debian package) is not installed");
    fs::copy(
        repo_file("etc/fail2ban/filter.d/pam-2fa.conf"),
        dir.join("filter.d/pam-2fa.conf"),
    )
    .unwrap();
    dir
}

/// The module's datagrams as rsyslog writes them to /var/log/auth.log:
/// the priority dropped, the host name after the time stamp.
fn as_auth_log(datagrams: &[String]) -> String {
    let mut out = String::new();
    for d in datagrams {
        let rest = d
            .strip_prefix('<')
            .and_then(|r| r.split_once('>'))
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("no priority: {d}"));
        // "Mmm dd hh:mm:ss " is 16 characters.
        let (stamp, line) = rest.split_at(16);
        out.push_str(&format!("{stamp}testhost {line}\n"));
    }
    out
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = common::output_text(&out);
    assert!(out.status.success(), "{cmd:?}: {text}");
    text
}

fn attempt(env: &Env, service: &str, user: &str, rhost: Option<&str>, input: &str) -> Attempt {
    let rh = rhost.map(|r| format!("rhost={r}"));
    let mut args: Vec<&str> = Vec::new();
    if let Some(r) = &rh {
        args.extend(["-I", r]);
    }
    args.extend([service, user, "authenticate"]);
    env.attempt_args(&args, input.as_bytes(), None)
}

#[test]
fn filter_matches_failures_with_their_host_and_nothing_else() {
    let user = system_user("p2fa-f2b", PASSWORD);
    let locked = system_user("p2fa-f2b-lock", PASSWORD);
    let unenrolled = system_user("p2fa-f2b-new", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&user);
    env.enroll_totp(&locked);
    let backup = env.enroll_backup(&user, 3);
    env.service("p2fa-debug", "debug");
    env.service("p2fa-lock", "rate_limit.max_failures=2");
    env.service("p2fa-null", "nullok");
    let wrong = format!("{}\n", wrong_totp(SECRET, common::now()));

    let mut log: Vec<String> = Vec::new();
    // Keeps an attempt's lines; returns the hosts fail2ban must find in
    // them, in order.
    let mut expect = |a: Attempt, ok: bool, matched: &[&str]| {
        assert_eq!(a.ok, ok, "{}\n{}", a.output, a.log);
        log.extend(a.log.lines().map(String::from));
        matched.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let mut ips: Vec<String> = Vec::new();
    // A success from afar, with debug lines: nothing matches.
    ips.extend(expect(
        attempt(
            &env,
            "p2fa-debug",
            &user,
            Some("198.51.100.1"),
            &format!("{}\n", backup[0]),
        ),
        true,
        &[],
    ));
    // A wrong code from afar (debug lines around it).
    ips.extend(expect(
        attempt(&env, "p2fa-debug", &user, Some("203.0.113.5"), &wrong),
        false,
        &["203.0.113.5"],
    ));
    // Malformed input.
    ips.extend(expect(
        attempt(&env, "p2fa", &user, Some("203.0.113.6"), "12;34\n"),
        false,
        &["203.0.113.6"],
    ));
    // An unknown user whose name carries another address.
    ips.extend(expect(
        attempt(
            &env,
            "p2fa",
            "x rhost=192.0.2.99",
            Some("203.0.113.7"),
            "123456\n",
        ),
        false,
        &["203.0.113.7"],
    ));
    // A wrong code at the console or in sudo (no rhost): no host to ban.
    ips.extend(expect(
        attempt(&env, "p2fa", &user, None, &wrong),
        false,
        &[],
    ));
    // Two wrong codes lock the account; the next attempt is refused as
    // locked: three failures from an IPv6 address.
    for _ in 0..2 {
        ips.extend(expect(
            attempt(&env, "p2fa-lock", &locked, Some("2001:db8::5"), &wrong),
            false,
            &["2001:db8::5"],
        ));
    }
    ips.extend(expect(
        attempt(&env, "p2fa-lock", &locked, Some("2001:db8::5"), &wrong),
        false,
        &["2001:db8::5"],
    ));
    // Let through by policy, and a success with a backup code: no match.
    ips.extend(expect(
        attempt(&env, "p2fa-null", &unenrolled, Some("198.51.100.2"), ""),
        false,
        &[],
    ));
    ips.extend(expect(
        attempt(
            &env,
            "p2fa",
            &user,
            Some("198.51.100.3"),
            &format!("{}\n", backup[1]),
        ),
        true,
        &[],
    ));

    let text = log.join("\n");
    assert!(text.contains("reason=locked"), "{text}");
    assert!(text.contains(" locked=60s"), "{text}");
    assert!(text.contains("user=x_rhost=192.0.2.99 "), "{text}");
    assert!(text.contains("<87>"), "no debug lines: {text}");
    assert!(text.contains("auth skipped"), "{text}");

    let file = env.root().join("auth.log");
    fs::write(&file, as_auth_log(&log)).unwrap();
    let conf = filter_dir(env.root());
    let out = run(Command::new("fail2ban-regex")
        .arg("-c")
        .arg(&conf)
        .arg(&file)
        .arg("pam-2fa"));
    let summary = format!(
        "Lines: {} lines, 0 ignored, {} matched, {} missed",
        log.len(),
        ips.len(),
        log.len() - ips.len()
    );
    assert!(out.contains(&summary), "expected {summary:?}:\n{out}");
    let found = run(Command::new("fail2ban-regex")
        .args(["-o", "ip", "-c"])
        .arg(&conf)
        .arg(&file)
        .arg("pam-2fa"));
    let found: Vec<&str> = found.lines().filter(|l| !l.contains(" WARNING ")).collect();
    assert_eq!(found, ips, "the hosts of the matched lines, in order");
}

/// The jail example, installed as a jail with the filter, passes
/// fail2ban's own configuration test.
#[test]
fn jail_example_passes_the_config_test() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("fail2ban");
    run(Command::new("cp").arg("-r").arg("/etc/fail2ban").arg(&conf));
    // Only our jail: Debian's default sshd jail wants /var/log/auth.log.
    for e in fs::read_dir(conf.join("jail.d")).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    fs::copy(
        repo_file("etc/fail2ban/filter.d/pam-2fa.conf"),
        conf.join("filter.d/pam-2fa.conf"),
    )
    .unwrap();
    fs::copy(
        repo_file("etc/fail2ban/jail.d/pam-2fa.conf.example"),
        conf.join("jail.d/pam-2fa.conf"),
    )
    .unwrap();
    let log = dir.path().join("auth.log");
    fs::write(&log, "").unwrap();
    fs::write(
        conf.join("jail.d/pam-2fa.local"),
        format!("[pam-2fa]\nlogpath = {}\nbackend = auto\n", log.display()),
    )
    .unwrap();
    let out = run(Command::new("fail2ban-client")
        .arg("-c")
        .arg(&conf)
        .arg("--test"));
    assert!(
        out.contains("OK: configuration test is successful"),
        "{out}"
    );
    let dump = run(Command::new("fail2ban-client")
        .arg("-c")
        .arg(&conf)
        .arg("-d"));
    assert!(dump.contains("['add', 'pam-2fa', 'auto']"), "{dump}");
    assert!(dump.contains("['set', 'pam-2fa', 'maxretry', 5]"), "{dump}");
}
