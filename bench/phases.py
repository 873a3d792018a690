"""Wall-clock time of each phase of a pam_2fa TOTP login, from uprobes
(scripts/bench --phases): no instrumented build, the release build with
its symbols (target/profiling) runs under the bench's harness and the
kernel timestamps entry and return of chosen functions.

Each probe hit costs a trap (a few microseconds), so phases that contain
many probed calls read a little long; the totals without probes are the
benchmark's. Needs root, a private mount namespace (tracefs is mounted
inside it; the probes are removed at the end) and a kernel with uprobes.
"""
import argparse
import collections
import os
import re
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import profile_login as prof  # noqa: E402
import run as bench  # noqa: E402

GROUP = "p2fa_phase"
LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
# (label, symbol regex (demangled, nm -C), library): a phase is the time
# from entry to return of the function, summed over its calls in a login.
PHASES = [
    ("pam_sm_authenticate: PAM items, config checks, flow glue", r"pam_sm_authenticate", "so"),
    ("config: read (trusted-file checks)", r"p2fa_core::secure_fs::read_trusted_with_mode", "so"),
    ("config: TOML parse", r"toml::de::deserializer::Deserializer::parse", "so"),
    ("user lookup (getpwnam)", r"p2fa_core::users::canonical", "so"),
    ("store: file checks (stat)", r"p2fa_core::secure_fs::check_root_owned", "so"),
    ("store: sqlite3_open_v2", r"sqlite3_open_v2", "so"),
    ("store: schema parse", r"sqlite3InitOne", "so"),
    ("store: WAL index (rebuilt from the WAL at open)", r"walIndexReadHdr", "so"),
    ("store: statement prepare", r"sqlite3_prepare_v3", "so"),
    ("store: statement execution", r"sqlite3_step", "so"),
    ("store: user state, Rust side (x2)", r"p2fa_core::store::ops::read_user_state", "so"),
    ("host key + key check", r"p2fa_auth::flow::entry::load_key", "so"),
    ("conversation (prompt, answer)", r"<pam_2fa::pam::conv::PamConversation as p2fa_core::conversation::Conversation>::ask", "so"),
    ("fsync: WAL at commit, then its directory", r"fsync", "libc"),
    ("log line (syslog socket)", r"p2fa_core::audit::Audit::send", "so"),
    ("store: close", r"sqlite3_close", "so"),
]


def sym_offsets(path, demangle=True):
    """{symbol name: file offset} of the defined functions in `path`."""
    loads = []
    for line in subprocess.run(["readelf", "-lW", path], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            loads.append((int(f[2], 16), int(f[1], 16), int(f[5], 16)))  # vaddr, offset, filesz
    out = {}
    args = ["nm", "--defined-only"] + (["-C"] if demangle else []) + ([path] if demangle else ["-D", path])
    for line in subprocess.run(args, capture_output=True, text=True, check=True).stdout.splitlines():
        f = line.split(" ", 2)
        if len(f) < 3 or f[1] not in "tTW":
            continue
        addr, name = int(f[0], 16), f[2].split("@")[0]
        for vaddr, off, size in loads:
            if vaddr <= addr < vaddr + size:
                out.setdefault(name, addr - vaddr + off)
    return out


def main():
    ap = argparse.ArgumentParser(prog="scripts/bench --phases")
    ap.add_argument("--dir", default=os.path.join(bench.ROOT, "target/profiling"))
    ap.add_argument("--label", default="profiling")
    ap.add_argument("--logins", type=int, default=100, help="warm logins (100) and fresh ones (a third)")
    ap.add_argument("--tree", action="store_true", help="also print the calls of one warm login")
    a = ap.parse_args()
    if os.environ.get("BENCH_NS") != "1":
        sys.exit("run through scripts/bench --phases (needs a private mount namespace)")
    d = os.path.abspath(a.dir)
    so = os.path.join(d, "libpam_2fa.so")
    work = os.environ["BENCH_WORK"]
    os.chmod(work, 0o700)
    tracefs = os.path.join(work, "tracefs")
    os.mkdir(tracefs)
    bench.sh("mount", "-t", "tracefs", "nodev", tracefs)
    syms = {"so": sym_offsets(so), "libc": sym_offsets(LIBC, demangle=False)}
    paths = {"so": so, "libc": LIBC}
    events = []
    for i, (label, rx, lib) in enumerate(PHASES):
        matches = [n for n in syms[lib] if re.fullmatch(rx, n)]
        if len(matches) != 1:
            print(f"skipped {label}: {len(matches)} symbols match {rx} (inlined?)", file=sys.stderr)
            continue
        off = syms[lib][matches[0]]
        events.append((i, f"p:{GROUP}/e{i} {paths[lib]}:0x{off:x}", f"r:{GROUP}/x{i} {paths[lib]}:0x{off:x}"))

    def tw(name, text, append=False):
        # os.open: Python's append mode seeks, which tracefs refuses.
        fd = os.open(os.path.join(tracefs, name),
                     os.O_WRONLY | (os.O_APPEND if append else os.O_TRUNC))
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    sink = None
    try:
        for _, p, r in events:
            tw("uprobe_events", p + "\n", True)
            tw("uprobe_events", r + "\n", True)
        tw("trace_clock", "mono")
        tw("buffer_size_kb", "8192")
        names = bench.make_users(a.logins + a.logins // 3)
        sink_path = os.path.join(work, "log.sock")
        sink = bench.start_sink(sink_path, os.path.join(work, "syslog.txt"))
        src = os.path.join(d, "2fa.conf")
        conf = bench.setup_pam2fa(work, names, sink_path, os.path.join(d, "2fa-enroll"),
                                  src if os.path.exists(src) else os.path.join(bench.ROOT, "etc/2fa.conf"))
        pamd = os.path.join(work, "pam.d")
        shutil.copytree("/etc/pam.d", pamd, symlinks=True)
        with open(os.path.join(pamd, prof.SERVICE), "w") as f:
            f.write(f"auth required {so} config={conf}\n")
        bench.sh("mount", "--bind", pamd, "/etc/pam.d")
        results = {}
        warm, fresh = names[:a.logins], names[a.logins:]
        for step, (model, groups) in enumerate((
                ("warm", [warm[i:i + 25] for i in range(0, len(warm), 25)]),
                ("fresh", [[u] for u in fresh]))):
            t = bench.T0 + 30 * (step + 1)
            # One untraced round first: page cache, WAL.
            login = prof.login_file(work, groups[0], t, "warmup")
            subprocess.run([bench.DRIVER, "auth", prof.SERVICE, login], env=prof.frozen_env(t + 3000),
                           capture_output=True)
            tw("trace", "")
            tw(f"events/{GROUP}/enable", "1")
            totals = []
            for gi, g in enumerate(groups):
                login = prof.login_file(work, g, t, f"{model}-{gi}")
                p = subprocess.run([bench.DRIVER, "auth", prof.SERVICE, login],
                                   env=prof.frozen_env(t), capture_output=True, text=True)
                if p.returncode != 0:
                    sys.exit(f"{model}: logins failed: {p.stdout} {p.stderr[-1000:]}")
                totals += [tuple(int(v) for v in l.split()[:4]) for l in p.stdout.splitlines()]
            tw(f"events/{GROUP}/enable", "0")
            with open(os.path.join(tracefs, "trace")) as f:
                trace = f.read()
            results[model] = (parse(trace, len(totals)), totals)
            if a.tree and model == "warm":
                print_tree(trace)
        report(results)
    finally:
        if sink:
            sink.kill()
            sink.wait()
        try:
            tw(f"events/{GROUP}/enable", "0")
        except OSError:
            pass
        for i, _, _ in events:
            for kind in "ex":
                try:
                    tw("uprobe_events", f"-:{GROUP}/{kind}{i}\n", True)
                except OSError:
                    pass
        subprocess.run(["umount", tracefs])
        bench.remove_users()


LINE = re.compile(r"^\s*(\S+)-(\d+)\s+\[\d+\]\s+\S+\s+([\d.]+):\s+([ex])(\d+):")


def parse(trace, n_logins):
    """Per login (entry to return of pam_sm_authenticate, phase 0, in one
    process): {phase: inclusive seconds, (phase, "self"): seconds while it
    was the innermost probed function, (phase, "n"): outermost calls}.
    The self times of one login add up to its phase-0 total."""
    per_login = []
    current = {}  # pid -> (Counter, stack of [idx, entry ts], last ts)
    for line in trace.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        pid, ts, kind, idx = int(m.group(2)), float(m.group(3)), m.group(4), int(m.group(5))
        if idx == 0 and kind == "e":
            current[pid] = [collections.Counter(), [], ts]
        if pid not in current:
            continue
        c, stack, last = current[pid]
        if stack:
            c[(stack[-1][0], "self")] += ts - last
        current[pid][2] = ts
        if kind == "e":
            stack.append([idx, ts])
            continue
        # A return: pop to the matching entry (a return probe can be
        # missed when a function unwinds; then its frame goes too).
        while stack and stack[-1][0] != idx:
            stack.pop()
        if not stack:
            continue
        _, start = stack.pop()
        if not any(f[0] == idx for f in stack):  # outermost call (recursion)
            c[idx] += ts - start
            c[(idx, "n")] += 1
        if idx == 0:
            per_login.append(c)
            del current[pid]
    if len(per_login) != n_logins:
        print(f"warning: {len(per_login)} logins traced, {n_logins} run", file=sys.stderr)
    return per_login


def print_tree(trace):
    """The probed calls of the last complete warm login, indented by depth,
    with their durations (ms)."""
    logins, cur = [], None
    for line in trace.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        ev = (int(m.group(2)), float(m.group(3)), m.group(4), int(m.group(5)))
        if ev[3] == 0 and ev[2] == "e":
            cur = [ev]
        elif cur is not None and ev[0] == cur[0][0]:
            cur.append(ev)
            if ev[3] == 0 and ev[2] == "x":
                logins.append(cur)
                cur = None
    if not logins:
        return
    events, stack, out = logins[len(logins) // 2], [], []
    for pid, ts, kind, idx in events:
        if kind == "e":
            stack.append((idx, ts, len(out)))
            out.append(None)
        else:
            while stack and stack[-1][0] != idx:
                stack.pop()
            if stack:
                i, start, slot = stack.pop()
                out[slot] = f"{'  ' * len(stack)}{PHASES[i][0]}: {(ts - start) * 1e3:.3f}"
    print("One warm login, probed calls in order (ms):")
    print("\n".join(l for l in out if l) + "\n")


def report(results):
    print("Phases of a pam_2fa TOTP login (uprobes; median over logins, ms). self: while "
          "it was the innermost probed function (the self column adds up to the module "
          "call); incl.: including what it called; n: calls per login.\n")
    print("| phase | warm self | warm incl. | fresh self | fresh incl. | n |")
    print("|---|---|---|---|---|---|")
    sums = {"warm": 0.0, "fresh": 0.0}
    for i, (label, _, _) in enumerate(PHASES):
        cells, n = [], 0
        for model in ("warm", "fresh"):
            logins, _ = results[model]
            if not logins:
                cells += ["-", "-"]
                continue
            me = statistics.median(l.get((i, "self"), 0.0) * 1e3 for l in logins)
            sums[model] += me
            cells.append(f"{me:.3f}")
            cells.append(f"{statistics.median(l.get(i, 0.0) * 1e3 for l in logins):.3f}")
            n = statistics.median(l.get((i, "n"), 0) for l in logins)
        print(f"| {label} | " + " | ".join(cells) + f" | {n:g} |")
    print(f"| sum of the self medians | {sums['warm']:.3f} | | {sums['fresh']:.3f} | | |")
    for model in ("warm", "fresh"):
        _, totals = results[model]
        med = [statistics.median(v[k] for v in totals) / 1e6 for k in range(4)]
        print(f"\n{model}: driver timings with probes (median ms): total {med[0]:.3f}, pam_start "
              f"{med[1]:.3f}, pam_authenticate {med[2]:.3f}, pam_end {med[3]:.3f}")


if __name__ == "__main__":
    main()
