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

pub mod page;
pub mod session;
pub mod text;

use crate::broker::Broker;
use crate::webauthn::Ceremonies;
use p2fa_core::audit::{Audit, clean};
use p2fa_core::clock::unix_now;
use p2fa_core::config::Config;
use p2fa_core::factor::FactorId;
use p2fa_proto::protocol::{ErrorCode, Op, Proof, Request, Response, VERSION};
use session::{Ceremony, NoSession, Opened, Owner, Profiles, TotpSetup};
use std::net::IpAddr;
use std::sync::Arc;
use text::{Text, fill, text};
use zeroize::Zeroizing;

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
        ("GET", p) if p.starts_with("/p/") => open(site, t, &p[3..], r.peer),
        ("GET", "/profile") => show(site, t, r),
        ("GET", "/profile/backup-codes.txt") => download(site, r),
        ("POST", path) => {
            if cross_site(site, r) {
                return Answer::html(403, page::notice(t, t.forbidden, t.forbidden));
            }
            match path {
                "/profile/do" => act(site, t, r),
                "/profile/logout" => logout(site, t, r),
                "/profile/key/begin" => key_begin(site, r),
                "/profile/key/finish" => key_finish(site, r),
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
    }
}

fn no_session(t: &Text, why: NoSession) -> Answer {
    let (code, title, text) = match why {
        NoSession::Missing => (401, t.no_session_title, t.no_session_text),
        NoSession::Expired => (410, t.expired_title, t.expired_text),
        NoSession::Ended => (410, t.ended_title, t.ended_text),
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

fn show(site: &Site, t: &'static Text, r: &Req) -> Answer {
    // Take what the page shows once (the message of the last change).
    let got = site.profiles.with(sid(r), r.peer, |s| {
        (
            s.owner.clone(),
            s.csrf.clone(),
            s.elevated,
            s.flash.take(),
            s.totp.as_ref().map(|x| (x.uri.clone(), x.secret.clone())),
            s.codes.clone(),
            s.expires,
            (s.contact.clone(), s.questions, s.sent_via.clone()),
        )
    });
    let (owner, csrf, elevated, flash, totp, codes, expires, (contact, questions, sent_via)) =
        match got {
            Ok(x) => x,
            Err(why) => return no_session(t, why),
        };
    let status = match ask(site, &owner, elevated, Op::Status) {
        Response::Status { status } => serde_json::from_value(status).unwrap_or_default(),
        Response::Error { message, .. } => {
            return Answer::html(503, page::notice(t, t.unavailable, &message));
        }
        _ => return Answer::html(503, page::notice(t, t.unavailable, t.unavailable)),
    };
    let keys = match ask(site, &owner, elevated, Op::WebauthnList) {
        Response::Keys { keys } => keys,
        _ => Vec::new(),
    };
    let devices = match ask(site, &owner, elevated, Op::DevicesList) {
        Response::Devices { devices } => devices,
        _ => Vec::new(),
    };
    let cfg = &site.cfg;
    let status: p2fa_core::store::UserStatus = status;
    let groups = p2fa_core::users::groups(&owner.user);
    let (allowed, _) = p2fa_core::policy::allowed_methods(cfg, &groups);
    let offered = |f: FactorId| match f {
        FactorId::Sms => cfg.sms.enabled,
        FactorId::Email => cfg.email.enabled,
        FactorId::Duo => cfg.duo.enabled,
        FactorId::Questions => cfg.questions.enabled,
        FactorId::Hotp => status.otp.as_ref().is_some_and(|o| o.kind == "hotp"),
        _ => true,
    };
    let methods: Vec<(&'static str, bool)> = [
        FactorId::Totp,
        FactorId::Hotp,
        FactorId::Backup,
        FactorId::Webauthn,
        FactorId::Sms,
        FactorId::Email,
        FactorId::Duo,
        FactorId::Questions,
    ]
    .into_iter()
    .filter(|f| offered(*f))
    .map(|f| (f.as_str(), p2fa_core::policy::allows_factor(&allowed, f)))
    .collect();
    let allowed_here = |f: FactorId| methods_allow(&methods, f);
    let duo = (cfg.duo.enabled && allowed_here(FactorId::Duo))
        .then(|| match ask(site, &owner, elevated, Op::DuoStatus) {
            Response::Duo {
                state,
                portal,
                devices,
                ..
            } => Some(page::DuoView {
                state,
                portal,
                devices,
            }),
            _ => None,
        })
        .flatten();
    let questions = questions
        .then(|| match ask(site, &owner, elevated, Op::QuestionsChoices) {
            Response::Questions { choices, count, .. } => Some((choices, count)),
            _ => None,
        })
        .flatten();
    let has_factor = status.enrolled;
    let host = p2fa_core::config::host_name(&cfg.host_id);
    let totp = totp.map(|(uri, secret)| (qr_svg(&uri), secret.to_string()));
    let view = page::View {
        t,
        user: &owner.user,
        host: &host,
        by_root: owner.by_root(),
        until: page::utc(expires),
        csrf: &csrf,
        needs_proof: has_factor && !owner.by_root() && elevated.is_none(),
        can_prove_key: status.webauthn > 0 && cfg.webauthn.enabled,
        send_to: [
            (FactorId::Sms, status.sms.as_ref(), cfg.sms.enabled),
            (FactorId::Email, status.email.as_ref(), cfg.email.enabled),
        ]
        .into_iter()
        .filter_map(|(ch, a, on)| {
            let a = a.filter(|_| on)?;
            Some((ch.as_str(), p2fa_net::delivery::mask(ch, a)))
        })
        .collect(),
        sent_via,
        flash,
        backup_total: status.backup_codes_remaining + status.backup_codes_used,
        status,
        methods,
        keys_enabled: cfg.webauthn.enabled,
        keys,
        devices,
        totp,
        codes: codes.map(|c| c.to_vec()),
        contact,
        duo,
        questions,
    };
    Answer::html(200, page::render(&view))
}

/// Whether the listed `methods` have `f` allowed by the policy.
fn methods_allow(methods: &[(&'static str, bool)], f: FactorId) -> bool {
    methods.iter().any(|(id, ok)| *id == f.as_str() && *ok)
}

/// The otpauth URI as an SVG QR code (dark on light, scaled by CSS).
fn qr_svg(uri: &str) -> String {
    use qrcode::render::svg;
    qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M)
        .map(|c| {
            c.render::<svg::Color>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default()
}

fn download(site: &Site, r: &Req) -> Answer {
    let got = site
        .profiles
        .with(sid(r), r.peer, |s| (s.codes.clone(), s.owner.user.clone()));
    match got {
        Ok((Some(codes), user)) => {
            let host = p2fa_core::config::host_name(&site.cfg.host_id);
            let mut body = format!(
                "Backup codes for {user} on {host} ({})\nEach code works once.\n\n",
                page::utc(unix_now())
            );
            for c in codes.iter() {
                body.push_str(c);
                body.push('\n');
            }
            Answer {
                ctype: "text/plain; charset=utf-8",
                disposition: Some("attachment; filename=\"backup-codes.txt\""),
                ..Answer::html(200, body)
            }
        }
        Ok((None, _)) => Answer::html(404, page::notice(text(), "Not found", "No new codes.")),
        Err(why) => no_session(text(), why),
    }
}

/// The form fields of a urlencoded body.
fn form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The session's owner and proof state, if the session is live and the
/// CSRF token is its own.
fn checked(
    site: &Site,
    r: &Req,
    csrf: Option<&str>,
) -> Result<(Owner, Option<&'static str>), Answer> {
    let t = text();
    match site.profiles.with(sid(r), r.peer, |s| {
        (
            session::csrf_ok(s, csrf.unwrap_or("")),
            s.owner.clone(),
            s.elevated,
        )
    }) {
        Ok((true, owner, elevated)) => Ok((owner, elevated)),
        Ok((false, owner, _)) => {
            audit(&site.cfg).warning(&format!(
                "profile page refused a request without its CSRF token user={} from={}",
                clean(&owner.user),
                r.peer
            ));
            Err(Answer::html(403, page::notice(t, t.forbidden, t.forbidden)))
        }
        Err(why) => Err(no_session(t, why)),
    }
}

/// The message of a refusal, for the page.
fn refusal(t: &Text, r: Response) -> String {
    match r {
        Response::Error {
            code: ErrorCode::NeedsCurrent,
            ..
        } => t.needs_proof.into(),
        Response::Error { message, .. } => message,
        other => format!("{other:?}"),
    }
}

/// A form POST to `/profile/do`: one change, then back to the page.
fn act(site: &Site, t: &'static Text, r: &Req) -> Answer {
    let f = form(r.body);
    let (owner, elevated) = match checked(site, r, field(&f, "csrf")) {
        Ok(x) => x,
        Err(a) => return a,
    };
    let mut update: Box<dyn FnOnce(&mut session::Session)> = Box::new(|_| {});
    let flash: (bool, String) = match field(&f, "action").unwrap_or("") {
        "prove" => {
            let code = Proof::Code(field(&f, "code").unwrap_or("").to_string());
            match site.broker.prove(
                &site.cfg,
                &mut audit(&site.cfg),
                owner.uid,
                &owner.user,
                Some(&code),
                PURPOSE,
            ) {
                Ok(how) => {
                    unlocked(site, &owner, how, r.peer);
                    update = Box::new(move |s| s.elevated = Some(how));
                    (true, fill(t.proved, &[("factor", how)]))
                }
                Err(e) => (false, refusal(t, e)),
            }
        }
        "proof-send" => {
            let channel = field(&f, "channel").unwrap_or("").to_string();
            match ask(
                site,
                &owner,
                elevated,
                Op::ProofSend {
                    channel: channel.clone(),
                },
            ) {
                Response::Done { message } => {
                    update = Box::new(move |s| s.sent_via = Some(channel));
                    (true, message)
                }
                e => (false, refusal(t, e)),
            }
        }
        "prove-sent" => {
            let proof = Proof::Sent {
                channel: field(&f, "channel").unwrap_or("").to_string(),
                code: field(&f, "code").unwrap_or("").to_string(),
            };
            match site.broker.prove(
                &site.cfg,
                &mut audit(&site.cfg),
                owner.uid,
                &owner.user,
                Some(&proof),
                PURPOSE,
            ) {
                Ok(how) => {
                    unlocked(site, &owner, how, r.peer);
                    update = Box::new(move |s| {
                        s.elevated = Some(how);
                        s.sent_via = None;
                    });
                    (true, fill(t.proved, &[("factor", how)]))
                }
                Err(e) => (false, refusal(t, e)),
            }
        }
        "totp-begin" => match ask(site, &owner, elevated, Op::TotpBegin { secret: None }) {
            Response::TotpPending { uri, secret, .. } => {
                let setup = TotpSetup {
                    uri: Zeroizing::new(uri),
                    secret: Zeroizing::new(secret),
                };
                update = Box::new(move |s| s.totp = Some(setup));
                return done(site, r, update, None);
            }
            e => (false, refusal(t, e)),
        },
        "totp-finish" => {
            let code = field(&f, "code").unwrap_or("").to_string();
            let first = first_factor(site, &owner, elevated);
            match ask(site, &owner, elevated, Op::TotpFinish { code }) {
                Response::Done { message } => {
                    update = Box::new(move |s| {
                        s.totp = None;
                        if first {
                            s.elevated = Some("totp");
                        }
                    });
                    (true, message)
                }
                e => (false, refusal(t, e)),
            }
        }
        "totp-cancel" => {
            update = Box::new(|s| s.totp = None);
            return done(site, r, update, None);
        }
        "backup-new" => {
            let first = first_factor(site, &owner, elevated);
            match ask(site, &owner, elevated, Op::Backup) {
                Response::BackupCodes { codes } => {
                    let codes = Zeroizing::new(codes);
                    update = Box::new(move |s| {
                        s.codes = Some(codes);
                        if first {
                            s.elevated = Some("backup");
                        }
                    });
                    return done(site, r, update, None);
                }
                e => (false, refusal(t, e)),
            }
        }
        "codes-done" => {
            update = Box::new(|s| s.codes = None);
            return done(site, r, update, None);
        }
        "remove" => {
            let method = field(&f, "method").unwrap_or("").to_string();
            match ask(site, &owner, elevated, Op::Remove { method }) {
                Response::Done { message } => (true, message),
                e => (false, refusal(t, e)),
            }
        }
        "contact-begin" => {
            let op = Op::ContactBegin {
                channel: field(&f, "channel").unwrap_or("").to_string(),
                address: field(&f, "address").unwrap_or("").to_string(),
            };
            match ask(site, &owner, elevated, op) {
                Response::Done { message } => {
                    let sent = message.clone();
                    update = Box::new(move |s| s.contact = Some(sent));
                    (true, message)
                }
                e => (false, refusal(t, e)),
            }
        }
        "contact-finish" => {
            let code = field(&f, "code").unwrap_or("").to_string();
            let first = first_factor(site, &owner, elevated);
            match ask(site, &owner, elevated, Op::ContactFinish { code }) {
                Response::Done { message } => {
                    update = Box::new(move |s| {
                        s.contact = None;
                        // The code that arrived shows they hold it.
                        if first {
                            s.elevated = Some("confirmed-contact");
                        }
                    });
                    (true, message)
                }
                e @ Response::Error {
                    code: ErrorCode::BadRequest,
                    ..
                } => {
                    update = Box::new(|s| s.contact = None);
                    (false, refusal(t, e))
                }
                e => (false, refusal(t, e)),
            }
        }
        "contact-cancel" => {
            update = Box::new(|s| s.contact = None);
            return done(site, r, update, None);
        }
        "duo-enroll" => match ask(site, &owner, elevated, Op::DuoEnroll) {
            Response::Done { message } => (true, message),
            e => (false, refusal(t, e)),
        },
        "questions-begin" => {
            update = Box::new(|s| s.questions = true);
            return done(site, r, update, None);
        }
        "questions-cancel" => {
            update = Box::new(|s| s.questions = false);
            return done(site, r, update, None);
        }
        "questions-set" => {
            let mut answers = Vec::new();
            let mut differ = false;
            for i in 0.. {
                let (Some(q), Some(a)) = (field(&f, &format!("q{i}")), field(&f, &format!("a{i}")))
                else {
                    break;
                };
                let again = field(&f, &format!("r{i}")).unwrap_or("");
                differ |= p2fa_core::factor::questions::normalize(a)
                    != p2fa_core::factor::questions::normalize(again);
                answers.push(p2fa_proto::protocol::Answer {
                    question: q.to_string(),
                    answer: a.to_string(),
                });
            }
            if differ {
                (false, t.answers_differ.to_string())
            } else {
                match ask(site, &owner, elevated, Op::QuestionsSet { answers }) {
                    Response::Done { message } => {
                        update = Box::new(|s| s.questions = false);
                        (true, message)
                    }
                    e => (false, refusal(t, e)),
                }
            }
        }
        "key-remove" => {
            let name = field(&f, "name").unwrap_or("").to_string();
            match ask(site, &owner, elevated, Op::WebauthnRemove { name }) {
                Response::Done { message } => (true, message),
                e => (false, refusal(t, e)),
            }
        }
        "device-forget" => {
            let id = field(&f, "id").and_then(|v| v.parse().ok());
            match ask(site, &owner, elevated, Op::DevicesRevoke { id }) {
                Response::Done { message } => (true, message),
                e => (false, refusal(t, e)),
            }
        }
        _ => (false, "Unknown action; nothing changed.".into()),
    };
    done(site, r, update, Some(flash))
}

/// The notice a proof on the page leaves: from now on this session may
/// change the user's factors.
fn unlocked(site: &Site, owner: &Owner, how: &str, peer: IpAddr) {
    audit(&site.cfg).notice(&format!(
        "profile page unlocked for changes user={} by uid={} proof={how} from={peer}",
        clean(&owner.user),
        owner.uid
    ));
}

/// Whether the change about to be made adds the user's first factor. The
/// session then counts as proved by it: the user has just shown that
/// they hold it (a code from the new app, or the codes on screen), and
/// must not be asked to prove a factor for the next step of their setup.
fn first_factor(site: &Site, owner: &Owner, elevated: Option<&'static str>) -> bool {
    elevated.is_none()
        && !owner.by_root()
        && matches!(
            ask(site, owner, None, Op::Status),
            Response::Status { status } if status["enrolled"] == serde_json::Value::Bool(false)
        )
}

/// Applies `update` and the message to the session, then back to the page.
fn done(
    site: &Site,
    r: &Req,
    update: Box<dyn FnOnce(&mut session::Session) + '_>,
    flash: Option<(bool, String)>,
) -> Answer {
    match site.profiles.with(sid(r), r.peer, move |s| {
        update(s);
        if flash.is_some() {
            s.flash = flash;
        }
    }) {
        Ok(()) => Answer::see_other("/profile"),
        Err(why) => no_session(text(), why),
    }
}

fn logout(site: &Site, t: &Text, r: &Req) -> Answer {
    let f = form(r.body);
    if let Err(a) = checked(site, r, field(&f, "csrf")) {
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

fn json_error(status: u16, message: &str) -> Answer {
    Answer::json(
        status,
        serde_json::json!({ "ok": false, "message": message }).to_string(),
    )
}

/// Starts a WebAuthn ceremony for the page (`{"kind":"prove"}` or
/// `{"kind":"register","name":...}`); answers the browser's options. The
/// ceremony's token stays in the session.
fn key_begin(site: &Site, r: &Req) -> Answer {
    let t = text();
    let (owner, elevated) = match checked(site, r, r.csrf_header) {
        Ok(x) => x,
        Err(a) => return a,
    };
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(r.body) else {
        return json_error(400, "bad request");
    };
    let (op, register) = match body["kind"].as_str() {
        Some("prove") => (
            Op::WebauthnProve {
                purpose: PURPOSE.into(),
            },
            false,
        ),
        Some("register") => (
            Op::WebauthnRegister {
                name: body["name"].as_str().unwrap_or("").to_string(),
            },
            true,
        ),
        _ => return json_error(400, "bad request"),
    };
    let token = match ask(site, &owner, elevated, op) {
        Response::Link { token, .. } => token,
        e => return json_error(400, &refusal(t, e)),
    };
    let Some((options, _)) = site.ceremonies.options(&token) else {
        return json_error(410, t.expired_text);
    };
    let c = if register {
        Ceremony::Register(token)
    } else {
        Ceremony::Prove(token)
    };
    let old = site
        .profiles
        .with(sid(r), r.peer, |s| s.ceremony.replace(c))
        .ok()
        .flatten();
    if let Some(Ceremony::Prove(tok) | Ceremony::Register(tok)) = old {
        site.ceremonies.cancel(&tok, &owner.user, false);
    }
    Answer::json(
        200,
        format!(r#"{{"ok":true,"register":{register},"options":{options}}}"#),
    )
}

/// The browser's answer to the session's ceremony.
fn key_finish(site: &Site, r: &Req) -> Answer {
    let t = text();
    let (owner, _) = match checked(site, r, r.csrf_header) {
        Ok(x) => x,
        Err(a) => return a,
    };
    let Ok(Some(c)) = site.profiles.with(sid(r), r.peer, |s| s.ceremony.take()) else {
        return json_error(400, "no security-key request is open; start again");
    };
    let (Ceremony::Prove(tok) | Ceremony::Register(tok)) = &c;
    if let Err(e) = site.ceremonies.finish(&site.cfg, tok, r.body) {
        site.ceremonies.cancel(tok, &owner.user, false);
        return json_error(400, &format!("{}{e}", t.key_failed));
    }
    let message = match c {
        Ceremony::Prove(tok) => {
            match site.broker.prove(
                &site.cfg,
                &mut audit(&site.cfg),
                owner.uid,
                &owner.user,
                Some(&Proof::Webauthn(tok)),
                PURPOSE,
            ) {
                Ok(how) => {
                    unlocked(site, &owner, how, r.peer);
                    let _ = site.profiles.with(sid(r), r.peer, |s| {
                        s.elevated = Some(how);
                        s.flash = Some((true, fill(t.proved, &[("factor", how)])));
                    });
                    t.key_done.to_string()
                }
                Err(e) => return json_error(400, &refusal(t, e)),
            }
        }
        Ceremony::Register(tok) => {
            // Read once: a finished registration is then forgotten.
            let _ = site.ceremonies.result(&tok, &owner.user, false);
            let _ = site.profiles.with(sid(r), r.peer, |s| {
                s.flash = Some((true, t.key_done.into()))
            });
            t.key_done.to_string()
        }
    };
    Answer::json(
        200,
        serde_json::json!({ "ok": true, "message": message }).to_string(),
    )
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
