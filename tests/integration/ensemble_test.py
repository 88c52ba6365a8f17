#!/usr/bin/python3
"""ZAB ensembles of real rockeeper processes on 127.0.0.1, driven with
Debian's python3-kazoo over the ZooKeeper protocol.

Covers: one leader and `rockeeper status`; writes on any server readable on
all; kill -9 of the leader while a client writes (no acknowledged write
lost, the time to a new leader printed); no quorum -> clean failures;
restarts catch up; a wiped server catches up; the seeds' scenario (three
up, stop 2, stop 3, start both) with every server's status at each step;
five servers with two down; three voters and an observer.

Usage: ensemble_test.py --bin build/server/rockeeper [unittest args]
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NodeExistsError
from kazoo.handlers.threading import KazooTimeoutError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testlib"))
from rktest import (check_pipelined_read_sees_earlier_writes_only,  # noqa: E402
                    check_pipelined_reads_miss_later_related_writes, free_ports)

BIN = None
TICK_MS = 200


def four_letter_word(port, word, timeout=2.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(word.encode())
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
            return out.decode(errors="replace")
    except OSError:
        return ""


def wait_for(predicate, timeout, what, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Ensemble:
    """N servers (ids 1..N; the last `observers` are observers)."""

    def __init__(self, root, n, observers=0, extra=()):
        self.root = root
        self.n = n
        self.procs = {}
        self.ports = {}
        for i in range(1, n + 1):
            client, grpc, admin, quorum, election = free_ports(5)
            self.ports[i] = dict(client=client, grpc=grpc, admin=admin,
                                 quorum=quorum, election=election)
        for i in range(1, n + 1):
            d = self.dir(i)
            os.makedirs(os.path.join(d, "data"), exist_ok=True)
            with open(os.path.join(d, "data", "myid"), "w") as f:
                f.write(f"{i}\n")
            lines = [
                f"tickTime={TICK_MS}", "initLimit=10", "syncLimit=5",
                f"dataDir={os.path.join(d, 'data')}",
                f"clientPort={self.ports[i]['client']}",
                "clientPortAddress=127.0.0.1",
                f"grpcPort={self.ports[i]['grpc']}", "grpcPortAddress=127.0.0.1",
                f"admin.serverPort={self.ports[i]['admin']}",
                "admin.serverAddress=127.0.0.1",
                "4lw.commands.whitelist=srvr,mntr,ruok",
            ] + list(extra)
            if i > n - observers:
                lines.append("peerType=observer")
            for j in range(1, n + 1):
                p = self.ports[j]
                kind = ":observer" if j > n - observers else ""
                lines.append(f"server.{j}=127.0.0.1:{p['quorum']}:{p['election']}{kind}")
            with open(self.config(i), "w") as f:
                f.write("\n".join(lines) + "\n")

    def dir(self, i):
        return os.path.join(self.root, f"server{i}")

    def config(self, i):
        return os.path.join(self.dir(i), "zoo.cfg")

    def start(self, i):
        log = open(os.path.join(self.dir(i), "server.log"), "ab")
        self.procs[i] = subprocess.Popen([BIN, "--config", self.config(i)],
                                         stdout=log, stderr=log)
        log.close()

    def kill(self, i, sig=signal.SIGKILL):
        p = self.procs.pop(i, None)
        if p is not None and p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=15)

    def wipe(self, i):
        data = os.path.join(self.dir(i), "data")
        for name in os.listdir(data):
            if name != "myid":
                path = os.path.join(data, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)

    def stop_all(self):
        for i in list(self.procs):
            self.kill(i)

    def mode(self, i):
        out = four_letter_word(self.ports[i]["client"], "srvr")
        for line in out.splitlines():
            if line.startswith("Mode: "):
                return line[len("Mode: "):]
        return "not serving" if out else "down"

    def modes(self):
        return {i: (self.mode(i) if i in self.procs else "stopped")
                for i in range(1, self.n + 1)}

    def wait_leader(self, ids, timeout=30):
        """Exactly one leader among `ids`, every other one serving."""
        def settled():
            modes = {i: self.mode(i) for i in ids}
            leaders = [i for i, m in modes.items() if m == "leader"]
            ok = len(leaders) == 1 and all(
                m in ("leader", "follower", "observer") for m in modes.values())
            return leaders[0] if ok else None
        try:
            return wait_for(settled, timeout, f"a leader among {ids}")
        except AssertionError as e:
            raise AssertionError(f"{e}; modes {self.modes()}; " + self.log_tails())

    def log_tails(self, lines=8):
        out = []
        for i in range(1, self.n + 1):
            p = self.procs.get(i)
            state = "stopped" if p is None else (
                f"exited {p.poll()}" if p.poll() is not None else "running")
            try:
                with open(os.path.join(self.dir(i), "server.log"),
                          errors="replace") as f:
                    tail = f.read().splitlines()[-lines:]
            except OSError:
                tail = []
            out.append(f"\n--- server {i} ({state}):\n" + "\n".join(tail))
        return "".join(out)

    def metric(self, i, name):
        """A value of the admin server's /metrics (0 if absent)."""
        url = f"http://127.0.0.1:{self.ports[i]['admin']}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return int(float(line.split()[-1]))
        return 0

    def fsyncs(self, i):
        """Txn log group commits so far."""
        return self.metric(i, "rockeeper_fsync_duration_seconds_count")

    def hosts(self, ids):
        return ",".join(f"127.0.0.1:{self.ports[i]['client']}" for i in ids)

    def client(self, ids, timeout=10.0):
        zk = KazooClient(hosts=self.hosts(ids), timeout=timeout)
        zk.start(timeout=20)
        return zk

    def status_cli(self, i):
        r = subprocess.run([BIN, "status", "--config", self.config(i)],
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout


class EnsembleTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="rk-ensemble-")
        self.ensembles = []
        self.clients = []

    def tearDown(self):
        for zk in self.clients:
            try:
                zk.stop()
                zk.close()
            except Exception:
                pass
        for e in self.ensembles:
            e.stop_all()
        # RK_KEEP_LOGS=1 keeps the servers' data dirs and logs.
        if not os.environ.get("RK_KEEP_LOGS"):
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            print(f"\nkept {self.root}", flush=True)

    def ensemble(self, n, observers=0, extra=()):
        e = Ensemble(os.path.join(self.root, f"e{len(self.ensembles)}"), n,
                     observers, extra)
        self.ensembles.append(e)
        for i in range(1, n + 1):
            e.start(i)
        return e

    def client(self, e, ids, timeout=10.0):
        zk = e.client(ids, timeout)
        self.clients.append(zk)
        return zk

    def test_one_leader_and_writes_visible_everywhere(self):
        e = self.ensemble(3)
        leader = e.wait_leader([1, 2, 3])
        code, out = e.status_cli(leader)
        self.assertEqual(code, 0, out)
        self.assertIn("Mode: leader", out)
        follower = 1 if leader != 1 else 2
        code, out = e.status_cli(follower)
        self.assertIn("Mode: follower", out)
        zks = {i: self.client(e, [i]) for i in (1, 2, 3)}
        for i, zk in zks.items():
            zk.create(f"/from{i}", f"v{i}".encode())
        for i, zk in zks.items():
            zk.sync("/")
            for j in (1, 2, 3):
                self.assertEqual(zk.get(f"/from{j}")[0], f"v{j}".encode())
        # An error comes back through the leader too.
        with self.assertRaises(NodeExistsError):
            zks[follower].create("/from1", b"again")
        # Watches fire on a server for a change made through another.
        fired = threading.Event()
        zks[3].get("/from1", watch=lambda ev: fired.set())
        zks[1].set("/from1", b"changed")
        self.assertTrue(fired.wait(10))

    def test_pipelined_reads_see_earlier_writes_only_on_leader_and_follower(self):
        # Writes pass their session's earlier reads on an ensemble too: the
        # leader holds its own txn's apply, a follower the one it forwarded.
        e = self.ensemble(3)
        leader = e.wait_leader([1, 2, 3])
        follower = 1 if leader != 1 else 2
        for i in (leader, follower):
            zk = self.client(e, [i])
            check_pipelined_read_sees_earlier_writes_only(self, zk, f"/pw{i}")
            check_pipelined_reads_miss_later_related_writes(self, zk, f"/rel{i}-")
            # Some rounds reach the apply before their read ran (about 24
            # of 60 here); without gates, the reads would hold the writes.
            waits = e.metric(i, "rockeeper_apply_gate_waits_total")
            print(f"server {i}: {waits} apply gate waits", flush=True)
            self.assertGreater(waits, 0)
            self.assertEqual(
                e.metric(i, "rockeeper_apply_gate_timeouts_total"), 0)

    def test_leader_killed_while_writing_loses_nothing_acknowledged(self):
        e = self.ensemble(3)
        leader = e.wait_leader([1, 2, 3])
        zk = self.client(e, [1, 2, 3])
        zk.ensure_path("/w")
        acked = []
        stop = threading.Event()

        def writer():
            i = 0
            while not stop.is_set() and i < 100000:
                try:
                    zk.create(f"/w/n{i}", b"x")
                    acked.append(i)
                except NodeExistsError:
                    acked.append(i)  # an earlier attempt did commit
                except (KazooException, KazooTimeoutError):
                    time.sleep(0.05)  # outcome unknown: retried below
                    continue
                i += 1

        t = threading.Thread(target=writer)
        t.start()
        try:
            wait_for(lambda: len(acked) >= 100, 30, "writes before the kill")
            e.kill(leader)
            killed_at = time.monotonic()
            rest = [i for i in (1, 2, 3) if i != leader]
            new_leader = e.wait_leader(rest)
            print(f"\nleader {leader} killed: server {new_leader} leads after "
                  f"{(time.monotonic() - killed_at) * 1000:.0f} ms", flush=True)
            n = len(acked)
            wait_for(lambda: len(acked) >= n + 100, 60, "writes after failover")
        finally:
            stop.set()
            t.join(60)
        self.assertFalse(t.is_alive())
        for i in rest:
            check = self.client(e, [i])
            check.sync("/")
            children = set(check.get_children("/w"))
            missing = [a for a in acked if f"n{a}" not in children]
            self.assertEqual(missing, [], f"server {i} lost acknowledged writes")
        # Kill a second server: no quorum, writes fail cleanly and promptly.
        e.kill(rest[0])
        lone = rest[1]
        wait_for(lambda: e.mode(lone) == "not serving", 30, "loss of quorum")
        start = time.monotonic()
        with self.assertRaises((KazooException, KazooTimeoutError)):
            z = KazooClient(hosts=e.hosts([lone]), timeout=2)
            self.clients.append(z)
            z.start(timeout=3)
            z.create("/no-quorum", b"x")
        self.assertLess(time.monotonic() - start, 30)
        # Both come back: the ensemble serves again and they catch up.
        e.start(leader)
        e.start(rest[0])
        e.wait_leader([1, 2, 3])
        for i in (1, 2, 3):
            check = self.client(e, [i])
            check.sync("/")
            children = set(check.get_children("/w"))
            self.assertTrue(all(f"n{a}" in children for a in acked),
                            f"server {i} did not catch up")
            check.create(f"/again{i}", b"ok")

    def test_wiped_server_catches_up(self):
        e = self.ensemble(3)
        leader = e.wait_leader([1, 2, 3])
        zk = self.client(e, [leader])
        for i in range(200):
            zk.create(f"/d{i}", str(i).encode())
        victim = 1 if leader != 1 else 2
        e.kill(victim)
        e.wipe(victim)
        e.start(victim)
        e.wait_leader([1, 2, 3])
        check = self.client(e, [victim])
        check.sync("/")
        self.assertEqual(check.get("/d199")[0], b"199")
        self.assertEqual(len([c for c in check.get_children("/")
                              if c.startswith("d")]), 200)

    def test_servers_behind_the_purged_log_sync_by_snapshot(self):
        # Snapshots every ~50 txns, old ones and their log purged at once.
        e = self.ensemble(3, extra=["snapCount=50", "autopurge.purgeInterval=1"])
        leader = e.wait_leader([1, 2, 3])
        lagging = 1 if leader != 1 else 2
        wiped = 6 - leader - lagging
        zk = self.client(e, [leader])
        before_zxid = zk.create("/before", b"b", include_data=True)[1].czxid
        e.kill(lagging)
        # Creates until the leader's log no longer reaches back to where
        # `lagging` stopped: its snapshot thread purges old snapshots and
        # log segments some time after each snapshot, not at a fixed count.
        log_dir = os.path.join(e.dir(leader), "data", "log")

        def first_logged_zxid():
            return min((int(n[4:], 16) for n in os.listdir(log_dir)
                        if n.startswith("log.") and len(n) == 20), default=0)
        created = 0
        deadline = time.monotonic() + 60
        while created < 400 or first_logged_zxid() <= before_zxid + 1:
            self.assertLess(time.monotonic(), deadline,
                            "the leader's log was never purged")
            zk.create(f"/p{created}", b"x")
            created += 1
        last = f"/p{created - 1}"
        e.start(lagging)
        # Only once `lagging` is back in sync may another member lose its
        # data: until then the leader and `wiped` alone hold the writes, and
        # a wiped `wiped` plus a stale `lagging` would be a quorum without
        # them (they could elect `lagging`; ZooKeeper has the same limit).
        e.wait_leader([1, 2, 3], timeout=60)
        e.kill(wiped)
        e.wipe(wiped)
        e.start(wiped)
        e.wait_leader([1, 2, 3], timeout=60)
        for i in (lagging, wiped):
            check = self.client(e, [i])
            check.sync("/")
            self.assertEqual(check.get("/before")[0], b"b")
            self.assertTrue(check.exists(last))
            with open(os.path.join(e.dir(i), "server.log"), errors="replace") as f:
                self.assertIn("installed snapshot", f.read(),
                              f"server {i} was not synced by SNAP")

    def test_uncommitted_tail_is_truncated(self):
        e = self.ensemble(3)
        leader = e.wait_leader([1, 2, 3])
        others = [i for i in (1, 2, 3) if i != leader]
        zk = self.client(e, [leader])
        zk.create("/committed", b"c")
        # Both followers freeze (SIGSTOP: their connections stay open): the
        # leader keeps proposing until syncLimit tells it it lost its
        # quorum; what it logs meanwhile never commits.
        for i in others:
            e.procs[i].send_signal(signal.SIGSTOP)

        def state(i):  # the process state letter of /proc/PID/stat
            with open(f"/proc/{e.procs[i].pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        wait_for(lambda: all(state(i) == "T" for i in others), 10,
                 "the followers to stop")
        logged = e.fsyncs(leader)
        pending = [zk.create_async(f"/uncommitted{i}", b"u") for i in range(20)]
        # The leader has logged (fdatasynced) some of them.
        wait_for(lambda: e.fsyncs(leader) > logged, 10, "the leader to log")
        # For a failure below: still stopped? (What they had logged shows in
        # their "zab: looking, ... zxid logged" line after the restart.)
        frozen = {i: state(i) for i in others}
        e.kill(leader)
        for i in others:  # they never saw those proposals
            e.kill(i)
        for p in pending:
            self.assertFalse(p.successful())
        # The followers elect a new leader (a new epoch) and move on.
        for i in others:
            e.start(i)
        e.wait_leader(others)
        zk2 = self.client(e, others)
        zk2.create("/after", b"a")
        # The old leader comes back: its tail is not in the history.
        e.start(leader)
        e.wait_leader([1, 2, 3])
        check = self.client(e, [leader])
        check.sync("/")
        self.assertEqual(check.get("/after")[0], b"a")
        self.assertEqual(check.get("/committed")[0], b"c")
        # On failure, the servers' logs tell which one held the tail and who
        # led each epoch.
        self.assertEqual([c for c in check.get_children("/")
                          if c.startswith("uncommitted")], [],
                         f"old leader {leader}; follower states after the "
                         f"creates: {frozen}; " + e.log_tails(40))
        with open(os.path.join(e.dir(leader), "server.log"), errors="replace") as f:
            self.assertIn("TRUNC from the leader", f.read(),
                          f"old leader {leader}; " + e.log_tails(40))

    def test_seeds_scenario_three_servers(self):
        """Three up; stop server 2 (available); stop server 3 (no quorum);
        start 2 and 3 (available again). Status printed at every step."""
        e = self.ensemble(3)
        e.wait_leader([1, 2, 3])

        def step(name, expect_available, servers):
            modes = e.modes()
            print(f"\n[{name}] " + ", ".join(
                f"server{i}: {m}" for i, m in modes.items()), flush=True)
            zk = KazooClient(hosts=e.hosts(servers), timeout=3)
            self.clients.append(zk)
            try:
                zk.start(timeout=5)
                zk.create(f"/step-{name}", b"x")
                ok = True
            except (KazooException, KazooTimeoutError):
                ok = False
            self.assertEqual(ok, expect_available, f"{name}: {modes}")

        step("all-up", True, [1, 2, 3])
        e.kill(2, signal.SIGTERM)
        e.wait_leader([1, 3])
        step("node2-stopped", True, [1, 3])
        e.kill(3, signal.SIGTERM)
        wait_for(lambda: e.mode(1) == "not serving", 30, "loss of quorum")
        step("node3-stopped", False, [1])
        e.start(2)
        e.start(3)
        e.wait_leader([1, 2, 3])
        step("node2-node3-started", True, [1, 2, 3])

    def test_five_servers_survive_two_down(self):
        e = self.ensemble(5)
        leader = e.wait_leader([1, 2, 3, 4, 5])
        other = 1 if leader != 1 else 2
        e.kill(leader)
        e.kill(other)
        rest = [i for i in range(1, 6) if i not in (leader, other)]
        e.wait_leader(rest)
        zk = self.client(e, rest)
        zk.create("/five", b"ok")
        for i in rest:
            check = self.client(e, [i])
            check.sync("/")
            self.assertEqual(check.get("/five")[0], b"ok")

    def test_sessions_move_between_servers_and_expire_on_the_leader(self):
        e = self.ensemble(3)
        leader = e.wait_leader([1, 2, 3])
        a, b = [i for i in (1, 2, 3) if i != leader]
        # A client on follower a, with b as its second choice.
        zk = KazooClient(hosts=e.hosts([a, b]), timeout=4,
                         randomize_hosts=False)
        self.clients.append(zk)
        zk.start(timeout=20)

        def server_port():
            sock = zk._connection._socket
            try:
                return sock.getpeername()[1] if zk.connected and sock else None
            except OSError:
                return None

        # Wherever it connected first (a, unless a was slow to answer), the
        # client loses that server and moves to the other one.
        first = wait_for(server_port, 10, "the client's server")
        if first != e.ports[a]["client"]:
            a, b = b, a
        session = zk.client_id[0]
        zk.create("/eph", b"e", ephemeral=True)
        # Its server dies: the client moves to b and keeps its session.
        e.kill(a)
        wait_for(lambda: server_port() == e.ports[b]["client"], 30,
                 "the client to reconnect to the other follower")
        self.assertEqual(zk.client_id[0], session)
        self.assertEqual(zk.get("/eph")[0], b"e")
        # Heartbeats reach the leader through b: watched for 10 s, more than
        # twice the session timeout, the ephemeral stays.
        observer = self.client(e, [leader])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.assertIsNotNone(observer.exists("/eph"))
            time.sleep(0.5)
        # A client on a follower dies without closing (kill -9): its session
        # expires on the leader, and its ephemeral goes.
        script = (
            "import sys, time\n"
            "from kazoo.client import KazooClient\n"
            f"z = KazooClient(hosts='{e.hosts([b])}', timeout=4)\n"
            "z.start(timeout=20)\n"
            "z.create('/eph2', b'x', ephemeral=True)\n"
            "print('ready', flush=True)\n"
            "time.sleep(120)\n")
        child = subprocess.Popen(["/usr/bin/python3", "-c", script],
                                 stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(child.stdout.readline().strip(), "ready")
            self.assertIsNotNone(observer.exists("/eph2"))
        finally:
            child.kill()
            child.wait(timeout=15)
        wait_for(lambda: observer.exists("/eph2") is None, 30,
                 "the leader to expire the dead client's session")
        self.assertIsNotNone(observer.exists("/eph"))  # still alive

    def test_leader_serves_no(self):
        e = self.ensemble(3, extra=["leaderServes=no"])
        leader = e.wait_leader([1, 2, 3])
        follower = 1 if leader != 1 else 2
        with self.assertRaises(KazooTimeoutError):
            z = KazooClient(hosts=e.hosts([leader]), timeout=2)
            self.clients.append(z)
            z.start(timeout=3)
        zk = self.client(e, [follower])
        zk.create("/via-follower", b"f")
        self.assertEqual(zk.get("/via-follower")[0], b"f")

    def test_observer(self):
        e = self.ensemble(4, observers=1)
        e.wait_leader([1, 2, 3, 4])
        self.assertEqual(e.mode(4), "observer")
        obs = self.client(e, [4])
        obs.create("/via-observer", b"o")  # forwarded to the leader
        zk = self.client(e, [1])
        zk.sync("/")
        self.assertEqual(zk.get("/via-observer")[0], b"o")
        self.check_mntr_quorum_keys(e)
        # An observer is no voter: two voters down means no quorum.
        leader = [i for i in (1, 2, 3) if e.mode(i) == "leader"][0]
        down = [i for i in (1, 2, 3) if i != leader][:1] + [leader]
        for i in down:
            e.kill(i)
        wait_for(lambda: e.mode(4) == "not serving", 30,
                 "the observer to lose its leader")

    def check_mntr_quorum_keys(self, e):
        """mntr as ZooKeeper 3.8 on an ensemble: zk_quorum_size everywhere,
        the learner and proposal keys on the leader only; a follower that
        dies leaves the synced set."""
        def mntr(i):
            out = four_letter_word(e.ports[i]["client"], "mntr")
            return dict(line.split("\t", 1) for line in out.splitlines()
                        if "\t" in line)
        leader = [i for i in (1, 2, 3) if e.mode(i) == "leader"][0]
        # The second follower: test_observer kills the first one later.
        follower = [i for i in (1, 2, 3) if i != leader][1]
        # Every learner synced (the observer forwarded a write, so it is).
        want = {"zk_learners": "3", "zk_synced_followers": "2",
                "zk_synced_observers": "1", "zk_synced_non_voting_followers": "0",
                "zk_pending_syncs": "0", "zk_quorum_size": "3"}
        m = wait_for(lambda: (lambda m: m if all(m.get(k) == v for k, v in want.items())
                              else None)(mntr(leader)),
                     30, f"leader {leader}'s mntr to show {want}")
        self.assertEqual(m["zk_server_state"], "leader")
        self.assertGreaterEqual(int(m["zk_leader_uptime"]), 0)
        # The create above was proposed by the leader: sizes are known.
        self.assertGreater(int(m["zk_last_proposal_size"]), 0)
        self.assertGreater(int(m["zk_min_proposal_size"]), 0)
        self.assertGreaterEqual(int(m["zk_max_proposal_size"]),
                                int(m["zk_min_proposal_size"]))
        srvr = four_letter_word(e.ports[leader]["client"], "srvr")
        self.assertRegex(srvr, r"Proposal sizes last/min/max: \d+/\d+/\d+")
        for i in (follower, 4):
            m = mntr(i)
            self.assertEqual(m["zk_quorum_size"], "3")
            self.assertNotIn("zk_learners", m)
            self.assertNotIn("zk_synced_followers", m)
        # The same in Prometheus (metric() gives 0 for an absent one).
        self.assertEqual(e.metric(leader, "rockeeper_synced_followers"), 2)
        self.assertEqual(e.metric(leader, "rockeeper_synced_observers"), 1)
        self.assertEqual(e.metric(leader, "rockeeper_learners"), 3)
        self.assertEqual(e.metric(follower, "rockeeper_quorum_size"), 3)
        self.assertEqual(e.metric(follower, "rockeeper_synced_followers"), 0)
        e.kill(follower)
        wait_for(lambda: mntr(leader).get("zk_synced_followers") == "1", 30,
                 "the killed follower to leave the leader's synced set")
        self.assertEqual(mntr(leader)["zk_learners"], "2")
        self.assertEqual(e.metric(leader, "rockeeper_synced_followers"), 1)


def main():
    global BIN
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    args, rest = parser.parse_known_args()
    BIN = os.path.abspath(args.bin)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
