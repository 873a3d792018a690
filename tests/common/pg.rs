//! A throw-away PostgreSQL cluster for the fleet-store tests: Debian's
//! server binaries (`/usr/lib/postgresql/N/bin`, the newest N; never the
//! /usr/local/bin symlinks, which a fresh CI machine lacks) run as
//! `postgres` on a data directory in a temp dir, a free port on
//! 127.0.0.1, TLS with a certificate from a test CA ([`Pki`]), SCRAM
//! passwords and client certificates. The system's PostgreSQL service is
//! never touched.
//!
//! Lifetime: the [`PgServer`] value owns the cluster. Dropping it (also
//! when a test panics) stops it with `pg_ctl -m immediate` and removes
//! the directory. A test process that is killed outright (a nextest
//! timeout) never drops it, so [`PgServer::start`] also leaves a
//! watchdog shell in a process group of its own, which stops the cluster
//! and removes the directory once the test process is gone.
//!
//! Layout: `<tmp>` (root, 0755) holds `pki/` (root-owned, so the client's
//! trust checks accept the CA and client keys) and `pg/` (postgres,
//! 0755: data directory, log, the Unix socket, the server's copies of
//! its certificate and key).
//!
//! pg_hba.conf: `local all postgres peer` (for [`PgServer::psql`]) and
//! `local replication postgres peer` (for [`PgServer::start_standby`]),
//! `hostssl all certuser 127.0.0.1/32 cert`, `hostssl all all
//! 127.0.0.1/32 scram-sha-256`, `host all plainuser 127.0.0.1/32
//! scram-sha-256` (the TLS-off loopback case), `local all plainuser
//! scram-sha-256` (the Unix socket case), everything else rejected.
//! The server also listens on 127.0.0.2, an address its certificate does
//! not name (the host-name test; TLS fails before pg_hba is consulted).

use super::free_port;
use super::net::Pki;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The superuser's password (SCRAM over TCP; psql uses peer auth).
pub const SUPERUSER_PASSWORD: &str = "super-secret-pw";
/// The role of the TLS-off loopback case, created at start.
pub const PLAIN_USER: &str = "plainuser";
pub const PLAIN_PASSWORD: &str = "plain-pw";
/// The role that logs in with a client certificate, created at start.
pub const CERT_USER: &str = "certuser";

/// Debian's PostgreSQL server binaries (`/usr/lib/postgresql/N/bin`, the
/// newest N installed; scripts/deps installs `postgresql`).
pub fn pg_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server not installed (scripts/deps)")
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no initdb under /usr/lib/postgresql")
        .1
}

pub struct PgServer {
    dir: tempfile::TempDir,
    pub port: u16,
    pub pki: Pki,
    bin: PathBuf,
    next_db: AtomicU32,
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_postgres(p: &Path) {
    let pg = nix::unistd::User::from_name("postgres")
        .unwrap()
        .expect("no postgres user (scripts/deps installs postgresql)");
    nix::unistd::chown(p, Some(pg.uid), Some(pg.gid)).unwrap();
}

/// Quotes `s` for `sh -c`.
fn q(s: impl AsRef<str>) -> String {
    format!("'{}'", s.as_ref().replace('\'', "'\\''"))
}

impl PgServer {
    /// A new cluster, running, with [`PLAIN_USER`] and [`CERT_USER`].
    pub fn start() -> PgServer {
        super::needs_root();
        let dir = tempfile::Builder::new()
            .prefix("p2fa-pg-")
            .tempdir()
            .unwrap();
        chmod(dir.path(), 0o755);
        let pki = Pki::new(&dir.path().join("pki"));
        chmod(&dir.path().join("pki"), 0o755);
        let pg = dir.path().join("pg");
        fs::create_dir(&pg).unwrap();
        chmod(&pg, 0o755);
        for (from, to) in [
            (&pki.cert, "server.pem"),
            (&pki.key, "server.key"),
            (&pki.ca, "ca.pem"),
        ] {
            fs::copy(from, pg.join(to)).unwrap();
            chmod(&pg.join(to), 0o600);
            chown_postgres(&pg.join(to));
        }
        fs::write(pg.join("pw"), SUPERUSER_PASSWORD).unwrap();
        chown_postgres(&pg.join("pw"));
        chown_postgres(&pg);
        let server = PgServer {
            port: free_port(),
            pki,
            bin: pg_bin(),
            next_db: AtomicU32::new(0),
            dir,
        };
        let d = server.pg_dir();
        server.as_postgres(&format!(
            "{} -D {} -A scram-sha-256 --auth-local=peer -U postgres --pwfile={} --no-sync -E UTF8 >/dev/null",
            q(server.bin.join("initdb").to_string_lossy()),
            q(d.join("data").to_string_lossy()),
            q(d.join("pw").to_string_lossy()),
        ));
        let conf = format!(
            "port = {}\n\
             listen_addresses = '127.0.0.1,127.0.0.2'\n\
             unix_socket_directories = '{}'\n\
             ssl = on\n\
             ssl_cert_file = '{}'\n\
             ssl_key_file = '{}'\n\
             ssl_ca_file = '{}'\n\
             shared_buffers = 16MB\n\
             max_connections = 100\n",
            server.port,
            d.display(),
            d.join("server.pem").display(),
            d.join("server.key").display(),
            d.join("ca.pem").display(),
        );
        let data = d.join("data");
        let mut pgconf = fs::read_to_string(data.join("postgresql.conf")).unwrap();
        pgconf.push_str(&conf);
        fs::write(data.join("postgresql.conf"), pgconf).unwrap();
        fs::write(
            data.join("pg_hba.conf"),
            format!(
                "local all postgres peer\n\
                 local replication postgres peer\n\
                 hostssl all {CERT_USER} 127.0.0.1/32 cert\n\
                 hostssl all all 127.0.0.1/32 scram-sha-256\n\
                 host all {PLAIN_USER} 127.0.0.1/32 scram-sha-256\n\
                 host all all 0.0.0.0/0 reject\n\
                 host all all ::/0 reject\n\
                 local all {PLAIN_USER} scram-sha-256\n\
                 local all all reject\n"
            ),
        )
        .unwrap();
        server.watchdog();
        server.start_again();
        server.psql(
            "postgres",
            &format!(
                "CREATE ROLE {PLAIN_USER} LOGIN PASSWORD '{PLAIN_PASSWORD}'; CREATE ROLE {CERT_USER} LOGIN;"
            ),
        );
        server
    }

    /// A hot standby of this cluster (pg_basebackup -R, streaming), on
    /// a port of its own with its own socket directory, the same
    /// certificates and pg_hba.conf; running when this returns. Drop it
    /// before the primary.
    pub fn start_standby(&self) -> PgServer {
        let dir = tempfile::Builder::new()
            .prefix("p2fa-pg-standby-")
            .tempdir()
            .unwrap();
        chmod(dir.path(), 0o755);
        let pg = dir.path().join("pg");
        fs::create_dir(&pg).unwrap();
        chmod(&pg, 0o755);
        chown_postgres(&pg);
        let standby = PgServer {
            port: free_port(),
            pki: Pki {
                ca: self.pki.ca.clone(),
                cert: self.pki.cert.clone(),
                key: self.pki.key.clone(),
            },
            bin: self.bin.clone(),
            next_db: AtomicU32::new(1000),
            dir,
        };
        let data = standby.pg_dir().join("data");
        self.as_postgres(&format!(
            "{} -h {} -p {} -U postgres -D {} -R -X stream --checkpoint=fast --no-sync",
            q(self.bin.join("pg_basebackup").to_string_lossy()),
            q(self.pg_dir().to_string_lossy()),
            self.port,
            q(data.to_string_lossy()),
        ));
        // Later lines win: the standby's own port and socket directory.
        let mut conf = fs::read_to_string(data.join("postgresql.conf")).unwrap();
        conf.push_str(&format!(
            "port = {}\nunix_socket_directories = '{}'\n",
            standby.port,
            standby.pg_dir().display()
        ));
        fs::write(data.join("postgresql.conf"), conf).unwrap();
        standby.watchdog();
        standby.start_again();
        standby
    }

    fn pg_dir(&self) -> PathBuf {
        self.dir.path().join("pg")
    }

    /// The directory of the Unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> PathBuf {
        self.pg_dir()
    }

    /// `sh -c script` as postgres, in /, which must succeed; its stdout.
    fn as_postgres(&self, script: &str) -> String {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--", "sh", "-c"])
            .arg(format!("cd / && {script}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pg_ctl(&self, args: &str) -> String {
        format!(
            "{} -D {} {args}",
            q(self.bin.join("pg_ctl").to_string_lossy()),
            q(self.pg_dir().join("data").to_string_lossy())
        )
    }

    /// Stops the cluster and removes the directory once this process is
    /// gone, however it ended: a shell polling our pid, started in the
    /// background by a shell we wait for (so it is init's child, not a
    /// zombie of ours), in a process group of its own so a kill of our
    /// group does not take it along.
    fn watchdog(&self) {
        let script = format!(
            "(while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             runuser -u postgres -- sh -c {stop} >/dev/null 2>&1; rm -rf {dir}) &",
            pid = std::process::id(),
            stop = q(format!("cd / && {} ", self.pg_ctl("-m immediate stop"))),
            dir = q(self.dir.path().to_string_lossy()),
        );
        let status = Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Starts the (stopped) cluster and waits until it accepts connections.
    pub fn start_again(&self) {
        let log = self.pg_dir().join("log");
        self.as_postgres(&format!(
            "{} >/dev/null",
            self.pg_ctl(&format!("-w -t 60 -l {} start", q(log.to_string_lossy())))
        ));
    }

    /// Stops the cluster (immediate shutdown: no checkpoint).
    pub fn stop(&self) {
        self.as_postgres(&format!(
            "{} >/dev/null",
            self.pg_ctl("-m immediate -w stop")
        ));
    }

    /// A crash and restart: `pg_ctl stop -m immediate`, then start.
    pub fn restart_immediate(&self) {
        self.stop();
        self.start_again();
    }

    /// Runs `sql` as the superuser in `db` (psql over the Unix socket,
    /// peer auth, stops at the first error, which fails the test); the
    /// unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.as_postgres(&format!(
            "{} -X -q -A -t -v ON_ERROR_STOP=1 -h {} -p {} -U postgres -d {} -c {}",
            q(self.bin.join("psql").to_string_lossy()),
            q(self.pg_dir().to_string_lossy()),
            self.port,
            q(db),
            q(sql)
        ))
    }

    /// A fresh database in which every role may create tables.
    pub fn create_db(&self) -> String {
        let name = format!("t{}", self.next_db.fetch_add(1, Ordering::SeqCst));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.psql(&name, "GRANT ALL ON SCHEMA public TO PUBLIC");
        name
    }

    /// A login role with a SCRAM password.
    pub fn create_role(&self, name: &str, password: &str) {
        self.psql(
            "postgres",
            &format!(
                "CREATE ROLE {name} LOGIN PASSWORD '{}'",
                password.replace('\'', "''")
            ),
        );
    }

    /// `postgresql://user@127.0.0.1:port/db` (no password: tests set it
    /// in the config, or put it in the URL themselves).
    pub fn url(&self, user: &str, db: &str) -> String {
        format!("postgresql://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// A fleet host's config lines: `store = "postgres"`, its `host_id`,
    /// `top` (more top-level keys or whole sections), then a `[postgres]`
    /// section for `role` on `db` over TLS, the password in a root-only
    /// file in `env`'s directory. More `[postgres]` keys may follow.
    pub fn fleet_config(
        &self,
        env: &super::Env,
        db: &str,
        host: &str,
        (role, password): (&str, &str),
        top: &str,
    ) -> String {
        let pw = env.root().join("pg.password");
        fs::write(&pw, format!("{password}\n")).unwrap();
        fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
        format!(
            "store = \"postgres\"\nhost_id = \"{host}\"\n{top}\n[postgres]\nurl = \"{}\"\n\
             password_file = \"{}\"\nca_file = \"{}\"\n",
            self.url(role, db),
            pw.display(),
            self.ca_file().display()
        )
    }

    /// The CA that signed the server's certificate (root-owned).
    pub fn ca_file(&self) -> PathBuf {
        self.pki.ca.clone()
    }

    /// A client certificate for `user` (CN = user) from the server's CA,
    /// and its key (root-owned, 0600).
    pub fn client_cert_for(&self, user: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = self.pki.leaf(
            &format!("client-{user}"),
            &format!("/CN={user}"),
            "extendedKeyUsage=clientAuth",
            None,
        );
        chmod(&key, 0o600);
        (cert, key)
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.pg_dir().join("log")).unwrap_or_default()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", "sh", "-c"])
            .arg(format!("cd / && {}", self.pg_ctl("-m immediate -w stop")))
            .output();
    }
}

/// A private PgBouncer (Debian's `pgbouncer`, run as `postgres`, which it
/// insists on) in transaction mode in front of one database of a
/// [`PgServer`]: clients log in with SCRAM to it over loopback without
/// TLS, and it holds at most `pool_size` server connections. Stopped on
/// drop.
pub struct PgBouncer {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl PgBouncer {
    pub fn start(pg: &PgServer, db: &str, pool_size: u32) -> PgBouncer {
        let dir = tempfile::Builder::new()
            .prefix("pgbouncer")
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let port = free_port();
        let d = dir.path();
        fs::write(
            d.join("userlist.txt"),
            format!("\"{PLAIN_USER}\" \"{PLAIN_PASSWORD}\"\n"),
        )
        .unwrap();
        fs::write(
            d.join("pgbouncer.ini"),
            format!(
                "[databases]\n{db} = host=127.0.0.1 port={} dbname={db} user={PLAIN_USER} password={PLAIN_PASSWORD}\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = scram-sha-256\nauth_file = {}\npool_mode = transaction\n\
                 default_pool_size = {pool_size}\nmax_client_conn = 500\nlogfile = {}\n\
                 server_tls_sslmode = disable\nignore_startup_parameters = application_name\n",
                pg.port,
                d.join("userlist.txt").display(),
                d.join("pgbouncer.log").display(),
            ),
        )
        .unwrap();
        for f in ["userlist.txt", "pgbouncer.ini"] {
            chown_postgres(&d.join(f));
        }
        chown_postgres(d);
        let child = Command::new("runuser")
            .args(["-u", "postgres", "--", "pgbouncer"])
            .arg(d.join("pgbouncer.ini"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < until,
                "pgbouncer did not start: {}",
                fs::read_to_string(d.join("pgbouncer.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        PgBouncer {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-TERM", "-P", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
