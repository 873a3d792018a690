//! The profile page's WebAuthn ceremonies: proving with a security key
//! and registering a new one. The ceremony's token stays in the session;
//! the page's script only passes options and the authenticator's answer.

use super::actions::{checked, refusal, unlocked};
use super::session::Ceremony;
use super::text::{fill, text};
use super::{Answer, PURPOSE, Req, Site, ask, audit, sid};
use p2fa_proto::protocol::{Op, Proof, Response};

fn json_error(status: u16, message: &str) -> Answer {
    Answer::json(
        status,
        serde_json::json!({ "ok": false, "message": message }).to_string(),
    )
}

/// Starts a WebAuthn ceremony for the page (`{"kind":"prove"}` or
/// `{"kind":"register","name":...}`); answers the browser's options. The
/// ceremony's token stays in the session.
pub(super) fn begin(site: &Site, r: &Req) -> Answer {
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
pub(super) fn finish(site: &Site, r: &Req) -> Answer {
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
