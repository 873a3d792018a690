//! Ownership and permission checks for the files that hold secrets.
//!
//! The module runs as root inside sshd/sudo; a store or key that another
//! user can write would let that user plant their own TOTP secret, so such
//! files are refused rather than trusted.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Permission bits a secret file may never have: any group or world access.
pub const NO_GROUP_OR_WORLD: u32 = 0o077;
/// Permission bits a secret directory may never have: group/world write.
pub const NO_GROUP_OR_WORLD_WRITE: u32 = 0o022;

/// Refuses `path` unless it is owned by root and has none of `forbidden` bits.
pub fn check_root_owned(path: &Path, what: &str, forbidden: u32) -> Result<(), String> {
    let meta = fs::symlink_metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{what} {} is a symlink; refusing it",
            path.display()
        ));
    }
    if meta.uid() != 0 {
        return Err(format!(
            "{what} {} is owned by uid {}, not root; refusing it",
            path.display(),
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & forbidden != 0 {
        return Err(format!(
            "{what} {} has mode {mode:04o}; it must not be accessible to group or others (chmod {})",
            path.display(),
            if meta.is_dir() { "0700" } else { "0600" }
        ));
    }
    Ok(())
}

/// Creates `dir` (and parents) with mode 0700 if missing.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Writes a new file with mode 0600, failing if it already exists.
pub fn create_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}
