//! `2fa-enroll import google-authenticator|oath|pam-u2f`: a dry run by
//! default (a report per user, nothing written, no key or store created);
//! `--apply` writes every importable user in one transaction, with the
//! same store operations as `totp`, `hotp`, `backup` and `webauthn add
//! --local`. A file with a malformed line is refused as a whole. Secrets
//! are never printed.

use super::output::now;
use super::{CliError, CliResult, Ctx};
use crate::import::u2f::U2fUser;
use crate::import::{self, Imported, LineError, OtpImport, Parsed};
use clap::{Args, Subcommand};
use p2fa_core::audit::clean;
use p2fa_core::crypto::{self, HostKey};
use p2fa_core::enrollment::{BackupSet, OtpSetup, save_otp};
use p2fa_core::store::{LocalKey, OtpKind, Store, Tx, UserState};
use p2fa_core::users;
use std::collections::{HashMap, HashSet};
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
    /// A pam_u2f authfile: es256 credentials become local security keys
    /// (console logins, `[webauthn] local_keys`), added to what each user
    /// has; the others are reported per user.
    PamU2f {
        /// Import only this user's line.
        #[arg(long)]
        user: Option<String>,
        /// The relying party the keys were registered for: pam_u2f's
        /// `origin=` [default: webauthn.local_rp_id, else pam://HOSTNAME,
        /// pam_u2f's default].
        #[arg(long, value_name = "ORIGIN")]
        rp_id: Option<String>,
        /// The authfile, e.g. /etc/u2f_mappings [default with --user:
        /// ~USER/.config/Yubico/u2f_keys].
        file: Option<PathBuf>,
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
                Ok(t) => import::google::parse(t, &user, now()),
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
        ImportWhat::PamU2f { user, rp_id, file } => {
            let path = match (file, user.as_deref()) {
                (Some(f), _) => f,
                (None, Some(u)) => nix::unistd::User::from_name(u)
                    .ok()
                    .flatten()
                    .filter(|_| users::valid_name(u))
                    .map(|p| p.dir.join(".config/Yubico/u2f_keys"))
                    .ok_or_else(|| {
                        CliError(format!(
                            "no such user: {u} (so no ~{u}/.config/Yubico/u2f_keys)"
                        ))
                    })?,
                (None, None) => {
                    return Err(CliError(
                        "give the authfile (e.g. /etc/u2f_mappings), or --user NAME for ~NAME/.config/Yubico/u2f_keys".into(),
                    ));
                }
            };
            let rp_id = match rp_id {
                Some(r) => valid_rp_id(&r)?,
                None => p2fa_core::fido2_tools::rp_id(&ctx.cfg.webauthn),
            };
            let (bytes, meta) = read(&path)?;
            let mut parsed = match import::text(&bytes) {
                Ok(t) => import::u2f::parse(t),
                Err(e) => failed(e),
            };
            only(&mut parsed.entries, user.as_deref(), &path, |e| &e.user)?;
            import_u2f(ctx, &path, &meta, parsed, &rp_id, a.apply)
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

/// What this store has seen used of the codes a user's import brings:
/// carried into the import, so that running it again (or importing a file
/// older than the logins made here) never makes a used code valid again.
#[derive(Debug, Default)]
struct Spent {
    /// The imported token is the one the user has now: the same secret,
    /// kind, algorithm, digits and period, so the same codes.
    same_token: bool,
    /// TOTP: the last step used here, when the same token (kept if later
    /// than what the file says).
    last_step: Option<i64>,
    /// HOTP: the next counter here, when the same token (kept if higher).
    counter: Option<i64>,
    /// Scratch codes of the file that are backup codes used here: left out.
    used_scratch: Vec<usize>,
    /// The current token could not be compared (no host key to open it).
    unknown: bool,
}

impl Spent {
    /// Compares the import with the user's store state. `used` are the
    /// hashes of the user's used backup codes; `key` opens the current
    /// token and hashes scratch codes (None: no key yet, nothing stored).
    fn of(u: &Imported, state: &UserState, used: &[Vec<u8>], key: Option<&HostKey>) -> Spent {
        let mut spent = Spent::default();
        let Some(key) = key else {
            spent.unknown = state.otp.is_some() || !used.is_empty();
            return spent;
        };
        for (i, code) in u.backup.iter().enumerate() {
            let h = key.code_hash(&u.user, code);
            if used.iter().any(|s| crypto::ct_eq(s, &h)) {
                spent.used_scratch.push(i);
            }
        }
        if let (Some(new), Some(old)) = (&u.otp, &state.otp) {
            let same_params = new.kind == old.kind
                && new.algorithm == old.algorithm
                && new.digits == old.digits
                && (new.kind == OtpKind::Hotp || new.period == old.period);
            match key.open(&old.sealed, &p2fa_core::factor::totp::seal_aad(&u.user)) {
                Ok(secret) if same_params && crypto::ct_eq(&secret, &new.secret) => {
                    spent.same_token = true;
                    spent.last_step = old.last_step;
                    spent.counter = (old.kind == OtpKind::Hotp).then_some(old.counter);
                }
                Ok(_) => {}
                Err(_) => spent.unknown = true,
            }
        }
        spent
    }

    /// The scratch codes to store: the file's, less those used here.
    fn backup<'a>(&self, u: &'a Imported) -> Vec<&'a str> {
        u.backup
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.used_scratch.contains(i))
            .map(|(_, c)| c.as_str())
            .collect()
    }
}

/// What importing `u` does, given what the user has now.
fn describe(u: &Imported, now_state: &UserState, spent: &Spent) -> (String, Vec<String>) {
    let mut what = Vec::new();
    if let Some(o) = &u.otp {
        what.push(token(o));
    }
    let scratch = spent.backup(u).len();
    if scratch > 0 {
        what.push(format!(
            "{} as backup codes",
            plural(scratch, "scratch code", "scratch codes")
        ));
    }
    let mut replaces = Vec::new();
    if u.otp.is_some()
        && let Some(old) = &now_state.otp
    {
        replaces.push(if spent.same_token {
            format!(
                "the current {} token (the same secret)",
                old.kind.as_str().to_uppercase()
            )
        } else {
            format!("the current {} token", old.kind.as_str().to_uppercase())
        });
    }
    if scratch > 0 && !now_state.unused_backup.is_empty() {
        replaces.push(format!(
            "the {}",
            plural(
                now_state.unused_backup.len(),
                "unused backup code",
                "unused backup codes"
            )
        ));
    }
    let mut text = if what.is_empty() {
        "nothing new".to_string()
    } else {
        what.join(" and ")
    };
    if !replaces.is_empty() {
        text.push_str(&format!("; replaces {}", replaces.join(" and ")));
    }
    if spent.same_token {
        match (spent.last_step, spent.counter) {
            (Some(step), _) => text.push_str(&format!(
                "; codes used here stay used (time steps up to {step} are spent)"
            )),
            (None, Some(c)) => text.push_str(&format!(
                "; codes used here stay used (the counter stays at {} or more)",
                c
            )),
            _ => {}
        }
    }
    if !spent.used_scratch.is_empty() {
        text.push_str(&format!(
            "; leaves out {} used here already",
            plural(spent.used_scratch.len(), "scratch code", "scratch codes")
        ));
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
    for mut u in entries {
        // Stored under the system's own spelling of the name (what the
        // module looks up), never the file's (an NSS that matches names
        // case-insensitively would otherwise make two users of one).
        let Some(name) = users::canonical(&u.user) else {
            println!(
                "{}: skipped: no such user on this system (line {})",
                u.user, u.line
            );
            continue;
        };
        if name != u.user {
            println!(
                "{}: imported as {name}, the system's name (line {})",
                u.user, u.line
            );
            u.user = name;
        }
        if u.otp.is_none() && u.backup.is_empty() {
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
        let mut store =
            if ctx.cfg.store == p2fa_core::config::StoreKind::Postgres || ctx.cfg.db.exists() {
                match p2fa_pg::open(&ctx.cfg, ctx.trust, p2fa_pg::Mode::Login) {
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
        // The host key, to compare with what is stored: read only, never
        // created by a dry run.
        let key = store
            .as_ref()
            .and_then(|_| HostKey::load(&ctx.cfg.key_file, ctx.trust).ok());
        for u in &todo {
            let (state, used) = match store.as_mut() {
                Some(s) => (s.user_state(&u.user)?, s.used_backup_hashes(&u.user)?),
                None => (UserState::default(), Vec::new()),
            };
            let spent = Spent::of(u, &state, &used, key.as_ref());
            let (text, _) = describe(u, &state, &spent);
            println!("{}: would import {text}", u.user);
            if spent.unknown {
                println!(
                    "  note: cannot read the host key {}, so the current token and used backup codes are not compared: --apply will compare them",
                    ctx.cfg.key_file.display()
                );
            }
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
        let used = tx.used_backup_hashes(&u.user)?;
        let spent = Spent::of(u, &state, &used, Some(&key));
        if spent.unknown {
            return Err(CliError(format!(
                "{}: the current token cannot be opened with the host key {}, so the import cannot tell which of its codes were used here; nothing was imported",
                u.user,
                ctx.cfg.key_file.display()
            )));
        }
        let (text, replaces) = describe(u, &state, &spent);
        if let Some(o) = &u.otp {
            let counter = i64::try_from(o.counter)
                .map_err(|_| CliError(format!("{}: counter too large", u.user)))?;
            // Never earlier, or lower, than what was used here.
            let setup = OtpSetup::imported(
                o.kind,
                &o.secret,
                o.params(),
                counter.max(spent.counter.unwrap_or(0)),
                import::spent_step(o, t, window).max(spent.last_step),
            );
            save_otp(&tx, &u.user, &setup.record(&key, &u.user, t)?, t, false)?;
        }
        let scratch = spent.backup(u);
        if !scratch.is_empty() {
            BackupSet::imported(&key, &u.user, &scratch).save_keeping_spent(&tx, &u.user, t)?;
        }
        done.push((text, !replaces.is_empty(), scratch.len()));
    }
    tx.commit()?;
    for (u, (text, replaced, scratch)) in todo.iter().zip(&done) {
        println!("{}: imported {text}", u.user);
        print_notes(ctx, u);
        ctx.audit.notice(&format!(
            "imported user={} from={source} file={} otp={} backup_codes={scratch} replaced={replaced} by={}",
            u.user,
            clean(&path.display().to_string()),
            u.otp.as_ref().map_or("none", |o| o.kind.as_str()),
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

/// `--rp-id`: what `webauthn.local_rp_id` allows, not empty.
fn valid_rp_id(r: &str) -> Result<String, CliError> {
    if r.is_empty() || r.len() > 255 || r.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(CliError(
            "--rp-id must be 1 to 255 characters without spaces or control characters, e.g. pam://myhost".into(),
        ));
    }
    Ok(r.to_string())
}

/// The keys stored now: none (no store yet), a read-only look (dry run)
/// or the write transaction (`--apply`, so the plan is what is written).
enum Keys<'a, 'b> {
    None,
    Store(&'a Store),
    Tx(&'a Tx<'b>),
}

impl Keys<'_, '_> {
    fn names(&self, user: &str) -> Result<Vec<String>, CliError> {
        Ok(match self {
            Keys::None => Vec::new(),
            Keys::Store(s) => s.key_names(user)?,
            Keys::Tx(t) => t.key_names(user)?,
        })
    }

    fn owner(&self, id: &[u8]) -> Result<Option<(String, String)>, CliError> {
        Ok(match self {
            Keys::None => None,
            Keys::Store(s) => s.local_key_owner(id)?,
            Keys::Tx(t) => t.local_key_owner(id)?,
        })
    }
}

/// What becomes of one pam_u2f credential.
enum Fate {
    /// Added as this key; the remark says why its name is not the first
    /// free one in order (names the user's keys took).
    Add(LocalKey, String),
    /// Not imported, and why.
    Skip(String),
}

/// What importing one user's pam_u2f line does.
struct U2fPlan {
    user: String,
    /// `credential N (es256 +presence)` and what becomes of it.
    creds: Vec<(String, Fate)>,
    /// How many keys (browser and local) the user has now; all are kept.
    existing: usize,
    notes: Vec<String>,
}

impl U2fPlan {
    fn adds(&self) -> impl Iterator<Item = &LocalKey> {
        self.creds.iter().filter_map(|(_, f)| match f {
            Fate::Add(k, _) => Some(k),
            Fate::Skip(_) => None,
        })
    }
}

/// Decides, per user and credential, what is imported. Imported keys are
/// added to what the user has (never replace it: a key registered with
/// `webauthn add --local` stays), named `pam_u2f-N` with the first free N.
/// A credential id is unique in the store: one stored already (an import
/// run twice) or claimed by an earlier user of the file is skipped with
/// the reason.
fn plan_u2f(
    ctx: &Ctx,
    entries: &[U2fUser],
    keys: &Keys<'_, '_>,
    rp_id: &str,
    now: i64,
) -> Result<Vec<U2fPlan>, CliError> {
    let conf = ctx.config_path.display();
    let uv = match ctx.cfg.webauthn.local_user_verification {
        p2fa_core::config::UserVerification::Discouraged => "discouraged",
        p2fa_core::config::UserVerification::Preferred => "preferred",
        p2fa_core::config::UserVerification::Required => "required",
    };
    let mut claimed: HashMap<&[u8], (&str, usize)> = HashMap::new();
    let mut plans = Vec::new();
    for u in entries {
        let user = u.user.as_str();
        let again = format!(
            "register the key again at this machine: sudo 2fa-enroll webauthn add --local --user {user} --name NAME"
        );
        let mut names: HashSet<String> = keys.names(user)?.into_iter().collect();
        let existing = names.len();
        let mut next = 1;
        let mut creds = Vec::new();
        let mut notes = u.notes.clone();
        for (i, c) in u.credentials.iter().enumerate() {
            let n = i + 1;
            let label = format!("credential {n} ({})", c.describe());
            let outcome = if c.cose != "es256" {
                Fate::Skip(format!(
                    "pam-2fa checks ES256 signatures only, not {}; {again}",
                    c.cose
                ))
            } else if c.resident {
                Fate::Skip(format!(
                    "a resident credential (key handle *) is found by the key itself, and pam-2fa must name the credential to the key; {again}"
                ))
            } else if let Some(&(other, m)) = claimed.get(c.key_handle.as_slice()) {
                Fate::Skip(if other == user {
                    format!("the same key handle as credential {m}")
                } else {
                    format!(
                        "the same credential as {other}'s, imported for {other}: in pam-2fa a credential belongs to one user; {again}"
                    )
                })
            } else if let Some((owner, name)) = keys.owner(&c.key_handle)? {
                Fate::Skip(if owner == user {
                    format!("registered already as {name:?}")
                } else {
                    format!(
                        "registered already for {owner} as {name:?}: in pam-2fa a credential belongs to one user; {again}"
                    )
                })
            } else {
                let mut taken = Vec::new();
                let name = loop {
                    let cand = format!("pam_u2f-{next}");
                    next += 1;
                    if !names.contains(&cand) {
                        break cand;
                    }
                    taken.push(cand);
                };
                names.insert(name.clone());
                claimed.insert(&c.key_handle, (user, n));
                let remark = if taken.is_empty() {
                    String::new()
                } else {
                    format!(" ({} taken by {user}'s keys)", taken.join(", "))
                };
                if !c.presence {
                    notes.push(format!(
                        "credential {n}: pam_u2f did not ask for a touch (no +presence); pam-2fa always does"
                    ));
                }
                if c.verification {
                    notes.push(if uv == "required" {
                        format!(
                            "credential {n}: +verification: webauthn.local_user_verification = \"required\" asks every user's key for it here"
                        )
                    } else {
                        format!(
                            "credential {n}: +verification: pam_u2f had the key verify the user; here webauthn.local_user_verification (now \"{uv}\") decides, for all users (set it to \"required\" in {conf} to keep that)"
                        )
                    });
                }
                if c.pin {
                    notes.push(format!(
                        "credential {n}: +pin: pam-2fa does not ask for a FIDO2 PIN at login (not supported yet, see the README, \"Local security keys\"): this key will be used with a touch only"
                    ));
                }
                Fate::Add(
                    LocalKey {
                        name,
                        credential_id: c.key_handle.clone(),
                        public_key: c.public_key.clone(),
                        rp_id: rp_id.to_string(),
                        // pam_u2f keeps no counter: the first login sets it.
                        counter: 0,
                        created_at: now,
                        last_used_at: None,
                    },
                    remark,
                )
            };
            creds.push((label, outcome));
        }
        plans.push(U2fPlan {
            user: u.user.clone(),
            creds,
            existing,
            notes,
        });
    }
    Ok(plans)
}

fn print_u2f_plan(p: &U2fPlan, done: bool) {
    let n = p.adds().count();
    let kept = match p.existing {
        0 => String::new(),
        k => format!(
            "; keeps the {} {} has",
            plural(k, "security key", "security keys"),
            p.user
        ),
    };
    if n == 0 {
        println!("{}: nothing to import", p.user);
    } else if done {
        println!(
            "{}: added {}{kept}",
            p.user,
            plural(n, "local key", "local keys")
        );
    } else {
        println!(
            "{}: would add {}{kept}",
            p.user,
            plural(n, "local key", "local keys")
        );
    }
    for (label, outcome) in &p.creds {
        match outcome {
            Fate::Add(k, remark) => println!("  {label}: local key {:?}{remark}", k.name),
            Fate::Skip(why) => println!("  {label}: not imported: {why}"),
        }
    }
    for note in &p.notes {
        println!("  note: {note}");
    }
}

/// `import pam-u2f`: es256 credentials with a key handle become local
/// keys bound to `rp_id`; everything else is reported, per user and
/// credential, without refusing the file.
fn import_u2f(
    ctx: &mut Ctx,
    path: &Path,
    meta: &std::fs::Metadata,
    parsed: Parsed<U2fUser>,
    rp_id: &str,
    apply: bool,
) -> CliResult {
    let Parsed { entries, errors } = parsed;
    let writing = apply && errors.is_empty();
    let conf = ctx.config_path.display().to_string();
    println!("pam_u2f file {}:", path.display());
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        println!(
            "  note: the file is writable by others (mode {mode:04o}): anyone could have added a key to it; check every line before --apply"
        );
    }
    println!(
        "  note: the keys are bound to the relying party {rp_id:?}: it must be pam_u2f's origin (origin= on its line in /etc/pam.d; default pam://$HOSTNAME at the time the keys were registered), otherwise run again with --rp-id ORIGIN"
    );
    let configured = p2fa_core::fido2_tools::rp_id(&ctx.cfg.webauthn);
    if configured != rp_id {
        println!(
            "  note: keys registered here with webauthn add --local use {configured:?} (webauthn.local_rp_id); each key keeps its own relying party"
        );
    }
    if !ctx.cfg.webauthn.local_keys {
        println!(
            "  note: local security keys are off: imported keys are offered at login only once local_keys = true under [webauthn] in {conf}"
        );
    }
    // A file in a user's home is that user's: pam_u2f reads it only for
    // them, so another user's line there must not give that user a key.
    let owner = meta.uid();
    let mut todo = Vec::new();
    for mut u in entries {
        let account = nix::unistd::User::from_name(&u.user).ok().flatten();
        if let Some(a) = &account
            && a.name != u.user
        {
            println!(
                "{}: imported as {}, the system's name (line {})",
                u.user, a.name, u.line
            );
            u.user = a.name.clone();
        }
        match account {
            None => println!(
                "{}: skipped: no such user on this system (line {})",
                u.user, u.line
            ),
            Some(a) if owner != 0 && a.uid.as_raw() != owner => println!(
                "{}: skipped: the file belongs to uid {owner}, not to {}, and pam_u2f reads a user's own file only for that user (line {})",
                u.user, u.user, u.line
            ),
            Some(_) => todo.push(u),
        }
    }
    if !writing {
        let store = if ctx.cfg.store == p2fa_core::config::StoreKind::Postgres
            || ctx.cfg.db.exists()
        {
            match p2fa_pg::open(&ctx.cfg, ctx.trust, p2fa_pg::Mode::Login) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("warning: cannot read the store, so current keys are not shown: {e}");
                    None
                }
            }
        } else {
            None
        };
        let keys = store.as_ref().map_or(Keys::None, Keys::Store);
        let plans = plan_u2f(ctx, &todo, &keys, rp_id, now())?;
        for p in &plans {
            print_u2f_plan(p, false);
        }
        if !errors.is_empty() {
            return Err(refuse(path, &errors));
        }
        let (n, users) = totals(&plans);
        if n == 0 {
            println!("Dry run: nothing to import.");
        } else {
            println!(
                "Dry run: nothing was written. Run again with --apply to add {} for {}.",
                plural(n, "local key", "local keys"),
                plural(users, "user", "users")
            );
        }
        return Ok(());
    }
    if todo.is_empty() {
        println!("Nothing to import.");
        return Ok(());
    }
    // The module needs the host key for every login (remembered devices).
    ctx.host_key()?;
    let mut store = ctx.open_store()?;
    let t = now();
    let tx = store.write()?;
    let plans = plan_u2f(ctx, &todo, &Keys::Tx(&tx), rp_id, t)?;
    for p in &plans {
        for k in p.adds() {
            if !tx.add_local_key(&p.user, k, t)? {
                // The plan was made in this transaction: cannot happen.
                return Err(CliError(format!(
                    "{}: the key {:?} could not be added; nothing was written",
                    p.user, k.name
                )));
            }
        }
    }
    tx.commit()?;
    for p in &plans {
        print_u2f_plan(p, true);
        let added = p.adds().count();
        if added == 0 {
            continue;
        }
        ctx.audit.notice(&format!(
            "imported user={} from=pam-u2f file={} local_keys={added} not_imported={} rp_id={} by={}",
            p.user,
            clean(&path.display().to_string()),
            p.creds.len() - added,
            clean(rp_id),
            ctx.invoker
        ));
    }
    let (n, users) = totals(&plans);
    if n == 0 {
        println!("Nothing to import.");
    } else {
        println!(
            "Imported {} for {} from {}.",
            plural(n, "local key", "local keys"),
            plural(users, "user", "users"),
            path.display()
        );
    }
    Ok(())
}

/// Keys to add, and how many users get at least one.
fn totals(plans: &[U2fPlan]) -> (usize, usize) {
    plans.iter().fold((0, 0), |(n, u), p| {
        let k = p.adds().count();
        (n + k, u + usize::from(k > 0))
    })
}
