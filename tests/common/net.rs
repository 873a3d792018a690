//! Local stand-ins for remote services (Duo, an SMS gateway, an SMTP
//! server): a throw-away CA and server certificate made with the `openssl`
//! CLI, and a launcher for the Python stand-ins in `tests/mock/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// A CA and a server certificate for 127.0.0.1 / localhost, in `dir`.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Runs `program args` in `dir`, which must succeed.
fn run_in(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn openssl(args: &[&str], dir: &Path) {
    run_in(dir, "openssl", args);
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        // Named after its directory: two test CAs never share a name, so a
        // certificate from the other one is from an unknown issuer, not a
        // bad signature.
        let subj = format!(
            "/CN=pam-2fa test CA {}",
            dir.file_name().unwrap().to_string_lossy()
        );
        new_key(
            dir,
            "ca.key",
            "ca.pem",
            &["-x509", "-days", "2", "-subj", &subj],
        );
        let (cert, key) = issue(
            dir,
            "server",
            "/CN=localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            None,
        );
        Pki {
            ca: dir.join("ca.pem"),
            cert,
            key,
        }
    }

    /// Another server certificate from this CA, for the certificate-error
    /// tests: `subj` and the `ext` lines as given (no SAN unless `ext`
    /// names one), and with `at` (a faketime date) the certificate is
    /// issued as of that date, valid for one day.
    #[allow(dead_code)] // not every test binary that includes this file uses it
    pub fn leaf(&self, name: &str, subj: &str, ext: &str, at: Option<&str>) -> (PathBuf, PathBuf) {
        issue(self.ca.parent().unwrap(), name, subj, ext, at)
    }
}

/// `openssl req` in `dir` making a new P-256 key `key` and `out` (a
/// request, or with `-x509` a self-signed certificate); `more` are further
/// arguments.
fn new_key(dir: &Path, key: &str, out: &str, more: &[&str]) {
    let mut args = vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        out,
    ];
    args.extend_from_slice(more);
    openssl(&args, dir);
}

/// `NAME.pem` / `NAME.key` in `dir`, signed by `dir`'s `ca.pem`.
fn issue(dir: &Path, name: &str, subj: &str, ext: &str, at: Option<&str>) -> (PathBuf, PathBuf) {
    let (key, csr, cert, cnf) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.cnf"),
    );
    new_key(dir, &key, &csr, &["-subj", subj]);
    std::fs::write(
        dir.join(&cnf),
        format!("{ext}\nbasicConstraints=CA:FALSE\n"),
    )
    .unwrap();
    let days = if at.is_some() { "1" } else { "2" };
    let sign = [
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        &cert,
        "-days",
        days,
        "-extfile",
        &cnf,
    ];
    match at {
        None => openssl(&sign, dir),
        Some(date) => {
            let mut args = vec!["-f", date, "openssl"];
            args.extend_from_slice(&sign);
            run_in(dir, "faketime", &args);
        }
    }
    (dir.join(cert), dir.join(key))
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

/// Where `sms_gateway.py` appends what it received, in its `dir`.
pub const SMS_LOG: &str = "sms.jsonl";
/// The file `sms_gateway.py` rereads on every request (its mode), in its
/// `dir`.
pub const SMS_CONTROL: &str = "control.json";

/// Starts `sms_gateway.py` (a Twilio-compatible API and a webhook) over TLS
/// with `pki`'s server certificate, taking the account `sid` and `token`
/// and, on the webhook, the header `Authorization: HOOK_AUTH`; its request
/// log and control file are [`SMS_LOG`] and [`SMS_CONTROL`] in `dir`.
/// `extra` goes on its command line.
pub fn sms_gateway(
    pki: &Pki,
    sid: &str,
    token: &str,
    hook_auth: &str,
    extra: &[&str],
    dir: &Path,
) -> Stub {
    let (log, control) = (dir.join(SMS_LOG), dir.join(SMS_CONTROL));
    let mut args = vec![
        "--cert",
        pki.cert.to_str().unwrap(),
        "--key",
        pki.key.to_str().unwrap(),
        "--sid",
        sid,
        "--token",
        token,
        "--log",
        log.to_str().unwrap(),
        "--control",
        control.to_str().unwrap(),
        "--hook-auth",
        hook_auth,
    ];
    args.extend_from_slice(extra);
    Stub::start("sms_gateway.py", &args, dir)
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

// Shared by tests/pam_network.rs and tests/profile.rs.
/// The code in the newest message of a stand-in log, waiting for it.
#[allow(dead_code)]
pub fn wait_code(log: &Path, count: usize, field: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let msgs = json_lines(log);
        if msgs.len() >= count {
            let text = msgs[count - 1][field].as_str().unwrap().to_string();
            let code: String = text
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .unwrap_or_else(|| panic!("no 6-digit code in {text:?}"))
                .to_string();
            return code;
        }
        assert!(
            Instant::now() < deadline,
            "no message #{count} in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[allow(dead_code)]
pub struct Mail {
    pub _stub: Stub,
    pub log: PathBuf,
    pub _pki: Pki,
}

#[allow(dead_code)]
pub fn mail_env(dir: &Path) -> (Mail, String) {
    let pki = Pki::new(&dir.join("pki-mail"));
    let log = dir.join("mail.jsonl");
    let stub = Stub::start(
        "smtp_sink.py",
        &[
            "--log",
            log.to_str().unwrap(),
            "--tls",
            "starttls",
            "--cert",
            pki.cert.to_str().unwrap(),
            "--key",
            pki.key.to_str().unwrap(),
            "--user",
            "mailer",
            "--password",
            "mail-pw",
        ],
        dir,
    );
    let conf = format!(
        "[email]\nenabled = true\nsmtp_host = \"localhost\"\nsmtp_port = {}\ntls = \"starttls\"\n\
         username = \"mailer\"\npassword_file = \"{}\"\nfrom = \"2fa@example.com\"\nca_file = \"{}\"\n",
        stub.port,
        dir.join("mail-pw").display(),
        pki.ca.display()
    );
    write_secret(&dir.join("mail-pw"), "mail-pw");
    (
        Mail {
            _stub: stub,
            log,
            _pki: pki,
        },
        conf,
    )
}

#[allow(dead_code)]
pub fn write_secret(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[allow(dead_code)]
pub struct Sms {
    pub _stub: Stub,
    pub log: PathBuf,
    pub control: PathBuf,
    pub _pki: Pki,
}

#[allow(dead_code)]
pub fn sms_env(dir: &Path) -> (Sms, String) {
    let pki = Pki::new(&dir.join("pki-sms"));
    let log = dir.join("sms.jsonl");
    let control = dir.join("sms-control.json");
    let stub = Stub::start(
        "sms_gateway.py",
        &[
            "--cert",
            pki.cert.to_str().unwrap(),
            "--key",
            pki.key.to_str().unwrap(),
            "--sid",
            "ACtest",
            "--token",
            "tok",
            "--log",
            log.to_str().unwrap(),
            "--control",
            control.to_str().unwrap(),
        ],
        dir,
    );
    let conf = format!(
        "[sms]\nenabled = true\ngateway = \"twilio\"\ntimeout_ms = 1500\nca_file = \"{}\"\n\
         [sms.twilio]\nbase_url = \"https://127.0.0.1:{}\"\naccount_sid = \"ACtest\"\n\
         auth_token_file = \"{}\"\nfrom = \"+15550001111\"\n",
        pki.ca.display(),
        stub.port,
        dir.join("twilio-token").display()
    );
    write_secret(&dir.join("twilio-token"), "tok\n");
    (
        Sms {
            _stub: stub,
            log,
            control,
            _pki: pki,
        },
        conf,
    )
}

#[allow(dead_code)]
pub fn duo_conf(dir: &Path, port: u16, pki: &Pki, failmode: &str) -> String {
    write_secret(&dir.join("duo-skey"), DUO_SKEY);
    format!(
        "[duo]\nenabled = true\nikey = \"{DUO_IKEY}\"\nskey_file = \"{}\"\napi_host = \"127.0.0.1:{port}\"\n\
         ca_file = \"{}\"\nfailmode = \"{failmode}\"\ntimeout_ms = 1500\npush_timeout_seconds = 5\n",
        dir.join("duo-skey").display(),
        pki.ca.display()
    )
}
