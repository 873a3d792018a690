//! Ownership and permission checks for the files the module trusts.
//!
//! The module runs as root inside sshd/sudo and believes what its config,
//! key file and store say: a config another user can write exempts them
//! from 2FA, a store they can write holds their own TOTP secret. So every
//! such file must be root-owned and private, and so must be the way to
//! it: a directory another user can write lets them swap the file for one
//! of their own. Files are read through an opened descriptor, never a
//! second lookup, with `O_NOFOLLOW | O_NONBLOCK` and a size bound, so a
//! FIFO, a device or a huge file can neither hang a login nor fill memory.
//!
//! Whose files are trusted is a [`Trust`], passed to every check: root's
//! alone ([`Trust::ROOT`]) in every program that ships. Tests may also
//! trust the user running them ([`Trust::test_runner`]), so the unit and
//! flow tests run without root; that constructor exists only in this
//! crate's own tests and under the `test-trust` feature, which only
//! dev-dependencies enable (`scripts/test` checks that it never reaches
//! the module, `2fa-enroll` or `2fad`).

use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use zeroize::Zeroizing;

/// Permission bits a secret file may never have: any group or world access.
pub const NO_GROUP_OR_WORLD: u32 = 0o077;
/// Permission bits a trusted directory or non-secret file may never have:
/// group/world write.
pub const NO_GROUP_OR_WORLD_WRITE: u32 = 0o022;
const STICKY: u32 = 0o1000;
/// Symlinks followed while checking one directory chain.
const MAX_LINKS: u32 = 16;

/// Whose files and directories are trusted: root's, and (in tests only)
/// those of one more uid. Not a config key or a module argument: the
/// programs say it in code, and they all say [`Trust::ROOT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trust {
    uid: u32,
}

impl Trust {
    /// Root's files only: the module, `2fa-enroll` and `2fad`.
    pub const ROOT: Trust = Trust { uid: 0 };

    /// Root's files and those of the effective uid running the test, so
    /// `cargo test` works as an ordinary user (root is the same as
    /// [`Trust::ROOT`]). Tests only: see the module docs.
    #[cfg(any(test, feature = "test-trust"))]
    pub fn test_runner() -> Trust {
        Trust {
            uid: nix::unistd::geteuid().as_raw(),
        }
    }

    /// Root's files and those of `uid`: for tests of the ownership rule
    /// (trusting a uid that owns nothing there makes the test's own files
    /// someone else's). Tests only: see the module docs.
    #[cfg(any(test, feature = "test-trust"))]
    pub fn of_uid(uid: u32) -> Trust {
        Trust { uid }
    }

    /// Whether a file or directory owned by `owner` is trusted.
    pub fn trusts(self, owner: u32) -> bool {
        owner == 0 || owner == self.uid
    }

    /// "root", or "root or uid N", for refusals.
    fn owners(self) -> String {
        if self.uid == 0 {
            "root".into()
        } else {
            format!("root or uid {}", self.uid)
        }
    }
}

/// Refuses `path` unless `trust` trusts its owner and it has none of
/// `forbidden` bits.
pub fn check_root_owned(
    path: &Path,
    what: &str,
    forbidden: u32,
    trust: Trust,
) -> Result<(), String> {
    let meta = fs::symlink_metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{what} {} is a symlink; refusing it",
            path.display()
        ));
    }
    check_meta(path, &meta, what, forbidden, trust)
}

fn check_meta(
    path: &Path,
    meta: &fs::Metadata,
    what: &str,
    forbidden: u32,
    trust: Trust,
) -> Result<(), String> {
    if !trust.trusts(meta.uid()) {
        return Err(format!(
            "{what} {} is owned by uid {}, not {}; refusing it",
            path.display(),
            meta.uid(),
            trust.owners()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & forbidden != 0 {
        let (whom, fix) = if forbidden == NO_GROUP_OR_WORLD {
            ("accessible to", if meta.is_dir() { "0700" } else { "0600" })
        } else {
            ("writable by", "go-w")
        };
        return Err(format!(
            "{what} {} has mode {mode:04o}; it must not be {whom} group or others (chmod {fix})",
            path.display(),
        ));
    }
    Ok(())
}

/// Checks the directories leading to a trusted file, `/` down to `dir`
/// (the file's own directory): every one root-owned (owned by whom
/// `trust` trusts); `dir` not writable
/// by group or others; those above it either not writable by group or
/// others, or sticky (like `/tmp`: there only root may rename or remove
/// what root owns). A symlink on the way must be root-owned (it sits in a
/// checked directory) and its target's directories are checked the same
/// way. `what` names the file ("config", "store").
pub fn check_dir_chain(dir: &Path, what: &str, trust: Trust) -> Result<(), String> {
    let mut links = 0;
    check_chain(dir, what, true, &mut links, trust)
}

fn check_chain(
    dir: &Path,
    what: &str,
    strict_last: bool,
    links: &mut u32,
    trust: Trust,
) -> Result<(), String> {
    if !dir.is_absolute() {
        return Err(format!(
            "the {what} directory {} is not an absolute path",
            dir.display()
        ));
    }
    let parts: Vec<Component> = dir.components().collect();
    let mut cur = PathBuf::new();
    for (i, part) in parts.iter().enumerate() {
        match part {
            Component::RootDir => cur.push("/"),
            Component::Normal(name) => cur.push(name),
            Component::CurDir => continue,
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!(
                    "the path to the {what}, {}, must not contain \"..\"",
                    dir.display()
                ));
            }
        }
        let last = i + 1 == parts.len();
        let meta = fs::symlink_metadata(&cur)
            .map_err(|e| format!("directory {} of the {what}: {e}", cur.display()))?;
        if meta.file_type().is_symlink() {
            *links += 1;
            if *links > MAX_LINKS {
                return Err(format!(
                    "too many symlinks on the way to the {what} ({})",
                    dir.display()
                ));
            }
            if !trust.trusts(meta.uid()) {
                return Err(format!(
                    "symlink {} on the way to the {what} is owned by uid {}, not {}; refusing it",
                    cur.display(),
                    meta.uid(),
                    trust.owners()
                ));
            }
            let real = fs::canonicalize(&cur)
                .map_err(|e| format!("symlink {} to the {what}: {e}", cur.display()))?;
            check_chain(&real, what, strict_last && last, links, trust)?;
            cur = real;
            continue;
        }
        let name = if last && strict_last {
            format!("{what} directory")
        } else {
            format!("directory above the {what},")
        };
        if !meta.is_dir() {
            return Err(format!("{name} {} is not a directory", cur.display()));
        }
        let mode = meta.mode() & 0o7777;
        let sticky_ok = !(last && strict_last) && mode & STICKY != 0;
        let forbidden = if sticky_ok {
            0
        } else {
            NO_GROUP_OR_WORLD_WRITE
        };
        check_meta(&cur, &meta, &name, forbidden, trust)?;
    }
    Ok(())
}

/// Checks the way to a trusted file that does not exist (yet), so that
/// "missing" can be believed: only root could have removed or renamed it.
/// The deepest existing directory on the way must pass
/// [`check_dir_chain`]: as the file's own directory (not writable by group
/// or others) when that exists, else as a directory above it (which may
/// be sticky, like `/tmp`: nobody else can rename root's directory out
/// of it). Anything else on the way (a file, a symlink that leads
/// nowhere, a directory that cannot be read) is an error.
pub fn check_missing(path: &Path, what: &str, trust: Trust) -> Result<(), String> {
    if !path.is_absolute() {
        return Err(format!("{what} {} is not an absolute path", path.display()));
    }
    let own_dir = path.parent();
    for dir in path.ancestors().skip(1) {
        match fs::symlink_metadata(dir) {
            Ok(_) => {
                let mut links = 0;
                let strict = Some(dir) == own_dir;
                return check_chain(dir, what, strict, &mut links, trust);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("directory {} of the {what}: {e}", dir.display())),
        }
    }
    Err(format!(
        "no directory on the way to {} exists",
        path.display()
    ))
}

/// Reads a file the module trusts: `path` absolute, opened without
/// following a symlink and without blocking (a FIFO or device never
/// hangs the caller), a regular file owned by root (by whom `trust`
/// trusts) with none of the `forbidden` mode bits (checked on the opened
/// descriptor), at most `max` bytes, in a directory chain that passes
/// [`check_dir_chain`].
///
/// A missing file is an error of kind `NotFound`, so callers can treat it
/// as "not configured"; every other refusal is a message naming the file
/// and the reason.
pub fn read_trusted(
    path: &Path,
    what: &str,
    forbidden: u32,
    max: u64,
    trust: Trust,
) -> std::io::Result<Zeroizing<Vec<u8>>> {
    read_trusted_with_mode(path, what, forbidden, max, trust).map(|(bytes, _)| bytes)
}

/// [`read_trusted`], also returning the file's permission bits (from the
/// descriptor that was read, not a second lookup).
pub fn read_trusted_with_mode(
    path: &Path,
    what: &str,
    forbidden: u32,
    max: u64,
    trust: Trust,
) -> std::io::Result<(Zeroizing<Vec<u8>>, u32)> {
    use std::io::{Error, ErrorKind};
    let refuse = |msg: String| Error::other(msg);
    if !path.is_absolute() {
        return Err(refuse(format!(
            "{what} {} is not an absolute path",
            path.display()
        )));
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refuse(format!(
                "{what} {} is a symlink; refusing it",
                path.display()
            )),
            _ => Error::new(e.kind(), format!("{what} {}: {e}", path.display())),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| refuse(format!("{what} {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(refuse(format!(
            "{what} {} is not a regular file; refusing it",
            path.display()
        )));
    }
    check_meta(path, &meta, what, forbidden, trust).map_err(refuse)?;
    if meta.len() > max {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!(
                "{what} {} has {} bytes, larger than the {max} bytes allowed",
                path.display(),
                meta.len()
            ),
        ));
    }
    if let Some(dir) = path.parent() {
        check_dir_chain(dir, what, trust).map_err(refuse)?;
    }
    // The file may grow between fstat and read: never take more than max.
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(format!("{what} {}: {e}", path.display())))?;
    if bytes.len() as u64 > max {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!(
                "{what} {} is larger than the {max} bytes allowed",
                path.display()
            ),
        ));
    }
    Ok((bytes, meta.mode() & 0o7777))
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

/// Test helpers for the ownership rule, shared by this crate's tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::Trust;
    use std::os::unix::fs::lchown;
    use std::path::Path;

    /// Makes `path`, which this test made, someone else's: returns the
    /// trust to check with and the uid the check will name. As root, by
    /// giving `path` to uid 65534 (undo with [`mine`]). Otherwise a test
    /// cannot give a file away, so it trusts a uid that owns nothing here
    /// instead, which makes every file of the test someone else's: `path`
    /// must then be the first of them the check looks at.
    pub fn foreign(path: &Path) -> (Trust, u32) {
        let me = nix::unistd::geteuid().as_raw();
        if me == 0 {
            lchown(path, Some(65534), None).unwrap();
            (Trust::ROOT, 65534)
        } else {
            (Trust::of_uid(if me == 1 { 2 } else { 1 }), me)
        }
    }

    /// Undoes [`foreign`].
    pub fn mine(path: &Path) {
        if nix::unistd::geteuid().is_root() {
            lchown(path, Some(0), None).unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{foreign, mine};
    use super::*;
    use std::os::unix::fs::{lchown, symlink};

    fn chmod(p: &Path, mode: u32) {
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A private directory in /tmp (root's, so the test's own directory
    /// is the first one the test can make foreign, see [`foreign`]), with
    /// `a/b/file`.
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir_in("/tmp").unwrap();
        let b = d.path().join("a/b");
        fs::create_dir_all(&b).unwrap();
        chmod(&d.path().join("a"), 0o755);
        chmod(&b, 0o755);
        let f = b.join("file");
        fs::write(&f, "x = 1\n").unwrap();
        chmod(&f, 0o644);
        (d, f)
    }

    fn read_with(f: &Path, trust: Trust) -> Result<Vec<u8>, String> {
        read_trusted(f, "config", NO_GROUP_OR_WORLD_WRITE, 1024, trust)
            .map(|b| b.to_vec())
            .map_err(|e| e.to_string())
    }

    fn read(f: &Path) -> Result<Vec<u8>, String> {
        read_with(f, Trust::test_runner())
    }

    #[test]
    fn trusted_file_reads() {
        let (_d, f) = tree();
        assert_eq!(read(&f).unwrap(), b"x = 1\n");
    }

    #[test]
    fn only_root_and_the_trusted_uid_are_trusted() {
        assert!(Trust::ROOT.trusts(0));
        assert!(!Trust::ROOT.trusts(1000));
        assert!(!Trust::ROOT.trusts(65534));
        let t = Trust::of_uid(1000);
        assert!(t.trusts(0) && t.trusts(1000));
        assert!(!t.trusts(1001) && !t.trusts(65534));
        let me = nix::unistd::geteuid().as_raw();
        assert!(Trust::test_runner().trusts(me));
        assert_eq!(Trust::test_runner() == Trust::ROOT, me == 0);
    }

    #[test]
    fn file_rules() {
        let (_d, f) = tree();
        chmod(&f, 0o664);
        assert!(read(&f).unwrap_err().contains("has mode 0664"));
        chmod(&f, 0o644);
        // The file is checked before its directories.
        let (other, owner) = foreign(&f);
        let e = read_with(&f, other).unwrap_err();
        assert!(
            e.contains(&format!("owned by uid {owner}, not root")),
            "{e}"
        );
        mine(&f);
        fs::write(&f, vec![b'#'; 1025]).unwrap();
        assert!(read(&f).unwrap_err().contains("larger than the 1024 bytes"));
        let e = read(Path::new("relative/file")).unwrap_err();
        assert!(e.contains("not an absolute path"), "{e}");
        let e = read_trusted(
            &f.with_file_name("nope"),
            "config",
            0,
            1,
            Trust::test_runner(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }

    /// The message names root alone in the programs that ship.
    #[test]
    fn production_refusal_names_root() {
        let (_d, f) = tree();
        let me = nix::unistd::geteuid().as_raw();
        if me == 0 {
            lchown(&f, Some(65534), None).unwrap();
        }
        let e = read_with(&f, Trust::ROOT).unwrap_err();
        let owner = if me == 0 { 65534 } else { me };
        assert!(
            e.contains(&format!("is owned by uid {owner}, not root; refusing it")),
            "{e}"
        );
    }

    #[test]
    fn fifo_device_and_symlink_are_refused_without_blocking() {
        let (_d, f) = tree();
        let fifo = f.with_file_name("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        assert!(read(&fifo).unwrap_err().contains("not a regular file"));
        assert!(
            read(Path::new("/dev/null"))
                .unwrap_err()
                .contains("not a regular file")
        );
        let link = f.with_file_name("link");
        symlink(&f, &link).unwrap();
        assert!(read(&link).unwrap_err().contains("symlink"));
    }

    #[test]
    fn directory_rules() {
        let (d, f) = tree();
        let a = d.path().join("a");
        let b = a.join("b");
        for (dir, mode, ok) in [
            (&b, 0o775, false),
            (&b, 0o1777, false),
            (&a, 0o777, false),
            (&a, 0o1777, true),
            (&a, 0o775, false),
            (&a, 0o711, true),
        ] {
            chmod(dir, mode);
            let r = read(&f);
            assert_eq!(r.is_ok(), ok, "{} {mode:o}: {r:?}", dir.display());
            if let Err(e) = r {
                assert!(e.contains(&format!("has mode {mode:04o}")), "{e}");
            }
            chmod(dir, 0o755);
        }
        // Someone else's directory above the file's, or the file's own.
        let (other, owner) = foreign(d.path());
        let e = check_dir_chain(&b, "config", other).unwrap_err();
        assert!(
            e.contains("directory above the config") && e.contains(&format!("uid {owner}")),
            "{e}"
        );
        let e = check_dir_chain(d.path(), "config", other).unwrap_err();
        assert!(
            e.contains("config directory") && e.contains(&format!("uid {owner}")),
            "{e}"
        );
        mine(d.path());
        assert!(read(&f).is_ok());
    }

    /// "Missing" is believed only where nobody else could have removed
    /// the file: the deepest existing directory on the way is checked.
    #[test]
    fn a_missing_file_is_believed_only_on_a_safe_way() {
        let (d, f) = tree();
        let b = f.parent().unwrap().to_path_buf();
        let missing = b.join("state.db");
        assert!(check_missing(&missing, "store", Trust::test_runner()).is_ok());
        // Its own directory must not be writable by others, even sticky.
        for mode in [0o777, 0o1777, 0o775] {
            chmod(&b, mode);
            let e = check_missing(&missing, "store", Trust::test_runner()).unwrap_err();
            assert!(
                e.contains("store directory") && e.contains("has mode"),
                "{e}"
            );
        }
        chmod(&b, 0o755);
        // A missing directory: the one above it may be sticky, not open.
        let deeper = b.join("state/sub/state.db");
        assert!(check_missing(&deeper, "store", Trust::test_runner()).is_ok());
        chmod(&b, 0o1777);
        assert!(check_missing(&deeper, "store", Trust::test_runner()).is_ok());
        chmod(&b, 0o777);
        let e = check_missing(&deeper, "store", Trust::test_runner()).unwrap_err();
        assert!(e.contains("directory above the store"), "{e}");
        chmod(&b, 0o755);
        // Someone else's directory on the way.
        let (other, owner) = foreign(d.path());
        let e = check_missing(&deeper, "store", other).unwrap_err();
        assert!(e.contains(&format!("uid {owner}")), "{e}");
        mine(d.path());
        // A dangling symlink or a file where a directory should be.
        let link = b.join("gone");
        symlink(b.join("nowhere"), &link).unwrap();
        assert!(check_missing(&link.join("state.db"), "store", Trust::test_runner()).is_err());
        assert!(check_missing(&f.join("state.db"), "store", Trust::test_runner()).is_err());
        assert!(check_missing(Path::new("rel/state.db"), "store", Trust::test_runner()).is_err());
    }

    #[test]
    fn symlinked_directories_are_checked_at_both_ends() {
        let (d, f) = tree();
        // A root-owned link to the trusted directory is fine.
        let link = d.path().join("etc");
        symlink(d.path().join("a/b"), &link).unwrap();
        assert!(read(&link.join("file")).is_ok());
        // ... unless its target is not.
        chmod(&d.path().join("a/b"), 0o777);
        let e = read(&link.join("file")).unwrap_err();
        assert!(e.contains("config directory"), "{e}");
        chmod(&d.path().join("a/b"), 0o755);
        // A link owned by another user could be pointed elsewhere (one in
        // /tmp, so it is the first thing of this test's on the way).
        let target = d.path().join("a/b");
        let link = tempfile::Builder::new()
            .prefix("p2fa-link")
            .make_in("/tmp", |p| symlink(&target, p))
            .unwrap();
        assert!(read(&link.path().join("file")).is_ok());
        let (other, owner) = foreign(link.path());
        let e = check_dir_chain(link.path(), "config", other).unwrap_err();
        assert!(
            e.contains("symlink") && e.contains(&format!("uid {owner}")),
            "{e}"
        );
        // ".." is refused rather than reasoned about.
        let e = read(&d.path().join("a/b/../b/file")).unwrap_err();
        assert!(e.contains("\"..\""), "{e}");
        assert!(f.exists());
    }
}
