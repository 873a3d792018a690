//! The profile page (`2fa-enroll web`) end to end: the real 2fad serving
//! it, the real `2fa-enroll` run as the user (or root) for the link, a
//! real headless Chromium (tests/webauthn_browser.py) filling in its
//! forms, a virtual authenticator for keys, and the real libpam
//! (pamtester) logging in with what the page set up. Attacks: a second
//! browser with the same link, a forged cross-site POST, requests without
//! the CSRF token or from another origin, expired links and pages.
//! Screenshots at desktop and phone widths go to target/screenshots/.

mod common;

use common::daemon::{Browser, Daemon, WebOptions};
use common::{Env, output_text, system_user, totp};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

const REMEMBER: &str = "\n[remember]\nenabled = true\n";

/// A link for `user` from `2fa-enroll web --quiet` run as `as_user`.
fn link(d: &Daemon, as_user: &str, user: Option<&str>) -> String {
    let mut args = vec!["web", "--quiet"];
    if let Some(u) = user {
        args.extend(["--user", u]);
    }
    let o = d.enroll_as(as_user, &args, "");
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    let url = text.trim().to_string();
    assert!(url.contains("/p/"), "{text}");
    url
}

/// The browser's answer to `cmd`, after its first word.
fn ask(b: &mut Browser, cmd: &str) -> serde_json::Value {
    let line = b.cmd(cmd);
    let (_, json) = line.split_once(' ').unwrap_or((&line, "null"));
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{cmd}: {line}: {e}"))
}

/// The URL the browser is at after `goto` or `act`.
fn at(page: &serde_json::Value) -> String {
    page[0].as_str().unwrap_or("").to_string()
}

fn text(b: &mut Browser, id: &str) -> String {
    ask(b, &format!("text {id}"))
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Opens a profile link as a user does: its page, then its button.
/// The URL the browser is at after that.
fn open_link(b: &mut Browser, url: &str) -> String {
    ask(b, &format!("goto {url}"));
    click(b, "#open button")
}

/// Runs JS that submits a form (or clicks), waits for the next page.
fn act(b: &mut Browser, js: &str) -> String {
    let p = ask(b, &format!("act {js}"));
    assert_ne!(p[0], "error", "{js}: {p}");
    assert_ne!(p[0], "timeout", "{js}: {p}");
    at(&p)
}

/// Clicks the submit button of the first form inside `selector`.
fn click(b: &mut Browser, selector: &str) -> String {
    act(
        b,
        &format!(
            "document.querySelector({}).click()",
            serde_json::to_string(selector).unwrap()
        ),
    )
}

fn set(b: &mut Browser, id: &str, value: &str) {
    let v = ask(
        b,
        &format!(
            "eval document.getElementById({}).value = {}",
            serde_json::to_string(id).unwrap(),
            serde_json::to_string(value).unwrap()
        ),
    );
    assert_eq!(v, value, "setting {id}");
}

fn exists(b: &mut Browser, selector: &str) -> bool {
    ask(
        b,
        &format!(
            "eval !!document.querySelector({})",
            serde_json::to_string(selector).unwrap()
        ),
    ) == true
}

/// A screenshot at `width` x `height` into target/screenshots/NAME.png;
/// checks it is a PNG and that nothing is wider than the viewport.
fn shot(b: &mut Browser, name: &str, width: u32, height: u32) {
    let path = common::screenshot_dir().join(format!("{name}.png"));
    let r = b.cmd(&format!("screenshot {width} {height} {}", path.display()));
    let png = std::fs::read(&path).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "{name}: {r}"
    );
    let parts: Vec<u64> = r
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    assert_eq!(parts.len(), 2, "{r}");
    assert!(
        parts[0] <= parts[1],
        "{name}: page is {} px wide at a {} px viewport",
        parts[0],
        parts[1]
    );
}

/// Accessibility checks of the page in the browser (axe-core is not
/// packaged for Debian, so the rules that matter here are checked by
/// tests/profile_a11y.js): an empty list means every rule held.
fn a11y(b: &mut Browser) -> serde_json::Value {
    let js = include_str!("profile_a11y.js").replace('\n', " ");
    ask(b, &format!("eval {js}"))
}

/// A raw HTTP request to 2fad; (status line, headers and body).
fn http(port: u16, req: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    (r.lines().next().unwrap_or("").to_string(), r)
}

fn post(port: u16, path: &str, cookie: &str, origin: Option<&str>, body: &str) -> String {
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    http(
        port,
        &format!(
            "POST {path} HTTP/1.0\r\nHost: localhost:{port}\r\nCookie: {cookie}\r\n{origin}\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .0
}

/// The session cookie the browser holds, as `name=value`.
fn session_cookie(b: &mut Browser) -> String {
    let cookies = ask(b, "cookies");
    let c = cookies
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "p2fa_profile")
        .unwrap_or_else(|| panic!("no session cookie: {cookies}"));
    assert_eq!(c["httpOnly"], true, "{c}");
    assert_eq!(c["sameSite"], "Strict", "{c}");
    format!("p2fa_profile={}", c["value"].as_str().unwrap())
}

fn csrf(b: &mut Browser) -> String {
    ask(b, "eval document.body.dataset.csrf")
        .as_str()
        .unwrap()
        .to_string()
}

/// A user with no factor sets up an authenticator app (the test reads the
/// key from the page and computes the code), makes backup codes and
/// downloads them (one logs in through libpam), registers a named
/// security key, forgets the remembered device that login left, and
/// logs out.
#[test]
fn a_new_user_sets_up_and_manages_factors_in_the_browser() {
    let user = system_user("p2fa-prof1", "Profile-p2fa1");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let d = Daemon::start(&env, "", REMEMBER);
    let mut b = Browser::start();

    let url = link(&d, &user, None);
    let page = open_link(&mut b, &url);
    assert!(page.ends_with("/profile"), "{page}");
    assert!(text(&mut b, "who").contains(&user));
    let methods = text(&mut b, "methods");
    assert!(
        methods.contains("Authenticator app") && methods.contains("Not set up"),
        "{methods}"
    );
    assert!(
        !exists(&mut b, "#prove"),
        "a user with no factor is not asked for a proof"
    );
    shot(&mut b, "profile-new-user-desktop", 1280, 900);
    shot(&mut b, "profile-new-user-phone", 375, 740);
    let problems = a11y(&mut b);
    assert_eq!(problems, serde_json::json!([]), "accessibility");

    // An authenticator app, confirmed with a code computed from the key
    // the page shows.
    click(&mut b, "#method-totp form button");
    assert!(
        exists(&mut b, "#totp-qr svg"),
        "no QR code: {}",
        ask(&mut b, "eval document.body.innerHTML")
    );
    shot(&mut b, "profile-totp-setup-desktop", 1280, 900);
    shot(&mut b, "profile-totp-setup-phone", 375, 740);
    let secret = text(&mut b, "totp-secret");
    assert!(secret.len() >= 16, "{secret}");
    set(&mut b, "totp-code", &totp(&secret, None));
    click(&mut b, "#totp-confirm");
    let flash = text(&mut b, "flash");
    assert!(flash.contains("Saved"), "{flash}");
    assert!(
        !exists(&mut b, "#totp-secret"),
        "the key is shown only during setup"
    );
    let st = env.status_json(&user);
    assert_eq!(st["otp"]["kind"], "totp", "{st}");

    // Backup codes: shown once, downloaded as a file; one logs in.
    click(&mut b, "#method-backup form button");
    let codes: Vec<String> = serde_json::from_value(ask(
        &mut b,
        "eval [...document.querySelectorAll('#code-list code')].map(c => c.textContent)",
    ))
    .unwrap();
    assert!(codes.len() >= 5, "{codes:?}");
    shot(&mut b, "profile-backup-codes-phone", 375, 740);
    let dir = tempfile::tempdir().unwrap();
    let file = ask(
        &mut b,
        &format!(
            "download document.getElementById('codes-download').click() {}",
            dir.path().display()
        ),
    );
    let downloaded = std::fs::read_to_string(file.as_str().expect("no download")).unwrap();
    for c in &codes {
        assert!(downloaded.contains(c.as_str()), "{c} not in {downloaded}");
    }
    click(&mut b, "#codes form button");
    assert!(!exists(&mut b, "#code-list"), "codes are shown once");
    let a = env.attempt("p2fa", &user, &format!("{}\n", codes[0]), None);
    assert!(a.ok, "{}", a.output);
    assert!(a.log.contains("factor=backup"), "{}", a.log);

    // A security key with a name, through the page's script.
    set(&mut b, "key-name", "my phone");
    let after = act(&mut b, "document.getElementById('key-add').click()");
    assert!(after.ends_with("/profile"), "{after}");
    let keys = text(&mut b, "keys");
    assert!(keys.contains("my phone"), "{keys}");
    assert_eq!(env.status_json(&user)["webauthn"], 1);

    // The login above left a remembered device: forget it.
    ask(&mut b, "goto about:blank");
    let page = ask(
        &mut b,
        &format!("goto http://localhost:{}/profile", d.port()),
    );
    assert!(at(&page).ends_with("/profile"), "{page}");
    let devices = text(&mut b, "devices");
    assert!(devices.contains("p2fa"), "{devices}");
    shot(&mut b, "profile-manage-desktop", 1280, 900);
    click(&mut b, "#devices tr.device form button");
    let devices = text(&mut b, "devices");
    assert!(devices.contains("No remembered devices"), "{devices}");
    let o = d.enroll_as(&user, &["devices", "list"], "");
    assert!(
        output_text(&o).contains("No remembered devices"),
        "{}",
        output_text(&o)
    );
    let history = text(&mut b, "history");
    assert!(
        history.contains("p2fa") && history.contains("backup"),
        "{history}"
    );

    // Logout ends the session.
    click(&mut b, "#logout");
    let page = ask(
        &mut b,
        &format!("goto http://localhost:{}/profile", d.port()),
    );
    assert!(at(&page).ends_with("/profile"));
    assert!(text(&mut b, "notice").contains("2fa-enroll web"));
    assert!(
        d.log().is_empty() || !d.log().contains(&secret),
        "the TOTP key is never logged"
    );
}

/// A user with TOTP and backup codes must prove one before any change: a
/// wrong code is counted like a failed login; a backup code unlocks the
/// page, and then TOTP can be reset (for a lost phone).
#[test]
fn changes_need_a_proof_and_a_backup_code_resets_a_lost_phone() {
    let user = system_user("p2fa-prof2", "Profile-p2fa2");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    env.enroll_totp(&user);
    let codes = env.enroll_backup(&user, 5);
    let d = Daemon::start(&env, "", "");
    let mut b = Browser::start();
    let url = link(&d, &user, None);
    open_link(&mut b, &url);
    assert!(exists(&mut b, "#prove"));
    assert!(
        !exists(&mut b, "#method-totp form"),
        "no change offered before a proof"
    );
    shot(&mut b, "profile-prove-phone", 375, 740);

    // A forged change without a proof is refused by 2fad itself.
    let (cookie, token) = (session_cookie(&mut b), csrf(&mut b));
    let st = post(
        d.port(),
        "/profile/do",
        &cookie,
        None,
        &format!("csrf={token}&action=remove&method=totp"),
    );
    assert!(st.contains(" 303"), "{st}");
    assert_eq!(
        env.status_json(&user)["otp"]["kind"],
        "totp",
        "removed without a proof"
    );

    set(&mut b, "proof-code", "000000");
    click(&mut b, "#prove-code");
    let flash = text(&mut b, "flash");
    assert!(flash.contains("not a valid current code"), "{flash}");
    assert_eq!(
        env.status_json(&user)["failures"],
        1,
        "a wrong proof counts"
    );

    set(&mut b, "proof-code", &codes[0]);
    click(&mut b, "#prove-code");
    let flash = text(&mut b, "flash");
    assert!(flash.contains("Confirmed"), "{flash}");
    assert!(!exists(&mut b, "#prove"));
    assert_eq!(
        env.status_json(&user)["backup_codes_remaining"],
        4,
        "the code is spent"
    );

    click(&mut b, "#method-totp form button.danger");
    let flash = text(&mut b, "flash");
    assert!(flash.contains("Removed totp"), "{flash}");
    assert!(env.status_json(&user)["otp"].is_null());
    let logs = env.logs().join("\n");
    assert!(
        logs.contains("factor removed") && logs.contains("factor=totp"),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("profile page unlocked for changes user={user}"))
            && logs.contains("proof=backup"),
        "{logs}"
    );
}

/// Someone else with the same link: their browser is refused, and the
/// user's page is closed too (the link leaked).
#[test]
fn a_second_browser_with_the_same_link_is_refused() {
    let user = system_user("p2fa-prof3", "Profile-p2fa3");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let d = Daemon::start(&env, "", "");
    let (mut b, mut attacker) = (Browser::start(), Browser::start());
    let url = link(&d, &user, None);
    let path = format!("/p/{}", url.rsplit('/').next().unwrap());
    // A link preview (a plain GET, as chat programs and prefetching
    // browsers send) uses nothing up ...
    let (status, body) = d.http_get(&path);
    assert!(
        status.contains(" 200") && body.contains("Continue"),
        "{status}: {body}"
    );
    assert!(open_link(&mut b, &url).ends_with("/profile"));
    assert!(exists(&mut b, "#methods"));
    // ... and one after the opening ends nothing.
    let (status, body) = d.http_get(&path);
    assert!(
        status.contains(" 410") && body.contains("opened already"),
        "{status}: {body}"
    );
    let profile = format!("goto http://localhost:{}/profile", d.port());
    ask(&mut b, &profile);
    assert!(
        exists(&mut b, "#methods"),
        "a GET of the used link closed the page"
    );
    // The other browser is told the link was used; its button (a second
    // opening) closes the user's page.
    ask(&mut attacker, &format!("goto {url}"));
    assert!(!exists(&mut attacker, "#methods"));
    assert!(text(&mut attacker, "notice").contains("opened already"));
    click(&mut attacker, "#open button");
    assert!(!exists(&mut attacker, "#methods"));
    assert!(text(&mut attacker, "notice").contains("works once"));
    ask(&mut b, &profile);
    assert!(!exists(&mut b, "#methods"), "the user's page stays open");
    assert!(text(&mut b, "notice").contains("opened a second time"));
}

/// A page on another site that posts to the profile page: no cookie goes
/// with it (SameSite=Strict), and even with the cookie a request from
/// another origin or without the CSRF token is refused. Nothing changes.
#[test]
fn a_forged_cross_site_post_changes_nothing() {
    let user = system_user("p2fa-prof4", "Profile-p2fa4");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    env.enroll_totp(&user);
    let codes = env.enroll_backup(&user, 5);
    let d = Daemon::start(&env, "", "");
    let mut b = Browser::start();
    let url = link(&d, &user, None);
    open_link(&mut b, &url);
    set(&mut b, "proof-code", &codes[0]);
    click(&mut b, "#prove-code");
    assert!(!exists(&mut b, "#prove"), "the session is unlocked");

    // The attacker's page on another origin.
    let evil = TcpListener::bind("127.0.0.1:0").unwrap();
    let evil_port = evil.local_addr().unwrap().port();
    let target = format!("http://localhost:{}/profile/do", d.port());
    std::thread::spawn(move || {
        for s in evil.incoming().flatten().take(4) {
            let mut s = s;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let html = format!(
                "<!doctype html><form id=f method=post action='{target}'>\
                 <input name=csrf value=guess><input name=action value=remove>\
                 <input name=method value=totp></form><script>document.getElementById('f').submit()</script>"
            );
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{html}",
                html.len()
            );
        }
    });
    ask(&mut b, &format!("goto http://127.0.0.1:{evil_port}/"));
    // The form submits itself to 2fad, which refuses it: the browser says
    // it comes from another origin (and sends no cookie with it).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let landed = loop {
        let v = ask(
            &mut b,
            "eval location.pathname === '/profile/do' && document.readyState === 'complete' ? document.body.innerText : ''",
        );
        if v.as_str().is_some_and(|t| !t.is_empty()) || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        landed
            .as_str()
            .unwrap_or("")
            .contains("did not come from your profile page"),
        "{landed}"
    );
    assert_eq!(
        env.status_json(&user)["otp"]["kind"],
        "totp",
        "forged POST removed TOTP"
    );

    ask(
        &mut b,
        &format!("goto http://localhost:{}/profile", d.port()),
    );
    let (cookie, token) = (session_cookie(&mut b), csrf(&mut b));
    let body = format!("csrf={token}&action=remove&method=totp");
    let evil_origin = format!("http://127.0.0.1:{evil_port}");
    let st = post(d.port(), "/profile/do", &cookie, Some(&evil_origin), &body);
    assert!(st.contains(" 403"), "{st}");
    let st = post(
        d.port(),
        "/profile/do",
        &cookie,
        None,
        "csrf=guess&action=remove&method=totp",
    );
    assert!(st.contains(" 403"), "{st}");
    assert_eq!(env.status_json(&user)["otp"]["kind"], "totp");
    // The same request with the page's own token and origin does it: the
    // refusals above were the checks, not a broken request.
    let own = format!("http://localhost:{}", d.port());
    let st = post(d.port(), "/profile/do", &cookie, Some(&own), &body);
    assert!(st.contains(" 303"), "{st}");
    assert!(env.status_json(&user)["otp"].is_null());
}

/// An unused link and an open page both expire, and say what to do.
#[test]
fn expired_links_and_pages_say_what_to_do() {
    let user = system_user("p2fa-prof5", "Profile-p2fa5");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let d = Daemon::start_web(
        &env,
        WebOptions {
            webauthn: "link_seconds = 30\nprofile_seconds = 60",
            faketime: Some("+0 x30"),
            ..WebOptions::default()
        },
    );
    let mut b = Browser::start();
    let stale = link(&d, &user, None);
    let open = link(&d, &user, None);
    assert!(open_link(&mut b, &open).ends_with("/profile"));
    std::thread::sleep(Duration::from_millis(2_500)); // ~75 s for 2fad
    ask(
        &mut b,
        &format!("goto http://localhost:{}/profile", d.port()),
    );
    assert!(!exists(&mut b, "#methods"));
    let notice = text(&mut b, "notice");
    assert!(notice.contains("2fa-enroll web"), "{notice}");
    assert!(text(&mut b, "main").contains("expired"));
    ask(&mut b, &format!("goto {stale}"));
    assert!(text(&mut b, "main").contains("expired"));
    let (status, _) = d.http_get(&format!("/p/{}", stale.rsplit('/').next().unwrap()));
    drop(d);
    assert!(status.contains(" 410"), "{status}");
}

/// Root opens a user's page to help them (lost phone): no proof, a
/// banner says so, and the log names root. A user cannot ask for
/// someone else's page.
#[test]
fn root_opens_the_page_for_a_user() {
    let user = system_user("p2fa-prof6", "Profile-p2fa6");
    let other = system_user("p2fa-prof7", "Profile-p2fa7");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    env.enroll_totp(&user);
    let d = Daemon::start(&env, "", "");
    let o = d.enroll_as(&other, &["web", "--user", &user], "");
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("only manage your own"),
        "{}",
        output_text(&o)
    );

    let mut b = Browser::start();
    let url = link(&d, "root", Some(&user));
    open_link(&mut b, &url);
    assert!(text(&mut b, "acting").contains("as root"));
    assert!(!exists(&mut b, "#prove"));
    shot(&mut b, "profile-root-desktop", 1280, 900);
    click(&mut b, "#method-totp form button.danger");
    let flash = text(&mut b, "flash");
    assert!(
        flash.contains("Removed totp"),
        "{flash}\n{}",
        ask(&mut b, "eval document.body.innerText")
    );
    assert!(env.status_json(&user)["otp"].is_null());
    let logs = env.logs().join("\n");
    assert!(logs.contains("by uid=0"), "{logs}");
}

/// A user whose only factor is a security key proves it on the page with
/// the key (the page's WebAuthn ceremony), which unlocks changes: here
/// backup codes are added.
#[test]
fn a_security_key_proves_it_is_you() {
    let user = system_user("p2fa-prof8", "Profile-p2fa8");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let d = Daemon::start(&env, "", "");
    let mut b = Browser::start();
    common::daemon::register_key(&env, &mut b, &user, "desk key");
    let url = link(&d, &user, None);
    open_link(&mut b, &url);
    assert!(exists(&mut b, "#prove-key"));
    assert!(!exists(&mut b, "#method-backup form"));
    let after = act(&mut b, "document.getElementById('prove-key').click()");
    assert!(after.ends_with("/profile"), "{after}");
    let flash = text(&mut b, "flash");
    assert!(flash.contains("Confirmed with webauthn"), "{flash}");
    click(&mut b, "#method-backup form button");
    assert!(exists(&mut b, "#code-list"));
    assert!(env.status_json(&user)["backup_codes_remaining"].as_u64() > Some(0));
    let logs = env.logs().join("\n");
    assert!(logs.contains("proof=webauthn"), "{logs}");
}

/// The factors 2fad reaches over the network, set up on the page against
/// the local stand-ins: a phone number and an e-mail address, each saved
/// only after the code sent to it is typed back; Duo, once Duo's preauth
/// knows the user; security questions (answers typed twice). Then one is
/// removed again. A second user whom Duo does not know yet gets Duo's
/// enrollment link.
#[test]
fn phone_email_duo_and_questions_are_set_up_on_the_page() {
    use common::net::{Pki, duo_conf, duo_server, json_lines, mail_env, sms_env, wait_code};
    let user = system_user("p2fa-prof9", "Profile-p2fa9");
    let newcomer = system_user("p2fa-prof10", "Profile-p2fa10");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let dir = env.root().to_path_buf();
    let (sms, sms_conf) = sms_env(&dir);
    let (mail, mail_conf) = mail_env(&dir);
    let pki = Pki::new(&dir.join("pki-duo"));
    let scenario = dir.join("duo-scenario.json");
    std::fs::write(
        &scenario,
        serde_json::json!({
            user.as_str(): {"preauth": "auth", "devices": [{"device": "DP1",
                "display_name": "iPhone (XXX-XXX-0100)", "capabilities": ["push"]}]},
        })
        .to_string(),
    )
    .unwrap();
    let duo = duo_server(
        &pki.cert,
        &pki.key,
        &scenario,
        &dir.join("duo.jsonl"),
        &[],
        &dir,
    );
    let questions = "[questions]\nenabled = true\ncount = 2\nask = 1\n\
                     list = [\"Name of your first pet?\", \"City you were born in?\", \"Your first teacher?\"]\n";
    let extra = format!(
        "\n{sms_conf}\n{mail_conf}\n{}\n{questions}",
        duo_conf(&dir, duo.port, &pki, "secure")
    );
    let d = Daemon::start(&env, "", &extra);
    let mut b = Browser::start();
    let url = link(&d, &user, None);
    open_link(&mut b, &url);

    // A phone number: the code arrives at the gateway and is typed back.
    set(&mut b, "address-sms", "+1 555 123 4567");
    click(&mut b, "#method-sms form.contact button");
    let flash = text(&mut b, "flash");
    assert!(flash.contains("Sent a code to"), "{flash}");
    set(&mut b, "contact-code", "000000");
    click(&mut b, "#contact-confirm-button");
    assert!(text(&mut b, "flash").contains("not right"));
    assert!(
        env.status_json(&user)["sms"].is_null(),
        "saved with a wrong code"
    );
    let code = wait_code(&sms.log, 1, "body");
    assert_eq!(json_lines(&sms.log)[0]["to"], "+15551234567");
    set(&mut b, "contact-code", &code);
    click(&mut b, "#contact-confirm-button");
    let flash = text(&mut b, "flash");
    assert!(flash.contains("Saved"), "{flash}");
    assert_eq!(env.status_json(&user)["sms"], "+15551234567");

    // An e-mail address, the same way.
    set(&mut b, "address-email", "prof9@example.com");
    click(&mut b, "#method-email form.contact button");
    let code = wait_code(&mail.log, 1, "data");
    set(&mut b, "contact-code", &code);
    click(&mut b, "#contact-confirm-button");
    assert_eq!(env.status_json(&user)["email"], "prof9@example.com");

    // Duo knows the user: the page says so, and "Use Duo" saves it.
    let row = text(&mut b, "method-duo");
    assert!(
        row.contains("Duo knows you") && row.contains("iPhone"),
        "{row}"
    );
    click(&mut b, "#method-duo form button");
    assert!(text(&mut b, "flash").contains("Duo"));
    assert_eq!(env.status_json(&user)["duo"], true);

    // Security questions: answers that differ are refused, then saved.
    click(&mut b, "#method-questions form button");
    assert!(exists(&mut b, "#questions-setup"));
    shot(&mut b, "profile-questions-phone", 375, 740);
    for (id, v) in [
        ("a0", "Rex"),
        ("r0", "Rex"),
        ("a1", "Oslo"),
        ("r1", "Bergen"),
    ] {
        set(&mut b, id, v);
    }
    click(&mut b, "#questions-save");
    assert!(text(&mut b, "flash").contains("differ"));
    assert_eq!(env.status_json(&user)["questions"], 0);
    click(&mut b, "#method-questions form button");
    for (id, v) in [
        ("a0", "Rex"),
        ("r0", "rex "),
        ("a1", "Oslo"),
        ("r1", "Oslo"),
    ] {
        set(&mut b, id, v);
    }
    click(&mut b, "#questions-save");
    let flash = text(&mut b, "flash");
    assert!(flash.contains("Saved 2 security questions"), "{flash}");
    assert_eq!(env.status_json(&user)["questions"], 2);
    shot(&mut b, "profile-all-factors-desktop", 1280, 900);

    // And one goes again.
    click(&mut b, "#method-sms form.inline button.danger");
    assert!(text(&mut b, "flash").contains("Removed sms"));
    assert!(env.status_json(&user)["sms"].is_null());
    let logs = env.logs().join("\n");
    for f in [
        "factor=sms",
        "factor=email",
        "factor=duo",
        "factor=questions",
    ] {
        assert!(
            logs.contains(&format!("factor added user={user} {f}")),
            "{f}: {logs}"
        );
    }
    assert!(
        !logs.contains("Rex") && !logs.contains("Oslo"),
        "an answer in the log"
    );

    // Duo does not know the newcomer yet: the enrollment link is shown.
    let url = link(&d, &newcomer, None);
    open_link(&mut b, &url);
    let portal = ask(&mut b, "eval document.getElementById('duo-portal').href");
    assert!(
        portal
            .as_str()
            .unwrap_or("")
            .starts_with("https://api-mock.duosecurity.invalid/portal"),
        "{portal}"
    );
}

/// The page works from the keyboard alone: the first Tab reaches the
/// "skip to the content" link, Tab moves on through the controls in
/// order, and Enter on "Set up" starts the authenticator setup.
#[test]
fn the_page_works_with_the_keyboard_alone() {
    let user = system_user("p2fa-prof11", "Profile-p2fa11");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let d = Daemon::start(&env, "", "");
    let mut b = Browser::start();
    let url = link(&d, &user, None);
    open_link(&mut b, &url);
    let focused = "eval document.activeElement ? (document.activeElement.id || document.activeElement.className || document.activeElement.textContent.trim()) : ''";
    assert_eq!(b.cmd("key Tab"), "ok");
    assert_eq!(ask(&mut b, focused), "skip", "the first Tab");
    let mut seen = Vec::new();
    let target =
        "eval document.activeElement === document.querySelector('#method-totp form button')";
    let mut found = false;
    for _ in 0..30 {
        assert_eq!(b.cmd("key Tab"), "ok");
        seen.push(ask(&mut b, focused));
        if ask(&mut b, target) == true {
            found = true;
            break;
        }
    }
    assert!(found, "Tab never reached the TOTP set-up button: {seen:?}");
    assert_eq!(seen[0], "logout", "after the skip link: {seen:?}");
    let page = ask(&mut b, "keynav Enter");
    assert!(at(&page).ends_with("/profile"), "{page}");
    assert!(
        exists(&mut b, "#totp-secret"),
        "Enter did not start the setup"
    );
}

/// A user whose only factor is a phone number proves it with a code 2fad
/// sends there, on the page (a wrong code counts like a failed login)
/// and in `2fa-enroll` through 2fad, which asks for the code it sent.
#[test]
fn a_phone_number_proves_it_is_you_with_a_sent_code() {
    use common::net::{sms_env, wait_code};
    let user = system_user("p2fa-prof12", "Profile-p2fa12");
    let env = Env::new();
    let dir = env.root().to_path_buf();
    let (sms, sms_conf) = sms_env(&dir);
    env.write_config(&sms_conf);
    env.enroll_ok(&["init"], "");
    env.enroll_ok(
        &[
            "sms",
            "--user",
            &user,
            "--phone",
            "+1 555 123 4567",
            "--no-verify",
        ],
        "",
    );
    let d = Daemon::start(&env, "", &format!("\n{sms_conf}"));
    // From the command line, through 2fad: 2fa-enroll has the code sent
    // and asks for it. (Removing backup codes she does not have: the
    // proof passes, then 2fad says there is nothing to remove.)
    let mut child = d
        .enroll_cmd(&user, &["remove", "backup"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let code = wait_code(&sms.log, 1, "body");
    writeln!(child.stdin.take().unwrap(), "{code}").unwrap();
    let o = child.wait_with_output().unwrap();
    let out = output_text(&o);
    assert!(out.contains("Sent a code to +1"), "{out}");
    assert!(
        out.contains("no backup to remove"),
        "the proof did not pass: {out}"
    );
    let logs = env.logs().join("\n");
    assert!(
        logs.contains(&format!("broker current factor ok user={user} factor=sms")),
        "{logs}"
    );

    let mut b = Browser::start();
    let url = link(&d, &user, None);
    open_link(&mut b, &url);
    assert!(exists(&mut b, "#prove"));
    assert!(text(&mut b, "prove").contains("Send a code to +1"));
    click(&mut b, "#prove form.inline button");
    assert!(text(&mut b, "flash").contains("Sent a code"));
    set(&mut b, "sent-code", "000000");
    click(&mut b, "#prove-sent");
    assert!(text(&mut b, "flash").contains("not the code we sent"));
    assert_eq!(env.status_json(&user)["failures"], 1, "a wrong code counts");
    let code = wait_code(&sms.log, 2, "body");
    set(&mut b, "sent-code", &code);
    click(&mut b, "#prove-sent");
    let flash = text(&mut b, "flash");
    assert!(flash.contains("Confirmed with sms"), "{flash}");
    click(&mut b, "#method-backup form button");
    assert!(exists(&mut b, "#code-list"), "no change after the proof");
}

/// A form body, urlencoded.
fn form_body(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// POSTs a question form as the browser's session would (its cookie,
/// CSRF token and origin), not through the page's form: what a user
/// without JavaScript, or a forger, can send. The page's message after.
fn post_questions(b: &mut Browser, port: u16, fields: &[(&str, &str)]) -> String {
    let (cookie, token) = (session_cookie(b), csrf(b));
    let mut all = vec![("csrf", token.as_str()), ("action", "questions-set")];
    all.extend_from_slice(fields);
    let own = format!("http://localhost:{port}");
    let st = post(port, "/profile/do", &cookie, Some(&own), &form_body(&all));
    assert!(st.contains(" 303"), "{st}");
    ask(b, &format!("goto http://localhost:{port}/profile"));
    text(b, "flash")
}

/// The user's stored questions (text and answer hashes), to compare.
fn stored_questions(env: &Env, user: &str) -> String {
    env.sql(&format!(
        "SELECT idx, question, answer_hash FROM questions WHERE user='{user}' ORDER BY idx"
    ))
}

const PET: &str = "Name of your first pet?";
const BIKE: &str = "What was the name of my first bike & why?";
const HTML_Q: &str =
    "Which street did my <b>grandmother</b> live on? <script>window.p2faInjected=1</script>";

/// `allow_custom = true` with a list shorter than `count`: on the page a
/// user picks the one listed question and writes two of their own (a
/// repeat, ignoring case, is refused first), then logs in through libpam
/// answering them. Their own question's HTML shows as text. Forged posts
/// of an empty, over-long, repeated or control-character question, or
/// one written while a listed one is chosen, each get their message and
/// change nothing; the same post with good questions does.
#[test]
fn own_security_questions_are_written_on_the_page_and_asked_at_login() {
    let user = system_user("p2fa-prof13", "Profile-p2fa13");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let questions = format!(
        "\n[questions]\nenabled = true\ncount = 3\nask = 3\nallow_custom = true\nlist = [\"{PET}\"]\n"
    );
    let d = Daemon::start(&env, "", &questions);
    let mut b = Browser::start();
    let url = link(&d, &user, None);
    open_link(&mut b, &url);
    click(&mut b, "#method-questions form button");
    assert!(exists(&mut b, "#questions-setup"));
    // One listed question for three: the first select has it, the other
    // two "Write my own question…", whose fields profile.js shows.
    let shown = ask(
        &mut b,
        "eval [0,1,2].map(i => [document.getElementById('q' + i).value, document.getElementById('own' + i).hidden, document.getElementById('c' + i).disabled])",
    );
    assert_eq!(
        shown,
        serde_json::json!([[PET, true, true], ["", false, false], ["", false, false]]),
        "{shown}"
    );
    assert!(text(&mut b, "questions-setup").contains("Write my own question…"));
    let problems = a11y(&mut b);
    assert_eq!(problems, serde_json::json!([]), "accessibility: {problems}");
    shot(&mut b, "profile-own-questions-phone", 375, 900);
    // Choosing a listed question hides the field again, and back.
    let toggled = ask(
        &mut b,
        "eval (() => { const s = document.getElementById('q1'); s.value = s.options[0].value; s.dispatchEvent(new Event('change')); const a = document.getElementById('own1').hidden; s.value = ''; s.dispatchEvent(new Event('change')); return [a, document.getElementById('own1').hidden]; })()",
    );
    assert_eq!(toggled, serde_json::json!([true, false]));

    // The same question twice (other case and spacing): refused.
    let fill_in = |b: &mut Browser, c1: &str, c2: &str| {
        for (id, v) in [
            ("c1", c1),
            ("c2", c2),
            ("a0", "Rex"),
            ("r0", "Rex"),
            ("a1", "Elm Street"),
            ("r1", "elm street"),
            ("a2", "Speedy"),
            ("r2", "Speedy"),
        ] {
            set(b, id, v);
        }
        click(b, "#questions-save");
    };
    fill_in(&mut b, BIKE, &BIKE.to_uppercase().replace(' ', "  "));
    let flash = text(&mut b, "flash");
    assert!(
        flash.contains("Question 3 is the same as an earlier one"),
        "{flash}"
    );
    assert_eq!(env.status_json(&user)["questions"], 0);
    fill_in(&mut b, HTML_Q, BIKE);
    let flash = text(&mut b, "flash");
    assert!(flash.contains("Saved 3 security questions"), "{flash}");
    assert_eq!(env.status_json(&user)["questions"], 3);
    assert_eq!(
        env.sql(&format!(
            "SELECT question FROM questions WHERE user='{user}' ORDER BY idx"
        )),
        format!("{PET}\n{HTML_Q}\n{BIKE}")
    );
    let logs = env.logs().join("\n");
    assert!(
        logs.contains(&format!(
            "factor added user={user} factor=questions by uid="
        )) && logs.contains("count=3 custom=2"),
        "{logs}"
    );
    for answer in ["Rex", "Elm", "Speedy"] {
        assert!(!logs.contains(answer), "an answer in the log: {logs}");
    }

    // Logging in: the three questions, in their order, answered.
    let a = env.attempt("p2fa", &user, " rex\nELM  street\nspeedy\n", None);
    assert!(a.ok, "{}\n{}", a.output, a.log);
    assert!(
        a.output.contains(BIKE) && a.output.contains("grandmother"),
        "{}",
        a.output
    );
    let a = env.attempt("p2fa", &user, "rex\nOak Street\nspeedy\n", None);
    assert!(!a.ok, "a wrong answer to one's own question passed");

    // Root opens the page for the user (no proof needed, so a refusal
    // below is the check of the question, not a missing proof). The own
    // question is shown back as text, its HTML not run.
    let url = link(&d, "root", Some(&user));
    open_link(&mut b, &url);
    click(&mut b, "#method-questions form button");
    let current = ask(
        &mut b,
        "eval [...document.querySelectorAll('#questions-current li')].map(l => l.textContent)",
    );
    assert_eq!(current, serde_json::json!([PET, HTML_Q, BIKE]), "{current}");
    let injected = ask(
        &mut b,
        "eval [typeof window.p2faInjected, document.querySelectorAll('#questions-setup script, #questions-setup b').length]",
    );
    assert_eq!(injected, serde_json::json!(["undefined", 0]), "{injected}");

    let before = stored_questions(&env, &user);
    assert_eq!(before.lines().count(), 3, "{before}");
    let port = d.port();
    let answers = [
        ("a0", "Rex"),
        ("r0", "Rex"),
        ("a1", "Oak"),
        ("r1", "Oak"),
        ("a2", "Blue"),
        ("r2", "Blue"),
    ];
    let long = "Why? ".repeat(41);
    for (q1, c1, q2, c2, want) in [
        ("", "", "", "Own question two?", "Question 2 is empty"),
        ("", "   ", "", "Own question two?", "Question 2 is empty"),
        (
            "",
            long.trim(),
            "",
            "Own question two?",
            "needs 5 to 200 characters",
        ),
        (
            "",
            "Why?",
            "",
            "Own question two?",
            "needs 5 to 200 characters",
        ),
        (
            "",
            "Own question two?",
            "",
            "own QUESTION two?",
            "Question 3 is the same",
        ),
        (
            "",
            "Own question\ntwo?",
            "",
            "Own question three?",
            "cannot contain line breaks",
        ),
        ("", "Own question two?", PET, "", "Question 3 is the same"),
        (PET, "", "", "Own question three?", "Question 2 is the same"),
        ("", "Own question two?", "", "Own question three?", ""),
    ] {
        // The last one is good but for a question written next to the
        // listed first one.
        let c0 = if want.is_empty() {
            "Stray own question?"
        } else {
            ""
        };
        let mut fields = vec![
            ("q0", PET),
            ("c0", c0),
            ("q1", q1),
            ("c1", c1),
            ("q2", q2),
            ("c2", c2),
        ];
        fields.extend_from_slice(&answers);
        let flash = post_questions(&mut b, port, &fields);
        let want = if want.is_empty() {
            "you wrote a question of your own but chose one from the list"
        } else {
            want
        };
        assert!(flash.contains(want), "{c1:?}/{c2:?}: {flash}");
        assert!(flash.contains("Nothing was saved"), "{flash}");
        assert_eq!(stored_questions(&env, &user), before, "{c1:?}/{c2:?}");
    }
    let logs = env.logs().join("\n");
    assert!(
        logs.contains("profile page refused questions")
            && logs.contains("reason=Length")
            && logs.contains("text=\"Own question?two?\""),
        "{logs}"
    );
    // The same post with good questions is saved: the refusals above
    // were the checks.
    let mut fields = vec![
        ("q0", PET),
        ("c0", ""),
        ("q1", ""),
        ("c1", "Own question two?"),
        ("q2", ""),
        ("c2", "Own question three?"),
    ];
    fields.extend_from_slice(&answers);
    let flash = post_questions(&mut b, port, &fields);
    assert!(flash.contains("Saved 3 security questions"), "{flash}");
    assert_ne!(stored_questions(&env, &user), before);
}

/// `allow_custom = false`: the form offers only the list, and a question
/// of one's own posted anyway (as the own choice or as a select value
/// not on the list) is refused by the page, and by 2fad's broker over
/// its socket; the stored questions do not change.
#[test]
fn own_questions_are_refused_when_the_admin_does_not_allow_them() {
    let user = system_user("p2fa-prof14", "Profile-p2fa14");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let questions = format!(
        "\n[questions]\nenabled = true\ncount = 2\nask = 1\n\
         list = [\"{PET}\", \"City you were born in?\", \"Your first teacher?\"]\n"
    );
    let d = Daemon::start(&env, "", &questions);
    let mut b = Browser::start();
    let url = link(&d, "root", Some(&user));
    open_link(&mut b, &url);
    click(&mut b, "#method-questions form button");
    assert!(exists(&mut b, "#q1"));
    assert!(!exists(&mut b, "#c0") && !exists(&mut b, "#own0"));
    assert!(!text(&mut b, "questions-setup").contains("Write my own"));
    for (id, v) in [("a0", "Rex"), ("r0", "Rex"), ("a1", "Oslo"), ("r1", "Oslo")] {
        set(&mut b, id, v);
    }
    click(&mut b, "#questions-save");
    assert!(text(&mut b, "flash").contains("Saved 2 security questions"));
    let before = stored_questions(&env, &user);
    assert_eq!(before.lines().count(), 2, "{before}");

    let port = d.port();
    for (q0, c0) in [
        ("", "My very own question?"),
        ("My very own question?", ""),
        ("name of your first pet?", ""),
    ] {
        let flash = post_questions(
            &mut b,
            port,
            &[
                ("q0", q0),
                ("c0", c0),
                ("a0", "x"),
                ("r0", "x"),
                ("q1", "Your first teacher?"),
                ("a1", "y"),
                ("r1", "y"),
            ],
        );
        assert!(
            flash.contains("Question 1: your administrator does not allow questions of your own"),
            "{q0:?}/{c0:?}: {flash}"
        );
        assert_eq!(stored_questions(&env, &user), before);
    }
    let logs = env.logs().join("\n");
    assert!(
        logs.contains("reason=CustomNotAllowed text=\"My very own question?\""),
        "{logs}"
    );

    // 2fad's broker checks the same on its own, for any client.
    let frame = |q: &str| {
        serde_json::json!({"version": 1, "user": user, "op": "questions_set",
            "answers": [{"question": q, "answer": "x"},
                        {"question": "Your first teacher?", "answer": "y"}]})
        .to_string()
    };
    let r = d.ask("root", &frame("My very own question?"));
    assert_eq!(r["result"], "error", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("question 1: your own questions are not allowed here"),
        "{r}"
    );
    assert_eq!(stored_questions(&env, &user), before);
    let r = d.ask("root", &frame("Your first teacher?"));
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("question 2: that question was chosen already"),
        "{r}"
    );
    assert_eq!(stored_questions(&env, &user), before);
    let logs = env.logs().join("\n");
    assert!(
        logs.contains("broker refused user=") && logs.contains("reason=CustomNotAllowed"),
        "{logs}"
    );
    let r = d.ask("root", &frame(PET));
    assert!(r.to_string().contains("Saved 2 security questions"), "{r}");
    assert_ne!(stored_questions(&env, &user), before);
}
