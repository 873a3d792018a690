//! Two hosts on one fleet database, each with its own 2fad, both serving
//! one `public_url` (as behind a load balancer): what tests/fleet_webauthn.rs
//! and tests/fleet_profile.rs start from.

use super::Env;
use super::daemon::Daemon;
use super::pg::PgServer;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The login role the hosts use, and its password.
pub const ROLE: &str = "pam2fa";
pub const ROLE_PASSWORD: &str = "pam2fa-login-pw";

/// Copies a key file as config management would (root 0600, dir 0700).
pub fn copy_key(from: &Path, to: &Path) {
    let dir = to.parent().unwrap();
    fs::create_dir_all(dir).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(to, fs::read(from).unwrap()).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o600)).unwrap();
}

/// One host's Env on the fleet database.
pub fn host_env(pg: &PgServer, db: &str, host: &str) -> Env {
    host_env_with(pg, db, host, "")
}

/// [`host_env`] with `top`: more top-level keys and sections.
pub fn host_env_with(pg: &PgServer, db: &str, host: &str, top: &str) -> Env {
    let env = Env::new();
    env.write_config(&pg.fleet_config(&env, db, host, (ROLE, ROLE_PASSWORD), top));
    env
}

pub struct TwoHosts {
    pub pg: PgServer,
    pub db: String,
    pub a: Env,
    pub b: Env,
    pub wa: Daemon,
    pub wb: Daemon,
    /// The one public origin both 2fads serve.
    pub origin: String,
}

impl TwoHosts {
    /// A database owned by the login role, `2fa-enroll init` on host A
    /// (schema and fleet key), the key copied to B, `init` on B, and a
    /// 2fad on each, on ports of their own, with one `public_url`.
    pub fn start() -> TwoHosts {
        TwoHosts::start_with("")
    }

    /// [`TwoHosts::start`] with `top` (keys and sections, such as an
    /// `[sms]` one) in both hosts' config.
    pub fn start_with(top: &str) -> TwoHosts {
        let pg = PgServer::start();
        let db = pg.create_db();
        pg.create_role(ROLE, ROLE_PASSWORD);
        pg.psql("postgres", &format!("ALTER DATABASE {db} OWNER TO {ROLE}"));
        let a = host_env_with(&pg, &db, "host-a", top);
        let b = host_env_with(&pg, &db, "host-b", top);
        a.enroll_ok(&["init"], "");
        copy_key(&a.key, &b.key);
        b.enroll_ok(&["init"], "");
        let (pa, mut pb) = (super::net::closed_port(), super::net::closed_port());
        while pb == pa {
            pb = super::net::closed_port();
        }
        let origin = format!("http://localhost:{pa}");
        let web = format!("public_url = \"{origin}\"\nrp_id = \"localhost\"\n");
        let wa = Daemon::start_appended(&a, pa, &web);
        let wb = Daemon::start_appended(&b, pb, &web);
        TwoHosts {
            pg,
            db,
            a,
            b,
            wa,
            wb,
            origin,
        }
    }

    pub fn sql(&self, q: &str) -> String {
        self.pg.psql(&self.db, q).trim().to_string()
    }
}
