//! Everything that can go wrong around a login: the store, the key, the
//! config, the user, the input, the conversation. Every case must deny,
//! tell the user, log a clear line, not crash, and leave the store as it
//! was.

mod common;
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const UNAVAILABLE: &str =
    "Two-factor authentication is unavailable right now. Contact your administrator.";

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(st.success(), "{cmd}");
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap();
}

/// A tmpfs mounted for one test, unmounted when dropped (even when the
/// test fails), lazily if something still holds it.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(path).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0700,uid=0,gid=0"))
            .arg("tmpfs")
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", path.display());
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    fn remount(&self, opt: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opt}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(st.success(), "remount {opt}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Runs pamtester in a private mount namespace whose `/dev/log` is this
/// Env's syslog socket (see common::mount_ns).
fn attempt_devlog(env: &Env, args: &[&str], input: &str) -> Attempt {
    mount_ns::attempt(env, None, args, input)
}

/// Asserts a denial with the "unavailable" message and a log line holding
/// `why`.
fn assert_unavailable(a: &Attempt, why: &str) {
    assert!(!a.ok, "login succeeded: {}", a.output);
    assert!(a.output.contains(UNAVAILABLE), "{}", a.output);
    assert!(a.log.contains("reason=unavailable"), "{}", a.log);
    assert!(
        a.log.contains(why),
        "expected {why:?} in the log: {}",
        a.log
    );
    // <83> = authpriv * 8 + err.
    assert!(a.log.starts_with("<83>"), "{}", a.log);
}

fn code_line() -> String {
    format!("{}\n", totp(SECRET, None))
}

/// No store yet (`2fa-enroll init` has not run), with and without its
/// directory: `unenrolled = deny` (the default) and `grace` deny as
/// "unavailable"; `allow`, in the file or per service, lets users without
/// a factor through as PAM_IGNORE (never success: the rest of the stack
/// decides) with a log line saying the store is missing. The module
/// creates nothing: no store, no directory, no key.
#[test]
fn store_missing_denies_unless_unenrolled_allow() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    let dir = env.db.parent().unwrap().to_path_buf();
    let created = |env: &Env| {
        let mut found = vec![];
        for p in [&env.db, &env.key, &env.key.parent().unwrap().to_path_buf()] {
            if p.exists() {
                found.push(p.display().to_string());
            }
        }
        found
    };
    env.service("p2fa-grace", "unenrolled=grace");
    for with_dir in [false, true] {
        if with_dir {
            fs::create_dir(&dir).unwrap();
            chmod(&dir, 0o700);
        }
        for svc in ["p2fa", "p2fa-grace"] {
            let a = env.attempt(svc, &user, "123456\n", None);
            assert_unavailable(&a, "store missing");
            assert!(a.log.contains("does not exist"), "{}", a.log);
        }
        // allow: the key + code recipe (pam_permit after the module) lets
        // the user in without a prompt ...
        env.service_key_and_code("p2fa-kc", "unenrolled=allow");
        let a = env.attempt("p2fa-kc", &user, "", None);
        assert!(a.ok, "dir {with_dir}: {}", a.output);
        assert!(!a.output.contains("Verification code"), "{}", a.output);
        assert!(!a.output.contains(UNAVAILABLE), "{}", a.output);
        let line = a
            .log
            .lines()
            .find(|l| l.contains("auth skipped"))
            .unwrap_or_else(|| panic!("no log line: {}", a.log));
        assert!(
            line.contains(&format!("user={user} service=p2fa-kc"))
                && line.contains("reason=unenrolled-allowed-by-policy")
                && line.contains("no store yet: store missing")
                && line.contains(&env.db.display().to_string()),
            "{line}"
        );
        // <85> = authpriv * 8 + notice.
        assert!(line.starts_with("<85>"), "{line}");
        // ... but it is PAM_IGNORE, not success: as the only word in a
        // `sufficient` line after a wrong password it lets nobody in, and
        // a stack where no module said yes fails.
        env.service_lines(
            "p2fa-suff",
            &format!(
                "auth sufficient {} config={} unenrolled=allow\n\
                 auth required pam_unix.so nodelay\naccount required pam_permit.so\n",
                module_path().display(),
                env.conf.display()
            ),
        );
        let a = env.attempt("p2fa-suff", &user, "wrong-password\n", None);
        assert!(!a.ok, "in without a factor or password: {}", a.output);
        let a = env.attempt("p2fa-suff", &user, "alice-pw-1\n", None);
        assert!(a.ok, "{}", a.output);
        env.service("p2fa-alone", "unenrolled=allow");
        let a = env.attempt("p2fa-alone", &user, "", None);
        assert!(!a.ok, "the module alone said yes: {}", a.output);
        // Per service, in the file.
        env.write_config("[policy.services.p2fa-kc2]\nunenrolled = \"allow\"\n");
        env.service_key_and_code("p2fa-kc2", "");
        let a = env.attempt("p2fa-kc2", &user, "", None);
        assert!(a.ok, "per-service allow: {}", a.output);
        env.service_key_and_code("p2fa-kc3", "");
        let a = env.attempt("p2fa-kc3", &user, "", None);
        assert_unavailable(&a, "store missing");
        env.write_config("");
        assert!(created(&env).is_empty(), "created {:?}", created(&env));
        assert_eq!(dir.exists(), with_dir, "the store's directory");
        if with_dir {
            assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "files in {dir:?}");
        }
    }
}

/// "Missing" is believed only where nobody but root could have removed
/// the store: with `unenrolled = allow`, a store path that is a symlink
/// (dangling or not), a directory, a world-writable or foreign store, or
/// a missing store in a directory others can write is still refused.
#[test]
fn unsafe_or_broken_store_denies_even_with_unenrolled_allow() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::with_config("unenrolled = \"allow\"");
    env.service_key_and_code("p2fa-kc", "");
    let dir = env.db.parent().unwrap().to_path_buf();
    type Case = (&'static str, fn(&Env), &'static str);
    let cases: [Case; 8] = [
        (
            "dangling symlink",
            |e| {
                fs::remove_file(&e.db).unwrap();
                std::os::unix::fs::symlink(e.db.with_file_name("gone.db"), &e.db).unwrap();
            },
            "not a regular file",
        ),
        (
            "symlink to a good store",
            |e| {
                let real = e.db.with_file_name("real.db");
                fs::rename(&e.db, &real).unwrap();
                std::os::unix::fs::symlink(&real, &e.db).unwrap();
            },
            "not a regular file",
        ),
        (
            "a directory",
            |e| {
                fs::remove_file(&e.db).unwrap();
                fs::create_dir(&e.db).unwrap();
                chmod(&e.db, 0o700);
            },
            "not a regular file",
        ),
        (
            "world-writable store",
            |e| chmod(&e.db, 0o666),
            "has mode 0666",
        ),
        (
            "store owned by nobody",
            |e| chown(&e.db, 65534),
            "owned by uid 65534",
        ),
        (
            "missing, in a world-writable directory",
            |e| {
                fs::remove_file(&e.db).unwrap();
                chmod(e.db.parent().unwrap(), 0o777);
            },
            "store directory",
        ),
        (
            "missing, in a sticky world-writable directory",
            |e| {
                fs::remove_file(&e.db).unwrap();
                chmod(e.db.parent().unwrap(), 0o1777);
            },
            "has mode 1777",
        ),
        (
            "missing, directory owned by nobody",
            |e| {
                fs::remove_file(&e.db).unwrap();
                chown(e.db.parent().unwrap(), 65534);
            },
            "owned by uid 65534",
        ),
    ];
    for (what, break_it, why) in cases {
        // A fresh, good store each time (`init` as root).
        let _ = fs::remove_dir_all(&dir);
        env.enroll_ok(&["init"], "");
        break_it(&env);
        let a = env.attempt("p2fa-kc", &user, "", None);
        assert!(!a.ok, "{what}: let in");
        assert_unavailable(&a, why);
        assert!(a.log.contains("store refused"), "{what}: {}", a.log);
        assert!(!a.log.contains("auth skipped"), "{what}: {}", a.log);
    }
    // Repaired (no store in a private directory): let through again.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    let a = env.attempt("p2fa-kc", &user, "", None);
    assert!(a.ok, "{}", a.output);
}

/// A module running without root (a misconfigured service, or a non-root
/// program using PAM) cannot open the root-only store and must deny.
#[test]
fn store_unreadable_for_non_root_caller() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let before = env.user_row(&user);
    // Let the user reach the config, service files and log socket, but not
    // the store (its directory stays root 0700).
    chmod(env.root(), 0o755);
    chmod(&env.conf, 0o644);
    chmod(&env.svc_dir, 0o755);
    chmod(&env.root().join("log.sock"), 0o666);
    let cmd = env.pamtester(
        &["runuser", "-u", &user, "--"],
        None,
        &["p2fa", &user, "authenticate"],
    );
    let a = env.attempt_cmd(cmd, code_line().as_bytes());
    assert_unavailable(&a, "Permission denied");
    assert!(a.log.contains(&env.db.display().to_string()), "{}", a.log);
    assert_eq!(env.user_row(&user), before);
    // As root the same code works: the denial was the permissions.
    let a = env.attempt("p2fa", &user, &code_line(), None);
    assert!(a.ok, "{}", a.output);
}

#[test]
fn store_corrupt_denies_and_is_left_alone() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let good = fs::read(&env.db).unwrap();

    // Garbage from the first byte: not a database at all.
    let garbage: Vec<u8> = b"this is not a sqlite database! "
        .iter()
        .cycle()
        .take(16384)
        .copied()
        .collect();
    fs::write(&env.db, &garbage).unwrap();
    let a = env.attempt("p2fa", &user, &code_line(), None);
    assert_unavailable(&a, "store corrupt");
    assert_eq!(
        fs::read(&env.db).unwrap(),
        garbage,
        "corrupt store was modified"
    );

    // Valid header, damaged table pages.
    let mut damaged = good.clone();
    for b in &mut damaged[4096..] {
        *b = 0xA5;
    }
    fs::write(&env.db, &damaged).unwrap();
    let a = env.attempt("p2fa", &user, &code_line(), None);
    assert_unavailable(&a, "store corrupt");
    assert_eq!(fs::read(&env.db).unwrap(), damaged);

    // Empty file: a database without our schema.
    fs::write(&env.db, b"").unwrap();
    let a = env.attempt("p2fa", &user, &code_line(), None);
    assert_unavailable(&a, "no pam-2fa schema");
    assert_eq!(
        fs::read(&env.db).unwrap().len(),
        0,
        "empty store was written to"
    );

    fs::write(&env.db, &good).unwrap();
    let a = env.attempt("p2fa", &user, &code_line(), None);
    assert!(a.ok, "restored store refused: {}", a.output);
}

/// A store written by a newer pam-2fa is refused, not downgraded.
#[test]
fn store_schema_too_new_denies() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    env.sql("PRAGMA user_version = 99");
    let before = env.user_row(&user);
    let a = env.attempt("p2fa", &user, &code_line(), None);
    assert_unavailable(&a, "store too new");
    assert_eq!(env.sql("PRAGMA user_version"), "99");
    assert_eq!(env.user_row(&user), before);
}

/// A store (or its directory) someone else could write would let them
/// plant a secret: refused, whatever the code.
#[test]
fn store_ownership_and_mode_are_enforced() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let before = env.user_row(&user);
    fn dir(env: &Env) -> &Path {
        env.db.parent().unwrap()
    }
    type Case = (&'static str, fn(&Env), fn(&Env), &'static str);
    let cases: [Case; 7] = [
        (
            "store owned by nobody",
            |e| chown(&e.db, 65534),
            |e| chown(&e.db, 0),
            "owned by uid 65534, not root",
        ),
        (
            "store mode 0666",
            |e| chmod(&e.db, 0o666),
            |e| chmod(&e.db, 0o600),
            "has mode 0666",
        ),
        (
            "store mode 0640",
            |e| chmod(&e.db, 0o640),
            |e| chmod(&e.db, 0o600),
            "has mode 0640",
        ),
        (
            "store directory mode 0777",
            |e| chmod(dir(e), 0o777),
            |e| chmod(dir(e), 0o700),
            "store directory",
        ),
        (
            "store directory group-writable",
            |e| chmod(dir(e), 0o770),
            |e| chmod(dir(e), 0o700),
            "has mode 0770",
        ),
        (
            "store directory owned by nobody",
            |e| chown(dir(e), 65534),
            |e| chown(dir(e), 0),
            "owned by uid 65534",
        ),
        (
            "store is a symlink",
            |e| {
                let real = e.db.with_file_name("real.db");
                fs::rename(&e.db, &real).unwrap();
                std::os::unix::fs::symlink(&real, &e.db).unwrap();
            },
            |e| {
                fs::remove_file(&e.db).unwrap();
                fs::rename(e.db.with_file_name("real.db"), &e.db).unwrap();
            },
            "not a regular file",
        ),
    ];
    for (what, break_it, fix_it, why) in cases {
        break_it(&env);
        let a = env.attempt("p2fa", &user, &code_line(), None);
        fix_it(&env);
        assert!(!a.ok, "{what}: accepted");
        assert_unavailable(&a, why);
        assert!(a.log.contains("store refused"), "{what}: {}", a.log);
        assert_eq!(env.user_row(&user), before, "{what}: store changed");
    }
    let a = env.attempt("p2fa", &user, &code_line(), None);
    assert!(a.ok, "repaired store refused: {}", a.output);
}

#[test]
fn store_on_read_only_filesystem_denies() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    let fs_guard = Tmpfs::mount(env.db.parent().unwrap(), "4m");
    env.enroll_totp(&user);
    let before = env.user_row(&user);
    let t = in_step(step_of(now()) + 20);
    fs_guard.remount("ro");
    for (input, what) in [
        (totp(SECRET, Some(t)), "right code"),
        (wrong_totp(SECRET, t), "wrong code"),
    ] {
        let a = env.attempt("p2fa", &user, &format!("{input}\n"), Some(t));
        assert!(!a.ok, "{what} accepted on a read-only store");
        assert_unavailable(&a, "store read-only");
        assert!(a.log.contains("is on a read-only filesystem"), "{}", a.log);
        assert!(!a.log_messages().contains(&input), "{}", a.log);
    }
    fs_guard.remount("rw");
    assert_eq!(env.user_row(&user), before);
    let a = env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", totp(SECRET, Some(t))),
        Some(t),
    );
    assert!(a.ok, "{}", a.output);
    // The module keeps its WAL between logins: a filesystem that turns
    // read-only with the WAL (and its index) left behind still denies,
    // and the store works again once writable.
    let wal = env.db.with_file_name("state.db-wal");
    assert!(wal.exists(), "no WAL left by the login");
    fs_guard.remount("ro");
    let t2 = t + 30;
    let a = env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", totp(SECRET, Some(t2))),
        Some(t2),
    );
    assert!(!a.ok, "right code accepted on a read-only store with a WAL");
    assert_unavailable(&a, "store read-only");
    fs_guard.remount("rw");
    let a = env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", totp(SECRET, Some(t2))),
        Some(t2),
    );
    assert!(a.ok, "{}", a.output);
}

/// A full disk: first with no room at all (the WAL index cannot even be
/// created), then with a little room left so the store opens and the WAL
/// write of the verdict fails. Both deny and record nothing half-way.
#[test]
fn store_on_full_disk_denies_and_records_nothing() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    let dir = env.db.parent().unwrap().to_path_buf();
    let _fs_guard = Tmpfs::mount(&dir, "1m");
    env.enroll_totp(&user);
    let before = env.user_row(&user);
    assert_eq!(before, "0|0|||0|0");
    let t = in_step(step_of(now()) + 30);
    let filler = dir.join("filler");
    sh(&format!(
        "dd if=/dev/zero of='{}' bs=4k 2>/dev/null || true",
        filler.display()
    ));

    for (room, expect) in [(0u64, "store full: no space left"), (32768, "store full")] {
        if room > 0 {
            let len = fs::metadata(&filler).unwrap().len();
            fs::OpenOptions::new()
                .write(true)
                .open(&filler)
                .unwrap()
                .set_len(len - room)
                .unwrap();
        }
        for (input, what) in [
            (totp(SECRET, Some(t)), "right code"),
            (wrong_totp(SECRET, t), "wrong code"),
        ] {
            let a = env.attempt("p2fa", &user, &format!("{input}\n"), Some(t));
            assert!(!a.ok, "{what} accepted on a full disk ({room} bytes free)");
            assert_unavailable(&a, expect);
        }
    }
    fs::remove_file(&filler).unwrap();
    assert_eq!(env.user_row(&user), before, "a failed write left traces");
    let a = env.attempt(
        "p2fa",
        &user,
        &format!("{}\n", totp(SECRET, Some(t))),
        Some(t),
    );
    assert!(a.ok, "{}", a.output);
}

#[test]
fn key_file_problems_deny() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let key = fs::read(&env.key).unwrap();
    assert_eq!(key.len(), 32);
    let before = env.user_row(&user);
    let k = env.key.clone();
    let restore = |p: &Path| {
        let _ = fs::remove_file(p);
        fs::write(p, &key).unwrap();
        chmod(p, 0o600);
        chown(p, 0);
    };
    type Case = (&'static str, fn(&Path), &'static str);
    let cases: [Case; 5] = [
        ("missing", |k| fs::remove_file(k).unwrap(), "No such file"),
        (
            "truncated",
            |k| {
                let short = fs::read(k).unwrap()[..16].to_vec();
                fs::write(k, short).unwrap()
            },
            "has 16 bytes, expected 32",
        ),
        ("world-readable", |k| chmod(k, 0o644), "has mode 0644"),
        ("owned by nobody", |k| chown(k, 65534), "owned by uid 65534"),
        (
            "a different key",
            |k| fs::write(k, [0x42u8; 32]).unwrap(),
            "does not match the store",
        ),
    ];
    for (what, break_it, why) in cases {
        break_it(&k);
        let a = env.attempt("p2fa", &user, &code_line(), None);
        restore(&k);
        assert!(!a.ok, "key {what}: accepted");
        assert_unavailable(&a, why);
        assert_eq!(env.user_row(&user), before, "key {what}: store changed");
    }
    let a = env.attempt("p2fa", &user, &code_line(), None);
    assert!(a.ok, "{}", a.output);
}

/// A bad config denies (fail closed, even when the broken file says
/// `unenrolled = "allow"`), tells the user, logs the problem to /dev/log
/// and never touches the store.
#[test]
fn invalid_config_denies_and_logs() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let unenrolled = system_user("p2fa-dave", "dave-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let before = env.user_row(&user);
    let good_conf = fs::read_to_string(&env.conf).unwrap();
    let file_cases = [
        ("unknown key", "unenroled = \"allow\"", "unenroled"),
        (
            "window out of range",
            "[totp]\nwindow = 11",
            "totp.window = 11 is out of range",
        ),
        ("bad enum value", "unenrolled = \"maybe\"", "maybe"),
        (
            "busy timeout out of range",
            "busy_timeout_ms = 50",
            "busy_timeout_ms = 50 is out of range",
        ),
        ("not TOML", "this is [not toml", "2fa.conf"),
        (
            "allow plus a typo",
            "unenrolled = \"allow\"\n[rate_limit]\nmax_failure = 3",
            "max_failure",
        ),
    ];
    for (what, extra, why) in file_cases {
        fs::write(&env.conf, format!("{good_conf}{extra}\n")).unwrap();
        for who in [&user, &unenrolled] {
            let a = attempt_devlog(&env, &["p2fa", who, "authenticate"], &code_line());
            assert!(!a.ok, "{what}: {who} let in: {}", a.output);
            assert!(a.output.contains(UNAVAILABLE), "{what}: {}", a.output);
            assert!(
                !a.output.contains("Verification code:"),
                "{what}: {}",
                a.output
            );
            // The config could not be read: pam_syslog's form still.
            assert!(
                a.log.contains(&format!(
                    " pamtester[{}]: pam_2fa(p2fa:auth): configuration error, denying",
                    a.pid
                )),
                "{what}: {}",
                a.log
            );
            assert!(
                a.log.contains("configuration error, denying"),
                "{what}: {}",
                a.log
            );
            assert!(a.log.contains(why), "{what}: expected {why:?}: {}", a.log);
        }
    }
    fs::write(&env.conf, &good_conf).unwrap();

    let arg_cases = [
        ("unknown module argument", "totp.windwo=2", "windwo"),
        ("bad module argument value", "totp.window=-1", "window"),
        (
            "bad module argument key",
            "totp..window=1",
            "bad module argument key",
        ),
        (
            "explicit config missing",
            "config=/nonexistent/p2fa.conf",
            "cannot read config /nonexistent/p2fa.conf",
        ),
    ];
    for (what, arg, why) in arg_cases {
        env.service("p2fa-bad", arg);
        let a = attempt_devlog(&env, &["p2fa-bad", &user, "authenticate"], &code_line());
        assert!(!a.ok, "{what}: let in: {}", a.output);
        assert!(a.output.contains(UNAVAILABLE), "{what}: {}", a.output);
        assert!(
            a.log.contains("configuration error, denying"),
            "{what}: {}",
            a.log
        );
        assert!(a.log.contains(why), "{what}: expected {why:?}: {}", a.log);
    }
    assert_eq!(env.user_row(&user), before);
    assert_eq!(env.sql("SELECT count(*) FROM users"), "1");
    let a = env.attempt("p2fa", &user, &code_line(), None);
    assert!(a.ok, "good config refused: {}", a.output);
}

#[test]
fn unknown_user_denied_and_sanitised_in_log() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let a = env.attempt("p2fa", "p2fa-nosuchuser", &code_line(), None);
    assert!(!a.ok);
    assert!(a.output.contains("User not known"), "{}", a.output);
    assert!(!a.output.contains("Verification code:"), "{}", a.output);
    assert!(
        a.log
            .contains("auth denied user=p2fa-nosuchuser service=p2fa rhost=- reason=unknown-user"),
        "{}",
        a.log
    );
    let a = env.attempt("p2fa", "evil\nuser=root\x1b[31m", "123456\n", None);
    assert!(!a.ok);
    assert_eq!(a.log.lines().count(), 1, "{:?}", a.log);
    assert!(!a.log.contains('\x1b'), "{:?}", a.log);
    assert!(
        a.log.contains("user=evil?user=root?[31m service=p2fa"),
        "{:?}",
        a.log
    );
    assert_eq!(env.sql("SELECT group_concat(name) FROM users"), user);
}

/// Malformed answers get a clear refusal, are logged without their text,
/// and are not counted as guesses (they cannot match any code).
#[test]
fn bad_input_refused_clearly() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let mut long = "1".repeat(10 * 1024);
    long.push('\n');
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", b"\n".to_vec(), "empty"),
        ("blank", b"   \n".to_vec(), "empty"),
        ("10 KB", long.into_bytes(), "too long"),
        (
            "non-UTF-8",
            b"\xff\xfe123\x80\n".to_vec(),
            "not valid UTF-8 text",
        ),
        (
            "escape",
            b"12\x1b[31m34\n".to_vec(),
            "contains control characters",
        ),
        (
            "DEL",
            b"\x7f123456\n".to_vec(),
            "contains control characters",
        ),
        ("punctuation", b"123;456\n".to_vec(), "use only the digits"),
        (
            "fullwidth digits",
            "１２３４５６\n".as_bytes().to_vec(),
            "use only the digits",
        ),
    ];
    for (what, input, why) in cases {
        let a = env.attempt_args(&["p2fa", &user, "authenticate"], &input, None);
        assert!(!a.ok, "{what} accepted");
        assert!(
            a.output
                .contains(&format!("That is not a valid code: {why}")),
            "{what}: {}",
            a.output
        );
        assert!(
            a.log.contains(&format!("reason=bad-input ({why}")),
            "{what}: {}",
            a.log
        );
        // The message part, after "<pri>date IDENT[pid]: pam_2fa(p2fa:auth): ".
        let msg = a.pam_lines("p2fa")[0].message;
        assert!(
            msg.starts_with("auth denied") && !msg.contains("123"),
            "{what}: input in the log: {}",
            a.log
        );
        assert_eq!(a.log.lines().count(), 1, "{what}: {:?}", a.log);
    }
    assert_eq!(env.user_row(&user), "0|0|||0|0");
    let a = env.attempt("p2fa", &user, &code_line(), None);
    assert!(a.ok, "{}", a.output);
}

/// No answer at all (stdin is /dev/null: the conversation hits EOF).
#[test]
fn conversation_failure_denies() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let _ = env.logs();
    let _serial = pam_wrapper_lock();
    let out = env
        .pamtester(&[], None, &["p2fa", &user, "authenticate"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("Conversation error"), "{text}");
    let log = env.logs().join("\n");
    assert!(
        log.contains("auth denied user=p2fa-alice service=p2fa rhost=- reason=conversation-failed"),
        "{log}"
    );
    assert_eq!(env.user_row(&user), "0|0|||0|0");
}

/// A log socket nobody reads (a stuck syslog daemon) must not hang the
/// login: the datagram queue holds few lines and a blocking send would
/// wait for ever. The module gives up on the line and answers.
#[test]
fn full_log_socket_does_not_hang_login() {
    let user = system_user("p2fa-alice", "alice-pw-1");
    let env = Env::new();
    env.enroll_totp(&user);
    let _ = env.logs();
    // Fill the socket's queue from our own sender.
    let filler = std::os::unix::net::UnixDatagram::unbound().unwrap();
    filler.connect(env.root().join("log.sock")).unwrap();
    filler.set_nonblocking(true).unwrap();
    let mut queued = 0;
    while filler.send(b"<86>filler").is_ok() {
        queued += 1;
        assert!(queued < 100_000, "socket never filled");
    }
    let _serial = pam_wrapper_lock();
    let mut child = spawn_piped(&mut env.pamtester(&[], None, &["p2fa", &user, "authenticate"]));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(code_line().as_bytes()).unwrap();
    }
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("login hung on a full log socket ({queued} lines queued)");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "the right code was refused");
    let lines = env.logs();
    assert!(lines.len() >= queued, "{} < {queued}", lines.len());
}
