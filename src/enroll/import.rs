//! `2fa-enroll import google-authenticator|oath|pam-u2f`: dry run by
//! default (a report per user, nothing written); `--apply` writes every
//! importable user in one transaction. Secrets are never printed.

use super::output::now;
use super::{CliError, CliResult, Ctx};
use crate::import::{self, Imported, LineError};
use crate::store::OtpRecord;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub what: ImportWhat,
    /// Write to the store (without it: only report what would happen).
    #[arg(long, global = true)]
    pub apply: bool,
}

#[derive(Subcommand, Debug)]
pub enum ImportWhat {
    /// A ~/.google_authenticator file (secret, TOTP/HOTP, scratch codes).
    GoogleAuthenticator {
        /// Whose file it is [default: you].
        #[arg(long)]
        user: Option<String>,
        /// The file [default: ~USER/.google_authenticator].
        file: Option<PathBuf>,
    },
    /// A pam_oath usersfile (HOTP and TOTP tokens of many users).
    Oath {
        #[arg(default_value = "/etc/users.oath")]
        file: PathBuf,
    },
    /// A pam_u2f authfile (checked and counted; see the README).
    PamU2f { file: PathBuf },
}

fn read(path: &Path) -> Result<String, CliError> {
    let meta = std::fs::metadata(path).map_err(|e| CliError(format!("{}: {e}", path.display())))?;
    if meta.len() > 4 * 1024 * 1024 {
        return Err(CliError(format!("{}: larger than 4 MiB", path.display())));
    }
    std::fs::read_to_string(path).map_err(|e| CliError(format!("{}: {e}", path.display())))
}

fn line_errors(path: &Path, errors: &[LineError]) -> CliError {
    let lines: Vec<String> = errors
        .iter()
        .map(|e| format!("{}:{}: {}", path.display(), e.line, e.msg))
        .collect();
    CliError(format!(
        "{}\nnothing was imported; fix the lines above",
        lines.join("\n")
    ))
}

pub fn run(ctx: &mut Ctx, a: ImportArgs) -> CliResult {
    let (path, users): (PathBuf, Vec<Imported>) = match a.what {
        ImportWhat::GoogleAuthenticator { user, file } => {
            let user = ctx.target(user.as_deref())?;
            let path = match file {
                Some(f) => f,
                None => {
                    let home = nix::unistd::User::from_name(&user)
                        .ok()
                        .flatten()
                        .map(|u| u.dir)
                        .ok_or_else(|| CliError(format!("no home directory for {user}")))?;
                    home.join(".google_authenticator")
                }
            };
            let text = read(&path)?;
            let i = import::google::parse(&text, &user).map_err(|e| line_errors(&path, &e))?;
            (path, vec![i])
        }
        ImportWhat::Oath { file } => {
            let text = read(&file)?;
            let u = import::oath::parse(&text).map_err(|e| line_errors(&file, &e))?;
            (file, u)
        }
        ImportWhat::PamU2f { file } => {
            let text = read(&file)?;
            let u = import::u2f::parse(&text).map_err(|e| line_errors(&file, &e))?;
            for x in &u {
                println!(
                    "{}: {} FIDO credential(s) ({})",
                    x.user,
                    x.credentials,
                    x.types.join(", ")
                );
            }
            return Err(CliError(format!(
                "{}: nothing was imported: pam_u2f credentials are bound to the relying party \"pam://HOSTNAME\", which only a key plugged into this machine can answer; browser WebAuthn through 2fad cannot use them. Have each user register their key again with `2fa-enroll webauthn add --name ...`",
                file.display()
            )));
        }
    };
    let mut importable = Vec::new();
    for u in &users {
        if !crate::users::exists(&u.user) {
            println!("{}: skipped, no such user on this system", u.user);
            continue;
        }
        let what = match &u.otp {
            Some(o) => format!(
                "{} token ({} digits{}, SHA1)",
                o.kind.as_str().to_uppercase(),
                o.digits,
                if o.kind == crate::store::OtpKind::Totp {
                    format!(", every {} s", o.period)
                } else {
                    format!(", next counter {}", o.counter)
                }
            ),
            None => "no token".into(),
        };
        let codes = if u.backup.is_empty() {
            String::new()
        } else {
            format!(" + {} scratch code(s) as backup codes", u.backup.len())
        };
        println!(
            "{}: {} {what}{codes}",
            u.user,
            if a.apply { "importing" } else { "would import" }
        );
        for n in &u.notes {
            println!("    note: {n}");
        }
        importable.push(u);
    }
    if !a.apply {
        println!(
            "Dry run: nothing written. Run again with --apply to import {} user(s) from {}.",
            importable.len(),
            path.display()
        );
        return Ok(());
    }
    let key = ctx.host_key()?;
    let mut store = ctx.open_store()?;
    let t = now();
    let tx = store.write()?;
    for u in &importable {
        if let Some(o) = &u.otp {
            let rec = OtpRecord {
                kind: o.kind,
                sealed: key.seal(&o.secret, &crate::factor::totp::seal_aad(&u.user))?,
                algorithm: o.algorithm,
                digits: o.digits,
                period: o.period,
                last_step: None,
                counter: o.counter as i64,
                created_at: t,
            };
            tx.put_otp(&u.user, &rec, t)?;
        }
        if !u.backup.is_empty() {
            let hashes: Vec<[u8; 32]> =
                u.backup.iter().map(|c| key.code_hash(&u.user, c)).collect();
            tx.replace_backup_codes(&u.user, &hashes, t)?;
        }
    }
    tx.commit()?;
    for u in &importable {
        ctx.audit.notice(&format!(
            "imported user={} from={} by={}",
            u.user,
            crate::audit::clean(&path.display().to_string()),
            ctx.invoker
        ));
    }
    println!(
        "Imported {} user(s) from {}.",
        importable.len(),
        path.display()
    );
    Ok(())
}
