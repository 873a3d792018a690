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
use common::race::race;
use common::*;

const RACERS: usize = 64;
const CONFIG: &str = "[rate_limit]\nmax_failures = 1000\n";

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
