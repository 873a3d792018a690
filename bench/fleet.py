"""Fleet mode in scripts/bench: pam_2fa on a PostgreSQL store (docs/fleet.md).

A private PostgreSQL cluster (Debian's server binaries, run as postgres,
in its own temp directory, on a free loopback port, TLS with a throw-away
certificate, SCRAM passwords, fsync on as shipped) and two simulated
hosts (two configs with their own host_id, one fleet key, one database).
run.py adds "pam_2fa (postgres)" to the per-login comparison (host A,
interleaved with the other modules under the same frozen clock) and runs
the concurrency test over both hosts: streams split between A and B, each
its own user and backup codes, then counts what the database recorded
(zero lost updates: every accepted login's code marked used, no failure
counted). Nothing outside the temp directories is touched.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

ROLE, PASSWORD = "pam2fa", "bench-fleet-pw"


def sh(*cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {(p.stdout + p.stderr).strip()[-800:]}")
    return p


def pg_bin():
    base = "/usr/lib/postgresql"
    if not os.path.isdir(base):
        return None
    versions = sorted((int(v), v) for v in os.listdir(base)
                      if v.isdigit() and os.path.exists(f"{base}/{v}/bin/initdb"))
    return f"{base}/{versions[-1][1]}/bin" if versions else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, work):
        self.bin = pg_bin()
        if not self.bin:
            raise RuntimeError("no PostgreSQL server (scripts/deps installs postgresql)")
        self.dir = tempfile.mkdtemp(prefix="pam2fa-bench-pg.")
        os.chmod(self.dir, 0o755)
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        d = self.dir
        # A throw-away CA (in the root-only work directory: the clients
        # trust only root-owned files there) and the server's certificate.
        self.ca = os.path.join(work, "fleet-ca.pem")
        ca_key = os.path.join(work, "fleet-ca.key")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        sh("openssl", "req", "-x509", *ec, "-days", "3650", "-subj", "/CN=pam-2fa bench CA",
           "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
           "-keyout", ca_key, "-out", self.ca)
        sh("openssl", "req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", f"{d}/server.key",
           "-out", f"{d}/server.csr")
        with open(f"{d}/ext", "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        sh("openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", self.ca, "-CAkey", ca_key,
           "-CAcreateserial", "-CAserial", os.path.join(work, "fleet-ca.srl"), "-days", "3650",
           "-extfile", f"{d}/ext", "-out", f"{d}/server.crt")
        for f in ("server.key", "server.crt"):
            shutil.chown(f"{d}/{f}", "postgres", "postgres")
        os.chmod(f"{d}/server.key", 0o600)
        with open(f"{d}/pw", "w") as f:
            f.write("bench-superuser\n")
        shutil.chown(f"{d}/pw", "postgres", "postgres")
        self.pg("initdb", "-D", f"{d}/data", "-A", "scram-sha-256", "-U", "postgres",
                f"--pwfile={d}/pw", "--no-sync", "-E", "UTF8")
        with open(f"{d}/data/postgresql.auto.conf", "a") as f:
            f.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{d}'\nssl = on\n"
                    f"ssl_cert_file = '{d}/server.crt'\nssl_key_file = '{d}/server.key'\n"
                    "max_connections = 200\n")
        with open(f"{d}/data/pg_hba.conf", "w") as f:
            f.write("local all postgres peer\nhostssl all all 127.0.0.1/32 scram-sha-256\n")
        self.pg("pg_ctl", "-D", f"{d}/data", "-l", f"{d}/log", "-w", "start")
        self.psql("postgres", f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        self.psql("postgres", f"CREATE DATABASE pam2fa OWNER {ROLE}")

    def pg(self, tool, *args):
        return sh("runuser", "-u", "postgres", "--", os.path.join(self.bin, tool), *args, cwd="/")

    def psql(self, db, sql):
        return self.pg("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.dir,
                       "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql).stdout.strip()

    def stop(self):
        subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(self.bin, "pg_ctl"),
                        "-D", f"{self.dir}/data", "-m", "immediate", "-w", "stop"],
                       capture_output=True, cwd="/")
        shutil.rmtree(self.dir, ignore_errors=True)


def host_config(cluster, work, name, pam2fa_conf, conf_src, sink_path):
    """A host's config: the shipped file with the paths, store and host_id
    set, and the [postgres] keys (the file's last section) appended."""
    hdir = os.path.join(work, f"fleet-{name}")
    os.makedirs(hdir, mode=0o700, exist_ok=True)
    conf = os.path.join(hdir, "2fa.conf")
    pam2fa_conf(conf_src, conf, {"db": f"{hdir}/state/state.db", "key_file": f"{work}/fleet-key/2fa.key",
                                 "log_socket": sink_path, "store": "postgres", "host_id": name})
    pw = os.path.join(hdir, "pg.password")
    with open(pw, "w") as f:
        f.write(PASSWORD + "\n")
    os.chmod(pw, 0o600)
    with open(conf, "a") as f:
        f.write(f'\nurl = "postgresql://{ROLE}@127.0.0.1:{cluster.port}/pam2fa"\n'
                f'password_file = "{pw}"\nca_file = "{cluster.ca}"\n')
    return conf


def setup(work, names, enroll, pam2fa_conf, conf_src, sink_path, secret_b32):
    """The cluster, hosts A and B initialised, every user's TOTP enrolled
    (on A); returns (cluster, conf_a, conf_b)."""
    cluster = Cluster(work)
    try:
        os.makedirs(os.path.join(work, "fleet-key"), mode=0o700, exist_ok=True)
        a = host_config(cluster, work, "bench-a", pam2fa_conf, conf_src, sink_path)
        b = host_config(cluster, work, "bench-b", pam2fa_conf, conf_src, sink_path)
        sh(enroll, "--config", a, "init")
        sh(enroll, "--config", b, "init")  # the same key file: what config management copies
        for u in names:
            sh(enroll, "--config", a, "totp", "--user", u, "--secret", secret_b32, "--no-verify")
        return cluster, a, b
    except BaseException:
        cluster.stop()
        raise


def recorded(cluster, users):
    """What the database holds for the concurrency users: used backup
    codes, per writing host, and the failures counted."""
    names = ",".join(f"'{u}'" for u in users)
    used = cluster.psql("pam2fa", "SELECT used_host, count(*) FROM p2fa.backup_codes "
                        f"WHERE used_at IS NOT NULL AND username IN ({names}) GROUP BY 1 ORDER BY 1")
    failures = cluster.psql("pam2fa", f"SELECT coalesce(sum(failures), 0) FROM p2fa.users WHERE name IN ({names})")
    per_host = dict(line.split("|") for line in used.splitlines() if line)
    return {h: int(n) for h, n in per_host.items()}, int(failures)
