#!/usr/bin/python3
"""Integration test: the admin HTTP server (/commands, /metrics, /live,
/ready) and the four-letter words of a real rockeeper process, driven by
Debian's python3-kazoo and raw sockets.

Usage: admin_http_test.py --bin build/server/rockeeper
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from kazoo.client import KazooClient

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testlib"))
from rktest import free_port  # noqa: E402

ARGS = None


def poll(predicate, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def start_server(root, extra=""):
    ports = {"client": free_port(), "grpc": free_port(), "admin": free_port()}
    cfg = os.path.join(root, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write(f"tickTime=200\ndataDir={root}/data\n"
                f"clientPort={ports['client']}\nclientPortAddress=127.0.0.1\n"
                f"grpcPort={ports['grpc']}\ngrpcPortAddress=127.0.0.1\n"
                f"admin.serverPort={ports['admin']}\nadmin.serverAddress=127.0.0.1\n"
                + extra)
    log = open(os.path.join(root, "server.log"), "ab")
    proc = subprocess.Popen([ARGS.bin, "--config", cfg], stdout=log, stderr=log)
    log.close()
    return proc, ports


def stop_server(proc):
    proc.terminate()
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


# Prometheus text exposition format 0.0.4.
METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
SAMPLE = re.compile(rf"^({METRIC_NAME})(\{{(?:{LABEL})(?:,{LABEL})*\}})? "
                    r"([-+]?(?:[0-9.]+(?:[eE][-+]?[0-9]+)?|Inf|NaN))$")


def parse_prometheus(text):
    """Returns {(name, labels): value} and {family: type}; raises on any
    line that is not valid exposition format."""
    samples, types = {}, {}
    assert text.endswith("\n"), "exposition must end with a newline"
    for line in text.splitlines():
        if line.startswith("# HELP "):
            assert re.match(rf"^# HELP {METRIC_NAME} .+$", line), line
            continue
        if line.startswith("# TYPE "):
            m = re.match(rf"^# TYPE ({METRIC_NAME}) (counter|gauge|histogram|summary|untyped)$", line)
            assert m, line
            assert m.group(1) not in types, f"duplicate TYPE {m.group(1)}"
            types[m.group(1)] = m.group(2)
            continue
        m = SAMPLE.match(line)
        assert m, f"bad sample line: {line!r}"
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or family in types, f"no TYPE for {name}"
        if types.get(family) == "counter" or name.endswith("_total"):
            assert value >= 0, line
        key = (name, labels)
        assert key not in samples, f"duplicate sample {key}"
        samples[key] = value
    return samples, types


def histogram_check(samples, name, labels):
    """Buckets are cumulative and end at +Inf == _count."""
    buckets = sorted(
        ((float(re.search(r'le="([^"]+)"', l).group(1).replace("+Inf", "inf")), v)
         for (n, l), v in samples.items()
         if n == name + "_bucket" and labels in l), key=lambda x: x[0])
    assert buckets and buckets[-1][0] == float("inf"), name
    values = [v for _, v in buckets]
    assert values == sorted(values), f"{name} buckets not cumulative"
    lab = "{" + labels + "}" if labels else ""
    assert samples[(name + "_count", lab)] == values[-1]
    return values[-1]


class AdminHttpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rk-admin-")
        cls.proc, cls.ports = start_server(
            cls.root, "4lw.commands.whitelist=ruok,srvr,stat,mntr,cons,crst,"
                      "srst,wchs,wchc,wchp,dump\n"
                      # A snapshot every 10-20 txns: test_snapshot_metrics.
                      "snapCount=20\n")
        assert poll(lambda: port_open(cls.ports["client"]) and
                    port_open(cls.ports["admin"])), "server did not listen"

    @classmethod
    def tearDownClass(cls):
        rc = stop_server(cls.proc)
        shutil.rmtree(cls.root, ignore_errors=True)
        assert rc == 0, f"clean shutdown expected, got {rc}"

    def client(self):
        zk = KazooClient(hosts=f"127.0.0.1:{self.ports['client']}", timeout=5)
        zk.start(timeout=10)
        self.addCleanup(zk.close)
        self.addCleanup(zk.stop)
        return zk

    def http(self, path, method="GET"):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.ports['admin']}{path}", method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()

    def command(self, name):
        status, headers, body = self.http(f"/commands/{name}")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["Content-Type"], "application/json")
        doc = json.loads(body)
        self.assertIsNone(doc["error"])
        return doc

    def raw(self, data, shutdown=True):
        s = socket.create_connection(("127.0.0.1", self.ports["admin"]), timeout=10)
        try:
            s.sendall(data)
            if shutdown:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before reading it all
        out = b""
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            out += b
        s.close()
        return out

    def four(self, cmd):
        s = socket.create_connection(("127.0.0.1", self.ports["client"]), timeout=10)
        s.sendall(cmd.encode())
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
        s.close()
        return out.decode()

    def test_commands_json(self):
        zk = self.client()
        zk.create("/adm", b"x")
        zk.create("/adm/e", ephemeral=True)
        zk.get("/adm", watch=lambda e: None)
        sid = zk.client_id[0]
        status, headers, body = self.http("/commands")
        self.assertEqual(status, 200)
        for name in ("monitor", "server_stats", "stats", "configuration",
                     "environment", "dirs", "dump", "connections", "watches",
                     "watch_summary", "watches_by_path", "is_read_only", "ruok"):
            self.assertIn(f'/commands/{name}"', body)
            doc = self.command(name)
            self.assertEqual(doc["command"], name)
        # Aliases answer with the primary name, as ZooKeeper.
        self.assertEqual(self.command("mntr")["command"], "monitor")
        self.assertEqual(self.command("srvr")["command"], "server_stats")
        mon = self.command("monitor")
        self.assertEqual(mon["server_state"], "standalone")
        self.assertGreaterEqual(mon["znode_count"], 2)
        self.assertGreaterEqual(mon["ephemerals_count"], 1)
        srvr = self.command("server_stats")
        self.assertEqual(srvr["server_stats"]["server_state"], "standalone")
        self.assertGreater(srvr["server_stats"]["last_processed_zxid"], 0)
        conf = self.command("configuration")
        self.assertEqual(conf["client_port"], self.ports["client"])
        conns = self.command("connections")["connections"]
        mine = [c for c in conns if c.get("session_id") == sid]
        self.assertEqual(len(mine), 1, conns)
        self.assertGreater(mine[0]["packets_received"], 0)
        self.assertEqual(self.command("watches")["session_id_to_watched_paths"][str(sid)],
                         ["/adm"])
        self.assertIn(sid, self.command("watches_by_path")["path_to_session_ids"]["/adm"])
        dump = self.command("dump")
        self.assertEqual(dump["session_id_to_ephemeral_paths"][str(sid)], ["/adm/e"])
        self.assertTrue(any(str(sid) in [str(x) for x in ids]
                            for ids in dump["expiry_time_to_session_ids"].values()))
        self.assertGreaterEqual(self.command("watch_summary")["num_total_watches"], 1)
        # Unknown command: ZooKeeper 3.8's status (200) and JSON error body.
        status, _, body = self.http("/commands/nosuch")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["error"], "Unknown command: nosuch")

    def test_metrics_parse_and_move(self):
        zk = self.client()
        samples, types = parse_prometheus(self.http("/metrics")[2])
        self.assertEqual(types["rockeeper_requests_total"], "counter")
        self.assertEqual(types["rockeeper_request_duration_seconds"], "histogram")
        self.assertEqual(samples[("rockeeper_server_state", '{state="standalone"}')], 1)
        creates = samples[("rockeeper_requests_total", '{op="create"}')]
        hist_creates = histogram_check(samples, "rockeeper_request_duration_seconds",
                                       'op="create"')
        commits = histogram_check(samples, "rockeeper_commit_duration_seconds", "")
        znodes = samples[("rockeeper_znodes", "")]
        cc_hits = samples[("rockeeper_children_cache_hits_total", "")]
        cc_misses = samples[("rockeeper_children_cache_misses_total", "")]
        for i in range(5):
            zk.create(f"/metric-{i}", b"v")
        zk.get("/metric-0")
        # The second listing at least is served from the cache, and it shows
        # the creates (edited in place).
        zk.get_children("/")
        self.assertTrue({f"metric-{i}" for i in range(5)} <= set(zk.get_children("/")))
        _, headers, text = self.http("/metrics")
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        samples, _ = parse_prometheus(text)
        self.assertEqual(samples[("rockeeper_requests_total", '{op="create"}')], creates + 5)
        self.assertEqual(histogram_check(samples, "rockeeper_request_duration_seconds",
                                         'op="create"'), hist_creates + 5)
        self.assertGreaterEqual(histogram_check(samples, "rockeeper_commit_duration_seconds",
                                                ""), commits + 5)
        self.assertEqual(samples[("rockeeper_znodes", "")], znodes + 5)
        self.assertGreaterEqual(samples[("rockeeper_children_cache_hits_total", "")],
                                cc_hits + 1)
        self.assertGreaterEqual(samples[("rockeeper_children_cache_hits_total", "")] +
                                samples[("rockeeper_children_cache_misses_total", "")],
                                cc_hits + cc_misses + 2)
        self.assertGreater(samples[("rockeeper_children_cache_bytes", "")], 0)
        # Gets served from memtables leave the row cache empty; it is exported.
        self.assertGreaterEqual(samples[("rockeeper_row_cache_bytes", "")], 0)
        self.assertGreaterEqual(samples[("rockeeper_requests_total", '{op="getData"}')], 1)
        self.assertGreaterEqual(samples[("rockeeper_sessions", "")], 1)
        self.assertGreaterEqual(samples[("rockeeper_connections", "")], 1)
        self.assertGreater(samples[("rockeeper_wire_packets_received_total", "")], 0)
        self.assertGreater(samples[("rockeeper_log_dir_bytes", "")], 0)
        self.assertGreaterEqual(samples[("rockeeper_txns_applied_total", "")], 5)
        for name in ("rockeeper_watches", "rockeeper_ephemerals",
                     "rockeeper_snapshot_dir_bytes", "rockeeper_data_dir_bytes",
                     "rockeeper_log_batches_total", "rockeeper_uptime_seconds"):
            self.assertIn((name, ""), samples)
        with self.assertRaises(Exception):
            zk.create("/metric-0")
        samples, _ = parse_prometheus(self.http("/metrics")[2])
        self.assertGreaterEqual(samples[("rockeeper_request_errors_total", '{op="create"}')], 1)

    def test_snapshot_metrics(self):
        # One create at a time: lone writes, which the log thread applies
        # itself; the snapshots they make due are still taken and timed.
        zk = self.client()
        before, _ = parse_prometheus(self.http("/metrics")[2])
        taken = before[("rockeeper_snapshots_total", "")]
        for i in range(45):
            zk.create(f"/snapmetric-{i}", b"v")
        def timed_all():
            samples, types = parse_prometheus(self.http("/metrics")[2])
            total = samples[("rockeeper_snapshots_total", "")]
            return (total >= taken + 2 and
                    types.get("rockeeper_snapshot_duration_seconds") == "histogram" and
                    histogram_check(samples, "rockeeper_snapshot_duration_seconds",
                                    "") == total)
        self.assertTrue(poll(timed_all),
                        "45 txns with snapCount=20: not two snapshots, each timed")

    def test_probes_and_bad_requests(self):
        self.assertEqual(self.http("/live")[:1], (200,))
        self.assertEqual(self.http("/ready")[0], 200)
        self.assertEqual(self.http("/nope")[0], 404)
        self.assertEqual(self.http("/metrics", method="DELETE")[0], 405)
        for bad in (b"GARBAGE\r\n\r\n", b"\x00\x01\x02\xff\r\n\r\n",
                    b"GET /live HTTP/9.9\r\n\r\n", b"GET live HTTP/1.1\r\n\r\n",
                    b"GET /live HTTP/1.1\r\nno colon here\r\n\r\n",
                    b"GET /live HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                    b"GET /live HTTP/1.1\r\nContent-Length: zz\r\n\r\n"):
            out = self.raw(bad)
            self.assertTrue(out.startswith(b"HTTP/1.1 400 "), (bad, out[:80]))
        out = self.raw(b"GET /live HTTP/1.1\r\nX: " + b"a" * 100000 + b"\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 431 "), out[:80])
        out = self.raw(b"POST /live HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 413 "), out[:80])
        # HEAD: headers only; keep-alive with two pipelined requests.
        out = self.raw(b"HEAD /commands/ruok HTTP/1.1\r\nConnection: close\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 200 "))
        self.assertTrue(out.endswith(b"\r\n\r\n"))
        out = self.raw(b"GET /live HTTP/1.1\r\n\r\nGET /ready HTTP/1.1\r\n\r\n")
        self.assertEqual(out.count(b"HTTP/1.1 200 OK"), 2, out)
        # A client stuck in the middle of a request does not block others.
        stuck = socket.create_connection(("127.0.0.1", self.ports["admin"]))
        stuck.sendall(b"GET /live HTT")
        try:
            self.assertEqual(self.http("/live")[0], 200)
        finally:
            stuck.close()
        # Random and mutated requests (seeded, bounded): answered or closed,
        # never a crash or a hang.
        import random
        rng = random.Random(int(os.environ.get("RK_ADMIN_FUZZ_SEED", "6")))
        seeds = [b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                 b"POST /commands/mntr HTTP/1.0\r\nContent-Length: 2\r\n\r\nab"]
        for _ in range(int(os.environ.get("RK_ADMIN_FUZZ_CASES", "150"))):
            if rng.random() < 0.3:
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
            else:
                data = bytearray(rng.choice(seeds))
                for _ in range(rng.randrange(1, 6)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                data = bytes(data)
            out = self.raw(data)
            self.assertTrue(out == b"" or out.startswith(b"HTTP/1.1 "), (data, out[:60]))
        # The server is alive and serving clients.
        zk = self.client()
        zk.create("/after-bad-http", b"x")
        self.assertEqual(self.http("/ready")[0], 200)

    def test_four_letter_words(self):
        zk = self.client()
        zk.create("/four", b"x")
        zk.create("/four/e", ephemeral=True)
        zk.exists("/four", watch=lambda e: None)
        sid = "0x%x" % zk.client_id[0]
        cons = self.four("cons")
        line = [l for l in cons.splitlines() if f"sid={sid}," in l]
        self.assertEqual(len(line), 1, cons)
        self.assertRegex(line[0], r"^ /127\.0\.0\.1:\d+\[1\]\(queued=\d+,recved=\d+,sent=\d+,"
                         r"sid=0x[0-9a-f]+,lop=\w+,est=\d+,to=\d+,lcxid=0x[0-9a-f]+,"
                         r"lzxid=0x[0-9a-f]+,lresp=\d+,llat=\d+,minlat=\d+,avglat=\d+,"
                         r"maxlat=\d+\)$")
        self.assertTrue(cons.endswith(")\n\n"))
        self.assertIn(f"{sid}\n\t/four\n", self.four("wchc"))
        self.assertIn(f"/four\n\t{sid}\n", self.four("wchp"))
        dump = self.four("dump")
        self.assertIn("SessionTracker dump:", dump)
        self.assertIn(f"{sid}:\n\t/four/e\n", dump)
        stat = self.four("stat")
        self.assertRegex(stat, r"Clients:\n( /127\.0\.0\.1:\d+\[\d\]\(queued=\d+,recved=\d+,sent=\d+\)\n)+\n")
        self.assertEqual(self.four("crst"), "Connection stats reset.\n")
        line = [l for l in self.four("cons").splitlines() if f"sid={sid}," in l][0]
        self.assertIn("recved=0,sent=0", line)
        self.assertIn("lop=NA", line)
        zk.get("/four")
        self.assertEqual(self.four("srst"), "Server stats reset.\n")
        self.assertIn("Latency min/avg/max: 0/0.0/0\n", self.four("srvr"))
        # Not whitelisted here, but the HTTP command works (as ZooKeeper).
        self.assertEqual(self.four("envi"),
                         "envi is not executed because it is not in the whitelist.\n")
        self.assertIn("os.name", self.command("environment"))


class ReadIoThreadsTest(unittest.TestCase):
    """Reads whose znode is in no cache move to a read I/O thread
    (readIoThreads, default 16) and answer the same; with readIoThreads=0
    none moves. The znode cache is off and the server restarted, so the
    znodes are in SST files only and RocksDB's block cache starts empty."""

    COUNT = 300

    def offloaded_after_cold_reads(self, extra):
        root = tempfile.mkdtemp(prefix="rk-read-io-")
        self.addCleanup(shutil.rmtree, root, True)
        cfg = "znodeCacheSizeMb=0\n" + extra
        proc, ports = start_server(root, cfg)
        try:
            self.assertTrue(poll(lambda: port_open(ports["client"])))
            zk = KazooClient(hosts=f"127.0.0.1:{ports['client']}", timeout=5)
            zk.start(timeout=10)
            # 1000 B each: the znodes span many data blocks, more than the
            # server's own start-up reads could bring into the cache.
            zk.create("/cold", b"parent")
            for i in range(self.COUNT):
                zk.create(f"/cold/n{i:04d}", b"%04d" % i * 250)
            zk.stop()
            zk.close()
        finally:
            self.assertEqual(stop_server(proc), 0)
        proc, ports = start_server(root, cfg)  # same data dir, fresh caches
        try:
            self.assertTrue(poll(lambda: port_open(ports["client"]) and
                                 port_open(ports["admin"])))
            zk = KazooClient(hosts=f"127.0.0.1:{ports['client']}", timeout=5)
            zk.start(timeout=10)
            # Stopped before the server stops (end of the try) so it does not
            # retry against a stopped server; the cleanups cover a failure.
            self.addCleanup(zk.close)
            self.addCleanup(zk.stop)
            for i in range(self.COUNT):
                data, stat = zk.get(f"/cold/n{i:04d}")
                self.assertEqual(data, b"%04d" % i * 250)
                self.assertEqual(stat.dataLength, 1000)
            self.assertEqual(len(zk.get_children("/cold")), self.COUNT)
            self.assertIsNone(zk.exists("/cold/missing"))
            self.assertEqual(zk.get_acls("/cold")[1].numChildren, self.COUNT)
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{ports['admin']}/metrics", timeout=10) as r:
                samples, _ = parse_prometheus(r.read().decode())
            threads = set()
            for tid in os.listdir(f"/proc/{proc.pid}/task"):
                with open(f"/proc/{proc.pid}/task/{tid}/comm") as f:
                    threads.add(f.read().strip())
            zk.stop()
            zk.close()
            return samples[("rockeeper_reads_offloaded_total", "")], threads
        finally:
            self.assertEqual(stop_server(proc), 0)

    def test_cold_reads_move_to_read_io_threads(self):
        offloaded, threads = self.offloaded_after_cold_reads("")
        self.assertGreater(offloaded, 0)
        self.assertLessEqual(offloaded, self.COUNT + 3)
        self.assertIn("rk-read-io", threads)

    def test_none_move_with_no_read_io_threads(self):
        offloaded, threads = self.offloaded_after_cold_reads("readIoThreads=0\n")
        self.assertEqual(offloaded, 0)
        self.assertNotIn("rk-read-io", threads)


class AdminDisabledTest(unittest.TestCase):
    def test_disabled(self):
        root = tempfile.mkdtemp(prefix="rk-admin-off-")
        proc, ports = start_server(root, "admin.enableServer=false\n")
        try:
            self.assertTrue(poll(lambda: port_open(ports["client"])))
            self.assertFalse(port_open(ports["admin"]))
        finally:
            self.assertEqual(stop_server(proc), 0)
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ARGS, rest = ap.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
