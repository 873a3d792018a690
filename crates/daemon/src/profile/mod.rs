//! The self-service profile page (`2fa-enroll web`): a user sees the
//! methods the policy allows them and which they have, sets up an
//! authenticator app, makes new backup codes (shown once, downloadable),
//! removes a method, names and removes security keys, forgets remembered
//! devices, and sees their last login. Root opens the same page for a
//! user (`2fa-enroll web --user U`) to help one who lost a phone.
//!
//! Every change goes through the [`Broker`], the code behind the socket,
//! so the page and `2fa-enroll` obey one set of rules: a user who has a
//! factor proves it first, on the page, with a code or a security key,
//! counted like a login (after which the session may make changes until
//! it ends); every change is logged at notice level.
//!
//! Web rules: the session is a cookie (HttpOnly, SameSite=Strict, Secure
//! over HTTPS) bound to the opening address ([`session`]); every POST
//! carries the session's CSRF token and is refused when the browser says
//! it came from another site (`Origin`, `Sec-Fetch-Site`); the CSP allows
//! only this origin's script and style. This module knows nothing of
//! hyper: [`handle`] takes a [`Req`] and gives an [`Answer`] that
//! `web.rs` sends.

/// Form posts to `/profile/do`: one change each.
mod actions;
/// Links and sessions in the fleet database (`store = "postgres"`).
pub mod fleet;
/// The page's WebAuthn ceremonies (prove, register).
mod keys;
/// The HTML (maud).
pub mod page;
/// Links and sessions.
pub mod session;
/// Rendering the page from the user's state; the backup-code download.
mod show;
/// Every word the page shows.
pub mod text;

use crate::broker::Broker;
use crate::webauthn::Ceremonies;
use p2fa_core::audit::{Audit, clean};
use p2fa_core::config::Config;
use p2fa_proto::protocol::{Op, Request, Response, VERSION};
use session::{NoSession, Opened, Owner, Peek, Profiles};
use std::net::IpAddr;
use std::sync::Arc;
use text::{Text, text};

/// The session cookie's name.
pub const COOKIE: &str = "p2fa_profile";
/// What a proof on the page is for (a WebAuthn proof is bound to it).
pub const PURPOSE: &str = "profile page";

const CSS: &str = include_str!("../page/profile.css");
const SCRIPT: &str = include_str!("../page/profile.js");

/// The Content-Security-Policy of every profile answer: this origin's
/// script and style only, no frames, forms only to this origin.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the profile code needs from 2fad.
pub struct Site {
    pub cfg: Arc<Config>,
    pub broker: Arc<Broker>,
    pub profiles: Arc<Profiles>,
    pub ceremonies: Arc<Ceremonies>,
}

/// A request, as far as the profile page looks at it.
pub struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub cookie: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub fetch_site: Option<&'a str>,
    pub csrf_header: Option<&'a str>,
    pub body: &'a [u8],
    pub peer: IpAddr,
}

/// The answer for `web.rs` to send (it adds the common headers).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub ctype: &'static str,
    pub body: Vec<u8>,
    pub set_cookie: Option<String>,
    pub location: Option<&'static str>,
    /// `Content-Disposition` (the backup-code download).
    pub disposition: Option<&'static str>,
}

impl Answer {
    fn html(status: u16, body: String) -> Answer {
        Answer {
            status,
            ctype: "text/html; charset=utf-8",
            body: body.into_bytes(),
            set_cookie: None,
            location: None,
            disposition: None,
        }
    }
    fn json(status: u16, body: String) -> Answer {
        Answer {
            ctype: "application/json",
            ..Answer::html(status, body)
        }
    }
    fn see_other(to: &'static str) -> Answer {
        Answer {
            location: Some(to),
            ..Answer::html(303, String::new())
        }
    }
    fn asset(ctype: &'static str, body: &'static str) -> Answer {
        Answer {
            ctype,
            ..Answer::html(200, body.into())
        }
    }
}

/// Whether `path` is the profile page's (web.rs routes it here).
pub fn owns(path: &str) -> bool {
    path.starts_with("/p/")
        || path == "/profile"
        || path.starts_with("/profile/")
        || path == "/static/profile.css"
        || path == "/static/profile.js"
}

/// A new link for `owner`'s page (the broker's `web_profile`).
pub fn new_link(cfg: &Config, profiles: &Profiles, owner: Owner) -> Result<String, String> {
    let w = &cfg.webauthn;
    let token = profiles.link(
        owner,
        w.link_seconds as i64,
        w.max_pending_per_user as usize,
    )?;
    Ok(format!("{}/p/{token}", w.public_url.trim_end_matches('/')))
}

/// Serves one profile request (blocking: it reads and writes the store).
pub fn handle(site: &Site, r: &Req) -> Answer {
    let t = text();
    match (r.method, r.path) {
        ("GET", "/static/profile.css") => Answer::asset("text/css; charset=utf-8", CSS),
        ("GET", "/static/profile.js") => Answer::asset("text/javascript; charset=utf-8", SCRIPT),
        ("GET", p) if p.starts_with("/p/") => landing(site, t, &p[3..]),
        ("GET", "/profile") => show::show(site, t, r),
        ("GET", "/profile/backup-codes.txt") => show::download(site, r),
        ("POST", path) => {
            if cross_site(site, r) {
                return Answer::html(403, page::notice(t, t.forbidden, t.forbidden));
            }
            match path {
                p if p.starts_with("/p/") => open(site, t, &p[3..], r.peer),
                "/profile/do" => actions::act(site, t, r),
                "/profile/logout" => logout(site, t, r),
                "/profile/key/begin" => keys::begin(site, r),
                "/profile/key/finish" => keys::finish(site, r),
                _ => Answer::html(404, page::notice(t, "Not found", "Not found.")),
            }
        }
        _ => Answer::html(404, page::notice(t, "Not found", "Not found.")),
    }
}

/// The browser says this POST came from another site.
fn cross_site(site: &Site, r: &Req) -> bool {
    let ours = origin_of(&site.cfg.webauthn.public_url);
    r.origin.is_some_and(|o| o != ours)
        || r.fetch_site
            .is_some_and(|s| s != "same-origin" && s != "none")
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            &url[..i + 3 + rest.find('/').unwrap_or(rest.len())]
        }
        None => url,
    }
}

fn audit(cfg: &Config) -> Audit {
    Audit::new(&cfg.log_socket, "2fad", false)
}

fn cookie(site: &Site, value: &str, max_age: i64) -> String {
    let secure = if site.cfg.webauthn.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{COOKIE}={value}; Path=/profile; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// GET of a link: its landing page, or why it no longer works. Changes
/// nothing (see [`session::Profiles::peek`]).
fn landing(site: &Site, t: &Text, token: &str) -> Answer {
    match site.profiles.peek(token) {
        Peek::Fresh => Answer::html(
            200,
            page::landing(t, token, t.landing_title, t.landing_text, t.landing_button),
        ),
        // Someone may have opened it before the user: the button ends
        // that page (a second opening), as opening the link did before
        // fetching and opening were two steps.
        Peek::Used => Answer::html(
            410,
            page::landing(t, token, t.reused_title, t.used_text, t.used_button),
        ),
        Peek::Expired => Answer::html(410, page::notice(t, t.expired_title, t.expired_text)),
        Peek::Unavailable => Answer::html(503, page::notice(t, t.unavailable, t.unavailable)),
    }
}

/// POST of a link's landing page: the link is used, a session begins;
/// a second opening ends the first one's session too.
fn open(site: &Site, t: &Text, token: &str, peer: IpAddr) -> Answer {
    let ttl = site.cfg.webauthn.profile_seconds as i64;
    match site.profiles.open(token, peer, ttl) {
        Opened::Session(sid, owner) => {
            audit(&site.cfg).notice(&format!(
                "profile page opened user={} by uid={} from={peer}",
                clean(&owner.user),
                owner.uid
            ));
            Answer {
                set_cookie: Some(cookie(site, &sid, ttl)),
                ..Answer::see_other("/profile")
            }
        }
        Opened::Expired => Answer::html(410, page::notice(t, t.expired_title, t.expired_text)),
        Opened::Reused => {
            audit(&site.cfg).warning(&format!(
                "profile link opened a second time from={peer}: its session is ended"
            ));
            Answer::html(410, page::notice(t, t.reused_title, t.reused_text))
        }
        Opened::Unavailable => Answer::html(503, page::notice(t, t.unavailable, t.unavailable)),
    }
}

fn no_session(t: &Text, why: NoSession) -> Answer {
    let (code, title, text) = match why {
        NoSession::Missing => (401, t.no_session_title, t.no_session_text),
        NoSession::Expired => (410, t.expired_title, t.expired_text),
        NoSession::Ended => (410, t.ended_title, t.ended_text),
        NoSession::Unavailable => (503, t.unavailable, t.unavailable),
    };
    Answer::html(code, page::notice(t, title, text))
}

/// The session's cookie value from a `Cookie` header.
fn sid<'a>(r: &Req<'a>) -> Option<&'a str> {
    r.cookie?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// A request on behalf of the session's owner, through the broker.
fn ask(site: &Site, owner: &Owner, elevated: Option<&'static str>, op: Op) -> Response {
    let req = Request {
        version: VERSION,
        user: Some(owner.user.clone()),
        proof: None,
        op,
    };
    site.broker
        .handle_as(&site.cfg, &mut audit(&site.cfg), owner.uid, elevated, req)
}

fn logout(site: &Site, t: &Text, r: &Req) -> Answer {
    let f = actions::form(r.body);
    if let Err(a) = actions::checked(site, r, actions::field(&f, "csrf")) {
        return a;
    }
    if let Some(sid) = sid(r) {
        site.profiles.logout(sid);
    }
    Answer {
        set_cookie: Some(cookie(site, "", 0)),
        ..Answer::html(200, page::notice(t, t.logout, t.logged_out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://2fa.example.com/x/y"),
            "https://2fa.example.com"
        );
        assert_eq!(origin_of("http://localhost:8443"), "http://localhost:8443");
    }

    #[test]
    fn cookies_are_found_among_others() {
        let r = Req {
            method: "GET",
            path: "/profile",
            cookie: Some("a=1; p2fa_profile=abc; b=2"),
            origin: None,
            fetch_site: None,
            csrf_header: None,
            body: b"",
            peer: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        };
        assert_eq!(sid(&r), Some("abc"));
    }
}
