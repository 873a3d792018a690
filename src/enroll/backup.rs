//! `2fa-enroll backup`: new single-use backup codes, shown once.

use super::output::now;
use super::{CliError, CliResult, Ctx};
use crate::factor::backup;
use clap::Args;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use zeroize::Zeroizing;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Create codes for this user instead of yourself (root).
    #[arg(long)]
    pub user: Option<String>,
    /// How many codes [default: from config, normally 15].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub count: Option<u32>,
    /// Also write the codes to this new file (mode 0600, owned by the user).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(ctx: &mut Ctx, a: BackupArgs) -> CliResult {
    let user = ctx.target(a.user.as_deref())?;
    let key = ctx.host_key()?;
    let mut store = ctx.open_store()?;
    let count = a.count.unwrap_or(ctx.cfg.backup.count) as usize;
    let codes: Vec<Zeroizing<String>> = backup::generate(count)?
        .into_iter()
        .map(Zeroizing::new)
        .collect();
    let hashes: Vec<[u8; 32]> = codes.iter().map(|c| key.code_hash(&user, c)).collect();
    let mut text = Zeroizing::new(format!(
        "Backup codes for {user} on {} (each works once):\n",
        ctx.cfg.issuer_name()
    ));
    for chunk in codes.chunks(3) {
        let line: Vec<String> = chunk.iter().map(|c| backup::format(c)).collect();
        text.push_str("  ");
        text.push_str(&line.join("   "));
        text.push('\n');
    }
    // Write the file first: if that fails, the old codes still work.
    if let Some(path) = &a.output {
        write_file(path, &text, &user)?;
    }
    let tx = store.write()?;
    let result = tx
        .replace_backup_codes(&user, &hashes, now())
        .and_then(|_| tx.commit());
    if let Err(e) = result {
        if let Some(path) = &a.output {
            let _ = std::fs::remove_file(path);
        }
        return Err(e.into());
    }
    ctx.audit.notice(&format!(
        "created {count} backup codes user={user} by={}",
        ctx.invoker
    ));
    print!("{}", text.as_str());
    println!(
        "Keep them somewhere safe, away from your phone. Any earlier backup codes no longer work."
    );
    if let Some(path) = &a.output {
        println!("Also written to {} (mode 0600).", path.display());
    }
    Ok(())
}

pub(super) fn write_file(path: &PathBuf, text: &str, user: &str) -> CliResult {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            CliError(format!(
                "cannot create {} ({e}); it must not exist yet",
                path.display()
            ))
        })?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    // The file is for the user: hand it to them when root writes it.
    if let Ok(Some(u)) = nix::unistd::User::from_name(user) {
        nix::unistd::fchown(&f, Some(u.uid), Some(u.gid))
            .map_err(|e| CliError(format!("chown {}: {e}", path.display())))?;
    }
    Ok(())
}
