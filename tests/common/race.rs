//! Many logins at once through real libpam: a uniquely named
//! `/etc/pam.d` service per race, and [`race`], which starts the logins,
//! lets them reach the prompt and answers them all at once.
//!
//! The racers do not use pam_wrapper: it gives each process a directory
//! named `/tmp/pam.X` with one of only 62 letters, chosen by a check-then-
//! mkdir that two processes starting together can both win, so 64 of them
//! at once run out of names or share one.

use super::{Env, module_path};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `/etc/pam.d/<unique name>` for one race, removed when dropped.
pub struct EtcPamService {
    pub name: String,
    path: std::path::PathBuf,
}

impl EtcPamService {
    pub fn new(env: &Env) -> EtcPamService {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "p2fa-race-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let path = std::path::Path::new("/etc/pam.d").join(&name);
        std::fs::write(
            &path,
            format!(
                "auth required {} config={}\naccount required pam_permit.so\n",
                module_path().display(),
                env.conf.display()
            ),
        )
        .unwrap();
        EtcPamService { name, path }
    }
}

impl Drop for EtcPamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Starts `n` logins, lets each reach the prompt, then answers them all
/// at once; returns (successes, outputs, log lines).
pub fn race(env: &Env, user: &str, answer: &str, n: usize) -> (usize, Vec<String>, Vec<String>) {
    let service = EtcPamService::new(env);
    let collector = env.collect_logs();
    let mut children: Vec<Child> = (0..n)
        .map(|_| {
            Command::new("pamtester")
                .args([service.name.as_str(), user, "authenticate"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Each child now opens the store, reads the user, loads the key and
    // blocks at the prompt; a short pause lets most of them get there so
    // the answers land nearly together.
    std::thread::sleep(std::time::Duration::from_millis(500));
    for c in &mut children {
        let mut stdin = c.stdin.take().unwrap();
        let _ = stdin.write_all(answer.as_bytes());
    }
    let mut successes = 0;
    let mut outputs = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.success(),
            text.contains("successfully authenticated"),
            "{text}"
        );
        if out.status.success() {
            successes += 1;
        }
        outputs.push(text);
    }
    (successes, outputs, collector.finish())
}
