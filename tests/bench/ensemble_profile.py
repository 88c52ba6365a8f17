#!/usr/bin/python3
"""Where a 3-node rockeeper ensemble spends a workload: starts three servers
on 127.0.0.1 (admin HTTP on), loads --znodes, runs one rkbench workload and,
over a window in its middle, reads every server thread's CPU
(/proc/PID/task/*/stat) and each server's /metrics: txn log group commits
per second, txns per group, mean write + fdatasync, mean commit latency
(submit to applied, for the writes that server's clients sent).

  /usr/bin/python3 tests/bench/ensemble_profile.py --binary build/server/rockeeper \\
      [--workload create] [--client all|leader|follower] [--sessions 16] \\
      [--outstanding 32] [--znodes 100000] [--duration 6] [--perf FILE]

--perf FILE also records the leader (or, with --perf-node follower, a
follower) with `perf record` (--perf-args, default -g -F 1000) over the
window.

--client leader / follower puts every session on that server (the latency
of a write depends on it: a follower forwards it to the leader). Not part
of the test suite; every server started is killed at the end.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "side_by_side"))
import run as sbs  # noqa: E402

METRICS = ("commit_duration_seconds", "fsync_duration_seconds",
           "commit_batch_size")


def thread_ticks(servers):
    """(server, thread name) -> CPU clock ticks so far, summed per name."""
    out = {}
    for s in servers:
        for tid in os.listdir(f"/proc/{s.pid}/task"):
            try:
                with open(f"/proc/{s.pid}/task/{tid}/stat") as f:
                    st = f.read()
            except OSError:
                continue  # the thread ended
            name = st[st.index("(") + 1:st.rindex(")")]
            fields = st[st.rindex(")") + 2:].split()
            key = (s.name, name)
            out[key] = out.get(key, 0) + int(fields[11]) + int(fields[12])
    return out


def metrics(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                  timeout=5).read().decode()
    out = {}
    for name in METRICS:
        total = re.search(rf"^rockeeper_{name}_sum (\S+)$", text, re.M)
        count = re.search(rf"^rockeeper_{name}_count (\S+)$", text, re.M)
        out[name] = (float(total.group(1)) if total else 0.0,
                     float(count.group(1)) if count else 0.0)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True, help="rockeeper binary")
    ap.add_argument("--build", default=os.path.join(sbs.REPO, "build"),
                    help="build dir with tools/rkbench/rkbench")
    ap.add_argument("--workload", default="create")
    ap.add_argument("--client", choices=["all", "leader", "follower"], default="all")
    ap.add_argument("--sessions", type=int, default=16)
    ap.add_argument("--outstanding", type=int, default=32)
    ap.add_argument("--znodes", type=int, default=100000)
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--perf", help="perf record the leader over the window into FILE")
    ap.add_argument("--perf-node", choices=("leader", "follower"), default="leader",
                    help="which server --perf records (default leader)")
    ap.add_argument("--perf-args", default="-g -F 1000",
                    help="perf record options (e.g. '--call-graph dwarf,16384 -F 500')")
    args = ap.parse_args()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    args.rkbench = os.path.join(os.path.abspath(args.build), "tools/rkbench/rkbench")
    workdir = tempfile.mkdtemp(prefix="ensemble-profile-",
                               dir=os.path.abspath(args.build))
    members = sbs.make_ensemble(sbs.Rockeeper, workdir, 3, prefix="n",
                                binary=os.path.abspath(args.binary))
    admin = {}
    for s in members:
        admin[s.name] = sbs.free_port()
        with open(s.cfg) as f:
            cfg = f.read()
        cfg = cfg.replace("admin.enableServer=false",
                          "admin.enableServer=true\n"
                          f"admin.serverPort={admin[s.name]}\n"
                          "admin.serverAddress=127.0.0.1")
        with open(s.cfg, "w") as f:
            f.write(cfg)
    try:
        for s in members:
            s.start()
        leader = sbs.wait_ensemble(members)
        sbs.rkbench(args, sbs.Target("all", members), "--setup-only")
        clients = {"all": members, "leader": [leader],
                   "follower": [next(s for s in members if s is not leader)]}
        target = sbs.Target(args.client, clients[args.client])
        cmd = [args.rkbench, "--proto", "zk", "--server", target.server_arg(),
               "--json", "--progress", "off", "--root", sbs.ROOT,
               "--keys", str(args.znodes), "--fanout", str(sbs.FANOUT),
               "--tree-depth", "2", "--value-size", str(args.value_size),
               "--workload", args.workload, "--sessions", str(args.sessions),
               "--outstanding", str(args.outstanding),
               "--duration", str(args.duration)]
        if args.sessions == 1 and args.outstanding == 1:
            cmd += ["--threads", "1"]
        bench = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        # The middle of the run: after the start, before the end.
        window = max(1.0, args.duration / 2)
        time.sleep(max(0.5, (args.duration - window) / 2))
        ticks0, m0, t0 = thread_ticks(members), {s.name: metrics(admin[s.name]) for s in members}, time.monotonic()
        if args.perf:
            recorded = (leader if args.perf_node == "leader"
                        else next(s for s in members if s is not leader))
            subprocess.run(["perf", "record"] + args.perf_args.split() + ["-o", args.perf,
                            "-p", str(recorded.proc.pid), "--", "sleep", str(window)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)
        else:
            time.sleep(window)
        ticks1, m1, t1 = thread_ticks(members), {s.name: metrics(admin[s.name]) for s in members}, time.monotonic()
        out, _ = bench.communicate(timeout=args.duration + 120)
        if bench.returncode != 0:
            raise RuntimeError(f"rkbench failed: rc {bench.returncode}")
        r = json.loads(out.strip().splitlines()[-1])
        secs = t1 - t0
        hz = os.sysconf("SC_CLK_TCK")
        role = {s.name: s.name + ("(leader)" if s is leader else "") for s in members}
        print(f"{args.workload}, {args.sessions} x {args.outstanding}, clients on "
              f"{args.client}: {r['ops_per_s']:.0f} ops/s, p50 {r['p50_us']} us, "
              f"p99 {r['p99_us']} us, rkbench {r['client_cores']} cores")
        for s in members:
            d = {k: (m1[s.name][k][0] - m0[s.name][k][0],
                     m1[s.name][k][1] - m0[s.name][k][1]) for k in METRICS}

            def mean(k, scale):
                return d[k][0] / d[k][1] * scale if d[k][1] else 0.0
            print(f"  {role[s.name]}: {d['commit_batch_size'][1] / secs:.0f} log groups/s, "
                  f"{mean('commit_batch_size', 1):.1f} txns each, write + fdatasync "
                  f"{mean('fsync_duration_seconds', 1e6):.0f} us; commit "
                  f"{mean('commit_duration_seconds', 1e6):.0f} us for "
                  f"{d['commit_duration_seconds'][1] / secs:.0f} writes/s")
        cores = {k: (ticks1.get(k, 0) - ticks0.get(k, 0)) / hz / secs for k in ticks1}
        print(f"  threads (cores, >= 0.02; total {sum(cores.values()):.2f}):")
        for (name, thread), c in sorted(cores.items(), key=lambda x: -x[1]):
            if c >= 0.02:
                print(f"    {role[name]:12} {thread:16} {c:.2f}")
    finally:
        for s in members:
            if s.alive():
                s.proc.kill()
                s.proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
