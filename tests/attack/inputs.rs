//! The module's own inputs and verdicts (issue 11, section C): the config
//! file and its path, the key file, the user name as typed, the verdict
//! for users let through without a factor, the log socket and the host
//! key. Every login here goes through the real libpam (pamtester or
//! `tests/c/pam_once.c` under pam_wrapper) loading the built module.

use crate::common::pg::pg_bin;
use crate::common::{self, Env, SECRET, system_user, totp, wrong_totp};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "Inputs-p2fa-1";
const UNAVAILABLE: &str = "Two-factor authentication is unavailable right now.";

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap();
}

fn uid_of(user: &str) -> u32 {
    nix::unistd::User::from_name(user)
        .unwrap()
        .unwrap()
        .uid
        .as_raw()
}

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(st.success(), "{cmd}");
}

/// A PAM service file of `env` with the module line `control pam_2fa.so
/// config=CONF log_socket=<env's socket> args`, then `rest`. The module
/// argument `log_socket` lets a refused config still be logged where the
/// test reads.
fn service(env: &Env, name: &str, control: &str, conf: &str, args: &str, rest: &str) {
    env.service_lines(
        name,
        &format!(
            "auth {control} {} config={conf} log_socket={} {args}\n{rest}account required pam_permit.so\n",
            common::module_path().display(),
            env.root().join("log.sock").display()
        ),
    );
}

/// The stack of a host where pam_2fa is the only auth module (SSH key +
/// code): `auth required pam_2fa.so`, then `auth required pam_permit.so`,
/// as for google-authenticator's `nullok`.
fn key_and_code(env: &Env, name: &str, conf: &Path, args: &str) {
    service(
        env,
        name,
        "required",
        &conf.display().to_string(),
        args,
        "auth required pam_permit.so\n",
    );
}

/// One pamtester run that may hang: killed after `limit`.
struct Bounded {
    finished: bool,
    ok: bool,
    output: String,
    log: String,
    elapsed: Duration,
}

fn bounded(env: &Env, mut cmd: Command, input: &[u8], limit: Duration) -> Bounded {
    let _serial = common::pam_wrapper_lock();
    let _ = env.logs();
    let out_path = env
        .root()
        .join(format!("bounded-{}.out", std::process::id()));
    let out = fs::File::create(&out_path).unwrap();
    cmd.stdin(Stdio::piped())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(input);
    }
    let (status, elapsed) = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break (Some(s), start.elapsed());
        }
        if start.elapsed() >= limit {
            let elapsed = start.elapsed();
            let _ = child.kill();
            child.wait().unwrap();
            break (None, elapsed);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut output = String::new();
    fs::File::open(&out_path)
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    let _ = fs::remove_file(&out_path);
    let ok = status.is_some_and(|s| s.success());
    if status.is_some() {
        assert_eq!(
            ok,
            output.contains("successfully authenticated"),
            "{output}"
        );
    }
    Bounded {
        finished: status.is_some(),
        ok,
        output,
        log: env.logs().join("\n"),
        elapsed,
    }
}

fn pamtester(env: &Env, service: &str, user: &str) -> Command {
    env.pamtester(&[], None, &[service, user, "authenticate"])
}

fn exempt(user: &str) -> String {
    format!("[policy]\nexempt_users = [\"{user}\"]\n")
}

// ---------------------------------------------------------------------------
// Item 15: the config file, its directory and path.
// ---------------------------------------------------------------------------

/// An attacker who can write the config (owns it, or it or a directory
/// above it is writable by group/others) exempts themselves from 2FA. The
/// module must refuse such a config, with a log line naming the problem.
#[test]
fn config_a_user_could_write_is_refused() {
    let user = system_user("p2fa-in-cfg", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&user);
    // The config lives two directories below the Env's root, so that
    // every rule about the directories above it can be tried.
    let up = env.root().join("up");
    let etc = up.join("etc");
    fs::create_dir_all(&etc).unwrap();
    chmod(&up, 0o755);
    chmod(&etc, 0o755);
    let conf = etc.join("2fa.conf");
    let text = format!(
        "{}\n{}",
        fs::read_to_string(&env.conf).unwrap(),
        exempt(&user)
    );
    fs::write(&conf, &text).unwrap();
    chmod(&conf, 0o644);
    key_and_code(&env, "p2fa-in-cfg", &conf, "");
    let login = || {
        let a = env.attempt("p2fa-in-cfg", &user, "", None);
        a.assert_no_crash();
        a
    };
    // The admin's own exemption, in a trusted file, works.
    let a = login();
    assert!(
        a.ok,
        "a root-owned exemption was not honoured: {}",
        a.output
    );
    assert!(a.log.contains("reason=exempt-user"), "{}", a.log);

    let uid = uid_of(&user);
    /// What a case does to one path: another mode, or the user as owner.
    enum Harm {
        Mode(u32),
        Owner,
    }
    let cases = [
        (
            "config owned by the user",
            &conf,
            Harm::Owner,
            "owned by uid",
        ),
        (
            "config writable by its group",
            &conf,
            Harm::Mode(0o664),
            "has mode 0664",
        ),
        (
            "config writable by others",
            &conf,
            Harm::Mode(0o646),
            "has mode 0646",
        ),
        (
            "config directory writable by others, even sticky",
            &etc,
            Harm::Mode(0o1777),
            "has mode 1777",
        ),
        (
            "config directory owned by the user",
            &etc,
            Harm::Owner,
            "owned by uid",
        ),
        (
            "a directory above writable by others",
            &up,
            Harm::Mode(0o777),
            "has mode 0777",
        ),
        (
            "a directory above owned by the user",
            &up,
            Harm::Owner,
            "owned by uid",
        ),
    ];
    for (what, path, harm, why) in cases {
        let mode = fs::metadata(path).unwrap().permissions().mode() & 0o7777;
        match harm {
            Harm::Mode(m) => chmod(path, m),
            Harm::Owner => chown(path, uid),
        }
        let a = login();
        chown(path, 0);
        chmod(path, mode);
        assert!(!a.ok, "{what}: let in without a code: {}", a.output);
        assert!(a.output.contains(UNAVAILABLE), "{what}: {}", a.output);
        assert!(
            a.log.contains("configuration error, denying") && a.log.contains(why),
            "{what}: expected {why:?} in the log: {}",
            a.log
        );
    }
    // A sticky, world-writable directory above (like /tmp) is fine: only
    // root can rename or remove what root owns in it.
    chmod(&up, 0o1777);
    let a = login();
    chmod(&up, 0o755);
    assert!(
        a.ok,
        "sticky directory above refused: {}\n{}",
        a.output, a.log
    );
    // A symlink to a trusted file, planted by the user, is not followed.
    let link_dir = env.root().join("links");
    fs::create_dir(&link_dir).unwrap();
    std::os::unix::fs::symlink(&conf, link_dir.join("2fa.conf")).unwrap();
    key_and_code(&env, "p2fa-in-cfg-l", &link_dir.join("2fa.conf"), "");
    let a = env.attempt("p2fa-in-cfg-l", &user, "", None);
    assert!(!a.ok, "{}", a.output);
    assert!(a.log.contains("symlink"), "{}", a.log);
}

/// `config=` relative to the caller's working directory (which is the
/// caller's own under sudo) would let the caller pick the config.
#[test]
fn relative_config_path_is_refused() {
    let user = system_user("p2fa-in-rel", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&user);
    env.write_config(&exempt(&user));
    key_and_code(&env, "p2fa-in-rel", Path::new("2fa.conf"), "");
    let mut cmd = pamtester(&env, "p2fa-in-rel", &user);
    cmd.current_dir(env.root());
    let a = env.attempt_cmd(cmd, b"");
    assert!(!a.ok, "relative config= honoured: {}", a.output);
    assert!(a.output.contains(UNAVAILABLE), "{}", a.output);
    assert!(a.log.contains("absolute path"), "{}", a.log);
}

/// `2fa-enroll` run by root reads the config as well: a config another
/// user can write is refused there too (it names the store and the key).
#[test]
fn root_cli_refuses_a_config_a_user_could_write() {
    let user = system_user("p2fa-in-cli", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&user);
    chown(&env.conf, uid_of(&user));
    let out = env.enroll(&["status", "--user", &user], "");
    chown(&env.conf, 0);
    assert!(!out.status.success(), "root CLI used a user-owned config");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("owned by uid"), "{err}");
    let out = env.enroll(&["status", "--user", &user], "");
    assert!(out.status.success());
}

// ---------------------------------------------------------------------------
// Item 18: FIFOs, devices and huge files.
// ---------------------------------------------------------------------------

/// A config or key file that is a FIFO, a device or huge must not hang the
/// login or exhaust memory: the module refuses it at once. The run is cut
/// off after LIMIT (this checks "not forever", not speed); pamtester's
/// address space is capped so that reading a device endlessly fails
/// instead of taking the machine's memory.
#[test]
fn fifo_device_or_huge_config_and_key_are_refused_promptly() {
    const LIMIT: Duration = Duration::from_secs(10);
    let user = system_user("p2fa-in-fifo", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&user);
    let run = |svc: &str, what: &str, why: &str| {
        let cmd = env.pamtester(
            &["prlimit", "--as=2147483648", "--"],
            None,
            &[svc, &user, "authenticate"],
        );
        let b = bounded(
            &env,
            cmd,
            format!("{}\n", totp(SECRET, None)).as_bytes(),
            LIMIT,
        );
        println!("{what}: {:?}", b.elapsed);
        assert!(b.finished, "{what}: the login hung ({:?})", b.elapsed);
        assert!(!b.ok, "{what}: {}", b.output);
        assert!(b.output.contains(UNAVAILABLE), "{what}: {}", b.output);
        assert!(
            b.log.contains(why),
            "{what}: expected {why:?} in the log: {}\n{}",
            b.log,
            b.output
        );
    };
    // Config files.
    let fifo = env.root().join("fifo.conf");
    sh(&format!("mkfifo -m 0644 {}", fifo.display()));
    let dev = env.root().join("dev.conf");
    sh(&format!("mknod -m 0644 {} c 1 5", dev.display()));
    let huge = env.root().join("huge.conf");
    fs::write(&huge, "# padding\n".repeat(200_000)).unwrap();
    for (name, path, why) in [
        ("config FIFO", &fifo, "not a regular file"),
        ("config device", &dev, "not a regular file"),
        (
            "config /dev/zero",
            &PathBuf::from("/dev/zero"),
            "not a regular file",
        ),
        ("config 2 MB", &huge, "larger than"),
    ] {
        service(
            &env,
            "p2fa-in-f",
            "required",
            &path.display().to_string(),
            "",
            "",
        );
        run("p2fa-in-f", name, why);
    }
    // Key files (the config is fine; the user is enrolled, so the module
    // gets as far as loading the key).
    env.service("p2fa", "");
    let good = fs::read(&env.key).unwrap();
    for (name, make, why) in [
        ("key FIFO", "mkfifo -m 0600 {}", "not a regular file"),
        ("key device", "mknod -m 0600 {} c 1 5", "not a regular file"),
        (
            "key 64 MiB",
            "truncate -s 64M {} && chmod 0600 {}",
            "has 67108864 bytes",
        ),
    ] {
        fs::remove_file(&env.key).unwrap();
        sh(&make.replace("{}", &env.key.display().to_string()));
        run("p2fa", name, why);
    }
    fs::remove_file(&env.key).unwrap();
    fs::write(&env.key, &good).unwrap();
    chmod(&env.key, 0o600);
    common::fresh_step(5);
    let a = env.attempt("p2fa", &user, &format!("{}\n", totp(SECRET, None)), None);
    assert!(a.ok, "restored key: {}", a.output);
}

// ---------------------------------------------------------------------------
// Item 16: the name as typed vs the canonical passwd name.
// ---------------------------------------------------------------------------

/// A PostgreSQL cluster serving a passwd table to libnss-pgsql2, whose
/// `getpwnam` query the admin made case-insensitive, as SSSD and winbind
/// are for AD users: `getpwnam("ALICE")` answers with `pw_name = "alice"`.
/// Only processes run through [`CaseInsensitiveNss::wrap`] see it
/// (nss_wrapper loads libnss_pgsql into that process); the system's NSS is
/// untouched. libnss-pgsql2 reads its settings from the fixed path
/// /etc/nss-pgsql.conf, which is written here and removed on drop.
struct CaseInsensitiveNss {
    dir: PathBuf,
}

const NSS_PGSQL_CONF: &str = "/etc/nss-pgsql.conf";

impl CaseInsensitiveNss {
    fn start(users: &[&str]) -> CaseInsensitiveNss {
        let dir = std::env::temp_dir().join(format!("p2fa-in-pg-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o755);
        sh(&format!("chown postgres: {}", dir.display()));
        let pg = |args: &str| {
            let out = Command::new("runuser")
                .args(["-u", "postgres", "--", "sh", "-c"])
                .arg(format!("cd / && {args}"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let d = dir.display();
        let bin = pg_bin();
        let bin = bin.display();
        pg(&format!(
            "{bin}/initdb -D {d}/data -A trust -U postgres --no-sync -E UTF8 >/dev/null"
        ));
        let nss = CaseInsensitiveNss { dir: dir.clone() };
        pg(&format!(
            "{bin}/pg_ctl -D {d}/data -o \"-k {d} -c listen_addresses= -c fsync=off\" -l {d}/log -w start >/dev/null"
        ));
        let mut sql = String::from(
            "CREATE TABLE passwd_table (username text, passwd text, gecos text, homedir text, shell text, uid int, gid int);",
        );
        for u in users {
            let pw = nix::unistd::User::from_name(u).unwrap().unwrap();
            sql.push_str(&format!(
                "INSERT INTO passwd_table VALUES ('{u}', 'x', '', '/nonexistent', '/bin/false', {}, {});",
                pw.uid, pw.gid
            ));
        }
        pg(&format!(
            "psql -q -h {d} -U postgres -d postgres -c \"{sql}\""
        ));
        let none = "SELECT 'x'::text, 'x'::text, 0, ARRAY[]::text[] WHERE false";
        fs::write(
            NSS_PGSQL_CONF,
            format!(
                "connectionstring = host={d} dbname=postgres user=postgres connect_timeout=2\n\
                 getpwnam = SELECT username, passwd, gecos, homedir, shell, uid, gid FROM passwd_table WHERE lower(username) = lower($1)\n\
                 getpwuid = SELECT username, passwd, gecos, homedir, shell, uid, gid FROM passwd_table WHERE uid = $1\n\
                 allusers = SELECT username, passwd, gecos, homedir, shell, uid, gid FROM passwd_table\n\
                 getgroupmembersbygid = SELECT username FROM passwd_table WHERE gid = $1\n\
                 getgrnam = {none}\ngetgrgid = {none}\nallgroups = {none}\n\
                 groups_dyn = SELECT 0 WHERE false\n"
            ),
        )
        .unwrap();
        chmod(Path::new(NSS_PGSQL_CONF), 0o644);
        // nss_wrapper's own files: root only, so every other name goes to
        // the PostgreSQL module.
        fs::write(dir.join("passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        fs::write(dir.join("group"), "root:x:0:\n").unwrap();
        nss
    }

    /// `env VAR=... ` arguments that route NSS lookups through the module.
    fn wrap(&self, cmd: &mut Command) {
        let d = &self.dir;
        cmd.arg("LD_PRELOAD=libpam_wrapper.so libnss_wrapper.so")
            .arg(format!("NSS_WRAPPER_PASSWD={}", d.join("passwd").display()))
            .arg(format!("NSS_WRAPPER_GROUP={}", d.join("group").display()))
            .arg("NSS_WRAPPER_MODULE_SO_PATH=/lib/libnss_pgsql.so.2")
            .arg("NSS_WRAPPER_MODULE_FN_PREFIX=pgsql");
    }
}

impl Drop for CaseInsensitiveNss {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin().join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .current_dir("/")
            .output();
        let _ = fs::remove_file(NSS_PGSQL_CONF);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// With an NSS that matches names case-insensitively, `P2FA-IN-CASE` is the
/// same account as `p2fa-in-case`; it must hit the same record (factors,
/// failures, policy), not an unenrolled stranger that `unenrolled=allow`
/// lets in.
#[test]
fn case_variant_of_a_name_is_the_same_user() {
    let user = system_user("p2fa-in-case", PASSWORD);
    let typed = user.to_uppercase();
    let nss = CaseInsensitiveNss::start(&[&user]);
    let env = Env::with_config("unenrolled = \"allow\"\n");
    env.enroll_totp(&user);
    key_and_code(&env, "p2fa-in-case", &env.conf, "");
    // The NSS really answers the typed name with the canonical one.
    let mut getent = Command::new("env");
    nss.wrap(&mut getent);
    let out = getent.args(["getent", "passwd", &typed]).output().unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.starts_with(&format!("{user}:")), "getent: {line:?}");

    let login = |input: &str| {
        let mut cmd = Command::new("env");
        nss.wrap(&mut cmd);
        cmd.arg("PAM_WRAPPER=1")
            .arg(format!("PAM_WRAPPER_SERVICE_DIR={}", env.svc_dir.display()))
            .args(["pamtester", "p2fa-in-case", &typed, "authenticate"]);
        env.attempt_cmd(cmd, input.as_bytes())
    };
    let t = common::now();
    let a = login(&format!("{}\n", wrong_totp(SECRET, t)));
    assert!(!a.ok, "{typed} let in as an unenrolled user: {}", a.output);
    assert!(a.output.contains("Verification code"), "{}", a.output);
    assert!(
        a.log.contains(&format!("auth failed user={user} ")),
        "not logged under the canonical name: {}",
        a.log
    );
    assert!(a.log.contains(&format!("typed={typed}")), "{}", a.log);
    assert_eq!(env.status_json(&user)["failures"], 1, "failure not counted");
    common::fresh_step(5);
    let a = login(&format!("{}\n", totp(SECRET, None)));
    assert!(a.ok, "{}", a.output);
    assert!(
        a.log.contains(&format!("auth ok user={user} ")),
        "{}",
        a.log
    );
    assert_eq!(env.status_json(&user)["failures"], 0);
    assert_eq!(
        env.sql(&format!(
            "SELECT count(*) FROM users WHERE name = '{typed}'"
        )),
        "0",
        "a record was made for the name as typed"
    );
}

// ---------------------------------------------------------------------------
// Item 17: letting a user through without a factor is PAM_IGNORE.
// ---------------------------------------------------------------------------

/// `sufficient` and `[success=1 default=ignore]` stacks (2FA instead of a
/// password) must not let anyone in for whom the module checked nothing:
/// unenrolled under `allow` or `grace`, or exempt (the pam-u2f nouserok
/// bypass, CVE-2025-23013). The key + code recipe (pam_2fa, then
/// pam_permit) still lets them in, and enrolled users still need a code.
#[test]
fn policy_pass_without_a_factor_is_ignore_not_success() {
    let unenrolled = system_user("p2fa-in-suf", PASSWORD);
    let exempted = system_user("p2fa-in-ex", PASSWORD);
    let enrolled = system_user("p2fa-in-enr", PASSWORD);
    let env = Env::with_config(&exempt(&exempted));
    env.enroll_totp(&enrolled);
    let conf = env.conf.display().to_string();
    for (policy, who) in [
        ("unenrolled=allow", &unenrolled),
        ("unenrolled=grace", &unenrolled),
        ("", &exempted),
    ] {
        // 2FA as an alternative to the password: the password is wrong.
        service(
            &env,
            "p2fa-in-suff",
            "sufficient",
            &conf,
            policy,
            "auth required pam_unix.so nodelay\n",
        );
        let a = env.attempt("p2fa-in-suff", who, "wrong-password\n", None);
        assert!(
            !a.ok,
            "sufficient stack, {policy:?}, {who}: in without a factor or password: {}",
            a.output
        );
        // Debian's common-auth pattern: success jumps over pam_deny.
        service(
            &env,
            "p2fa-in-skip",
            "[success=1 default=ignore]",
            &conf,
            policy,
            "auth requisite pam_deny.so\nauth required pam_permit.so\n",
        );
        let a = env.attempt("p2fa-in-skip", who, "", None);
        assert!(
            !a.ok,
            "[success=1] stack, {policy:?}, {who}: in without a factor: {}",
            a.output
        );
        // The module alone decides nothing for them: libpam fails a stack
        // in which no module said yes.
        service(&env, "p2fa-in-alone", "required", &conf, policy, "");
        let a = env.attempt("p2fa-in-alone", who, "", None);
        assert!(
            !a.ok,
            "{policy:?}, {who}: module alone said yes: {}",
            a.output
        );
        // The key + code recipe lets them in, without a prompt.
        key_and_code(&env, "p2fa-in-kc", &env.conf, policy);
        let a = env.attempt("p2fa-in-kc", who, "", None);
        assert!(a.ok, "key+code recipe, {policy:?}, {who}: {}", a.output);
        assert!(!a.output.contains("Verification code"), "{}", a.output);
    }
    // The right password still works in the sufficient stack.
    service(
        &env,
        "p2fa-in-suff",
        "sufficient",
        &conf,
        "unenrolled=allow",
        "auth required pam_unix.so nodelay\n",
    );
    let a = env.attempt("p2fa-in-suff", &unenrolled, &format!("{PASSWORD}\n"), None);
    assert!(a.ok, "{}", a.output);
    // Enrolled users need their code in the recipe, and a code is success.
    key_and_code(&env, "p2fa-in-kc", &env.conf, "unenrolled=allow");
    let a = env.attempt(
        "p2fa-in-kc",
        &enrolled,
        &format!("{}\n", wrong_totp(SECRET, common::now())),
        None,
    );
    assert!(!a.ok, "enrolled user without the code: {}", a.output);
    common::fresh_step(5);
    service(
        &env,
        "p2fa-in-suff",
        "sufficient",
        &conf,
        "unenrolled=allow",
        "auth required pam_deny.so\n",
    );
    let a = env.attempt(
        "p2fa-in-suff",
        &enrolled,
        &format!("{}\n", totp(SECRET, None)),
        None,
    );
    assert!(a.ok, "a verified code is success: {}", a.output);
}

// ---------------------------------------------------------------------------
// Item 19: a stream log socket that never accepts.
// ---------------------------------------------------------------------------

/// A listening stream socket with backlog 0 whose queue is already full:
/// connect() to it blocks until the listener accepts, which it never does.
fn stalled_stream_socket(path: &Path) -> (std::os::fd::OwnedFd, Vec<std::os::fd::OwnedFd>) {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, connect, listen, socket,
    };
    let listener = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    let addr = UnixAddr::new(path).unwrap();
    bind(std::os::fd::AsRawFd::as_raw_fd(&listener), &addr).unwrap();
    listen(&listener, Backlog::new(0).unwrap()).unwrap();
    let mut queued = Vec::new();
    loop {
        let c = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .unwrap();
        match connect(std::os::fd::AsRawFd::as_raw_fd(&c), &addr) {
            Ok(()) => queued.push(c),
            Err(nix::errno::Errno::EAGAIN) => break,
            Err(e) => panic!("connect: {e}"),
        }
        assert!(queued.len() < 100, "backlog never filled");
    }
    (listener, queued)
}

/// Service `name`: the module alone with `env`'s config, logging to
/// `sock`.
fn logging_to(env: &Env, name: &str, sock: &Path) {
    env.service_lines(
        name,
        &format!(
            "auth required {} config={} log_socket={}\naccount required pam_permit.so\n",
            common::module_path().display(),
            env.conf.display(),
            sock.display()
        ),
    );
}

#[test]
fn stalled_stream_log_socket_does_not_delay_the_login() {
    let user = system_user("p2fa-in-log", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&user);
    let sock = env.root().join("stream.sock");
    let _stalled = stalled_stream_socket(&sock);
    logging_to(&env, "p2fa-in-log", &sock);
    common::fresh_step(5);
    let b = bounded(
        &env,
        pamtester(&env, "p2fa-in-log", &user),
        format!("{}\n", totp(SECRET, None)).as_bytes(),
        Duration::from_secs(20),
    );
    println!("login with a stalled stream log socket: {:?}", b.elapsed);
    assert!(b.finished, "the login hung on the log socket");
    assert!(b.ok, "{}", b.output);
    // "Not forever", with a wide margin for a busy machine; the module's
    // own budget for logging is 100 ms per PAM call.
    assert!(b.elapsed < Duration::from_secs(2), "{:?}", b.elapsed);
}

/// A stream log socket that works gets every line, NUL-terminated as
/// syslog-ng and glibc's syslog() frame them.
#[test]
fn stream_log_socket_that_accepts_gets_the_lines() {
    let user = system_user("p2fa-in-log2", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&user);
    let sock = env.root().join("stream-ok.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let reader = std::thread::spawn(move || {
        // Long enough to wait for other tests' pam_wrapper runs first.
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut s = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("the module never connected: {e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        all
    });
    logging_to(&env, "p2fa-in-log2", &sock);
    common::fresh_step(5);
    let a = env.attempt_cmd(
        pamtester(&env, "p2fa-in-log2", &user),
        format!("{}\n", totp(SECRET, None)).as_bytes(),
    );
    assert!(a.ok, "{}", a.output);
    let got = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    assert!(
        got.contains(&format!("auth ok user={user} service=p2fa-in-log2")),
        "{got:?}"
    );
    assert!(got.contains("<86>"), "{got:?}");
    assert!(got.ends_with('\0'), "{got:?}");
}

// ---------------------------------------------------------------------------
// Item 21: a host key that does not match the store.
// ---------------------------------------------------------------------------

/// With the wrong host key a backup code can never verify; the login must
/// be "unavailable" (an admin's problem), not "wrong code" counted toward
/// the user's lockout.
#[test]
fn wrong_host_key_is_unavailable_not_a_counted_failure() {
    let user = system_user("p2fa-in-key", PASSWORD);
    let env = Env::new();
    let codes = env.enroll_backup(&user, 3);
    let good = fs::read(&env.key).unwrap();
    let other: [u8; 32] = std::array::from_fn(|i| good[i] ^ 0x5a);
    fs::write(&env.key, other).unwrap();
    let before = env.user_row(&user);
    for _ in 0..3 {
        let a = env.attempt("p2fa", &user, &format!("{}\n", codes[0]), None);
        assert!(!a.ok, "{}", a.output);
        assert!(a.output.contains(UNAVAILABLE), "{}", a.output);
        assert!(!a.output.contains("Invalid"), "{}", a.output);
        assert!(a.log.contains("reason=unavailable"), "{}", a.log);
        assert!(a.log.contains("host key"), "{}", a.log);
    }
    assert_eq!(env.user_row(&user), before, "the store changed");
    // 2fa-enroll writes nothing with the wrong key either.
    let out = env.enroll(&["backup", "--user", &user], "");
    assert!(!out.status.success(), "new codes made with the wrong key");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not match the store"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.user_row(&user), before, "the store changed");
    fs::write(&env.key, &good).unwrap();
    assert_eq!(env.status_json(&user)["failures"], 0);
    let a = env.attempt("p2fa", &user, &format!("{}\n", codes[0]), None);
    assert!(a.ok, "right key: {}", a.output);
}
