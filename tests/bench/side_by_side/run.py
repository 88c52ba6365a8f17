#!/usr/bin/python3
"""Side-by-side benchmark: Apache ZooKeeper 3.8 (Debian's zookeeper package)
and rockeeper on 127.0.0.1 with equivalent settings (forceSync, data dirs on
the same disk, admin servers off), driven by the same rkbench workloads,
alternating, in one run. Two halves, each printing a Markdown table:

- standalone: one server of each; load --znodes znodes, RSS, restart time to
  the first read, snapshot and data dir sizes, then the workloads; then a
  fresh rockeeper alone loads --rk-big-znodes (RSS, load rate, restart).
- ensemble: three servers of each (server.N lines, myid files); the same
  workloads with the sessions spread round-robin over the three servers;
  RSS after the load; leader fail-over (kill -9 the leader, time until a
  create succeeds on a survivor), --failovers times.

Before each timed run: os.sync() and a wait (at most --settle-max-s) until
every server of both systems is quiet (--settle-cores), so that one
system's trailing work does not land in the other's run.

  /usr/bin/python3 tests/bench/side_by_side/run.py --build build \\
      [--znodes 1000000] [--half standalone|ensemble|both]

Not part of the default test run. Needs: java + /usr/share/java/zookeeper.jar,
the rockeeper and rkbench binaries of --build (rkbench with --server lists).
Every server started is killed at the end, also on Ctrl-C and SIGTERM.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
ZK_CLASSPATH = ("/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:"
                "/usr/share/java/slf4j-simple.jar")
ROOT = "/rkbench"
FANOUT = 1000
# Session timeout of the probes' short sessions (the minimum both servers
# grant with tickTime 2000): they close themselves, this only bounds a leak.
PROBE_SESSION_MS = 4000

# Every server process started, so that the exit path stops them all.
STARTED = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- raw ZooKeeper-protocol probes (no client library start-up measured) ---

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


def _send(s, body):
    s.sendall(struct.pack(">i", len(body)) + body)


def _session(port, timeout_s):
    """Connects and opens a session; returns the socket or None."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    s.settimeout(timeout_s)
    _send(s, struct.pack(">iqiq", 0, 0, PROBE_SESSION_MS, 0)
          + struct.pack(">i", 16) + b"\0" * 16 + b"\0")
    resp = _read_frame(s)
    if len(resp) < 36 or struct.unpack(">i", resp[4:8])[0] <= 0:
        s.close()
        return None
    return s


def _request(s, xid, body):
    """Sends one request, returns its error code (ZooKeeper replies in order;
    notifications, xid -1, are skipped)."""
    _send(s, struct.pack(">i", xid) + body)
    while True:
        reply = _read_frame(s)
        rxid, _zxid, err = struct.unpack(">iqi", reply[:16])
        if rxid == xid:
            return err
        if rxid != -1:
            raise OSError(f"reply xid {rxid}, expected {xid}")


def _close_session(s):
    try:
        _send(s, struct.pack(">ii", 99, -11))
    except OSError:
        pass
    s.close()


def _buffer(b):
    return struct.pack(">i", len(b)) + b


def zk_get(port, path, timeout_s=1.0):
    """One session: getData(path). True if the read succeeded (err 0)."""
    try:
        s = _session(port, timeout_s)
        if s is None:
            return False
        try:
            return _request(s, 1, struct.pack(">i", 4) + _buffer(path.encode())
                            + b"\0") == 0
        finally:
            _close_session(s)
    except (OSError, struct.error):
        return False


def zk_create(port, path, timeout_s=1.0):
    """One session: create(path, 16 bytes, open ACL, persistent). True if the
    write succeeded (err 0)."""
    try:
        s = _session(port, timeout_s)
        if s is None:
            return False
        try:
            acl = (struct.pack(">ii", 1, 31) + _buffer(b"world")
                   + _buffer(b"anyone"))
            body = (struct.pack(">i", 1) + _buffer(path.encode())
                    + _buffer(b"x" * 16) + acl + struct.pack(">i", 0))
            return _request(s, 1, body) == 0
        finally:
            _close_session(s)
    except (OSError, struct.error):
        return False


def four_letter(port, word, timeout_s=1.0):
    """The answer to a four-letter word, or "" if none."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            s.settimeout(timeout_s)
            s.sendall(word.encode())
            out = b""
            while len(out) < 1 << 20:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            return out.decode(errors="replace")
    except OSError:
        return ""


def mode_of(port):
    """'leader', 'follower', 'standalone', ... from srvr; None if not
    serving."""
    for line in four_letter(port, "srvr").splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


# --- machine -----------------------------------------------------------------

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
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def du_bytes(path, allocated=False):
    """Bytes of the files under `path`, hard links counted once (rockeeper's
    snapshots are RocksDB checkpoints: links to the state's files).
    allocated: blocks on disk instead of the apparent size."""
    seen, total = set(), 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512 if allocated else st.st_size
    return total


# --- servers -----------------------------------------------------------------

class Server:
    """One server process: start, stop, kill, restart with its data kept."""

    # tickTime of every config written (--tick-ms): the unit of both
    # servers' heartbeats, session timeouts and initLimit/syncLimit.
    tick_ms = 2000

    def __init__(self, name, workdir):
        self.name = name
        self.dir = os.path.join(workdir, name)
        self.port = free_port()
        self.data = os.path.join(self.dir, "data")
        # exist_ok: the scale run may resume on an existing data dir.
        os.makedirs(self.data, exist_ok=True)
        self.cfg = os.path.join(self.dir, "zoo.cfg")
        self.proc = None
        self.logf = open(os.path.join(self.dir, "server.log"), "ab")

    def write_config(self, extra_lines, quorum=None, myid=None):
        """quorum: [(quorum_port, election_port)] of every member (server.N
        lines, N from 1); myid: this server's N."""
        lines = [f"tickTime={self.tick_ms}", f"dataDir={self.data}",
                 f"clientPort={self.port}", "clientPortAddress=127.0.0.1",
                 "admin.enableServer=false", "forceSync=yes",
                 "maxClientCnxns=0", "4lw.commands.whitelist=*"]
        if quorum:
            lines += ["initLimit=10", "syncLimit=5"]
            lines += [f"server.{i}=127.0.0.1:{q}:{e}"
                      for i, (q, e) in enumerate(quorum, 1)]
            with open(os.path.join(self.data, "myid"), "w") as f:
                f.write(f"{myid}\n")
        with open(self.cfg, "w") as f:
            f.write("\n".join(lines + extra_lines) + "\n")

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        self.proc = subprocess.Popen(self.command(), stdout=self.logf,
                                     stderr=self.logf, cwd=self.dir)
        STARTED.append(self)

    def wait_serving(self, seconds=300):
        """Until a read succeeds: both servers listen before their database
        is loaded (and a follower serves only once synced)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.dir}/server.log")
            if zk_get(self.port, "/"):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not serve on {self.port}")

    def stop(self):
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill9(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def restart_to_first_read(self, path, seconds=600):
        """Stops the server, starts it again and measures the time from the
        spawn to the first successful getData(path)."""
        self.stop()
        return self.start_to_first_read(path, seconds)

    def start_to_first_read(self, path, seconds=600):
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

    def data_bytes(self):
        return du_bytes(self.data)


def snapshot_times_ms(log_path, pattern):
    """Durations of the snapshots a server logged (ms), in order."""
    try:
        with open(log_path, "r", errors="replace") as f:
            return [int(m.group(1)) for m in re.finditer(pattern, f.read())]
    except OSError:
        return []


class ZooKeeper(Server):
    # ZooKeeperServer.takeSnapshot: "Snapshot taken in N ms".
    SNAPSHOT_LOG = r"Snapshot taken in (\d+) ms"

    def __init__(self, workdir, jvm_flags, name="zookeeper", quorum=None, myid=None):
        super().__init__(name, workdir)
        self.jvm_flags = jvm_flags
        self.write_config([], quorum, myid)

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


class Rockeeper(Server):
    # CommitPipeline / QuorumReplica: "INFO snapshot 0x... taken in N ms"
    # (standalone: ", applies paused M ms" follows).
    SNAPSHOT_LOG = r"INFO snapshot 0x[0-9a-f]+ taken in (\d+) ms"
    SNAPSHOT_PAUSE_LOG = r"INFO snapshot 0x[0-9a-f]+ taken in \d+ ms, applies paused (\d+) ms"

    def __init__(self, workdir, binary, name="rockeeper", quorum=None, myid=None):
        super().__init__(name, workdir)
        self.binary = binary
        self.write_config([f"grpcPort={free_port()}", "grpcPortAddress=127.0.0.1"],
                          quorum, myid)

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


class Target:
    """What rkbench drives: one server, or the members of an ensemble (the
    sessions spread round-robin over them)."""

    def __init__(self, name, servers):
        self.name = name
        self.servers = servers

    def server_arg(self):
        return ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    def pid_arg(self):
        return ",".join(str(s.pid) for s in self.servers)

    def rss_kb(self):
        return [rss_kb(s.pid) for s in self.servers]


def make_ensemble(kind, workdir, count, prefix, **kw):
    """`count` servers of `kind` with the same server.N lines, myid 1..count."""
    quorum = [(free_port(), free_port()) for _ in range(count)]
    return [kind(workdir, name=f"{prefix}{i}", quorum=quorum, myid=i, **kw)
            for i in range(1, count + 1)]


def wait_ensemble(servers, seconds=300):
    """Until every member serves reads and exactly one says leader; returns
    the leader."""
    deadline = time.monotonic() + seconds
    for s in servers:
        s.wait_serving(max(1, deadline - time.monotonic()))
    while time.monotonic() < deadline:
        modes = [mode_of(s.port) for s in servers]
        if modes.count("leader") == 1 and modes.count("follower") == len(servers) - 1:
            return servers[modes.index("leader")]
        time.sleep(0.05)
    raise RuntimeError(f"no leader among {[s.name for s in servers]}")


# --- rkbench -----------------------------------------------------------------

def rkbench(args, target, *extra, keys=None, root=ROOT):
    cmd = [args.rkbench, "--proto", "zk", "--server", target.server_arg(),
           "--server-pid", target.pid_arg(), "--json", "--progress", "off",
           "--root", root, "--keys", str(keys or args.znodes), "--fanout", str(FANOUT),
           "--tree-depth", "2", "--value-size", str(args.value_size), *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=6 * 3600)
    if p.returncode != 0 and "handshake" in p.stderr:
        # A server too busy to answer a session's ConnectRequest in time (it
        # happened to ZooKeeper's ensemble under sets): once more, noted.
        log(f"{target.name}: rkbench failed to connect ({p.stderr.strip()}); retrying once")
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=6 * 3600)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: rc {p.returncode}\n{p.stderr}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["command"] = " ".join(cmd)
    return r


WORKLOADS = [
    # (label, metric, rkbench args)
    ("create, 16 sessions x 32", "ops", ["--workload", "create"]),
    ("set, 16 x 32", "ops", ["--workload", "set"]),
    ("get, 16 x 32", "ops", ["--workload", "get"]),
    ("90% get / 10% set, 16 x 32", "ops", ["--workload", "mix", "--read-pct", "90"]),
    ("ClickHouse-like mix, 16 x 32", "ops", ["--workload", "clickhouse"]),
    # One session with many requests in flight, as a ClickHouse server uses
    # its one ZooKeeper session.
    ("ClickHouse-like mix, 1 session x 64", "ops", ["--workload", "clickhouse",
                                                    "--sessions", "1",
                                                    "--outstanding", "64"]),
    ("create, 1 session x 1 (latency)", "lat", ["--workload", "create", "--sessions", "1",
                                                "--outstanding", "1", "--threads", "1"]),
    ("get, 1 session x 1 (latency)", "lat", ["--workload", "get", "--sessions", "1",
                                             "--outstanding", "1", "--threads", "1"]),
]


def cpu_ticks(pids):
    """Clock ticks of user + system CPU used so far by these processes (all
    their threads); a process gone counts 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total


def settle(args, targets):
    """Before a timed run: flush dirty pages (os.sync) and wait until every
    server of both targets is quiet (under --settle-cores in total over a
    0.5 s window), so that one system's trailing work (ZooKeeper's fuzzy
    snapshot after a run, a JVM collection, rockeeper's compactions, the
    page cache's writeback) does not land in the other's run. Bounded by
    --settle-max-s; returns the seconds waited."""
    if args.settle_max_s <= 0:
        return 0.0
    t0 = time.monotonic()
    os.sync()
    pids = [s.pid for t in targets for s in t.servers]
    hz = os.sysconf("SC_CLK_TCK")
    window_s = 0.5
    cores = float("nan")  # if os.sync() alone outlasted --settle-max-s
    while time.monotonic() - t0 < args.settle_max_s:
        before = cpu_ticks(pids)
        time.sleep(window_s)
        cores = (cpu_ticks(pids) - before) / hz / window_s
        if cores < args.settle_cores:
            return time.monotonic() - t0
    log(f"servers still busy after {args.settle_max_s:g} s ({cores:.2f} cores); "
        f"running anyway")
    return time.monotonic() - t0


def run_workloads(args, zk, rk, results):
    """Each workload against one target and then the other, the order
    alternating per workload (so neither always runs on a warmer machine);
    the machine settles before each run."""
    targets = [zk, rk]
    # Warm-up (JIT, caches); not reported.
    for t in targets:
        rkbench(args, t, "--no-setup", "--duration", str(min(args.duration, 5)),
                "--workload", "mix")
    selected = ([int(x) - 1 for x in args.only.split(",")] if args.only
                else range(len(WORKLOADS)))
    for i in selected:
        label, metric, wargs = WORKLOADS[i]
        runs = {t.name: [] for t in targets}
        for k in range(args.rounds):
            for t in (targets if (i + k) % 2 == 0 else targets[::-1]):
                waited = settle(args, targets)
                r = rkbench(args, t, "--no-setup", "--duration", str(args.duration), *wargs)
                r["settled_s"] = waited
                runs[t.name].append(r)
                log(f"{t.name}: {label} (round {k + 1}): {r['ops_per_s']:.0f} ops/s "
                    f"p50 {r['p50_us']:.0f} us p99 {r['p99_us']:.0f} us errors "
                    f"{r['errors']} client {r['client_cores']:.2f} cores server "
                    f"{r['server_cores']:.2f} cores (settled {waited:.1f} s before)")
        for name, rs in runs.items():
            results[name][label] = median_run(rs, metric)


def median_run(runs, metric):
    """The run with the median figure (ops/s, or p50 for latency rows), with
    every round's figure under "rounds"."""
    key = "ops_per_s" if metric == "ops" else "p50_us"
    med = dict(sorted(runs, key=lambda r: r[key])[(len(runs) - 1) // 2])
    med["rounds"] = [r[key] for r in runs]
    return med


def load_tree(args, targets, results):
    for t in targets:
        log(f"{t.name}: loading {args.znodes} znodes")
        r = rkbench(args, t, "--setup-only")
        results[t.name]["load"] = r
        results[t.name]["rss_after_load_kb"] = t.rss_kb()
        log(f"{t.name}: {r['setup_ops_per_s']:.0f} creates/s, RSS "
            f"{[k // 1024 for k in t.rss_kb()]} MiB")


def failover(servers, label, trial, seconds=300):
    """kill -9 the leader; the time until a create succeeds on one of the
    survivors (each polled by its own thread, so a slow attempt on one does
    not delay noticing the other); then restarts the killed server and waits
    until the ensemble is whole again. Returns (seconds, old, new leader)."""
    leader = wait_ensemble(servers)
    survivors = [s for s in servers if s is not leader]
    done = threading.Event()
    first = []
    lock = threading.Lock()

    def poll(s, t0):
        n = 0
        while not done.is_set() and time.monotonic() - t0 < seconds:
            n += 1
            if zk_create(s.port, f"/rkbench-failover-{label}-{trial}-{s.name}-{n}",
                         timeout_s=2):
                with lock:
                    first.append((time.monotonic() - t0, s))
                done.set()
                return
            time.sleep(0.005)

    t0 = time.monotonic()
    leader.kill9()
    threads = [threading.Thread(target=poll, args=(s, t0), daemon=True)
               for s in survivors]
    for th in threads:
        th.start()
    for th in threads:
        th.join(seconds + 10)
    if not first:
        raise RuntimeError(f"{label}: no create succeeded within {seconds} s "
                           f"after killing {leader.name}")
    elapsed, via = min(first, key=lambda x: x[0])
    modes = {s.name: mode_of(s.port) for s in survivors}
    new_leader = next((n for n, m in modes.items() if m == "leader"), "?")
    log(f"{label}: fail-over {elapsed:.2f} s (killed leader {leader.name}, "
        f"first create via {via.name}, new leader {new_leader})")
    # Whole again for what follows.
    leader.start()
    wait_ensemble(servers, seconds)
    return elapsed, leader.name, new_leader


# --- formatting --------------------------------------------------------------

def fmt_ops(v):
    return f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}"


def fmt_bytes(v):
    if v <= 0:
        return "none"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if v >= size:
            return f"{v / size:.1f} {unit}"
    return f"{v} B"


def ratio(rk, zk):
    return f"{rk / zk:.2f}x" if zk and rk else "-"


def header(now_loads, probes):
    return (f"Load average {now_loads[0]:.1f} at the start, {now_loads[1]:.1f} "
            f"at the end; write(512 B)+fdatasync on the data disk: median "
            f"{probes[0][0]:.0f} us (p90 {probes[0][1]:.0f}) at the start, "
            f"{probes[1][0]:.0f} us (p90 {probes[1][1]:.0f}) at the end.")


def workload_rows(z, r):
    out = ["| workload | ZooKeeper 3.8 | rockeeper | rockeeper / ZooKeeper | "
           "server cores ZK / rk | server CPU us/op ZK / rk | rkbench cores ZK / rk |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for label, metric, _w in WORKLOADS:
        if label not in z:
            continue
        a, b = z[label], r[label]
        cores = f"{a['server_cores']:.2f} / {b['server_cores']:.2f}"
        per_op = f"{a['server_cpu_us_per_op']:.0f} / {b['server_cpu_us_per_op']:.0f}"
        client = f"{a['client_cores']:.2f} / {b['client_cores']:.2f}"
        errs = ""
        if a["errors"] or b["errors"]:
            errs = f" (errors: ZK {a['errors_by_code']}, rk {b['errors_by_code']})"
        if metric == "ops":
            out.append(f"| {label}{errs} | {fmt_ops(a['ops_per_s'])}/s{spread(a, fmt_ops)} | "
                       f"{fmt_ops(b['ops_per_s'])}/s{spread(b, fmt_ops)} | "
                       f"{ratio(b['ops_per_s'], a['ops_per_s'])} | {cores} | {per_op} | "
                       f"{client} |")
        else:
            us = lambda v: f"{v:.0f}"
            out.append(f"| {label}: p50 / p99 us{errs} | {a['p50_us']:.0f} / "
                       f"{a['p99_us']:.0f}{spread(a, us)} | {b['p50_us']:.0f} / "
                       f"{b['p99_us']:.0f}{spread(b, us)} | "
                       f"{ratio(b['p50_us'], a['p50_us'])} (p50) | {cores} | {per_op} | "
                       f"{client} |")
    return out


def spread(run, fmt):
    """ " (min-max)" of a median run's rounds, when there were several."""
    rounds = run.get("rounds", [])
    if len(rounds) < 2:
        return ""
    return f" ({fmt(min(rounds))}-{fmt(max(rounds))})"


def row(label, zv, rv, fmt):
    return f"| {label} | {fmt(zv)} | {fmt(rv)} | {ratio(rv, zv)} | | | |"


# --- the two halves ----------------------------------------------------------

def standalone_half(args, workdir, rk_bin):
    zk = ZooKeeper(workdir, args.zk_jvm_flags)
    rk = Rockeeper(workdir, rk_bin)
    results = {"zookeeper": {}, "rockeeper": {}}
    tz, tr = Target("zookeeper", [zk]), Target("rockeeper", [rk])
    loads = [os.getloadavg()[0]]
    probes = [fsync_probe_us(workdir)]
    try:
        for s in (zk, rk):
            s.start()
        for s in (zk, rk):
            s.wait_serving()
        log(f"standalone up: zookeeper :{zk.port} pid {zk.pid}, "
            f"rockeeper :{rk.port} pid {rk.pid}; data under {workdir}")
        load_tree(args, [tz, tr], results)
        # Restart with exactly the loaded tree (before the workloads add
        # nodes): time to the first successful read, RSS, snapshot, disk.
        key = f"{ROOT}/t/p0/k0"
        for s in (zk, rk):
            t = s.restart_to_first_read(key)
            res = results[s.name]
            res["restart_s"] = t
            res["rss_after_restart_kb"] = [rss_kb(s.pid)]
            # ZooKeeper snapshots the whole tree when it starts; rockeeper's
            # newest snapshot is its last checkpoint (every snapCount txns).
            res["snapshot_bytes"] = s.snapshot_bytes()
            res["data_bytes"] = s.data_bytes()
            log(f"{s.name}: restart to first read {t:.2f} s, RSS "
                f"{res['rss_after_restart_kb'][0] // 1024} MiB")
        run_workloads(args, tz, tr, results)
        for t in (tz, tr):
            results[t.name]["rss_end_kb"] = t.rss_kb()
    finally:
        zk.stop()
        rk.stop()
    collect_snapshot_times(results, [zk], [rk])
    if args.rk_big_znodes > 0:
        results["rockeeper_big"] = big_rockeeper(args, workdir, rk_bin)
    loads.append(os.getloadavg()[0])
    probes.append(fsync_probe_us(workdir))

    z, r = results["zookeeper"], results["rockeeper"]
    out = [f"#### Standalone ({args.znodes} znodes, {args.duration:g} s per workload)", "",
           header(loads, probes), ""]
    out += workload_rows(z, r)
    out.append(f"| load {args.znodes} znodes (16 x 32 creates) | "
               f"{fmt_ops(z['load']['setup_ops_per_s'])}/s | "
               f"{fmt_ops(r['load']['setup_ops_per_s'])}/s | "
               f"{ratio(r['load']['setup_ops_per_s'], z['load']['setup_ops_per_s'])} | | | |")
    kib = lambda v: fmt_bytes(v * 1024)
    for key, label in (("rss_after_load_kb", "RSS after the load"),
                       ("rss_after_restart_kb", "RSS after a restart (loaded tree only)"),
                       ("rss_end_kb", "RSS after all workloads (more znodes)")):
        out.append(row(label, z[key][0], r[key][0], kib))
    secs = lambda v: f"{v:.2f} s"
    out.append(row(f"restart to first successful read ({args.znodes} znodes)",
                   z["restart_s"], r["restart_s"], secs))
    out.append(row(f"newest snapshot ({args.znodes} znodes)",
                   z["snapshot_bytes"], r["snapshot_bytes"], fmt_bytes))
    out.append(row("data dir after the load (logs, snapshots, state)",
                   z["data_bytes"], r["data_bytes"], fmt_bytes))
    out += snapshot_rows(z, r)
    if "rockeeper_big" in results:
        b = results["rockeeper_big"]
        n = b["znodes"]
        out.append(f"| rockeeper alone, {n} znodes: load (16 x 32 creates) | | "
                   f"{fmt_ops(b['load']['setup_ops_per_s'])}/s | | | | |")
        out.append(f"| rockeeper alone, {n} znodes: RSS after the load / after a "
                   f"restart / after its get run | | {kib(b['rss_after_load_kb'])} / "
                   f"{kib(b['rss_after_restart_kb'])} / {kib(b['rss_after_get_kb'])} | | | | |")
        out.append(f"| rockeeper alone, {n} znodes: restart to first successful read | | "
                   f"{b['restart_s']:.2f} s | | | | |")
        out.append(f"| rockeeper alone, {n} znodes: data dir (allocated) | | "
                   f"{fmt_bytes(b['disk_bytes'])} | | | | |")
        g = b["get"]
        out.append(f"| rockeeper alone, {n} znodes: get 16 x 32 on random keys after the "
                   f"restart: ops/s, p50 / p99 us | | {fmt_ops(g['ops_per_s'])}/s, "
                   f"{g['p50_us']:.0f} / {g['p99_us']:.0f} | | "
                   f"{g['server_cores']:.2f} | {g['server_cpu_us_per_op']:.0f} | "
                   f"{g['client_cores']:.2f} |")
    return out, results


def collect_snapshot_times(results, zk_servers, rk_servers):
    """The snapshot durations every server logged (and rockeeper's pauses of
    the writes), over all servers of each kind."""
    for name, servers in (("zookeeper", zk_servers), ("rockeeper", rk_servers)):
        results[name]["snapshot_ms"] = [
            t for s in servers
            for t in snapshot_times_ms(os.path.join(s.dir, "server.log"), s.SNAPSHOT_LOG)]
    results["rockeeper"]["snapshot_pause_ms"] = [
        t for s in rk_servers
        for t in snapshot_times_ms(os.path.join(s.dir, "server.log"), s.SNAPSHOT_PAUSE_LOG)]


def snapshot_rows(z, r):
    out = []
    zs, rs = z.get("snapshot_ms", []), r.get("snapshot_ms", [])
    if zs and rs:
        out.append(f"| snapshot time, median / max of the run's snapshots (ZK {len(zs)}, rk {len(rs)}) | "
                   f"{statistics.median(zs):.0f} / {max(zs)} ms | "
                   f"{statistics.median(rs):.0f} / {max(rs)} ms | "
                   f"{ratio(statistics.median(rs), statistics.median(zs))} | | | |")
    rp = r.get("snapshot_pause_ms", [])
    if rp:
        # ZooKeeper's fuzzy snapshot runs beside its request processing.
        out.append(f"| of that, writes paused (rockeeper's exact checkpoint), median / max | "
                   f"none (fuzzy) | {statistics.median(rp):.0f} / {max(rp)} ms | | | | |")
    return out


def big_rockeeper(args, workdir, rk_bin):
    """A fresh rockeeper alone (ZooKeeper stopped): load --rk-big-znodes,
    RSS, restart to the first read, RSS after it."""
    rk = Rockeeper(workdir, rk_bin, name="rockeeper-big")
    t = Target("rockeeper-big", [rk])
    res = {"znodes": args.rk_big_znodes}
    try:
        rk.start()
        rk.wait_serving()
        log(f"rockeeper-big: loading {args.rk_big_znodes} znodes")
        res["load"] = rkbench(args, t, "--setup-only", keys=args.rk_big_znodes)
        res["rss_after_load_kb"] = rss_kb(rk.pid)
        log(f"rockeeper-big: {res['load']['setup_ops_per_s']:.0f} creates/s, "
            f"RSS {res['rss_after_load_kb'] // 1024} MiB")
        res["restart_s"] = rk.restart_to_first_read(
            f"{ROOT}/t/p{(args.rk_big_znodes - 1) // FANOUT}/k{args.rk_big_znodes - 1}")
        res["rss_after_restart_kb"] = rss_kb(rk.pid)
        res["disk_bytes"] = du_bytes(rk.data, allocated=True)
        log(f"rockeeper-big: restart to first read {res['restart_s']:.2f} s, RSS "
            f"{res['rss_after_restart_kb'] // 1024} MiB")
        # Random keys of the whole tree, on the freshly restarted server.
        res["get"] = rkbench(args, t, "--no-setup", "--workload", "get", "--duration",
                             str(args.duration), keys=args.rk_big_znodes)
        res["rss_after_get_kb"] = rss_kb(rk.pid)
        log(f"rockeeper-big: get {res['get']['ops_per_s']:.0f}/s p99 "
            f"{res['get']['p99_us']:.0f} us, RSS {res['rss_after_get_kb'] // 1024} MiB")
    finally:
        rk.stop()
    shutil.rmtree(rk.dir, ignore_errors=True)
    return res


def ensemble_half(args, workdir, rk_bin, size=3):
    zks = make_ensemble(ZooKeeper, workdir, size, prefix="zookeeper-",
                        jvm_flags=args.zk_jvm_flags)
    rks = make_ensemble(Rockeeper, workdir, size, prefix="rockeeper-", binary=rk_bin)
    results = {"zookeeper": {}, "rockeeper": {}}
    loads = [os.getloadavg()[0]]
    probes = [fsync_probe_us(workdir)]
    try:
        for s in zks + rks:
            s.start()
        leaders = {}
        for name, members in (("zookeeper", zks), ("rockeeper", rks)):
            leaders[name] = wait_ensemble(members)
            log(f"{name} ensemble up: " + ", ".join(
                f"{s.name} :{s.port} pid {s.pid}" for s in members)
                + f"; leader {leaders[name].name}")
        # The leader last: with 16 sessions over 3 servers each gets 5-6
        # either way, and the 1-session latency runs go to a follower in both.
        tz = Target("zookeeper", [s for s in zks if s is not leaders["zookeeper"]]
                    + [leaders["zookeeper"]])
        tr = Target("rockeeper", [s for s in rks if s is not leaders["rockeeper"]]
                    + [leaders["rockeeper"]])
        load_tree(args, [tz, tr], results)
        run_workloads(args, tz, tr, results)
        for t in (tz, tr):
            results[t.name]["rss_end_kb"] = t.rss_kb()
        for name, members in (("zookeeper", zks), ("rockeeper", rks)):
            times = []
            for trial in range(args.failovers):
                times.append(failover(members, name, trial))
            results[name]["failover"] = times
    finally:
        for s in zks + rks:
            s.stop()
    collect_snapshot_times(results, zks, rks)
    loads.append(os.getloadavg()[0])
    probes.append(fsync_probe_us(workdir))

    z, r = results["zookeeper"], results["rockeeper"]
    out = [f"#### {size} nodes ({args.znodes} znodes, {args.duration:g} s per workload, "
           f"sessions round-robin over the {size} servers)", "",
           header(loads, probes), ""]
    out += workload_rows(z, r)
    out.append(f"| load {args.znodes} znodes (16 x 32 creates) | "
               f"{fmt_ops(z['load']['setup_ops_per_s'])}/s | "
               f"{fmt_ops(r['load']['setup_ops_per_s'])}/s | "
               f"{ratio(r['load']['setup_ops_per_s'], z['load']['setup_ops_per_s'])} | | | |")
    kib = lambda v: fmt_bytes(v * 1024)
    for key, label in (("rss_after_load_kb", "RSS after the load"),
                       ("rss_end_kb", "RSS after all workloads (more znodes)")):
        out.append(row(f"{label}, sum of {size} servers", sum(z[key]), sum(r[key]), kib))
        out.append(row(f"{label}, largest server", max(z[key]), max(r[key]), kib))
    out += snapshot_rows(z, r)
    if z.get("failover"):
        zt = [t for t, _o, _n in z["failover"]]
        rt = [t for t, _o, _n in r["failover"]]
        each = lambda ts: ", ".join(f"{t:.2f}" for t in ts)
        out.append(f"| leader fail-over: kill -9 the leader, until a create succeeds "
                   f"on a survivor (median of {len(zt)}: each) | "
                   f"{statistics.median(zt):.2f} s ({each(zt)}) | "
                   f"{statistics.median(rt):.2f} s ({each(rt)}) | "
                   f"{ratio(statistics.median(rt), statistics.median(zt))} | | | |")
    return out, results


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(REPO, "build"),
                    help="build dir with server/rockeeper and tools/rkbench/rkbench")
    ap.add_argument("--half", choices=["standalone", "ensemble", "both"], default="both",
                    help="which half to run (default both)")
    ap.add_argument("--znodes", type=int, default=1000000,
                    help="znodes loaded before the workloads (default 1M)")
    ap.add_argument("--rk-big-znodes", type=int, default=10000000,
                    help="standalone half: znodes loaded into a fresh rockeeper "
                         "alone afterwards for RSS, load rate and restart "
                         "(default 10M; 0 skips)")
    ap.add_argument("--failovers", type=int, default=3,
                    help="ensemble half: leader fail-overs measured per "
                         "ensemble (default 3; 0 skips)")
    ap.add_argument("--tick-ms", type=int, default=2000,
                    help="tickTime of both servers (default 2000, ZooKeeper's "
                         "sample config)")
    ap.add_argument("--duration", type=float, default=10, help="seconds per workload run")
    ap.add_argument("--rounds", type=int, default=1,
                    help="runs of each workload per server, alternating; the "
                         "table gives the median run and the range (default 1)")
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--workdir", default=None,
                    help="parent of all data dirs (default: a new dir under "
                         "the build dir, i.e. on the same disk)")
    ap.add_argument("--zk-jvm-flags", default="", help="e.g. -Xmx8g")
    ap.add_argument("--only", default=None,
                    help="comma-separated workload numbers (1-based) to run")
    ap.add_argument("--settle-cores", type=float, default=0.1,
                    help="before each timed run, wait until all servers use "
                         "less than this many cores together (default 0.1)")
    ap.add_argument("--settle-max-s", type=float, default=60,
                    help="longest wait for that, in s (default 60; 0: no "
                         "wait, no sync)")
    ap.add_argument("--json", default=None, help="also write all raw results here")
    ap.add_argument("--keep", action="store_true", help="keep the data dirs")
    args = ap.parse_args()
    # Stopped by a signal: still stop every server (the finally blocks and
    # the one below); subprocess.run kills a running rkbench on the way out.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    Server.tick_ms = args.tick_ms
    args.build = os.path.abspath(args.build)
    args.rkbench = os.path.join(args.build, "tools/rkbench/rkbench")
    rk_bin = os.path.join(args.build, "server/rockeeper")
    for b in (args.rkbench, rk_bin, "/usr/share/java/zookeeper.jar"):
        if not os.path.exists(b):
            sys.exit(f"missing {b}")
    workdir = tempfile.mkdtemp(prefix="side-by-side-", dir=args.workdir or args.build)
    started = datetime.datetime.now(datetime.timezone.utc)
    out = [f"Run {started:%Y-%m-%d %H:%M} UTC, {args.znodes} znodes of "
           f"{args.value_size} B loaded first, {args.duration:g} s per workload run, "
           f"{args.rounds} round(s) per workload (median shown, range in brackets), "
           f"tickTime {args.tick_ms} ms, ZooKeeper wire protocol for both; before "
           f"each run, os.sync() and a wait until all servers together use < "
           f"{args.settle_cores:g} cores (at most {args.settle_max_s:g} s).",
           f"Machine: {machine()}.", ""]
    results = {}
    try:
        if args.half in ("standalone", "both"):
            lines, results["standalone"] = standalone_half(args, workdir, rk_bin)
            out += lines + [""]
            print("\n".join(out), flush=True)
            out = []
        if args.half in ("ensemble", "both"):
            lines, results["ensemble"] = ensemble_half(args, workdir, rk_bin)
            out += lines + [""]
            print("\n".join(out), flush=True)
    finally:
        # Whatever is still running (an exception between a start and its
        # half's finally, a server restarted by the fail-over loop).
        for s in STARTED:
            if s.alive():
                s.kill9()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
