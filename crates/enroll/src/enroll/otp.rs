//! `2fa-enroll totp` and `2fa-enroll hotp`.

use super::output::{self, now};
use super::{CliError, CliResult, Ctx};
use clap::Args;
use p2fa_core::config::Algorithm;
use p2fa_core::enrollment::{OtpSetup, Saved, save_otp};
use p2fa_core::factor::{normalize_code, totp};
use p2fa_core::store::{OtpKind, OtpRecord};
use zeroize::Zeroizing;

/// Wrong codes allowed while confirming a new token.
const CONFIRM_TRIES: usize = 3;

#[derive(Args, Debug)]
pub struct TotpArgs {
    /// Enroll this user instead of yourself (root).
    #[arg(long)]
    pub user: Option<String>,
    /// Use this base32 secret instead of generating one (hardware tokens, migration).
    #[arg(long, value_name = "BASE32")]
    pub secret: Option<String>,
    /// HMAC algorithm [default: from config, normally SHA1].
    #[arg(long, value_parser = parse_alg)]
    pub algorithm: Option<Algorithm>,
    /// Code length, 6..8 [default: from config, normally 6].
    #[arg(long, value_parser = clap::value_parser!(u32).range(6..=8))]
    pub digits: Option<u32>,
    /// Seconds per code, 15..300 [default: from config, normally 30].
    #[arg(long, value_parser = clap::value_parser!(u32).range(15..=300))]
    pub period: Option<u32>,
    /// Save without asking for a current code (admins provisioning tokens).
    #[arg(long)]
    pub no_verify: bool,
    /// Print the secret and URI but no QR code.
    #[arg(long)]
    pub no_qr: bool,
}

#[derive(Args, Debug)]
pub struct HotpArgs {
    /// Enroll this user instead of yourself (root).
    #[arg(long)]
    pub user: Option<String>,
    /// The token's base32 secret.
    #[arg(long, value_name = "BASE32")]
    pub secret: Option<String>,
    /// The token's next counter value.
    #[arg(long, default_value_t = 0)]
    pub counter: u64,
    /// HMAC algorithm [default: from config, normally SHA1].
    #[arg(long, value_parser = parse_alg)]
    pub algorithm: Option<Algorithm>,
    /// Code length, 6..8 [default: from config, normally 6].
    #[arg(long, value_parser = clap::value_parser!(u32).range(6..=8))]
    pub digits: Option<u32>,
    /// Save without asking for a code from the token.
    #[arg(long)]
    pub no_verify: bool,
    /// Print the secret and URI but no QR code.
    #[arg(long)]
    pub no_qr: bool,
}

impl TotpArgs {
    /// A new random secret for `user`, confirmed by a code (the menu).
    pub fn for_user(user: &str) -> TotpArgs {
        TotpArgs {
            user: Some(user.to_string()),
            secret: None,
            algorithm: None,
            digits: None,
            period: None,
            no_verify: false,
            no_qr: false,
        }
    }
}

fn parse_alg(s: &str) -> Result<Algorithm, String> {
    Algorithm::parse(s)
        .ok_or_else(|| format!("unknown algorithm {s:?}; use SHA1, SHA256 or SHA512"))
}

fn show(ctx: &Ctx, user: &str, setup: &OtpSetup, no_qr: bool) {
    let b32 = setup.base32();
    let uri = setup.uri(&ctx.cfg.issuer_name(), user);
    let params = &setup.params;
    let counter = (setup.kind == OtpKind::Hotp).then(|| setup.counter());
    if !no_qr && let Some(q) = p2fa_core::display::qr(&uri) {
        println!("Scan this QR code with your authenticator app:\n{q}");
    }
    let grouped: Zeroizing<String> = Zeroizing::new(
        b32.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
    );
    println!("Secret key: {}", grouped.as_str());
    println!("URI:        {}", uri.as_str());
    match counter {
        None => println!(
            "Settings:   time-based, {} digits, every {} s, {}",
            params.digits, params.period, params.algorithm
        ),
        Some(c) => println!(
            "Settings:   counter-based, {} digits, counter {c}, {}",
            params.digits, params.algorithm
        ),
    }
}

/// Asks for a code until `check` accepts one; `None` if the user gives up.
fn confirm<T>(
    digits: u32,
    mut check: impl FnMut(&str) -> Option<T>,
) -> Result<Option<T>, CliError> {
    for attempt in 1..=CONFIRM_TRIES {
        let Some(line) = output::read_line(&format!("Enter the {digits}-digit code to confirm: "))?
        else {
            return Ok(None);
        };
        let code = normalize_code(&line).unwrap_or_default();
        if let Some(v) = check(&code) {
            return Ok(Some(v));
        }
        if attempt < CONFIRM_TRIES {
            println!("That code does not match. Check the phone's clock and try the next code.");
        }
    }
    Ok(None)
}

pub fn totp(ctx: &mut Ctx, a: TotpArgs) -> CliResult {
    let user = ctx.target(a.user.as_deref())?;
    let key = ctx.host_key()?;
    let mut store = ctx.open_store()?;
    let params = totp::OtpParams {
        algorithm: a.algorithm.unwrap_or(ctx.cfg.totp.algorithm),
        digits: a.digits.unwrap_or(ctx.cfg.totp.digits),
        period: a.period.unwrap_or(ctx.cfg.totp.period),
    };
    let mut setup = OtpSetup::totp_with(params, a.secret.as_deref())?;
    println!("Setting up a time-based code (TOTP) for user {user}.");
    confirm_and_save(
        ctx,
        &mut store,
        &key,
        &user,
        &mut setup,
        &a.secret,
        a.no_verify,
        a.no_qr,
    )
}

pub fn hotp(ctx: &mut Ctx, a: HotpArgs) -> CliResult {
    let user = ctx.target(a.user.as_deref())?;
    let key = ctx.host_key()?;
    let mut store = ctx.open_store()?;
    let algorithm = a.algorithm.unwrap_or(ctx.cfg.totp.algorithm);
    let digits = a.digits.unwrap_or(ctx.cfg.totp.digits);
    let mut setup = OtpSetup::hotp(algorithm, digits, a.counter, a.secret.as_deref())?;
    println!("Setting up a counter-based code (HOTP) for user {user}.");
    confirm_and_save(
        ctx,
        &mut store,
        &key,
        &user,
        &mut setup,
        &a.secret,
        a.no_verify,
        a.no_qr,
    )
}

/// Shows the new token (unless a given secret is saved unconfirmed),
/// asks for a code from it (unless `--no-verify`), then saves it. The
/// confirming code is spent: it cannot be replayed at login.
#[allow(clippy::too_many_arguments)]
fn confirm_and_save(
    ctx: &mut Ctx,
    store: &mut p2fa_core::store::Store,
    key: &p2fa_core::crypto::HostKey,
    user: &str,
    setup: &mut OtpSetup,
    given_secret: &Option<String>,
    no_verify: bool,
    no_qr: bool,
) -> CliResult {
    if given_secret.is_none() || !no_verify {
        show(ctx, user, setup, no_qr);
    }
    if !no_verify {
        let digits = setup.params.digits;
        let confirmed = confirm(digits, |code| {
            setup.confirm(&ctx.cfg, now(), code).then_some(())
        })?;
        if confirmed.is_none() {
            return Err(CliError("no matching code; nothing was saved".into()));
        }
    }
    let rec = setup.record(key, user, now())?;
    save(ctx, store, user, &rec)
}

fn save(
    ctx: &mut Ctx,
    store: &mut p2fa_core::store::Store,
    user: &str,
    rec: &OtpRecord,
) -> CliResult {
    let tx = store.write()?;
    let replaced = matches!(
        save_otp(&tx, user, rec, now(), false)?,
        Saved::Stored { replaced: true }
    );
    tx.commit()?;
    ctx.audit.notice(&format!(
        "enrolled {} user={user} by={} replaced={replaced}",
        rec.kind.as_str(),
        ctx.invoker
    ));
    println!(
        "Saved{}. {user} will be asked for a code at login.",
        if replaced {
            " (the previous token no longer works)"
        } else {
            ""
        }
    );
    if store.status(user)?.backup_codes_remaining == 0 {
        println!("Tip: create backup codes for a lost phone: 2fa-enroll backup --user {user}");
    }
    Ok(())
}
