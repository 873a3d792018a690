//! One `pam_authenticate()` driven prompt by prompt, for factors whose
//! answer only exists after the module has acted (a code that was just
//! e-mailed, a push to approve). Runs `tests/c/pam_once.c` (compiled on
//! first use) through pam_wrapper, and reports the process's thread count
//! before and after the PAM call.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Builds the driver once per test binary (into the cargo target dir).
pub fn pam_once_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/pam_once.c");
            let out_dir = super::bin_dir().join("test-helpers");
            std::fs::create_dir_all(&out_dir).unwrap();
            let out = out_dir.join(format!("pam_once-{}", std::process::id()));
            let st = Command::new("gcc")
                .args(["-Wall", "-Wextra", "-O2", "-o"])
                .arg(&out)
                .arg(&src)
                .arg("-lpam")
                .status()
                .expect("gcc");
            assert!(st.success(), "compiling {}", src.display());
            out
        })
        .clone()
}

pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    pub transcript: Vec<String>,
    _serial: std::fs::File,
}

/// The end of a session.
#[derive(Debug)]
pub struct Outcome {
    pub ok: bool,
    pub transcript: String,
    pub threads_before: usize,
    pub threads_after: usize,
}

impl Session {
    /// Starts `pam_once SERVICE USER` with the services of `svc_dir`.
    pub fn start(svc_dir: &Path, service: &str, user: &str) -> Session {
        Session::start_from(svc_dir, service, user, None)
    }

    /// [`Session::start`] with PAM_RHOST set to `rhost`, as sshd does.
    pub fn start_from(svc_dir: &Path, service: &str, user: &str, rhost: Option<&str>) -> Session {
        let serial = super::pam_wrapper_lock();
        let mut cmd = Command::new(pam_once_bin());
        if let Some(r) = rhost {
            cmd.env("PAM_ONCE_RHOST", r);
        }
        let mut child = cmd
            .args([service, user])
            .env("LD_PRELOAD", "libpam_wrapper.so")
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", svc_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Session {
            stdin: child.stdin.take(),
            child,
            lines: rx,
            transcript: Vec::new(),
            _serial: serial,
        }
    }

    /// Waits for a prompt containing `needle`; returns the prompt line.
    pub fn expect_prompt(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.transcript.push(line.clone());
                    if line.starts_with("prompt: ") {
                        assert!(
                            line.contains(needle),
                            "expected a prompt with {needle:?}, got {line:?}\n{}",
                            self.transcript.join("\n")
                        );
                        return line;
                    }
                    if line.starts_with("result ") {
                        panic!(
                            "PAM finished before prompting {needle:?}:\n{}",
                            self.transcript.join("\n")
                        );
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no prompt {needle:?} within {within:?}:\n{}",
                    self.transcript.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "driver exited before prompting {needle:?}:\n{}",
                    self.transcript.join("\n")
                ),
            }
        }
    }

    pub fn answer(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for the PAM call to end (answering any further prompt with
    /// an empty line is NOT done: an unexpected prompt fails the test).
    pub fn finish(mut self, within: Duration) -> Outcome {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.transcript.push(line.clone());
                    assert!(
                        !line.starts_with("prompt: "),
                        "unexpected prompt:\n{}",
                        self.transcript.join("\n")
                    );
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "PAM call did not end within {within:?}:\n{}",
                        self.transcript.join("\n")
                    );
                }
            }
        }
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        let transcript = self.transcript.join("\n");
        let count = |prefix: &str| -> Option<usize> {
            self.transcript
                .iter()
                .find_map(|l| l.strip_prefix(prefix).and_then(|n| n.trim().parse().ok()))
        };
        let (before, after) = (count("threads-before "), count("threads-after "));
        Outcome {
            ok: status.success(),
            threads_before: before.unwrap_or_else(|| panic!("no thread count:\n{transcript}")),
            threads_after: after.unwrap_or_else(|| panic!("no thread count:\n{transcript}")),
            transcript,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
