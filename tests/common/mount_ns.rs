//! A private mount namespace for one command (`unshare --mount`), whose
//! `/dev/log` is an Env's syslog socket and, if asked, whose `/etc/hosts`
//! is the test's own. A module with a broken config cannot know the
//! configured `log_socket` and logs to `/dev/log`, which this machine may
//! not have and which must not be replaced globally; test names in the
//! hosts file let a client reach a stand-in on 127.0.0.1 through a name
//! that is not a loopback literal.

use super::{Attempt, Env};
use std::fs;

/// argv prefix that runs the rest of a command in the namespace. With
/// `hosts`, that text is `/etc/hosts` there.
pub fn prefix(env: &Env, hosts: Option<&str>) -> Vec<String> {
    let ns = env.root().join("ns");
    let (old, new) = (ns.join("olddev"), ns.join("newdev"));
    if !new.exists() {
        fs::create_dir_all(&old).unwrap();
        fs::create_dir_all(&new).unwrap();
        for dev in ["null", "zero", "full", "random", "urandom", "tty"] {
            std::os::unix::fs::symlink(old.join(dev), new.join(dev)).unwrap();
        }
        std::os::unix::fs::symlink(env.root().join("log.sock"), new.join("log")).unwrap();
    }
    let mut script = format!(
        "set -e; mount --make-rprivate /; mount --rbind /dev '{}'; mount --bind '{}' /dev; ",
        old.display(),
        new.display()
    );
    if let Some(text) = hosts {
        let file = ns.join("hosts");
        fs::write(&file, text).unwrap();
        script += &format!("mount --bind '{}' /etc/hosts; ", file.display());
    }
    script += "exec \"$@\"";
    ["unshare", "--mount", "sh", "-c", &script, "sh"]
        .map(String::from)
        .to_vec()
}

/// A login through libpam (pamtester `args`, pam_wrapper) in the
/// namespace.
pub fn attempt(env: &Env, hosts: Option<&str>, args: &[&str], input: &str) -> Attempt {
    let prefix = prefix(env, hosts);
    let p: Vec<&str> = prefix.iter().map(String::as_str).collect();
    env.attempt_cmd(env.pamtester(&p, None, args), input.as_bytes())
}
