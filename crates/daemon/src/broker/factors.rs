//! The factors the profile page sets up beyond TOTP, backup codes and
//! keys: a phone number or e-mail address (confirmed by a code sent to
//! it), Duo (when Duo knows the user) and security questions. The same
//! rules as the rest of the broker: the policy must allow the method,
//! the change needs a proof (checked before these run, see
//! [`p2fa_proto::protocol::purpose`]), and every addition is logged.

use super::{Broker, Ctx, now};
use p2fa_core::audit::{clean, printable};
use p2fa_core::factor::{FactorId, normalize_code, questions};
use p2fa_core::store::UserState;
use p2fa_core::store::{Purpose, SentCheck, SentScope};
use p2fa_net::confirm;
use p2fa_net::network::{DuoPreauth, Live, Network};
use p2fa_proto::protocol::{Answer, ErrorCode, Response};

/// The scope of the codes 2fad sends (a proof, a new number or address):
/// with its web server, every 2fad serving the same public_url, since a
/// load balancer may send the typed code to another one; without it, this
/// host. A host-local store ignores it; login codes the PAM module sends
/// stay on their host ([`SentScope::HOST`]).
fn sent_scope(cfg: &p2fa_core::config::Config) -> SentScope {
    if cfg.webauthn.enabled {
        SentScope::web(&cfg.webauthn.public_url)
    } else {
        SentScope::HOST
    }
}

/// `Some(refusal)` unless the policy lets `user` use `f`.
fn allowed(ctx: &Ctx, f: FactorId) -> Option<Response> {
    let groups = p2fa_core::users::groups(ctx.user);
    let (allowed, source) = p2fa_core::policy::allowed_methods(ctx.cfg, &groups);
    (!p2fa_core::policy::allows_factor(&allowed, f)).then(|| {
        Response::error(
            ErrorCode::Denied,
            format!("your administrator does not allow {f} for you ({source})"),
        )
    })
}

fn channel_of(name: &str) -> Option<FactorId> {
    [FactorId::Sms, FactorId::Email]
        .into_iter()
        .find(|f| f.as_str() == name)
}

impl Broker {
    pub(super) fn contact_begin(&self, ctx: &mut Ctx, channel: &str, address: &str) -> Response {
        let Some(ch) = channel_of(channel) else {
            return Response::error(ErrorCode::BadRequest, "channel must be sms or email");
        };
        if let Err(e) = confirm::channel(ctx.cfg, ch) {
            return Response::error(ErrorCode::Unavailable, e.0);
        }
        if let Some(r) = allowed(ctx, ch) {
            return r;
        }
        let address = match confirm::normalize(ch, address) {
            Ok(a) => a,
            Err(e) => return Response::error(ErrorCode::BadRequest, e.0),
        };
        match confirm::send(
            ctx.cfg,
            self.trust,
            ctx.store,
            ctx.key,
            ctx.user,
            ch,
            &address,
            Purpose::Enroll,
            &sent_scope(ctx.cfg),
        ) {
            Ok(masked) => Response::Done {
                message: format!("Sent a code to {masked}."),
            },
            Err(e) => Response::error(ErrorCode::Unavailable, e.0),
        }
    }

    /// Saves the number or address the user's newest confirmation code
    /// went to (it is kept with the code, in the store, so any 2fad of
    /// the fleet finishes what another began), once they type that code
    /// back. The address is never taken from the request: whoever
    /// finishes can save only where the code went.
    pub(super) fn contact_finish(&self, ctx: &mut Ctx, code: &str) -> Response {
        let scope = sent_scope(ctx.cfg);
        let waiting = ctx.store.write().and_then(|tx| {
            let w = tx.newest_sent_code(ctx.user, Purpose::Enroll, &scope, now())?;
            tx.commit()?;
            Ok(w)
        });
        let (channel, address) = match waiting {
            Ok(Some(w)) => w,
            Ok(None) => {
                return Response::error(
                    ErrorCode::BadRequest,
                    "no phone number or address is waiting for its code (or it expired); start again",
                );
            }
            Err(e) => return Response::error(ErrorCode::Unavailable, e.to_string()),
        };
        let Some(typed) = normalize_code(code) else {
            return Response::error(ErrorCode::WrongCode, "type only the digits of the code");
        };
        match confirm::check(
            ctx.cfg,
            ctx.store,
            ctx.key,
            ctx.user,
            channel,
            &address,
            &typed,
            Purpose::Enroll,
            &scope,
        ) {
            Ok(SentCheck::Accepted) => {}
            Ok(SentCheck::Wrong) => {
                return Response::error(ErrorCode::WrongCode, "that code is not right");
            }
            Ok(SentCheck::NoLiveCode) => {
                return Response::error(
                    ErrorCode::WrongCode,
                    "the code expired or had too many wrong tries; nothing saved, start again",
                );
            }
            Err(e) => return Response::error(ErrorCode::Unavailable, e.0),
        }
        match confirm::save(ctx.store, ctx.user, channel, &address) {
            Ok(old) => {
                let masked = p2fa_net::delivery::mask(channel, &address);
                ctx.changed("added", channel, &format!("replaced={}", old.is_some()));
                Response::Done {
                    message: format!("Saved {masked}."),
                }
            }
            Err(e) => Response::error(ErrorCode::Unavailable, e.to_string()),
        }
    }

    /// Duo's preauth for the user, as a [`Response::Duo`].
    pub(super) fn duo_status(&self, ctx: &mut Ctx) -> Response {
        if !ctx.cfg.duo.enabled {
            return Response::error(ErrorCode::Unavailable, "Duo is not enabled on this system");
        }
        let enrolled = match ctx.store.user_state(ctx.user) {
            Ok(s) => s.duo,
            Err(e) => return Response::error(ErrorCode::Unavailable, e.to_string()),
        };
        let username = ctx.cfg.duo.username(ctx.user).to_string();
        let duo =
            |state: &str, message: String, portal: String, devices: Vec<String>| Response::Duo {
                state: state.into(),
                message: p2fa_core::audit::printable(&message, 300),
                portal,
                devices,
                enrolled,
            };
        match Live::new(self.trust).duo_preauth(ctx.cfg, &username) {
            Ok(DuoPreauth::Auth(devices)) => duo(
                "auth",
                String::new(),
                String::new(),
                devices
                    .iter()
                    .map(|d| p2fa_core::audit::printable(&d.name, 80))
                    .collect(),
            ),
            Ok(DuoPreauth::Allow(m)) => duo("allow", m, String::new(), Vec::new()),
            Ok(DuoPreauth::Deny(m)) => duo("deny", m, String::new(), Vec::new()),
            Ok(DuoPreauth::Enroll(m)) => {
                // The client puts Duo's https:// enrollment link last.
                let portal = m
                    .split_whitespace()
                    .last()
                    .filter(|w| w.starts_with("https://"))
                    .unwrap_or("")
                    .to_string();
                duo("enroll", m, portal, Vec::new())
            }
            Err(f) => duo("unavailable", f.detail, String::new(), Vec::new()),
        }
    }

    /// Duo from now on, if Duo knows the user (or will, once they finish
    /// Duo's own enrollment); not when Duo denies them or is unreachable.
    pub(super) fn duo_enroll(&self, ctx: &mut Ctx) -> Response {
        if let Some(r) = allowed(ctx, FactorId::Duo) {
            return r;
        }
        match self.duo_status(ctx) {
            Response::Duo { state, message, .. } if state == "deny" || state == "unavailable" => {
                return Response::error(
                    ErrorCode::Unavailable,
                    format!("Duo did not accept you ({state}): {message}; nothing saved"),
                );
            }
            Response::Duo { .. } => {}
            other => return other,
        }
        let res = ctx.store.write().and_then(|tx| {
            tx.set_duo(ctx.user, now())?;
            tx.commit()
        });
        match res {
            Ok(()) => {
                ctx.changed("added", FactorId::Duo, "");
                Response::Done {
                    message: "Saved: you log in with Duo from now on.".into(),
                }
            }
            Err(e) => Response::error(ErrorCode::Unavailable, e.to_string()),
        }
    }

    pub(super) fn questions_choices(&self, ctx: &mut Ctx) -> Response {
        let q = &ctx.cfg.questions;
        if !q.enabled {
            return Response::error(
                ErrorCode::Unavailable,
                "security questions are not enabled on this system",
            );
        }
        match ctx.store.questions(ctx.user) {
            Ok((current, _)) => Response::Questions {
                choices: q.list.clone(),
                count: q.count,
                allow_custom: q.allow_custom,
                current: current.into_iter().map(|c| c.question).collect(),
            },
            Err(e) => Response::error(ErrorCode::Unavailable, e.to_string()),
        }
    }

    pub(super) fn questions_set(&self, ctx: &mut Ctx, answers: &[Answer]) -> Response {
        let q = ctx.cfg.questions.clone();
        if !q.enabled {
            return Response::error(
                ErrorCode::Unavailable,
                "security questions are not enabled on this system",
            );
        }
        if let Some(r) = allowed(ctx, FactorId::Questions) {
            return r;
        }
        if answers.len() != q.count as usize {
            return Response::error(
                ErrorCode::BadRequest,
                format!("choose and answer {} questions", q.count),
            );
        }
        let mut chosen: Vec<(String, String)> = Vec::new();
        let mut custom = 0;
        for (i, a) in answers.iter().enumerate() {
            // The same rules as `2fa-enroll questions`; nothing the form
            // says about which questions are allowed is trusted.
            let question = match questions::choose(
                &q,
                chosen.iter().map(|(c, _)| c.as_str()),
                &a.question,
            ) {
                Ok(c) => {
                    custom += usize::from(c.custom);
                    c.text
                }
                Err(why) => {
                    ctx.audit.info(&format!(
                        "broker refused user={} change=questions: question={} reason={why:?} text=\"{}\"",
                        clean(ctx.user),
                        i + 1,
                        printable(&a.question, 80)
                    ));
                    return Response::error(
                        ErrorCode::BadRequest,
                        format!("question {}: {why}; nothing was saved", i + 1),
                    );
                }
            };
            let answer = match questions::valid(&a.answer) {
                Ok(n) => zeroize::Zeroizing::new(n),
                Err(why) => {
                    return Response::error(
                        ErrorCode::BadRequest,
                        format!("the answer to \"{question}\" is {why}"),
                    );
                }
            };
            match questions::hash(ctx.key, ctx.user, &question, &answer) {
                Ok(h) => chosen.push((question, h)),
                Err(e) => return Response::error(ErrorCode::Unavailable, e.to_string()),
            }
        }
        let res = ctx.store.write().and_then(|tx| {
            tx.set_questions(ctx.user, &chosen, now(), ctx.key.key_gen())?;
            tx.commit()
        });
        match res {
            Ok(()) => {
                ctx.changed(
                    "added",
                    FactorId::Questions,
                    &format!("count={} custom={custom}", chosen.len()),
                );
                Response::Done {
                    message: format!("Saved {} security questions.", chosen.len()),
                }
            }
            Err(e) => Response::error(ErrorCode::Unavailable, e.to_string()),
        }
    }
}

/// The user's own numbers and addresses 2fad can send a proof code to
/// (their channel is enabled here).
pub(super) fn sendable(cfg: &p2fa_core::config::Config, s: &UserState) -> Vec<(FactorId, String)> {
    [(FactorId::Sms, &s.sms), (FactorId::Email, &s.email)]
        .into_iter()
        .filter_map(|(ch, a)| Some((ch, a.clone()?)))
        .filter(|(ch, _)| confirm::channel(cfg, *ch).is_ok())
        .collect()
}

impl Broker {
    /// Sends a code to the caller's own number or address, to be given
    /// back as their proof ([`Proof::Sent`]).
    pub(super) fn proof_send(&self, ctx: &mut Ctx, channel: &str) -> Response {
        let state = match ctx.store.user_state(ctx.user) {
            Ok(s) => s,
            Err(e) => return Response::error(ErrorCode::Unavailable, e.to_string()),
        };
        if state.locked_until > now() {
            return super::locked(state.locked_until - now());
        }
        let Some((ch, address)) = sendable(ctx.cfg, &state)
            .into_iter()
            .find(|(ch, _)| ch.as_str() == channel)
        else {
            return Response::error(
                ErrorCode::BadRequest,
                format!("you have no {channel} this system can send a code to"),
            );
        };
        match confirm::send(
            ctx.cfg,
            self.trust,
            ctx.store,
            ctx.key,
            ctx.user,
            ch,
            &address,
            Purpose::Login,
            &sent_scope(ctx.cfg),
        ) {
            Ok(masked) => {
                ctx.audit.info(&format!(
                    "broker proof code sent user={} channel={ch}",
                    clean(ctx.user)
                ));
                Response::Done {
                    message: format!("Sent a code to {masked}."),
                }
            }
            Err(e) => Response::error(ErrorCode::Unavailable, e.0),
        }
    }

    /// A sent code as proof: single use, a wrong one counted like a
    /// failed login, a right one recorded as a success of service 2fad.
    pub(super) fn check_sent(&self, ctx: &mut Ctx, channel: &str, code: &str) -> Option<Response> {
        let wrong = || {
            Some(Response::error(
                ErrorCode::WrongCode,
                "that is not the code we sent; nothing changed",
            ))
        };
        let state = match ctx.store.user_state(ctx.user) {
            Ok(s) => s,
            Err(e) => return Some(Response::error(ErrorCode::Unavailable, e.to_string())),
        };
        let Some((ch, address)) = sendable(ctx.cfg, &state)
            .into_iter()
            .find(|(ch, _)| ch.as_str() == channel)
        else {
            return Some(Response::error(
                ErrorCode::BadRequest,
                format!("you have no {channel} this system can check"),
            ));
        };
        let Some(rules) = ctx.cfg.code_rules(ch) else {
            return wrong();
        };
        let Some(typed) = normalize_code(code) else {
            return wrong();
        };
        let hash = ctx.key.sent_code_hash(ch.as_str(), ctx.user, &typed);
        let t = now();
        let (user, rl) = (ctx.user, ctx.cfg.rate_limit.clone());
        let scope = sent_scope(ctx.cfg);
        let checked = ctx.store.write().and_then(|tx| {
            let r = tx.check_sent_code(
                user,
                ch,
                Purpose::Login,
                Some(&address),
                &hash,
                t,
                rules.max_attempts,
                &scope,
            )?;
            match r {
                SentCheck::Accepted => {
                    tx.record_success(user, t, super::SERVICE, "", ch.as_str())?
                }
                SentCheck::Wrong => {
                    tx.record_failure(user, t, &rl)?;
                }
                SentCheck::NoLiveCode => {}
            }
            tx.commit()?;
            Ok(r)
        });
        match checked {
            Ok(SentCheck::Accepted) => {
                ctx.audit.info(&format!(
                    "broker current factor ok user={} factor={ch}",
                    clean(ctx.user)
                ));
                ctx.proven = Some(ch.as_str());
                None
            }
            Ok(SentCheck::Wrong) => {
                ctx.audit.warning(&format!(
                    "broker current factor wrong user={} factor={ch} (counted as a failed attempt)",
                    clean(ctx.user)
                ));
                wrong()
            }
            Ok(SentCheck::NoLiveCode) => Some(Response::error(
                ErrorCode::WrongCode,
                "no live code was sent to you (it expired, was used, or had too many wrong tries); ask for a new one",
            )),
            Err(e) => Some(Response::error(ErrorCode::Unavailable, e.to_string())),
        }
    }
}
