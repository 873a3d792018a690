//! `2fa-enroll import google-authenticator|oath|pam-u2f`: a dry run by
//! default (a report per user, nothing written, no key or store created);
//! `--apply` writes every importable user in one transaction, with the
//! same store operations as `totp`, `hotp` and `backup`. A file with a
//! malformed line is refused as a whole. Secrets are never printed.

use super::output::now;
use super::{CliError, CliResult, Ctx};
use crate::audit::clean;
use crate::import::{self, Imported, LineError, OtpImport, Parsed};
use crate::store::{OtpKind, OtpRecord, Store, UserState};
use crate::users;
use clap::{Args, Subcommand};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Files larger than this are not credential files.
const MAX_FILE: u64 = 4 * 1024 * 1024;

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub what: ImportWhat,
    /// Write to the store. Without it: a dry run that reports, per user,
    /// what would be done.
    #[arg(long, global = true)]
    pub apply: bool,
}

#[derive(Subcommand, Debug)]
pub enum ImportWhat {
    /// A ~/.google_authenticator file: the secret (TOTP or HOTP) and the
    /// scratch codes, which become backup codes.
    GoogleAuthenticator {
        /// Whose file it is [default: you].
        #[arg(long)]
        user: Option<String>,
        /// The file [default: ~USER/.google_authenticator].
        file: Option<PathBuf>,
    },
    /// A pam_oath usersfile: HOTP and TOTP tokens of many users.
    Oath {
        /// Import only this user's token.
        #[arg(long)]
        user: Option<String>,
        /// The usersfile.
        #[arg(default_value = "/etc/users.oath")]
        file: PathBuf,
    },
    /// A pam_u2f authfile: checked and counted per user; these credentials
    /// cannot move to WebAuthn (see the README), so --apply refuses.
    PamU2f {
        /// Report only this user.
        #[arg(long)]
        user: Option<String>,
        /// The authfile (e.g. /etc/u2f_mappings or ~/.config/Yubico/u2f_keys).
        file: PathBuf,
    },
}

pub fn run(ctx: &mut Ctx, a: ImportArgs) -> CliResult {
    match a.what {
        ImportWhat::GoogleAuthenticator { user, file } => {
            let user = user.unwrap_or_else(|| ctx.invoker.clone());
            if !users::valid_name(&user) {
                return Err(CliError(format!("{user:?} is not a valid user name")));
            }
            let path = match file {
                Some(f) => f,
                None => nix::unistd::User::from_name(&user)
                    .ok()
                    .flatten()
                    .map(|u| u.dir.join(".google_authenticator"))
                    .ok_or_else(|| {
                        CliError(format!(
                            "no such user: {user} (so no ~{user}/.google_authenticator)"
                        ))
                    })?,
            };
            let (bytes, meta) = read(&path)?;
            let parsed = match import::text(&bytes) {
                Ok(t) => import::google::parse(t, &user),
                Err(e) => failed(e),
            };
            let mut file_notes = private_notes(&meta);
            if let Ok(Some(owner)) = nix::unistd::User::from_name(&user)
                && meta.uid() != owner.uid.as_raw()
                && meta.uid() != 0
            {
                file_notes.push(format!(
                    "the file belongs to uid {}, not to {user}",
                    meta.uid()
                ));
            }
            import_otp(
                ctx,
                "google-authenticator",
                &path,
                parsed,
                &file_notes,
                a.apply,
            )
        }
        ImportWhat::Oath { user, file } => {
            let (bytes, meta) = read(&file)?;
            let mut parsed = match import::text(&bytes) {
                Ok(t) => import::oath::parse(t),
                Err(e) => failed(e),
            };
            only(&mut parsed.entries, user.as_deref(), &file, |e| &e.user)?;
            import_otp(ctx, "oath", &file, parsed, &private_notes(&meta), a.apply)
        }
        ImportWhat::PamU2f { user, file } => {
            let (bytes, _) = read(&file)?;
            let mut parsed = match import::text(&bytes) {
                Ok(t) => import::u2f::parse(t),
                Err(e) => failed(e),
            };
            only(&mut parsed.entries, user.as_deref(), &file, |e| &e.user)?;
            report_u2f(ctx, &file, parsed, a.apply)
        }
    }
}

fn failed<T>(e: LineError) -> Parsed<T> {
    Parsed {
        entries: Vec::new(),
        errors: vec![e],
    }
}

/// Reads a credential file: a regular file (never a FIFO or a device,
/// which could block or never end), at most [`MAX_FILE`] bytes.
fn read(path: &Path) -> Result<(Vec<u8>, std::fs::Metadata), CliError> {
    let fail = |e: &dyn std::fmt::Display| CliError(format!("{}: {e}", path.display()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| fail(&e))?;
    let meta = f.metadata().map_err(|e| fail(&e))?;
    if !meta.is_file() {
        return Err(fail(&"not a regular file"));
    }
    let mut bytes = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(&e))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(fail(&format!("larger than {} MiB", MAX_FILE >> 20)));
    }
    Ok((bytes, meta))
}

/// A secret file others can read may have leaked.
fn private_notes(meta: &std::fs::Metadata) -> Vec<String> {
    let mode = meta.mode() & 0o777;
    if mode & 0o077 == 0 {
        return Vec::new();
    }
    vec![format!(
        "the file is accessible to others (mode {mode:04o}): its secrets may be known; consider enrolling these users anew"
    )]
}

/// `--user NAME` for files of many users: keep only NAME's entry.
fn only<T>(
    entries: &mut Vec<T>,
    user: Option<&str>,
    path: &Path,
    name: impl Fn(&T) -> &String,
) -> CliResult {
    let Some(user) = user else { return Ok(()) };
    if !users::valid_name(user) {
        return Err(CliError(format!("{user:?} is not a valid user name")));
    }
    entries.retain(|e| name(e) == user);
    if entries.is_empty() {
        return Err(CliError(format!("{}: no entry for {user}", path.display())));
    }
    Ok(())
}

/// `FILE:LINE: problem` for each bad line, then the refusal.
fn refuse(path: &Path, errors: &[LineError]) -> CliError {
    for e in errors {
        eprintln!("{}:{}: {}", path.display(), e.line, e.msg);
    }
    CliError(format!(
        "{} malformed line(s) in {}: nothing was imported; fix them and run again",
        errors.len(),
        path.display()
    ))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn token(o: &OtpImport) -> String {
    match o.kind {
        OtpKind::Totp => format!(
            "a TOTP token ({} digits, every {} s, {})",
            o.digits,
            o.period,
            o.algorithm.as_str()
        ),
        OtpKind::Hotp => format!(
            "an HOTP token ({} digits, next counter {}, {})",
            o.digits,
            o.counter,
            o.algorithm.as_str()
        ),
    }
}

/// What importing `u` does, given what the user has now.
fn describe(u: &Imported, now_state: &UserState) -> (String, Vec<String>) {
    let mut what = Vec::new();
    if let Some(o) = &u.otp {
        what.push(token(o));
    }
    if !u.backup.is_empty() {
        what.push(format!(
            "{} as backup codes",
            plural(u.backup.len(), "scratch code", "scratch codes")
        ));
    }
    let mut replaces = Vec::new();
    if u.otp.is_some()
        && let Some(old) = &now_state.otp
    {
        replaces.push(format!(
            "the current {} token",
            old.kind.as_str().to_uppercase()
        ));
    }
    if !u.backup.is_empty() && !now_state.unused_backup.is_empty() {
        replaces.push(format!(
            "the {}",
            plural(
                now_state.unused_backup.len(),
                "unused backup code",
                "unused backup codes"
            )
        ));
    }
    let mut text = what.join(" and ");
    if !replaces.is_empty() {
        text.push_str(&format!("; replaces {}", replaces.join(" and ")));
    }
    (text, replaces)
}

/// google-authenticator kept a window per user; here it is global.
fn window_note(ctx: &Ctx, o: &OtpImport) -> Option<String> {
    let w = o.window?;
    let conf = ctx.config_path.display();
    match o.kind {
        OtpKind::Totp => {
            let ours = ctx.cfg.totp.window;
            (w != 2 * ours + 1).then(|| {
                format!(
                    "WINDOW_SIZE {w} (codes from {} step(s) before to {} after) differs from totp.window = {ours} (±{ours}), which applies to all users ({conf})",
                    (w - 1) / 2,
                    w / 2
                )
            })
        }
        OtpKind::Hotp => {
            let ours = ctx.cfg.hotp.look_ahead;
            (w != ours).then(|| {
                format!(
                    "WINDOW_SIZE {w} (the next {w} counters) differs from hotp.look_ahead = {ours}, which applies to all users ({conf})"
                )
            })
        }
    }
}

fn import_otp(
    ctx: &mut Ctx,
    source: &str,
    path: &Path,
    parsed: Parsed<Imported>,
    file_notes: &[String],
    apply: bool,
) -> CliResult {
    let Parsed { entries, errors } = parsed;
    let writing = apply && errors.is_empty();
    println!("{source} file {}:", path.display());
    for n in file_notes {
        println!("  note: {n}");
    }
    let mut todo: Vec<Imported> = Vec::new();
    for u in entries {
        if !users::exists(&u.user) {
            println!(
                "{}: skipped: no such user on this system (line {})",
                u.user, u.line
            );
        } else if u.otp.is_none() && u.backup.is_empty() {
            println!("{}: nothing to import (no token, no scratch codes)", u.user);
            for n in &u.notes {
                println!("  note: {n}");
            }
        } else {
            todo.push(u);
        }
    }
    if !writing {
        // What each user has now, from the store if there is one; a dry
        // run creates nothing.
        let mut store = if ctx.cfg.db.exists() {
            match Store::open_existing(&ctx.cfg.db, ctx.cfg.busy_timeout_ms) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!(
                        "warning: cannot read the store, so current factors are not shown: {e}"
                    );
                    None
                }
            }
        } else {
            None
        };
        for u in &todo {
            let state = match store.as_mut() {
                Some(s) => s.user_state(&u.user)?,
                None => UserState::default(),
            };
            let (text, _) = describe(u, &state);
            println!("{}: would import {text}", u.user);
            print_notes(ctx, u);
        }
        if !errors.is_empty() {
            return Err(refuse(path, &errors));
        }
        if todo.is_empty() {
            println!("Dry run: nothing to import.");
        } else {
            println!(
                "Dry run: nothing was written. Run again with --apply to import {}.",
                plural(todo.len(), "user", "users")
            );
        }
        return Ok(());
    }
    if todo.is_empty() {
        println!("Nothing to import.");
        return Ok(());
    }
    let key = ctx.host_key()?;
    let mut store = ctx.open_store()?;
    let t = now();
    let window = ctx.cfg.totp.window;
    let tx = store.write()?;
    let mut done = Vec::new();
    for u in &todo {
        let state = tx.user_state(&u.user)?;
        let (text, replaces) = describe(u, &state);
        if let Some(o) = &u.otp {
            let rec = OtpRecord {
                kind: o.kind,
                sealed: key.seal(&o.secret, &crate::factor::totp::seal_aad(&u.user))?,
                algorithm: o.algorithm,
                digits: o.digits,
                period: o.period,
                last_step: import::spent_step(o, t, window),
                counter: i64::try_from(o.counter)
                    .map_err(|_| CliError(format!("{}: counter too large", u.user)))?,
                created_at: t,
            };
            tx.put_otp(&u.user, &rec, t)?;
        }
        if !u.backup.is_empty() {
            let hashes: Vec<[u8; 32]> =
                u.backup.iter().map(|c| key.code_hash(&u.user, c)).collect();
            tx.replace_backup_codes(&u.user, &hashes, t)?;
        }
        done.push((text, !replaces.is_empty()));
    }
    tx.commit()?;
    for (u, (text, replaced)) in todo.iter().zip(&done) {
        println!("{}: imported {text}", u.user);
        print_notes(ctx, u);
        ctx.audit.notice(&format!(
            "imported user={} from={source} file={} otp={} backup_codes={} replaced={replaced} by={}",
            u.user,
            clean(&path.display().to_string()),
            u.otp.as_ref().map_or("none", |o| o.kind.as_str()),
            u.backup.len(),
            ctx.invoker
        ));
    }
    println!(
        "Imported {} from {}.",
        plural(todo.len(), "user", "users"),
        path.display()
    );
    Ok(())
}

fn print_notes(ctx: &Ctx, u: &Imported) {
    let window = u.otp.as_ref().and_then(|o| window_note(ctx, o));
    for n in u.notes.iter().chain(window.as_ref()) {
        println!("  note: {n}");
    }
}

fn report_u2f(
    ctx: &Ctx,
    path: &Path,
    parsed: Parsed<import::u2f::U2fUser>,
    apply: bool,
) -> CliResult {
    let Parsed { entries, errors } = parsed;
    println!("pam_u2f file {}:", path.display());
    let mut known = Vec::new();
    for u in &entries {
        if !users::exists(&u.user) {
            println!(
                "{}: skipped: no such user on this system (line {})",
                u.user, u.line
            );
            continue;
        }
        let kinds: Vec<String> = u.credentials.iter().map(|c| c.describe()).collect();
        println!(
            "{}: {} ({}): cannot be imported",
            u.user,
            plural(u.credentials.len(), "credential", "credentials"),
            kinds.join(", ")
        );
        for n in &u.notes {
            println!("  note: {n}");
        }
        known.push(u.user.as_str());
    }
    if !errors.is_empty() {
        return Err(refuse(path, &errors));
    }
    let enable = if ctx.cfg.webauthn.enabled {
        String::new()
    } else {
        format!(
            " (first turn WebAuthn on: [webauthn] enabled = true in {}, and run 2fad)",
            ctx.config_path.display()
        )
    };
    let why = "pam_u2f credentials belong to the relying party \"pam://HOSTNAME\", which only a key plugged into this machine can answer; a browser never asserts for it, so 2fad's WebAuthn cannot use them";
    if known.is_empty() {
        println!("No users to report.");
    } else {
        println!(
            "{why}. Each user above registers their key again{enable}:\n  sudo 2fa-enroll webauthn add --user NAME --name \"YubiKey\""
        );
    }
    if apply {
        return Err(CliError(format!(
            "--apply: pam_u2f credentials cannot be imported ({why}); nothing was written"
        )));
    }
    Ok(())
}
