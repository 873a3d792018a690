//! The enrollment broker: what an ordinary user may do to their own
//! factors without root, over the socket.
//!
//! The caller is the uid the kernel reports for the connection. A user
//! may only touch their own account; root may name any user. A user with
//! no factor may add a first one freely. Once they have any factor, every
//! change (add, replace, remove, new backup codes, a key registered or
//! removed) needs a current proof of one they hold, checked and counted
//! like a login: a TOTP/HOTP or backup code, a code 2fad sent to their
//! phone or e-mail (`proof_send`), or an assertion from one of their
//! security keys in a ceremony 2fad runs for exactly that change
//! (`webauthn_prove`). A user whose only factors 2fad cannot check (Duo,
//! questions, a console key) is told to ask root. So a
//! hijacked shell can neither quietly add a way in nor swap or strip
//! someone's second factor.
//!
//! 2fad never creates the store or the host key: `2fa-enroll init` (root)
//! does. A daemon that recreated them on a user's request would orphan
//! every sealed secret (and, with `unenrolled = allow`, let people in).

mod factors;

use super::webauthn::{ProofError, Started};
use p2fa_auth::flow::{self, Current, Login};
use p2fa_core::audit::{Audit, clean};
use p2fa_core::config::Config;
use p2fa_core::crypto::KeyRing;
use p2fa_core::enrollment::{BackupSet, EnrollError, OtpSetup, Saved, save_otp};
use p2fa_core::factor::{FactorId, normalize_code};
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::{Store, UserState};
use p2fa_proto::protocol::{self, ErrorCode, Op, Proof, Request, Response, VERSION};
use std::collections::HashMap;
use std::sync::Mutex;

/// Service name the broker's checks are logged and recorded under.
const SERVICE: &str = "2fad";

struct Pending {
    setup: OtpSetup,
    expires: i64,
}

/// State shared by all connections: unconfirmed TOTP secrets and the
/// WebAuthn ceremonies (when enabled).
pub struct Broker {
    pending: Mutex<HashMap<String, Pending>>,
    pub ceremonies: Option<std::sync::Arc<super::webauthn::Ceremonies>>,
    /// Profile page links and sessions (with the web server).
    pub profiles: Option<std::sync::Arc<super::profile::session::Profiles>>,
    /// Whose files to believe (store, key): [`Trust::ROOT`] outside tests.
    trust: Trust,
}

fn now() -> i64 {
    p2fa_core::clock::unix_now()
}

impl Broker {
    pub fn new(trust: Trust) -> Broker {
        Broker {
            pending: Mutex::default(),
            ceremonies: None,
            profiles: None,
            trust,
        }
    }

    /// Handles one request from a peer with uid `uid`.
    pub fn handle(&self, cfg: &Config, audit: &mut Audit, uid: u32, req: Request) -> Response {
        self.handle_as(cfg, audit, uid, None, req)
    }

    /// [`Broker::handle`] for a caller who already proved a factor in this
    /// session (`elevated`: the factor, for the log) — the profile page,
    /// whose session was made elevated by [`Broker::prove`].
    pub fn handle_as(
        &self,
        cfg: &Config,
        audit: &mut Audit,
        uid: u32,
        elevated: Option<&'static str>,
        req: Request,
    ) -> Response {
        if req.version != VERSION {
            return Response::error(
                ErrorCode::Version,
                format!(
                    "protocol version {} is not supported (this 2fad speaks {VERSION})",
                    req.version
                ),
            );
        }
        let (caller, user) = match identify(audit, uid, req.user.as_deref(), op_name(&req.op)) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let (mut store, key) = match self.open(cfg, audit) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let mut ctx = Ctx {
            cfg,
            audit,
            store: &mut store,
            key: &key,
            user: &user,
            caller: &caller,
            uid,
            proven: elevated,
        };
        self.serve(&mut ctx, req)
    }

    /// Checks `proof` of one of `user`'s factors for `purpose`, counted
    /// like a login, without changing anything: the profile page's
    /// "confirm it is you". `Ok` names the factor (`root` for root,
    /// `none-first-factor` for a user who has none yet).
    pub fn prove(
        &self,
        cfg: &Config,
        audit: &mut Audit,
        uid: u32,
        user: &str,
        proof: Option<&Proof>,
        purpose: &str,
    ) -> Result<&'static str, Response> {
        let (caller, user) = identify(audit, uid, Some(user), "prove")?;
        let (mut store, key) = self.open(cfg, audit)?;
        let mut ctx = Ctx {
            cfg,
            audit,
            store: &mut store,
            key: &key,
            user: &user,
            caller: &caller,
            uid,
            proven: None,
        };
        match self.require_proof(&mut ctx, proof, purpose) {
            Some(refusal) => Err(refusal),
            None => Ok(ctx.proven.unwrap_or("-")),
        }
    }

    /// The store and the host key, checked against each other.
    fn open(&self, cfg: &Config, audit: &mut Audit) -> Result<(Store, KeyRing), Response> {
        let mut store = match crate::pool::open(cfg, self.trust) {
            Ok(s) => s,
            Err(e) => {
                audit.err(&format!(
                    "broker: {}",
                    p2fa_core::audit::detail(&e.to_string())
                ));
                return Err(Response::error(
                    ErrorCode::Unavailable,
                    "the 2FA store is unavailable; tell your administrator (root: `2fa-enroll init` creates it)",
                ));
            }
        };
        // The keys of the store's generations this host has (`key_file`,
        // plus next/previous during a rotation, docs/rekey.md), each
        // recognised by its check value: a proof checked with the wrong
        // key would count as a failure.
        let key = match p2fa_core::keycheck::ring(cfg, self.trust, &mut store) {
            Ok(k) => k,
            Err(e) => {
                audit.err(&format!("broker: {}", p2fa_core::audit::detail(&e)));
                return Err(Response::error(
                    ErrorCode::Unavailable,
                    "the 2FA host key is unavailable or does not match the store; tell your administrator",
                ));
            }
        };
        Ok((store, key))
    }

    fn serve(&self, ctx: &mut Ctx, req: Request) -> Response {
        let (uid, user, caller) = (ctx.uid, ctx.user.to_string(), ctx.caller.to_string());
        // Every change needs a proof first; TOTP checks the new code
        // before it (so a mistyped new code does not spend the proof).
        if let Some(purpose) = protocol::purpose(&req.op)
            && !matches!(req.op, Op::TotpFinish { .. })
            && let Some(refusal) = self.require_proof(ctx, req.proof.as_ref(), &purpose)
        {
            return refusal;
        }
        match req.op {
            Op::Status => match ctx.store.status(&user) {
                Ok(s) => Response::Status {
                    status: serde_json::to_value(s).unwrap_or_default(),
                },
                Err(e) => Response::error(ErrorCode::Unavailable, e.to_string()),
            },
            Op::TotpBegin { secret } => self.totp_begin(ctx, secret.as_deref()),
            Op::TotpFinish { code } => self.totp_finish(ctx, &code, req.proof.as_ref()),
            Op::Backup => backup_codes(ctx),
            Op::Remove { method } => remove(ctx, &method),
            Op::WebauthnRegister { name } => self.webauthn_register(ctx, &name),
            Op::WebauthnLogin { .. } if uid != 0 => Response::error(
                ErrorCode::Denied,
                "only the PAM module (root) starts login ceremonies",
            ),
            Op::WebauthnLogin { service, rhost } => self.webauthn_login(ctx, &service, &rhost),
            Op::WebauthnProve { purpose } => self.webauthn_prove(ctx, &purpose),
            Op::WebauthnResult { token } => self.webauthn_result(ctx, &token),
            Op::WebauthnCancel { token } => match self.ceremonies() {
                Ok(c) if c.cancel(&token, &user, uid == 0) => Response::Done {
                    message: "cancelled".into(),
                },
                Ok(_) => Response::error(ErrorCode::BadRequest, "no such open link of yours"),
                Err(r) => r,
            },
            Op::DevicesList => match ctx.store.remembered_list(Some(&user), now()) {
                Ok(devices) => Response::Devices { devices },
                Err(e) => Response::error(ErrorCode::Unavailable, e.to_string()),
            },
            Op::DevicesRevoke { id } => {
                let res = ctx.store.write().and_then(|tx| {
                    let n = tx.revoke(&user, id)?;
                    tx.commit()?;
                    Ok(n)
                });
                match res {
                    Ok(0) => Response::error(ErrorCode::BadRequest, "no such remembered device"),
                    Ok(n) => {
                        ctx.audit.notice(&format!(
                            "revoked {n} remembered device(s) user={} by={} via=2fad",
                            clean(&user),
                            clean(&caller)
                        ));
                        Response::Done {
                            message: format!(
                                "Revoked {n} remembered device(s); the next login asks for a second factor."
                            ),
                        }
                    }
                    Err(e) => Response::error(ErrorCode::Unavailable, e.to_string()),
                }
            }
            Op::WebauthnList => match ctx
                .store
                .webauthn_credentials(&user)
                .and_then(|b| Ok((b, ctx.store.local_keys(&user)?)))
            {
                Ok((browser, local)) => Response::Keys {
                    keys: browser
                        .into_iter()
                        .map(|c| protocol::KeyInfo {
                            name: c.name,
                            created_at: c.created_at,
                            last_used_at: c.last_used_at,
                            local: false,
                        })
                        .chain(local.into_iter().map(|k| protocol::KeyInfo {
                            name: k.name,
                            created_at: k.created_at,
                            last_used_at: k.last_used_at,
                            local: true,
                        }))
                        .collect(),
                },
                Err(e) => Response::error(ErrorCode::Unavailable, e.to_string()),
            },
            Op::WebProfile => self.web_profile(ctx),
            Op::ContactBegin { channel, address } => self.contact_begin(ctx, &channel, &address),
            Op::ContactFinish { code } => self.contact_finish(ctx, &code),
            Op::ProofSend { channel } => self.proof_send(ctx, &channel),
            Op::DuoStatus => self.duo_status(ctx),
            Op::DuoEnroll => self.duo_enroll(ctx),
            Op::QuestionsChoices => self.questions_choices(ctx),
            Op::QuestionsSet { answers } => self.questions_set(ctx, &answers),
            Op::WebauthnRemove { name } => {
                let res = ctx.store.write().and_then(|tx| {
                    let n =
                        tx.remove_webauthn(&user, &name)? || tx.remove_local_key(&user, &name)?;
                    tx.commit()?;
                    Ok(n)
                });
                match res {
                    Ok(true) => {
                        ctx.changed(
                            "removed",
                            FactorId::Webauthn,
                            &format!("key={}", clean(&name)),
                        );
                        Response::Done {
                            message: format!("Removed the key {name:?}."),
                        }
                    }
                    Ok(false) => {
                        Response::error(ErrorCode::BadRequest, format!("no key named {name:?}"))
                    }
                    Err(e) => Response::error(ErrorCode::Unavailable, e.to_string()),
                }
            }
        }
    }

    /// `None` when the caller may make the change `purpose` (root, a user
    /// without any factor yet, or a valid proof); else the refusal to
    /// send. A code is checked and counted like a login; a WebAuthn proof
    /// was counted when the browser posted it and is used up here.
    fn require_proof(
        &self,
        ctx: &mut Ctx,
        proof: Option<&Proof>,
        purpose: &str,
    ) -> Option<Response> {
        if ctx.uid == 0 {
            ctx.proven = Some("root");
            return None;
        }
        let state = match ctx.store.user_state(ctx.user) {
            Ok(s) => s,
            Err(e) => return Some(Response::error(ErrorCode::Unavailable, e.to_string())),
        };
        if !state.has_factor() {
            ctx.proven = Some("none-first-factor");
            return None;
        }
        if state.locked_until > now() {
            return Some(locked(state.locked_until - now()));
        }
        // Proven earlier in this profile page session (and not locked
        // out since).
        if ctx.proven.is_some() {
            return None;
        }
        let code = state.otp.is_some() || !state.unused_backup.is_empty();
        let key = state.webauthn > 0 && self.ceremonies.is_some();
        let sent = !factors::sendable(ctx.cfg, &state).is_empty();
        if !code && !key && !sent {
            ctx.audit.warning(&format!(
                "broker refused user={} change={}: no factor 2fad can check ({})",
                clean(ctx.user),
                clean(purpose),
                others(&state).join(",")
            ));
            return Some(Response::error(
                ErrorCode::NeedsRoot,
                format!(
                    "your second factor here ({}) cannot be checked by 2fad, so it cannot confirm this change.\n\
                     Ask an administrator to run:  sudo 2fa-enroll {} --user {}",
                    others(&state).join(", "),
                    admin_command(purpose),
                    ctx.user
                ),
            ));
        }
        match proof {
            None => Some(Response::error(
                ErrorCode::NeedsCurrent,
                format!(
                    "to change your factors ({purpose}), first prove you hold your existing second factor: {}",
                    match (code, key) {
                        (true, true) => "a current code (TOTP or backup code) or your security key",
                        (true, false) => "a current code (TOTP or backup code)",
                        (false, true) => "your security key (2fa-enroll asks for it)",
                        _ => "a code sent to your phone or e-mail (the profile page sends one)",
                    }
                ),
            )),
            Some(Proof::Code(c)) => ctx.check_code(c),
            Some(Proof::Sent { channel, code }) => self.check_sent(ctx, channel, code),
            Some(Proof::Webauthn(tok)) => {
                let c = match self.ceremonies() {
                    Ok(c) => c,
                    Err(r) => return Some(r),
                };
                match c.take_proof(tok, ctx.user, purpose) {
                    Ok(name) => {
                        ctx.audit.info(&format!(
                            "broker proof ok user={} factor=webauthn key={} change={}",
                            clean(ctx.user),
                            clean(&name),
                            clean(purpose)
                        ));
                        ctx.proven = Some(FactorId::Webauthn.as_str());
                        None
                    }
                    Err(ProofError::Pending) => Some(Response::error(
                        ErrorCode::Pending,
                        "not approved in the browser yet; nothing changed",
                    )),
                    Err(ProofError::Refused(m)) => {
                        ctx.audit.warning(&format!(
                            "broker proof refused user={} change={}: {}",
                            clean(ctx.user),
                            clean(purpose),
                            p2fa_core::audit::detail(&m)
                        ));
                        Some(Response::error(
                            ErrorCode::WrongProof,
                            format!("{m}; nothing changed"),
                        ))
                    }
                }
            }
        }
    }

    fn totp_begin(&self, ctx: &mut Ctx, secret: Option<&str>) -> Response {
        let setup = match OtpSetup::totp(ctx.cfg, secret) {
            Ok(s) => s,
            Err(e) => return enroll_error(e),
        };
        let params = setup.params;
        let b32 = setup.base32();
        let uri = setup.uri(&ctx.cfg.issuer_name(), ctx.user);
        let needs_current = ctx.uid != 0
            && ctx
                .store
                .user_state(ctx.user)
                .map(|s| s.has_factor())
                .unwrap_or(true);
        let resp = Response::TotpPending {
            uri: uri.to_string(),
            secret: b32.to_string(),
            digits: params.digits,
            period: params.period,
            needs_current,
        };
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| p.expires > now());
        pending.insert(
            ctx.user.to_string(),
            Pending {
                setup,
                expires: now() + ctx.cfg.daemon.pending_seconds as i64,
            },
        );
        resp
    }

    fn totp_finish(&self, ctx: &mut Ctx, code: &str, proof: Option<&Proof>) -> Response {
        let Some(mut p) = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(ctx.user)
            .filter(|p| p.expires > now())
        else {
            return Response::error(
                ErrorCode::BadRequest,
                "no TOTP enrollment in progress (or it expired); start again",
            );
        };
        let keep = |p: Pending| {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(ctx.user.to_string(), p);
        };
        let code = normalize_code(code).unwrap_or_default();
        if !p.setup.confirm(ctx.cfg, now(), &code) {
            // Keep it pending so the user can try the next code.
            keep(p);
            return Response::error(
                ErrorCode::WrongCode,
                "that code does not match the new secret; try the next one",
            );
        }
        if let Some(refusal) = self.require_proof(ctx, proof, FactorId::Totp.as_str()) {
            keep(p);
            return refusal;
        }
        let saved = p.setup.record(ctx.key, ctx.user, now()).and_then(|rec| {
            let tx = ctx.store.write()?;
            let saved = save_otp(&tx, ctx.user, &rec, now(), false)?;
            tx.commit()?;
            Ok(saved)
        });
        let replaced = match saved {
            Ok(Saved::Stored { replaced }) => replaced,
            Ok(Saved::AlreadyEnrolled) => false,
            Err(e) => return enroll_error(e),
        };
        ctx.changed("added", FactorId::Totp, &format!("replaced={replaced}"));
        Response::Done {
            message: format!("Saved. {} will be asked for a code at login.", ctx.user),
        }
    }
}

impl Broker {
    fn ceremonies(&self) -> Result<&super::webauthn::Ceremonies, Response> {
        self.ceremonies.as_deref().ok_or_else(|| {
            Response::error(
                ErrorCode::Unavailable,
                "security keys are not enabled on this system ([webauthn] enabled)",
            )
        })
    }

    fn link(ctx: &Ctx, prefix: &str, started: Started) -> Response {
        let base = ctx.cfg.webauthn.public_url.trim_end_matches('/');
        Response::Link {
            url: format!("{base}/{prefix}/{}", started.token),
            token: started.token,
            code: started.code,
        }
    }

    fn webauthn_register(&self, ctx: &mut Ctx, name: &str) -> Response {
        let c = match self.ceremonies() {
            Ok(c) => c,
            Err(r) => return r,
        };
        let name = name.trim();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Response::error(
                ErrorCode::BadRequest,
                "a key name needs 1 to 64 printable characters",
            );
        }
        match c.begin_register(ctx.cfg, ctx.store, ctx.key, ctx.user, name, ctx.uid) {
            Ok(started) => {
                ctx.audit.info(&format!(
                    "webauthn registration started user={} name={} by uid={} proof={}",
                    clean(ctx.user),
                    clean(name),
                    ctx.uid,
                    ctx.proven.unwrap_or("-")
                ));
                Self::link(ctx, "r", started)
            }
            Err(e) => Response::error(ErrorCode::BadRequest, e),
        }
    }

    /// A one-time link to the profile page for the request's user.
    fn web_profile(&self, ctx: &mut Ctx) -> Response {
        let Some(profiles) = &self.profiles else {
            return Response::error(
                ErrorCode::Unavailable,
                "the profile page needs 2fad's web server ([webauthn] enabled, listen, public_url); ask your administrator",
            );
        };
        let owner = super::profile::session::Owner {
            user: ctx.user.to_string(),
            uid: ctx.uid,
        };
        match super::profile::new_link(ctx.cfg, profiles, owner) {
            Ok(url) => {
                ctx.audit.notice(&format!(
                    "profile link made user={} by uid={} ({})",
                    clean(ctx.user),
                    ctx.uid,
                    clean(ctx.caller)
                ));
                let token = url.rsplit('/').next().unwrap_or("").to_string();
                Response::Link {
                    url,
                    token,
                    code: String::new(),
                }
            }
            Err(e) => Response::error(ErrorCode::Busy, e),
        }
    }

    fn webauthn_login(&self, ctx: &mut Ctx, service: &str, rhost: &str) -> Response {
        let c = match self.ceremonies() {
            Ok(c) => c,
            Err(r) => return r,
        };
        let (service, rhost) = (
            p2fa_core::audit::printable(service, 64),
            p2fa_core::audit::printable(rhost, 255),
        );
        match c.begin_login(ctx.cfg, ctx.store, ctx.user, &service, &rhost) {
            Ok(started) => Self::link(ctx, "l", started),
            Err(e) => Response::error(ErrorCode::BadRequest, e),
        }
    }

    /// Starts a ceremony in which the user proves a key for `purpose`.
    fn webauthn_prove(&self, ctx: &mut Ctx, purpose: &str) -> Response {
        let c = match self.ceremonies() {
            Ok(c) => c,
            Err(r) => return r,
        };
        if purpose.is_empty() || purpose.len() > 200 || purpose.chars().any(char::is_control) {
            return Response::error(
                ErrorCode::BadRequest,
                "a change needs 1 to 200 printable characters",
            );
        }
        match ctx.store.user_state(ctx.user) {
            Ok(s) if s.locked_until > now() => return locked(s.locked_until - now()),
            Ok(_) => {}
            Err(e) => return Response::error(ErrorCode::Unavailable, e.to_string()),
        }
        match c.begin_proof(ctx.cfg, ctx.store, ctx.user, purpose, ctx.uid) {
            Ok(started) => {
                ctx.audit.info(&format!(
                    "webauthn proof started user={} change={} by uid={}",
                    clean(ctx.user),
                    clean(purpose),
                    ctx.uid
                ));
                Self::link(ctx, "l", started)
            }
            Err(e) => Response::error(ErrorCode::BadRequest, e),
        }
    }

    fn webauthn_result(&self, ctx: &mut Ctx, token: &str) -> Response {
        use super::webauthn::Outcome;
        let c = match self.ceremonies() {
            Ok(c) => c,
            Err(r) => return r,
        };
        match c.result(token, ctx.user, ctx.uid == 0) {
            Err(e) => {
                ctx.audit.warning(&format!(
                    "broker denied caller={} a login result: {}",
                    clean(ctx.caller),
                    p2fa_core::audit::detail(&e)
                ));
                Response::error(ErrorCode::Denied, e)
            }
            Ok(Outcome::Pending) => Response::error(ErrorCode::Pending, "not approved yet"),
            Ok(Outcome::Approved(name)) => {
                ctx.audit.info(&format!(
                    "webauthn ok user={} key={}",
                    clean(ctx.user),
                    clean(&name)
                ));
                Response::Done { message: name }
            }
            Ok(Outcome::Failed(e)) => {
                ctx.audit.warning(&format!(
                    "webauthn failed user={}: {}",
                    clean(ctx.user),
                    p2fa_core::audit::detail(&e)
                ));
                Response::error(ErrorCode::Failed, e)
            }
        }
    }
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Status => "status",
        Op::TotpBegin { .. } => "totp_begin",
        Op::TotpFinish { .. } => "totp_finish",
        Op::Backup => "backup",
        Op::Remove { .. } => "remove",
        Op::WebauthnRegister { .. } => "webauthn_register",
        Op::WebauthnLogin { .. } => "webauthn_login",
        Op::WebauthnProve { .. } => "webauthn_prove",
        Op::WebauthnResult { .. } => "webauthn_result",
        Op::WebauthnCancel { .. } => "webauthn_cancel",
        Op::WebauthnList => "webauthn_list",
        Op::DevicesList => "devices_list",
        Op::DevicesRevoke { .. } => "devices_revoke",
        Op::WebauthnRemove { .. } => "webauthn_remove",
        Op::WebProfile => "web_profile",
        Op::ContactBegin { .. } => "contact_begin",
        Op::ContactFinish { .. } => "contact_finish",
        Op::ProofSend { .. } => "proof_send",
        Op::DuoStatus => "duo_status",
        Op::DuoEnroll => "duo_enroll",
        Op::QuestionsChoices => "questions_choices",
        Op::QuestionsSet { .. } => "questions_set",
    }
}

/// The caller's account name (from the socket's uid) and the account a
/// request is for: their own, or any for root.
fn identify(
    audit: &mut Audit,
    uid: u32,
    asked: Option<&str>,
    op: &str,
) -> Result<(String, String), Response> {
    let caller = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => return Err(Response::error(ErrorCode::Denied, "unknown caller")),
    };
    let user = match asked {
        Some(u) if u != caller && uid != 0 => {
            audit.warning(&format!(
                "broker denied caller={} asked-for={} op={op}",
                clean(&caller),
                clean(u),
            ));
            return Err(Response::error(
                ErrorCode::Denied,
                "you may only manage your own factors",
            ));
        }
        Some(u) => u.to_string(),
        None => caller.clone(),
    };
    // The account's own name (NSS may match case-insensitively).
    let Some(user) = p2fa_core::users::canonical(&user) else {
        return Err(Response::error(
            ErrorCode::BadRequest,
            format!("no such user: {}", clean(&user)),
        ));
    };
    Ok((caller, user))
}

fn locked(remaining: i64) -> Response {
    Response::error(
        ErrorCode::Locked,
        format!(
            "too many failed attempts; try again in {}",
            flow::human_duration(remaining)
        ),
    )
}

/// The factors a user has that 2fad cannot check.
fn others(s: &UserState) -> Vec<&'static str> {
    let mut v = Vec::new();
    if s.sms.is_some() {
        v.push("SMS");
    }
    if s.email.is_some() {
        v.push("e-mail");
    }
    if s.duo {
        v.push("Duo");
    }
    if s.questions > 0 {
        v.push("security questions");
    }
    if s.webauthn > 0 {
        v.push("security key (WebAuthn is not enabled)");
    }
    if s.local_keys > 0 {
        v.push("console security key");
    }
    v
}

/// The root command that makes the change `purpose` for a user.
fn admin_command(purpose: &str) -> String {
    if let Some(name) = purpose.strip_prefix("webauthn add ") {
        format!("webauthn add --name {name:?}")
    } else if let Some(name) = purpose.strip_prefix("webauthn remove ") {
        format!("webauthn remove {name:?}")
    } else {
        purpose.to_string()
    }
}

struct Ctx<'a> {
    cfg: &'a Config,
    audit: &'a mut Audit,
    store: &'a mut Store,
    key: &'a KeyRing,
    user: &'a str,
    caller: &'a str,
    uid: u32,
    /// How the caller proved a factor for this change (for the log).
    proven: Option<&'static str>,
}

impl Ctx<'_> {
    /// A current code as proof: the same single-use, rate-limited check a
    /// login does, recorded under service 2fad.
    fn check_code(&mut self, current: &str) -> Option<Response> {
        let Some(code) = normalize_code(current) else {
            return Some(Response::error(
                ErrorCode::WrongCode,
                "that is not a valid current code; nothing changed",
            ));
        };
        let login = Login {
            user: self.user,
            service: SERVICE,
            rhost: "",
            tty: "",
            // The peer that asked 2fad for this change.
            caller_uid: self.uid,
        };
        match flow::check_current(self.cfg, self.store, self.key, login, now(), &code) {
            Ok(Current::Accepted(f)) => {
                self.audit.info(&format!(
                    "broker current factor ok user={} factor={f}",
                    clean(self.user)
                ));
                self.proven = Some(f.as_str());
                None
            }
            Ok(Current::Rejected) => {
                self.audit.warning(&format!(
                    "broker current factor wrong user={} (counted as a failed attempt)",
                    clean(self.user)
                ));
                Some(Response::error(
                    ErrorCode::WrongCode,
                    "that is not a valid current code; nothing changed",
                ))
            }
            Ok(Current::Locked(s)) => Some(locked(s)),
            Err(e) => Some(Response::error(ErrorCode::Unavailable, e.to_string())),
        }
    }

    /// The notice every addition or removal leaves in the log.
    fn changed(&mut self, how: &str, factor: FactorId, detail: &str) {
        self.audit.notice(&format!(
            "factor {how} user={} factor={factor} by uid={} ({}) via=2fad proof={} {detail}",
            clean(self.user),
            self.uid,
            clean(self.caller),
            self.proven.unwrap_or("-")
        ));
    }
}

fn backup_codes(ctx: &mut Ctx) -> Response {
    let saved =
        BackupSet::generate(ctx.key, ctx.user, ctx.cfg.backup.count as usize).and_then(|codes| {
            let tx = ctx.store.write()?;
            let replaced = codes.save(&tx, ctx.user, now())?;
            tx.commit()?;
            Ok((codes, replaced))
        });
    let (codes, replaced) = match saved {
        Ok(s) => s,
        Err(e) => return enroll_error(e),
    };
    ctx.changed(
        "added",
        FactorId::Backup,
        &format!("count={} replaced={replaced}", codes.len()),
    );
    Response::BackupCodes {
        codes: codes
            .formatted()
            .iter()
            .map(|c| c.as_str().to_string())
            .collect(),
    }
}

/// The one mapping from an enrollment error to the protocol.
fn enroll_error(e: EnrollError) -> Response {
    match e {
        EnrollError::Invalid(why) => Response::error(ErrorCode::BadRequest, why),
        e => Response::error(ErrorCode::Unavailable, e.to_string()),
    }
}

fn remove(ctx: &mut Ctx, method: &str) -> Response {
    let Some(factor) = [
        FactorId::Totp,
        FactorId::Backup,
        FactorId::Sms,
        FactorId::Email,
        FactorId::Duo,
        FactorId::Questions,
    ]
    .into_iter()
    .find(|f| f.as_str() == method) else {
        return Response::error(
            ErrorCode::BadRequest,
            "only totp, backup, sms, email, duo and questions can be removed here",
        );
    };
    let res = ctx.store.write().and_then(|tx| {
        let n = match factor {
            FactorId::Totp => usize::from(tx.remove_otp(ctx.user)?),
            FactorId::Sms | FactorId::Email => usize::from(tx.remove_contact(ctx.user, factor)?),
            FactorId::Duo => usize::from(tx.remove_duo(ctx.user)?),
            FactorId::Questions => usize::from(tx.remove_questions(ctx.user)?),
            _ => tx.remove_backup_codes(ctx.user)?,
        };
        tx.commit()?;
        Ok(n)
    });
    match res {
        Ok(0) => Response::error(
            ErrorCode::BadRequest,
            format!("you have no {method} to remove"),
        ),
        Ok(_) => {
            ctx.changed("removed", factor, "");
            Response::Done {
                message: format!("Removed {method}."),
            }
        }
        Err(e) => Response::error(ErrorCode::Unavailable, e.to_string()),
    }
}
