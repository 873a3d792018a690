//! Local stand-ins for remote services (Duo, an SMS gateway, an SMTP
//! server): a throw-away CA and server certificate made with the `openssl`
//! CLI, and a launcher for the Python stand-ins in `tests/mock/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A CA and a server certificate for 127.0.0.1 / localhost, in `dir`.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=pam-2fa test CA",
            ],
            dir,
        );
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
            dir,
        );
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
            dir,
        );
        Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}

/// A stand-in process; killed on drop.
pub struct Stub {
    child: Child,
    pub port: u16,
}

pub fn mock_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/mock")
        .join(name)
}

impl Stub {
    /// Runs `/usr/bin/python3 tests/mock/<script> args... --port-file F`
    /// and waits for the port it chose.
    pub fn start(script: &str, args: &[&str], dir: &Path) -> Stub {
        let port_file = dir.join(format!("{script}.port"));
        let _ = std::fs::remove_file(&port_file);
        let mut child = Command::new("/usr/bin/python3")
            .arg(mock_script(script))
            .args(args)
            .arg("--port-file")
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("/usr/bin/python3");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Ok(port) = text.trim().parse()
            {
                return Stub { child, port };
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!("{script} exited: {st}");
            }
            assert!(Instant::now() < deadline, "{script} did not start");
            std::thread::sleep(Duration::from_millis(30));
        }
    }
}

/// The Duo Auth API stand-in's integration keys (tests only).
pub const DUO_IKEY: &str = "DIWJ8X6AEYOR5OMC6TQ1";
pub const DUO_SKEY: &str = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";

/// Starts `duo_server.py` over TLS with `cert`/`key`, the test keys, the
/// scenario file it rereads on every request, and its request log.
#[allow(dead_code)] // not every test binary that includes this file uses Duo
pub fn duo_server(
    cert: &Path,
    key: &Path,
    scenario: &Path,
    log: &Path,
    extra: &[&str],
    dir: &Path,
) -> Stub {
    let mut args = vec![
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--ikey",
        DUO_IKEY,
        "--skey",
        DUO_SKEY,
        "--scenario",
        scenario.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Stub::start("duo_server.py", &args, dir)
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound, then closed).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// JSON lines a stand-in appended to `log`.
pub fn json_lines(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
