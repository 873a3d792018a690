//! The form posts of the profile page (`/profile/do`): each checks the
//! session and its CSRF token, makes one change through the broker, and
//! sends the browser back to the page with a message (post, redirect,
//! get).

use super::session::{self, Owner, TotpSetup};
use super::text::{Text, fill, text};
use super::{Answer, PURPOSE, Req, Site, ask, audit, no_session, page, sid};
use p2fa_core::audit::{clean, printable};
use p2fa_core::factor::questions;
use p2fa_proto::protocol::{ErrorCode, Op, Proof, Response};
use std::net::IpAddr;
use zeroize::Zeroizing;

/// The form fields of a urlencoded body.
pub(super) fn form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(super) fn field<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The session's owner and proof state, if the session is live and the
/// CSRF token is its own.
pub(super) fn checked(
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
pub(super) fn refusal(t: &Text, r: Response) -> String {
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
pub(super) fn act(site: &Site, t: &'static Text, r: &Req) -> Answer {
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
            let mut answer = ask(
                site,
                &owner,
                elevated,
                Op::TotpFinish { code: code.clone() },
            );
            if let Some(again) = totp_elsewhere(site, r, &owner, elevated, &answer, code) {
                answer = again;
            }
            match answer {
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
        "questions-set" => match questions_form(site, t, &f, &owner) {
            Err(refused) => (false, refused),
            Ok(answers) => match ask(site, &owner, elevated, Op::QuestionsSet { answers }) {
                Response::Done { message } => {
                    update = Box::new(|s| s.questions = false);
                    (true, message)
                }
                e => (false, refusal(t, e)),
            },
        },
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

/// The questions and answers of the question form, checked with the
/// same rules 2fad's broker applies again when it saves them
/// ([`questions::choose`]), so that a refusal names the question in the
/// page's words; or the message why not. Per question `i`: `q{i}` the
/// chosen listed question, or [`page::OWN_QUESTION`] for the user's own
/// in `c{i}`; `a{i}` and `r{i}` the answer typed twice. Whether a
/// question of one's own is allowed is the config's word, never the
/// form's.
fn questions_form(
    site: &Site,
    t: &Text,
    f: &[(String, String)],
    owner: &Owner,
) -> Result<Vec<p2fa_proto::protocol::Answer>, String> {
    let mut answers: Vec<p2fa_proto::protocol::Answer> = Vec::new();
    let mut differ = false;
    for i in 0.. {
        let (Some(pick), Some(a)) = (field(f, &format!("q{i}")), field(f, &format!("a{i}"))) else {
            break;
        };
        let own = field(f, &format!("c{i}")).unwrap_or("");
        let n = (i + 1).to_string();
        let question = if pick == page::OWN_QUESTION {
            own
        } else if !own.trim().is_empty() {
            return Err(fill(t.question_own_unused, &[("n", &n)]));
        } else {
            pick
        };
        let earlier = answers.iter().map(|x| x.question.as_str());
        let question = match questions::choose(&site.cfg.questions, earlier, question) {
            Ok(c) => c.text,
            Err(why) => {
                audit(&site.cfg).info(&format!(
                    "profile page refused questions user={} question={n} reason={why:?} text=\"{}\"",
                    clean(&owner.user),
                    printable(question, 80)
                ));
                return Err(t.question_refused(why, i + 1));
            }
        };
        let again = field(f, &format!("r{i}")).unwrap_or("");
        differ |= questions::normalize(a) != questions::normalize(again);
        answers.push(p2fa_proto::protocol::Answer {
            question,
            answer: a.to_string(),
        });
    }
    if differ {
        return Err(t.answers_differ.to_string());
    }
    Ok(answers)
}

/// Fleet mode: the setup was begun through another 2fad, which holds the
/// unconfirmed secret in its memory, so this one has none. The page's
/// session (sealed in the fleet database) has it: the setup is begun
/// again here with that same secret (as the page showed it, with the
/// same rules and proof state as the first begin), then finished. None:
/// nothing to retry (one host, or another refusal).
fn totp_elsewhere(
    site: &Site,
    r: &Req,
    owner: &Owner,
    elevated: Option<&'static str>,
    answer: &Response,
    code: String,
) -> Option<Response> {
    if !matches!(*site.profiles, session::Profiles::Fleet(_))
        || !matches!(
            answer,
            Response::Error {
                code: ErrorCode::BadRequest,
                ..
            }
        )
    {
        return None;
    }
    let secret = site
        .profiles
        .with(sid(r), r.peer, |s| {
            s.totp
                .as_ref()
                .map(|t| Zeroizing::new(t.secret.to_string()))
        })
        .ok()
        .flatten()?;
    let begin = Op::TotpBegin {
        secret: Some(secret.to_string()),
    };
    match ask(site, owner, elevated, begin) {
        Response::TotpPending { .. } => Some(ask(site, owner, elevated, Op::TotpFinish { code })),
        _ => None,
    }
}

/// The notice a proof on the page leaves: from now on this session may
/// change the user's factors.
pub(super) fn unlocked(site: &Site, owner: &Owner, how: &str, peer: IpAddr) {
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
