//! `init`, `status`, `remove`, `reset` and `unlock`.

use super::factor_args::Removable;
use super::output::{now, utc};
use super::{CliError, CliResult, Ctx};
use clap::Args;
use p2fa_core::audit::clean;
use p2fa_core::factor::FactorId;
use p2fa_core::store::UserStatus;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Show this user instead of yourself.
    #[arg(long, conflicts_with = "all")]
    pub user: Option<String>,
    /// Show every user in the store.
    #[arg(long)]
    pub all: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct UserArg {
    /// The user.
    #[arg(long)]
    pub user: String,
}

#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// Which factor to remove.
    pub what: Removable,
    /// Remove it from this user instead of yourself (root).
    #[arg(long)]
    pub user: Option<String>,
}

pub fn init(ctx: &mut Ctx) -> CliResult {
    if ctx.cfg.store == p2fa_core::config::StoreKind::Postgres {
        let now = p2fa_core::clock::unix_now();
        let line = p2fa_pg::open::init_fleet(&ctx.cfg, ctx.trust, env!("CARGO_PKG_VERSION"), now)?;
        println!("Store:    PostgreSQL, {line}");
    }
    let key = ctx.host_key()?;
    let mut store = ctx.open_store()?;
    let check = store.integrity_check()?;
    if check != "ok" {
        return Err(CliError(format!("store integrity check failed: {check}")));
    }
    println!("Host key: {}", ctx.cfg.key_file.display());
    if ctx.cfg.store == p2fa_core::config::StoreKind::Sqlite {
        println!("Store:    {} (integrity ok)", ctx.cfg.db.display());
    }
    let kf = ctx.cfg.key_file.display().to_string();
    match p2fa_core::keycheck::verify_or_pin(&mut store, &key, &kf).map_err(CliError)? {
        p2fa_core::keycheck::KeyCheck::Unproven(why) => println!(
            "Key check: not recorded ({why}); with a wrong key file the module cannot \
             tell users without a TOTP/HOTP token that their codes are not the problem"
        ),
        _ => println!("Key check: the store records this host key"),
    }
    Ok(())
}

pub fn migrate(ctx: &mut Ctx) -> CliResult {
    if ctx.cfg.store == p2fa_core::config::StoreKind::Postgres {
        let now = p2fa_core::clock::unix_now();
        let line = p2fa_pg::open::init_fleet(&ctx.cfg, ctx.trust, env!("CARGO_PKG_VERSION"), now)?;
        println!("Store: PostgreSQL, {line}");
        return Ok(());
    }
    let store = ctx.require_store()?;
    println!(
        "Store: {}, schema {}",
        ctx.cfg.db.display(),
        store.schema_version()?
    );
    Ok(())
}

pub fn status(ctx: &mut Ctx, a: StatusArgs) -> CliResult {
    // Check the name before touching the store. Without a store there is
    // nothing to show, and logins through pam_2fa are denied (unless
    // `unenrolled = allow`): an error that says how to make one, and
    // nothing is created.
    let target = if a.all {
        None
    } else {
        Some(ctx.target(a.user.as_deref())?)
    };
    let mut store = ctx.require_store()?;
    let names = match target {
        Some(t) => vec![t],
        None => store.users()?,
    };
    let statuses: Vec<UserStatus> = names
        .iter()
        .map(|n| store.status(n))
        .collect::<Result<_, _>>()?;
    if a.json {
        let v = if a.all {
            serde_json::to_string_pretty(&statuses)?
        } else {
            serde_json::to_string_pretty(&statuses[0])?
        };
        println!("{v}");
        return Ok(());
    }
    let duo_by_all = duo_by_all(&ctx.cfg);
    for s in &statuses {
        print_status(s, duo_by_all);
    }
    if statuses.is_empty() {
        println!("No users in the store yet.");
    }
    Ok(())
}

/// Duo is offered to every user (`duo.users = "all"`), not only to those
/// with a `2fa-enroll duo` row.
pub(super) fn duo_by_all(cfg: &p2fa_core::config::Config) -> bool {
    cfg.duo.enabled && cfg.duo.users == p2fa_core::config::DuoUsers::All
}

/// `duo_by_all`: see [`duo_by_all`]; a user without a Duo row is then
/// still offered Duo when Duo knows them.
pub(super) fn print_status(s: &UserStatus, duo_by_all: bool) {
    println!("{}:", s.user);
    if !s.enrolled {
        println!("  no second factor enrolled");
    }
    if let Some(o) = &s.otp {
        let detail = match (o.period, o.counter) {
            (Some(p), _) => format!("every {p} s"),
            (_, Some(c)) => format!("next counter {c}"),
            _ => String::new(),
        };
        println!(
            "  {}: {} digits, {}, {}, enrolled {}",
            o.kind.to_uppercase(),
            o.digits,
            o.algorithm,
            detail,
            utc(o.enrolled_at)
        );
    }
    if s.backup_codes_remaining > 0 || s.backup_codes_used > 0 {
        println!(
            "  backup codes: {} left, {} used",
            s.backup_codes_remaining, s.backup_codes_used
        );
    }
    if let Some(p) = &s.sms {
        println!("  SMS codes to: {}", clean(p));
    }
    if let Some(e) = &s.email {
        println!("  e-mail codes to: {}", clean(e));
    }
    if s.duo {
        println!("  Duo: enrolled");
    } else if duo_by_all {
        println!(
            "  Duo: offered by duo.users = \"all\" (when Duo knows the user and their groups may use duo)"
        );
    }
    if s.questions > 0 {
        println!("  security questions: {}", s.questions);
    }
    if s.webauthn > 0 {
        println!(
            "  security keys (WebAuthn): {} (2fa-enroll webauthn list)",
            s.webauthn
        );
    }
    if s.local_keys > 0 {
        println!(
            "  local security keys (console): {} (2fa-enroll webauthn list)",
            s.local_keys
        );
    }
    if let Some(d) = &s.default_factor {
        println!("  default (Enter at the prompt): {}", clean(d));
    }
    if s.failures > 0 {
        println!("  failed attempts since last success: {}", s.failures);
    }
    if let Some(t) = s.locked_until.filter(|t| *t > now()) {
        println!(
            "  LOCKED until {} (2fa-enroll unlock --user {})",
            utc(t),
            s.user
        );
    }
    // Service and rhost came from the PAM caller (rhost from the network):
    // cleaned, so a hostile name cannot drive the admin's terminal.
    match &s.last_success {
        Some(l) => println!(
            "  last 2FA login: {} via {} from {} ({})",
            utc(l.time),
            clean(&l.service),
            if l.rhost.is_empty() {
                "local".to_string()
            } else {
                clean(&l.rhost)
            },
            clean(&l.factor)
        ),
        None => println!("  last 2FA login: never"),
    }
    // Never silently: a key that may have been copied stays on show until
    // an admin resets the user.
    for w in &s.key_warnings {
        println!(
            "  WARNING: possible clone of security key {:?} at {}: it presented signature counter {}, \
             not above the stored {}; that login was refused",
            p2fa_core::audit::printable(&w.key, 64),
            utc(w.at),
            w.presented,
            w.stored
        );
    }
}

pub fn remove(ctx: &mut Ctx, a: RemoveArgs) -> CliResult {
    let user = ctx.target(a.user.as_deref())?;
    let mut store = ctx.require_store()?;
    let tx = store.write()?;
    let removed = match a.what.factor() {
        FactorId::Totp | FactorId::Hotp => tx.remove_otp(&user)?,
        FactorId::Backup => tx.remove_backup_codes(&user)? > 0,
        ch @ (FactorId::Sms | FactorId::Email) => tx.remove_contact(&user, ch)?,
        FactorId::Duo => tx.remove_duo(&user)?,
        FactorId::Questions => tx.remove_questions(&user)?,
        other => return Err(CliError(format!("{other} cannot be removed this way"))),
    };
    let left = tx.user_state(&user)?;
    // A default that names a removed factor would only confuse the prompt.
    let default = left.default_factor.as_deref();
    let default_gone = match default.and_then(FactorId::from_menu_word) {
        Some(FactorId::Sms) => left.sms.is_none() && !left.duo,
        Some(FactorId::Email) => left.email.is_none(),
        Some(FactorId::DuoPush | FactorId::DuoPhone) => !left.duo,
        Some(FactorId::Questions) => left.questions == 0,
        _ => false,
    };
    if default_gone {
        tx.set_default_factor(&user, None, now())?;
    }
    tx.commit()?;
    let what = a.what.noun();
    if !removed {
        return Err(CliError(format!("{user} has no {what}")));
    }
    ctx.audit
        .notice(&format!("removed {what} user={user} by={}", ctx.invoker));
    println!("Removed the {what} of {user}.");
    if !left.has_factor() {
        println!(
            "{user} now has no second factor: logins are {} (config `unenrolled`).",
            if ctx.cfg.unenrolled == p2fa_core::config::Unenrolled::Allow {
                "allowed without one"
            } else {
                "denied"
            }
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ResetArgs {
    /// The user.
    #[arg(long)]
    pub user: String,
    /// Reset only this method (same as `remove METHOD --user U`).
    #[arg(long, value_name = "METHOD")]
    pub method: Option<Removable>,
}

pub fn reset(ctx: &mut Ctx, a: ResetArgs) -> CliResult {
    if let Some(what) = a.method {
        return remove(
            ctx,
            RemoveArgs {
                what,
                user: Some(a.user),
            },
        );
    }
    let user = ctx.target(Some(&a.user))?;
    let mut store = ctx.require_store()?;
    let tx = store.write()?;
    let existed = tx.reset_user(&user)?;
    tx.commit()?;
    if !existed {
        return Err(CliError(format!(
            "{user} has nothing stored; nothing to reset"
        )));
    }
    ctx.audit
        .notice(&format!("reset all factors user={user} by={}", ctx.invoker));
    println!(
        "Removed every factor and counter of {user}. Enroll again with: 2fa-enroll totp --user {user}"
    );
    Ok(())
}

pub fn unlock(ctx: &mut Ctx, a: UserArg) -> CliResult {
    let user = ctx.target(Some(&a.user))?;
    let mut store = ctx.require_store()?;
    let tx = store.write()?;
    let existed = tx.unlock(&user)?;
    tx.commit()?;
    if !existed {
        return Err(CliError(format!(
            "{user} has nothing stored; nothing to unlock"
        )));
    }
    ctx.audit
        .notice(&format!("cleared lockout user={user} by={}", ctx.invoker));
    println!("Cleared failed attempts and lockout of {user}.");
    Ok(())
}
