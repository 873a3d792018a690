//! Remembered devices: after a proven second factor, the same user on the
//! same service from the same source skips it for `remember.hours`.
//!
//! The source is the remote host for network logins and the terminal plus
//! login session for local ones. The store keeps a keyed hash of (user,
//! service, source) for the lookup, and a readable description for
//! `2fa-enroll devices list`.

use super::{Login, Run};
use p2fa_core::audit::clean;
use p2fa_core::crypto::HostKey;

pub(super) struct Device {
    pub hash: [u8; 32],
    pub source: String,
}

impl Device {
    pub fn of(key: &HostKey, login: Login<'_>) -> Device {
        let source = if !login.rhost.is_empty() {
            format!("rhost {}", login.rhost)
        } else {
            let sid = nix::unistd::getsid(None).map(|p| p.as_raw()).unwrap_or(0);
            let tty = if login.tty.is_empty() { "-" } else { login.tty };
            format!("tty {tty} session {sid}")
        };
        let hash = key.code_hash(
            &format!("remember\0{}\0{}", login.user, login.service),
            &source,
        );
        Device { hash, source }
    }
}

impl Run<'_> {
    pub(super) fn remember(&mut self, d: &Device, factor: &str) {
        let now = self.now();
        let until = now + i64::from(self.cfg.remember.hours) * 3600;
        let res = self.store.write().and_then(|tx| {
            tx.remember(
                self.login.user,
                self.login.service,
                &d.hash,
                &d.source,
                factor,
                now,
                until,
            )?;
            tx.commit()
        });
        match res {
            Ok(()) => self.audit.info(&format!(
                "remembered {} source={} hours={}",
                self.who,
                clean(&d.source),
                self.cfg.remember.hours
            )),
            // The login itself succeeded; failing to remember only means
            // the next login asks again.
            Err(e) => self
                .audit
                .warning(&format!("could not remember device {}: {e}", self.who)),
        }
    }
}
