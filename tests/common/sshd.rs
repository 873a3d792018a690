//! A real OpenSSH `sshd` on a free 127.0.0.1 port, in a temp dir, with
//! PAM through pam_wrapper so `/etc/pam.d/sshd` is never touched: sshd
//! always uses the service name `sshd`, and pam_wrapper makes libpam read
//! it from our own service directory. The stack is `pam_unix` (the real
//! password check) then the built `pam_2fa.so` with the Env's config.

use super::{Env, free_port, module_path};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    /// Held while sshd runs: its PAM calls use pam_wrapper too.
    _serial: std::fs::File,
}

/// The client script (paramiko, needs Debian's /usr/bin/python3).
pub fn ssh_client() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ssh_client.py")
}

impl Sshd {
    /// Starts sshd whose PAM `sshd` service is `pam_unix` + pam_2fa with
    /// `module_args` appended to the pam_2fa line.
    pub fn start(env: &Env, module_args: &str) -> Sshd {
        let dir = env.root().join("sshd");
        std::fs::create_dir_all(&dir).unwrap();
        let svc = dir.join("pam.d");
        std::fs::create_dir_all(&svc).unwrap();
        std::fs::write(
            svc.join("sshd"),
            format!(
                "auth required pam_unix.so\n\
                 auth required {} config={} {module_args}\n\
                 account required pam_unix.so\n\
                 session required pam_permit.so\n\
                 password required pam_deny.so\n",
                module_path().display(),
                env.conf.display()
            ),
        )
        .unwrap();
        let key = dir.join("host_ed25519");
        if !key.exists() {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key)
                .status()
                .unwrap();
            assert!(st.success(), "ssh-keygen");
        }
        std::fs::create_dir_all("/run/sshd").unwrap();
        let serial = super::pam_wrapper_lock();
        for _attempt in 0..5 {
            let port = free_port();
            let cfg = dir.join("sshd_config");
            let log = dir.join("sshd.log");
            std::fs::write(
                &cfg,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nListenAddress [::1]\nHostKey {}\nPidFile {}\n\
                     UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\n\
                     PubkeyAuthentication no\nAuthenticationMethods keyboard-interactive\n\
                     PermitRootLogin no\nStrictModes no\nUseDNS no\nLogLevel VERBOSE\n\
                     MaxAuthTries 6\nLoginGraceTime 60\n",
                    key.display(),
                    dir.join("sshd.pid").display()
                ),
            )
            .unwrap();
            let child = Command::new("/usr/sbin/sshd")
                .arg("-D")
                .arg("-f")
                .arg(&cfg)
                .arg("-E")
                .arg(&log)
                .env("LD_PRELOAD", "libpam_wrapper.so")
                .env("PAM_WRAPPER", "1")
                .env("PAM_WRAPPER_SERVICE_DIR", &svc)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("/usr/sbin/sshd");
            let mut sshd = Sshd {
                child,
                port,
                log,
                _serial: serial.try_clone().unwrap(),
            };
            if sshd.wait_ready(Duration::from_secs(10)) {
                return sshd;
            }
            // Port taken between our probe and sshd's bind: try another.
            let _ = sshd.child.kill();
        }
        panic!("sshd did not start; see {}", dir.join("sshd.log").display());
    }

    fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Logs in with the paramiko client; `args` are extra client arguments
    /// (`--answer password=...`, `--answer-file code=PATH`, `--command`).
    pub fn login(&self, user: &str, args: &[&str]) -> Output {
        self.login_from("127.0.0.1", user, args)
    }

    /// [`Sshd::login`] to another of sshd's addresses (`::1`), which the
    /// module sees as another remote host.
    pub fn login_from(&self, host: &str, user: &str, args: &[&str]) -> Output {
        // The client bounds each step itself (--timeout, 60 s); `timeout`
        // is the backstop so a wedged client fails the test (status 124)
        // instead of hanging it.
        Command::new("timeout")
            .args(["--kill-after=10", "300", "/usr/bin/python3"])
            .arg(ssh_client())
            .arg(host)
            .arg(self.port.to_string())
            .arg(user)
            .args(args)
            .output()
            .expect("timeout /usr/bin/python3 tests/ssh_client.py")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
