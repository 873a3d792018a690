//! `2fa-enroll sms`, `email`, `duo` and `default`.
//!
//! A phone number or address is saved only after the user types back a
//! code sent to it, so a typo never becomes a factor that silently locks
//! someone out. Enrollment codes share the store's hourly send limit with
//! login codes.

use super::factor_args::DefaultArg;
use super::output::{self, now};
use super::{CliError, CliResult, Ctx};
use clap::Args;
use p2fa_core::audit::printable;
use p2fa_core::factor::{FactorId, normalize_code};
use p2fa_core::store::{Purpose, SentCheck, SentScope};
use p2fa_net::delivery::mask;
use p2fa_net::network::{DuoPreauth, Live, Network};
use p2fa_net::{confirm, email, sms};

/// Wrong codes allowed while confirming a phone number or address.
const CONFIRM_TRIES: usize = 3;

#[derive(Args, Debug)]
pub struct SmsArgs {
    /// Phone number with country code, e.g. +1 555 123 4567.
    #[arg(long, value_name = "+NUMBER")]
    pub phone: String,
    /// Enroll this user instead of yourself (root).
    #[arg(long)]
    pub user: Option<String>,
    /// Save without sending a confirmation code (admins who know the number).
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Args, Debug)]
pub struct EmailArgs {
    /// E-mail address the codes go to.
    #[arg(long, value_name = "ADDRESS")]
    pub address: String,
    /// Enroll this user instead of yourself (root).
    #[arg(long)]
    pub user: Option<String>,
    /// Save without sending a confirmation code.
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Args, Debug)]
pub struct DuoArgs {
    /// Enroll this user instead of yourself (root).
    #[arg(long)]
    pub user: Option<String>,
    /// Save without asking Duo whether it knows the user.
    #[arg(long)]
    pub no_check: bool,
}

#[derive(Args, Debug)]
pub struct DefaultArgs {
    /// What pressing Enter at the login prompt starts.
    pub factor: DefaultArg,
    /// Set it for this user instead of yourself (root).
    #[arg(long)]
    pub user: Option<String>,
}

pub fn sms(ctx: &mut Ctx, a: SmsArgs) -> CliResult {
    if !ctx.cfg.sms.enabled {
        return Err(not_enabled("SMS codes", "sms", ctx));
    }
    let phone = sms::normalize_phone(&a.phone).map_err(CliError)?;
    contact(ctx, FactorId::Sms, a.user.as_deref(), &phone, a.no_verify)
}

pub fn email(ctx: &mut Ctx, a: EmailArgs) -> CliResult {
    if !ctx.cfg.email.enabled {
        return Err(not_enabled("E-mail codes", "email", ctx));
    }
    let address = email::normalize_address(&a.address).map_err(CliError)?;
    contact(
        ctx,
        FactorId::Email,
        a.user.as_deref(),
        &address,
        a.no_verify,
    )
}

fn not_enabled(what: &str, section: &str, ctx: &Ctx) -> CliError {
    CliError(format!(
        "{what} are not enabled: set `enabled = true` (and the gateway settings) in the [{section}] section of {}",
        ctx.config_path.display()
    ))
}

/// `ch` is one of [`FactorId::CHANNELS`].
fn contact(
    ctx: &mut Ctx,
    ch: FactorId,
    user: Option<&str>,
    address: &str,
    no_verify: bool,
) -> CliResult {
    let (what, _) = confirm::channel(&ctx.cfg, ch).map_err(|e| CliError(e.0))?;
    let user = ctx.target(user)?;
    let key = ctx.host_key()?;
    let mut store = ctx.open_store()?;
    if !no_verify {
        let masked = confirm::send(
            &ctx.cfg,
            ctx.trust,
            &mut store,
            &key,
            &user,
            ch,
            address,
            Purpose::Enroll,
            &SentScope::HOST,
        )
        .map_err(|e| CliError(e.0))?;
        println!("Sent a code to {masked}.");
        let mut confirmed = false;
        for _ in 0..CONFIRM_TRIES {
            let Some(line) = output::read_line("Enter the code you received: ")? else {
                return Err(CliError(format!(
                    "no code entered; the {what} was not saved"
                )));
            };
            let Some(typed) = normalize_code(&line) else {
                eprintln!("Type only the digits of the code.");
                continue;
            };
            match confirm::check(
                &ctx.cfg,
                &mut store,
                &key,
                &user,
                ch,
                address,
                &typed,
                Purpose::Enroll,
                &SentScope::HOST,
            )
            .map_err(|e| CliError(e.0))?
            {
                SentCheck::Accepted => {
                    confirmed = true;
                    break;
                }
                SentCheck::Wrong => eprintln!("That code is not right."),
                SentCheck::NoLiveCode => {
                    return Err(CliError(format!(
                        "the code expired or had too many wrong tries; the {what} was not saved. Run the command again."
                    )));
                }
            }
        }
        if !confirmed {
            return Err(CliError(format!("not confirmed; the {what} was not saved")));
        }
    }
    let old = confirm::save(&mut store, &user, ch, address)?;
    ctx.audit.notice(&format!(
        "enrolled {} user={user} by={} verified={}{}",
        ch.as_str(),
        ctx.invoker,
        !no_verify,
        if old.is_some() { " (replaced)" } else { "" }
    ));
    println!(
        "Saved {} as the {what} of {user}{}.",
        mask(ch, address),
        if old.is_some() {
            " (replacing the old one)"
        } else {
            ""
        }
    );
    Ok(())
}

pub fn duo(ctx: &mut Ctx, a: DuoArgs) -> CliResult {
    if !ctx.cfg.duo.enabled {
        return Err(not_enabled("Duo logins", "duo", ctx));
    }
    let user = ctx.target(a.user.as_deref())?;
    let username = ctx.cfg.duo.username(&user).to_string();
    if !a.no_check {
        match Live::new(ctx.trust).duo_preauth(&ctx.cfg, &username) {
            Ok(DuoPreauth::Auth(devices)) => {
                println!("Duo knows {username}; devices:");
                for d in &devices {
                    let caps: Vec<&str> = [("push", d.push), ("phone", d.phone), ("sms", d.sms)]
                        .iter()
                        .filter(|(_, on)| *on)
                        .map(|(n, _)| *n)
                        .collect();
                    println!("  {} ({})", printable(&d.name, 80), caps.join(", "));
                }
            }
            Ok(DuoPreauth::Allow(_)) => {
                println!("Duo lets {username} in without a prompt (bypass status in Duo).")
            }
            Ok(DuoPreauth::Enroll(msg)) => println!(
                "{username} has not finished enrolling in Duo yet: {}",
                printable(&msg, 200)
            ),
            Ok(DuoPreauth::Deny(msg)) => {
                return Err(CliError(format!(
                    "Duo denies {username}: {}; nothing saved",
                    printable(&msg, 200)
                )));
            }
            Err(f) => {
                return Err(CliError(format!(
                    "cannot check {username} with Duo: {}; nothing saved (use --no-check to save anyway)",
                    f.detail
                )));
            }
        }
    }
    // Logins need the host key even for Duo (it seals nothing here, but
    // the module refuses to run without one): create it like every
    // enrollment does.
    ctx.host_key()?;
    let mut store = ctx.open_store()?;
    let tx = store.write()?;
    tx.set_duo(&user, now())?;
    tx.commit()?;
    ctx.audit
        .notice(&format!("enrolled duo user={user} by={}", ctx.invoker));
    println!("{user} now logs in with Duo (as Duo user {username}).");
    Ok(())
}

pub fn default(ctx: &mut Ctx, a: DefaultArgs) -> CliResult {
    let user = ctx.target(a.user.as_deref())?;
    let mut store = ctx.open_store()?;
    let tx = store.write()?;
    let state = tx.user_state(&user)?;
    let name = a.factor.name();
    let has = match a.factor.factor() {
        Some(FactorId::DuoPush | FactorId::DuoPhone) => state.duo,
        Some(FactorId::Sms) => state.sms.is_some() || state.duo,
        Some(FactorId::Email) => state.email.is_some(),
        Some(FactorId::Questions) => state.questions > 0,
        Some(_) => false,
        None => true,
    };
    if !has {
        // The command that enrolls it: `duo` for a push or a call.
        let enroll = a
            .factor
            .factor()
            .and_then(FactorId::method)
            .map_or(name, FactorId::as_str);
        return Err(CliError(format!(
            "{user} has not enrolled {name}; enroll it first (2fa-enroll {enroll})"
        )));
    }
    let value = a.factor.factor().map(|_| name);
    tx.set_default_factor(&user, value, now())?;
    tx.commit()?;
    ctx.audit.notice(&format!(
        "default factor user={user} factor={name} by={}",
        ctx.invoker
    ));
    match value {
        Some(v) => println!("Pressing Enter at {user}'s login prompt now starts {v}."),
        None => println!("{user} has no default factor now."),
    }
    Ok(())
}
