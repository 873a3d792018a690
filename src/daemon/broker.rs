//! The enrollment broker: what an ordinary user may do to their own
//! factors without root, over the socket.
//!
//! The caller is the uid the kernel reports for the connection. A user
//! may only touch their own account; root may name any user. Adding a
//! first factor needs nothing more; replacing or removing one needs a
//! current code of an existing factor first (a single-use, rate-limited
//! check, exactly like a login), so a hijacked shell cannot quietly swap
//! or strip someone's second factor.

use super::protocol::{Op, Request, Response, VERSION};
use crate::audit::{Audit, clean};
use crate::config::Config;
use crate::crypto::HostKey;
use crate::factor::{backup, normalize_code, totp};
use crate::flow::{self, Current, Login};
use crate::store::{OtpKind, OtpRecord, Store};
use std::collections::HashMap;
use std::sync::Mutex;
use zeroize::Zeroizing;

/// Service name the broker's checks are logged and recorded under.
const SERVICE: &str = "2fad";

struct Pending {
    secret: Zeroizing<Vec<u8>>,
    params: totp::OtpParams,
    expires: i64,
}

/// State shared by all connections: unconfirmed TOTP secrets and the
/// WebAuthn ceremonies (when enabled).
#[derive(Default)]
pub struct Broker {
    pending: Mutex<HashMap<String, Pending>>,
    pub ceremonies: Option<std::sync::Arc<super::webauthn::Ceremonies>>,
}

fn now() -> i64 {
    crate::clock::unix_now()
}

impl Broker {
    /// Handles one request from a peer with uid `uid`.
    pub fn handle(&self, cfg: &Config, audit: &mut Audit, uid: u32, req: Request) -> Response {
        if req.version != VERSION {
            return Response::error(
                "version",
                format!(
                    "protocol version {} is not supported (this 2fad speaks {VERSION})",
                    req.version
                ),
            );
        }
        let caller = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            Ok(Some(u)) => u.name,
            _ => return Response::error("denied", "unknown caller"),
        };
        let user = match &req.user {
            Some(u) if *u != caller && uid != 0 => {
                audit.warning(&format!(
                    "broker denied caller={} asked-for={} op={:?}",
                    clean(&caller),
                    clean(u),
                    op_name(&req.op)
                ));
                return Response::error("denied", "you may only manage your own factors");
            }
            Some(u) => u.clone(),
            None => caller.clone(),
        };
        if !crate::users::exists(&user) {
            return Response::error("bad_request", format!("no such user: {}", clean(&user)));
        }
        let mut store = match Store::open_or_create(&cfg.db, cfg.busy_timeout_ms) {
            Ok(s) => s,
            Err(e) => {
                audit.err(&format!("broker: {e}"));
                return Response::error(
                    "unavailable",
                    "the 2FA store is unavailable; tell your administrator",
                );
            }
        };
        let key = match HostKey::load_or_create(&cfg.key_file) {
            Ok((k, _)) => k,
            Err(e) => {
                audit.err(&format!("broker: {e}"));
                return Response::error(
                    "unavailable",
                    "the 2FA host key is unavailable; tell your administrator",
                );
            }
        };
        let mut ctx = Ctx {
            cfg,
            audit,
            store: &mut store,
            key: &key,
            user: &user,
            caller: &caller,
        };
        match req.op {
            Op::Status => match ctx.store.status(&user) {
                Ok(s) => Response::Status {
                    status: serde_json::to_value(s).unwrap_or_default(),
                },
                Err(e) => Response::error("unavailable", e.to_string()),
            },
            Op::TotpBegin { secret } => self.totp_begin(&mut ctx, secret.as_deref()),
            Op::TotpFinish { code, current } => {
                self.totp_finish(&mut ctx, &code, current.as_deref())
            }
            Op::Backup { current } => backup_codes(&mut ctx, current.as_deref()),
            Op::Remove { method, current } => remove(&mut ctx, &method, &current),
            Op::WebauthnRegister { name } => self.webauthn_register(&mut ctx, &name),
            Op::WebauthnLogin if uid != 0 => Response::error(
                "denied",
                "only the PAM module (root) starts login ceremonies",
            ),
            Op::WebauthnLogin => self.webauthn_login(&mut ctx),
            Op::WebauthnResult { token } => self.webauthn_result(&mut ctx, &token),
            Op::DevicesList => match ctx.store.remembered_list(Some(&user), now()) {
                Ok(devices) => Response::Devices { devices },
                Err(e) => Response::error("unavailable", e.to_string()),
            },
            Op::DevicesRevoke { id } => {
                let res = ctx.store.write().and_then(|tx| {
                    let n = tx.revoke(&user, id)?;
                    tx.commit()?;
                    Ok(n)
                });
                match res {
                    Ok(0) => Response::error("bad_request", "no such remembered device"),
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
                    Err(e) => Response::error("unavailable", e.to_string()),
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
                        .map(|c| super::protocol::KeyInfo {
                            name: c.name,
                            created_at: c.created_at,
                            last_used_at: c.last_used_at,
                            local: false,
                        })
                        .chain(local.into_iter().map(|k| super::protocol::KeyInfo {
                            name: k.name,
                            created_at: k.created_at,
                            last_used_at: k.last_used_at,
                            local: true,
                        }))
                        .collect(),
                },
                Err(e) => Response::error("unavailable", e.to_string()),
            },
            Op::WebauthnRemove { name, current } => {
                if let Some(r) = ctx.require_current(current.as_deref(), "remove a security key") {
                    return r;
                }
                let res = ctx.store.write().and_then(|tx| {
                    let n =
                        tx.remove_webauthn(&user, &name)? || tx.remove_local_key(&user, &name)?;
                    tx.commit()?;
                    Ok(n)
                });
                match res {
                    Ok(true) => {
                        ctx.audit.notice(&format!(
                            "removed webauthn key user={} name={} by={}",
                            clean(&user),
                            clean(&name),
                            clean(&caller)
                        ));
                        Response::Done {
                            message: format!("Removed the key {name:?}."),
                        }
                    }
                    Ok(false) => Response::error("bad_request", format!("no key named {name:?}")),
                    Err(e) => Response::error("unavailable", e.to_string()),
                }
            }
        }
    }

    fn totp_begin(&self, ctx: &mut Ctx, secret: Option<&str>) -> Response {
        let secret = match secret {
            Some(s) => match totp::decode_base32(s) {
                Ok(s) => s,
                Err(e) => return Response::error("bad_request", e),
            },
            None => match totp::generate_secret() {
                Ok(s) => s,
                Err(e) => return Response::error("unavailable", e.to_string()),
            },
        };
        let params = totp::OtpParams {
            algorithm: ctx.cfg.totp.algorithm,
            digits: ctx.cfg.totp.digits,
            period: ctx.cfg.totp.period,
        };
        let b32 = totp::encode_base32(&secret);
        let uri = totp::otpauth_uri(&ctx.cfg.issuer_name(), ctx.user, &b32, &params, None);
        let needs_current = ctx
            .store
            .user_state(ctx.user)
            .map(|s| s.otp.is_some())
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
                secret,
                params,
                expires: now() + ctx.cfg.daemon.pending_seconds as i64,
            },
        );
        resp
    }

    fn totp_finish(&self, ctx: &mut Ctx, code: &str, current: Option<&str>) -> Response {
        let Some(p) = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(ctx.user)
            .filter(|p| p.expires > now())
        else {
            return Response::error(
                "bad_request",
                "no TOTP enrollment in progress (or it expired); start again",
            );
        };
        let state = match ctx.store.user_state(ctx.user) {
            Ok(s) => s,
            Err(e) => return Response::error("unavailable", e.to_string()),
        };
        if state.otp.is_some()
            && let Some(r) = ctx.require_current(current, "replace your TOTP token")
        {
            return r;
        }
        let code = normalize_code(code).unwrap_or_default();
        let Some(step) = totp::verify_totp(
            &p.secret,
            &p.params,
            now(),
            ctx.cfg.totp.window,
            None,
            &code,
        ) else {
            // Keep it pending so the user can try the next code.
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(ctx.user.to_string(), p);
            return Response::error(
                "wrong_code",
                "that code does not match the new secret; try the next one",
            );
        };
        let rec = match ctx.key.seal(&p.secret, &totp::seal_aad(ctx.user)) {
            Ok(sealed) => OtpRecord {
                kind: OtpKind::Totp,
                sealed,
                algorithm: p.params.algorithm,
                digits: p.params.digits,
                period: p.params.period,
                last_step: Some(step),
                counter: 0,
                created_at: now(),
            },
            Err(e) => return Response::error("unavailable", e.to_string()),
        };
        let res = ctx.store.write().and_then(|tx| {
            tx.put_otp(ctx.user, &rec, now())?;
            tx.commit()
        });
        if let Err(e) = res {
            return Response::error("unavailable", e.to_string());
        }
        ctx.audit.notice(&format!(
            "enrolled totp user={} by={} via=2fad replaced={}",
            clean(ctx.user),
            clean(ctx.caller),
            state.otp.is_some()
        ));
        Response::Done {
            message: format!("Saved. {} will be asked for a code at login.", ctx.user),
        }
    }
}

impl Broker {
    fn ceremonies(&self) -> Result<&super::webauthn::Ceremonies, Response> {
        self.ceremonies.as_deref().ok_or_else(|| {
            Response::error(
                "unavailable",
                "security keys are not enabled on this system ([webauthn] enabled)",
            )
        })
    }

    fn link(ctx: &Ctx, prefix: &str, token: String) -> Response {
        let base = ctx.cfg.webauthn.public_url.trim_end_matches('/');
        Response::Link {
            url: format!("{base}/{prefix}/{token}"),
            token,
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
                "bad_request",
                "a key name needs 1 to 64 printable characters",
            );
        }
        match c.begin_register(ctx.cfg, ctx.store, ctx.key, ctx.user, name) {
            Ok(tok) => {
                ctx.audit.info(&format!(
                    "webauthn registration started user={} name={}",
                    clean(ctx.user),
                    clean(name)
                ));
                Self::link(ctx, "r", tok)
            }
            Err(e) => Response::error("bad_request", e),
        }
    }

    fn webauthn_login(&self, ctx: &mut Ctx) -> Response {
        let c = match self.ceremonies() {
            Ok(c) => c,
            Err(r) => return r,
        };
        match c.begin_login(ctx.cfg, ctx.store, ctx.user) {
            Ok(tok) => Self::link(ctx, "l", tok),
            Err(e) => Response::error("bad_request", e),
        }
    }

    fn webauthn_result(&self, ctx: &mut Ctx, token: &str) -> Response {
        use super::webauthn::Outcome;
        let c = match self.ceremonies() {
            Ok(c) => c,
            Err(r) => return r,
        };
        match c.result(token, ctx.user) {
            Outcome::Pending => Response::error("pending", "not approved yet"),
            Outcome::Approved(name) => {
                ctx.audit.info(&format!(
                    "webauthn ok user={} key={}",
                    clean(ctx.user),
                    clean(&name)
                ));
                Response::Done { message: name }
            }
            Outcome::Failed(e) => {
                ctx.audit.warning(&format!(
                    "webauthn failed user={}: {}",
                    clean(ctx.user),
                    crate::audit::detail(&e)
                ));
                Response::error("failed", e)
            }
        }
    }
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Status => "status",
        Op::TotpBegin { .. } => "totp_begin",
        Op::TotpFinish { .. } => "totp_finish",
        Op::Backup { .. } => "backup",
        Op::Remove { .. } => "remove",
        Op::WebauthnRegister { .. } => "webauthn_register",
        Op::WebauthnLogin => "webauthn_login",
        Op::WebauthnResult { .. } => "webauthn_result",
        Op::WebauthnList => "webauthn_list",
        Op::DevicesList => "devices_list",
        Op::DevicesRevoke { .. } => "devices_revoke",
        Op::WebauthnRemove { .. } => "webauthn_remove",
    }
}

struct Ctx<'a> {
    cfg: &'a Config,
    audit: &'a mut Audit,
    store: &'a mut Store,
    key: &'a HostKey,
    user: &'a str,
    caller: &'a str,
}

impl Ctx<'_> {
    /// `None` when `current` proves a factor; else the refusal to send.
    /// Root acting for another user needs no code.
    fn require_current(&mut self, current: Option<&str>, what: &str) -> Option<Response> {
        if self.caller == "root" && self.user != "root" {
            return None;
        }
        let Some(code) = current.and_then(normalize_code) else {
            return Some(Response::error(
                "needs_current",
                format!("to {what}, first enter a current code of your existing second factor"),
            ));
        };
        let login = Login {
            user: self.user,
            service: SERVICE,
            rhost: "",
            tty: "",
        };
        match flow::check_current(self.cfg, self.store, self.key, login, now(), &code) {
            Ok(Current::Accepted(f)) => {
                self.audit.info(&format!(
                    "broker current factor ok user={} factor={f}",
                    clean(self.user)
                ));
                None
            }
            Ok(Current::Rejected) => {
                self.audit.warning(&format!(
                    "broker current factor wrong user={} (counted as a failed attempt)",
                    clean(self.user)
                ));
                Some(Response::error(
                    "wrong_code",
                    "that is not a valid current code; nothing changed",
                ))
            }
            Ok(Current::Locked(s)) => Some(Response::error(
                "locked",
                format!(
                    "too many failed attempts; try again in {}",
                    flow::human_duration(s)
                ),
            )),
            Err(e) => Some(Response::error("unavailable", e)),
        }
    }
}

fn backup_codes(ctx: &mut Ctx, current: Option<&str>) -> Response {
    let state = match ctx.store.user_state(ctx.user) {
        Ok(s) => s,
        Err(e) => return Response::error("unavailable", e.to_string()),
    };
    if (state.used_backup > 0 || !state.unused_backup.is_empty())
        && let Some(r) = ctx.require_current(current, "replace your backup codes")
    {
        return r;
    }
    let codes = match backup::generate(ctx.cfg.backup.count as usize) {
        Ok(c) => c,
        Err(e) => return Response::error("unavailable", e.to_string()),
    };
    let hashes: Vec<[u8; 32]> = codes
        .iter()
        .map(|c| ctx.key.code_hash(ctx.user, c))
        .collect();
    let res = ctx.store.write().and_then(|tx| {
        tx.replace_backup_codes(ctx.user, &hashes, now())?;
        tx.commit()
    });
    if let Err(e) = res {
        return Response::error("unavailable", e.to_string());
    }
    ctx.audit.notice(&format!(
        "created {} backup codes user={} by={} via=2fad",
        codes.len(),
        clean(ctx.user),
        clean(ctx.caller)
    ));
    Response::BackupCodes {
        codes: codes.iter().map(|c| backup::format(c)).collect(),
    }
}

fn remove(ctx: &mut Ctx, method: &str, current: &str) -> Response {
    if !matches!(method, "totp" | "backup") {
        return Response::error("bad_request", "only totp and backup can be removed here");
    }
    if let Some(r) = ctx.require_current(Some(current), &format!("remove {method}")) {
        return r;
    }
    let res = ctx.store.write().and_then(|tx| {
        let n = match method {
            "totp" => usize::from(tx.remove_otp(ctx.user)?),
            _ => tx.remove_backup_codes(ctx.user)?,
        };
        tx.commit()?;
        Ok(n)
    });
    match res {
        Ok(0) => Response::error("bad_request", format!("you have no {method} to remove")),
        Ok(_) => {
            ctx.audit.notice(&format!(
                "removed {method} user={} by={} via=2fad",
                clean(ctx.user),
                clean(ctx.caller)
            ));
            Response::Done {
                message: format!("Removed {method}."),
            }
        }
        Err(e) => Response::error("unavailable", e.to_string()),
    }
}
