//! `2fa-enroll totp` and `2fa-enroll hotp`.

use super::output::{self, now};
use super::{CliError, CliResult, Ctx};
use clap::Args;
use p2fa_core::config::Algorithm;
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

fn secret_from(arg: Option<&str>) -> Result<(Zeroizing<Vec<u8>>, bool), CliError> {
    match arg {
        Some(text) => Ok((totp::decode_base32(text).map_err(CliError)?, true)),
        None => Ok((totp::generate_secret()?, false)),
    }
}

fn show(
    ctx: &Ctx,
    user: &str,
    secret: &[u8],
    params: &totp::OtpParams,
    counter: Option<u64>,
    no_qr: bool,
) {
    let issuer = ctx.cfg.issuer_name();
    let b32 = totp::encode_base32(secret);
    let uri = totp::otpauth_uri(&issuer, user, &b32, params, counter);
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
    let (secret, given) = secret_from(a.secret.as_deref())?;
    println!("Setting up a time-based code (TOTP) for user {user}.");
    if !given || !a.no_verify {
        show(ctx, &user, &secret, &params, None, a.no_qr);
    }
    let mut last_step = None;
    if !a.no_verify {
        let window = ctx.cfg.totp.window;
        match confirm(params.digits, |code| {
            totp::verify_totp(&secret, &params, now(), window, None, code)
        })? {
            // The confirming code is spent: it cannot be replayed at login.
            Some(step) => last_step = Some(step),
            None => return Err(CliError("no matching code; nothing was saved".into())),
        }
    }
    let rec = OtpRecord {
        kind: OtpKind::Totp,
        sealed: key.seal(&secret, &totp::seal_aad(&user))?,
        algorithm: params.algorithm,
        digits: params.digits,
        period: params.period,
        last_step,
        counter: 0,
        created_at: now(),
    };
    save(ctx, &mut store, &user, &rec)
}

pub fn hotp(ctx: &mut Ctx, a: HotpArgs) -> CliResult {
    let user = ctx.target(a.user.as_deref())?;
    let key = ctx.host_key()?;
    let mut store = ctx.open_store()?;
    let algorithm = a.algorithm.unwrap_or(ctx.cfg.totp.algorithm);
    let digits = a.digits.unwrap_or(ctx.cfg.totp.digits);
    let params = totp::OtpParams {
        algorithm,
        digits,
        period: 30,
    };
    let (secret, given) = secret_from(a.secret.as_deref())?;
    if a.counter > i64::MAX as u64 / 2 {
        return Err(CliError("--counter is too large".into()));
    }
    println!("Setting up a counter-based code (HOTP) for user {user}.");
    if !given || !a.no_verify {
        show(ctx, &user, &secret, &params, Some(a.counter), a.no_qr);
    }
    let mut counter = a.counter as i64;
    if !a.no_verify {
        let look_ahead = ctx.cfg.hotp.look_ahead;
        match confirm(digits, |code| {
            totp::verify_hotp(&secret, algorithm, digits, counter, look_ahead, code)
        })? {
            Some(c) => counter = c + 1,
            None => return Err(CliError("no matching code; nothing was saved".into())),
        }
    }
    let rec = OtpRecord {
        kind: OtpKind::Hotp,
        sealed: key.seal(&secret, &totp::seal_aad(&user))?,
        algorithm,
        digits,
        period: 30,
        last_step: None,
        counter,
        created_at: now(),
    };
    save(ctx, &mut store, &user, &rec)
}

fn save(
    ctx: &mut Ctx,
    store: &mut p2fa_core::store::Store,
    user: &str,
    rec: &OtpRecord,
) -> CliResult {
    let tx = store.write()?;
    let replaced = tx.user_state(user)?.otp.is_some();
    tx.put_otp(user, rec, now())?;
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
