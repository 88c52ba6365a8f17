#!/usr/bin/python3
"""Snapshot pauses of 3-node rockeeper ensembles, A/B: for each binary in
turn (the order alternating each round) a fresh ensemble on 127.0.0.1 with
the given snapCount is loaded with --znodes znodes, then 16 x 32 sets run
for --duration s. Prints rkbench's ops/s, p999 and max with every snapshot
the three members took during the sets: how long its ZAB driver held the
applies ("applies paused") and how long the whole snapshot took.

  /usr/bin/python3 tests/bench/ensemble_pause.py BINARY [BINARY...] \\
      [--rounds 2] [--snap-count 20000] [--znodes 100000] [--duration 8]

Not part of the test suite; every server started is killed at the end.
"""
import argparse
import os
import re
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "side_by_side"))
import run as sbs  # noqa: E402


def one_run(args, binary):
    workdir = tempfile.mkdtemp(prefix="ensemble-pause-",
                               dir=os.path.abspath(args.build))
    try:
        members = sbs.make_ensemble(sbs.Rockeeper, workdir, 3, prefix="p-",
                                    binary=os.path.abspath(binary))
        for s in members:
            with open(s.cfg, "a") as f:
                f.write(f"snapCount={args.snap_count}\n")
            s.start()
        leader = sbs.wait_ensemble(members)
        target = sbs.Target("p", [s for s in members if s is not leader] + [leader])
        sbs.rkbench(args, target, "--setup-only")
        logs = [os.path.join(s.dir, "server.log") for s in members]
        marks = [os.path.getsize(p) for p in logs]
        r = sbs.rkbench(args, target, "--no-setup", "--duration",
                        str(args.duration), "--workload", "set")
        paused, took = [], []
        for path, mark in zip(logs, marks):
            with open(path, errors="replace") as f:
                f.seek(mark)
                text = f.read()
            for m in re.finditer(r"taken in (\d+) ms, applies paused (\d+) ms", text):
                took.append(int(m.group(1)))
                paused.append(int(m.group(2)))
        return r, sorted(paused), sorted(took)
    finally:
        for s in sbs.STARTED:
            if s.alive():
                s.kill9()
        sbs.STARTED.clear()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="+", help="rockeeper binaries")
    ap.add_argument("--build", default=os.path.join(sbs.REPO, "build"),
                    help="build dir with tools/rkbench/rkbench")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--snap-count", type=int, default=20000)
    ap.add_argument("--znodes", type=int, default=100000)
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--value-size", type=int, default=100)
    args = ap.parse_args()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    args.rkbench = os.path.join(os.path.abspath(args.build), "tools/rkbench/rkbench")
    for rnd in range(args.rounds):
        order = args.binaries if rnd % 2 == 0 else args.binaries[::-1]
        for binary in order:
            r, paused, took = one_run(args, binary)
            median = paused[len(paused) // 2] if paused else 0
            print(f"round {rnd} {binary}: set {r['ops_per_s']:.0f}/s "
                  f"p999 {r['p999_us'] / 1000:.1f} ms max {r['max_us'] / 1000:.1f} ms; "
                  f"{len(paused)} snapshots, applies paused median {median} ms: "
                  f"{paused}; whole snapshot ms: {took}", flush=True)


if __name__ == "__main__":
    main()
