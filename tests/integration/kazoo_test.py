#!/usr/bin/python3
"""Compatibility test: Python kazoo (Debian's python3-kazoo, a real
third-party ZooKeeper client) against a real rockeeper process over the
ZooKeeper wire protocol, including kazoo's recipes.

Usage: kazoo_test.py --bin build/server/rockeeper
"""
import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

from kazoo.client import KazooClient
from kazoo.exceptions import (BadVersionError, NoAuthError, NodeExistsError,
                              NoNodeError, NotEmptyError)
from kazoo.protocol.serialization import Create, SetData, Transaction
from kazoo.security import OPEN_ACL_UNSAFE, make_digest_acl

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testlib"))
from rktest import StandaloneServer, free_port  # noqa: E402

ARGS = None


def poll(predicate, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


class KazooTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = StandaloneServer(
            ARGS.bin, "rk-kazoo-",
            f"tickTime=200\nadmin.serverPort={free_port()}\n"
            "admin.serverAddress=127.0.0.1\n"
            "4lw.commands.whitelist=ruok,srvr,mntr,wchs,conf\n")
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        assert rc == 0, f"clean shutdown expected, got {rc}"

    def client(self, **kw):
        zk = KazooClient(hosts=f"127.0.0.1:{self.port}", timeout=5, **kw)
        zk.start(timeout=10)
        self.addCleanup(zk.close)
        self.addCleanup(zk.stop)
        return zk

    def test_crud_stats_and_errors(self):
        zk = self.client()
        zk.create("/crud", b"v0")
        data, stat = zk.get("/crud")
        self.assertEqual((data, stat.version, stat.dataLength), (b"v0", 0, 2))
        with self.assertRaises(NodeExistsError):
            zk.create("/crud")
        with self.assertRaises(NoNodeError):
            zk.get("/nope")
        with self.assertRaises(BadVersionError):
            zk.set("/crud", b"x", version=7)
        stat = zk.set("/crud", b"v1", version=0)
        self.assertEqual(stat.version, 1)
        zk.create("/crud/kid")
        with self.assertRaises(NotEmptyError):
            zk.delete("/crud")
        self.assertEqual(zk.get_children("/crud"), ["kid"])
        children, stat = zk.get_children("/crud", include_data=True)
        self.assertEqual(stat.numChildren, 1)
        self.assertIsNone(zk.exists("/nope"))
        zk.delete("/crud", recursive=True)
        self.assertIsNone(zk.exists("/crud"))

    def test_null_data_is_kept_apart_from_empty_data(self):
        # ZooKeeper's null byte array (a buffer of length -1) reads back as
        # null; an empty buffer as empty (kazoo: None versus b""). kazoo's
        # API refuses None, so the requests are sent through its protocol
        # layer.
        zk = self.client()

        def call(request):
            result = zk.handler.async_result()
            zk._call(request, result)
            return result.get(timeout=10)

        call(Create("/nul", None, OPEN_ACL_UNSAFE, 0))
        zk.create("/nul/empty", b"")
        self.assertEqual(zk.get("/nul")[0], None)
        self.assertEqual(zk.get("/nul/empty")[0], b"")
        call(SetData("/nul/empty", None, -1))
        self.assertEqual(zk.get("/nul/empty")[0], None)
        zk.set("/nul", b"")
        self.assertEqual(zk.get("/nul")[0], b"")
        results = call(Transaction([Create("/nul/m", None, OPEN_ACL_UNSAFE, 0),
                                    SetData("/nul", None, -1)]))
        self.assertEqual(results[0], "/nul/m")
        self.assertEqual(zk.get("/nul/m")[0], None)
        self.assertEqual(zk.get("/nul")[0], None)
        zk.delete("/nul", recursive=True)

    def test_refused_writes_consume_a_zxid(self):
        # As ZooKeeper: a refused write is logged as an error txn, and its
        # reply header carries that txn's new zxid (without it, the reply
        # would carry the last applied zxid: no write happens in between).
        zk = self.client()
        zk.create("/zx")
        seen = [zk.last_zxid]
        with self.assertRaises(NodeExistsError):
            zk.create("/zx")
        seen.append(zk.last_zxid)
        with self.assertRaises(BadVersionError):
            zk.set("/zx", b"x", version=9)
        seen.append(zk.last_zxid)
        t = zk.transaction()
        t.create("/zx/a")
        t.create("/zx")  # NODEEXISTS: the whole multi fails
        t.commit()
        seen.append(zk.last_zxid)
        self.assertEqual(seen, sorted(set(seen)), seen)  # strictly increasing
        self.assertIsNone(zk.exists("/zx/a"))
        self.assertEqual(zk.get("/zx")[1].mzxid, seen[0])

    def test_sequential_ephemeral_and_session_close(self):
        zk = self.client()
        zk.ensure_path("/q")
        names = [zk.create("/q/n-", sequence=True) for _ in range(3)]
        self.assertEqual(names, ["/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"])
        other = KazooClient(hosts=f"127.0.0.1:{self.port}", timeout=5)
        other.start(timeout=10)
        other.create("/q/eph", ephemeral=True)
        self.assertEqual(zk.exists("/q/eph").ephemeralOwner, other.client_id[0])
        other.stop()
        other.close()
        self.assertIsNone(zk.exists("/q/eph"))

    def test_transaction_is_atomic(self):
        zk = self.client()
        zk.create("/t", b"0")
        tx = zk.transaction()
        tx.check("/t", 0)
        tx.create("/t/a", b"1")
        tx.set_data("/t", b"2")
        results = tx.commit()
        self.assertEqual(results[1], "/t/a")
        tx = zk.transaction()
        tx.create("/t/b")
        tx.create("/t/a")  # exists: everything fails
        results = tx.commit()
        self.assertIsInstance(results[1], NodeExistsError)
        self.assertIsNone(zk.exists("/t/b"))

    def test_watches_fire_once_and_in_order(self):
        zk = self.client()
        writer = self.client()
        zk.create("/w", b"0")
        events = []
        zk.get("/w", watch=events.append)
        zk.get_children("/w", watch=events.append)
        writer.set("/w", b"1")
        writer.set("/w", b"2")
        writer.create("/w/c")
        self.assertTrue(poll(lambda: len(events) >= 2))
        time.sleep(0.2)  # bounded look for a duplicate event
        self.assertEqual([(e.type, e.path) for e in events], [("CHANGED", "/w"), ("CHILD", "/w")])
        # DataWatch recipe keeps re-registering.
        seen = []
        zk.DataWatch("/w", lambda data, stat: seen.append(data))
        writer.set("/w", b"3")
        self.assertTrue(poll(lambda: b"3" in seen))

    def test_acl_and_digest_auth(self):
        zk = self.client(auth_data=[("digest", "bob:secret")])
        zk.create("/secret", b"s", acl=[make_digest_acl("bob", "secret", all=True)])
        anon = self.client()
        with self.assertRaises(NoAuthError):
            anon.get("/secret")
        self.assertEqual(zk.get("/secret")[0], b"s")

    def raw(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.addCleanup(s.close)
        return s

    def recv_all(self, s):
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)

    def test_bad_frames_close_only_that_connection(self):
        import struct
        zk = self.client()
        zk.create("/survivor", b"x")
        # ruok
        s = self.raw()
        s.sendall(b"ruok")
        self.assertEqual(self.recv_all(s), b"imok")
        # A length above jute.maxbuffer: closed without a reply.
        s = self.raw()
        s.sendall(struct.pack(">i", 0x7FFFFFFF) + b"x" * 16)
        self.assertEqual(self.recv_all(s), b"")
        # A negative length.
        s = self.raw()
        s.sendall(struct.pack(">i", -5))
        self.assertEqual(self.recv_all(s), b"")
        # A truncated ConnectRequest inside a complete frame.
        s = self.raw()
        s.sendall(struct.pack(">i", 6) + b"\0" * 6)
        self.assertEqual(self.recv_all(s), b"")
        # A valid handshake, then a malformed request body.
        s = self.raw()
        connect = struct.pack(">iqiqi", 0, 0, 30000, 0, 16) + b"\0" * 16
        s.sendall(struct.pack(">i", len(connect)) + connect)
        hdr = s.recv(4)
        (n,) = struct.unpack(">i", hdr)
        body = b""
        while len(body) < n:
            body += s.recv(n - len(body))
        self.assertEqual(n, 36)  # no readOnly byte: the request had none
        (_, timeout, session_id) = struct.unpack(">iiq", body[:16])
        self.assertGreater(timeout, 0)
        self.assertNotEqual(session_id, 0)
        bad = struct.pack(">ii", 1, 1) + struct.pack(">i", 1000) + b"/a"
        s.sendall(struct.pack(">i", len(bad)) + bad)
        self.assertEqual(self.recv_all(s), b"")
        # An unknown opcode gets ZooKeeper's error reply (zxid -1,
        # UNIMPLEMENTED), then the connection is closed, as ZooKeeper does.
        s = self.raw()
        s.sendall(struct.pack(">i", len(connect)) + connect)
        (n,) = struct.unpack(">i", s.recv(4))
        while n > 0:
            n -= len(s.recv(n))
        unknown = struct.pack(">ii", 7, 999)
        s.sendall(struct.pack(">i", len(unknown)) + unknown)
        reply = self.recv_all(s)
        self.assertEqual(struct.unpack(">iiqi", reply), (16, 7, -1, -6))
        # A path that is not UTF-8 gets BADARGUMENTS (-8), and the
        # connection stays usable.
        s = self.raw()
        s.sendall(struct.pack(">i", len(connect)) + connect)
        (n,) = struct.unpack(">i", s.recv(4))
        while n > 0:
            n -= len(s.recv(n))
        path = b"/bad\xff\xfe"
        create = (struct.pack(">ii", 3, 1) + struct.pack(">i", len(path)) + path
                  + struct.pack(">i", 1) + b"v"
                  + struct.pack(">ii", 1, 31) + struct.pack(">i", 5) + b"world"
                  + struct.pack(">i", 6) + b"anyone" + struct.pack(">i", 0))
        s.sendall(struct.pack(">i", len(create)) + create)
        (n,) = struct.unpack(">i", s.recv(4))
        self.assertEqual(struct.unpack(">iqi", s.recv(n))[::2], (3, -8))
        # A negative ACL count (not -1, jute's null vector) closes it.
        bad_acl = (struct.pack(">ii", 4, 7) + struct.pack(">i", 2) + b"/x"
                   + struct.pack(">i", -5) + struct.pack(">i", -1))
        s.sendall(struct.pack(">i", len(bad_acl)) + bad_acl)
        self.assertEqual(self.recv_all(s), b"")
        # The server and other clients are fine.
        self.assertEqual(zk.get("/survivor")[0], b"x")

    def four(self, cmd):
        s = self.raw()
        s.sendall(cmd.encode())
        return self.recv_all(s).decode()

    def test_four_letter_words(self):
        zk = self.client()
        zk.create("/fourlw", b"x")
        zk.exists("/fourlw", watch=lambda e: None)
        self.assertEqual(self.four("ruok"), "imok")
        srvr = self.four("srvr")
        self.assertIn("Mode: standalone", srvr)
        self.assertRegex(srvr, r"Zxid: 0x[0-9a-f]+")
        self.assertRegex(srvr, r"Node count: \d+")
        mntr = dict(line.split("\t", 1) for line in self.four("mntr").splitlines())
        self.assertEqual(mntr["zk_server_state"], "standalone")
        self.assertGreaterEqual(int(mntr["zk_znode_count"]), 5)
        self.assertGreaterEqual(int(mntr["zk_watch_count"]), 1)
        self.assertGreaterEqual(int(mntr["zk_num_alive_connections"]), 1)
        # Standalone, as ZooKeeper: no quorum or leader keys.
        self.assertNotIn("zk_quorum_size", mntr)
        self.assertNotIn("zk_synced_followers", mntr)
        self.assertNotIn("Proposal sizes", srvr)
        self.assertIn("Total watches:", self.four("wchs"))
        self.assertIn(f"clientPort={self.port}", self.four("conf"))
        self.assertEqual(self.four("envi"), "envi is not executed because it is not in the whitelist.\n")

    def test_lock_election_and_counter_recipes(self):
        zk1, zk2 = self.client(), self.client()
        order = []
        lock1 = zk1.Lock("/locks/r", "one")
        lock2 = zk2.Lock("/locks/r", "two")
        self.assertTrue(lock1.acquire(timeout=10))
        t = threading.Thread(target=lambda: (lock2.acquire(timeout=20), order.append("two"), lock2.release()))
        t.start()
        # lock2 queued behind lock1 before lock1 lets go.
        self.assertTrue(poll(lambda: len(lock1.contenders()) == 2))
        order.append("one")
        lock1.release()
        t.join(timeout=30)
        self.assertEqual(order, ["one", "two"])
        elected = []
        election = zk1.Election("/election", "zk1")
        th = threading.Thread(target=lambda: election.run(lambda: elected.append("zk1")))
        th.start()
        th.join(timeout=20)
        self.assertEqual(elected, ["zk1"])
        counter = zk2.Counter("/counter")
        counter += 5
        counter -= 2
        self.assertEqual(counter.value, 3)
        barrier = zk1.Barrier("/barrier")
        barrier.create()
        self.assertFalse(barrier.wait(timeout=0.2))
        barrier.remove()
        self.assertTrue(barrier.wait(timeout=5))

    def test_queue_and_double_barrier_recipes(self):
        zk1, zk2 = self.client(), self.client()
        q1, q2 = zk1.Queue("/queue"), zk2.Queue("/queue")
        for item in (b"a", b"b", b"c"):
            q1.put(item)
        q1.put(b"urgent", priority=10)  # kazoo: 0-999, smaller first; default 100
        self.assertEqual(len(q2), 4)
        got = [q2.get() for _ in range(4)]
        self.assertEqual(got, [b"urgent", b"a", b"b", b"c"])
        self.assertIsNone(q2.get())
        lq1, lq2 = zk1.LockingQueue("/lqueue"), zk2.LockingQueue("/lqueue")
        lq1.put(b"job1")
        lq1.put(b"job2")
        self.assertEqual(lq2.get(timeout=5), b"job1")
        self.assertTrue(lq2.consume())
        self.assertEqual(lq1.get(timeout=5), b"job2")
        self.assertTrue(lq1.consume())
        self.assertIsNone(lq2.get(timeout=0.2))
        # DoubleBarrier: nobody gets past enter() until both entered.
        entered = []
        b1 = zk1.DoubleBarrier("/dbarrier", 2)
        b2 = zk2.DoubleBarrier("/dbarrier", 2)
        th = threading.Thread(target=lambda: (b1.enter(), entered.append(1), b1.leave()))
        th.start()
        self.assertTrue(poll(lambda: zk2.exists("/dbarrier") is not None))
        self.assertEqual(entered, [])
        b2.enter()
        th.join(timeout=20)
        self.assertEqual(entered, [1])
        b2.leave()

    def test_session_expiry_and_reconnection(self):
        states = []
        zk1 = self.client()
        zk1.add_listener(lambda st: states.append(st))
        zk1.create("/eph-expire", b"x", ephemeral=True)
        old_id = zk1.client_id[0]
        # Expire zk1's session from another connection holding the same id
        # and password (kazoo's own test trick): zk1 is told SESSIONEXPIRED,
        # goes LOST, then starts a new session.
        twin = KazooClient(hosts=f"127.0.0.1:{self.port}", timeout=5,
                           client_id=zk1.client_id)
        twin.start(timeout=10)
        self.assertEqual(twin.client_id[0], old_id)
        twin.stop()
        twin.close()
        self.assertTrue(poll(lambda: "LOST" in states, seconds=20), states)
        self.assertTrue(poll(lambda: zk1.connected and zk1.client_id[0] != old_id, seconds=20))
        self.assertIsNone(zk1.exists("/eph-expire"))
        zk1.create("/eph-expire", b"y", ephemeral=True)  # the new session works
        self.assertEqual(zk1.get("/eph-expire")[1].ephemeralOwner, zk1.client_id[0])

    def test_paused_client_session_expires(self):
        # A client that stops heartbeating (SIGSTOP) keeps its TCP connection
        # but loses its session after the timeout: its ephemeral is deleted
        # and watchers see it go.
        script = (
            "import sys,time\n"
            "from kazoo.client import KazooClient\n"
            f"zk = KazooClient(hosts='127.0.0.1:{self.port}', timeout=1)\n"
            "zk.start(timeout=10)\n"
            "zk.create('/paused-eph', b'x', ephemeral=True)\n"
            "print('ready', flush=True)\n"
            "time.sleep(120)\n")
        child = subprocess.Popen(["/usr/bin/python3", "-c", script], stdout=subprocess.PIPE)
        self.addCleanup(lambda: (child.kill(), child.wait(), child.stdout.close()))
        self.assertEqual(child.stdout.readline().strip(), b"ready")
        zk = self.client()
        gone = threading.Event()
        self.assertIsNotNone(zk.exists("/paused-eph", watch=lambda e: gone.set()))
        os.kill(child.pid, 19)  # SIGSTOP
        self.assertTrue(gone.wait(timeout=30), "the paused client's session never expired")
        self.assertIsNone(zk.exists("/paused-eph"))

    def test_client_reconnects_across_server_restart(self):
        states = []
        zk = self.client()
        zk.add_listener(lambda st: states.append(st))
        zk.create("/eph-restart", b"x", ephemeral=True)
        sid = zk.client_id[0]
        self.server.kill()  # kill -9: the session must survive in the data dir
        self.assertTrue(poll(lambda: "SUSPENDED" in states, seconds=20), states)
        self.server.start()
        self.assertTrue(poll(lambda: zk.connected and states[-1] == "CONNECTED", seconds=30), states)
        self.assertEqual(zk.client_id[0], sid)  # same session
        self.assertNotIn("LOST", states)
        self.assertIsNotNone(zk.exists("/eph-restart"))
        zk.set("/eph-restart", b"after")
        self.assertEqual(zk.get("/eph-restart")[0], b"after")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
