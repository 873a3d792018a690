"""Where a pam_2fa TOTP login spends its time (scripts/bench --profile).

Runs the bench driver (bench/driver.c) over N logins of one build of the
module, every login a valid code, the clock frozen by faketime as in the
benchmark, once per tool:

* strace: every system call of the logins with its duration (-T), summed
  by call, and the calls of one warm login listed in order;
* callgrind: instructions per function (inclusive) for a warm process of
  N logins and for a fresh process of one login, plus callgrind's own
  system-call time (--collect-systime=nsec), so an fsync shows up under
  the function that asked for it.

Needs root (users, a private mount namespace for /etc/pam.d), strace and
valgrind. Output goes to target/bench/profile-<label>/ (callgrind files:
open them with callgrind_annotate or kcachegrind).
"""
import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402

bench.PREFIX = "p2fa-prof-"
SERVICE = "p2fa-prof"


def login_file(work, names, t, tag):
    code = bench.totp_at(t)
    path = os.path.join(work, f"logins-{tag}")
    with open(path, "w") as f:
        for u in names:
            f.write(f"{u} {code}\n")
    return path


def frozen_env(t):
    """faketime's environment without its wrapper process, so the tools
    see the driver itself: the clock frozen at `t`."""
    return dict(bench.faketime_env(), FAKETIME=bench.fake_date(t),
                LD_PRELOAD="/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def main():
    ap = argparse.ArgumentParser(prog="scripts/bench --profile")
    ap.add_argument("--dir", default=os.path.join(bench.ROOT, "target/profiling"),
                    help="build to profile: libpam_2fa.so and 2fa-enroll (target/profiling: "
                         "the release build with symbols)")
    ap.add_argument("--label", default="profiling")
    ap.add_argument("--logins", type=int, default=20, help="logins in the warm process (20)")
    ap.add_argument("--tools", default="strace,callgrind")
    a = ap.parse_args()
    if os.environ.get("BENCH_NS") != "1":
        sys.exit("run through scripts/bench --profile (needs a private mount namespace)")
    d = os.path.abspath(a.dir)
    out = os.path.join(bench.ROOT, "target/bench", f"profile-{a.label}")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    work = os.environ["BENCH_WORK"]
    os.chmod(work, 0o700)
    sink = None
    try:
        names = bench.make_users(a.logins + 1)
        src = os.path.join(d, "2fa.conf")
        sink_path = os.path.join(work, "log.sock")
        sink = bench.start_sink(sink_path, os.path.join(work, "syslog.txt"))
        conf = bench.setup_pam2fa(work, names, sink_path, os.path.join(d, "2fa-enroll"),
                                  src if os.path.exists(src) else os.path.join(bench.ROOT, "etc/2fa.conf"))
        pamd = os.path.join(work, "pam.d")
        shutil.copytree("/etc/pam.d", pamd, symlinks=True)
        with open(os.path.join(pamd, SERVICE), "w") as f:
            f.write(f"auth required {os.path.join(d, 'libpam_2fa.so')} config={conf}\n")
        bench.sh("mount", "--bind", pamd, "/etc/pam.d")
        t = bench.T0
        warm_users, fresh_user = names[:a.logins], names[a.logins:]
        step = 0

        def run_tool(tool_cmd, users, tag):
            nonlocal step
            step += 1
            path = login_file(work, users, t + 30 * step, tag)
            env = frozen_env(t + 30 * step)
            if tool_cmd[:1] == ["strace"]:
                # strace's own clock must not be frozen: -E for the driver only.
                tool_cmd = tool_cmd + [f"-E{k}={env.pop(k)}" for k in ("LD_PRELOAD", "FAKETIME")]
            p = subprocess.run(tool_cmd + [bench.DRIVER, "auth", SERVICE, path],
                               env=env, capture_output=True, text=True)
            rcs = [l.split()[-1] for l in p.stdout.splitlines() if l.strip()]
            if p.returncode != 0 or any(r != "0" for r in rcs):
                sys.exit(f"{tag}: logins failed (rc {p.returncode}, PAM {rcs}): {p.stderr[-2000:]}")
            return p

        tools = a.tools.split(",")
        # Warm-up: the first login creates the WAL, page cache, etc.
        run_tool([], warm_users, "warmup")
        if "strace" in tools:
            log = os.path.join(out, "strace-warm.txt")
            run_tool(["strace", "-f", "-T", "-ttt", "-o", log], warm_users, "strace")
            summary = os.path.join(out, "strace-warm-summary.txt")
            run_tool(["strace", "-f", "-c", "-S", "time", "-o", summary], warm_users, "strace-c")
            log1 = os.path.join(out, "strace-fresh.txt")
            run_tool(["strace", "-f", "-T", "-ttt", "-o", log1], fresh_user, "strace-fresh")
            print(f"strace: {log} {summary} {log1}")
        if "callgrind" in tools:
            for tag, users in (("warm", warm_users), ("fresh", fresh_user)):
                cg = os.path.join(out, f"callgrind-{tag}.out")
                run_tool(["valgrind", "--tool=callgrind", "--collect-systime=nsec",
                          f"--callgrind-out-file={cg}"], users, f"callgrind-{tag}")
                ann = os.path.join(out, f"callgrind-{tag}.txt")
                with open(ann, "w") as f:
                    subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=99.5", cg],
                                   stdout=f, check=True)
                print(f"callgrind: {cg} {ann}")
    finally:
        if sink:
            sink.kill()
            sink.wait()
        bench.remove_users()


if __name__ == "__main__":
    main()
