//! System user lookups (the passwd database via NSS).

/// Returns true when `name` is a user the system knows.
pub fn exists(name: &str) -> bool {
    canonical(name).is_some()
}

/// The account's own name for `name` as typed: `pw_name` from getpwnam.
/// With an NSS that matches names case-insensitively (SSSD and winbind
/// for Active Directory do), `ALICE` and `alice` are one account; every
/// store lookup, log line and policy decision must use this name, or
/// `ALICE` is an unenrolled stranger that `unenrolled = allow` lets in.
/// `None` for an unknown user or a name (typed or returned) we would not
/// store.
pub fn canonical(name: &str) -> Option<String> {
    if !valid_name(name) {
        return None;
    }
    let user = nix::unistd::User::from_name(name).ok().flatten()?;
    valid_name(&user.name).then_some(user.name)
}

/// Names we are willing to store: 1..=64 printable ASCII characters,
/// without '/', ':' or whitespace (which no sane passwd entry has).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':')
}

/// The real uid of this process (in the module: its caller's, which under
/// sudo or su is the invoking user's).
pub fn real_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// Login name of the real uid of this process.
pub fn current() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Names of the groups `name` belongs to (primary and supplementary),
/// from the system's group database; empty if the user is unknown.
pub fn groups(name: &str) -> Vec<String> {
    use nix::unistd::{Group, User, getgrouplist};
    let Ok(Some(user)) = User::from_name(name) else {
        return Vec::new();
    };
    let Ok(cname) = std::ffi::CString::new(name) else {
        return Vec::new();
    };
    getgrouplist(&cname, user.gid)
        .unwrap_or_else(|_| vec![user.gid])
        .into_iter()
        .filter_map(|gid| Group::from_gid(gid).ok().flatten())
        .map(|g| g.name)
        .collect()
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("alice"));
        assert!(valid_name("svc-backup_1"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("a\nb"));
        assert!(!valid_name(&"a".repeat(65)));
        assert!(exists("root"));
        assert_eq!(canonical("root").as_deref(), Some("root"));
        assert_eq!(canonical("no-such-user-pam2fa"), None);
        assert_eq!(canonical("a b"), None);
        assert!(!exists("no-such-user-pam2fa"));
        assert!(groups("root").iter().any(|g| g == "root"));
        assert!(groups("no-such-user-pam2fa").is_empty());
    }
}
