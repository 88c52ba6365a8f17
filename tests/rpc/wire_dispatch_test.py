#!/usr/bin/python3
"""The ZooKeeper wire front end calling the service directly: a session's
requests answered in order when many are pipelined, watch events of a
session resumed on a new connection, connections that go away with writes
in flight, 2000 connections served without a thread each, connections
spread over the event-loop threads (wireThreads), and a client that does not
read its replies cut off at the output bound. Python kazoo and raw
jute frames against a real rockeeper process.

Usage: wire_dispatch_test.py --bin build/server/rockeeper
"""
import argparse
import os
import socket
import struct
import sys
import threading
import time
import unittest
import urllib.request

from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testlib"))
from rktest import (StandaloneServer, check_pipelined_read_sees_earlier_writes_only,  # noqa: E402
                    check_pipelined_reads_miss_later_related_writes, four_letter_word,
                    free_port, poll)

ARGS = None


def drop_connection(zk):
    """Breaks kazoo's TCP connection under it: it reconnects with the same
    session (as after a network blip)."""
    zk._connection._socket.shutdown(socket.SHUT_RDWR)


def frame(payload):
    return struct.pack(">i", len(payload)) + payload


def jute_string(text):
    data = text.encode()
    return struct.pack(">i", len(data)) + data


def connect_request():
    """ConnectRequest: protocol 0, lastZxidSeen 0, timeout 30 s, new
    session, empty password."""
    return frame(struct.pack(">iqiq", 0, 0, 30000, 0) + struct.pack(">i", 16)
                 + b"\0" * 16)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_frame(sock):
    (n,) = struct.unpack(">i", recv_exact(sock, 4))
    return recv_exact(sock, n)


def thread_count(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads line")


def wire_thread_cpu_ticks(pid):
    """{tid: user+system clock ticks} of the process's rk-wire threads."""
    ticks = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() != "rk-wire":
                    continue
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks[tid] = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks


class WireDispatchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = StandaloneServer(
            ARGS.bin, "rk-wire-dispatch-",
            "admin.enableServer=false\nmaxClientCnxns=0\nwireThreads=3\n"
            "4lw.commands.whitelist=cons,srvr\n")
        cls.port = cls.server.port
        cls.proc = cls.server.proc

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        assert rc == 0, f"clean shutdown expected, got {rc}"

    def client(self):
        zk = KazooClient(hosts=f"127.0.0.1:{self.port}", timeout=10)
        zk.start(timeout=10)
        self.addCleanup(zk.close)
        self.addCleanup(zk.stop)
        return zk

    def raw_sessions(self, port, count):
        """`count` raw sockets, each with a new session (connect answered);
        closed at cleanup."""
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(connect_request())
            recv_frame(s)
            socks.append(s)
        return socks

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

    def test_pipelined_read_sees_earlier_writes_only_and_keeps_its_watch(self):
        check_pipelined_read_sees_earlier_writes_only(self, self.client(), "/pw")

    def test_pipelined_reads_do_not_see_later_writes_to_related_nodes(self):
        check_pipelined_reads_miss_later_related_writes(self, self.client(), "/rel")

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

    def test_two_thousand_connections_on_a_few_threads(self):
        # The network layer is event driven: 2000 open sessions, each
        # answered, without a thread per connection.
        before = thread_count(self.proc.pid)
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for _ in range(2000):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            s.sendall(connect_request())
            socks.append(s)
        sessions = set()
        for s in socks:
            reply = recv_frame(s)
            _, timeout_ms, session_id = struct.unpack(">iiq", reply[:16])
            self.assertGreater(timeout_ms, 0)
            sessions.add(session_id)
        self.assertEqual(len(sessions), 2000)
        # exists("/") on every connection, all sent before any is read.
        request = frame(struct.pack(">ii", 1, 3) + jute_string("/") + b"\0")
        for s in socks:
            s.sendall(request)
        for s in socks:
            xid, _, err = struct.unpack(">iqi", recv_frame(s)[:16])
            self.assertEqual((xid, err), (1, 0))
        during = thread_count(self.proc.pid)
        self.assertLess(during - before, 16,
                        f"threads: {before} before, {during} with 2000 connections")
        close = frame(struct.pack(">ii", 2, -11))
        for s in socks:
            s.sendall(close)
        for s in socks:
            xid, _, err = struct.unpack(">iqi", recv_frame(s)[:16])
            self.assertEqual((xid, err), (2, 0))
            s.close()
        socks.clear()

    def test_connections_are_spread_over_the_wire_threads(self):
        # wireThreads=3: connections go round-robin to three event loops,
        # each running its connections' reads; three connections busy with
        # pipelined reads keep all three threads busy, and cons lists the
        # connections of every loop.
        before = wire_thread_cpu_ticks(self.proc.pid)
        self.assertEqual(len(before), 3, f"rk-wire threads: {before}")
        socks = self.raw_sessions(self.port, 3)

        def all_threads_worked():
            now = wire_thread_cpu_ticks(self.proc.pid)
            return all(now.get(tid, 0) - t >= 3 for tid, t in before.items())

        xid = 0
        deadline = time.time() + 60
        while not all_threads_worked() and time.time() < deadline:
            batch = [xid + 1 + i for i in range(500)]
            xid += len(batch)
            data = b"".join(frame(struct.pack(">ii", x, 3) + jute_string("/") + b"\0")
                            for x in batch)
            for s in socks:
                s.sendall(data)
            for s in socks:
                for x in batch:
                    got, _, err = struct.unpack(">iqi", recv_frame(s)[:16])
                    self.assertEqual((got, err), (x, 0))
        after = wire_thread_cpu_ticks(self.proc.pid)
        self.assertTrue(all_threads_worked(),
                        f"rk-wire CPU ticks before {before}, after {after}")
        cons = four_letter_word(self.port, "cons")
        for s in socks:
            self.assertIn(f"127.0.0.1:{s.getsockname()[1]}[", cons)

    def test_requests_beyond_the_outstanding_limit_wait_instead_of_failing(self):
        # As ZooKeeper at globalOutstandingLimit: past the limit the server
        # stops reading the connections (their requests wait in the socket)
        # instead of answering THROTTLEDOP; every request succeeds, in order.
        admin_port = free_port()
        server = StandaloneServer(
            ARGS.bin, "rk-wire-limit-",
            f"globalOutstandingLimit=4\nadmin.serverPort={admin_port}\n"
            "admin.serverAddress=127.0.0.1\n")
        self.addCleanup(server.stop)
        socks = self.raw_sessions(server.port, 20)
        acl = struct.pack(">ii", 1, 31) + jute_string("world") + jute_string("anyone")
        per_conn = 50
        for c, s in enumerate(socks):
            batch = b"".join(
                frame(struct.pack(">ii", x + 1, 1) + jute_string(f"/lim-{c}-{x}")
                      + struct.pack(">i", 100) + b"v" * 100 + acl
                      + struct.pack(">i", 0))
                for x in range(per_conn))
            s.sendall(batch)  # all sent before any reply is read
        for c, s in enumerate(socks):
            for x in range(per_conn):
                xid, _, err = struct.unpack(">iqi", recv_frame(s)[:16])
                self.assertEqual((xid, err), (x + 1, 0), f"connection {c}")
        with urllib.request.urlopen(
                f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        paused = [float(line.split()[-1]) for line in text.splitlines()
                  if line.startswith("rockeeper_wire_reads_paused_total")]
        self.assertTrue(paused and paused[0] > 0, paused)

    def test_client_that_does_not_read_is_disconnected(self):
        # Output per connection is bounded (64 MiB): a client that sends
        # requests and never reads the replies is cut off, and the others
        # are served meanwhile.
        zk = self.client()
        zk.create("/big", b"b" * 1000000)
        s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(connect_request())
        recv_frame(s)
        me = f"127.0.0.1:{s.getsockname()[1]}["
        self.assertIn(me, four_letter_word(self.port, "cons"))
        requests = 150  # 150 MB of replies
        get = b"".join(frame(struct.pack(">ii", i + 1, 4) + jute_string("/big") + b"\0")
                       for i in range(requests))
        s.sendall(get)
        # The others are served while this one is not reading.
        self.assertEqual(len(zk.get("/big")[0]), 1000000)
        # Still without reading (a reader could drain the replies as fast as
        # the server writes them: the other connection is served on another
        # thread), the server ends the connection: cons stops listing it.
        self.assertTrue(poll(lambda: me not in four_letter_word(self.port, "cons"), 60),
                        "the connection was not closed")
        # Reading now finds the end of the stream before all the replies.
        received = 0
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                chunk = s.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += len(chunk)
        else:
            self.fail("the connection was not closed")
        self.assertLess(received, requests * 1000000)
        self.assertIsNone(self.proc.poll(), "server exited")
        self.assertEqual(zk.get("/big")[1].dataLength, 1000000)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
