//! `2fa-enroll policy check` and `2fa-enroll devices`.

use super::output::{now, utc};
use super::{CliError, CliResult, Ctx};
use clap::{Args, Subcommand};
use p2fa_core::audit::clean;
use p2fa_core::config::Unenrolled;
use p2fa_core::factor::FactorId;
use p2fa_core::policy::{self, NoFactor};

#[derive(Args, Debug)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub what: PolicyCmd,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Explain what a login of USER on SERVICE would do, and why.
    Check {
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "sshd")]
        service: String,
    },
}

#[derive(Args, Debug)]
pub struct DevicesArgs {
    #[command(subcommand)]
    pub what: DevicesCmd,
}

#[derive(Subcommand, Debug)]
pub enum DevicesCmd {
    /// List remembered devices (yours, a user's, or everyone's with --all).
    List {
        #[arg(long, conflicts_with = "all")]
        user: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Forget one remembered device (by ID) or all of a user's (--all).
    Revoke {
        /// The ID shown by `devices list`.
        #[arg(required_unless_present = "all")]
        id: Option<i64>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        user: Option<String>,
    },
}

pub fn policy(ctx: &mut Ctx, a: PolicyArgs) -> CliResult {
    let PolicyCmd::Check { user, service } = a.what;
    let user = ctx.target(Some(&user))?;
    let cfg = &ctx.cfg;
    let groups = p2fa_core::users::groups(&user);
    println!("user {user} on service {service}");
    println!(
        "  groups: {}",
        if groups.is_empty() {
            "-".into()
        } else {
            groups.join(", ")
        }
    );
    if let Some(why) = policy::exempt(cfg, &user, &groups) {
        println!(
            "  exempt ({why}): not asked for a second factor (PAM_IGNORE: the rest of the stack decides; logged)"
        );
        return Ok(());
    }
    let (allowed, source) = policy::allowed_methods(cfg, &groups);
    println!(
        "  allowed methods: {} (from {source})",
        allowed
            .as_ref()
            .map(|a| a.join(", "))
            .unwrap_or_else(|| "all".into())
    );
    let Some(mut store) = ctx.existing_store()? else {
        // What the module does before `2fa-enroll init`: nobody has a
        // factor, and only `unenrolled = allow` lets anyone through.
        println!("  store: {}", ctx.no_store());
        let verdict = match cfg.unenrolled_for(&service) {
            Unenrolled::Allow => {
                "allows without a factor (no store yet, unenrolled = allow); PAM_IGNORE, so the rest of the stack decides"
            }
            Unenrolled::Grace => {
                "DENIES: no store yet (unavailable; a grace period needs the store to count from)"
            }
            Unenrolled::Deny => "DENIES: no store yet (unavailable)",
        };
        println!("  result: {verdict}");
        return Ok(());
    };
    let state = store.user_state(&user)?;
    let mut usable = Vec::new();
    let mut blocked = Vec::new();
    let mut consider = |f: FactorId, has: bool, enabled: bool| {
        if !has {
            return;
        }
        if !enabled {
            blocked.push(format!("{f} (disabled in config)"));
        } else if !policy::allows_factor(&allowed, f) {
            blocked.push(format!("{f} (not allowed for this user)"));
        } else {
            usable.push(f.to_string());
        }
    };
    let otp = state
        .otp
        .as_ref()
        .map_or(FactorId::Totp, |o| o.kind.factor());
    consider(otp, state.otp.is_some(), true);
    consider(FactorId::Backup, !state.unused_backup.is_empty(), true);
    consider(FactorId::Sms, state.sms.is_some(), cfg.sms.enabled);
    consider(FactorId::Email, state.email.is_some(), cfg.email.enabled);
    consider(FactorId::Duo, state.duo, cfg.duo.enabled);
    consider(
        FactorId::Questions,
        state.questions > 0,
        cfg.questions.enabled,
    );
    // `duo.users = "all"`: Duo without a row, when Duo knows the user.
    let duo_all = !state.duo
        && super::admin::duo_by_all(cfg)
        && policy::allows_factor(&allowed, FactorId::Duo);
    if duo_all && state.is_enrolled() {
        usable.push("duo (duo.users = all, when Duo knows the user)".into());
    }
    println!(
        "  enrolled and usable: {}",
        if usable.is_empty() {
            "none".into()
        } else {
            usable.join(", ")
        }
    );
    if !blocked.is_empty() {
        println!("  enrolled but not usable: {}", blocked.join(", "));
    }
    if state.locked_until > now() {
        println!(
            "  LOCKED until {} (2fa-enroll unlock --user {user})",
            utc(state.locked_until)
        );
    }
    let verdict = if !usable.is_empty() {
        let remember = if cfg.remembers(&service) {
            format!(
                "; a success is remembered for {} h per source",
                cfg.remember.hours
            )
        } else {
            String::new()
        };
        format!("asks for one of: {}{remember}", usable.join(", "))
    } else if state.is_enrolled() {
        "DENIES: enrolled, but no usable factor".into()
    } else {
        let mode = cfg.unenrolled_for(&service);
        let first_seen = store_first_seen(&mut store, &user)?;
        let inline =
            cfg.inline_enrollment_for(&service) && policy::allows_factor(&allowed, FactorId::Totp);
        let inline_note = if inline {
            " (and offers TOTP setup at login)"
        } else {
            ""
        };
        let verdict = match (mode, first_seen) {
            (Unenrolled::Grace, None) => format!(
                "grace: allows without a factor for {} days from the first login attempt{inline_note}",
                cfg.policy.grace_days
            ),
            (_, fs) => match policy::without_factor(cfg, &service, fs.unwrap_or(now()), now()) {
                NoFactor::Allow => {
                    format!("allows without a factor (unenrolled = allow){inline_note}")
                }
                NoFactor::Grace { days_left } => {
                    format!(
                        "allows without a factor, grace period: {days_left} day(s) left{inline_note}"
                    )
                }
                NoFactor::GraceOver if inline => {
                    "grace period over: requires TOTP setup at login".into()
                }
                NoFactor::GraceOver => "DENIES: grace period over, no factor".into(),
                NoFactor::Deny if inline => "requires TOTP setup at login (no factor yet)".into(),
                NoFactor::Deny => "DENIES: no factor enrolled (unenrolled = deny)".into(),
            },
        };
        let verdict = if verdict.starts_with("allows") || verdict.starts_with("grace:") {
            format!("{verdict}; PAM_IGNORE, so the rest of the stack decides")
        } else {
            verdict
        };
        if duo_all {
            format!(
                "asks for duo (duo.users = all) when Duo knows the user; when Duo does not: {verdict}; \
                 when Duo cannot be reached: duo.failmode"
            )
        } else {
            verdict
        }
    };
    println!("  result: {verdict}");
    Ok(())
}

fn store_first_seen(
    store: &mut p2fa_core::store::Store,
    user: &str,
) -> Result<Option<i64>, CliError> {
    Ok(store.status(user)?.first_seen)
}

pub fn devices(ctx: &mut Ctx, a: DevicesArgs) -> CliResult {
    match a.what {
        DevicesCmd::List { user, all } => {
            let who = if all {
                None
            } else {
                Some(ctx.target(user.as_deref())?)
            };
            let Some(store) = ctx.existing_store()? else {
                println!("No remembered devices ({}).", ctx.no_store());
                return Ok(());
            };
            let list = store.remembered_list(who.as_deref(), now())?;
            if list.is_empty() {
                println!("No remembered devices.");
            }
            for r in list {
                println!(
                    "{:>5}  {}  {}  {}  since {}  until {}  ({})",
                    r.id,
                    r.user,
                    clean(&r.service),
                    clean(&r.source).replace('_', " "),
                    utc(r.created_at),
                    utc(r.expires_at),
                    clean(&r.factor)
                );
            }
            Ok(())
        }
        DevicesCmd::Revoke { id, all, user } => {
            let user = ctx.target(user.as_deref())?;
            let mut store = ctx.require_store()?;
            let tx = store.write()?;
            let n = tx.revoke(&user, if all { None } else { id })?;
            tx.commit()?;
            if n == 0 {
                return Err(CliError(match id {
                    Some(id) if !all => format!("{user} has no remembered device {id}"),
                    _ => format!("{user} has no remembered devices"),
                }));
            }
            ctx.audit.notice(&format!(
                "revoked {n} remembered device(s) user={user} by={}",
                ctx.invoker
            ));
            println!(
                "Revoked {n} remembered device(s) of {user}; the next login asks for a second factor."
            );
            Ok(())
        }
    }
}
