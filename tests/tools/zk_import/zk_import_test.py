#!/usr/bin/python3
"""Migration from and back to Apache ZooKeeper: `rkutl import-zookeeper` and
`rkutl export-zookeeper` against Debian's real ZooKeeper 3.8 server.

1. A scripted workload runs on a real ZooKeeper (snapCount 50, so there are
   several snapshots and log files, and the newest snapshot is followed by
   txns in the log), driven by python3-kazoo: creates, sets, deletes, multi
   (including a failed one), digest/world ACLs and setACL, sequential nodes,
   ephemerals of a live and of a closed session, containers, TTL nodes,
   quota nodes, null/binary/unicode data. The whole tree is recorded through
   kazoo (data, full Stat, ACL), then ZooKeeper is killed (SIGKILL).
2. import-zookeeper; the imported state is compared with the recording
   through `rkutl snapshot dump --json` (persisted stats and raw owners) and
   through a real rockeeper server read with kazoo (the live session resumes
   with its ZooKeeper password, sequence numbers continue, new zxids are
   larger).
3. export-zookeeper of the import; ZooKeeper starts on the exported
   snapshot and kazoo reads back the same tree (no digest mismatch logged).
4. Damaged inputs: truncated/corrupted files, bad magic, huge lengths, a
   missing log file, a torn tail, plus random damage: exit 1 with the file
   and offset, never a crash, input files unchanged, nothing written.

Usage: zk_import_test.py --rkutl build/tools/rkutl/rkutl
                         --rockeeper build/server/rockeeper
"""
import argparse
import collections
import glob
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.protocol.serialization import int_struct, long_struct, read_string, write_buffer, write_string
from kazoo.security import make_digest_acl, make_acl

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..", "testlib"))
from rktest import free_port  # noqa: E402

ARGS = None
ZK_CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
DEADLINE_S = 40


def four_letter(port, word, timeout=1.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(word.encode())
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return out.decode(errors="replace")
                out += chunk
    except OSError:
        return ""


def poll(predicate, seconds=DEADLINE_S, what="condition"):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def _acl_body(acl):
    b = bytearray(int_struct.pack(len(acl)))
    for a in acl:
        b.extend(int_struct.pack(a.perms) + write_string(a.id.scheme) + write_string(a.id.id))
    return b


class CreateContainer(collections.namedtuple("CreateContainer", "path data acl")):
    """kazoo 2.8 has no container create: opcode 19 by hand."""
    type = 19

    def serialize(self):
        return (bytearray(write_string(self.path)) + write_buffer(self.data) +
                _acl_body(self.acl) + int_struct.pack(4))

    @classmethod
    def deserialize(cls, data, offset):
        return read_string(data, offset)[0]


class CreateTTL(collections.namedtuple("CreateTTL", "path data acl ttl")):
    """createTTL (opcode 21), PERSISTENT_WITH_TTL."""
    type = 21

    def serialize(self):
        return (bytearray(write_string(self.path)) + write_buffer(self.data) +
                _acl_body(self.acl) + int_struct.pack(5) + long_struct.pack(self.ttl))

    @classmethod
    def deserialize(cls, data, offset):
        return read_string(data, offset)[0]


def raw_call(zk, request):
    result = zk.handler.async_result()
    zk._call(request, result)
    return result.get(timeout=10)


class Proc:
    """A server process started by the test, killed by PID."""

    def __init__(self, argv, log_path, env=None):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log, env=env)

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)
        self.log.close()

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


def start_zookeeper(root, name, data_dir):
    """ZooKeeperServerMain on a free 127.0.0.1 port; returns (proc, port)."""
    port = free_port()
    cfg = os.path.join(root, f"{name}.cfg")
    with open(cfg, "w") as f:
        f.write(f"tickTime=500\ndataDir={data_dir}\nclientPort={port}\n"
                "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                "snapCount=50\nforceSync=yes\nmaxSessionTimeout=60000\n"
                "4lw.commands.whitelist=ruok,srvr\n")
    argv = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Dzookeeper.extendedTypesEnabled=true", "-Dzookeeper.snapCount=50",
            "-Dzookeeper.admin.enableServer=false",
            # Log files grow in 64 KiB steps instead of 64 MiB: the test
            # copies the data dir several times.
            "-Dzookeeper.preAllocSize=64", "-cp", ZK_CLASSPATH,
            "org.apache.zookeeper.server.ZooKeeperServerMain", cfg]
    proc = Proc(argv, os.path.join(root, f"{name}.log"))
    try:
        # ruok answers before the database is loaded; srvr shows the zxid
        # only once the server serves requests.
        poll(lambda: proc.proc.poll() is not None or "Zxid:" in four_letter(port, "srvr"),
             what=f"ZooKeeper {name} to serve (srvr)")
        assert proc.proc.poll() is None, f"ZooKeeper exited:\n{proc.log_text()[-3000:]}"
    except BaseException:
        proc.kill()
        raise
    return proc, port


def start_rockeeper(root, name, data_dir):
    port = free_port()
    cfg = os.path.join(root, f"{name}.cfg")
    with open(cfg, "w") as f:
        f.write(f"tickTime=500\ndataDir={data_dir}\nclientPort={port}\n"
                f"clientPortAddress=127.0.0.1\ngrpcPort={free_port()}\n"
                f"grpcPortAddress=127.0.0.1\nadmin.serverPort={free_port()}\n"
                "admin.serverAddress=127.0.0.1\nmaxSessionTimeout=60000\n"
                "4lw.commands.whitelist=ruok,srvr\n")
    proc = Proc([ARGS.rockeeper, "--config", cfg], os.path.join(root, f"{name}.log"))
    try:
        poll(lambda: proc.proc.poll() is not None or four_letter(port, "ruok") == "imok",
             what="rockeeper to answer ruok")
        assert proc.proc.poll() is None, f"rockeeper exited:\n{proc.log_text()[-3000:]}"
    except BaseException:
        proc.kill()
        raise
    return proc, port


def client(port, timeout=10, **kw):
    zk = KazooClient(hosts=f"127.0.0.1:{port}", timeout=timeout, **kw)
    zk.start(timeout=DEADLINE_S)
    return zk


def stop_client(zk):
    try:
        zk.stop()
        zk.close()
    except Exception:  # noqa: BLE001 - best effort cleanup
        pass


def zxid_of(srvr_text):
    for line in srvr_text.splitlines():
        if line.startswith("Zxid:"):
            return int(line.split(":", 1)[1].strip(), 16)
    raise AssertionError(f"no Zxid in srvr output: {srvr_text!r}")


STAT_FIELDS = ("czxid", "mzxid", "pzxid", "ctime", "mtime", "version", "cversion",
               "aversion", "ephemeralOwner", "dataLength", "numChildren")


def record_tree(zk, skip=("/zookeeper/config",)):
    """path -> (data, {stat fields}, sorted acl tuples) for the whole tree."""
    tree = {}
    stack = ["/"]
    while stack:
        path = stack.pop()
        if path in skip:
            continue
        data, stat = zk.get(path)
        acl, _ = zk.get_acls(path)
        tree[path] = (data, {f: getattr(stat, f) for f in STAT_FIELDS},
                      [(a.perms, a.id.scheme, a.id.id) for a in acl])
        for child in zk.get_children(path):
            stack.append(("/" if path == "/" else path + "/") + child)
    return tree


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def file_hashes(directory):
    out = {}
    for p in sorted(glob.glob(os.path.join(directory, "**"), recursive=True)):
        if os.path.isfile(p):
            with open(p, "rb") as f:
                out[p] = hashlib.sha256(f.read()).hexdigest()
    return out


class ZooKeeperMigrationTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rk-zkimport-")
        cls.zk_data = os.path.join(cls.root, "zkdata")
        cls.zk_v2 = os.path.join(cls.zk_data, "version-2")
        os.makedirs(cls.zk_data)
        try:
            zk_proc, port = start_zookeeper(cls.root, "zk-source", cls.zk_data)
            clients = []
            try:
                cls.workload(port, clients)
                cls.expected = record_tree(clients[0])
                cls.last_zxid = zxid_of(four_letter(port, "srvr"))
            finally:
                zk_proc.kill()  # SIGKILL while the live session is still open
                for c in clients:
                    stop_client(c)
        except BaseException:
            shutil.rmtree(cls.root, ignore_errors=True)
            raise
        cls.snapshots = sorted(glob.glob(os.path.join(cls.zk_v2, "snapshot.*")))
        cls.logs = sorted(glob.glob(os.path.join(cls.zk_v2, "log.*")))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    @classmethod
    def workload(cls, port, clients):
        zk = client(port)
        clients.append(zk)
        zk.add_auth("digest", "alice:secret")
        zk.set("/", b"root data")
        zk.create("/app", b"hello")
        for i in range(40):
            zk.create(f"/app/n{i:02d}", f"value {i}".encode())
        for i in range(0, 40, 3):
            zk.set(f"/app/n{i:02d}", f"changed {i}".encode())
            zk.set(f"/app/n{i:02d}", f"changed again {i}".encode())
        for i in range(0, 40, 4):
            zk.delete(f"/app/n{i:02d}")
        zk.create("/q")
        seq = [zk.create("/q/job-", b"j", sequence=True) for _ in range(12)]
        for p in seq[::2]:
            zk.delete(p)
        zk.create("/empty")                       # kazoo sends null data
        zk.create("/binary", bytes(range(256)))
        zk.create("/unicode-\u00e9\u4e2d", "caf\u00e9 \u2603".encode())
        # ACLs: digest-only, world read-only, and setACL (aclVersion 2).
        zk.create("/secret", b"s", acl=[make_digest_acl("alice", "secret", all=True)])
        zk.create("/readonly", b"r", acl=[make_acl("world", "anyone", read=True)])
        zk.create("/acl", b"a")
        zk.set_acls("/acl", [make_digest_acl("alice", "secret", all=True),
                             make_acl("world", "anyone", read=True)])
        zk.set_acls("/acl", [make_acl("world", "anyone", read=True, write=True)])
        # multi: a successful one and a failed one (logged as an error multi).
        t = zk.transaction()
        t.create("/multi", b"m1")
        t.create("/multi/child", b"m2")
        t.set_data("/app", b"set in multi")
        t.delete("/app/n01")
        t.check("/q", 0)
        t.commit()
        t = zk.transaction()
        t.create("/never", b"x")
        t.check("/q", 99)
        t.commit()
        assert zk.exists("/never") is None
        # Ephemerals: of a session that stays open, and of a closed one.
        live = client(port, timeout=30)  # outlives the restarts below
        clients.append(live)
        live.create("/eph", b"live", ephemeral=True)
        live.create("/q/eph-", b"", ephemeral=True, sequence=True)
        gone = client(port)
        gone.create("/gone", b"", ephemeral=True)
        stop_client(gone)
        # Containers and TTL nodes.
        open_acl = [make_acl("world", "anyone", all=True)]
        raw_call(zk, CreateContainer("/container", b"c", open_acl))
        zk.create("/container/kid", b"k")
        raw_call(zk, CreateTTL("/ttl", b"t", open_acl, 3600000))
        # Quota on /app as zkCli's setquota writes it.
        zk.create("/zookeeper/quota/app", b"", makepath=True)
        zk.create("/zookeeper/quota/app/zookeeper_limits", b"count=100,bytes=-1")
        zk.create("/zookeeper/quota/app/zookeeper_stats", b"count=0,bytes=0")
        zk.create("/app/after-quota", b"12345")
        zk.set("/app/n02", b"x" * 100)
        # Enough churn for several snapshots (snapCount 50) and log files,
        # then a tail of txns after the newest snapshot.
        for round_ in range(6):
            zk.create(f"/churn{round_}", b"")
            for i in range(25):
                zk.create(f"/churn{round_}/c{i}", b"c")
            if round_ % 2:
                zk.delete(f"/churn{round_}", recursive=True)
        # ZooKeeper snapshots after a random count of txns, so the last txn
        # may land in a snapshot. Write until a new snapshot file appears:
        # the next one is at least snapCount/2 txns away, so the tail below
        # follows the newest snapshot.
        def snapshot_files():
            return set(glob.glob(os.path.join(cls.zk_v2, "snapshot.*")))
        before = snapshot_files()
        for i in range(200):
            if snapshot_files() - before:
                break
            zk.set("/q", str(i).encode())
        else:
            raise AssertionError("no snapshot after 200 txns (snapCount 50)")
        zk.set("/q", b"tail")
        zk.create("/tail", b"the end")
        cls.live_client_id = live.client_id
        cls.open_sessions = {zk.client_id[0], live.client_id[0]}
        cls.session_timeout_ms = live._session_timeout

    # --- helpers ---------------------------------------------------------

    def rkutl(self, *argv, check=True):
        r = subprocess.run([ARGS.rkutl, *argv], capture_output=True, text=True,
                           errors="replace", timeout=120)
        self.assertGreaterEqual(r.returncode, 0, f"rkutl killed by a signal: {r.stderr}")
        if check:
            self.assertEqual(r.returncode, 0, f"rkutl {argv} failed:\n{r.stdout}\n{r.stderr}")
        return r

    def import_into(self, out, *extra):
        r = self.rkutl("import-zookeeper", "--snap-dir", self.zk_data,
                       "--log-dir", self.zk_data, "--out", out, *extra)
        self.assertNotIn("warning", r.stderr)
        return r

    def assert_same_tree(self, got, what):
        self.assertEqual(sorted(got), sorted(self.expected), f"{what}: paths differ")
        for path, (data, stat, acl) in self.expected.items():
            g_data, g_stat, g_acl = got[path]
            self.assertEqual(g_data, data, f"{what}: data of {path}")
            self.assertEqual(g_stat, stat, f"{what}: stat of {path}")
            self.assertEqual(sorted(g_acl), sorted(acl), f"{what}: ACL of {path}")

    # --- tests -----------------------------------------------------------

    def test_1_workload_left_snapshots_and_logs(self):
        self.assertGreaterEqual(len(self.snapshots), 3, self.snapshots)
        self.assertGreaterEqual(len(self.logs), 2, self.logs)
        newest = max(int(p.rsplit(".", 1)[1], 16) for p in self.snapshots)
        self.assertGreater(self.last_zxid, newest, "no txns after the newest snapshot")

    def test_2_import_matches_dump(self):
        before = file_hashes(self.zk_data)
        out = os.path.join(self.root, "imported-dump")
        r = self.import_into(out)
        self.assertIn("imported", r.stdout)
        self.assertEqual(file_hashes(self.zk_data), before, "the import changed its input")
        dump = json.loads(self.rkutl("snapshot", "dump", "--data-dir", out, "--live",
                                     "--json").stdout)
        self.assertEqual(int(dump["lastAppliedZxid"], 16), self.last_zxid)
        self.assertEqual(dump["currentEpoch"], self.last_zxid >> 32)
        nodes = {n["path"]: n for n in dump["nodes"]}
        self.assertEqual(sorted(set(nodes) - {"/zookeeper/config"}), sorted(self.expected))
        for path, (data, stat, acl) in self.expected.items():
            n = nodes[path]
            got = {"czxid": int(n["cZxid"], 16), "mzxid": int(n["mZxid"], 16),
                   "pzxid": int(n["pZxid"], 16), "ctime": n["ctime"], "mtime": n["mtime"],
                   "version": n["dataVersion"], "cversion": n["cversion"],
                   "aversion": n["aclVersion"], "ephemeralOwner": int(n["ephemeralOwner"], 16),
                   "dataLength": n["dataLength"], "numChildren": n["numChildren"]}
            self.assertEqual(got, stat, path)
            raw = (n["data"].encode() if n["dataEncoding"] == "utf8"
                   else __import__("base64").b64decode(n["data"]))
            self.assertEqual(raw, data, path)
            self.assertEqual(sorted((a["perms"], a["scheme"], a["id"]) for a in n["acl"]),
                             sorted(acl), path)
        self.assertEqual(nodes["/container"].get("nodeType"), "container")
        self.assertEqual(int(nodes["/container"]["rawEphemeralOwner"], 16), 1 << 63)
        self.assertEqual(int(nodes["/ttl"]["rawEphemeralOwner"], 16),
                         0xFF00000000000000 | 3600000)
        sessions = {int(s["sessionId"], 16): s for s in dump["sessions"]}
        self.assertEqual(set(sessions), self.open_sessions)  # not the closed one
        sid = self.live_client_id[0]
        self.assertEqual(sessions[sid]["timeoutMs"], self.session_timeout_ms)
        self.assertEqual(__import__("base64").b64decode(sessions[sid]["password"]),
                         self.live_client_id[1])
        # Refuses to overwrite; --force replaces.
        r = self.rkutl("import-zookeeper", "--snap-dir", self.zk_data, "--out", out,
                       check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("already exists", r.stderr)
        self.import_into(out, "--force")

    def test_3_rockeeper_serves_import(self):
        out = os.path.join(self.root, "imported-server")
        self.import_into(out)
        proc, port = start_rockeeper(self.root, "rockeeper", out)
        zk = live = None
        try:
            zk = client(port)
            zk.add_auth("digest", "alice:secret")
            got = record_tree(zk)
            self.assert_same_tree(got, "rockeeper over the wire")
            # The live ZooKeeper session resumes with its password.
            live = client(port, timeout=30, client_id=self.live_client_id)
            self.assertEqual(live.client_id[0], self.live_client_id[0])
            self.assertEqual(zk.exists("/eph").ephemeralOwner, self.live_client_id[0])
            # Sequence numbers and zxids continue.
            name = zk.create("/q/job-", b"", sequence=True)
            self.assertEqual(name, "/q/job-%010d" % 13)  # 12 jobs + 1 ephemeral
            self.assertGreater(zk.exists(name).czxid, self.last_zxid)
            live.stop()
            live.close()
            live = None
            poll(lambda: zk.exists("/eph") is None, what="ephemeral removed on close")
        finally:
            for c in (zk, live):
                if c is not None:
                    stop_client(c)
            proc.kill()

    def test_4_export_round_trip(self):
        out = os.path.join(self.root, "imported-export")
        self.import_into(out)
        zk_data = os.path.join(self.root, "zkdata-exported")
        snap_dir = os.path.join(zk_data, "version-2")
        r = self.rkutl("export-zookeeper", "--data-dir", out, "--out-snap-dir", snap_dir)
        self.assertIn("wrote", r.stdout)
        self.assertTrue(os.path.exists(os.path.join(snap_dir, "snapshot.%x" % self.last_zxid)))
        # Refuses to overwrite or mix.
        r = self.rkutl("export-zookeeper", "--data-dir", out, "--out-snap-dir", snap_dir,
                       check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("already holds ZooKeeper files", r.stderr)
        # The exported snapshot imports back to the same state.
        again = os.path.join(self.root, "reimported")
        self.rkutl("import-zookeeper", "--snap-dir", zk_data, "--out", again)
        proc, port = start_zookeeper(self.root, "zk-exported", zk_data)
        zk = None
        try:
            # Before any client: connecting creates a session (a new zxid).
            self.assertEqual(zxid_of(four_letter(port, "srvr")), self.last_zxid)
            zk = client(port)
            zk.add_auth("digest", "alice:secret")
            got = record_tree(zk)
        finally:
            if zk is not None:
                stop_client(zk)
            proc.kill()
        log = proc.log_text()
        self.assertIn("snapshot.%x" % self.last_zxid, log)
        self.assertNotIn("Digests are not matching", log)
        self.assertNotIn("digest mismatch", log.lower())
        # ZooKeeper read the digest section (and found it matching).
        self.assertIn("The digest in the snapshot has digest version of 2", log)
        self.assert_same_tree(got, "ZooKeeper on the exported snapshot")

    def test_5_damaged_inputs(self):
        cases = []
        newest = max(self.snapshots, key=lambda p: int(p.rsplit(".", 1)[1], 16))
        logs = sorted(self.logs, key=lambda p: int(p.rsplit(".", 1)[1], 16))

        def with_copy(name, mutate, expect, extra=()):
            d = os.path.join(self.root, "damaged", name)
            shutil.copytree(self.zk_data, d)
            v2 = os.path.join(d, "version-2")
            target = mutate(v2)
            cases.append((name, d, target, expect, extra))

        def rel(p, v2):
            return os.path.join(v2, os.path.basename(p))

        def truncate(p, size):
            with open(p, "r+b") as f:
                f.truncate(size)

        def poke(p, offset, data):
            with open(p, "r+b") as f:
                f.seek(offset)
                f.write(data)

        def truncated_snapshot(v2):
            p = rel(newest, v2)
            truncate(p, os.path.getsize(p) // 2)
            return p

        def bad_snapshot_magic(v2):
            p = rel(newest, v2)
            poke(p, 0, b"XXXX")
            return p

        def bad_snapshot_checksum(v2):
            p = rel(newest, v2)
            poke(p, 40, bytes([read_bytes(p)[40] ^ 0xFF]))
            return p

        def bad_log_checksum(v2):
            p = rel(logs[-1], v2)
            poke(p, 16 + 8 + 4 + 10, b"\x7f")  # inside the first record's entry
            return p

        def huge_log_length(v2):
            p = rel(logs[-1], v2)
            poke(p, 16 + 8, struct.pack("!i", 0x7FFFFFF0))
            return p

        def bad_log_magic(v2):
            p = rel(logs[-1], v2)
            poke(p, 0, b"ZKXX")
            return p

        def missing_log(v2):
            # The log holding the txns right after a snapshot, with a later
            # log left: the import sees the gap. (Without a later log a
            # missing last log is a shorter history, which nothing can
            # tell.) The newest snapshot that qualifies is chosen, and the
            # snapshots newer than it go too, so the import starts there.
            def zx(p):
                return int(p.rsplit(".", 1)[1], 16)

            def holder(z):
                return max((p for p in logs if zx(p) <= z + 1), key=zx)
            candidates = [zx(p) for p in self.snapshots
                          if zx(p) < self.last_zxid and holder(zx(p)) != logs[-1]]
            self.assertTrue(candidates, "no snapshot with two logs after it")
            z = max(candidates)
            for p in self.snapshots:
                if zx(p) > z:
                    os.remove(rel(p, v2))
            os.remove(rel(holder(z), v2))
            return os.path.join(v2, "log.")

        def torn_tail(v2):
            p = rel(logs[-1], v2)
            data = read_bytes(p)
            # end of the last record: the last 'B' followed only by zeros
            end = len(data.rstrip(b"\0"))
            truncate(p, end - 3)
            return p

        with_copy("truncated-snapshot", truncated_snapshot, "incomplete snapshot")
        with_copy("snapshot-magic", bad_snapshot_magic, "bad magic")
        with_copy("snapshot-checksum", bad_snapshot_checksum, "")
        with_copy("log-checksum", bad_log_checksum, "checksum mismatch")
        with_copy("log-length", huge_log_length, "")
        with_copy("log-magic", bad_log_magic, "bad magic")
        with_copy("missing-log", missing_log, "does not follow")
        with_copy("torn-tail", torn_tail, "--allow-torn-tail")
        for name, d, target, expect, extra in cases:
            with self.subTest(case=name):
                before = file_hashes(d)
                out = os.path.join(self.root, "damaged-out", name)
                r = self.rkutl("import-zookeeper", "--snap-dir", d, "--out", out, *extra,
                               check=False)
                self.assertEqual(r.returncode, 1, f"{name}: {r.stdout} {r.stderr}")
                # The error names a file of the damaged copy (which one can
                # depend on where ZooKeeper happened to roll its files).
                self.assertIn(os.path.join(d, "version-2"), r.stderr,
                              f"{name} (damaged {target}): {r.stderr}")
                self.assertIn("offset", r.stderr, f"{name}: {r.stderr}")
                self.assertIn(expect, r.stderr, f"{name}: {r.stderr}")
                self.assertFalse(os.path.exists(os.path.join(out, "state")))
                self.assertEqual(file_hashes(d), before, f"{name}: input modified")
        # A torn tail is accepted on request.
        torn = dict((c[0], c[1]) for c in cases)["torn-tail"]
        r = self.rkutl("import-zookeeper", "--snap-dir", torn, "--out",
                       os.path.join(self.root, "torn-ok"), "--allow-torn-tail")
        self.assertIn("--allow-torn-tail", r.stderr)

    def test_6_random_damage_never_crashes(self):
        rng = random.Random(int(os.environ.get("RK_ZK_IMPORT_SEED", "7")))
        newest = max(self.snapshots, key=lambda p: int(p.rsplit(".", 1)[1], 16))
        last_log = max(self.logs, key=lambda p: int(p.rsplit(".", 1)[1], 16))
        base = os.path.join(self.root, "fuzz")
        shutil.copytree(self.zk_data, base)
        v2 = os.path.join(base, "version-2")
        originals = {p: read_bytes(p) for p in (newest, last_log)}
        for i in range(int(os.environ.get("RK_ZK_IMPORT_FUZZ", "40"))):
            victim = rng.choice(list(originals))
            data = bytearray(originals[victim])
            used = len(bytes(data).rstrip(b"\0"))
            if rng.random() < 0.5:
                data = data[:rng.randrange(0, used + 1)]
            else:
                for _ in range(rng.randint(1, 4)):
                    data[rng.randrange(0, used)] ^= 1 << rng.randrange(8)
            path = os.path.join(v2, os.path.basename(victim))
            with open(path, "wb") as f:
                f.write(data)
            out = os.path.join(self.root, "fuzz-out", str(i))
            r = self.rkutl("import-zookeeper", "--snap-dir", base, "--out", out, check=False)
            self.assertIn(r.returncode, (0, 1), f"case {i}: {r.stderr}")
            if r.returncode == 1:
                self.assertTrue(r.stderr.startswith("rkutl: "), r.stderr)
                self.assertNotIn("internal error", r.stderr)
                self.assertNotIn("\ufffd", r.stderr, "unescaped bytes in the message")
            with open(path, "wb") as f:
                f.write(originals[victim])


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--rkutl", required=True)
    parser.add_argument("--rockeeper", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], "-v", *rest])


if __name__ == "__main__":
    main()
