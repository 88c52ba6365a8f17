#!/usr/bin/python3
"""Scale run: loads N znodes of 100 B into a standalone rockeeper with rkbench
(16 sessions x 32 creates) and reports the load rate, RSS (sampled during the
load, right after it and after a settling pause), disk bytes of the data dir,
get throughput and p50/p99 on random keys of the whole tree, single-session
get latency, and the restart time to the first successful read (then the
gets again, on the restarted server). Prints progress every --sample-s
seconds while loading and a Markdown table at the end.

  /usr/bin/python3 tests/bench/scale/run.py --build build [--znodes 100000000]

Default 100M znodes (hours on the development VM); --znodes picks a smaller
size. Resumable: with --data-dir DIR the data dir is kept, and a run on a
DIR that already holds a tree restarts the server on it and loads again,
rkbench's setup counting NODEEXISTS as done (the already-loaded part costs a
failed create each, not a write). Not part of the default test run. The
server and rkbench are killed at the end, also on Ctrl-C and SIGTERM.
"""
import argparse
import datetime
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "side_by_side"))
import run as sbs  # noqa: E402  (the side-by-side harness: servers, probes)

ROOT = "/scale"
PROGRESS = re.compile(r"\[rkbench\] setup\s+(\d+)s\s+(\d+) ops")


class Loader:
    """rkbench --setup-only in the background; its live progress (stderr,
    `--progress on`) parsed into `ops`."""

    def __init__(self, cmd):
        self.ops = 0
        self.other = []  # stderr lines that are not progress
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = b""
        self._threads = [threading.Thread(target=self._read_err, daemon=True),
                         threading.Thread(target=self._read_out, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_err(self):
        buf = b""
        while True:
            chunk = self.proc.stderr.read1(65536)
            if not chunk:
                break
            buf += chunk
            parts = re.split(rb"[\r\n]", buf)
            buf = parts.pop()
            for p in parts:
                self._line(p.decode(errors="replace"))
        self._line(buf.decode(errors="replace"))

    def _line(self, text):
        m = PROGRESS.search(text)
        if m:
            self.ops = int(m.group(2))
        elif text.strip() and not text.startswith("\x1b"):
            self.other.append(text.strip())

    def _read_out(self):
        self.out = self.proc.stdout.read()

    def wait(self, timeout):
        rc = self.proc.wait(timeout)
        for t in self._threads:
            t.join(10)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def fmt_dur(s):
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(sbs.REPO, "build"),
                    help="build dir with server/rockeeper and tools/rkbench/rkbench")
    ap.add_argument("--znodes", type=int, default=100_000_000,
                    help="znodes to load (default 100M)")
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--fanout", type=int, default=1000,
                    help="keys per parent (ROOT/t/p<i/F>/k<i>; default 1000)")
    ap.add_argument("--data-dir", default=None,
                    help="parent of the server's dir, kept at the end; a run on "
                         "an existing one resumes (default: a new dir under the "
                         "build dir, removed at the end)")
    ap.add_argument("--sample-s", type=float, default=10,
                    help="seconds between progress lines / RSS samples")
    ap.add_argument("--settle-s", type=float, default=30,
                    help="RSS sampled this long after the load (flushes, "
                         "compactions)")
    ap.add_argument("--duration", type=float, default=10,
                    help="seconds per get run")
    ap.add_argument("--json", default=None, help="also write the raw results here")
    args = ap.parse_args()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    build = os.path.abspath(args.build)
    rkbench = os.path.join(build, "tools/rkbench/rkbench")
    rk_bin = os.path.join(build, "server/rockeeper")
    for b in (rkbench, rk_bin):
        if not os.path.exists(b):
            sys.exit(f"missing {b}")
    if args.data_dir:
        workdir = os.path.abspath(args.data_dir)
        os.makedirs(workdir, exist_ok=True)
    else:
        workdir = tempfile.mkdtemp(prefix="scale-", dir=build)
    n = args.znodes
    resumed = os.path.isdir(os.path.join(workdir, "rockeeper", "data", "state"))
    expected = n + -(-n // args.fanout) + 2  # keys, parents, ROOT and ROOT/t
    rk = sbs.Rockeeper(workdir, rk_bin)
    target = sbs.Target("rockeeper", [rk])
    res = {"znodes": n, "value_size": args.value_size, "resumed": resumed}
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg()[0]
    probe = sbs.fsync_probe_us(workdir)
    loader = None

    def bench(*extra):
        cmd = [rkbench, "--proto", "zk", "--server", target.server_arg(),
               "--server-pid", target.pid_arg(), "--json", "--progress", "off",
               "--root", ROOT, "--keys", str(n), "--fanout", str(args.fanout),
               "--tree-depth", "2", "--value-size", str(args.value_size), *extra]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: rc {p.returncode}\n{p.stderr}")
        return json.loads(p.stdout.strip().splitlines()[-1])

    def key(i):
        return f"{ROOT}/t/p{i // args.fanout}/k{i}"

    def gets(label):
        r = bench("--no-setup", "--workload", "get", "--duration", str(args.duration))
        res[f"get_{label}"] = r
        sbs.log(f"get 16 x 32 ({label}): {r['ops_per_s']:.0f}/s p50 {r['p50_us']:.0f} us "
                f"p99 {r['p99_us']:.0f} us p999 {r['p999_us']:.0f} us errors {r['errors']} "
                f"server {r['server_cores']:.2f} cores, rkbench {r['client_cores']:.2f}")
        r = bench("--no-setup", "--workload", "get", "--duration", str(args.duration),
                  "--sessions", "1", "--outstanding", "1", "--threads", "1")
        res[f"get1_{label}"] = r
        sbs.log(f"get 1 x 1 ({label}): p50 {r['p50_us']:.0f} us p99 {r['p99_us']:.0f} us "
                f"errors {r['errors']}")

    try:
        rk.start()
        rk.wait_serving()
        sbs.log(f"rockeeper :{rk.port} pid {rk.pid}, data {rk.data}"
                + (" (resuming on the existing tree)" if resumed else ""))
        # Load, with progress and RSS samples.
        cmd = [rkbench, "--proto", "zk", "--server", target.server_arg(),
               "--json", "--progress", "on", "--setup-only", "--root", ROOT,
               "--keys", str(n), "--fanout", str(args.fanout), "--tree-depth", "2",
               "--value-size", str(args.value_size), "--workload", "get"]
        t0 = time.monotonic()
        loader = Loader(cmd)
        samples = []  # (seconds, ops, rss_kb)
        last_t, last_ops = t0, 0
        while loader.proc.poll() is None:
            try:
                loader.proc.wait(args.sample_s)
            except subprocess.TimeoutExpired:
                pass
            now, ops, rss = time.monotonic(), loader.ops, sbs.rss_kb(rk.pid)
            samples.append((round(now - t0, 1), ops, rss))
            rate = (ops - last_ops) / max(now - last_t, 1e-9)
            avg = ops / max(now - t0, 1e-9)
            eta = (expected - ops) / avg if avg > 0 and ops < expected else 0
            if loader.proc.poll() is None:
                sbs.log(f"loaded {ops}/{expected} creates ({100 * ops / expected:.1f}%), "
                        f"{rate:.0f}/s now, {avg:.0f}/s average, ETA {fmt_dur(eta)}; "
                        f"RSS {rss // 1024} MiB (max {max(s[2] for s in samples) // 1024}); "
                        f"data dir {sbs.fmt_bytes(sbs.du_bytes(rk.data, allocated=True))}")
            last_t, last_ops = now, ops
            if rk.proc.poll() is not None:
                raise RuntimeError(f"rockeeper exited during the load: {rk.dir}/server.log")
        if loader.wait(60) != 0:
            raise RuntimeError(f"rkbench load failed: {' '.join(cmd)}\n"
                               + "\n".join(loader.other[-20:]))
        load = json.loads(loader.out.decode().strip().splitlines()[-1])
        loader = None
        res["load"] = load
        res["rss_samples"] = samples
        res["rss_max_during_load_kb"] = max([s[2] for s in samples] or [0])
        res["rss_after_load_kb"] = sbs.rss_kb(rk.pid)
        sbs.log(f"load done: {load['setup_ops']} creates in {load['setup_s']:.0f} s, "
                f"{load['setup_ops_per_s']:.0f}/s; RSS {res['rss_after_load_kb'] // 1024} MiB")
        # RSS while the server settles (memtable flushes, compactions).
        settle = []
        deadline = time.monotonic() + args.settle_s
        while time.monotonic() < deadline:
            settle.append(sbs.rss_kb(rk.pid))
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        res["rss_settled_kb"] = sbs.rss_kb(rk.pid)
        res["rss_max_settling_kb"] = max(settle or [0])
        res["disk_bytes"] = sbs.du_bytes(rk.data, allocated=True)
        res["disk_apparent_bytes"] = sbs.du_bytes(rk.data)
        sbs.log(f"after {args.settle_s:g} s: RSS {res['rss_settled_kb'] // 1024} MiB; "
                f"data dir {sbs.fmt_bytes(res['disk_bytes'])} on disk")
        gets("loaded")
        res["rss_after_gets_kb"] = sbs.rss_kb(rk.pid)
        # Restart: SIGTERM, then spawn to the first successful read of a
        # random key.
        t = time.monotonic()
        rk.stop()
        res["stop_s"] = time.monotonic() - t
        res["restart_s"] = rk.start_to_first_read(key(random.randrange(n)))
        res["rss_after_restart_kb"] = sbs.rss_kb(rk.pid)
        sbs.log(f"stop {res['stop_s']:.2f} s; restart to first read "
                f"{res['restart_s']:.2f} s, RSS {res['rss_after_restart_kb'] // 1024} MiB")
        gets("restarted")
        res["rss_end_kb"] = sbs.rss_kb(rk.pid)
    finally:
        if loader is not None:
            loader.kill()
        rk.stop()
        for s in sbs.STARTED:
            if s.alive():
                s.kill9()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1)
        if not args.data_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    load_end = os.getloadavg()[0]

    kib = lambda v: sbs.fmt_bytes(v * 1024)
    ld = res["load"]
    out = [f"Scale run {started:%Y-%m-%d %H:%M} UTC: {n} znodes of {args.value_size} B "
           f"(ROOT/t/p<i/{args.fanout}>/k<i>), rockeeper standalone, loaded by rkbench "
           f"(16 sessions x 32 creates, ZooKeeper wire protocol)"
           + (", resumed on an existing data dir" if resumed else "") + ".",
           f"Machine: {sbs.machine()}. Load average {load_start:.1f} at the start, "
           f"{load_end:.1f} at the end; write(512 B)+fdatasync on the data disk: "
           f"median {probe[0]:.0f} us (p90 {probe[1]:.0f}) at the start.",
           "",
           "| figure | value |",
           "|---|---:|",
           f"| load: creates (keys + parents) / time | {ld['setup_ops']} / "
           f"{ld['setup_s']:.1f} s |",
           f"| load rate | {ld['setup_ops_per_s']:.0f} creates/s |",
           f"| RSS: max sampled during the load (every {args.sample_s:g} s) | "
           f"{kib(res['rss_max_during_load_kb'])} |",
           f"| RSS: right after the load / {args.settle_s:g} s later | "
           f"{kib(res['rss_after_load_kb'])} / {kib(res['rss_settled_kb'])} |",
           f"| RSS after the get runs below (random keys of the whole tree) | "
           f"{kib(res['rss_after_gets_kb'])} |",
           f"| data dir on disk (allocated; apparent size) | "
           f"{sbs.fmt_bytes(res['disk_bytes'])} ({sbs.fmt_bytes(res['disk_apparent_bytes'])}) |"]
    for label, text in (("loaded", "after the load"), ("restarted", "after the restart")):
        g, g1 = res[f"get_{label}"], res[f"get1_{label}"]
        errs = f", errors {g['errors_by_code']}" if g["errors"] else ""
        out.append(f"| get, random keys, 16 x 32, {text}: ops/s, p50 / p99 / p999 us | "
                   f"{g['ops_per_s']:.0f}/s, {g['p50_us']:.0f} / {g['p99_us']:.0f} / "
                   f"{g['p999_us']:.0f}{errs} (server {g['server_cores']:.2f} cores, "
                   f"rkbench {g['client_cores']:.2f}) |")
        out.append(f"| get, random keys, 1 x 1, {text}: p50 / p99 us | "
                   f"{g1['p50_us']:.0f} / {g1['p99_us']:.0f} |")
    out += [f"| stop (SIGTERM to exit) | {res['stop_s']:.2f} s |",
            f"| restart: spawn to first successful read of a random key | "
            f"{res['restart_s']:.2f} s |",
            f"| RSS after the restart / after its get runs | {kib(res['rss_after_restart_kb'])} / "
            f"{kib(res['rss_end_kb'])} |"]
    print("\n".join(out))


if __name__ == "__main__":
    main()
