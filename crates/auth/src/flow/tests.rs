//! The login flow end to end over a scripted conversation and a real
//! store in a temp dir: codes, lockout, policy, store trouble.

use super::*;
use p2fa_core::audit::Audit;
use p2fa_core::clock::StartedAt;
use p2fa_core::config::{Config, Unenrolled};
use p2fa_core::crypto::HostKey;
use p2fa_core::factor::totp;
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::{OtpKind, OtpRecord, Store};
use p2fa_testkit::conversation::{Reply, Scripted};

const SECRET: &[u8] = b"12345678901234567890";
const T0: i64 = 1_800_000_000;

/// A store with root's TOTP token and two backup codes, in a temp dir.
fn setup() -> (tempfile::TempDir, Config, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        db: dir.path().join("state/state.db"),
        key_file: dir.path().join("key"),
        ..Config::default()
    };
    cfg.rate_limit.max_failures = 3;
    let (key, _) = HostKey::load_or_create(&cfg.key_file, Trust::test_runner()).unwrap();
    let mut store = Store::open_or_create(&cfg.db, 1000, Trust::test_runner()).unwrap();
    let tx = store.write().unwrap();
    let rec = OtpRecord {
        kind: OtpKind::Totp,
        sealed: key.seal(SECRET, &totp::seal_aad("root")).unwrap(),
        algorithm: p2fa_core::config::Algorithm::Sha1,
        digits: 6,
        period: 30,
        last_step: None,
        counter: 0,
        created_at: T0,
        key_gen: 0,
    };
    tx.put_otp("root", &rec, T0).unwrap();
    let codes = vec!["1111122222".to_string(), "3333344444".to_string()];
    let hashes: Vec<[u8; 32]> = codes.iter().map(|c| key.code_hash("root", c)).collect();
    tx.replace_backup_codes("root", &hashes, T0, 0).unwrap();
    tx.commit().unwrap();
    (dir, cfg, codes)
}

/// One login answering exactly `answers` (a prompt too many or an
/// answer left over fails the test); the verdict and the transcript.
fn run(cfg: &Config, user: &str, now: i64, answers: &[&str]) -> (Verdict, Vec<String>) {
    let mut conv = Scripted::new(answers.iter().copied());
    let login = Login {
        user,
        service: "test",
        rhost: "",
        tty: "",
        caller_uid: 0,
    };
    let v = authenticate(
        cfg,
        Trust::test_runner(),
        login,
        &StartedAt::new(now),
        &mut conv,
        &mut Audit::null(),
    );
    (v, conv.transcript().to_vec())
}

fn code_at(t: i64) -> String {
    let p = totp::OtpParams {
        algorithm: p2fa_core::config::Algorithm::Sha1,
        digits: 6,
        period: 30,
    };
    totp::totp_at_step(SECRET, &p, (t / 30) as u64).to_string()
}

#[test]
fn totp_once_with_injected_clock() {
    let (_d, cfg, _) = setup();
    assert_eq!(run(&cfg, "root", T0, &[&code_at(T0)]).0, Verdict::Success);
    assert_eq!(
        run(&cfg, "root", T0 + 1, &[&code_at(T0)]).0,
        Verdict::Denied,
        "replay"
    );
    assert_eq!(
        run(&cfg, "root", T0 + 30, &[&code_at(T0 + 30)]).0,
        Verdict::Success
    );
    assert_eq!(
        run(&cfg, "root", T0 + 300, &[&code_at(T0 + 200)]).0,
        Verdict::Denied,
        "stale"
    );
}

#[test]
fn backup_code_once_and_counts_down() {
    let (_d, cfg, codes) = setup();
    let (v, msgs) = run(&cfg, "root", T0, &["11111-22222"]);
    assert_eq!(v, Verdict::Success);
    assert!(msgs.iter().any(|m| m.contains("1 left")), "{msgs:?}");
    assert_eq!(run(&cfg, "root", T0, &[&codes[0]]).0, Verdict::Denied);
    assert_eq!(run(&cfg, "root", T0, &[&codes[1]]).0, Verdict::Success);
}

#[test]
fn lockout_grows_and_expires_with_the_clock() {
    let (_d, cfg, _) = setup();
    for i in 0..2 {
        assert_eq!(run(&cfg, "root", T0 + i, &["000000"]).0, Verdict::Denied);
    }
    // Third failure reaches max_failures = 3: locked for 60 s.
    assert_eq!(run(&cfg, "root", T0 + 2, &["000000"]).0, Verdict::Locked);
    // Not even asked for a code (so a right one cannot help).
    let (v, msgs) = run(&cfg, "root", T0 + 30, &[]);
    assert_eq!(v, Verdict::Locked, "refused while locked");
    assert!(
        msgs.iter().all(|m| !m.starts_with('?')),
        "no prompt while locked: {msgs:?}"
    );
    // After the lockout, one more failure locks for 120 s (doubling).
    assert_eq!(run(&cfg, "root", T0 + 63, &["000000"]).0, Verdict::Locked);
    assert_eq!(run(&cfg, "root", T0 + 63 + 119, &[]).0, Verdict::Locked);
    assert_eq!(
        run(&cfg, "root", T0 + 63 + 121, &[&code_at(T0 + 184)]).0,
        Verdict::Success
    );
    // Success reset the counter: a single failure does not lock.
    assert_eq!(run(&cfg, "root", T0 + 400, &["000000"]).0, Verdict::Denied);
}

#[test]
fn malformed_input_is_refused_and_not_counted() {
    let (_d, cfg, _) = setup();
    for bad in ["", "abc;", "12\x1b34", &"9".repeat(100)] {
        assert_eq!(run(&cfg, "root", T0, &[bad]).0, Verdict::Denied);
    }
    let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
    assert_eq!(store.user_state("root").unwrap().failures, 0);
}

#[test]
fn unenrolled_policy_and_unknown_user() {
    let (_d, mut cfg, _) = setup();
    let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
    let tx = store.write().unwrap();
    tx.reset_user("root").unwrap();
    tx.commit().unwrap();
    assert_eq!(run(&cfg, "root", T0, &[]).0, Verdict::Denied);
    cfg.unenrolled = Unenrolled::Allow;
    assert_eq!(run(&cfg, "root", T0, &[]).0, Verdict::Ignore);
    assert_eq!(
        run(&cfg, "no-such-user-pam2fa", T0, &[]).0,
        Verdict::UnknownUser
    );
}

#[test]
fn spent_backup_codes_are_not_unenrolled() {
    let (_d, mut cfg, codes) = setup();
    cfg.unenrolled = Unenrolled::Allow;
    let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
    let tx = store.write().unwrap();
    tx.remove_otp("root").unwrap();
    tx.commit().unwrap();
    for c in &codes {
        assert_eq!(run(&cfg, "root", T0, &[c]).0, Verdict::Success);
    }
    let (v, msgs) = run(&cfg, "root", T0, &[]);
    assert_eq!(v, Verdict::Denied, "unenrolled=allow must not apply");
    assert!(
        msgs.iter().any(|m| m.contains("backup codes are used")),
        "{msgs:?}"
    );
}

#[test]
fn missing_store_or_key_is_unavailable() {
    let (d, mut cfg, _) = setup();
    std::fs::remove_file(&cfg.key_file).unwrap();
    assert_eq!(run(&cfg, "root", T0, &[]).0, Verdict::Unavailable);
    cfg.db = d.path().join("nope.db");
    assert_eq!(run(&cfg, "root", T0, &[]).0, Verdict::Unavailable);
}

/// No store yet: only `unenrolled = allow` (for this service) lets a user
/// pass, as `PAM_IGNORE`; `deny` and `grace` stay unavailable, and so does
/// a missing store on a way others could have removed it from. Nothing is
/// ever created.
#[test]
fn missing_store_follows_only_unenrolled_allow_and_creates_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        db: d.path().join("state/state.db"),
        key_file: d.path().join("keys/2fa.key"),
        ..Config::default()
    };
    let unavailable = |cfg: &Config| {
        let (v, msgs) = run(cfg, "root", T0, &[]);
        assert_eq!(v, Verdict::Unavailable, "{:?}", cfg.db);
        assert!(msgs.iter().any(|m| m.contains("unavailable")), "{msgs:?}");
    };
    unavailable(&cfg);
    cfg.unenrolled = Unenrolled::Grace;
    unavailable(&cfg);
    cfg.unenrolled = Unenrolled::Allow;
    // Allowed, silently: no prompt, no message.
    assert_eq!(run(&cfg, "root", T0, &[]), (Verdict::Ignore, vec![]));
    cfg.policy.inline_enrollment = true;
    assert_eq!(run(&cfg, "root", T0, &[]), (Verdict::Ignore, vec![]));
    // The store's directory exists, the store does not.
    std::fs::create_dir(d.path().join("state")).unwrap();
    std::fs::set_permissions(
        d.path().join("state"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    assert_eq!(run(&cfg, "root", T0, &[]).0, Verdict::Ignore);
    // ... but anyone could have removed it from there.
    std::fs::set_permissions(
        d.path().join("state"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    unavailable(&cfg);
    std::fs::set_permissions(
        d.path().join("state"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    // A dangling symlink is not a missing store.
    std::os::unix::fs::symlink(d.path().join("elsewhere.db"), &cfg.db).unwrap();
    unavailable(&cfg);
    std::fs::remove_file(&cfg.db).unwrap();
    // Per service: [policy.services.NAME] decides for that service only.
    cfg.unenrolled = Unenrolled::Deny;
    cfg.policy.services.insert(
        "test".into(),
        p2fa_core::config::ServicePolicy {
            unenrolled: Some(Unenrolled::Allow),
            ..Default::default()
        },
    );
    assert_eq!(run(&cfg, "root", T0, &[]).0, Verdict::Ignore);
    cfg.unenrolled = Unenrolled::Allow;
    cfg.policy.services.get_mut("test").unwrap().unenrolled = Some(Unenrolled::Deny);
    unavailable(&cfg);
    // Unknown users are still unknown.
    assert_eq!(
        run(&cfg, "no-such-user-pam2fa", T0, &[]).0,
        Verdict::UnknownUser
    );
    let left: Vec<_> = std::fs::read_dir(d.path().join("state")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!cfg.key_file.exists() && !d.path().join("keys").exists());
}

#[test]
fn conversation_failure_denies() {
    let (_d, cfg, _) = setup();
    let mut conv = Scripted::new([Reply::fail("the client hung up")]);
    let login = Login {
        user: "root",
        service: "t",
        rhost: "",
        tty: "",
        caller_uid: 0,
    };
    assert_eq!(
        authenticate(
            &cfg,
            Trust::test_runner(),
            login,
            &StartedAt::new(T0),
            &mut conv,
            &mut Audit::null()
        ),
        Verdict::ConversationFailed
    );
}

#[test]
fn parses_answers() {
    assert_eq!(
        parse_answer(b" 123 456\n".trim_ascii_end())
            .unwrap()
            .as_str(),
        "123456"
    );
    assert_eq!(parse_answer(b"12345-67890").unwrap().as_str(), "1234567890");
    assert_eq!(parse_answer(b"").unwrap_err(), "empty");
    assert_eq!(parse_answer(b"   ").unwrap_err(), "empty");
    assert_eq!(parse_answer(&[b'1'; 65]).unwrap_err(), "too long");
    assert_eq!(
        parse_answer(b"\xff\xfe123").unwrap_err(),
        "not valid UTF-8 text"
    );
    assert_eq!(
        parse_answer(b"123\x1b456").unwrap_err(),
        "contains control characters"
    );
    assert_eq!(
        parse_answer(b"12\n34").unwrap_err(),
        "contains control characters"
    );
    assert!(parse_answer(b"12;34").is_err());
}

#[test]
fn durations() {
    assert_eq!(human_duration(30), "30 seconds");
    assert_eq!(human_duration(120), "2 minutes");
    assert_eq!(human_duration(3600), "60 minutes");
    assert_eq!(human_duration(7200), "2 hours");
}

/// One login with `conv` (a scripted conversation, maybe with a preset
/// PAM_AUTHTOK); the verdict.
fn run_with(cfg: &Config, now: i64, conv: &mut Scripted<'_>) -> Verdict {
    let login = Login {
        user: "root",
        service: "test",
        rhost: "",
        tty: "",
        caller_uid: 0,
    };
    authenticate(
        cfg,
        Trust::test_runner(),
        login,
        &StartedAt::new(now),
        conv,
        &mut Audit::null(),
    )
}

fn failures(cfg: &Config) -> u32 {
    let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
    store.user_state("root").unwrap().failures
}

/// `forward_pass`: one prompt for password and code; the code is checked,
/// the password handed on; a wrong code is one counted failure; an
/// answer without a code is malformed (not counted).
#[test]
fn forward_pass_splits_checks_and_hands_the_password_on() {
    use p2fa_core::config::FirstPass;
    let (_d, mut cfg, codes) = setup();
    cfg.pass.forward_pass = true;
    let mut conv = Scripted::new([format!("s3cret pw{}", code_at(T0))]);
    assert_eq!(run_with(&cfg, T0, &mut conv), Verdict::Success);
    assert_eq!(conv.prompts(), [COMBINED_PROMPT]);
    assert_eq!(conv.forwarded(), Some(&b"s3cret pw"[..]));

    // The same code again: a replay, counted once, nothing handed on.
    let mut conv = Scripted::new([format!("s3cret pw{}", code_at(T0))]);
    assert_eq!(run_with(&cfg, T0 + 1, &mut conv), Verdict::Denied);
    assert_eq!(conv.forwarded(), None);
    assert_eq!(failures(&cfg), 1);

    // No code at the end: refused, not counted.
    let mut conv = Scripted::new(["s3cret pw"]);
    assert_eq!(run_with(&cfg, T0 + 2, &mut conv), Verdict::Denied);
    assert!(
        conv.messages()
            .iter()
            .any(|m| m.contains("does not end in a verification code")),
        "{:?}",
        conv.transcript()
    );
    assert_eq!(failures(&cfg), 1);

    // A backup code, as shown, after the password.
    let shown = format!("{}-{}", &codes[0][..5], &codes[0][5..]);
    let mut conv = Scripted::new([format!("pw{shown}")]);
    assert_eq!(run_with(&cfg, T0 + 3, &mut conv), Verdict::Success);
    assert_eq!(conv.forwarded(), Some(&b"pw"[..]));
    assert_eq!(failures(&cfg), 0, "a success resets the count");

    // use_first_pass wins over the prompt: nothing asked.
    cfg.pass.first_pass = FirstPass::Use;
    let mut conv = Scripted::new(Vec::<&str>::new())
        .with_authtok(format!("pw{}", code_at(T0 + 30)).as_bytes());
    assert_eq!(run_with(&cfg, T0 + 30, &mut conv), Verdict::Success);
    assert_eq!(conv.forwarded(), Some(&b"pw"[..]));
}

/// `use_first_pass`: PAM_AUTHTOK or nothing; never a prompt.
#[test]
fn use_first_pass_never_prompts() {
    use p2fa_core::config::FirstPass;
    let (_d, mut cfg, _) = setup();
    cfg.pass.first_pass = FirstPass::Use;
    let mut conv =
        Scripted::new(Vec::<&str>::new()).with_authtok(format!("pw{}", code_at(T0)).as_bytes());
    assert_eq!(run_with(&cfg, T0, &mut conv), Verdict::Success);
    assert_eq!(conv.forwarded(), Some(&b"pw"[..]));
    assert!(conv.prompts().is_empty());

    for tok in [None, Some(&b"pw"[..])] {
        let mut conv = Scripted::new(Vec::<&str>::new());
        if let Some(t) = tok {
            conv = conv.with_authtok(t);
        }
        assert_eq!(
            run_with(&cfg, T0 + 1, &mut conv),
            Verdict::Denied,
            "{tok:?}"
        );
        assert!(conv.prompts().is_empty());
        assert_eq!(conv.forwarded(), None);
    }
    assert_eq!(failures(&cfg), 0, "nothing was guessed");

    let mut conv = Scripted::new(Vec::<&str>::new()).with_authtok(b"pw000000");
    assert_eq!(run_with(&cfg, T0 + 2, &mut conv), Verdict::Denied);
    assert_eq!(failures(&cfg), 1);
}

/// `try_first_pass`: PAM_AUTHTOK first; when it holds no good code, the
/// usual prompt. A wrong code in it is counted, and not shown.
#[test]
fn try_first_pass_falls_back_to_the_prompt() {
    use p2fa_core::config::FirstPass;
    let (_d, mut cfg, _) = setup();
    cfg.pass.first_pass = FirstPass::Try;
    let mut conv =
        Scripted::new(Vec::<&str>::new()).with_authtok(format!("pw{}", code_at(T0)).as_bytes());
    assert_eq!(run_with(&cfg, T0, &mut conv), Verdict::Success);
    assert_eq!(conv.forwarded(), Some(&b"pw"[..]));

    // Unset, or no code at the end: asked as usual, nothing counted.
    let mut conv = Scripted::new([code_at(T0 + 30)]);
    assert_eq!(run_with(&cfg, T0 + 30, &mut conv), Verdict::Success);
    assert_eq!(conv.prompts(), ["Verification code: "]);
    let mut conv = Scripted::new([code_at(T0 + 60)]).with_authtok(b"just a password");
    assert_eq!(run_with(&cfg, T0 + 60, &mut conv), Verdict::Success);
    assert_eq!(conv.forwarded(), None, "the password stays as it was");

    // A wrong code: counted once, not shown, then the prompt.
    let mut conv = Scripted::new(["000000"]).with_authtok(b"pw999999");
    assert_eq!(run_with(&cfg, T0 + 90, &mut conv), Verdict::Denied);
    assert_eq!(conv.prompts(), ["Verification code: "]);
    assert_eq!(
        conv.messages(),
        ["e Invalid or already used code."],
        "the quiet check says nothing"
    );
    assert_eq!(failures(&cfg), 2);

    // With forward_pass the fallback is the combined prompt.
    cfg.pass.forward_pass = true;
    let mut conv = Scripted::new([format!("pw{}", code_at(T0 + 120))]);
    assert_eq!(run_with(&cfg, T0 + 120, &mut conv), Verdict::Success);
    assert_eq!(conv.prompts(), [COMBINED_PROMPT]);
    assert_eq!(conv.forwarded(), Some(&b"pw"[..]));
}

/// A user let through by policy still has a password for the next
/// module under forward_pass; users without a code factor are refused.
#[test]
fn forward_pass_for_unenrolled_and_codeless_users() {
    let (_d, mut cfg, _) = setup();
    cfg.pass.forward_pass = true;
    cfg.unenrolled = Unenrolled::Allow;
    let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
    let tx = store.write().unwrap();
    tx.reset_user("root").unwrap();
    tx.commit().unwrap();
    let mut conv = Scripted::new(["only-the-password"]);
    assert_eq!(run_with(&cfg, T0, &mut conv), Verdict::Ignore);
    assert_eq!(conv.prompts(), ["Password: "]);
    assert_eq!(conv.forwarded(), Some(&b"only-the-password"[..]));

    // Enrolled with questions only: nothing that fits one field.
    cfg.questions.enabled = true;
    let tx = store.write().unwrap();
    tx.set_questions("root", &[("q".into(), "not-a-real-hash".into())], T0, 0)
        .unwrap();
    tx.commit().unwrap();
    assert_eq!(store.user_state("root").unwrap().questions, 1);
    let mut conv = Scripted::new(Vec::<&str>::new());
    assert_eq!(run_with(&cfg, T0, &mut conv), Verdict::Denied);
    assert!(conv.prompts().is_empty());
    assert!(
        conv.messages()[0].contains("no verification-code factor"),
        "{:?}",
        conv.transcript()
    );
    // try_first_pass asks as usual instead: the questions.
    cfg.pass.first_pass = p2fa_core::config::FirstPass::Try;
    let mut conv = Scripted::new(["wrong answer"]);
    assert_eq!(run_with(&cfg, T0, &mut conv), Verdict::Denied);
    assert_eq!(conv.prompts(), ["q "], "{:?}", conv.transcript());
}
