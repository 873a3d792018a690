//! Many logins at once against one store: a code is accepted exactly once,
//! every failure is counted, and nobody sees "database is locked".
//!
//! Each race uses its own Env whose config raises `rate_limit.max_failures`
//! far above the number of racers. With the default (5) the account would
//! lock after the fifth losing attempt, and every later racer would be
//! refused by the lockout check before its code is ever compared: a bug
//! that accepted one code twice could then hide behind the lockout. A high
//! limit makes every racer go through the full check-and-record
//! transaction.
//!
//! The racers do not use pam_wrapper: it gives each process a directory
//! named `/tmp/pam.X` with one of only 62 letters, chosen by a check-then-
//! mkdir that two processes starting together can both win, so 64 of them
//! at once run out of names or share one (and read another Env's service
//! file). Real libpam reads a uniquely named, temporary `/etc/pam.d`
//! service instead, exactly as sshd or sudo would.

mod common;
use common::*;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `/etc/pam.d/<unique name>` for one race, removed when dropped.
struct EtcPamService {
    name: String,
    path: std::path::PathBuf,
}

impl EtcPamService {
    fn new(env: &Env) -> EtcPamService {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "p2fa-race-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let path = std::path::Path::new("/etc/pam.d").join(&name);
        std::fs::write(
            &path,
            format!(
                "auth required {} config={}\naccount required pam_permit.so\n",
                module_path().display(),
                env.conf.display()
            ),
        )
        .unwrap();
        EtcPamService { name, path }
    }
}

impl Drop for EtcPamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

const RACERS: usize = 64;
const CONFIG: &str = "[rate_limit]\nmax_failures = 1000\n";

/// Starts `n` logins, lets each reach the prompt, then answers them all
/// at once; returns (successes, outputs, log lines).
fn race(env: &Env, user: &str, answer: &str, n: usize) -> (usize, Vec<String>, Vec<String>) {
    let service = EtcPamService::new(env);
    let collector = env.collect_logs();
    let mut children: Vec<Child> = (0..n)
        .map(|_| {
            Command::new("pamtester")
                .args([service.name.as_str(), user, "authenticate"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Each child now opens the store, reads the user, loads the key and
    // blocks at the prompt; a short pause lets most of them get there so
    // the answers land nearly together.
    std::thread::sleep(std::time::Duration::from_millis(500));
    for c in &mut children {
        let mut stdin = c.stdin.take().unwrap();
        let _ = stdin.write_all(answer.as_bytes());
    }
    let mut successes = 0;
    let mut outputs = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.success(),
            text.contains("successfully authenticated"),
            "{text}"
        );
        if out.status.success() {
            successes += 1;
        }
        outputs.push(text);
    }
    (successes, outputs, collector.finish())
}

/// The `failures=N/..` counts of the log lines, sorted.
fn failure_counts(logs: &[String]) -> Vec<u32> {
    let mut counts: Vec<u32> = logs
        .iter()
        .filter_map(|l| l.split("failures=").nth(1))
        .map(|f| f.split('/').next().unwrap().parse().unwrap())
        .collect();
    counts.sort();
    counts
}

/// With one success among `losers` failures, the success resets the count
/// wherever it lands in the serial order: the losers before it counted
/// 1..=k, those after it 1..=m, k + m = losers, and the store ends at m.
/// Any lost or doubled update breaks this shape.
fn assert_counts_around_one_success(env: &Env, logs: &[String], losers: u32) {
    let m: u32 = env.sql("SELECT failures FROM users").parse().unwrap();
    assert!(m <= losers, "{m} failures recorded for {losers} losers");
    let mut expected: Vec<u32> = (1..=losers - m).chain(1..=m).collect();
    expected.sort();
    assert_eq!(failure_counts(logs), expected, "{logs:#?}");
}

fn assert_no_store_trouble(outputs: &[String], logs: &[String]) {
    for o in outputs {
        assert!(!o.contains("unavailable"), "{o}");
        assert!(!o.contains("Too many failed attempts"), "{o}");
    }
    for l in logs {
        for bad in ["locked", "busy", "unavailable", "store"] {
            assert!(!l.contains(bad), "{bad}: {l}");
        }
    }
}

#[test]
fn one_totp_code_sixty_four_racers_one_success() {
    let user = system_user("p2fa-race1", "race1-pw-1");
    let env = Env::with_config(CONFIG);
    env.enroll_totp(&user);
    let code = totp(SECRET, None);
    let (ok, outputs, logs) = race(&env, &user, &format!("{code}\n"), RACERS);
    assert_eq!(ok, 1, "{} logins accepted one TOTP code", ok);
    assert_no_store_trouble(&outputs, &logs);
    let refused = outputs
        .iter()
        .filter(|o| o.contains("Invalid or already used code."))
        .count();
    assert_eq!(refused, RACERS - 1);
    assert_eq!(
        logs.iter().filter(|l| l.contains("auth ok ")).count(),
        1,
        "{logs:#?}"
    );
    assert_eq!(
        logs.iter()
            .filter(|l| l.contains("reason=replayed-code"))
            .count(),
        RACERS - 1,
        "{logs:#?}"
    );
    assert_counts_around_one_success(&env, &logs, RACERS as u32 - 1);
    assert!(!env.sql("SELECT last_step FROM otp_tokens").is_empty());
}

#[test]
fn one_backup_code_sixty_four_racers_one_success() {
    let user = system_user("p2fa-race2", "race2-pw-1");
    let env = Env::with_config(CONFIG);
    let codes = env.enroll_backup(&user, 3);
    let (ok, outputs, logs) = race(&env, &user, &format!("{}\n", codes[0]), RACERS);
    assert_eq!(ok, 1, "{} logins accepted one backup code", ok);
    assert_no_store_trouble(&outputs, &logs);
    assert_eq!(
        outputs
            .iter()
            .filter(|o| o.contains("Backup code accepted; 2 left."))
            .count(),
        1
    );
    assert_eq!(
        logs.iter()
            .filter(|l| l.contains("factor=backup") && l.contains("auth ok"))
            .count(),
        1
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM backup_codes WHERE used_at IS NOT NULL"),
        "1"
    );
    assert_counts_around_one_success(&env, &logs, RACERS as u32 - 1);
    // The two codes nobody raced for still work.
    let a = env.attempt("p2fa", &user, &format!("{}\n", codes[1]), None);
    assert!(a.ok, "{}", a.output);
}

/// Concurrent wrong codes are each counted: no lost update of `failures`.
#[test]
fn concurrent_failures_are_all_counted() {
    let user = system_user("p2fa-race3", "race3-pw-1");
    let env = Env::with_config(CONFIG);
    env.enroll_totp(&user);
    let bad = wrong_totp(SECRET, now());
    let (ok, outputs, logs) = race(&env, &user, &format!("{bad}\n"), 32);
    assert_eq!(ok, 0);
    assert_no_store_trouble(&outputs, &logs);
    assert!(
        outputs
            .iter()
            .all(|o| o.contains("Invalid or already used code.")),
        "{outputs:#?}"
    );
    assert_eq!(env.sql("SELECT failures FROM users"), "32");
    assert_eq!(
        failure_counts(&logs),
        (1..=32).collect::<Vec<u32>>(),
        "each failure saw its own count"
    );
}
