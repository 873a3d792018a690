//! Logins through the real libpam loading the built module (pam_wrapper).

mod common;
use common::*;

#[test]
fn totp_success_then_replay_refused() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let code = totp(SECRET, None);
    let first = env.attempt("p2fa", &user, &format!("{code}\n"), None);
    assert!(first.ok, "{}", first.output);
    let replay = env.attempt("p2fa", &user, &format!("{code}\n"), None);
    assert!(!replay.ok, "replayed code accepted: {}", replay.output);
    assert!(
        replay.output.contains("Invalid or already used code"),
        "{}",
        replay.output
    );
    let logs = format!("{}\n{}", first.log, replay.log);
    assert!(
        logs.contains("auth ok user=p2fa-alice service=p2fa"),
        "{logs}"
    );
    assert!(logs.contains("reason=replayed-code"), "{logs}");
    assert!(!logs.contains(&code), "code leaked into the log: {logs}");
}

/// A wrong code is refused with a message, counted in the store, and a
/// later correct code succeeds and clears the count.
#[test]
fn wrong_code_refused_with_message_and_counted() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let t = in_step(step_of(now()) + 10);
    let bad = wrong_totp(SECRET, t);
    let a = env.attempt("p2fa", &user, &format!("{bad}\n"), Some(t));
    assert!(!a.ok, "{}", a.output);
    assert!(a.output.contains("Verification code:"), "{}", a.output);
    assert!(
        a.output.contains("Invalid or already used code."),
        "{}",
        a.output
    );
    assert!(
        a.log.contains(
            "auth failed user=p2fa-alice service=p2fa rhost=- factor=totp reason=wrong-code failures=1/5"
        ),
        "{}",
        a.log
    );
    assert_eq!(env.sql("SELECT failures FROM users"), "1");

    let good = env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", totp(SECRET, Some(t))),
        Some(t),
    );
    assert!(good.ok, "{}", good.output);
    assert_eq!(env.sql("SELECT failures, locked_until FROM users"), "0|0");
    assert_eq!(
        env.sql("SELECT last_step FROM otp_tokens"),
        step_of(t).to_string()
    );
}

/// `totp.window` (default 1) lets the previous step's code in; a service
/// with the module argument `totp.window=0` refuses it.
#[test]
fn window_one_accepts_previous_step_window_zero_refuses() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    env.service("p2fa-w0", "totp.window=0");
    env.enroll_totp(&user);
    let s = step_of(now()) + 100;
    let t = in_step(s);
    let prev = totp(SECRET, Some(t - 30));
    let next = totp(SECRET, Some(t + 30));

    let a = env.attempt("p2fa-w0", &user, &format!("{prev}\n"), Some(t));
    assert!(!a.ok, "window=0 accepted the previous step: {}", a.output);
    assert!(a.log.contains("reason=wrong-code"), "{}", a.log);
    let a = env.attempt("p2fa-w0", &user, &format!("{next}\n"), Some(t));
    assert!(!a.ok, "window=0 accepted the next step: {}", a.output);

    let a = env.attempt("p2fa", &user, &format!("{prev}\n"), Some(t));
    assert!(a.ok, "window=1 refused the previous step: {}", a.output);
    assert_eq!(
        env.sql("SELECT last_step FROM otp_tokens"),
        (s - 1).to_string()
    );

    let a = env.attempt(
        "p2fa-w0",
        &user,
        &format!("{}\n", totp(SECRET, Some(t))),
        Some(t),
    );
    assert!(a.ok, "window=0 refused the current step: {}", a.output);
    assert_eq!(env.sql("SELECT last_step FROM otp_tokens"), s.to_string());
}

/// With the default window of 1, codes two steps away are refused (and
/// logged as wrong, not replayed); one step ahead is clock skew and passes.
#[test]
fn code_two_steps_away_refused() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let s = step_of(now()) + 200;
    let t = in_step(s);
    for (d, what) in [(-2, "two steps ago"), (2, "two steps ahead")] {
        let code = totp(SECRET, Some(t + 30 * d));
        let a = env.attempt("p2fa", &user, &format!("{code}\n"), Some(t));
        assert!(!a.ok, "code from {what} accepted: {}", a.output);
        assert!(a.log.contains("reason=wrong-code"), "{}", a.log);
    }
    assert_eq!(env.sql("SELECT last_step IS NULL FROM otp_tokens"), "1");
    let a = env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", totp(SECRET, Some(t + 30))),
        Some(t),
    );
    assert!(a.ok, "next step (skew) refused: {}", a.output);
    // Once step s+1 is used, the current step's code is older: refused.
    let a = env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", totp(SECRET, Some(t))),
        Some(t),
    );
    assert!(!a.ok, "code older than the last used step: {}", a.output);
    assert!(a.log.contains("reason=replayed-code"), "{}", a.log);
}

/// HOTP: the expected counter works, a used counter is refused, a token
/// pressed a few times offline is caught by the look-ahead, and codes past
/// the look-ahead or behind the counter are refused.
#[test]
fn hotp_counter_look_ahead_and_reuse() {
    let user = system_user("p2fa-hotp", "hotp-pw-1");
    let env = Env::new();
    env.enroll_ok(
        &[
            "hotp",
            "--user",
            &user,
            "--secret",
            SECRET,
            "--counter",
            "5",
            "--no-verify",
        ],
        "",
    );
    assert_eq!(env.sql("SELECT kind, counter FROM otp_tokens"), "hotp|5");

    let a = env.attempt("p2fa", &user, &format!("{}\n", hotp(SECRET, 5)), None);
    assert!(a.ok, "{}", a.output);
    assert!(a.log.contains("factor=hotp"), "{}", a.log);
    assert_eq!(env.sql("SELECT counter FROM otp_tokens"), "6");

    let a = env.attempt("p2fa", &user, &format!("{}\n", hotp(SECRET, 5)), None);
    assert!(!a.ok, "used HOTP counter accepted: {}", a.output);
    assert!(
        a.output.contains("Invalid or already used code"),
        "{}",
        a.output
    );

    // Counter 9 is within the look-ahead (6..16) of the expected 6.
    let a = env.attempt("p2fa", &user, &format!("{}\n", hotp(SECRET, 9)), None);
    assert!(a.ok, "look-ahead failed: {}", a.output);
    assert_eq!(env.sql("SELECT counter FROM otp_tokens"), "10");

    // Skipped-over counters 6..9 are behind now.
    let a = env.attempt("p2fa", &user, &format!("{}\n", hotp(SECRET, 7)), None);
    assert!(!a.ok, "counter behind the token accepted: {}", a.output);

    // Default look-ahead is 10: counters 10..=19 pass, 20 does not.
    let a = env.attempt("p2fa", &user, &format!("{}\n", hotp(SECRET, 20)), None);
    assert!(!a.ok, "code past the look-ahead accepted: {}", a.output);
    let a = env.attempt("p2fa", &user, &format!("{}\n", hotp(SECRET, 19)), None);
    assert!(a.ok, "last counter of the look-ahead refused: {}", a.output);
    assert_eq!(env.sql("SELECT counter FROM otp_tokens"), "20");
    assert_eq!(env.sql("SELECT failures FROM users"), "0");
}

/// A backup code works once; spaces and dashes are ignored; the user is
/// told how many are left; the code never reaches the log.
#[test]
fn backup_code_single_use_with_separators() {
    let user = system_user("p2fa-bob", "bob-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let codes = env.enroll_backup(&user, 5);
    assert_eq!(codes.len(), 5, "expected 5 codes");

    let a = env.attempt("p2fa", &user, &format!("{}\n", codes[0]), None);
    assert!(a.ok, "{}", a.output);
    assert!(
        a.output.contains("Backup code accepted; 4 left."),
        "{}",
        a.output
    );
    assert!(
        a.log
            .contains("auth ok user=p2fa-bob service=p2fa rhost=- factor=backup"),
        "{}",
        a.log
    );
    assert!(!a.log.contains(&codes[0]), "{}", a.log);

    let a = env.attempt("p2fa", &user, &format!("{}\n", codes[0]), None);
    assert!(!a.ok, "backup code accepted twice: {}", a.output);
    assert!(
        a.output.contains("Invalid or already used code"),
        "{}",
        a.output
    );

    let dashed = format!("{}-{}", &codes[1][..5], &codes[1][5..]);
    let a = env.attempt("p2fa", &user, &format!("{dashed}\n"), None);
    assert!(a.ok, "dashed code refused: {}", a.output);

    let spaced = format!(
        " {} {} {} \n",
        &codes[2][..3],
        &codes[2][3..7],
        &codes[2][7..]
    );
    let a = env.attempt("p2fa", &user, &spaced, None);
    assert!(a.ok, "spaced code refused: {}", a.output);
    // Three or fewer left: the user is told how to make new ones.
    assert!(a.output.contains("2 left"), "{}", a.output);
    assert!(a.output.contains("2fa-enroll backup"), "{}", a.output);

    assert_eq!(
        env.sql(
            "SELECT count(*) FROM backup_codes WHERE used_at IS NOT NULL AND used_service = 'p2fa'"
        ),
        "3"
    );
    let a = env.attempt("p2fa", &user, &format!("{dashed}\n"), None);
    assert!(!a.ok, "used dashed code accepted: {}", a.output);
}

/// The module keeps SQLite's WAL between logins (no checkpoint and delete
/// at every close) and checkpoints it itself: over many logins the WAL
/// stays bounded, every spent code stays spent, and the WAL and its index
/// stay as private as the store.
#[test]
fn many_logins_keep_the_wal_bounded_and_every_code_spent() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let user = system_user("p2fa-wal", "wal-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let codes = env.enroll_backup(&user, 100);
    assert_eq!(codes.len(), 100);
    let wal = env.db.with_file_name("state.db-wal");
    let shm = env.db.with_file_name("state.db-shm");
    // One login's frames past the threshold at most: the check runs at open.
    let bound = p2fa_core::store::WAL_CHECKPOINT_BYTES + 8 * (24 + 4096);
    let (mut largest, mut shrunk, mut prev) = (0, 0, 0);
    // Backup codes and TOTP codes in turn, each TOTP login in a new step:
    // 200 logins, a few checkpoints' worth of WAL frames.
    let first_step = step_of(now()) + 10;
    let mut last_t = 0;
    for i in 0..200 {
        let t = in_step(first_step + i as i64);
        let input = if i % 2 == 0 {
            codes[i / 2].clone()
        } else {
            last_t = t;
            totp(SECRET, Some(t))
        };
        let a = env.attempt("p2fa", &user, &format!("{input}\n"), Some(t));
        assert!(a.ok, "login {i}: {}", a.output);
        let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert!(len <= bound, "WAL {len} bytes after login {i}");
        if len < prev {
            shrunk += 1;
        }
        (prev, largest) = (len, largest.max(len));
    }
    assert!(largest > 0, "the WAL never outlived a login");
    assert!(
        shrunk >= 1,
        "the WAL was never checkpointed (largest {largest})"
    );
    for f in [&wal, &shm] {
        let m = std::fs::metadata(f).unwrap();
        assert_eq!(
            (m.uid(), m.permissions().mode() & 0o777),
            (0, 0o600),
            "{f:?}"
        );
    }
    // The last TOTP code and spent backup codes do not work again.
    let a = env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", totp(SECRET, Some(last_t))),
        Some(last_t),
    );
    assert!(!a.ok, "replayed TOTP code accepted: {}", a.output);
    for code in [&codes[0], &codes[57], &codes[99]] {
        let a = env.attempt("p2fa", &user, &format!("{code}\n"), Some(last_t));
        assert!(!a.ok, "spent backup code accepted: {}", a.output);
    }
    assert_eq!(
        env.sql("SELECT count(*) FROM backup_codes WHERE used_at IS NULL"),
        "0"
    );
}

/// Running `2fa-enroll backup` again replaces the codes: old ones die.
#[test]
fn new_backup_codes_kill_old_ones() {
    let user = system_user("p2fa-bob", "bob-pw-1");
    let env = Env::new();
    let old = env.enroll_backup(&user, 4);
    let a = env.attempt("p2fa", &user, &format!("{}\n", old[0]), None);
    assert!(a.ok, "{}", a.output);
    let new = env.enroll_backup(&user, 4);
    assert_eq!(new.len(), 4);
    assert!(old.iter().all(|c| !new.contains(c)), "codes repeated");
    assert_eq!(env.sql("SELECT count(*) FROM backup_codes"), "4");
    for c in &old[1..] {
        let a = env.attempt("p2fa", &user, &format!("{c}\n"), None);
        assert!(!a.ok, "old backup code still works: {}", a.output);
    }
    let a = env.attempt("p2fa", &user, &format!("{}\n", new[3]), None);
    assert!(a.ok, "{}", a.output);
    assert!(a.output.contains("3 left"), "{}", a.output);
}

/// After `max_failures` wrong codes the account is locked: even the right
/// code is refused, in every new process, until the lockout expires; a
/// failure right after expiry locks again for twice as long.
#[test]
fn rate_limit_locks_persists_and_expires() {
    let user = system_user("p2fa-carol", "carol-pw-1");
    let env = Env::with_config("[rate_limit]\nmax_failures = 3\nlockout_seconds = 60\n");
    env.enroll_totp(&user);
    let s = step_of(now()) + 300;
    let t = in_step(s);
    let bad = wrong_totp(SECRET, t);
    for i in 1..=2 {
        let a = env.attempt("p2fa", &user, &format!("{bad}\n"), Some(t));
        assert!(!a.ok);
        assert!(
            a.output.contains("Invalid or already used code."),
            "{}",
            a.output
        );
        assert!(a.log.contains(&format!("failures={i}/3")), "{}", a.log);
    }
    let a = env.attempt("p2fa", &user, &format!("{bad}\n"), Some(t));
    assert!(!a.ok);
    assert!(
        a.output
            .contains("Too many failed attempts: locked for 60 seconds"),
        "{}",
        a.output
    );
    let locked_until: i64 = env.sql("SELECT locked_until FROM users").parse().unwrap();
    assert!((t + 60..=t + 62).contains(&locked_until), "{locked_until}");

    // The correct code, in a new process, is refused while locked; the
    // module does not even ask for it.
    let good = totp(SECRET, Some(t + 1));
    let a = env.attempt("p2fa", &user, &format!("{good}\n"), Some(t + 1));
    assert!(!a.ok, "locked account accepted a code: {}", a.output);
    assert!(
        a.output.contains("Too many failed attempts. Try again in"),
        "{}",
        a.output
    );
    assert!(!a.output.contains("Verification code:"), "{}", a.output);
    assert!(
        a.log
            .contains("auth denied user=p2fa-carol service=p2fa rhost=- reason=locked failures=3"),
        "{}",
        a.log
    );
    assert_eq!(
        env.sql("SELECT last_step IS NULL, failures FROM otp_tokens, users"),
        "1|3"
    );

    // Expired: one more failure locks again, for twice as long.
    let t2 = in_step(s + 3); // t + 90
    let a = env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", wrong_totp(SECRET, t2)),
        Some(t2),
    );
    assert!(!a.ok);
    assert!(a.output.contains("locked for 2 minutes"), "{}", a.output);
    let a = env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", totp(SECRET, Some(t2))),
        Some(t2),
    );
    assert!(!a.ok, "{}", a.output);
    assert!(a.output.contains("Try again in"), "{}", a.output);

    // After that lockout expires the correct code works and resets the count.
    let t3 = in_step(s + 9); // t2 + 180
    let a = env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", totp(SECRET, Some(t3))),
        Some(t3),
    );
    assert!(a.ok, "{}", a.output);
    assert_eq!(env.sql("SELECT failures, locked_until FROM users"), "0|0");
}

/// `2fa-enroll unlock` clears a lockout at once.
#[test]
fn unlock_clears_lockout() {
    let user = system_user("p2fa-carol", "carol-pw-1");
    let env = Env::with_config(
        "[rate_limit]\nmax_failures = 2\nlockout_seconds = 3600\nmax_lockout_seconds = 3600\n",
    );
    env.enroll_totp(&user);
    let t = in_step(step_of(now()) + 400);
    let bad = wrong_totp(SECRET, t);
    for _ in 0..2 {
        assert!(!env.attempt("p2fa", &user, &format!("{bad}\n"), Some(t)).ok);
    }
    let good = format!("{}\n", totp(SECRET, Some(t)));
    let a = env.attempt("p2fa", &user, &good, Some(t));
    assert!(!a.ok, "{}", a.output);
    assert!(a.output.contains("Try again in 60 minutes"), "{}", a.output);
    let status = env.enroll_ok(&["status", "--user", &user], "");
    assert!(
        status.contains("failed attempts since last success: 2"),
        "{status}"
    );

    let out = env.enroll_ok(&["unlock", "--user", &user], "");
    assert!(out.contains("Cleared failed attempts and lockout"), "{out}");
    assert_eq!(env.sql("SELECT failures, locked_until FROM users"), "0|0");
    let a = env.attempt("p2fa", &user, &good, Some(t));
    assert!(a.ok, "still locked after unlock: {}", a.output);
}

/// No factor: denied by default; let through (and logged) when the admin
/// says so in a module argument or the config file; an explicit module
/// argument beats the file; an enrolled user still needs a code under
/// `allow`. "Let through" is PAM_IGNORE: pam_2fa alone says neither yes
/// nor no, and the stack for a host where it is the only auth module ends
/// with pam_permit (tests/attack/inputs.rs tries the other stacks).
#[test]
fn unenrolled_policy() {
    let user = system_user("p2fa-dave", "dave-pw-1");
    let enrolled = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    env.enroll_totp(&enrolled); // creates the store
    env.service_key_and_code("p2fa-allow", "unenrolled=allow");
    env.service_key_and_code("p2fa-deny", "unenrolled=deny");
    env.service_key_and_code("p2fa-kc", "");

    let a = env.attempt("p2fa", &user, "123456\n", None);
    assert!(!a.ok, "unenrolled user let in by default: {}", a.output);
    assert!(
        a.output.contains("No second factor is set up"),
        "{}",
        a.output
    );
    assert!(
        a.log
            .contains("auth denied user=p2fa-dave service=p2fa rhost=- reason=no-factor-enrolled"),
        "{}",
        a.log
    );

    let a = env.attempt("p2fa-allow", &user, "", None);
    assert!(a.ok, "{}", a.output);
    assert!(!a.output.contains("Verification code:"), "{}", a.output);
    assert!(
        a.log.contains("auth skipped user=p2fa-dave service=p2fa-allow rhost=- factor=none reason=unenrolled-allowed-by-policy"),
        "{}",
        a.log
    );
    // Policy is for users without a factor only.
    let a = env.attempt(
        "p2fa-allow",
        &enrolled,
        &format!("{}\n", wrong_totp(SECRET, now())),
        None,
    );
    assert!(!a.ok, "enrolled user passed without a code: {}", a.output);

    env.write_config("unenrolled = \"allow\"");
    let a = env.attempt("p2fa-kc", &user, "", None);
    assert!(a.ok, "config unenrolled=allow ignored: {}", a.output);
    // The module alone (`auth required pam_2fa.so`) let nobody in: PAM
    // fails a stack in which no module said yes.
    let a = env.attempt("p2fa", &user, "", None);
    assert!(!a.ok, "PAM_SUCCESS for a user with no factor: {}", a.output);
    assert!(
        a.log.contains("reason=unenrolled-allowed-by-policy"),
        "{}",
        a.log
    );
    let a = env.attempt("p2fa-deny", &user, "", None);
    assert!(
        !a.ok,
        "module argument did not override the file: {}",
        a.output
    );
    // Nothing was stored about the unenrolled user.
    assert_eq!(
        env.sql(&format!("SELECT count(*) FROM users WHERE name = '{user}'")),
        "0"
    );
}

/// Log lines carry user, service, rhost, factor and outcome, with the
/// authpriv facility and the pam_2fa ident, sanitised, and never a code.
#[test]
fn syslog_lines_have_fields_and_never_the_code() {
    let user = system_user("p2fa-erin", "erin-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let backup = env.enroll_backup(&user, 2);
    let t = in_step(step_of(now()) + 500);
    let code = totp(SECRET, Some(t));
    let bad = wrong_totp(SECRET, t);

    let a = env.attempt_args(
        &["-I", "rhost=192.0.2.7", "p2fa", &user, "authenticate"],
        format!("{bad}\n").as_bytes(),
        Some(t),
    );
    assert!(!a.ok);
    // <84> = authpriv (10) * 8 + warning (4).
    assert!(a.log.starts_with("<84>"), "{}", a.log);
    // pam_syslog()'s form: the host program's name and pid, then
    // pam_2fa(SERVICE:auth) (faketime forks: pamtester is its child).
    let lines = a.pam_lines("p2fa");
    assert_eq!(lines.len(), 1, "{}", a.log);
    assert!(
        a.log.contains(&format!(" pamtester[{}]: pam_2fa(p2fa:auth): auth failed user=p2fa-erin service=p2fa rhost=192.0.2.7 factor=totp reason=wrong-code failures=1/5", lines[0].pid)),
        "{}",
        a.log
    );
    assert!(!a.log_messages().contains(&bad), "{}", a.log);

    let a = env.attempt_args(
        &["-I", "rhost=192.0.2.7", "p2fa", &user, "authenticate"],
        format!("{code}\n").as_bytes(),
        Some(t),
    );
    assert!(a.ok, "{}", a.output);
    // <86> = authpriv * 8 + info (6).
    assert!(a.log.starts_with("<86>"), "{}", a.log);
    assert!(
        a.log
            .contains("auth ok user=p2fa-erin service=p2fa rhost=192.0.2.7 factor=totp"),
        "{}",
        a.log
    );
    assert!(!a.log_messages().contains(&code), "{}", a.log);
    assert_eq!(
        env.sql("SELECT last_success_service, last_success_rhost, last_success_factor FROM users"),
        "p2fa|192.0.2.7|totp"
    );

    // A hostile rhost cannot forge a second line or smuggle escapes.
    let a = env.attempt_args(
        &[
            "-I",
            "rhost=evil host\nJan  1 00:00:00 pam_2fa[1]: auth ok user=root\x1b[2J",
            "p2fa",
            &user,
            "authenticate",
        ],
        format!("{}\n", backup[0]).as_bytes(),
        Some(t),
    );
    assert!(a.ok, "{}", a.output);
    assert_eq!(a.log.lines().count(), 1, "{:?}", a.log);
    assert!(!a.log.contains('\x1b'), "{:?}", a.log);
    assert!(
        a.log
            .contains("rhost=evil_host?Jan__1_00:00:00_pam_2fa[1]:_auth_ok"),
        "{:?}",
        a.log
    );
    assert!(a.log.contains("factor=backup"), "{}", a.log);
    let formatted = format!("{}-{}", &backup[0][..5], &backup[0][5..]);
    assert!(
        !a.log.contains(&backup[0]) && !a.log.contains(&formatted),
        "{}",
        a.log
    );
}

/// PAM_SILENT suppresses the module's messages but not its verdict.
#[test]
fn pam_silent_hides_messages() {
    let user = system_user("p2fa-erin", "erin-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let t = in_step(step_of(now()) + 600);
    let a = env.attempt_args(
        &["p2fa", &user, "authenticate(PAM_SILENT)"],
        format!("{}\n", wrong_totp(SECRET, t)).as_bytes(),
        Some(t),
    );
    assert!(!a.ok);
    assert!(
        !a.output.contains("Invalid or already used code"),
        "{}",
        a.output
    );
    assert!(a.log.contains("reason=wrong-code"), "{}", a.log);
    let a = env.attempt_args(
        &["p2fa", &user, "authenticate(PAM_SILENT)"],
        format!("{}\n", totp(SECRET, Some(t))).as_bytes(),
        Some(t),
    );
    assert!(a.ok, "{}", a.output);
}
