//! Local FIDO2 security keys through libfido2's command-line tools
//! (`fido2-token`, `fido2-cred`, `fido2-assert`, Debian package
//! `fido2-tools`), run as bounded subprocesses.
//!
//! Why the tools and not a CTAP crate: libfido2 is the maintained stack
//! pam_u2f and OpenSSH use (HID, NFC via PC/SC, quirks of real keys), and a
//! subprocess keeps it out of the PAM host's address space. The tools only
//! talk to the key; every decision (relying party, flags, signature,
//! counter) is made in Rust by `crate::factor::fido2`.
//!
//! Each run: an absolute path in the configured directory, root-owned and
//! not writable by others; no shell; an empty environment; `/` as working
//! directory; the small input written at once through a socket (so a child
//! that exits early gives EPIPE, never a SIGPIPE to the host process);
//! stdout and stderr read with `poll` until a deadline, then the child is
//! killed and reaped; at most [`MAX_OUTPUT`] bytes of output. No threads.

use crate::clock::{self, Deadline};
use crate::secure_fs::{self, Trust};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Output beyond this is not a FIDO2 tool answering: kill it.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// What went wrong running a tool, before its answer could be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// The tool is missing or not safe to run (ownership, mode).
    Unusable(String),
    /// No answer before the deadline; the child was killed.
    Timeout,
    /// Spawning, reading or waiting failed, or too much output.
    Failed(String),
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolError::Unusable(m) => write!(f, "fido2 tool unusable: {m}"),
            ToolError::Timeout => f.write_str("no answer from the security key in time"),
            ToolError::Failed(m) => write!(f, "fido2 tool failed: {m}"),
        }
    }
}

/// A finished run: exit status and what it printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The tool's own error line, made safe for logs and terminals.
    pub fn error_text(&self) -> String {
        let line = self
            .stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("exit status 1");
        crate::audit::printable(line, 160)
    }
}

/// Where the tools are and how long one run may take.
#[derive(Debug, Clone)]
pub struct Tools {
    pub dir: PathBuf,
    pub timeout: Duration,
    /// Whose tools and directories are trusted ([`Trust::ROOT`] outside tests).
    pub trust: Trust,
}

/// One authenticator as `fido2-token -L` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub path: String,
    pub description: String,
}

/// What `fido2-cred -M` printed (see fido2-cred(1), OUTPUT FORMAT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadeCredential {
    pub cdh: Vec<u8>,
    pub rp_id: String,
    pub format: String,
    pub auth_data: Vec<u8>,
    pub credential_id: Vec<u8>,
    pub signature: Vec<u8>,
    /// Attestation certificate (DER), empty for self attestation.
    pub x5c: Vec<u8>,
}

/// What `fido2-assert -G` printed (see fido2-assert(1), OUTPUT FORMAT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub cdh: Vec<u8>,
    pub rp_id: String,
    pub auth_data: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Why `fido2-assert` gave no assertion, from its error line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssertFailure {
    /// The key does not hold this credential (another key plugged in).
    NoCredential,
    /// The device went away or could not be opened.
    DeviceGone,
    /// The key itself gave up waiting for a touch.
    KeyTimeout,
    /// The key cannot do the requested user verification.
    UvUnsupported,
    /// Anything else; the tool's error line.
    Other(String),
}

impl AssertFailure {
    pub fn classify(err: &str) -> AssertFailure {
        if err.contains("FIDO_ERR_NO_CREDENTIALS") {
            AssertFailure::NoCredential
        } else if err.contains("fido_dev_open")
            || err.contains("FIDO_ERR_RX")
            || err.contains("FIDO_ERR_TX")
        {
            AssertFailure::DeviceGone
        } else if err.contains("FIDO_ERR_ACTION_TIMEOUT")
            || err.contains("FIDO_ERR_USER_ACTION_TIMEOUT")
        {
            AssertFailure::KeyTimeout
        } else if [
            "FIDO_ERR_UNSUPPORTED_OPTION",
            "FIDO_ERR_INVALID_OPTION",
            "FIDO_ERR_PIN_REQUIRED",
            "FIDO_ERR_PIN_NOT_SET",
            "FIDO_ERR_UV_BLOCKED",
            "FIDO_ERR_UV_INVALID",
        ]
        .iter()
        .any(|e| err.contains(e))
        {
            AssertFailure::UvUnsupported
        } else {
            AssertFailure::Other(err.to_string())
        }
    }
}

fn b64(s: &str, what: &str) -> Result<Vec<u8>, String> {
    B64.decode(s.trim())
        .map_err(|_| format!("the tool printed a {what} that is not base64"))
}

/// A string the tools read as one input line: no newline or NUL.
fn line_safe(s: &str) -> bool {
    !s.is_empty() && !s.contains(['\n', '\r', '\0'])
}

impl Tools {
    fn path(&self, tool: &str) -> Result<PathBuf, ToolError> {
        let path = self.dir.join(tool);
        secure_fs::check_dir_chain(&self.dir, "fido2 tools", self.trust)
            .map_err(ToolError::Unusable)?;
        secure_fs::check_root_owned(
            &path,
            "fido2 tool",
            secure_fs::NO_GROUP_OR_WORLD_WRITE,
            self.trust,
        )
        .map_err(|e| {
            if !path.exists() {
                ToolError::Unusable(format!(
                    "{} is missing (install the package fido2-tools)",
                    path.display()
                ))
            } else {
                ToolError::Unusable(e)
            }
        })?;
        Ok(path)
    }

    /// Runs `tool args...` with `input` on stdin, bounded by the timeout.
    pub fn run(&self, tool: &str, args: &[&str], input: &[u8]) -> Result<Output, ToolError> {
        self.run_for(tool, args, input, self.timeout)
    }

    fn run_for(
        &self,
        tool: &str,
        args: &[&str],
        input: &[u8],
        timeout: Duration,
    ) -> Result<Output, ToolError> {
        let path = self.path(tool)?;
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            ToolError::Failed(format!("{tool}: {what}: {e}"))
        };
        let (ours, theirs) = UnixStream::pair().map_err(|e| failed("socketpair", &e))?;
        let mut child = Command::new(&path)
            .args(args)
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed("cannot start", &e))?;
        let deadline = Deadline::after(timeout);
        let result = feed(&ours, input)
            .and_then(|()| collect(&mut child, deadline))
            .map_err(|e| match e {
                Collect::Timeout => ToolError::Timeout,
                Collect::Failed(m) => ToolError::Failed(format!("{tool}: {m}")),
            });
        drop(ours);
        if result.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
        result
    }

    /// `fido2-token -L`: the authenticators the OS sees.
    pub fn devices(&self) -> Result<Vec<Device>, ToolError> {
        let out = self.run_for(
            "fido2-token",
            &["-L"],
            b"",
            self.timeout.min(Duration::from_secs(10)),
        )?;
        if !out.success {
            return Err(ToolError::Failed(format!(
                "fido2-token -L: {}",
                out.error_text()
            )));
        }
        Ok(parse_devices(&out.stdout))
    }

    /// `fido2-cred -M device es256` with client data hash, relying party,
    /// user name and user id on stdin. A PIN, if the key wants one, is
    /// asked by the tool itself on the terminal (enrollment is a CLI).
    pub fn make_credential(
        &self,
        device: &str,
        rp_id: &str,
        user: &str,
        user_id: &[u8],
        cdh: &[u8],
    ) -> Result<Result<MadeCredential, String>, ToolError> {
        if !line_safe(rp_id) || !line_safe(user) || !device_ok(device) {
            return Ok(Err("bad relying party, user or device name".into()));
        }
        let input = format!(
            "{}\n{rp_id}\n{user}\n{}\n",
            B64.encode(cdh),
            B64.encode(user_id)
        );
        let out = self.run("fido2-cred", &["-M", device, "es256"], input.as_bytes())?;
        if !out.success {
            return Ok(Err(out.error_text()));
        }
        Ok(parse_made(&out.stdout))
    }

    /// `fido2-assert -G -t up=... [-t uv=true] device` for one credential.
    /// The tool takes a single credential id per run.
    pub fn get_assertion(
        &self,
        device: &str,
        rp_id: &str,
        credential_id: &[u8],
        cdh: &[u8],
        up: bool,
        uv: bool,
    ) -> Result<Result<Assertion, AssertFailure>, ToolError> {
        if !line_safe(rp_id) || !device_ok(device) {
            return Ok(Err(AssertFailure::Other(
                "bad relying party or device name".into(),
            )));
        }
        let input = format!(
            "{}\n{rp_id}\n{}\n",
            B64.encode(cdh),
            B64.encode(credential_id)
        );
        let mut args = vec!["-G", "-t", if up { "up=true" } else { "up=false" }];
        if uv {
            args.extend(["-t", "uv=true"]);
        }
        args.push(device);
        let out = self.run("fido2-assert", &args, input.as_bytes())?;
        if !out.success {
            return Ok(Err(AssertFailure::classify(&out.error_text())));
        }
        Ok(parse_assertion(&out.stdout).map_err(AssertFailure::Other))
    }
}

/// A device path we pass as an argument: not empty, no option look-alike.
fn device_ok(path: &str) -> bool {
    line_safe(path) && !path.starts_with('-')
}

/// Lines of `fido2-token -L`: `PATH: vendor=0x1050, product=0x0407 (Yubico YubiKey ...)`.
/// Paths may contain spaces, so split at the last `: vendor=`.
pub fn parse_devices(stdout: &str) -> Vec<Device> {
    stdout
        .lines()
        .filter_map(|l| {
            let (path, rest) = l.rsplit_once(": vendor=")?;
            let description = rest
                .split_once('(')
                .map(|(_, d)| d.trim_end().trim_end_matches(')').trim())
                .unwrap_or("")
                .to_string();
            device_ok(path).then(|| Device {
                path: path.to_string(),
                description: crate::audit::printable(&description, 60),
            })
        })
        .collect()
}

fn parse_made(stdout: &str) -> Result<MadeCredential, String> {
    let l: Vec<&str> = stdout.lines().collect();
    if l.len() < 6 {
        return Err(format!(
            "fido2-cred printed {} lines, expected at least 6",
            l.len()
        ));
    }
    Ok(MadeCredential {
        cdh: b64(l[0], "client data hash")?,
        rp_id: l[1].to_string(),
        format: l[2].to_string(),
        auth_data: b64(l[3], "authenticator data")?,
        credential_id: b64(l[4], "credential id")?,
        signature: b64(l[5], "signature")?,
        x5c: match l.get(6) {
            Some(s) if !s.trim().is_empty() => b64(s, "certificate")?,
            _ => Vec::new(),
        },
    })
}

fn parse_assertion(stdout: &str) -> Result<Assertion, String> {
    let l: Vec<&str> = stdout.lines().collect();
    if l.len() < 4 {
        return Err(format!(
            "fido2-assert printed {} lines, expected at least 4",
            l.len()
        ));
    }
    Ok(Assertion {
        cdh: b64(l[0], "client data hash")?,
        rp_id: l[1].to_string(),
        auth_data: b64(l[2], "authenticator data")?,
        signature: b64(l[3], "signature")?,
    })
}

enum Collect {
    Timeout,
    Failed(String),
}

/// Writes the whole input (a few hundred bytes: fits the socket buffer)
/// without SIGPIPE, then closes our write side so the tool sees EOF.
fn feed(sock: &UnixStream, input: &[u8]) -> Result<(), Collect> {
    use nix::sys::socket::{MsgFlags, Shutdown, send, shutdown};
    let fd = sock.as_raw_fd();
    let mut sent = 0;
    while sent < input.len() {
        match send(fd, &input[sent..], MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => sent += n,
            Err(nix::errno::Errno::EINTR) => {}
            // The tool exited without reading: its exit status says why.
            Err(nix::errno::Errno::EPIPE) => break,
            Err(e) => return Err(Collect::Failed(format!("writing input: {e}"))),
        }
    }
    let _ = shutdown(fd, Shutdown::Write);
    Ok(())
}

/// Reads stdout and stderr until both close, then reaps the child; all
/// before `deadline`.
fn collect(child: &mut Child, deadline: Deadline) -> Result<Output, Collect> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut stdout = child
        .stdout
        .take()
        .ok_or(Collect::Failed("no stdout".into()))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or(Collect::Failed("no stderr".into()))?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    let mut buf = [0u8; 4096];
    while out_open || err_open {
        let left = deadline.remaining();
        if left.is_zero() {
            return Err(Collect::Timeout);
        }
        let wait = PollTimeout::try_from(left.as_millis().min(60_000)).unwrap_or(PollTimeout::MAX);
        let (o_ready, e_ready) = {
            let mut fds = Vec::with_capacity(2);
            if out_open {
                fds.push(PollFd::new(stdout.as_fd(), PollFlags::POLLIN));
            }
            if err_open {
                fds.push(PollFd::new(stderr.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, wait) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Collect::Failed(format!("poll: {e}"))),
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let mut it = fds.iter();
            let o = if out_open {
                it.next().is_some_and(ready)
            } else {
                false
            };
            let e = if err_open {
                it.next().is_some_and(ready)
            } else {
                false
            };
            (o, e)
        };
        for (ready, open, pipe, acc) in [
            (
                o_ready,
                &mut out_open,
                &mut stdout as &mut dyn Read,
                &mut out,
            ),
            (
                e_ready,
                &mut err_open,
                &mut stderr as &mut dyn Read,
                &mut err,
            ),
        ] {
            if !ready {
                continue;
            }
            match pipe.read(&mut buf) {
                Ok(0) => *open = false,
                Ok(n) => acc.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Collect::Failed(format!("reading output: {e}"))),
            }
        }
        if out.len() + err.len() > MAX_OUTPUT {
            return Err(Collect::Failed(format!(
                "more than {MAX_OUTPUT} bytes of output"
            )));
        }
    }
    // Both pipes closed: the tool is exiting; reap it, still bounded.
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Ok(Output {
                    success: status.success(),
                    stdout: String::from_utf8_lossy(&out).into_owned(),
                    stderr: String::from_utf8_lossy(&err).into_owned(),
                });
            }
            Ok(None) if !deadline.passed() => clock::sleep(Duration::from_millis(5)),
            Ok(None) => return Err(Collect::Timeout),
            Err(e) => return Err(Collect::Failed(format!("waiting for the tool: {e}"))),
        }
    }
}

/// The relying party a local credential is bound to: the configured one,
/// else `pam://HOSTNAME` (pam_u2f's default, so its credentials carry over).
pub fn default_rp_id() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("pam://{host}")
}

/// The tools' directory as configured, with the deadline of one run.
pub fn from_config(cfg: &crate::config::WebauthnConfig, trust: Trust) -> Tools {
    Tools {
        dir: cfg.fido2_tools_dir.clone(),
        timeout: Duration::from_secs(cfg.local_timeout_seconds),
        trust,
    }
}

/// `pam://HOST` for an empty `local_rp_id`.
pub fn rp_id(cfg: &crate::config::WebauthnConfig) -> String {
    if cfg.local_rp_id.is_empty() {
        default_rp_id()
    } else {
        cfg.local_rp_id.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn script(dir: &Path, name: &str, body: &str) {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn tools(secs: u64) -> (tempfile::TempDir, Tools) {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = Tools {
            dir: d.path().to_path_buf(),
            timeout: Duration::from_secs(secs),
            trust: Trust::test_runner(),
        };
        (d, t)
    }

    #[test]
    fn lists_devices_in_the_real_tools_format() {
        let d = parse_devices(
            "/dev/hidraw3: vendor=0x1050, product=0x0407 (Yubico YubiKey OTP+FIDO+CCID)\n\
             pcsc://slot0: vendor=0x0000, product=0x0000 (PC/SC Reader)\n\
             /dev/odd name: vendor=0x1, product=0x2 (x)\n\
             -o: vendor=0x1, product=0x2 (evil)\n\
             garbage\n",
        );
        assert_eq!(d.len(), 3, "{d:?}");
        assert_eq!(d[0].path, "/dev/hidraw3");
        assert_eq!(d[0].description, "Yubico YubiKey OTP+FIDO+CCID");
        assert_eq!(d[2].path, "/dev/odd name");
    }

    #[test]
    fn environment_is_cleared_and_input_arrives() {
        let (d, t) = tools(5);
        // /proc/$$/environ: what the shell was started with.
        script(
            d.path(),
            "fido2-token",
            "tr '\\0' '\\n' </proc/$$/environ; echo \"args=$*\"; cat",
        );
        let out = t.run("fido2-token", &["-L", "x y"], b"hello\n").unwrap();
        assert!(out.success);
        assert_eq!(
            out.stdout, "args=-L x y\nhello\n",
            "environment leaked or input lost"
        );
    }

    #[test]
    fn hanging_tool_is_killed_at_the_deadline() {
        let (d, t) = tools(1);
        script(d.path(), "fido2-assert", "exec sleep 30");
        let start = clock::Stopwatch::start();
        assert!(matches!(
            t.run("fido2-assert", &[], b""),
            Err(ToolError::Timeout)
        ));
        assert!(start.elapsed() < Duration::from_secs(5));
        // Closing its pipes but not exiting is still a timeout.
        script(d.path(), "fido2-assert", "exec >&- 2>&-; sleep 30");
        assert!(matches!(
            t.run("fido2-assert", &[], b""),
            Err(ToolError::Timeout)
        ));
    }

    #[test]
    fn huge_output_early_exit_and_unsafe_tools_are_refused() {
        let (d, t) = tools(5);
        script(d.path(), "fido2-token", "yes x | head -c 200000");
        assert!(
            matches!(t.run("fido2-token", &[], b""), Err(ToolError::Failed(m)) if m.contains("bytes of output"))
        );
        // Exits at once without reading a large input: no SIGPIPE here.
        script(
            d.path(),
            "fido2-cred",
            "echo 'fido2-cred: input error' >&2; exit 1",
        );
        let out = t.run("fido2-cred", &[], &vec![b'a'; 200_000]).unwrap();
        assert!(!out.success);
        assert_eq!(out.error_text(), "fido2-cred: input error");
        let p = d.path().join("fido2-cred");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o757)).unwrap();
        assert!(matches!(
            t.run("fido2-cred", &[], b""),
            Err(ToolError::Unusable(_))
        ));
        assert!(
            matches!(t.run("fido2-assert", &[], b""), Err(ToolError::Unusable(m)) if m.contains("fido2-tools"))
        );
    }

    #[test]
    fn classifies_the_real_error_lines() {
        use AssertFailure::*;
        for (line, want) in [
            (
                "fido2-assert: fido_dev_get_assert: FIDO_ERR_NO_CREDENTIALS",
                NoCredential,
            ),
            (
                "fido2-assert: fido_dev_open /dev/hidraw0: FIDO_ERR_INTERNAL",
                DeviceGone,
            ),
            (
                "fido2-assert: fido_dev_get_assert: FIDO_ERR_ACTION_TIMEOUT",
                KeyTimeout,
            ),
            (
                "fido2-assert: fido_dev_get_assert: FIDO_ERR_UNSUPPORTED_OPTION",
                UvUnsupported,
            ),
        ] {
            assert_eq!(AssertFailure::classify(line), want, "{line}");
        }
        assert!(matches!(
            AssertFailure::classify("fido2-assert: input error"),
            Other(_)
        ));
    }
}
