//! The fleet store's break-glass (`postgres.break_glass`, off by
//! default): when the shared database cannot be reached, root at a local
//! console may still log in on the password alone, so a network outage
//! cannot lock the admin out of every machine at once.
//!
//! Only when every one of these holds: the store is PostgreSQL and could
//! not be opened or read before the prompt (an answer from the store,
//! such as "locked" or a wrong code, never qualifies); the user is
//! `root`; the calling process runs as real uid 0 (login, not sudo or su
//! run by someone else); there is no remote host; PAM_TTY is a console
//! (`tty1`, `ttyS0`, `hvc0`, `console`, with or without `/dev/`); and the
//! service is one of `postgres.break_glass_services` (default `login`).
//! The verdict is PAM_IGNORE, a policy pass, never success, logged at
//! severity alert.

use super::Login;
use p2fa_core::config::{Config, StoreKind};

/// Whether the break-glass applies to this login.
pub fn applies(cfg: &Config, login: &Login<'_>) -> bool {
    cfg.store == StoreKind::Postgres
        && cfg.postgres.break_glass
        && login.user == "root"
        && login.caller_uid == 0
        && login.rhost.is_empty()
        && is_console(login.tty)
        && cfg
            .postgres
            .break_glass_services
            .iter()
            .any(|s| s == login.service)
}

/// `tty1`..., `ttyS0`..., `hvc0`..., `console`, optionally under `/dev/`.
/// Not `pts/N` (ssh, terminal emulators) and not `ttyUSB`/`ttyACM`.
fn is_console(tty: &str) -> bool {
    let t = tty.strip_prefix("/dev/").unwrap_or(tty);
    if t == "console" {
        return true;
    }
    let digits = |rest: &str| {
        !rest.is_empty() && rest.len() <= 3 && rest.bytes().all(|b| b.is_ascii_digit())
    };
    ["ttyS", "hvc", "tty"]
        .iter()
        .any(|p| t.strip_prefix(p).is_some_and(digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login<'a>(
        user: &'a str,
        service: &'a str,
        rhost: &'a str,
        tty: &'a str,
        uid: u32,
    ) -> Login<'a> {
        Login {
            user,
            service,
            rhost,
            tty,
            caller_uid: uid,
        }
    }

    #[test]
    fn only_local_console_root_on_a_listed_service() {
        let mut cfg = Config {
            store: StoreKind::Postgres,
            ..Config::default()
        };
        cfg.postgres.break_glass = true;
        assert!(applies(&cfg, &login("root", "login", "", "tty1", 0)));
        assert!(applies(&cfg, &login("root", "login", "", "/dev/ttyS0", 0)));
        assert!(applies(&cfg, &login("root", "login", "", "console", 0)));
        assert!(!applies(&cfg, &login("root", "login", "", "pts/3", 0)));
        assert!(!applies(&cfg, &login("root", "login", "", "ttyUSB0", 0)));
        assert!(!applies(&cfg, &login("root", "login", "", "", 0)));
        assert!(!applies(
            &cfg,
            &login("root", "login", "192.0.2.1", "tty1", 0)
        ));
        assert!(!applies(&cfg, &login("root", "sudo", "", "tty1", 0)));
        assert!(!applies(&cfg, &login("root", "login", "", "tty1", 1000)));
        assert!(!applies(&cfg, &login("alice", "login", "", "tty1", 0)));
        cfg.postgres.break_glass = false;
        assert!(!applies(&cfg, &login("root", "login", "", "tty1", 0)));
        cfg.postgres.break_glass = true;
        cfg.store = StoreKind::Sqlite;
        assert!(!applies(&cfg, &login("root", "login", "", "tty1", 0)));
    }
}
