//! The software stand-in for libfido2's tools (tests/mock/fido2_tools): a
//! private root-owned copy per test, its misbehaviour switches, and the
//! credentials it holds. These machines have no USB, so no real or virtual
//! HID key.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const MOCK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mock/fido2_tools");
/// The one device the stand-in lists.
pub const DEVICE: &str = "/dev/hidraw-p2fa-mock0";

pub struct Keys {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Keys {
    /// A private copy of the stand-in tools (root-owned, 0755).
    pub fn new() -> Keys {
        let dir = tempfile::Builder::new()
            .prefix("p2fa-fido2")
            .tempdir()
            .unwrap();
        let path = dir.path().to_path_buf();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        for f in ["fido2-token", "fido2-cred", "fido2-assert", "mockkey.py"] {
            fs::copy(Path::new(MOCK).join(f), path.join(f)).unwrap();
        }
        fs::create_dir(path.join("state")).unwrap();
        Keys { _dir: dir, path }
    }

    pub fn set(&self, mode: &str, on: bool) {
        let p = self.path.join("state").join(mode);
        if on {
            fs::write(p, "").unwrap();
        } else {
            let _ = fs::remove_file(p);
        }
    }

    /// Every tool run so far (one line each), then forgotten.
    pub fn calls(&self) -> String {
        let p = self.path.join("state/calls.log");
        let text = fs::read_to_string(&p).unwrap_or_default();
        let _ = fs::remove_file(p);
        text
    }

    /// Processes still running one of this directory's tools.
    pub fn running(&self) -> Vec<String> {
        let me = self.path.to_string_lossy().to_string();
        let mut found = Vec::new();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(cmd) = fs::read(e.path().join("cmdline"))
                && String::from_utf8_lossy(&cmd).contains(&me)
            {
                found.push(String::from_utf8_lossy(&cmd).replace('\0', " "));
            }
        }
        found
    }

    /// What pamu2fcfg (>= 1.1) does: makes an es256 credential for `rp` on
    /// the key (the stand-in's `fido2-cred -M`), has the real
    /// `fido2-cred -V` of libfido2 verify it, and returns the credential
    /// id (pam_u2f's key handle) and the public key as libfido2's
    /// `es256_pk_t`, x || y, which is what pamu2fcfg writes in base64.
    pub fn pamu2fcfg(&self, rp: &str, user: &str) -> (Vec<u8>, Vec<u8>) {
        let cdh = "cGFtdTJmY2ZnLXN0eWxlLWNsaWVudC1kYXRhLWhhc2g=";
        let made = run(
            &self.path.join("fido2-cred"),
            &["-M", DEVICE, "es256"],
            &format!("{cdh}\n{rp}\n{user}\ndXNlci1pZA==\n"),
        );
        let verified = run(Path::new("/usr/bin/fido2-cred"), &["-V"], &made);
        let mut lines = verified.lines();
        let id = b64(lines.next().unwrap());
        let der: String = lines.filter(|l| !l.starts_with("-----")).collect();
        let der = b64(&der);
        // SubjectPublicKeyInfo of a P-256 key ends with the 65-byte point.
        let point = der[der.len() - 65..].to_vec();
        assert_eq!(point[0], 4, "uncompressed point");
        (id, point[1..].to_vec())
    }
}

fn b64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .unwrap()
}

/// Runs a tool with `input` on stdin and an empty environment; it must succeed.
pub fn run(tool: &Path, args: &[&str], input: &str) -> String {
    let mut c = Command::new(tool)
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "{tool:?} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The `[webauthn]` section for local keys through this stand-in.
pub fn webauthn_section(keys: &Keys, timeout: u32, extra: &str) -> String {
    format!(
        "[webauthn]\nlocal_keys = true\nfido2_tools_dir = \"{}\"\nlocal_timeout_seconds = {timeout}\n{extra}",
        keys.path.display()
    )
}

/// pam_u2f's default origin is `pam://` + this.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}
