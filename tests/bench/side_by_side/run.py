#!/usr/bin/python3
"""Side-by-side benchmark: Apache ZooKeeper 3.8 (Debian's zookeeper package)
and rockeeper, both standalone on 127.0.0.1 with equivalent settings
(forceSync, data dirs on the same disk, admin servers off), driven by the
same rkbench workloads, alternating, in one run. Prints a Markdown table.

  /usr/bin/python3 tests/bench/side_by_side/run.py --build build [--znodes 1000000]

Not part of the default test run. Needs: java + /usr/share/java/zookeeper.jar,
the rockeeper and rkbench binaries of --build. The 3-node half waits for
ZAB replication.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
ZK_CLASSPATH = ("/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:"
                "/usr/share/java/slf4j-simple.jar")
ROOT = "/rkbench"
FANOUT = 1000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def zk_get(port, path, timeout_s=1.0):
    """One ZooKeeper-protocol session: connect, getData(path). True if the
    read succeeded (err 0). Raw socket, so no client library start-up time
    is measured."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            s.settimeout(timeout_s)
            req = struct.pack(">iqiq", 0, 0, 30000, 0) + struct.pack(">i", 16) + b"\0" * 16 + b"\0"
            s.sendall(struct.pack(">i", len(req)) + req)
            if len(_read_frame(s)) < 36:
                return False
            p = path.encode()
            body = struct.pack(">ii", 1, 4) + struct.pack(">i", len(p)) + p + b"\0"
            s.sendall(struct.pack(">i", len(body)) + body)
            reply = _read_frame(s)
            xid, _zxid, err = struct.unpack(">iqi", reply[:16])
            # Close the session so it does not linger.
            close = struct.pack(">ii", 2, -11)
            s.sendall(struct.pack(">i", len(close)) + close)
            return xid == 1 and err == 0
    except (OSError, struct.error):
        return False


def _read_frame(s):
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise OSError("closed")
            buf += chunk
        return buf
    (n,) = struct.unpack(">i", exact(4))
    return exact(n)


def fsync_probe_us(directory, count=200):
    """Median and p90 of write(512 B) + fdatasync on the data disk: what
    every durable write waits for, and how busy the disk is right now."""
    path = os.path.join(directory, "fsync-probe")
    times = []
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        for _ in range(count):
            t = time.perf_counter()
            os.pwrite(fd, b"x" * 512, 0)
            os.fdatasync(fd)
            times.append((time.perf_counter() - t) * 1e6)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    return times[len(times) // 2], times[len(times) * 9 // 10]


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    java = java.splitlines()[0] if java else "?"
    return (f"{os.cpu_count()} x {cpu}, {mem_gib:.0f} GiB RAM, Linux "
            f"{platform.release()}, {java}")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def du_bytes(path):
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


class Server:
    """One server process: start, stop, restart with its data kept."""

    def __init__(self, name, workdir):
        self.name = name
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.port = free_port()
        self.proc = None
        self.logf = open(os.path.join(self.dir, "server.log"), "ab")

    def start(self):
        self.proc = subprocess.Popen(self.command(), stdout=self.logf,
                                     stderr=self.logf, cwd=self.dir)

    def wait_listening(self, seconds=120):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.dir}/server.log")
            # ZooKeeper listens before its database is loaded: wait for a
            # successful read.
            if zk_get(self.port, "/"):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on {self.port}")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart_to_first_read(self, path, seconds=300):
        """Stops the server, starts it again and measures the time from the
        spawn to the first successful getData(path)."""
        self.stop()
        t0 = time.monotonic()
        self.start()
        deadline = t0 + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited on restart")
            if zk_get(self.port, path, timeout_s=2):
                return time.monotonic() - t0
            time.sleep(0.01)
        raise RuntimeError(f"{self.name}: no successful read after restart")


class ZooKeeper(Server):
    def __init__(self, workdir, jvm_flags):
        super().__init__("zookeeper", workdir)
        self.jvm_flags = jvm_flags
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        self.cfg = os.path.join(self.dir, "zoo.cfg")
        with open(self.cfg, "w") as f:
            f.write(f"tickTime=2000\ndataDir={self.data}\n"
                    f"clientPort={self.port}\nclientPortAddress=127.0.0.1\n"
                    "admin.enableServer=false\nforceSync=yes\n"
                    "maxClientCnxns=0\n4lw.commands.whitelist=srvr,mntr\n")

    def command(self):
        return (["java", f"-Dzookeeper.log.dir={self.dir}",
                 "-Dzookeeper.admin.enableServer=false"]
                + self.jvm_flags.split()
                + ["-cp", ZK_CLASSPATH,
                   "org.apache.zookeeper.server.quorum.QuorumPeerMain", self.cfg])

    def snapshot_bytes(self):
        snap_dir = os.path.join(self.data, "version-2")
        snaps = [f for f in os.listdir(snap_dir) if f.startswith("snapshot.")]
        if not snaps:
            return 0
        newest = max(snaps, key=lambda f: int(f.split(".")[1], 16))
        return os.path.getsize(os.path.join(snap_dir, newest))

    def data_bytes(self):
        return du_bytes(self.data)


class Rockeeper(Server):
    def __init__(self, workdir, binary):
        super().__init__("rockeeper", workdir)
        self.binary = binary
        self.data = os.path.join(self.dir, "data")
        self.cfg = os.path.join(self.dir, "zoo.cfg")
        with open(self.cfg, "w") as f:
            f.write(f"tickTime=2000\ndataDir={self.data}\n"
                    f"clientPort={self.port}\nclientPortAddress=127.0.0.1\n"
                    f"grpcPort={free_port()}\ngrpcPortAddress=127.0.0.1\n"
                    "admin.enableServer=false\nforceSync=yes\n"
                    "maxClientCnxns=0\n4lw.commands.whitelist=srvr,mntr\n")

    def command(self):
        return [self.binary, "--config", self.cfg]

    def snapshot_bytes(self):
        snap_dir = os.path.join(self.data, "snapshots")
        if not os.path.isdir(snap_dir):
            return 0
        snaps = [f for f in os.listdir(snap_dir) if f.startswith("snapshot.")]
        if not snaps:
            return 0
        newest = max(snaps, key=lambda f: int(f.split(".")[1], 16))
        return du_bytes(os.path.join(snap_dir, newest))

    def data_bytes(self):
        # Snapshots are RocksDB checkpoints: hard links to the state's files.
        seen, total = set(), 0
        for dirpath, _dirs, files in os.walk(self.data):
            for name in files:
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
        return total


def rkbench(args, server, *extra):
    cmd = [args.rkbench, "--proto", "zk", "--server", f"127.0.0.1:{server.port}",
           "--server-pid", str(server.proc.pid), "--json", "--progress", "off",
           "--root", ROOT, "--keys", str(args.znodes), "--fanout", str(FANOUT),
           "--tree-depth", "2", "--value-size", str(args.value_size), *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: rc {p.returncode}\n{p.stderr}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["command"] = " ".join(cmd[:1] + [c for c in cmd[1:]])
    return r


WORKLOADS = [
    # (label, metric, rkbench args)
    ("create, 16 sessions x 32", "ops", ["--workload", "create"]),
    ("set, 16 x 32", "ops", ["--workload", "set"]),
    ("get, 16 x 32", "ops", ["--workload", "get"]),
    ("90% get / 10% set, 16 x 32", "ops", ["--workload", "mix", "--read-pct", "90"]),
    ("ClickHouse-like mix, 16 x 32", "ops", ["--workload", "clickhouse"]),
    ("create, 1 session x 1 (latency)", "lat", ["--workload", "create", "--sessions", "1",
                                                "--outstanding", "1", "--threads", "1"]),
    ("get, 1 session x 1 (latency)", "lat", ["--workload", "get", "--sessions", "1",
                                             "--outstanding", "1", "--threads", "1"]),
]


def fmt_ops(v):
    return f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}"


def fmt_bytes(v):
    if v == 0:
        return "none"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if v >= size:
            return f"{v / size:.1f} {unit}"
    return f"{v} B"


def ratio(rk, zk):
    return f"{rk / zk:.2f}x" if zk and rk else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(REPO, "build"),
                    help="build dir with server/rockeeper and tools/rkbench/rkbench")
    ap.add_argument("--znodes", type=int, default=1000000,
                    help="znodes loaded before the workloads (default 1M)")
    ap.add_argument("--duration", type=float, default=10, help="seconds per workload run")
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--workdir", default=None,
                    help="parent of both data dirs (default: a new dir under "
                         "the build dir, i.e. on the same disk)")
    ap.add_argument("--zk-jvm-flags", default="", help="e.g. -Xmx8g")
    ap.add_argument("--only", default=None,
                    help="comma-separated workload numbers (1-based) to run")
    ap.add_argument("--json", default=None, help="also write all raw results here")
    args = ap.parse_args()
    # Stopped by a signal: still stop both servers (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    args.build = os.path.abspath(args.build)
    args.rkbench = os.path.join(args.build, "tools/rkbench/rkbench")
    rk_bin = os.path.join(args.build, "server/rockeeper")
    for b in (args.rkbench, rk_bin, "/usr/share/java/zookeeper.jar"):
        if not os.path.exists(b):
            sys.exit(f"missing {b}")
    workdir = tempfile.mkdtemp(prefix="side-by-side-", dir=args.workdir or args.build)
    probe_start = fsync_probe_us(workdir)
    load_start = os.getloadavg()[0]
    zk = ZooKeeper(workdir, args.zk_jvm_flags)
    rk = Rockeeper(workdir, rk_bin)
    servers = [zk, rk]
    results = {"zookeeper": {}, "rockeeper": {}}
    try:
        for s in servers:
            s.start()
        for s in servers:
            s.wait_listening()
        log(f"servers up: zookeeper :{zk.port} pid {zk.proc.pid}, "
            f"rockeeper :{rk.port} pid {rk.proc.pid}; data under {workdir}")
        # Load the tree (untimed for the workloads, but its rate is reported).
        for s in servers:
            log(f"{s.name}: loading {args.znodes} znodes")
            r = rkbench(args, s, "--setup-only")
            results[s.name]["load"] = r
            results[s.name]["rss_after_load_kb"] = rss_kb(s.proc.pid)
            log(f"{s.name}: {r['setup_ops_per_s']:.0f} creates/s, RSS "
                f"{results[s.name]['rss_after_load_kb'] // 1024} MiB")
        # Restart with exactly the loaded tree (before the workloads add
        # nodes): time to the first successful read, RSS, snapshot, disk.
        key = f"{ROOT}/t/p0/k0"
        for s in servers:
            t = s.restart_to_first_read(key)
            results[s.name]["restart_s"] = t
            results[s.name]["rss_after_restart_kb"] = rss_kb(s.proc.pid)
            # ZooKeeper snapshots the whole tree when it starts; rockeeper's
            # newest snapshot is its last checkpoint (every snapCount txns).
            results[s.name]["snapshot_bytes"] = s.snapshot_bytes()
            results[s.name]["data_bytes"] = s.data_bytes()
            log(f"{s.name}: restart to first read {t:.2f} s, RSS "
                f"{results[s.name]['rss_after_restart_kb'] // 1024} MiB")
        # Warm-up after the restart (JIT, caches); not reported.
        for s in servers:
            rkbench(args, s, "--no-setup", "--duration", str(min(args.duration, 5)),
                    "--workload", "mix")
        selected = [int(x) - 1 for x in args.only.split(",")] if args.only else range(len(WORKLOADS))
        for i in selected:
            label, _metric, wargs = WORKLOADS[i]
            order = servers if i % 2 == 0 else servers[::-1]
            for s in order:
                r = rkbench(args, s, "--no-setup", "--duration", str(args.duration), *wargs)
                results[s.name][label] = r
                log(f"{s.name}: {label}: {r['ops_per_s']:.0f} ops/s p50 {r['p50_us']:.0f} us "
                    f"p99 {r['p99_us']:.0f} us errors {r['errors']} "
                    f"client {r['client_cores']:.2f} cores server {r['server_cores']:.2f} cores")
        for s in servers:
            results[s.name]["rss_end_kb"] = rss_kb(s.proc.pid)
    finally:
        for s in servers:
            s.stop()

    probe_end = fsync_probe_us(workdir)
    load_end = os.getloadavg()[0]
    z, r = results["zookeeper"], results["rockeeper"]
    out = []
    out.append(f"Run {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, "
               f"{args.znodes} znodes of {args.value_size} B loaded first, "
               f"{args.duration:g} s per workload run, ZooKeeper wire protocol for both.")
    out.append(f"Machine: {machine()}. Load average {load_start:.1f} at the start, "
               f"{load_end:.1f} at the end; write(512 B)+fdatasync on the data disk: "
               f"median {probe_start[0]:.0f} us (p90 {probe_start[1]:.0f}) at the start, "
               f"{probe_end[0]:.0f} us (p90 {probe_end[1]:.0f}) at the end.")
    out.append("")
    out.append("| workload | ZooKeeper 3.8 | rockeeper | rockeeper / ZooKeeper | "
               "server cores ZK / rk | rkbench cores ZK / rk |")
    out.append("|---|---:|---:|---:|---:|---:|")
    for i, (label, metric, _w) in enumerate(WORKLOADS):
        if label not in z:
            continue
        a, b = z[label], r[label]
        cores = f"{a['server_cores']:.2f} / {b['server_cores']:.2f}"
        client = f"{a['client_cores']:.2f} / {b['client_cores']:.2f}"
        errs = ""
        if a["errors"] or b["errors"]:
            errs = f" (errors: ZK {a['errors_by_code']}, rk {b['errors_by_code']})"
        if metric == "ops":
            out.append(f"| {label}{errs} | {fmt_ops(a['ops_per_s'])}/s | {fmt_ops(b['ops_per_s'])}/s | "
                       f"{ratio(b['ops_per_s'], a['ops_per_s'])} | {cores} | {client} |")
        else:
            out.append(f"| {label}: p50 / p99 us{errs} | {a['p50_us']:.0f} / {a['p99_us']:.0f} | "
                       f"{b['p50_us']:.0f} / {b['p99_us']:.0f} | {ratio(b['p50_us'], a['p50_us'])} (p50) | "
                       f"{cores} | {client} |")
    out.append(f"| load {args.znodes} znodes (16 x 32 creates) | {fmt_ops(z['load']['setup_ops_per_s'])}/s | "
               f"{fmt_ops(r['load']['setup_ops_per_s'])}/s | "
               f"{ratio(r['load']['setup_ops_per_s'], z['load']['setup_ops_per_s'])} | | |")
    for key, label in (("rss_after_load_kb", "RSS after the load"),
                       ("rss_after_restart_kb", "RSS after a restart (loaded tree only)"),
                       ("rss_end_kb", "RSS after all workloads (more znodes)")):
        out.append(f"| {label} | {fmt_bytes(z[key] * 1024)} | {fmt_bytes(r[key] * 1024)} | "
                   f"{ratio(r[key], z[key])} | | |")
    out.append(f"| restart to first successful read ({args.znodes} znodes) | {z['restart_s']:.2f} s | {r['restart_s']:.2f} s | "
               f"{ratio(r['restart_s'], z['restart_s'])} | | |")
    out.append(f"| newest snapshot ({args.znodes} znodes) | {fmt_bytes(z['snapshot_bytes'])} | {fmt_bytes(r['snapshot_bytes'])} | "
               f"{ratio(r['snapshot_bytes'], z['snapshot_bytes'])} | | |")
    out.append(f"| data dir after the load (logs, snapshots, state) | {fmt_bytes(z['data_bytes'])} | "
               f"{fmt_bytes(r['data_bytes'])} | {ratio(r['data_bytes'], z['data_bytes'])} | | |")
    print("\n".join(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
