#!/usr/bin/python3
"""Integration test: a real `rockeeper` process on loopback, driven through
its gRPC API from Python (Debian's python3-grpcio; stubs generated here from
proto/rockeeper/v1/rockeeper.proto with protoc and grpc_python_plugin).

Usage: grpc_api_test.py --bin build/server/rockeeper --proto-dir proto
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testlib"))
from rktest import free_port  # noqa: E402

ARGS = None
pb = None
rpc = None

OK, NONODE, NOAUTH, BADVERSION, NOTEMPTY, NODEEXISTS = 0, -101, -102, -103, -111, -110
BADARGUMENTS, SESSIONEXPIRED, NOCHILDRENFOREPHEMERALS = -8, -112, -108
RUNTIMEINCONSISTENCY, AUTHFAILED, INVALIDACL = -2, -115, -114


def generate_stubs(proto_dir, out_dir):
    subprocess.run(
        ["protoc", f"-I{proto_dir}", f"--python_out={out_dir}",
         f"--grpc_python_out={out_dir}",
         "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
         os.path.join(proto_dir, "rockeeper/v1/rockeeper.proto")],
        check=True)
    sys.path.insert(0, out_dir)
    global pb, rpc
    from rockeeper.v1 import rockeeper_pb2, rockeeper_pb2_grpc  # noqa
    pb, rpc = rockeeper_pb2, rockeeper_pb2_grpc


class Server:
    """One rockeeper process with its own data dir and ports."""

    def __init__(self, root, extra="", preexec_fn=None):
        self.dir = root
        self.preexec_fn = preexec_fn
        self.port = free_port()
        self.client_port = free_port()
        self.cfg = os.path.join(root, "zoo.cfg")
        with open(self.cfg, "w") as f:
            f.write(f"tickTime=200\ndataDir={root}/data\n"
                    f"clientPort={self.client_port}\nclientPortAddress=127.0.0.1\n"
                    f"grpcPort={self.port}\ngrpcPortAddress=127.0.0.1\n"
                    f"admin.serverPort={free_port()}\n"
                    f"admin.serverAddress=127.0.0.1\n"
                    "snapCount=200\n" + extra)
        self.proc = None
        self.log = open(os.path.join(root, "server.log"), "ab")

    def start(self):
        self.proc = subprocess.Popen([ARGS.bin, "--config", self.cfg],
                                     stdout=self.log, stderr=self.log,
                                     preexec_fn=self.preexec_fn)
        # Wait for the port with plain TCP connects first: a gRPC channel
        # that fails its first connect backs off for seconds.
        deadline = time.time() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("rockeeper exited: " + self.tail())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("rockeeper did not listen: " + self.tail())
                time.sleep(0.02)
        channel = __import__("grpc").insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = rpc.RockeeperStub(channel)
        self.stub.Exists(pb.ExistsRequest(path="/"), timeout=10, wait_for_ready=True)

    def tail(self):
        self.log.flush()
        with open(os.path.join(self.dir, "server.log"), "rb") as f:
            return f.read()[-2000:].decode(errors="replace")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Session:
    def __init__(self, stub, timeout_ms=10000):
        self.stub = stub
        r = stub.Connect(pb.ConnectRequest(timeout_ms=timeout_ms))
        assert r.header.err == OK, r
        self.id, self.password, self.timeout_ms = r.session_id, r.password, r.timeout_ms
        self.md = (("rk-session-id", str(self.id)),)

    def __getattr__(self, name):
        method = getattr(self.stub, name)
        return lambda req: method(req, metadata=self.md, timeout=10)


def poll(predicate, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


class GrpcApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rk-it-")
        cls.server = Server(cls.root)
        cls.server.start()
        cls.s = cls.server.stub

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        shutil.rmtree(cls.root, ignore_errors=True)
        assert rc == 0, f"clean shutdown expected, got {rc}"

    def create(self, path, data=b"", mode=0, stub=None, **kw):
        return (stub or self.s).Create(pb.CreateRequest(path=path, data=data, mode=mode, **kw))

    def test_crud_versions_and_errors(self):
        r = self.create("/crud", b"v0")
        self.assertEqual(r.header.err, OK)
        self.assertEqual(r.path, "/crud")
        self.assertEqual(r.stat.czxid, r.header.zxid)
        self.assertEqual(self.create("/crud").header.err, NODEEXISTS)
        self.assertEqual(self.create("/nope/x").header.err, NONODE)
        g = self.s.GetData(pb.GetDataRequest(path="/crud"))
        self.assertEqual((g.data, g.stat.version, g.stat.data_length), (b"v0", 0, 2))
        self.assertEqual(self.s.SetData(pb.SetDataRequest(path="/crud", data=b"v1", version=5)).header.err, BADVERSION)
        sd = self.s.SetData(pb.SetDataRequest(path="/crud", data=b"v1", version=0))
        self.assertEqual((sd.header.err, sd.stat.version), (OK, 1))
        self.assertEqual(sd.stat.mzxid, sd.header.zxid)
        self.create("/crud/kid")
        self.assertEqual(self.s.Delete(pb.DeleteRequest(path="/crud")).header.err, NOTEMPTY)
        ch = self.s.GetChildren(pb.GetChildrenRequest(path="/crud"))
        self.assertEqual(list(ch.children), ["kid"])
        self.assertEqual(ch.stat.num_children, 1)
        self.assertEqual(self.s.Delete(pb.DeleteRequest(path="/crud/kid", version=0)).header.err, OK)
        self.assertEqual(self.s.Delete(pb.DeleteRequest(path="/crud")).header.err, OK)
        e = self.s.Exists(pb.ExistsRequest(path="/crud"))
        self.assertEqual((e.header.err, e.header.err_name), (NONODE, "NONODE"))

    def test_bad_input_is_rejected_and_server_keeps_serving(self):
        self.create("/ok")
        # ZooKeeper checks the parent before the full path: a missing parent
        # ("/a/." has parent "/a") is NONODE, an invalid name BADARGUMENTS.
        for p in ["rel", "", "/a\x00b", "/.", "/..", "/ok/", "/ok/.", "/ok/.."]:
            self.assertEqual(self.create(p).header.err, BADARGUMENTS, repr(p))
        for p in ["/trail/", "/a//b", "/a/./b", "/a/../b"]:
            self.assertEqual(self.create(p).header.err, NONODE, repr(p))
        for p in ["rel", "/trail/", "/a//b", "/a/./b", "/a/../b", "/a\x00b", ""]:
            self.assertEqual(self.s.GetData(pb.GetDataRequest(path=p)).header.err, BADARGUMENTS, repr(p))
            self.assertEqual(self.s.Delete(pb.DeleteRequest(path=p)).header.err, BADARGUMENTS, repr(p))
        grpc = __import__("grpc")
        with self.assertRaises(grpc.RpcError) as cm:
            self.create("/big", b"x" * (1 << 20))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(grpc.RpcError) as cm:
            self.s.Multi(pb.MultiRequest(ops=[pb.MultiRequest.Op()]))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        # Null data with data contradicts itself: refused, nothing written.
        bad = [lambda: self.s.Create(pb.CreateRequest(path="/nd", data=b"x", data_null=True)),
               lambda: self.s.SetData(pb.SetDataRequest(path="/ok", data=b"x", data_null=True)),
               lambda: self.s.Multi(pb.MultiRequest(ops=[pb.MultiRequest.Op(
                   create=pb.CreateRequest(path="/nd", data=b"x", data_null=True))]))]
        for call in bad:
            with self.assertRaises(grpc.RpcError) as cm:
                call()
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(self.s.Exists(pb.ExistsRequest(path="/nd")).header.err, NONODE)
        r = self.s.Create(pb.CreateRequest(path="/x"), metadata=(("rk-session-id", "12345"),))
        self.assertEqual(r.header.err, SESSIONEXPIRED)
        self.assertEqual(self.s.Exists(pb.ExistsRequest(path="/x")).header.err, NONODE)
        self.assertEqual(self.create("/after-bad-input").header.err, OK)

    def test_sequential_names(self):
        self.create("/seq")
        names = [self.create("/seq/n-", mode=pb.PERSISTENT_SEQUENTIAL).path for _ in range(3)]
        self.assertEqual(names, ["/seq/n-0000000000", "/seq/n-0000000001", "/seq/n-0000000002"])

    def test_ephemerals_removed_on_close_and_on_expiry(self):
        s = Session(self.s)
        self.create("/eph")
        r = s.Create(pb.CreateRequest(path="/eph/e1", mode=pb.EPHEMERAL))
        self.assertEqual(r.header.err, OK)
        self.assertEqual(r.stat.ephemeral_owner, s.id)
        self.assertEqual(s.Create(pb.CreateRequest(path="/eph/e1/x")).header.err, NOCHILDRENFOREPHEMERALS)
        self.assertEqual(list(s.GetEphemerals(pb.GetEphemeralsRequest()).paths), ["/eph/e1"])
        self.assertEqual(self.create("/eph/e2", mode=pb.EPHEMERAL).header.err, BADARGUMENTS)  # sessionless
        self.assertEqual(s.Close(pb.CloseRequest()).header.err, OK)
        self.assertEqual(self.s.Exists(pb.ExistsRequest(path="/eph/e1")).header.err, NONODE)
        self.assertEqual(s.Heartbeat(pb.HeartbeatRequest()).header.err, SESSIONEXPIRED)
        # Expiry: minSessionTimeout is 2 ticks = 400 ms; stop heartbeating.
        short = Session(self.s, timeout_ms=1)
        self.assertEqual(short.timeout_ms, 400)
        self.assertEqual(short.Create(pb.CreateRequest(path="/eph/e3", mode=pb.EPHEMERAL)).header.err, OK)
        self.assertTrue(poll(lambda: self.s.Exists(pb.ExistsRequest(path="/eph/e3")).header.err == NONODE))
        self.assertEqual(short.Heartbeat(pb.HeartbeatRequest()).header.err, SESSIONEXPIRED)
        # Heartbeats keep a session alive well past its timeout.
        live = Session(self.s, timeout_ms=400)
        live.Create(pb.CreateRequest(path="/eph/live", mode=pb.EPHEMERAL))
        end = time.time() + 1.5
        while time.time() < end:
            self.assertEqual(live.Heartbeat(pb.HeartbeatRequest()).header.err, OK)
            time.sleep(0.1)
        self.assertEqual(self.s.Exists(pb.ExistsRequest(path="/eph/live")).header.err, OK)
        # Resume with id + password; a wrong password is refused.
        r = self.s.Connect(pb.ConnectRequest(session_id=live.id, password=live.password))
        self.assertEqual((r.header.err, r.session_id), (OK, live.id))
        r = self.s.Connect(pb.ConnectRequest(session_id=live.id, password=b"wrong"))
        self.assertEqual(r.header.err, SESSIONEXPIRED)

    def test_multi_is_atomic(self):
        self.create("/m", b"0")
        bad = pb.MultiRequest(ops=[
            pb.MultiRequest.Op(set_data=pb.SetDataRequest(path="/m", data=b"1")),
            pb.MultiRequest.Op(create=pb.CreateRequest(path="/m")),
            pb.MultiRequest.Op(delete=pb.DeleteRequest(path="/m/none"))])
        r = self.s.Multi(bad)
        self.assertEqual(r.header.err, NODEEXISTS)
        self.assertEqual([x.err for x in r.results], [OK, NODEEXISTS, RUNTIMEINCONSISTENCY])
        self.assertEqual(self.s.GetData(pb.GetDataRequest(path="/m")).data, b"0")
        good = pb.MultiRequest(ops=[
            pb.MultiRequest.Op(create=pb.CreateRequest(path="/m/a", data=b"x")),
            pb.MultiRequest.Op(check=pb.CheckRequest(path="/m", version=0)),
            pb.MultiRequest.Op(set_data=pb.SetDataRequest(path="/m", data=b"2", version=0))])
        r = self.s.Multi(good)
        self.assertEqual(r.header.err, OK)
        self.assertEqual(r.results[0].path, "/m/a")
        self.assertEqual(r.results[2].stat.version, 1)
        self.assertEqual(r.results[0].stat.czxid, r.header.zxid)

    def test_acl_denial_and_digest_auth(self):
        s = Session(self.s)
        self.assertEqual(s.AddAuth(pb.AddAuthRequest(scheme="digest", auth=b"bob:secret")).header.err, OK)
        r = s.Create(pb.CreateRequest(path="/secret", data=b"s",
                                      acl=[pb.Acl(perms=31, scheme="auth", id="")]))
        self.assertEqual(r.header.err, OK)
        self.assertEqual(self.s.GetData(pb.GetDataRequest(path="/secret")).header.err, NOAUTH)
        self.assertEqual(self.s.SetData(pb.SetDataRequest(path="/secret", data=b"x")).header.err, NOAUTH)
        self.assertEqual(s.GetData(pb.GetDataRequest(path="/secret")).data, b"s")
        acl = self.s.GetAcl(pb.GetAclRequest(path="/secret"))
        self.assertEqual(acl.header.err, NOAUTH)
        acl = s.GetAcl(pb.GetAclRequest(path="/secret"))
        self.assertEqual([(a.scheme, a.id) for a in acl.acl], [("digest", "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=")])
        self.assertEqual(s.AddAuth(pb.AddAuthRequest(scheme="kerberos", auth=b"x")).header.err, AUTHFAILED)
        who = s.WhoAmI(pb.WhoAmIRequest())
        self.assertIn(("digest", "bob"), [(c.auth_scheme, c.user) for c in who.client_info])
        self.assertIn(("ip", "127.0.0.1"), [(c.auth_scheme, c.user) for c in who.client_info])
        self.assertEqual(self.create("/w", acl=[pb.Acl(perms=31, scheme="world", id="x")]).header.err, INVALIDACL)

    def test_counts_and_quota(self):
        self.create("/q")
        for i in range(5):
            self.create(f"/q/{i}", b"ab")
        self.assertEqual(self.s.GetAllChildrenNumber(pb.GetAllChildrenNumberRequest(path="/q")).total_number, 5)
        self.create("/zookeeper/quota/q")
        self.create("/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0")
        self.create("/zookeeper/quota/q/zookeeper_limits", b"count=10,bytes=-1")
        self.create("/q/5", b"abcd")
        st = self.s.GetData(pb.GetDataRequest(path="/zookeeper/quota/q/zookeeper_stats"))
        self.assertEqual(st.data, b"count=7,bytes=14")

    def test_status_command(self):
        out = subprocess.run([ARGS.bin, "status", "--config", self.server.cfg],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("Mode: standalone", out.stdout)
        # As zkServer.sh status: the client port, asked with `srvr`.
        self.assertIn(f"Client port found: {self.server.client_port}", out.stdout)


class EventStream:
    """A session's Session stream, read on a background thread."""

    def __init__(self, session):
        import queue
        import threading
        self.requests = queue.Queue()
        self.requests.put(pb.SessionRequest(session_id=session.id, password=session.password))
        self.messages = []
        self.lock = threading.Lock()
        self.call = session.stub.Session(self._gen())
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _gen(self):
        while True:
            item = self.requests.get()
            if item is None:
                return
            yield item

    def _read(self):
        try:
            for m in self.call:
                with self.lock:
                    self.messages.append(m)
        except Exception:
            pass

    def events(self):
        with self.lock:
            return [(m.event.seq, m.event.type, m.event.path) for m in self.messages
                    if m.WhichOneof("message") == "event"]

    def states(self):
        with self.lock:
            return [m.state for m in self.messages if m.WhichOneof("message") == "state"]

    def close(self):
        self.requests.put(None)
        self.call.cancel()


class WatchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rk-watch-")
        cls.server = Server(cls.root)
        cls.server.start()
        cls.s = cls.server.stub

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.a = Session(self.s)
        self.stream = EventStream(self.a)
        self.assertTrue(poll(lambda: pb.SessionMessage.CONNECTED in self.stream.states()))

    def tearDown(self):
        self.stream.close()

    def wait_events(self, n):
        self.assertTrue(poll(lambda: len(self.stream.events()) >= n), self.stream.events())
        return self.stream.events()

    def test_one_shot_watches_fire_once_in_order(self):
        self.s.Create(pb.CreateRequest(path="/w1", data=b"0"))
        g = self.a.GetData(pb.GetDataRequest(path="/w1", watch=True))
        self.assertEqual(g.header.err, OK)
        e = self.a.Exists(pb.ExistsRequest(path="/w1/new", watch=True))
        self.assertEqual(e.header.err, NONODE)
        c = self.a.GetChildren(pb.GetChildrenRequest(path="/w1", watch=True))
        self.assertEqual(c.header.err, OK)
        r = self.s.SetData(pb.SetDataRequest(path="/w1", data=b"1"))
        self.s.SetData(pb.SetDataRequest(path="/w1", data=b"2"))  # no second event
        self.s.Create(pb.CreateRequest(path="/w1/new"))
        ev = self.wait_events(3)
        self.assertEqual(ev[0], (1, pb.NODE_DATA_CHANGED, "/w1"))
        self.assertEqual(sorted(ev[1:3]), sorted([(2, pb.NODE_CREATED, "/w1/new"),
                                                   (3, pb.NODE_CHILDREN_CHANGED, "/w1")]) if ev[1][1] == pb.NODE_CREATED
                         else sorted([(2, pb.NODE_CHILDREN_CHANGED, "/w1"), (3, pb.NODE_CREATED, "/w1/new")]))
        # A later read by the watching session reports event_seq >= 3: the
        # client must have seen the events before this data.
        g = self.a.GetData(pb.GetDataRequest(path="/w1"))
        self.assertEqual(g.data, b"2")
        self.assertGreaterEqual(g.header.event_seq, 3)
        self.s.SetData(pb.SetDataRequest(path="/w1", data=b"3"))
        self.s.Create(pb.CreateRequest(path="/w1/other"))
        time_limit = time.time() + 0.5
        while time.time() < time_limit:  # bounded check that nothing else arrives
            self.assertEqual(len(self.stream.events()), 3)
            time.sleep(0.05)

    def test_delete_fires_one_event_for_data_and_child_watch(self):
        self.s.Create(pb.CreateRequest(path="/w2"))
        self.a.GetData(pb.GetDataRequest(path="/w2", watch=True))
        self.a.GetChildren(pb.GetChildrenRequest(path="/w2", watch=True))
        d = self.s.Delete(pb.DeleteRequest(path="/w2"))
        self.assertEqual(d.header.err, OK)
        self.assertEqual(self.wait_events(1), [(1, pb.NODE_DELETED, "/w2")])

    def test_persistent_recursive_and_remove(self):
        self.s.Create(pb.CreateRequest(path="/w3"))
        self.assertEqual(self.a.AddWatch(pb.AddWatchRequest(path="/w3", mode=pb.PERSISTENT_RECURSIVE_WATCH)).header.err, OK)
        self.s.Create(pb.CreateRequest(path="/w3/a"))
        self.s.Create(pb.CreateRequest(path="/w3/a/b"))
        self.s.SetData(pb.SetDataRequest(path="/w3/a/b", data=b"x"))
        self.s.SetData(pb.SetDataRequest(path="/w3/a/b", data=b"y"))
        ev = self.wait_events(4)
        self.assertEqual([e[1:] for e in ev], [(pb.NODE_CREATED, "/w3/a"), (pb.NODE_CREATED, "/w3/a/b"),
                                                (pb.NODE_DATA_CHANGED, "/w3/a/b"), (pb.NODE_DATA_CHANGED, "/w3/a/b")])
        self.assertEqual(self.a.RemoveWatches(pb.RemoveWatchesRequest(path="/w3", type=pb.WATCHER_PERSISTENT_RECURSIVE)).header.err, OK)
        self.assertEqual(self.a.RemoveWatches(pb.RemoveWatchesRequest(path="/w3", type=pb.WATCHER_ANY)).header.err, -121)
        w = self.s.Create(pb.CreateRequest(path="/w3/after"))
        self.assertEqual(w.header.err, OK)
        g = self.a.GetData(pb.GetDataRequest(path="/w3/after"))
        self.assertEqual(g.header.event_seq, 4)
        self.assertEqual(len(self.stream.events()), 4)

    def test_set_watches_fires_missed_changes_and_close_ends_stream(self):
        self.s.Create(pb.CreateRequest(path="/w4"))
        before = self.s.Exists(pb.ExistsRequest(path="/w4")).header.zxid
        self.s.SetData(pb.SetDataRequest(path="/w4", data=b"changed"))
        r = self.a.SetWatches(pb.SetWatchesRequest(relative_zxid=before, data_watches=["/w4"],
                                                   exist_watches=["/w4-missing"]))
        self.assertEqual(r.header.err, OK)
        self.assertEqual(self.wait_events(1), [(1, pb.NODE_DATA_CHANGED, "/w4")])
        self.s.Create(pb.CreateRequest(path="/w4-missing"))
        self.assertEqual(self.wait_events(2)[1], (2, pb.NODE_CREATED, "/w4-missing"))
        grpc = __import__("grpc")
        with self.assertRaises(grpc.RpcError) as cm:
            self.s.GetData(pb.GetDataRequest(path="/w4", watch=True))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.a.Close(pb.CloseRequest())
        self.assertTrue(poll(lambda: pb.SessionMessage.CLOSED in self.stream.states()))

    def test_watchers_without_read_permission_get_no_event(self):
        owner = Session(self.s)
        owner.AddAuth(pb.AddAuthRequest(scheme="digest", auth=b"own:er"))
        owner.Create(pb.CreateRequest(path="/w6", data=b"0"))
        self.a.GetData(pb.GetDataRequest(path="/w6", watch=True))
        self.a.Exists(pb.ExistsRequest(path="/w6/x", watch=True))
        # The node becomes unreadable for session a, then changes.
        owner.SetAcl(pb.SetAclRequest(path="/w6", acl=[pb.Acl(perms=31, scheme="auth", id="")]))
        owner.SetData(pb.SetDataRequest(path="/w6", data=b"1"))
        # A change a may see, as a fence: its event arrives, the other not.
        owner.Create(pb.CreateRequest(path="/w6/x"))
        self.assertEqual(self.wait_events(1), [(1, pb.NODE_CREATED, "/w6/x")])
        time.sleep(0.2)  # bounded look for a late forbidden event
        self.assertEqual(len(self.stream.events()), 1)

    def test_ephemeral_expiry_notifies_other_session(self):
        short = Session(self.s, timeout_ms=400)
        short.Create(pb.CreateRequest(path="/w5", mode=pb.EPHEMERAL))
        self.a.Exists(pb.ExistsRequest(path="/w5", watch=True))
        self.assertEqual(self.wait_events(1), [(1, pb.NODE_DELETED, "/w5")])


class ReaperTest(unittest.TestCase):
    def test_empty_containers_and_expired_ttl_nodes_are_deleted(self):
        root = tempfile.mkdtemp(prefix="rk-reap-")
        server = Server(root, "extendedTypesEnabled=true\n"
                              "znode.container.checkIntervalMs=100\n")
        try:
            server.start()
            s = server.stub
            self.assertEqual(s.Create(pb.CreateRequest(path="/c", mode=pb.CONTAINER)).header.err, OK)
            self.assertEqual(s.Create(pb.CreateRequest(path="/never", mode=pb.CONTAINER)).header.err, OK)
            self.assertEqual(s.Create(pb.CreateRequest(path="/c/kid")).header.err, OK)
            r = s.Create(pb.CreateRequest(path="/t", mode=pb.PERSISTENT_WITH_TTL, ttl_ms=300))
            self.assertEqual(r.header.err, OK)
            self.assertEqual(r.stat.ephemeral_owner, 0)
            self.assertEqual(s.Create(pb.CreateRequest(path="/t2", mode=pb.PERSISTENT_WITH_TTL)).header.err, BADARGUMENTS)
            # A container with a child stays; once emptied it goes.
            self.assertTrue(poll(lambda: s.Exists(pb.ExistsRequest(path="/t")).header.err == NONODE))
            self.assertEqual(s.Exists(pb.ExistsRequest(path="/c")).header.err, OK)
            s.Delete(pb.DeleteRequest(path="/c/kid"))
            self.assertTrue(poll(lambda: s.Exists(pb.ExistsRequest(path="/c")).header.err == NONODE))
            # A container never used is kept (ZooKeeper 3.8 default).
            self.assertEqual(s.Exists(pb.ExistsRequest(path="/never")).header.err, OK)
        finally:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)

    def test_ttl_needs_extended_types(self):
        root = tempfile.mkdtemp(prefix="rk-ttl-")
        server = Server(root)
        try:
            server.start()
            r = server.stub.Create(pb.CreateRequest(path="/t", mode=pb.PERSISTENT_WITH_TTL, ttl_ms=1000))
            self.assertEqual(r.header.err, -6)  # UNIMPLEMENTED
        finally:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)


class QuotaEnforcementTest(unittest.TestCase):
    def test_hard_quota_rejects_writes_when_enforced(self):
        root = tempfile.mkdtemp(prefix="rk-quota-")
        server = Server(root, "enforceQuota=true\n")
        try:
            server.start()
            s = server.stub
            s.Create(pb.CreateRequest(path="/app"))
            s.Create(pb.CreateRequest(path="/zookeeper/quota/app"))
            s.Create(pb.CreateRequest(path="/zookeeper/quota/app/zookeeper_stats", data=b"count=0,bytes=0"))
            s.Create(pb.CreateRequest(path="/zookeeper/quota/app/zookeeper_limits",
                                      data=b"count=-1,bytes=-1,countHardLimit=3,byteHardLimit=8"))
            self.assertEqual(s.Create(pb.CreateRequest(path="/app/a", data=b"1234")).header.err, OK)
            self.assertEqual(s.Create(pb.CreateRequest(path="/app/b")).header.err, OK)
            r = s.Create(pb.CreateRequest(path="/app/c"))
            self.assertEqual((r.header.err, r.header.err_name), (-125, "QUOTAEXCEEDED"))
            self.assertEqual(s.SetData(pb.SetDataRequest(path="/app/a", data=b"123456789")).header.err, -125)
            self.assertEqual(s.Exists(pb.ExistsRequest(path="/app/c")).header.err, NONODE)
            st = s.GetData(pb.GetDataRequest(path="/zookeeper/quota/app/zookeeper_stats"))
            self.assertEqual(st.data, b"count=3,bytes=4")
        finally:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)


class LimitsTest(unittest.TestCase):
    def test_sessions_per_client_ip_are_limited(self):
        root = tempfile.mkdtemp(prefix="rk-lim-")
        server = Server(root, "maxClientCnxns=2\n")
        grpc = __import__("grpc")
        try:
            server.start()
            a, b = Session(server.stub), Session(server.stub)
            with self.assertRaises(grpc.RpcError) as cm:
                Session(server.stub)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertEqual(a.Close(pb.CloseRequest()).header.err, OK)
            c = Session(server.stub)
            self.assertNotEqual(c.id, b.id)
        finally:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)

    def test_open_files_soft_limit_is_raised_to_the_hard_limit(self):
        # The state DB keeps its SST files open; a server started under
        # systemd's default soft limit (1024) takes the hard limit.
        import resource
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and hard <= 256:
            self.skipTest(f"hard limit on open files is {hard}")

        def low_soft_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

        root = tempfile.mkdtemp(prefix="rk-fds-")
        server = Server(root, preexec_fn=low_soft_limit)
        try:
            server.start()
            with open(f"/proc/{server.proc.pid}/limits") as f:
                line = next(l for l in f if l.startswith("Max open files"))
            soft, hard_seen = line.split()[3:5]
            self.assertEqual(soft, hard_seen, line)
            self.assertNotEqual(soft, "256", line)
            s = Session(server.stub)
            self.assertEqual(s.Create(pb.CreateRequest(path="/fds", data=b"x")).header.err, OK)
        finally:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)


class DurabilityTest(unittest.TestCase):
    def test_acknowledged_writes_survive_kill9(self):
        root = tempfile.mkdtemp(prefix="rk-kill-")
        try:
            server = Server(root)
            for round_ in range(3):
                server.start()
                acked = {}
                stop_after = 150 + 70 * round_
                for i in range(stop_after):
                    path = f"/k{round_}-{i}"
                    r = server.stub.Create(pb.CreateRequest(path=path, data=str(i).encode()))
                    self.assertEqual(r.header.err, OK)
                    acked[path] = (str(i).encode(), r.stat.czxid)
                    if i % 3 == 0:
                        s = server.stub.SetData(pb.SetDataRequest(path=path, data=b"set"))
                        acked[path] = (b"set", r.stat.czxid)
                server.stop(signal.SIGKILL)
                server.start()
                for path, (data, czxid) in acked.items():
                    g = server.stub.GetData(pb.GetDataRequest(path=path))
                    self.assertEqual((g.header.err, g.data, g.stat.czxid), (OK, data, czxid), path)
                    self.assertEqual(g.stat.version, 1 if data == b"set" else 0)
                server.stop(signal.SIGKILL)
            server.start()
            self.assertEqual(server.stop(), 0)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def test_kill9_during_concurrent_writes(self):
        """Writers keep writing while the server is killed: every write that
        was acknowledged before the kill is there after the restart."""
        import threading
        root = tempfile.mkdtemp(prefix="rk-kill2-")
        try:
            server = Server(root)
            for round_ in range(3):
                server.start()
                acked, lock, stop = {}, threading.Lock(), threading.Event()

                def writer(w):
                    for i in range(100000):
                        if stop.is_set():
                            return
                        path = f"/r{round_}-w{w}-{i}"
                        try:
                            r = server.stub.Create(pb.CreateRequest(path=path, data=path.encode()), timeout=5)
                        except Exception:
                            return  # the server is gone
                        if r.header.err == OK:
                            with lock:
                                acked[path] = r.stat.czxid

                threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
                for t in threads:
                    t.start()
                target = 100 + 150 * round_
                self.assertTrue(poll(lambda: len(acked) >= target, 60))
                server.stop(signal.SIGKILL)
                stop.set()
                for t in threads:
                    t.join(timeout=30)
                server.start()
                with lock:
                    snapshot = dict(acked)
                self.assertGreaterEqual(len(snapshot), target)
                for path, czxid in snapshot.items():
                    g = server.stub.GetData(pb.GetDataRequest(path=path))
                    self.assertEqual((g.header.err, g.data, g.stat.czxid), (OK, path.encode(), czxid), path)
                server.stop(signal.SIGKILL)
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--proto-dir", required=True)
    ARGS, rest = parser.parse_known_args()
    stubs = tempfile.mkdtemp(prefix="rk-stubs-")
    try:
        generate_stubs(ARGS.proto_dir, stubs)
        unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
    finally:
        shutil.rmtree(stubs, ignore_errors=True)
