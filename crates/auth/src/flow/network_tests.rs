//! The network factors' login flow against a scripted [`Network`]: menu,
//! sent codes (limits, expiry, resend), Duo (preauth results, push
//! outcomes, passcodes, failmode). The real clients are tested against the
//! local stand-ins in `tests/`.

use super::*;
use p2fa_core::audit::Audit;
use p2fa_core::clock::StartedAt;
use p2fa_core::config::{Config, FailMode};
use p2fa_core::crypto::HostKey;
use p2fa_core::factor::{FactorId, totp};
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::{OtpKind, OtpRecord, Store};
use p2fa_net::network::*;
use p2fa_testkit::conversation::Scripted;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

const T0: i64 = 1_800_000_000;
const SECRET: &[u8] = b"12345678901234567890";

#[derive(Default)]
struct Shared {
    /// (channel, address, code) of every message sent.
    sent: Vec<(FactorId, String, String)>,
    prompts: Vec<String>,
    messages: Vec<String>,
    duo_calls: Vec<String>,
}

struct Fake {
    shared: Rc<RefCell<Shared>>,
    send_fails: bool,
    preauth: Result<DuoPreauth, DuoFailure>,
    statuses: Vec<DuoAnswer>,
    start_fails: Option<DuoFailure>,
    status_fails: Option<DuoFailure>,
    passcode_fails: Option<DuoFailure>,
    good_passcode: &'static str,
    /// Runs at each `auth_status` call: what happens elsewhere while the
    /// user approves (other logins' failures).
    meanwhile: Option<Box<dyn FnMut()>>,
}

impl Fake {
    fn new(shared: &Rc<RefCell<Shared>>) -> Fake {
        Fake {
            shared: shared.clone(),
            send_fails: false,
            preauth: Ok(DuoPreauth::Auth(vec![DuoDevice {
                id: "DP1".into(),
                name: "iPhone (XXX-XXX-1234)".into(),
                push: true,
                phone: true,
                sms: true,
            }])),
            statuses: vec![DuoAnswer::Waiting, DuoAnswer::Allow],
            start_fails: None,
            status_fails: None,
            passcode_fails: None,
            good_passcode: "7654321",
            meanwhile: None,
        }
    }
}

fn down() -> DuoFailure {
    failing(DuoFailKind::Outage)
}

fn failing(kind: DuoFailKind) -> DuoFailure {
    DuoFailure {
        detail: format!("{kind:?}"),
        kind,
    }
}

impl Network for Fake {
    fn send_code(
        &mut self,
        _cfg: &Config,
        ch: FactorId,
        _user: &str,
        address: &str,
        code: &str,
    ) -> Result<(), SendFailure> {
        if self.send_fails {
            return Err(SendFailure {
                user: "Could not send the code. Try another factor or contact your administrator."
                    .into(),
                detail: "gateway answered 500".into(),
            });
        }
        self.shared
            .borrow_mut()
            .sent
            .push((ch, address.into(), code.into()));
        Ok(())
    }
    fn duo_preauth(&mut self, _cfg: &Config, username: &str) -> Result<DuoPreauth, DuoFailure> {
        self.shared
            .borrow_mut()
            .duo_calls
            .push(format!("preauth {username}"));
        self.preauth.clone()
    }
    fn duo_start(
        &mut self,
        _cfg: &Config,
        username: &str,
        how: FactorId,
        device: &str,
        push_info: &[(String, String)],
    ) -> Result<String, DuoFailure> {
        // "start Push ...": the Duo kind without its prefix.
        let how = format!("{how:?}");
        self.shared.borrow_mut().duo_calls.push(format!(
            "start {} {username} {device} {}",
            how.trim_start_matches("Duo"),
            push_info[0].1
        ));
        match &self.start_fails {
            Some(f) => Err(f.clone()),
            None => Ok("tx-1".into()),
        }
    }
    fn duo_status(
        &mut self,
        _cfg: &Config,
        txid: &str,
        _wait: Duration,
    ) -> Result<DuoAnswer, DuoFailure> {
        self.shared
            .borrow_mut()
            .duo_calls
            .push(format!("status {txid}"));
        if let Some(f) = &mut self.meanwhile {
            f();
        }
        if let Some(f) = &self.status_fails {
            return Err(f.clone());
        }
        if self.statuses.is_empty() {
            p2fa_core::clock::sleep(Duration::from_millis(300));
            return Ok(DuoAnswer::Waiting);
        }
        Ok(self.statuses.remove(0))
    }
    fn duo_passcode(
        &mut self,
        _cfg: &Config,
        username: &str,
        passcode: &str,
    ) -> Result<DuoAnswer, DuoFailure> {
        self.shared
            .borrow_mut()
            .duo_calls
            .push(format!("passcode {username}"));
        if let Some(f) = &mut self.meanwhile {
            f();
        }
        if let Some(f) = &self.passcode_fails {
            return Err(f.clone());
        }
        Ok(if passcode == self.good_passcode {
            DuoAnswer::Allow
        } else {
            DuoAnswer::Deny("Incorrect passcode".into())
        })
    }
}

/// In a scripted answer, `{sent}` is replaced by the last code sent,
/// `{prev}` by the one before.
fn fill_codes(shared: &Rc<RefCell<Shared>>, answer: &[u8]) -> Vec<u8> {
    let sh = shared.borrow();
    let n = sh.sent.len();
    let last = sh.sent.last().map(|s| s.2.clone()).unwrap_or_default();
    let prev = n
        .checked_sub(2)
        .map(|i| sh.sent[i].2.clone())
        .unwrap_or_default();
    String::from_utf8_lossy(answer)
        .replace("{sent}", &last)
        .replace("{prev}", &prev)
        .into_bytes()
}

/// root with an SMS number, an e-mail address and Duo; TOTP if `totp`.
fn setup(totp: bool) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        db: dir.path().join("state/state.db"),
        key_file: dir.path().join("key"),
        ..Config::default()
    };
    cfg.sms.enabled = true;
    cfg.email.enabled = true;
    cfg.duo.enabled = true;
    cfg.duo.push_timeout_seconds = 5;
    cfg.rate_limit.max_failures = 10;
    let (key, _) = HostKey::load_or_create(&cfg.key_file, Trust::test_runner()).unwrap();
    let mut store = Store::open_or_create(&cfg.db, 1000, Trust::test_runner()).unwrap();
    let tx = store.write().unwrap();
    tx.set_contact("root", FactorId::Sms, "+15551234567", T0)
        .unwrap();
    tx.set_contact("root", FactorId::Email, "root@example.com", T0)
        .unwrap();
    tx.set_duo("root", T0).unwrap();
    if totp {
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
    }
    tx.commit().unwrap();
    (dir, cfg)
}

/// One login by root from 192.0.2.7, answering exactly `answers` (a
/// prompt too many or an answer left over fails the test); its prompts and
/// messages are added to the shared record.
fn login(cfg: &Config, fake: &mut Fake, t: i64, answers: Vec<&'static str>) -> Verdict {
    login_as(cfg, fake, t, answers, 0)
}

/// [`login`] from a process whose real uid is `caller_uid`.
fn login_as(
    cfg: &Config,
    fake: &mut Fake,
    t: i64,
    answers: Vec<&'static str>,
    caller_uid: u32,
) -> Verdict {
    let shared = fake.shared.clone();
    let mut conv = Scripted::new(answers).rewrite(|a| fill_codes(&shared, a));
    let l = Login {
        user: "root",
        service: "sshd",
        rhost: "192.0.2.7",
        tty: "",
        caller_uid,
    };
    let v = authenticate_with(
        cfg,
        Trust::test_runner(),
        l,
        &StartedAt::new(t),
        &mut conv,
        &mut Audit::null(),
        fake,
    );
    let mut sh = fake.shared.borrow_mut();
    sh.prompts.extend(conv.prompts());
    sh.messages.extend(conv.messages());
    v
}

fn shared() -> Rc<RefCell<Shared>> {
    Rc::new(RefCell::new(Shared::default()))
}

#[test]
fn menu_offers_enrolled_factors_and_sms_code_logs_in() {
    let (_d, cfg) = setup(true);
    let sh = shared();
    let mut net = Fake::new(&sh);
    assert_eq!(
        login(&cfg, &mut net, T0, vec!["sms", "{sent}"]),
        Verdict::Success
    );
    let s = sh.borrow();
    assert_eq!(
        s.prompts[0],
        "Verification code, or 1 push, 2 phone, 3 sms, 4 email: "
    );
    assert_eq!(s.sent.len(), 1);
    assert_eq!(s.sent[0].1, "+15551234567");
    assert_eq!(s.sent[0].2.len(), 6);
    assert!(s.prompts[1].starts_with("Code sent to "), "{:?}", s.prompts);
    assert!(!s.prompts[1].contains("1234567"), "number must be masked");
}

#[test]
fn sent_code_is_single_use_and_wrong_code_counts() {
    let (_d, cfg) = setup(false);
    let sh = shared();
    let mut net = Fake::new(&sh);
    assert_eq!(
        login(&cfg, &mut net, T0, vec!["4", "000000"]),
        Verdict::Denied
    );
    let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
    assert_eq!(store.user_state("root").unwrap().failures, 1);
    // Within resend_after_seconds: no second message, the first code works.
    assert_eq!(
        login(&cfg, &mut net, T0 + 5, vec!["email", "{sent}"]),
        Verdict::Success
    );
    assert_eq!(sh.borrow().sent.len(), 1, "no resend within 30 s");
    assert!(
        sh.borrow()
            .messages
            .iter()
            .any(|m| m.contains("less than 30 seconds"))
    );
    // Used: typing it again (a new code is sent after 30 s) fails.
    let used = sh.borrow().sent[0].2.clone();
    let used: &'static str = Box::leak(used.into_boxed_str());
    assert_eq!(
        login(&cfg, &mut net, T0 + 60, vec!["email", used]),
        Verdict::Denied
    );
    assert_eq!(sh.borrow().sent.len(), 2);
}

#[test]
fn sent_code_expires_and_attempts_burn_it() {
    let (_d, mut cfg) = setup(false);
    cfg.email.max_attempts = 2;
    let sh = shared();
    let mut net = Fake::new(&sh);
    assert_eq!(
        login(&cfg, &mut net, T0, vec!["email", "111111"]),
        Verdict::Denied
    );
    assert_eq!(
        login(&cfg, &mut net, T0 + 1, vec!["email", "111112"]),
        Verdict::Denied
    );
    // Two wrong answers used the code up: even the right one fails now
    // (and, the old code being dead, a new one is sent at once).
    assert_eq!(
        login(&cfg, &mut net, T0 + 2, vec!["email", "{prev}"]),
        Verdict::Denied
    );
    assert_eq!(sh.borrow().sent.len(), 2);
    // A fresh code after the resend interval ...
    let before = sh.borrow().sent.len();
    assert_eq!(
        login(&cfg, &mut net, T0 + 40, vec!["email", "000000"]),
        Verdict::Denied
    );
    assert_eq!(sh.borrow().sent.len(), before + 1);
    // ... answered after it expired (a new one is sent meanwhile).
    assert_eq!(
        login(&cfg, &mut net, T0 + 40 + 301, vec!["email", "{prev}"]),
        Verdict::Denied,
        "expired after 300 s"
    );
    assert_eq!(sh.borrow().sent.len(), before + 2);
}

#[test]
fn hourly_send_limit_holds() {
    let (_d, mut cfg) = setup(false);
    cfg.sms.max_sends_per_hour = 2;
    cfg.sms.resend_after_seconds = 0;
    let sh = shared();
    let mut net = Fake::new(&sh);
    for i in 0..2 {
        assert_eq!(
            login(&cfg, &mut net, T0 + i, vec!["sms", "{sent}"]),
            Verdict::Success
        );
    }
    assert_eq!(login(&cfg, &mut net, T0 + 10, vec!["sms"]), Verdict::Denied);
    assert_eq!(sh.borrow().sent.len(), 2);
    assert!(
        sh.borrow()
            .messages
            .iter()
            .any(|m| m.contains("Too many codes"))
    );
    assert_eq!(
        login(&cfg, &mut net, T0 + 3601, vec!["sms", "{sent}"]),
        Verdict::Success
    );
}

#[test]
fn gateway_failure_denies_and_leaves_no_code() {
    let (_d, cfg) = setup(false);
    let sh = shared();
    let mut net = Fake::new(&sh);
    net.send_fails = true;
    assert_eq!(login(&cfg, &mut net, T0, vec!["sms"]), Verdict::Unavailable);
    assert!(
        sh.borrow()
            .messages
            .iter()
            .any(|m| m.contains("Could not send"))
    );
    let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
    let tx = store.write().unwrap();
    assert_eq!(tx.sends_last_hour("root", FactorId::Sms, T0).unwrap(), 0);
}

#[test]
fn push_approved_denied_and_timed_out() {
    let (_d, cfg) = setup(false);
    let sh = shared();
    let mut net = Fake::new(&sh);
    assert_eq!(
        login(&cfg, &mut net, T0, vec!["push", ""]),
        Verdict::Success
    );
    {
        let s = sh.borrow();
        assert!(
            s.prompts[1].starts_with("Duo push sent to iPhone"),
            "{:?}",
            s.prompts
        );
        assert!(
            s.duo_calls
                .iter()
                .any(|c| c.starts_with("start Push root DP1 Login to ")
                    && c.contains("(sshd) from 192.0.2.7")),
            "{:?}",
            s.duo_calls
        );
    }
    net.statuses = vec![DuoAnswer::Deny("Login request denied".into())];
    assert_eq!(
        login(&cfg, &mut net, T0 + 1, vec!["1", ""]),
        Verdict::Denied
    );
    net.statuses = vec![];
    let started = p2fa_core::clock::Stopwatch::start();
    assert_eq!(
        login(&cfg, &mut net, T0 + 2, vec!["push", ""]),
        Verdict::Denied
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "waited for push_timeout"
    );
    let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
    assert_eq!(
        store.user_state("root").unwrap().failures,
        2,
        "deny and timeout count"
    );
}

#[test]
fn autopush_with_push_default_skips_the_menu() {
    let (_d, mut cfg) = setup(true);
    cfg.duo.autopush = true;
    let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
    let tx = store.write().unwrap();
    tx.set_default_factor("root", Some("push"), T0).unwrap();
    tx.commit().unwrap();
    let sh = shared();
    let mut net = Fake::new(&sh);
    assert_eq!(login(&cfg, &mut net, T0, vec![""]), Verdict::Success);
    assert_eq!(sh.borrow().prompts.len(), 1);
    assert!(sh.borrow().prompts[0].starts_with("Duo push sent"));
    // Without autopush the default is what Enter picks.
    cfg.duo.autopush = false;
    net.statuses = vec![DuoAnswer::Allow];
    assert_eq!(
        login(&cfg, &mut net, T0 + 1, vec!["", ""]),
        Verdict::Success
    );
    assert!(
        sh.borrow().prompts[1].ends_with("[Enter: push]: "),
        "{:?}",
        sh.borrow().prompts
    );
}

#[test]
fn duo_passcode_after_local_codes_and_at_push_prompt() {
    let (_d, cfg) = setup(true);
    let sh = shared();
    let mut net = Fake::new(&sh);
    assert_eq!(login(&cfg, &mut net, T0, vec!["7654321"]), Verdict::Success);
    assert!(sh.borrow().duo_calls.iter().any(|c| c == "passcode root"));
    assert_eq!(
        login(&cfg, &mut net, T0 + 1, vec!["push", "7654321"]),
        Verdict::Success
    );
    assert_eq!(
        login(&cfg, &mut net, T0 + 2, vec!["1234567"]),
        Verdict::Denied
    );
    let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
    assert_eq!(
        store.user_state("root").unwrap().failures,
        1,
        "a code wrong for TOTP and Duo counts once"
    );
}

#[test]
fn duo_username_mapping() {
    let (_d, mut cfg) = setup(false);
    cfg.duo
        .usernames
        .insert("root".into(), "root@example.com".into());
    let sh = shared();
    let mut net = Fake::new(&sh);
    assert_eq!(
        login(&cfg, &mut net, T0, vec!["push", ""]),
        Verdict::Success
    );
    let calls = sh.borrow().duo_calls.clone();
    assert_eq!(calls[0], "preauth root@example.com");
    assert!(
        calls[1].starts_with("start Push root@example.com DP1"),
        "{calls:?}"
    );
}

#[test]
fn preauth_allow_deny_enroll() {
    let (_d, cfg) = setup(false);
    let sh = shared();
    let mut net = Fake::new(&sh);
    net.preauth = Ok(DuoPreauth::Allow("bypass".into()));
    assert_eq!(login(&cfg, &mut net, T0, vec![]), Verdict::Ignore);
    net.preauth = Ok(DuoPreauth::Deny("User is locked out".into()));
    assert_eq!(login(&cfg, &mut net, T0, vec![]), Verdict::Denied);
    assert!(
        sh.borrow()
            .messages
            .iter()
            .any(|m| m == "e Duo: User is locked out")
    );
    // Not enrolled in Duo, but SMS and e-mail are there: Duo is not offered.
    net.preauth = Ok(DuoPreauth::Enroll("https://enroll.example/x".into()));
    sh.borrow_mut().prompts.clear();
    assert_eq!(
        login(&cfg, &mut net, T0, vec!["sms", "{sent}"]),
        Verdict::Success
    );
    assert_eq!(sh.borrow().prompts[0], "Choose 1 sms, 2 email: ");
}

/// A user whose only factor is Duo.
fn duo_only() -> (tempfile::TempDir, Config) {
    let (d, mut cfg) = setup(false);
    cfg.sms.enabled = false;
    cfg.email.enabled = false;
    (d, cfg)
}

#[test]
fn failmode_applies_only_when_duo_is_the_only_way() {
    let (_d, mut cfg) = duo_only();
    let sh = shared();
    let mut net = Fake::new(&sh);
    net.preauth = Err(down());
    assert_eq!(
        login(&cfg, &mut net, T0, vec![]),
        Verdict::Unavailable,
        "secure"
    );
    cfg.duo.failmode = FailMode::Safe;
    assert_eq!(login(&cfg, &mut net, T0, vec![]), Verdict::Ignore, "safe");
    // Only for a root caller: under sudo or su the caller could fake the
    // outage (see failmode_safe_only_for_a_root_caller).
    for uid in [1000, 65534] {
        sh.borrow_mut().messages.clear();
        assert_eq!(
            login_as(&cfg, &mut net, T0, vec![], uid),
            Verdict::Unavailable,
            "safe, caller uid {uid}"
        );
        let msgs = sh.borrow().messages.join("\n");
        assert!(!msgs.contains("letting you in"), "{msgs}");
    }
    // A refusal (bad keys) is not "unreachable": safe does not let anyone in.
    net.preauth = Err(failing(DuoFailKind::Refused));
    assert_eq!(login(&cfg, &mut net, T0, vec![]), Verdict::Unavailable);
    // Nor a certificate or protocol error: what an attacker in the path
    // can cause is a refusal, and the user is not told "unreachable".
    for kind in [DuoFailKind::Tls, DuoFailKind::Protocol] {
        sh.borrow_mut().messages.clear();
        net.preauth = Err(failing(kind));
        assert_eq!(
            login(&cfg, &mut net, T0, vec![]),
            Verdict::Denied,
            "{kind:?}"
        );
        let msgs = sh.borrow().messages.join("\n");
        assert!(!msgs.contains("unreachable"), "{msgs}");
        assert!(msgs.contains("Access denied"), "{msgs}");
    }
    // With TOTP too, Duo being down just means Duo is not offered.
    let (_d2, mut cfg2) = setup(true);
    cfg2.duo.failmode = FailMode::Safe;
    cfg2.sms.enabled = false;
    cfg2.email.enabled = false;
    net.preauth = Err(down());
    assert_eq!(login(&cfg2, &mut net, T0, vec!["000000"]), Verdict::Denied);
    assert_eq!(sh.borrow().prompts.last().unwrap(), "Verification code: ");
}

#[test]
fn every_error_after_a_good_preauth_denies_even_with_failmode_safe() {
    let (_d, mut cfg) = duo_only();
    cfg.duo.failmode = FailMode::Safe;
    let sh = shared();
    for kind in [
        DuoFailKind::Outage,
        DuoFailKind::Tls,
        DuoFailKind::Protocol,
        DuoFailKind::Refused,
    ] {
        let mut net = Fake::new(&sh);
        net.start_fails = Some(failing(kind));
        assert_ne!(login(&cfg, &mut net, T0, vec!["push"]), Verdict::Success);
        let mut net = Fake::new(&sh);
        net.status_fails = Some(failing(kind));
        assert_ne!(
            login(&cfg, &mut net, T0, vec!["push", ""]),
            Verdict::Success
        );
        let mut net = Fake::new(&sh);
        net.passcode_fails = Some(failing(kind));
        assert_ne!(login(&cfg, &mut net, T0, vec!["7654321"]), Verdict::Success);
    }
}

#[test]
fn codes_sent_to_a_failing_duo_are_counted_once() {
    let (_d, mut cfg) = setup(true);
    // No SMS/e-mail of our own: "3" is Duo's SMS passcodes.
    cfg.sms.enabled = false;
    cfg.email.enabled = false;
    let sh = shared();
    let mut net = Fake::new(&sh);
    let failures = || {
        Store::open_existing(&cfg.db, 1000, Trust::test_runner())
            .unwrap()
            .user_state("root")
            .unwrap()
            .failures
    };
    // Typed at the menu (checked as TOTP first), at the push prompt, and
    // at Duo's SMS prompt: each counts once, whether Duo fails or refuses.
    let mut n = 0;
    for fails in [Some(down()), Some(failing(DuoFailKind::Protocol)), None] {
        net.passcode_fails = fails;
        for answers in [
            vec!["123456"],
            vec!["push", "1234567"],
            vec!["3", "1234567"],
        ] {
            assert_ne!(login(&cfg, &mut net, T0 + n, answers), Verdict::Success);
            n += 1;
            assert_eq!(failures(), n as u32);
        }
    }
    // The right Duo passcode clears the count.
    net.passcode_fails = None;
    assert_eq!(
        login(&cfg, &mut net, T0 + n, vec!["7654321"]),
        Verdict::Success
    );
    assert_eq!(failures(), 0);
}

#[test]
fn failmode_safe_only_for_a_root_caller() {
    assert!(super::factors::duo::failmode_safe_allowed(0));
    for uid in [1, 1000, 65534, u32::MAX] {
        assert!(!super::factors::duo::failmode_safe_allowed(uid), "{uid}");
    }
}

#[test]
fn disabled_factor_is_not_offered_and_keyword_is_not_a_code() {
    let (_d, mut cfg) = setup(true);
    cfg.duo.enabled = false;
    cfg.email.enabled = false;
    let sh = shared();
    let mut net = Fake::new(&sh);
    assert_eq!(login(&cfg, &mut net, T0, vec!["email"]), Verdict::Denied);
    assert_eq!(sh.borrow().prompts[0], "Verification code, or 1 sms: ");
    assert!(
        sh.borrow().duo_calls.is_empty(),
        "Duo disabled: never called"
    );
    let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
    assert_eq!(store.user_state("root").unwrap().failures, 0);
}

/// The lockout holds for every factor's success, not only for codes: an
/// account locked by other logins' wrong guesses while this user's push
/// was pending is refused when Duo then approves (the check and the
/// success are one transaction, after the lockout check).
#[test]
fn a_push_approved_after_the_account_was_locked_meanwhile_is_refused() {
    let (_d, cfg) = setup(false);
    let sh = shared();
    let mut net = Fake::new(&sh);
    let db = cfg.db.clone();
    let rules = cfg.rate_limit.clone();
    let mut once = true;
    net.meanwhile = Some(Box::new(move || {
        if !std::mem::take(&mut once) {
            return;
        }
        let mut store = Store::open_existing(&db, 1000, Trust::test_runner()).unwrap();
        let tx = store.write().unwrap();
        for _ in 0..rules.max_failures {
            tx.record_failure("root", T0, &rules).unwrap();
        }
        tx.commit().unwrap();
    }));
    assert_eq!(login(&cfg, &mut net, T0, vec!["push", ""]), Verdict::Locked);
    let state = Store::open_existing(&cfg.db, 1000, Trust::test_runner())
        .unwrap()
        .user_state("root")
        .unwrap();
    assert!(state.locked_until > T0, "still locked");
    assert_eq!(
        state.failures, cfg.rate_limit.max_failures,
        "the approval cleared nothing"
    );
}

fn fail_times(db: &std::path::Path, rules: &p2fa_core::config::RateLimitConfig, n: u32) {
    let mut store = Store::open_existing(db, 1000, Trust::test_runner()).unwrap();
    let tx = store.write().unwrap();
    for _ in 0..n {
        tx.record_failure("root", T0, rules).unwrap();
    }
    tx.commit().unwrap();
}

/// A Duo passcode is counted as a guess before Duo checks it; when that
/// count itself locks the account (the last allowed guess), the right
/// passcode still logs in: the lock is this login's own.
#[test]
fn the_right_duo_passcode_as_the_last_allowed_guess_logs_in() {
    let (_d, cfg) = setup(false);
    let sh = shared();
    let mut net = Fake::new(&sh);
    fail_times(&cfg.db, &cfg.rate_limit, cfg.rate_limit.max_failures - 1);
    assert_eq!(login(&cfg, &mut net, T0, vec!["7654321"]), Verdict::Success);
    let state = Store::open_existing(&cfg.db, 1000, Trust::test_runner())
        .unwrap()
        .user_state("root")
        .unwrap();
    assert_eq!(state.failures, 0, "success clears the count");
}

/// ... but only its own: a failure recorded by another login while Duo was
/// checking the passcode changes the lock, and the login is refused.
#[test]
fn a_failure_elsewhere_while_duo_checks_the_last_guess_keeps_the_lock() {
    let (_d, cfg) = setup(false);
    let sh = shared();
    let mut net = Fake::new(&sh);
    fail_times(&cfg.db, &cfg.rate_limit, cfg.rate_limit.max_failures - 1);
    let db = cfg.db.clone();
    let rules = cfg.rate_limit.clone();
    let mut once = true;
    net.meanwhile = Some(Box::new(move || {
        if std::mem::take(&mut once) {
            fail_times(&db, &rules, 1);
        }
    }));
    assert_eq!(login(&cfg, &mut net, T0, vec!["7654321"]), Verdict::Locked);
    let state = Store::open_existing(&cfg.db, 1000, Trust::test_runner())
        .unwrap()
        .user_state("root")
        .unwrap();
    assert_eq!(state.failures, cfg.rate_limit.max_failures + 1);
    assert!(state.locked_until > T0);
}

/// `duo.users = "all"` and a user with no factor at all (no Duo row
/// either): preauth's answers. `auth` offers Duo; `allow` is Duo's bypass
/// and `deny` refuses, as for a Duo user; `enroll` is the unenrolled
/// policy; an outage is `failmode`, with `safe` only where that policy
/// is `allow`. With the default `enrolled`, Duo is never asked.
#[test]
fn duo_users_all_for_a_user_with_no_factor() {
    use p2fa_core::config::{DuoUsers, Unenrolled};
    let (_d, mut cfg) = duo_only();
    let mut store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
    let tx = store.write().unwrap();
    assert!(tx.reset_user("root").unwrap());
    tx.commit().unwrap();
    let sh = shared();
    let mut net = Fake::new(&sh);
    // The default: the unenrolled policy (deny), and Duo is not asked.
    assert_eq!(login(&cfg, &mut net, T0, vec![]), Verdict::Denied);
    assert!(sh.borrow().duo_calls.is_empty());
    cfg.duo.users = DuoUsers::All;
    assert_eq!(
        login(&cfg, &mut net, T0, vec!["push", ""]),
        Verdict::Success
    );
    assert_eq!(sh.borrow().duo_calls[0], "preauth root");
    net.preauth = Ok(DuoPreauth::Allow("bypass".into()));
    assert_eq!(login(&cfg, &mut net, T0, vec![]), Verdict::Ignore);
    net.preauth = Ok(DuoPreauth::Deny("User is locked out".into()));
    assert_eq!(login(&cfg, &mut net, T0, vec![]), Verdict::Denied);
    net.preauth = Ok(DuoPreauth::Enroll("https://enroll.example/x".into()));
    sh.borrow_mut().messages.clear();
    assert_eq!(login(&cfg, &mut net, T0, vec![]), Verdict::Denied);
    assert!(
        sh.borrow()
            .messages
            .iter()
            .any(|m| m.contains("No second factor is set up")),
        "{:?}",
        sh.borrow().messages
    );
    cfg.unenrolled = Unenrolled::Allow;
    assert_eq!(login(&cfg, &mut net, T0, vec![]), Verdict::Ignore);
    net.preauth = Err(down());
    assert_eq!(login(&cfg, &mut net, T0, vec![]), Verdict::Unavailable);
    cfg.duo.failmode = FailMode::Safe;
    assert_eq!(login(&cfg, &mut net, T0, vec![]), Verdict::Ignore);
    cfg.unenrolled = Unenrolled::Deny;
    assert_eq!(login(&cfg, &mut net, T0, vec![]), Verdict::Unavailable);
    // Password and code in one field (`use_first_pass`): Duo cannot
    // share it, but preauth still tells a user Duo knows (refused, as any
    // Duo user) from one it does not (the unenrolled policy).
    cfg.duo.failmode = FailMode::Secure;
    cfg.pass.first_pass = p2fa_core::config::FirstPass::Use;
    cfg.unenrolled = Unenrolled::Allow;
    net.preauth = Ok(DuoPreauth::Enroll("https://enroll.example/x".into()));
    assert_eq!(login(&cfg, &mut net, T0, vec![]), Verdict::Ignore);
    net.preauth = Fake::new(&sh).preauth;
    sh.borrow_mut().messages.clear();
    assert_eq!(login(&cfg, &mut net, T0, vec![]), Verdict::Denied);
    assert!(
        sh.borrow()
            .messages
            .iter()
            .any(|m| m.contains("no verification-code factor")),
        "{:?}",
        sh.borrow().messages
    );
    net.preauth = Err(down());
    assert_eq!(login(&cfg, &mut net, T0, vec![]), Verdict::Unavailable);
    cfg.pass.first_pass = p2fa_core::config::FirstPass::Prompt;
    cfg.unenrolled = Unenrolled::Deny;
    // Not allowed for the user's groups (none are: methods = totp only):
    // Duo is not offered, so the unenrolled policy applies at once.
    cfg.policy.methods = vec!["totp".into()];
    sh.borrow_mut().duo_calls.clear();
    assert_eq!(login(&cfg, &mut net, T0, vec![]), Verdict::Denied);
    assert!(sh.borrow().duo_calls.is_empty());
}
