"""The benchmark behind scripts/bench (see there). Stdlib only.

Fairness: every module runs in the same driver, through the same real
libpam (services are temporary /etc/pam.d/p2fa-bench-* files, removed at
the end; pam_wrapper is not used because its per-process copy of the
service directory collides when 16 processes start at once), with the clock frozen by faketime at the same instant, and
every login presents a valid code that the module accepts and records:
pam_2fa and pam_oath refuse replays by design, and pam_google_authenticator
runs with DISALLOW_REUSE, so all three write their state on each login.
Because a code is accepted once per user and time step, each run uses a
fresh time step and a set of users who each log in once.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "target/bench/driver")
SO = os.path.join(ROOT, "target/release/libpam_2fa.so")
ENROLL = os.path.join(ROOT, "target/release/2fa-enroll")
MODDIR = "/lib/x86_64-linux-gnu/security"
GA_SO = os.path.join(MODDIR, "pam_google_authenticator.so")
OATH_SO = os.path.join(MODDIR, "pam_oath.so")
SECRET_B32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
SECRET_HEX = "3132333435363738393031323334353637383930"
T0 = 1_800_000_000 - (1_800_000_000 % 30) + 10  # 10 s into a step
STREAMS = 16
SERVICE_PREFIX = "p2fa-bench-"


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def fake_date(t):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def totp_at(t):
    return sh("oathtool", "--totp", "-b", f"--now={fake_date(t)} UTC", SECRET_B32).stdout.strip()


def users(n):
    names = [f"p2fa-bench-{i:03d}" for i in range(n)]
    have = set(l.split(":")[0] for l in open("/etc/passwd"))
    for u in names:
        if u not in have:
            sh("useradd", "-M", "-s", "/usr/sbin/nologin", u)
    return names


def remove_users(names):
    for u in names:
        subprocess.run(["userdel", u], capture_output=True)


def drive(svc_dir, service, pairs, t, work):
    """Runs the driver once; returns (ns list, failures)."""
    path = os.path.join(work, f"logins-{service}-{len(pairs)}-{t}")
    with open(path, "w") as f:
        for u, c in pairs:
            f.write(f"{u} {c}\n")
    env = dict(os.environ, TZ="UTC")
    # Frozen clock (no '@'): every login in the run sees the same instant.
    p = subprocess.run(["faketime", fake_date(t), DRIVER, "auth", SERVICE_PREFIX + service, path],
                       env=env, capture_output=True, text=True)
    ns, fails = [], 0
    for line in p.stdout.split("\n"):
        if line.strip():
            v, rc = line.split()
            ns.append(int(v))
            fails += rc != "0"
    return ns, fails, p


def stats(ns):
    ms = sorted(v / 1e6 for v in ns)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return {"n": len(ms), "median_ms": statistics.median(ms), "p95_ms": p95,
            "mean_ms": statistics.fmean(ms)}


def dlopen_ms(path, n=200):
    out = sh(DRIVER, "dlopen", path, str(n)).stdout.split()
    return statistics.median(int(v) for v in out) / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--users", type=int, default=60)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.runs, a.users = 2, 20
    work = tempfile.mkdtemp(prefix="pam2fa-bench.")
    names = users(max(a.users, STREAMS))
    try:
        return run(a, work, names)
    finally:
        for m in ("pam_2fa", "pam_google_authenticator", "pam_oath"):
            try:
                os.remove(os.path.join("/etc/pam.d", SERVICE_PREFIX + m))
            except FileNotFoundError:
                pass
        shutil.rmtree(work, ignore_errors=True)
        remove_users(names)


def setup(work, names):
    conf = os.path.join(work, "2fa.conf")
    with open(conf, "w") as f:
        f.write(f'db = "{work}/state/state.db"\nkey_file = "{work}/2fa.key"\n'
                f'[rate_limit]\nmax_failures = 1000\n')
    os.chmod(conf, 0o600)
    sh(ENROLL, "--config", conf, "init")
    for u in names:
        sh(ENROLL, "--config", conf, "totp", "--user", u, "--secret", SECRET_B32, "--no-verify")
    ga = os.path.join(work, "ga")
    os.mkdir(ga, 0o700)
    for u in names:
        p = os.path.join(ga, u)
        with open(p, "w") as f:
            f.write(f'{SECRET_B32}\n" TOTP_AUTH\n" DISALLOW_REUSE\n" WINDOW_SIZE 3\n')
        os.chmod(p, 0o600)
    oath = os.path.join(work, "users.oath")
    with open(oath, "w") as f:
        for u in names:
            f.write(f"HOTP/T30 {u} - {SECRET_HEX}\n")
    os.chmod(oath, 0o600)
    svc = "/etc/pam.d"
    services = {
        "pam_2fa": f"auth required {SO} config={conf}\n",
        "pam_google_authenticator":
            f"auth required {GA_SO} secret={ga}/${{USER}} user=root\n",
        "pam_oath": f"auth required {OATH_SO} usersfile={oath} window=1\n",
    }
    for name, line in services.items():
        with open(os.path.join(svc, SERVICE_PREFIX + name), "w") as f:
            f.write(line)
    return conf, svc, list(services)


def bench_2fad(work, conf, n):
    """Round trips per second over 2fad's socket."""
    import socket as so
    import struct
    sock = os.path.join(work, "2fad.sock")
    p = subprocess.Popen([os.path.join(ROOT, "target/release/2fad"), "--config", conf, "--socket", sock],
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while not os.path.exists(sock):
            if time.time() > deadline:
                raise RuntimeError("2fad did not start")
            time.sleep(0.02)
        req = json.dumps({"version": 1, "op": "status"}).encode()
        frame = struct.pack(">I", len(req)) + req

        def rt(c):
            c.sendall(frame)
            hdr = b""
            while len(hdr) < 4:
                hdr += c.recv(4 - len(hdr))
            ln = struct.unpack(">I", hdr)[0]
            body = b""
            while len(body) < ln:
                body += c.recv(ln - len(body))
            assert b'"status"' in body, body

        c = so.socket(so.AF_UNIX)
        c.connect(sock)
        t = time.monotonic()
        for _ in range(n):
            rt(c)
        reuse = n / (time.monotonic() - t)
        c.close()
        t = time.monotonic()
        for _ in range(n // 3):
            c = so.socket(so.AF_UNIX)
            c.connect(sock)
            rt(c)
            c.close()
        connect = (n // 3) / (time.monotonic() - t)
        return {"round_trips": n, "reuse_per_s": reuse, "connect_per_s": connect}
    finally:
        p.kill()
        p.wait()


def run(a, work, names):
    conf, svc, modules = setup(work, names)
    bench_users = names[: a.users]
    lat = {m: [] for m in modules}
    failures = {m: 0 for m in modules}
    for r in range(a.runs):
        t = T0 + 30 * r
        pairs = [(u, totp_at(t)) for u in bench_users]
        # Rotate the order so no module always runs first (cold caches).
        order = modules[r % 3:] + modules[: r % 3]
        for m in order:
            ns, fails, p = drive(svc, m, pairs, t, work)
            lat[m] += ns
            failures[m] += fails
            if fails:
                print(f"{m}: {fails} failed logins in run {r}: {p.stderr.strip()[:300]}",
                      file=sys.stderr)

    # 16 parallel streams against one pam_2fa store: each stream logs in
    # its own user with its own backup codes, all in one database.
    per = 100 if not a.quick else 30
    stream_users = names[:STREAMS]
    procs, t_conc = [], T0 + 30 * (a.runs + 1)
    codes = {}
    for u in stream_users:
        out = sh(ENROLL, "--config", conf, "backup", "--user", u, "--count", str(per)).stdout
        codes[u] = [w.replace("-", "") for w in out.split() if len(w) == 11 and w[5] == "-"]
        assert len(codes[u]) == per, out
    env = dict(os.environ, TZ="UTC")
    start = time.monotonic()
    for u in stream_users:
        path = os.path.join(work, f"stream-{u}")
        with open(path, "w") as f:
            for c in codes[u]:
                f.write(f"{u} {c}\n")
        procs.append(subprocess.Popen(["faketime", fake_date(t_conc), DRIVER, "auth", SERVICE_PREFIX + "pam_2fa", path],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    conc_ns, conc_fail, rcs = [], 0, {}
    for p in procs:
        out, err = p.communicate()
        for line in out.split("\n"):
            if line.strip():
                v, rc = line.split()
                conc_ns.append(int(v))
                conc_fail += rc != "0"
                if rc != "0":
                    rcs[rc] = rcs.get(rc, 0) + 1
        if err.strip():
            print(f"stream stderr: {err.strip()[:500]}", file=sys.stderr)
    if rcs:
        print(f"concurrency: PAM result codes of failed logins: {rcs}", file=sys.stderr)
    wall = time.monotonic() - start
    locked = sh("sqlite3", f"{work}/state/state.db",
                "SELECT count(*) FROM backup_codes WHERE used_at IS NOT NULL").stdout.strip()

    daemon = bench_2fad(work, conf, 300 if a.quick else 3000)
    wa = subprocess.run(["cargo", "run", "--release", "--quiet", "--example", "webauthn_verify", "--",
                         "200" if a.quick else "2000"], cwd=ROOT, check=True, capture_output=True, text=True)
    daemon["webauthn"] = json.loads(wa.stdout.strip().splitlines()[-1])

    results = {
        "latency": {m: stats(lat[m]) for m in modules},
        "failures": failures,
        "size_bytes": {"pam_2fa": os.path.getsize(SO),
                       "pam_google_authenticator": os.path.getsize(GA_SO),
                       "pam_oath": os.path.getsize(OATH_SO)},
        "dlopen_ms": {"pam_2fa": dlopen_ms(SO),
                      "pam_google_authenticator": dlopen_ms(GA_SO),
                      "pam_oath": dlopen_ms(OATH_SO)},
        "concurrency": {"streams": STREAMS, "logins": len(conc_ns), "failed": conc_fail,
                        "codes_used_in_store": int(locked),
                        "wall_s": wall, "logins_per_s": len(conc_ns) / wall,
                        **{k: v for k, v in stats(conc_ns).items() if k != "n"}},
        "runs": a.runs, "users_per_run": len(bench_users),
        "2fad": daemon,
    }
    ga = results["latency"]["pam_google_authenticator"]["median_ms"]
    lines = ["# pam-2fa benchmark", "",
             f"{a.runs} runs x {len(bench_users)} logins per module, each a valid code that the "
             "module accepts and records (replay protection on), same driver, real libpam and "
             "frozen clock for all.", "",
             "| module | median ms | p95 ms | mean ms | vs GA (median) | .so size | dlopen ms |",
             "|---|---|---|---|---|---|---|"]
    for m in modules:
        s = results["latency"][m]
        lines.append(f"| {m} | {s['median_ms']:.3f} | {s['p95_ms']:.3f} | {s['mean_ms']:.3f} | "
                     f"{s['median_ms'] / ga:.2f}x | {results['size_bytes'][m] // 1024} KiB | "
                     f"{results['dlopen_ms'][m]:.3f} |")
    c = results["concurrency"]
    lines += ["", f"Concurrency: {c['streams']} parallel streams, one pam_2fa store, "
              f"{c['logins']} backup-code logins in {c['wall_s']:.2f} s = "
              f"**{c['logins_per_s']:.0f} logins/s**, median {c['median_ms']:.2f} ms, "
              f"p95 {c['p95_ms']:.2f} ms, failed/locked: **{c['failed']}** "
              f"(codes marked used in the store: {c['codes_used_in_store']})."]
    lines += ["", f"2fad socket round trips (status request, root): "
              f"**{daemon['reuse_per_s']:.0f}/s** on one connection, "
              f"**{daemon['connect_per_s']:.0f}/s** with a new connection each "
              f"(what the PAM module does).",
              "", f"2fad WebAuthn: **{daemon['webauthn']['verify_per_s']:.0f} assertion verifications/s** "
              f"(median {daemon['webauthn']['verify_median_ms']:.3f} ms, incl. storing the counter), "
              f"{daemon['webauthn']['ceremonies_per_s']:.0f} whole ceremonies/s (challenge, options, "
              f"software-authenticator answer, verification, result)."]
    text = "\n".join(lines) + "\n"
    print(text)
    out = os.path.join(ROOT, "target/bench")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"written to {out}/results.md and results.json")
    bad = sum(failures.values()) + c["failed"] + (c["codes_used_in_store"] != c["logins"])
    if bad:
        print("FAILED: some valid logins were refused (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
