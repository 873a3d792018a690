//! `2fa-enroll check` (also `2fa-enroll config test`): is this setup
//! usable, like `sshd -t`? One line per check, exit status 1 when any
//! check failed, for Ansible's `validate:` and for admins before they
//! enable the module. Creates, migrates and records nothing.

use super::{CliError, CliResult};
use clap::{Args, Subcommand};
use p2fa_core::config::{Config, SmsGateway, SmtpTls};
use p2fa_core::crypto::HostKey;
use p2fa_core::keycheck::{self, KeyCheck};
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::{Store, StoreError};
use std::path::Path;

pub const ABOUT: &str = "Check the configuration, store, host key and 2fad, like `sshd -t`";

pub const LONG_ABOUT: &str = "\
Check that pam_2fa can work with this configuration, like `sshd -t`, without changing anything.

One line per check, each `ok`, `warning` or `error` with the reason:

  config    the file parses, every value is valid, and it is trusted: a root-owned regular file \
that group and others cannot write, in root-owned directories (a missing default file means the \
built-in defaults and is a warning)
  store     exists, is a root-owned 0600 regular file in a private directory, has a schema this \
version reads (an older one is migrated at the next login) and passes SQLite's quick_check
  host key  exists, is a root-owned 0600 file of 32 bytes and is the key the store was made with
  2fad      its socket answers and is served by root (an error when webauthn.enabled needs it, \
a warning otherwise)
  sms, email, duo, webauthn   what can be checked offline: CA files and the system CA bundle, \
secret files (*_file: root-owned, 0600; their contents are never shown), certificate files, \
the fido2 tools

Exit status 0 when no check failed (warnings allowed), 1 otherwise.

Nothing is created or modified: no store, no directory, no key, no schema migration, no key \
check value (the store is opened read-only). So it can validate a new file before it is \
installed, as Ansible does:

  template: src=2fa.conf.j2 dest=/etc/security/2fa.conf validate='2fa-enroll check --config %s'

On a host where `2fa-enroll init` has not run yet, add --config-only.";

#[derive(Args, Debug, Default)]
pub struct CheckArgs {
    /// Check only the configuration file and the files it names for the
    /// network factors; not the store, the host key or 2fad (for a host
    /// where `2fa-enroll init` has not run yet).
    #[arg(long)]
    pub config_only: bool,
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub what: ConfigCmd,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// The same as `2fa-enroll check`.
    #[command(about = ABOUT, long_about = LONG_ABOUT)]
    Test(CheckArgs),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warning,
    Error,
}

/// The lines printed so far, counted.
#[derive(Default)]
struct Report {
    errors: usize,
    warnings: usize,
}

impl Report {
    fn line(&mut self, level: Level, what: &str, detail: &str) {
        let word = match level {
            Level::Ok => "ok",
            Level::Warning => {
                self.warnings += 1;
                "warning"
            }
            Level::Error => {
                self.errors += 1;
                "error"
            }
        };
        println!("{word:<8}{what}: {detail}");
    }

    fn ok(&mut self, what: &str, detail: &str) {
        self.line(Level::Ok, what, detail);
    }

    fn warn(&mut self, what: &str, detail: &str) {
        self.line(Level::Warning, what, detail);
    }

    fn error(&mut self, what: &str, detail: &str) {
        self.line(Level::Error, what, detail);
    }
}

/// Runs every check; `explicit` says the admin named the config file.
pub fn run(path: &Path, explicit: bool, trust: Trust, a: &CheckArgs) -> CliResult {
    if !a.config_only && !p2fa_core::users::is_root() {
        return Err(CliError(
            "check reads the root-only store and host key: run it as root \
             (sudo 2fa-enroll check), or use --config-only"
                .into(),
        ));
    }
    let mut r = Report::default();
    let what = format!("config {}", path.display());
    let missing = matches!(
        std::fs::symlink_metadata(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound
    );
    let cfg = match Config::load(path, explicit, trust) {
        Ok(cfg) => {
            if missing {
                r.warn(
                    &what,
                    "no such file: the built-in defaults apply (every user needs a factor)",
                );
            } else {
                r.ok(&what, "syntax, values and file trust");
            }
            cfg
        }
        Err(e) => {
            r.error(&what, &e.0);
            return finish(&r, " (the other checks need a usable configuration)");
        }
    };
    network(&mut r, &cfg, trust);
    if !a.config_only {
        let store = store(&mut r, &cfg, trust);
        host_key(&mut r, &cfg, trust, store.as_ref());
        daemon(&mut r, &cfg);
    }
    finish(&r, "")
}

fn finish(r: &Report, note: &str) -> CliResult {
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    println!(
        "{}, {}{note}",
        plural(r.errors, "error"),
        plural(r.warnings, "warning")
    );
    if r.errors > 0 {
        return Err(CliError(format!(
            "check failed: {}",
            plural(r.errors, "error")
        )));
    }
    Ok(())
}

/// The fleet database: reachable, a primary, logged in, and a schema
/// this build reads (a login's own checks); nothing is written.
fn fleet_store(r: &mut Report, cfg: &Config, trust: Trust) -> Option<Store> {
    let what = "store postgres";
    match p2fa_pg::open(cfg, trust, p2fa_pg::Mode::Login) {
        Ok(store) => {
            let v = store.schema_version().unwrap_or(0);
            r.ok(
                what,
                &format!(
                    "reachable, schema {v}, this host writes as {}",
                    p2fa_core::config::host_name(&cfg.host_id)
                ),
            );
            Some(store)
        }
        Err(e) => {
            r.error(what, &e.to_string());
            None
        }
    }
}

/// The store, opened read-only ([`Store::inspect`]); returned when its
/// schema is current, for the host key check.
fn store(r: &mut Report, cfg: &Config, trust: Trust) -> Option<Store> {
    if cfg.store == p2fa_core::config::StoreKind::Postgres {
        return fleet_store(r, cfg, trust);
    }
    let what = format!("store {}", cfg.db.display());
    let (store, note) = match Store::inspect(&cfg.db, trust) {
        Ok(s) => s,
        Err(StoreError::Missing(_)) => {
            r.error(
                &what,
                "missing: run `2fa-enroll init` (until then pam_2fa denies every login, \
                 except where unenrolled = allow lets users through without a factor)",
            );
            return None;
        }
        Err(e) => {
            r.error(&what, &e.to_string());
            return None;
        }
    };
    let current = p2fa_core::store::current_version();
    let version = match store.schema_version() {
        Ok(v) => v,
        Err(e) => {
            r.error(&what, &e.to_string());
            return None;
        }
    };
    let schema = if version == 0 {
        r.error(
            &what,
            "not a pam-2fa store (no schema): move it away and run `2fa-enroll init`",
        );
        return None;
    } else if version > current {
        r.error(
            &what,
            &format!(
                "schema version {version} is newer than this pam-2fa reads ({current}): upgrade pam-2fa"
            ),
        );
        return None;
    } else if version < current {
        format!("schema {version}, migrated to {current} at the next login or `2fa-enroll init`")
    } else {
        format!("schema {version}")
    };
    match store.quick_check() {
        Ok(s) if s == "ok" => r.ok(&what, &format!("{schema}, private, quick_check ok")),
        Ok(problem) => {
            r.error(
                &what,
                &format!("quick_check: {}", p2fa_core::audit::detail(&problem)),
            );
            return None;
        }
        Err(e) => {
            r.error(&what, &e.to_string());
            return None;
        }
    }
    if let Some(note) = note {
        r.warn(&what, &note);
    }
    (version == current).then_some(store)
}

fn host_key(r: &mut Report, cfg: &Config, trust: Trust, store: Option<&Store>) {
    let file = cfg.key_file.display().to_string();
    let what = format!("host key {file}");
    if matches!(
        std::fs::symlink_metadata(&cfg.key_file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound
    ) {
        r.error(
            &what,
            "missing: restore it from backup, or run `2fa-enroll init` for a new store",
        );
        return;
    }
    let key = match HostKey::load(&cfg.key_file, trust) {
        Ok(k) => k,
        Err(e) => {
            r.error(&what, &e.0);
            return;
        }
    };
    let Some(store) = store else {
        r.ok(
            &what,
            "readable and private; not compared with the store (see above)",
        );
        return;
    };
    let nothing_keyed = !store.has_keyed_items().unwrap_or(true);
    match keycheck::inspect(store, &key, &file) {
        Ok(KeyCheck::Matches) => r.ok(&what, "private, and the store records this key"),
        Ok(KeyCheck::Unproven(why)) if nothing_keyed => r.ok(&what, why),
        Ok(KeyCheck::Unproven(why)) => r.warn(&what, why),
        Ok(KeyCheck::Pinned(why)) => r.ok(&what, why),
        Err(e) => r.error(&what, &e),
    }
}

/// 2fad's socket: needed when the browser WebAuthn factor is on (the
/// module asks 2fad for every such login), optional otherwise (users
/// manage their own factors through it).
fn daemon(r: &mut Report, cfg: &Config) {
    let socket = &cfg.daemon.socket;
    let what = format!("2fad {}", socket.display());
    let needed = cfg.webauthn.enabled;
    let problem = |r: &mut Report, msg: &str| {
        if needed {
            r.error(&what, &format!("{msg}; webauthn.enabled needs it"));
        } else {
            r.warn(
                &what,
                &format!(
                    "{msg}; optional here, but users cannot manage their own factors without it"
                ),
            );
        }
    };
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(socket) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return problem(
                r,
                "not running, no socket (systemctl enable --now 2fad.socket)",
            );
        }
        Err(e) => return problem(r, &e.to_string()),
        Ok(m) if !m.file_type().is_socket() => return problem(r, "not a socket"),
        Ok(_) => {}
    }
    let stream = match std::os::unix::net::UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => return problem(r, &format!("not reachable: {e}")),
    };
    match p2fa_proto::client::peer_uid(&stream) {
        Ok(0) => r.ok(&what, "reachable, served by root"),
        // Whoever serves it would be asked by users' 2fa-enroll, and for
        // logins: never fine.
        Ok(uid) => r.error(
            &what,
            &format!("served by uid {uid}, not root: the module and 2fa-enroll refuse it"),
        ),
        Err(e) => problem(r, &format!("cannot tell who serves it: {e}")),
    }
}

/// The network factors, as far as they can be checked without the
/// network: TLS trust (the system bundle and `ca_file`), secret files
/// (never shown), 2fad's certificate files, the fido2 tools.
fn network(r: &mut Report, cfg: &Config, trust: Trust) {
    let tls = |ca: Option<&Path>| {
        p2fa_net::transport::trust_anchors(ca, trust)
            .map(|a| format!("TLS trust: {} CA certificates", a.len()))
    };
    let secret = |inline: &str, file: &str, name: &str| {
        p2fa_core::config::secret(inline, file, name, trust)
            .map(|_| {
                if inline.is_empty() {
                    format!("{name} from {file}")
                } else {
                    format!("{name} inline")
                }
            })
            .map_err(|e| e.0)
    };
    let group = |r: &mut Report, what: &str, checks: Vec<Result<String, String>>| {
        let mut fine = Vec::new();
        let mut failed = false;
        for c in checks {
            match c {
                Ok(s) => fine.push(s),
                Err(e) => {
                    failed = true;
                    r.error(what, &e);
                }
            }
        }
        if !failed {
            r.ok(what, &fine.join(", "));
        }
    };
    if cfg.sms.enabled {
        let mut checks = vec![tls(cfg.sms.net().ca_file.as_deref())];
        if cfg.sms.gateway == SmsGateway::Twilio {
            let t = &cfg.sms.twilio;
            checks.push(secret(
                &t.auth_token,
                &t.auth_token_file,
                "sms.twilio.auth_token",
            ));
        }
        group(r, "sms", checks);
    }
    if cfg.email.enabled {
        let e = &cfg.email;
        let mut checks = Vec::new();
        if e.tls != SmtpTls::None {
            checks.push(tls(e.net().ca_file.as_deref()));
        }
        if !e.username.is_empty() {
            checks.push(secret(&e.password, &e.password_file, "email.password"));
        }
        if checks.is_empty() {
            checks.push(Ok("plain SMTP to a local relay, no credentials".into()));
        }
        group(r, "email", checks);
    }
    if cfg.duo.enabled {
        let d = &cfg.duo;
        group(
            r,
            "duo",
            vec![
                tls(d.net().ca_file.as_deref()),
                secret(&d.skey, &d.skey_file, "duo.skey"),
            ],
        );
    }
    let w = &cfg.webauthn;
    if w.enabled && !w.cert_file.is_empty() {
        let readable = |f: &str, name: &str| match std::fs::File::open(f).and_then(|h| h.metadata())
        {
            Ok(m) if m.is_file() => Ok(format!("{name} {f}")),
            Ok(_) => Err(format!("{name} {f} is not a regular file")),
            Err(e) => Err(format!("{name} {f}: {e}")),
        };
        group(
            r,
            "webauthn",
            vec![
                readable(&w.cert_file, "cert_file"),
                readable(&w.key_file, "key_file"),
            ],
        );
    }
    if w.local_keys {
        let dir = &w.fido2_tools_dir;
        let missing: Vec<String> = ["fido2-token", "fido2-cred", "fido2-assert"]
            .iter()
            .filter(|t| !dir.join(t).is_file())
            .map(|t| t.to_string())
            .collect();
        if missing.is_empty() {
            r.ok(
                "webauthn.local_keys",
                &format!("fido2 tools in {}", dir.display()),
            );
        } else {
            r.warn(
                "webauthn.local_keys",
                &format!(
                    "{} missing in {} (install fido2-tools): local keys cannot be used",
                    missing.join(", "),
                    dir.display()
                ),
            );
        }
    }
}
