//! The profile page across the fleet (README "Your profile page in the
//! browser"): two hosts share one PostgreSQL database, each runs its own
//! 2fad, and both serve one public name (`public_url` with host A's
//! port), as two instances behind a load balancer without sticky
//! sessions would. The "load balancer" is this test: it sends each
//! request of one browser to either 2fad. Links and sessions are rows
//! of the fleet database, so every request works on either; what must
//! end a session ends it on both. An attacker who reads the database
//! finds no token, session id, CSRF token, TOTP secret or backup code;
//! one who changes a session's sealed state gets no session.

mod common;
use common::daemon::Daemon;
use common::fleet::{ROLE, ROLE_PASSWORD, TwoHosts, host_env};
use common::pg::PgServer;
use common::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

const HERE: Ipv4Addr = Ipv4Addr::LOCALHOST;
const THERE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

type Fleet = TwoHosts;

impl Fleet {
    /// Every row of every table of the fleet schema, as text.
    fn dump(&self) -> String {
        let tables = self
            .sql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'p2fa'");
        let mut all = String::new();
        for t in tables.lines() {
            all.push_str(&self.sql(&format!("SELECT x::text FROM p2fa.{t} x")));
            all.push('\n');
        }
        all
    }

    fn log(&self) -> String {
        format!(
            "--- 2fad A ---\n{}\n--- 2fad B ---\n{}",
            self.wa.log(),
            self.wb.log()
        )
    }
}

/// A link for `user` from `2fa-enroll web --quiet` run as the user on
/// `d`'s host.
fn link(d: &Daemon, user: &str) -> String {
    let o = d.enroll_as(user, &["web", "--quiet"], "");
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    let url = text.trim().to_string();
    assert!(url.contains("/p/"), "{text}");
    url
}

/// A raw HTTP/1.0 exchange with 2fad `d` from the address `from`: the
/// whole answer.
fn http(d: &Daemon, from: Ipv4Addr, req: &str) -> String {
    http_to(d.port(), from, req)
}

/// [`http`] to the web port `port`.
fn http_to(port: u16, from: Ipv4Addr, req: &str) -> String {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    let [a, b, c, e] = from.octets();
    bind(fd.as_raw_fd(), &SockaddrIn::new(a, b, c, e, 0)).unwrap();
    connect(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port)).unwrap();
    let mut s = TcpStream::from(fd);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    r
}

fn status(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |x| x.1)
}

fn get(d: &Daemon, from: Ipv4Addr, path: &str, cookie: &str) -> String {
    http(
        d,
        from,
        &format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nCookie: {cookie}\r\n\r\n"),
    )
}

fn post(d: &Daemon, from: Ipv4Addr, path: &str, cookie: &str, origin: &str, form: &str) -> String {
    http(
        d,
        from,
        &format!(
            "POST {path} HTTP/1.0\r\nHost: localhost\r\nCookie: {cookie}\r\nOrigin: {origin}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    )
}

/// Opens `url`'s link through `d` as a browser does (its landing page,
/// then its button): the session cookie, as `name=value`.
fn open(f: &Fleet, d: &Daemon, from: Ipv4Addr, url: &str) -> String {
    let path = &url[f.origin.len()..];
    let landing = get(d, from, path, "");
    assert!(status(&landing).contains(" 200"), "{landing}");
    let r = post(d, from, path, "", &f.origin, "");
    assert!(status(&r).contains(" 303"), "{r}\n{}", f.log());
    let cookie = r
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no cookie: {r}"));
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    cookie.split(';').next().unwrap().to_string()
}

/// The page through `d`: (status line, HTML).
fn page(d: &Daemon, from: Ipv4Addr, cookie: &str) -> (String, String) {
    let r = get(d, from, "/profile", cookie);
    (status(&r).to_string(), body(&r).to_string())
}

/// The CSRF token a page carries.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("data-csrf=\"")
        .expect("no CSRF token on the page")
        + 11;
    html[at..].split('"').next().unwrap().to_string()
}

/// A form post to `/profile/do` through `d`: the status line.
fn act(f: &Fleet, d: &Daemon, cookie: &str, csrf: &str, action: &str) -> String {
    let r = post(
        d,
        HERE,
        "/profile/do",
        cookie,
        &f.origin,
        &format!("csrf={csrf}&action={action}"),
    );
    status(&r).to_string()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(s.as_bytes()))
}

/// A link made on host A is opened through 2fad B; the page shows
/// through A, changes posted through B show through A, the download
/// works through either. The database then holds hashes of the link and
/// the session, and none of the secrets in clear (nor hex-encoded).
#[test]
fn a_profile_page_works_through_either_2fad() {
    let user = system_user("p2fa-fpr1", "Fleet-profile-p2fa");
    let f = Fleet::start();
    let url = link(&f.wa, &user);
    assert!(url.starts_with(&format!("{}/p/", f.origin)), "{url}");
    let token = common::daemon::token_of(&url);
    assert_eq!(
        f.sql("SELECT username, by_uid <> 0, host, session_hash IS NULL FROM p2fa.profile_links"),
        format!("{user}|t|host-a|t")
    );
    // Looking at the landing page, on either, changes nothing.
    for d in [&f.wa, &f.wb, &f.wa] {
        let r = get(d, HERE, &format!("/p/{token}"), "");
        assert!(status(&r).contains(" 200"), "{r}");
    }
    assert_eq!(
        f.sql("SELECT count(*) FROM p2fa.profile_links WHERE session_hash IS NULL"),
        "1"
    );

    let cookie = open(&f, &f.wb, HERE, &url);
    let sid = cookie.split_once('=').unwrap().1.to_string();
    let (st, html) = page(&f.wa, HERE, &cookie);
    assert!(st.contains(" 200"), "{st}\n{html}\n{}", f.log());
    assert!(html.contains(&user), "{html}");
    let csrf = csrf_of(&html);
    // The same page through B: the same session.
    let (st, html_b) = page(&f.wb, HERE, &cookie);
    assert!(st.contains(" 200"), "{st}");
    assert_eq!(csrf_of(&html_b), csrf);

    // A change posted through B shows through A.
    assert!(act(&f, &f.wb, &cookie, &csrf, "totp-begin").contains(" 303"));
    let (_, html) = page(&f.wa, HERE, &cookie);
    let at = html
        .find("id=\"totp-secret\">")
        .expect("no TOTP setup shown")
        + 17;
    let secret = html[at..].split('<').next().unwrap().to_string();
    assert!(secret.len() >= 16, "{secret}");
    let st = act(&f, &f.wb, &cookie, &csrf, "backup-new");
    assert!(st.contains(" 303"), "{st}\n{}", f.log());
    let (_, html) = page(&f.wa, HERE, &cookie);
    assert!(html.contains("id=\"codes\""), "{html}");
    let dl = get(&f.wb, HERE, "/profile/backup-codes.txt", &cookie);
    assert!(status(&dl).contains(" 200"), "{dl}");
    let codes: Vec<String> = body(&dl)
        .lines()
        .skip_while(|l| !l.is_empty())
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(
        codes.len(),
        p2fa_core::config::Config::default().backup.count as usize,
        "{dl}"
    );
    for c in &codes {
        assert!(html.contains(c.as_str()), "{c} not on the page shown by A");
    }
    assert_eq!(
        f.sql(&format!(
            "SELECT count(*) FROM p2fa.backup_codes WHERE username = '{user}'"
        )),
        codes.len().to_string()
    );

    // What the database holds: hashes, sealed state, no secret.
    let rows = f.sql(
        "SELECT username, peer, ended IS NULL, length(state) > 0, host FROM p2fa.profile_sessions",
    );
    assert_eq!(rows, format!("{user}|127.0.0.1|t|t|host-b"));
    let dump = f.dump();
    assert!(
        dump.contains(&sha256_hex(&token)),
        "the link's hash is not stored"
    );
    assert!(
        dump.contains(&sha256_hex(&sid)),
        "the session's hash is not stored"
    );
    let mut secrets = vec![token.clone(), sid.clone(), csrf.clone(), secret.clone()];
    secrets.extend(codes.iter().cloned());
    // Backup codes as typed may have a dash: both forms.
    secrets.extend(codes.iter().map(|c| c.replace('-', "")));
    for s in &secrets {
        assert!(
            !dump.contains(s.as_str()),
            "{s} is in the database in clear"
        );
        assert!(
            !dump.contains(&hex(s.as_bytes())),
            "{s} is in the database (hex)"
        );
    }

    // The setup begun through B is finished through A (whose broker
    // did not begin it: the key comes from the sealed session).
    let r = post(
        &f.wa,
        HERE,
        "/profile/do",
        &cookie,
        &f.origin,
        &format!(
            "csrf={csrf}&action=totp-finish&code={}",
            totp(&secret, None)
        ),
    );
    assert!(status(&r).contains(" 303"), "{r}");
    let (_, html) = page(&f.wb, HERE, &cookie);
    assert!(!html.contains("id=\"totp-secret\""), "{html}");
    assert_eq!(
        f.sql(&format!(
            "SELECT kind FROM p2fa.otp_tokens WHERE username = '{user}'"
        )),
        "totp",
        "{html}\n{}",
        f.log()
    );

    // Logout through A: gone on both.
    let r = post(
        &f.wa,
        HERE,
        "/profile/logout",
        &cookie,
        &f.origin,
        &format!("csrf={csrf}"),
    );
    assert!(status(&r).contains(" 200"), "{r}");
    for d in [&f.wa, &f.wb] {
        assert!(page(d, HERE, &cookie).0.contains(" 401"));
    }
    assert_eq!(f.sql("SELECT count(*) FROM p2fa.profile_sessions"), "0");
    assert_eq!(f.sql("SELECT count(*) FROM p2fa.profile_links"), "0");
}

/// A second opening of a link, on the other 2fad, ends the first one's
/// session on both; so does a request from another address; an expired
/// session is refused by both. The per-user quota is the fleet's.
#[test]
fn what_ends_a_session_ends_it_on_every_2fad() {
    let user = system_user("p2fa-fpr2", "Fleet-profile-p2fa");
    let f = Fleet::start();
    let ended = "closed for your safety";

    // A second opening (through A) of a link opened through B.
    let url = link(&f.wa, &user);
    let cookie = open(&f, &f.wb, HERE, &url);
    assert!(page(&f.wa, HERE, &cookie).0.contains(" 200"));
    let path = &url[f.origin.len()..];
    let landing = get(&f.wa, HERE, path, "");
    assert!(status(&landing).contains(" 410"), "{landing}");
    assert!(
        page(&f.wb, HERE, &cookie).0.contains(" 200"),
        "the GET ended it"
    );
    let again = post(&f.wa, HERE, path, "", &f.origin, "");
    assert!(status(&again).contains(" 410"), "{again}");
    assert!(!again.contains("set-cookie: p2fa_profile="), "{again}");
    for d in [&f.wa, &f.wb] {
        let (st, html) = page(d, HERE, &cookie);
        assert!(st.contains(" 410") && html.contains(ended), "{st}\n{html}");
    }
    let third = post(&f.wb, HERE, path, "", &f.origin, "");
    assert!(status(&third).contains(" 410"), "{third}");

    // Another address (127.0.0.2) through A ends a session opened
    // through B, for both.
    let cookie = open(&f, &f.wb, HERE, &link(&f.wb, &user));
    let (st, html) = page(&f.wa, THERE, &cookie);
    assert!(st.contains(" 410") && html.contains(ended), "{st}\n{html}");
    for d in [&f.wa, &f.wb] {
        let (st, html) = page(d, HERE, &cookie);
        assert!(st.contains(" 410") && html.contains(ended), "{st}\n{html}");
    }

    // Expired (as if its time had passed): refused by both.
    let cookie = open(&f, &f.wa, HERE, &link(&f.wa, &user));
    assert!(page(&f.wb, HERE, &cookie).0.contains(" 200"));
    f.sql("UPDATE p2fa.profile_sessions SET expires_at = extract(epoch from now())::bigint - 1 WHERE ended IS NULL");
    for d in [&f.wa, &f.wb] {
        let (st, html) = page(d, HERE, &cookie);
        assert!(
            st.contains(" 410") && html.contains("expired"),
            "{st}\n{html}"
        );
    }
    // The ended sessions keep no secret state.
    assert_eq!(
        f.sql("SELECT count(*) FROM p2fa.profile_sessions WHERE ended IS NOT NULL AND length(state) > 0"),
        "0"
    );

    // The quota (3 open links or sessions per user) counts both hosts'.
    let _l1 = link(&f.wa, &user);
    let _l2 = link(&f.wb, &user);
    let _l3 = link(&f.wa, &user);
    let o = f.wb.enroll_as(&user, &["web", "--quiet"], "");
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(text.contains("already has 3"), "{text}");
}

/// A session whose sealed state was changed in the database, or copied
/// from another session, is no session: nothing changes through it.
#[test]
fn tampered_session_state_is_no_session() {
    let user = system_user("p2fa-fpr3", "Fleet-profile-p2fa");
    let f = Fleet::start();
    let c1 = open(&f, &f.wa, HERE, &link(&f.wa, &user));
    let c2 = open(&f, &f.wb, HERE, &link(&f.wb, &user));
    let csrf1 = csrf_of(&page(&f.wb, HERE, &c1).1);
    let csrf2 = csrf_of(&page(&f.wa, HERE, &c2).1);
    let sid = |c: &str| sha256_hex(c.split_once('=').unwrap().1);
    let (h1, h2) = (sid(&c1), sid(&c2));

    // One bit of session 1's state flipped.
    f.sql(&format!(
        "UPDATE p2fa.profile_sessions SET state = set_byte(state, 20, get_byte(state, 20) # 1)
         WHERE session_hash = '\\x{h1}'"
    ));
    // Session 1's (valid) state copied over session 2's.
    f.sql(&format!(
        "UPDATE p2fa.profile_sessions SET state =
           (SELECT state FROM p2fa.profile_sessions WHERE session_hash = '\\x{h1}')
         WHERE session_hash = '\\x{h2}'"
    ));
    let before = f.sql("SELECT session_hash, state FROM p2fa.profile_sessions ORDER BY 1");
    for (c, csrf) in [(&c1, &csrf1), (&c2, &csrf2)] {
        for d in [&f.wa, &f.wb] {
            assert!(page(d, HERE, c).0.contains(" 401"), "{}", f.log());
            assert!(act(&f, d, c, csrf, "backup-new").contains(" 401"));
        }
    }
    assert_eq!(
        f.sql(&format!(
            "SELECT count(*) FROM p2fa.backup_codes WHERE username = '{user}'"
        )),
        "0"
    );
    assert_eq!(
        f.sql("SELECT session_hash, state FROM p2fa.profile_sessions ORDER BY 1"),
        before,
        "a refused session was changed"
    );
    // A changed plain column (the owner's uid, to root's) fails the same.
    let c3 = open(&f, &f.wa, HERE, &link(&f.wa, &user));
    assert!(page(&f.wb, HERE, &c3).0.contains(" 200"));
    f.sql(&format!(
        "UPDATE p2fa.profile_sessions SET by_uid = 0 WHERE session_hash = '\\x{}'",
        sid(&c3)
    ));
    assert!(page(&f.wb, HERE, &c3).0.contains(" 401"));
}

/// A 2fad on a fleet database without the profile tables (as schema v3,
/// the previous release, has them): no link, a clear "run 2fa-enroll
/// migrate" in its log, and it keeps serving; after `2fa-enroll migrate`
/// links work.
#[test]
fn a_fleet_without_the_profile_tables_says_to_migrate() {
    let user = system_user("p2fa-fpr4", "Fleet-profile-p2fa");
    let pg = PgServer::start();
    let db = pg.create_db();
    pg.create_role(ROLE, ROLE_PASSWORD);
    pg.psql("postgres", &format!("ALTER DATABASE {db} OWNER TO {ROLE}"));
    let a = host_env(&pg, &db, "host-a");
    a.enroll_ok(&["init"], "");
    // Back to v3: what migration 4 added is gone.
    pg.psql(
        &db,
        "DROP TABLE p2fa.profile_links; DROP TABLE p2fa.profile_sessions;
         UPDATE p2fa.schema_version SET version = 3",
    );
    let pa = common::net::closed_port();
    let web = format!("public_url = \"http://localhost:{pa}\"\nrp_id = \"localhost\"\n");
    let d = Daemon::start_appended(&a, pa, &web);
    let o = d.enroll_as(&user, &["web", "--quiet"], "");
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(text.contains("unavailable"), "{text}");
    let logs = a.logs().join("\n");
    assert!(
        logs.contains("run 2fa-enroll migrate"),
        "{text}\n{logs}\n{}",
        d.log()
    );
    assert!(!d.log().contains("panicked"), "{}", d.log());
    let out = a.enroll_ok(&["migrate"], "");
    assert!(out.contains("migrated from v3 to v4"), "{out}");
    assert_eq!(
        pg.psql(&db, "SELECT version, min_reader FROM p2fa.schema_version")
            .trim(),
        format!("{}|1", p2fa_pg::schema::current_version())
    );
    // The same 2fad, without a restart.
    assert!(link(&d, &user).contains("/p/"));
}

/// A frame sent by `user` to 2fad `d`'s socket with Python (bypassing
/// the Rust client): the answer.
fn raw(user: &str, d: &Daemon, frame: &str) -> String {
    let script = r#"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
data = sys.argv[2].encode()
s.sendall(struct.pack(">I", len(data)) + data)
n = struct.unpack(">I", s.recv(4))[0]
buf = b""
while len(buf) < n:
    buf += s.recv(n - len(buf))
print(buf.decode())
"#;
    let o = std::process::Command::new("runuser")
        .args(["-u", user, "--", "/usr/bin/python3", "-c", script])
        .arg(&d.socket)
        .arg(frame)
        .output()
        .unwrap();
    output_text(&o)
}

/// A form post to `/profile/do` through `d` with more fields; then the
/// page through `other`: its flash message.
fn act_then(f: &Fleet, d: &Daemon, other: &Daemon, cookie: &str, form: &str) -> String {
    let r = post(d, HERE, "/profile/do", cookie, &f.origin, form);
    assert!(status(&r).contains(" 303"), "{r}\n{}", f.log());
    let (st, html) = page(other, HERE, cookie);
    assert!(st.contains(" 200"), "{st}");
    let at = html.find("id=\"flash\"").expect("no flash") + 10;
    html[at..].split("</div>").next().unwrap().to_string()
}

/// Codes 2fad sends for the page are valid on every 2fad of its
/// public_url (scope `2fad:<origin>`, not a host): a proof code asked for
/// through A is typed back through B (a wrong one first, counted), and
/// works once in the whole fleet; a new phone number's code sent through
/// A is finished through B. Over the socket nobody names another address
/// to save: the number saved is the one the code went to.
#[test]
fn codes_2fad_sends_work_through_either_2fad_once() {
    use common::net::{sms_env, wait_code};
    let user = system_user("p2fa-fpr5", "Fleet-profile-p2fa5");
    let gateway = Env::new();
    let (sms, sms_conf) = sms_env(gateway.root());
    let f = Fleet::start_with(&sms_conf);
    f.a.enroll_ok(
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
    let scope = format!("2fad:{}", f.origin);
    let cookie = open(&f, &f.wa, HERE, &link(&f.wa, &user));
    let (_, html) = page(&f.wa, HERE, &cookie);
    let csrf = csrf_of(&html);
    assert!(html.contains("id=\"prove\""), "{html}");

    // a) A proof code sent through A, typed back through B.
    let flash = act_then(
        &f,
        &f.wa,
        &f.wa,
        &cookie,
        &format!("csrf={csrf}&action=proof-send&channel=sms"),
    );
    assert!(flash.contains("Sent a code"), "{flash}\n{}", f.log());
    let code = wait_code(&sms.log, 1, "body");
    assert_eq!(
        f.sql(&format!(
            "SELECT host, purpose FROM p2fa.sent_codes WHERE username = '{user}'"
        )),
        format!("{scope}|login")
    );
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let flash = act_then(
        &f,
        &f.wb,
        &f.wa,
        &cookie,
        &format!("csrf={csrf}&action=prove-sent&channel=sms&code={wrong}"),
    );
    assert!(flash.contains("not the code we sent"), "{flash}");
    assert_eq!(f.a.status_json(&user)["failures"], 1, "a wrong code counts");
    let flash = act_then(
        &f,
        &f.wb,
        &f.wa,
        &cookie,
        &format!("csrf={csrf}&action=prove-sent&channel=sms&code={code}"),
    );
    assert!(flash.contains("Confirmed with sms"), "{flash}\n{}", f.log());
    // The same code again, through A, on a fresh page: refused.
    let again = open(&f, &f.wa, HERE, &link(&f.wb, &user));
    let (_, html) = page(&f.wa, HERE, &again);
    let csrf2 = csrf_of(&html);
    let flash = act_then(
        &f,
        &f.wa,
        &f.wb,
        &again,
        &format!("csrf={csrf2}&action=prove-sent&channel=sms&code={code}"),
    );
    assert!(flash.contains("no live code was sent"), "{flash}");
    let (_, html) = page(&f.wb, HERE, &again);
    assert!(
        html.contains("id=\"prove\""),
        "the used code unlocked: {html}"
    );

    // b) A new phone number: the code sent through A ...
    let flash = act_then(
        &f,
        &f.wa,
        &f.wb,
        &cookie,
        &format!("csrf={csrf}&action=contact-begin&channel=sms&address=%2B15552220002"),
    );
    assert!(flash.contains("Sent a code to +1"), "{flash}\n{}", f.log());
    let new_code = wait_code(&sms.log, 2, "body");
    assert_eq!(json_lines_to(&sms.log, 1), "+15552220002");
    // ... over the socket of B nobody names another address to save, and
    // a wrong code saves nothing ...
    let r = raw(
        &user,
        &f.wb,
        &format!(
            r#"{{"version":1,"op":"contact_finish","code":"{new_code}","address":"+15552220009"}}"#
        ),
    );
    assert!(r.contains("error"), "{r}");
    let wrong = if new_code == "000000" {
        "000001"
    } else {
        "000000"
    };
    let r = raw(
        &user,
        &f.wb,
        &format!(r#"{{"version":1,"op":"contact_finish","code":"{wrong}"}}"#),
    );
    assert!(r.contains("that code is not right"), "{r}");
    assert_eq!(f.b.status_json(&user)["sms"], "+15551234567");
    // ... and the page finishes it through B: the number the code went to.
    let flash = act_then(
        &f,
        &f.wb,
        &f.wa,
        &cookie,
        &format!("csrf={csrf}&action=contact-finish&code={new_code}"),
    );
    assert!(flash.contains("Saved +1"), "{flash}\n{}", f.log());
    assert_eq!(f.a.status_json(&user)["sms"], "+15552220002");
    assert_eq!(
        f.sql(&format!(
            "SELECT host, purpose, address, used_at IS NOT NULL FROM p2fa.sent_codes
             WHERE username = '{user}' AND purpose = 'enroll'"
        )),
        format!("{scope}|enroll|+15552220002|t")
    );
    // Nothing is waiting any more, on either.
    let r = raw(
        &user,
        &f.wa,
        &format!(r#"{{"version":1,"op":"contact_finish","code":"{new_code}"}}"#),
    );
    assert!(r.contains("no phone number or address is waiting"), "{r}");
}

/// The `to` of message `i` (from 0) in a stand-in log.
fn json_lines_to(log: &std::path::Path, i: usize) -> String {
    common::net::json_lines(log)[i]["to"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Someone who can write the fleet database but has no fleet key (the
/// same attacker the sealed session state keeps out) cannot make a link:
/// neither a row of their own, a token of their choosing naming another
/// user as opened by root (who needs no proof on the page), nor a real
/// link of their own rewritten to name another user or root. Neither
/// 2fad opens such a link; a link left as issued still opens.
#[test]
fn a_link_row_written_into_the_database_opens_nothing() {
    let user = system_user("p2fa-fpr6", "Fleet-profile-p2fa6");
    let victim = system_user("p2fa-fpr7", "Fleet-profile-p2fa7");
    let f = Fleet::start();
    let no_session = |d: &Daemon, token: &str, what: &str| {
        let r = post(d, HERE, &format!("/p/{token}"), "", &f.origin, "");
        assert!(
            !status(&r).contains(" 303") && !r.contains("set-cookie: p2fa_profile="),
            "{what} opened a session:\n{r}\n{}",
            f.log()
        );
    };

    // a) A row of the writer's own, for the victim, "by root".
    let forged = "forged-link-token-of-the-database-writer-0000";
    f.sql(&format!(
        "INSERT INTO p2fa.profile_links (link_hash, username, by_uid, host, created_at, expires_at)
         VALUES ('\\x{}', '{victim}', 0, 'host-a', extract(epoch from now())::bigint,
                 extract(epoch from now())::bigint + 600)",
        sha256_hex(forged)
    ));
    for d in [&f.wa, &f.wb] {
        no_session(d, forged, "a link row inserted into the database");
    }

    // b) The writer's own real link, rewritten to name the victim as
    // opened by root (then only root).
    for (who, uid) in [(victim.as_str(), "0"), (user.as_str(), "0")] {
        let url = link(&f.wa, &user);
        let token = common::daemon::token_of(&url);
        f.sql(&format!(
            "UPDATE p2fa.profile_links SET username = '{who}', by_uid = {uid}
             WHERE link_hash = '\\x{}'",
            sha256_hex(&token)
        ));
        for d in [&f.wb, &f.wa] {
            no_session(
                d,
                &token,
                &format!("a link rewritten to {who} by uid {uid}"),
            );
        }
    }
    assert_eq!(f.sql("SELECT count(*) FROM p2fa.profile_sessions"), "0");

    // c) A link as it was issued opens, through either.
    let cookie = open(&f, &f.wb, HERE, &link(&f.wa, &user));
    let (st, html) = page(&f.wa, HERE, &cookie);
    assert!(st.contains(" 200") && html.contains(&user), "{st}\n{html}");
}

/// Two browsers open one link at the same instant, one through each
/// 2fad (threads released together): one opening wins the link's row
/// and the other, finding it opened, ends the winner's session, as a
/// second opening does. So: exactly one session was issued (one 303 and
/// one 410), and it is ended on both 2fads; no live session is left.
#[test]
fn two_2fads_opening_one_link_at_once_leave_no_live_session() {
    use std::sync::{Arc, Barrier};
    let user = system_user("p2fa-fpr8", "Fleet-profile-p2fa8");
    let f = Fleet::start();
    for round in 0..4 {
        let url = link(&f.wa, &user);
        let path = url[f.origin.len()..].to_string();
        let barrier = Arc::new(Barrier::new(2));
        let req = format!(
            "POST {path} HTTP/1.0\r\nHost: localhost\r\nOrigin: {}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n\r\n",
            f.origin
        );
        let answers: Vec<String> = [f.wa.port(), f.wb.port()]
            .into_iter()
            .map(|port| {
                let (barrier, req) = (Arc::clone(&barrier), req.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    http_to(port, HERE, &req)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let mut st: Vec<&str> = answers
            .iter()
            .map(|a| status(a).split(' ').nth(1).unwrap_or(""))
            .collect();
        st.sort_unstable();
        assert_eq!(
            st,
            ["303", "410"],
            "round {round}: {answers:?}\n{}",
            f.log()
        );
        let cookie = answers
            .iter()
            .find_map(|a| a.lines().find_map(|l| l.strip_prefix("set-cookie: ")))
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        for d in [&f.wa, &f.wb] {
            let (st, html) = page(d, HERE, &cookie);
            assert!(
                st.contains(" 410") && html.contains("closed for your safety"),
                "round {round}: the winner's session lives on: {st}\n{html}"
            );
        }
        assert_eq!(
            f.sql("SELECT count(*) FROM p2fa.profile_sessions WHERE ended IS NULL"),
            "0",
            "round {round}"
        );
        assert_eq!(
            f.sql(&format!(
                "SELECT count(*) FROM p2fa.profile_links WHERE username = '{user}'"
            )),
            "0",
            "round {round}"
        );
    }
}
