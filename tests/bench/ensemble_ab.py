#!/usr/bin/python3
"""A/B of two rockeeper binaries as 3-node ensembles on 127.0.0.1: both
ensembles are started and loaded, then each selected side-by-side workload
runs against one and then the other, the order alternating, --rounds times.
Prints every run (ops/s, p50, p999, max, server CPU per op), so the spread is visible.

  /usr/bin/python3 tests/bench/ensemble_ab.py --a OLD_BINARY --b NEW_BINARY \
      [--only 6] [--rounds 3] [--znodes 200000] [--duration 6]

Workload numbers are those of tests/bench/side_by_side/run.py (6: the
ClickHouse-like mix from 1 session x 64). Not part of the test suite; every
server started is killed at the end.
"""
import argparse
import os
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "side_by_side"))
import run as sbs  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="first rockeeper binary")
    ap.add_argument("--b", required=True, help="second rockeeper binary")
    ap.add_argument("--build", default=os.path.join(sbs.REPO, "build"),
                    help="build dir with tools/rkbench/rkbench")
    ap.add_argument("--only", default="6",
                    help="comma-separated workload numbers of run.py (default 6)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--znodes", type=int, default=200000)
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--value-size", type=int, default=100)
    args = ap.parse_args()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    args.rkbench = os.path.join(os.path.abspath(args.build), "tools/rkbench/rkbench")
    workdir = tempfile.mkdtemp(prefix="ensemble-ab-", dir=os.path.abspath(args.build))
    targets = []
    try:
        for name, binary in (("a", args.a), ("b", args.b)):
            members = sbs.make_ensemble(sbs.Rockeeper, workdir, 3, prefix=f"{name}-",
                                        binary=os.path.abspath(binary))
            for s in members:
                s.start()
            leader = sbs.wait_ensemble(members)
            # The leader last, as run.py: one session lands on a follower.
            targets.append(sbs.Target(name, [s for s in members if s is not leader]
                                      + [leader]))
        for t in targets:
            sbs.rkbench(args, t, "--setup-only")
        for rnd in range(args.rounds):
            for i in [int(x) - 1 for x in args.only.split(",")]:
                label, _metric, wargs = sbs.WORKLOADS[i]
                order = targets if (rnd + i) % 2 == 0 else targets[::-1]
                for t in order:
                    r = sbs.rkbench(args, t, "--no-setup", "--duration",
                                    str(args.duration), *wargs)
                    cpu_us = (r["server_cores"] * 1e6 / r["ops_per_s"]
                              if r["ops_per_s"] else 0)
                    print(f"round {rnd} {t.name}: {label}: {r['ops_per_s']:.0f} ops/s "
                          f"p50 {r['p50_us']:.0f} us p999 {r['p999_us']:.0f} us "
                          f"max {r['max_us']:.0f} us errors {r['errors']} "
                          f"server CPU {cpu_us:.0f} us/op", flush=True)
    finally:
        for s in sbs.STARTED:
            if s.alive():
                s.kill9()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
