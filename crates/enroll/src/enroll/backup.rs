//! `2fa-enroll backup`: new single-use backup codes, shown once.

use super::output::now;
use super::{CliError, CliResult, Ctx};
use clap::Args;
use p2fa_core::enrollment::{BackupSet, EnrollError};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Create codes for this user instead of yourself (root).
    #[arg(long)]
    pub user: Option<String>,
    /// How many codes [default: from config, normally 15].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub count: Option<u32>,
    /// Also write the codes to this new file (mode 0600), created with the
    /// user's own rights: it must be somewhere the user can write.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(ctx: &mut Ctx, a: BackupArgs) -> CliResult {
    let user = ctx.target(a.user.as_deref())?;
    let key = ctx.host_key()?;
    let mut store = ctx.open_store()?;
    let count = a.count.unwrap_or(ctx.cfg.backup.count) as usize;
    let codes = BackupSet::generate(&key, &user, count)?;
    let mut text = Zeroizing::new(format!(
        "Backup codes for {user} on {} (each works once):\n",
        ctx.cfg.issuer_name()
    ));
    for chunk in codes.formatted().chunks(3) {
        let line: Vec<&str> = chunk.iter().map(|c| c.as_str()).collect();
        text.push_str("  ");
        text.push_str(&line.join("   "));
        text.push('\n');
    }
    // Write the file first: if that fails, the old codes still work.
    if let Some(path) = &a.output {
        write_file(path, &text, &user)?;
    }
    let tx = store.write()?;
    let result = codes
        .save(&tx, &user, now())
        .and_then(|_| tx.commit().map_err(EnrollError::from));
    if let Err(e) = result {
        if let Some(path) = &a.output {
            let _ = as_user(&user, || std::fs::remove_file(path));
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

/// Writes the codes to a new file (mode 0600) for `user`.
///
/// Root acting for another user creates it with that user's rights (see
/// [`as_user`]): the path is in the user's hands (usually their home, where
/// they can swap any directory for a symlink to /etc), so the file lands
/// only where the user could have created it, and is theirs. Never an
/// existing file (`O_EXCL`), never through a final symlink (`O_NOFOLLOW`).
pub(super) fn write_file(path: &Path, text: &str, user: &str) -> CliResult {
    as_user(user, || -> CliResult {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| {
                CliError(format!(
                    "cannot create {} as {user} ({e}); it must not exist yet, and {user} must be able to create it",
                    path.display()
                ))
            })?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        Ok(())
    })?
}

/// Runs `f` with the effective uid, gid and supplementary groups of `user`
/// when root acts for another user; otherwise (a user for themselves, root
/// for root) as is. Root's identity is restored before returning. Safe in
/// `2fa-enroll`, which is single-threaded and not setuid: while the
/// effective uid is the user's, the kernel makes the process non-dumpable
/// and its real and saved uids stay 0, so the user can neither trace nor
/// signal it.
pub(super) fn as_user<T>(user: &str, f: impl FnOnce() -> T) -> Result<T, CliError> {
    use nix::unistd::{
        Uid, User, getegid, geteuid, getgrouplist, getgroups, setegid, seteuid, setgroups,
    };
    if !geteuid().is_root() {
        return Ok(f());
    }
    let pw = User::from_name(user)
        .map_err(|e| CliError(format!("cannot look up {user}: {e}")))?
        .ok_or_else(|| CliError(format!("no such user: {user}")))?;
    if pw.uid.is_root() {
        return Ok(f());
    }
    let fail = |what: &str, e: nix::Error| CliError(format!("cannot act as {user} ({what}: {e})"));
    let name = std::ffi::CString::new(user).map_err(|_| CliError("bad user name".into()))?;
    let groups = getgrouplist(&name, pw.gid).map_err(|e| fail("groups", e))?;
    let (root_gid, root_groups) = (getegid(), getgroups().map_err(|e| fail("groups", e))?);
    let restore = |stage: u8| {
        // From a uid-0 real and saved uid these cannot fail; if they did,
        // carrying on with another identity would be wrong: stop.
        let ok = (stage < 3 || seteuid(Uid::from_raw(0)).is_ok())
            && (stage < 2 || setegid(root_gid).is_ok())
            && (stage < 1 || setgroups(&root_groups).is_ok());
        if !ok {
            eprintln!("2fa-enroll: cannot get root's identity back; stopping");
            std::process::exit(70);
        }
    };
    setgroups(&groups).map_err(|e| fail("setgroups", e))?;
    if let Err(e) = setegid(pw.gid) {
        restore(1);
        return Err(fail("setegid", e));
    }
    if let Err(e) = seteuid(pw.uid) {
        restore(2);
        return Err(fail("seteuid", e));
    }
    let out = f();
    restore(3);
    Ok(out)
}
