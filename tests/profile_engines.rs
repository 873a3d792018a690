//! The profile page (`2fa-enroll web`) in the two other browser engines:
//! a real Firefox (Gecko, driven over WebDriver BiDi) and a real WebKit
//! (WebKitGTK's MiniBrowser through WebKitWebDriver), by
//! tests/engine_browser.py. tests/profile.rs covers Chromium in depth;
//! here a user with no factor sets up an authenticator app and backup
//! codes through the page's forms, the accessibility rules hold, and the
//! page fits a phone's width. Screenshots go to
//! target/screenshots/profile-<engine>-*.png. An engine that cannot start
//! fails the test: scripts/deps installs firefox-esr, webkit2gtk-driver
//! and xvfb.

mod common;

use common::daemon::Daemon;
use common::{Env, output_text, system_user, totp};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// One engine run by tests/engine_browser.py.
struct Engine {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
}

impl Engine {
    fn start(name: &'static str) -> Engine {
        let mut child = Command::new("/usr/bin/python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/engine_browser.py"
            ))
            .arg(name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "{name} did not start: {line}");
        Engine {
            name,
            child,
            stdin,
            out,
        }
    }

    /// One driver command, its answer after the first word as JSON.
    fn ask(&mut self, cmd: &str) -> serde_json::Value {
        writeln!(self.stdin, "{cmd}").unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        let line = line.trim();
        let (word, json) = line.split_once(' ').unwrap_or((line, "null"));
        assert_ne!(word, "error", "{}: {cmd}: {line}", self.name);
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{}: {cmd}: {line}: {e}", self.name))
    }

    fn text(&mut self, id: &str) -> String {
        self.ask(&format!("text {id}"))
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn eval(&mut self, js: &str) -> serde_json::Value {
        let v = self.ask(&format!("eval {js}"));
        assert!(v.get("error").is_none(), "{}: {js}: {v}", self.name);
        v
    }

    fn exists(&mut self, selector: &str) -> bool {
        let js = format!(
            "!!document.querySelector({})",
            serde_json::to_string(selector).unwrap()
        );
        self.eval(&js) == true
    }

    fn set(&mut self, id: &str, value: &str) {
        let js = format!(
            "document.getElementById({}).value = {}",
            serde_json::to_string(id).unwrap(),
            serde_json::to_string(value).unwrap()
        );
        assert_eq!(self.eval(&js), value, "{}: setting {id}", self.name);
    }

    /// Clicks `selector` (a form's button) and waits for the next page;
    /// its URL.
    fn click(&mut self, selector: &str) -> String {
        let js = format!(
            "document.querySelector({}).click()",
            serde_json::to_string(selector).unwrap()
        );
        let page = self.ask(&format!("act {js}"));
        assert_ne!(page[0], "error", "{}: {selector}: {page}", self.name);
        assert_ne!(page[0], "timeout", "{}: {selector}: {page}", self.name);
        page[0].as_str().unwrap_or("").to_string()
    }

    /// A screenshot at a `width` x `height` viewport into
    /// target/screenshots/profile-ENGINE-NAME.png (the whole page in
    /// Firefox, the viewport in WebKit); checks it is a PNG, that the
    /// viewport is that wide and that nothing on the page is wider.
    fn shot(&mut self, name: &str, width: u32, height: u32) {
        let path = common::screenshot_dir().join(format!("profile-{}-{name}.png", self.name));
        let _ = std::fs::remove_file(&path);
        writeln!(self.stdin, "screenshot {width} {height} {}", path.display()).unwrap();
        let mut r = String::new();
        self.out.read_line(&mut r).unwrap();
        let png =
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {name}: {r}: {e}", self.name));
        // A blank or black frame (a screenshot taken before the page
        // was drawn) is about 5 kB; the page's smallest is over 20 kB.
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 15_000,
            "{}: {name}: {r}",
            self.name
        );
        let parts: Vec<u64> = r
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        assert!(
            r.starts_with("ok ") && parts.len() == 2,
            "{}: {r}",
            self.name
        );
        assert_eq!(
            parts[1],
            u64::from(width),
            "{}: {name}: the viewport is not {width} px wide",
            self.name
        );
        assert!(
            parts[0] <= parts[1],
            "{}: {name}: page is {} px wide at a {} px viewport",
            self.name,
            parts[0],
            parts[1]
        );
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}

/// A user with no factor opens their link in `engine`, sets up an
/// authenticator app (the test reads the key from the page and computes
/// the code) and makes backup codes; the accessibility rules of
/// tests/profile_a11y.js hold and the page fits desktop and phone widths.
fn sets_up_factors_in(engine: &'static str, user: &str) {
    let user = system_user(user, "Profile-engines1");
    let env = Env::new();
    env.enroll_ok(&["init"], "");
    let d = Daemon::start(&env, "", "");
    let mut b = Engine::start(engine);

    let o = d.enroll_as(&user, &["web", "--quiet"], "");
    let link = output_text(&o).trim().to_string();
    assert!(o.status.success() && link.contains("/p/"), "{link}");
    b.ask(&format!("goto {link}"));
    let page = b.click("#open button");
    assert!(page.ends_with("/profile"), "{engine}: {page}");
    assert!(b.text("who").contains(&user), "{engine}");
    let methods = b.text("methods");
    assert!(
        methods.contains("Authenticator app") && methods.contains("Not set up"),
        "{engine}: {methods}"
    );
    let js = include_str!("profile_a11y.js").replace('\n', " ");
    assert_eq!(
        b.eval(&js),
        serde_json::json!([]),
        "{engine}: accessibility"
    );
    b.shot("new-user-desktop", 1280, 900);
    b.shot("new-user-phone", 375, 740);

    // An authenticator app, confirmed with a code computed from the key.
    let at = b.click("#method-totp form button");
    assert!(
        b.exists("#totp-qr svg"),
        "{engine}: no QR code at {at}: {}",
        b.eval("document.body.innerHTML")
    );
    b.shot("totp-setup-phone", 375, 740);
    let secret = b.text("totp-secret");
    assert!(secret.len() >= 16, "{engine}: {secret}");
    b.set("totp-code", &totp(&secret, None));
    b.click("#totp-confirm");
    let flash = b.text("flash");
    assert!(flash.contains("Saved"), "{engine}: {flash}");
    assert!(!b.exists("#totp-secret"), "{engine}: key still shown");
    let st = env.status_json(&user);
    assert_eq!(st["otp"]["kind"], "totp", "{engine}: {st}");

    // Backup codes, shown once on the page.
    b.click("#method-backup form button");
    let codes = b.eval("[...document.querySelectorAll('#code-list code')].map(c => c.textContent)");
    let codes = codes.as_array().cloned().unwrap_or_default();
    assert!(codes.len() >= 5, "{engine}: {codes:?}");
    let st = env.status_json(&user);
    assert_eq!(
        st["backup_codes_remaining"].as_u64(),
        Some(codes.len() as u64),
        "{engine}: {st}"
    );
    assert_eq!(
        b.eval(&js),
        serde_json::json!([]),
        "{engine}: accessibility"
    );
    b.shot("backup-codes-desktop", 1280, 900);
    b.shot("backup-codes-phone", 375, 740);
    assert!(!d.log().contains(&secret), "the TOTP key is never logged");
}

#[test]
fn a_new_user_sets_up_factors_in_firefox() {
    sets_up_factors_in("firefox", "p2fa-eng1");
}

#[test]
fn a_new_user_sets_up_factors_in_webkit() {
    sets_up_factors_in("webkit", "p2fa-eng2");
}
