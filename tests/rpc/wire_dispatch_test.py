#!/usr/bin/python3
"""The ZooKeeper wire front end calling the service directly: a session's
requests answered in order when many are pipelined, watch events of a
session resumed on a new connection, connections that go away with writes
in flight. Python kazoo against a real rockeeper process.

Usage: wire_dispatch_test.py --bin build/server/rockeeper
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testlib"))
from rktest import free_port, poll  # noqa: E402

ARGS = None


def drop_connection(zk):
    """Breaks kazoo's TCP connection under it: it reconnects with the same
    session (as after a network blip)."""
    zk._connection._socket.shutdown(socket.SHUT_RDWR)


class WireDispatchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rk-wire-dispatch-")
        cls.port = free_port()
        cfg = os.path.join(cls.root, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(f"dataDir={cls.root}/data\n"
                    f"clientPort={cls.port}\nclientPortAddress=127.0.0.1\n"
                    f"grpcPort={free_port()}\ngrpcPortAddress=127.0.0.1\n"
                    "admin.enableServer=false\nmaxClientCnxns=0\n")
        cls.log = open(os.path.join(cls.root, "server.log"), "ab")
        cls.proc = subprocess.Popen([ARGS.bin, "--config", cfg], stdout=cls.log,
                                    stderr=cls.log)
        assert poll(cls._listening), "server did not listen"

    @classmethod
    def _listening(cls):
        try:
            socket.create_connection(("127.0.0.1", cls.port), timeout=1).close()
            return True
        except OSError:
            return False

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        try:
            rc = cls.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
            rc = cls.proc.wait()
        cls.log.close()
        shutil.rmtree(cls.root, ignore_errors=True)
        assert rc == 0, f"clean shutdown expected, got {rc}"

    def client(self):
        zk = KazooClient(hosts=f"127.0.0.1:{self.port}", timeout=10)
        zk.start(timeout=10)
        self.addCleanup(zk.close)
        self.addCleanup(zk.stop)
        return zk

    def test_resumed_session_is_not_held_by_events_already_written(self):
        # Replies carry the session's event seq and wait for those events;
        # events a previous connection of the session wrote must not hold a
        # new connection's replies (its pings neither).
        zk = self.client()
        zk.ensure_path("/resume")
        fired = threading.Event()
        zk.get("/resume", watch=lambda e: fired.set())
        zk.set("/resume", b"1")
        self.assertTrue(fired.wait(10), "watch event not delivered")
        session = zk.client_id
        states = []
        zk.add_listener(states.append)
        drop_connection(zk)
        self.assertTrue(poll(lambda: KazooState.SUSPENDED in states and
                             zk.state == KazooState.CONNECTED, seconds=20), states)
        self.assertEqual(zk.client_id, session)
        self.assertEqual(zk.get_async("/resume").get(timeout=10)[0], b"1")
        # A watch set on the new connection fires there.
        fired2 = threading.Event()
        zk.get("/resume", watch=lambda e: fired2.set())
        zk.set("/resume", b"2")
        self.assertTrue(fired2.wait(10), "watch event not delivered after resume")
        self.assertNotIn(KazooState.LOST, states)

    def test_pipelined_requests_are_answered_in_order(self):
        # kazoo matches replies to requests by xid and drops the connection
        # on a mismatch: out-of-order replies would fail these calls.
        zk = self.client()
        zk.ensure_path("/pipe")
        pending = []
        for i in range(300):
            path = f"/pipe/n{i % 10}"
            if i < 10:
                pending.append(("create", i, zk.create_async(path, b"0")))
            elif i % 3 == 0:
                pending.append(("set", i, zk.set_async(path, str(i).encode())))
            elif i % 3 == 1:
                pending.append(("get", i, zk.get_async(path)))
            else:
                pending.append(("exists", i, zk.exists_async(path)))
        last = {}  # path -> value of the last set before each request
        for kind, i, result in pending:
            path = f"/pipe/n{i % 10}"
            value = result.get(timeout=30)
            if kind == "create":
                last[path] = b"0"
            elif kind == "set":
                last[path] = str(i).encode()
            elif kind == "get":
                # FIFO: a read sees every earlier write of its session.
                self.assertEqual(value[0], last[path], (i, path))
            else:
                self.assertIsNotNone(value)

    def test_connections_closed_with_requests_in_flight(self):
        # Completions of writes arrive after their connection is gone; the
        # server must neither crash nor keep the session stuck.
        checker = self.client()
        checker.ensure_path("/gone")
        for round_ in range(10):
            zk = KazooClient(hosts=f"127.0.0.1:{self.port}", timeout=10)
            zk.start(timeout=10)
            for i in range(100):
                zk.create_async(f"/gone/r{round_}-{i}", b"x" * 100)
                zk.get_async("/gone")
            drop_connection(zk)
            zk.stop()
            zk.close()
            self.assertIsNone(self.proc.poll(), "server exited")
        # The server still answers, and every write either happened or not.
        names = checker.get_children("/gone")
        self.assertLessEqual(len(names), 1000)
        checker.create("/gone/after", b"ok")
        self.assertEqual(checker.get("/gone/after")[0], b"ok")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
