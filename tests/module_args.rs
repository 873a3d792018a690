//! The module arguments admins type on every PAM line, through the real
//! libpam (pam_wrapper) and real neighbours on the stack: `debug`,
//! `nullok`, and `forward_pass` / `use_first_pass` / `try_first_pass`
//! for single-prompt clients, with `pam_unix.so use_first_pass` checking
//! the password the module hands on, and pam_wrapper's `pam_set_items.so`
//! as the earlier module that leaves a password + code in PAM_AUTHTOK
//! (it sets the item from the environment variable PAM_AUTHTOK).

mod common;

use common::{Attempt, Env, SECRET, in_step, now, step_of, system_user, totp, wrong_totp};
use std::path::PathBuf;

/// The users' system password. It ends in a digit, like many passwords.
const PASSWORD: &str = "Fwd-pass-p2fa9";

/// pam_wrapper's module that sets PAM items from the environment.
fn set_items_module() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path().join("pam_wrapper/pam_set_items.so")))
        .find(|p| p.exists());
    found.expect("pam_set_items.so (package libpam-wrapper) is missing")
}

/// Writes service `name`: pam_2fa with `args` (config and log socket of
/// `env`), after the lines `before` and followed by `after`.
fn stack(env: &Env, name: &str, before: &str, args: &str, after: &str) {
    env.service_lines(
        name,
        &format!(
            "{before}auth required {} config={} log_socket={} {args}\n{after}account required pam_permit.so\n",
            common::module_path().display(),
            env.conf.display(),
            env.root().join("log.sock").display()
        ),
    );
}

/// `before` line for a stack whose first module sets PAM_AUTHTOK.
fn set_items_line() -> String {
    format!("auth required {}\n", set_items_module().display())
}

const PAM_UNIX: &str = "auth required pam_unix.so use_first_pass nodelay\n";

/// A login whose PAM_AUTHTOK an earlier module sets to `authtok` (or
/// leaves unset).
fn with_authtok(
    env: &Env,
    service: &str,
    user: &str,
    authtok: Option<&str>,
    input: &str,
    at: i64,
) -> Attempt {
    let mut cmd = env.pamtester(&[], Some(at), &[service, user, "authenticate"]);
    cmd.env_remove("PAM_AUTHTOK");
    if let Some(t) = authtok {
        cmd.env("PAM_AUTHTOK", t);
    }
    env.attempt_cmd(cmd, input.as_bytes())
}

fn failures(env: &Env, user: &str) -> String {
    env.sql(&format!("SELECT failures FROM users WHERE name = '{user}'"))
}

/// Asserts no prompt was shown (pamtester prints each prompt).
fn assert_no_prompt(a: &Attempt) {
    for p in [
        "Password: ",
        "Password & verification code: ",
        "Verification code: ",
        "Verification code, or",
    ] {
        assert!(!a.output.contains(p), "a prompt was shown: {}", a.output);
    }
}

/// `debug`: more detail in the module's lines (paths, what the user has
/// and may use, the outcome and its time), at severity debug, and never
/// the code; nothing of it without the argument.
#[test]
fn debug_logs_details_and_never_the_code() {
    let user = system_user("p2fa-arg-dbg", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&user);
    env.enroll_backup(&user, 2);
    env.service("p2fa-dbg", "debug");
    let t = in_step(step_of(now()) + 700);
    let code = totp(SECRET, Some(t));

    let a = env.attempt("p2fa-dbg", &user, &format!("{code}\n"), Some(t));
    assert!(a.ok, "{}", a.output);
    let lines = a.pam_lines("p2fa-dbg");
    let debug: Vec<&str> = a.log.lines().filter(|l| l.starts_with("<87>")).collect();
    // <87> = authpriv (10) * 8 + debug (7).
    assert!(debug.len() >= 3, "{}", a.log);
    let messages = a.log_messages();
    for want in [
        format!(
            "debug: config={} db={} key_file={} arguments=[config,debug]",
            env.conf.display(),
            env.db.display(),
            env.key.display()
        ),
        format!(
            "debug: user={user} service=p2fa-dbg rhost=- store {} read in ",
            env.db.display()
        ),
        "enrolled: totp(6 digits),backup(2 unused, 0 used); allowed for the user's groups: all"
            .to_string(),
        format!("debug: user={user} service=p2fa-dbg rhost=- offered: otp,backup"),
        format!("auth ok user={user} service=p2fa-dbg rhost=- factor=totp"),
        "debug: PAM_SUCCESS (Success) after ".to_string(),
    ] {
        assert!(messages.contains(&want), "missing {want:?}:\n{messages}");
    }
    assert!(lines.iter().all(|l| l.hook == "auth"));
    assert!(!messages.contains(&code), "the code in the log: {messages}");

    let bad = wrong_totp(SECRET, t);
    let a = env.attempt("p2fa-dbg", &user, &format!("{bad}\n"), Some(t));
    assert!(!a.ok);
    let messages = a.log_messages();
    assert!(messages.contains("reason=wrong-code"), "{messages}");
    assert!(
        messages.contains("debug: PAM_AUTH_ERR (Denied) after "),
        "{messages}"
    );
    assert!(!messages.contains(&bad), "the code in the log: {messages}");

    // Without the argument: not one debug line.
    let a = env.attempt("p2fa", &user, &format!("{bad}\n"), Some(t));
    assert!(!a.ok);
    assert!(!a.log.contains("<87>"), "{}", a.log);
    assert!(!a.log_messages().contains("debug:"), "{}", a.log);
}

/// `nullok` is `unenrolled=allow`: an unenrolled user gets PAM_IGNORE
/// (the rest of the stack decides), never PAM_SUCCESS; an enrolled user
/// still needs a code.
#[test]
fn nullok_lets_the_unenrolled_through_with_ignore() {
    let unenrolled = system_user("p2fa-arg-null", PASSWORD);
    let enrolled = system_user("p2fa-arg-nule", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&enrolled);

    // Alone on the stack: IGNORE from every module is a failure in libpam.
    stack(&env, "p2fa-null-alone", "", "nullok", "");
    let a = env.attempt("p2fa-null-alone", &unenrolled, "", None);
    assert!(!a.ok, "PAM_SUCCESS without a factor: {}", a.output);
    let messages = a.log_messages();
    assert!(
        messages.contains(&format!(
            "auth skipped user={unenrolled} service=p2fa-null-alone rhost=- factor=none reason=unenrolled-allowed-by-policy"
        )),
        "{messages}"
    );
    assert!(!messages.contains("configuration error"), "{messages}");

    // Debian's common-auth pattern: only SUCCESS jumps over pam_deny.
    env.service_lines(
        "p2fa-null-skip",
        &format!(
            "auth [success=1 default=ignore] {} config={} nullok\nauth requisite pam_deny.so\nauth required pam_permit.so\naccount required pam_permit.so\n",
            common::module_path().display(),
            env.conf.display()
        ),
    );
    let a = env.attempt("p2fa-null-skip", &unenrolled, "", None);
    assert!(!a.ok, "[success=1] jumped over pam_deny: {}", a.output);

    // The key + code recipe: pam_permit after it lets them in, unasked.
    env.service_key_and_code("p2fa-null-kc", "nullok");
    let a = env.attempt("p2fa-null-kc", &unenrolled, "", None);
    assert!(a.ok, "{}", a.output);
    assert_no_prompt(&a);
    // Without nullok the same stack refuses them.
    env.service_key_and_code("p2fa-null-no", "");
    let a = env.attempt("p2fa-null-no", &unenrolled, "", None);
    assert!(!a.ok, "{}", a.output);
    assert!(a.log.contains("reason=no-factor-enrolled"), "{}", a.log);

    // An enrolled user still needs the code.
    let t = in_step(step_of(now()) + 710);
    let a = env.attempt(
        "p2fa-null-kc",
        &enrolled,
        &format!("{}\n", wrong_totp(SECRET, t)),
        Some(t),
    );
    assert!(!a.ok, "{}", a.output);
    let a = env.attempt(
        "p2fa-null-kc",
        &enrolled,
        &format!("{}\n", totp(SECRET, Some(t))),
        Some(t),
    );
    assert!(a.ok, "{}", a.output);
}

/// `forward_pass` + `pam_unix.so use_first_pass`: one answer,
/// "password123456"; the module checks the code and hands the password
/// on; a wrong code or a wrong password fails; a wrong code counts once.
#[test]
fn forward_pass_one_answer_for_pam_unix() {
    let user = system_user("p2fa-arg-fwd", PASSWORD);
    let unenrolled = system_user("p2fa-arg-fwdn", PASSWORD);
    let env = Env::new();
    env.enroll_totp(&user);
    let backup = env.enroll_backup(&user, 2);
    stack(&env, "p2fa-fwd", "", "forward_pass debug", PAM_UNIX);
    let t = in_step(step_of(now()) + 720);

    // A wrong code with the right password: one counted failure, though
    // the answer's tail reads as a TOTP code (6 digits) and as backup
    // codes (10 and 8 digits): three candidates, one transaction.
    let bad = wrong_totp(SECRET, t);
    let a = env.attempt(
        "p2fa-fwd",
        &user,
        &format!("{PASSWORD}0000{bad}\n"),
        Some(t),
    );
    assert!(!a.ok, "{}", a.output);
    let messages = a.log_messages();
    assert!(
        messages.contains(&format!(
            "auth failed user={user} service=p2fa-fwd rhost=- factor=totp reason=wrong-code failures=1/5"
        )),
        "{messages}"
    );
    assert_eq!(messages.matches("auth failed").count(), 1, "{messages}");
    assert_eq!(failures(&env, &user), "1");

    // The password alone: malformed, not counted.
    let a = env.attempt("p2fa-fwd", &user, &format!("{PASSWORD}\n"), Some(t));
    assert!(!a.ok, "{}", a.output);
    assert!(
        a.log
            .contains("reason=bad-input (the answer does not end in a verification code)"),
        "{}",
        a.log
    );
    assert_eq!(failures(&env, &user), "1");

    // Password and code in one answer: in, with one prompt only.
    let code = totp(SECRET, Some(t));
    let a = env.attempt("p2fa-fwd", &user, &format!("{PASSWORD}{code}\n"), Some(t));
    assert!(a.ok, "{}\n{}", a.output, a.log);
    assert_eq!(
        a.output.matches("Password & verification code: ").count(),
        1,
        "{}",
        a.output
    );
    assert_eq!(a.output.matches("Password").count(), 1, "{}", a.output);
    let messages = a.log_messages();
    assert!(
        messages.contains(&format!(
            "auth ok user={user} service=p2fa-fwd rhost=- factor=totp"
        )),
        "{messages}"
    );
    for secret in [PASSWORD, &code, "Fwd-pass"] {
        assert!(
            !messages.contains(secret),
            "{secret:?} in the log: {messages}"
        );
    }
    assert_eq!(failures(&env, &user), "0");

    // The right code with a wrong password: the module says yes (and the
    // code is spent), pam_unix says no.
    let t2 = t + 30;
    let code = totp(SECRET, Some(t2));
    let a = env.attempt("p2fa-fwd", &user, &format!("Wrong-pw{code}\n"), Some(t2));
    assert!(!a.ok, "a wrong password let in: {}", a.output);
    assert!(a.log.contains("factor=totp"), "{}", a.log);
    assert!(!a.log.contains("Wrong-pw"), "{}", a.log);

    // A backup code, as shown, after the password.
    let shown = format!("{}-{}", &backup[0][..5], &backup[0][5..]);
    let a = env.attempt("p2fa-fwd", &user, &format!("{PASSWORD}{shown}\n"), Some(t2));
    assert!(a.ok, "{}\n{}", a.output, a.log);
    assert!(a.log.contains("factor=backup"), "{}", a.log);
    assert!(!a.log.contains(&backup[0][5..]), "{}", a.log);

    // Unenrolled and let through (nullok): the password alone, handed on.
    stack(&env, "p2fa-fwd-null", "", "forward_pass nullok", PAM_UNIX);
    let a = env.attempt("p2fa-fwd-null", &unenrolled, &format!("{PASSWORD}\n"), None);
    assert!(a.ok, "{}\n{}", a.output, a.log);
    assert!(a.output.contains("Password: "), "{}", a.output);
    let a = env.attempt("p2fa-fwd-null", &unenrolled, "Wrong-pw\n", None);
    assert!(!a.ok, "{}", a.output);
}

/// An env with questions enabled, a user `TAG` with TOTP (SECRET) and a
/// user `TAGq` whose only factor is one security question (answer
/// "Springfield"), both with PASSWORD.
fn code_and_questions_users(tag: &str) -> (Env, String, String) {
    let user = system_user(tag, PASSWORD);
    let quiz = system_user(&format!("{tag}q"), PASSWORD);
    let env = Env::with_config("[questions]\nenabled = true\ncount = 1\nask = 1\n");
    env.enroll_totp(&user);
    env.enroll_ok(
        &["questions", "--user", &quiz],
        "1\nSpringfield\nSpringfield\n",
    );
    (env, user, quiz)
}

/// `use_first_pass`: the password + code an earlier module left in
/// PAM_AUTHTOK, never a prompt; the password goes on to pam_unix.
#[test]
fn use_first_pass_takes_the_earlier_modules_authtok() {
    let (env, user, quiz) = code_and_questions_users("p2fa-arg-use");
    stack(
        &env,
        "p2fa-use",
        &set_items_line(),
        "use_first_pass",
        PAM_UNIX,
    );
    let t = in_step(step_of(now()) + 730);
    let code = totp(SECRET, Some(t));

    let a = with_authtok(
        &env,
        "p2fa-use",
        &user,
        Some(&format!("{PASSWORD}{code}")),
        "",
        t,
    );
    assert!(a.ok, "{}\n{}", a.output, a.log);
    assert_no_prompt(&a);
    assert!(a.log.contains("factor=totp"), "{}", a.log);

    // Nothing in PAM_AUTHTOK: refused, without a prompt, not counted.
    let a = with_authtok(&env, "p2fa-use", &user, None, "", t);
    assert!(!a.ok);
    assert_no_prompt(&a);
    let messages = a.log_messages();
    assert!(
        messages.contains("use_first_pass: no PAM_AUTHTOK from an earlier module"),
        "{messages}"
    );
    assert!(messages.contains("reason=no-authtok"), "{messages}");
    // No code at its end: malformed, not counted.
    let a = with_authtok(&env, "p2fa-use", &user, Some(PASSWORD), "", t);
    assert!(!a.ok);
    assert!(a.log.contains("reason=bad-input"), "{}", a.log);
    assert_eq!(failures(&env, &user), "0");

    // A wrong code: counted once.
    let bad = wrong_totp(SECRET, t + 30);
    let a = with_authtok(
        &env,
        "p2fa-use",
        &user,
        Some(&format!("{PASSWORD}{bad}")),
        "",
        t + 30,
    );
    assert!(!a.ok);
    assert_no_prompt(&a);
    assert!(
        a.log.contains("reason=wrong-code failures=1/5"),
        "{}",
        a.log
    );
    assert_eq!(failures(&env, &user), "1");
    // The right code with a wrong password: pam_unix refuses.
    let code = totp(SECRET, Some(t + 30));
    let a = with_authtok(
        &env,
        "p2fa-use",
        &user,
        Some(&format!("Wrong-pw{code}")),
        "",
        t + 30,
    );
    assert!(!a.ok);
    assert!(a.log.contains("auth ok"), "{}", a.log);

    // Only security questions: nothing that fits one field.
    let a = with_authtok(
        &env,
        "p2fa-use",
        &quiz,
        Some(&format!("{PASSWORD}123456")),
        "",
        t,
    );
    assert!(!a.ok);
    assert_no_prompt(&a);
    let messages = a.log_messages();
    assert!(
        messages.contains("use_first_pass: the user has no TOTP, HOTP or backup code"),
        "{messages}"
    );
    assert!(messages.contains("reason=no-code-factor"), "{messages}");
}

/// `try_first_pass`: a good code in PAM_AUTHTOK logs in unasked; when it
/// is unset, holds no code, or a wrong one (counted, not shown), the
/// module asks as usual.
#[test]
fn try_first_pass_falls_back_to_the_prompt() {
    let (env, user, quiz) = code_and_questions_users("p2fa-arg-try");
    stack(
        &env,
        "p2fa-try",
        &set_items_line(),
        "try_first_pass",
        "auth required pam_permit.so\n",
    );
    let t = in_step(step_of(now()) + 740);

    let code = totp(SECRET, Some(t));
    let a = with_authtok(&env, "p2fa-try", &user, Some(&format!("pw{code}")), "", t);
    assert!(a.ok, "{}\n{}", a.output, a.log);
    assert_no_prompt(&a);

    let t = t + 30;
    let code = totp(SECRET, Some(t));
    let a = with_authtok(&env, "p2fa-try", &user, None, &format!("{code}\n"), t);
    assert!(a.ok, "{}\n{}", a.output, a.log);
    assert!(a.output.contains("Verification code: "), "{}", a.output);

    // A wrong code in PAM_AUTHTOK: one failure, quietly; then the prompt.
    let t = t + 30;
    let bad = wrong_totp(SECRET, t);
    let code = totp(SECRET, Some(t));
    let a = with_authtok(
        &env,
        "p2fa-try",
        &user,
        Some(&format!("pw{bad}")),
        &format!("{code}\n"),
        t,
    );
    assert!(a.ok, "{}\n{}", a.output, a.log);
    assert!(a.output.contains("Verification code: "), "{}", a.output);
    assert!(!a.output.contains("Invalid"), "{}", a.output);
    let messages = a.log_messages();
    let failed = messages
        .find("reason=wrong-code failures=1/5")
        .expect(&messages);
    let ok = messages.find("auth ok").expect(&messages);
    assert!(failed < ok, "{messages}");
    assert_eq!(failures(&env, &user), "0", "the success reset it");

    // Only security questions: the usual prompt, a question.
    let a = with_authtok(
        &env,
        "p2fa-try",
        &quiz,
        Some("pw123456"),
        "Springfield\n",
        t,
    );
    assert!(a.ok, "{}\n{}", a.output, a.log);
    assert!(a.log.contains("factor=questions"), "{}", a.log);
}
