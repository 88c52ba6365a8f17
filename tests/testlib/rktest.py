"""Shared helpers of rockeeper's Python tests.

Ports: a port picked by binding port 0 comes from the kernel's ephemeral
range, where every outgoing connection also takes its source port, and
nothing stops a parallel test from picking the same one before our server
binds it. Ports here come from below that range (15000-32000) and each is
claimed for the life of the test process by an flock on a file under
/tmp/rockeeper-test-ports, so two test processes never hand out the same
port; the lock goes away with the process, even after kill -9.
"""
import fcntl
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time

_PORT_LOW, _PORT_HIGH = 15000, 32000
_claimed = {}  # port -> open lock file, held until the process exits
_rng = random.Random(os.getpid() ^ time.time_ns())


def _bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_ports(n):
    """`n` distinct ports on 127.0.0.1, free now and claimed for this process."""
    lock_dir = os.path.join(tempfile.gettempdir(), "rockeeper-test-ports")
    os.makedirs(lock_dir, exist_ok=True)
    out = []
    for _ in range(20000):
        if len(out) == n:
            return out
        port = _rng.randrange(_PORT_LOW, _PORT_HIGH)
        if port in _claimed:
            continue
        f = open(os.path.join(lock_dir, str(port)), "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        if not _bindable(port):
            f.close()  # releases the lock
            continue
        _claimed[port] = f
        out.append(port)
    raise RuntimeError(f"could not find {n} free ports")


def free_port():
    return free_ports(1)[0]


def poll(predicate, seconds=15, interval=0.05):
    """Calls `predicate` until it returns something true or `seconds` pass;
    returns its last result."""
    deadline = time.time() + seconds
    while True:
        result = predicate()
        if result or time.time() >= deadline:
            return result
        time.sleep(interval)


def four_letter_word(port, word, timeout=10):
    """Sends a four-letter word to 127.0.0.1:`port` and returns the whole
    answer (the server closes the connection after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word.encode())
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out.decode()
            out += chunk


class StandaloneServer:
    """A standalone rockeeper process on 127.0.0.1 with its own temporary
    data dir and free client and gRPC ports. `extra_config` lines are
    appended to its zoo.cfg. The constructor returns once the client port
    accepts connections (AssertionError, with the process stopped, if it
    does not within 15 s). Output goes to ROOT/server.log."""

    def __init__(self, binary, prefix="rk-test-", extra_config=""):
        self.binary = binary
        self.root = tempfile.mkdtemp(prefix=prefix)
        self.port = free_port()
        self.grpc_port = free_port()
        self.config = os.path.join(self.root, "zoo.cfg")
        with open(self.config, "w") as f:
            f.write(f"dataDir={self.root}/data\n"
                    f"clientPort={self.port}\nclientPortAddress=127.0.0.1\n"
                    f"grpcPort={self.grpc_port}\ngrpcPortAddress=127.0.0.1\n"
                    + extra_config)
        self.log = open(os.path.join(self.root, "server.log"), "ab")
        self.proc = None
        self.start()

    def start(self):
        """Starts the process (again, on the same data dir and ports)."""
        self.proc = subprocess.Popen([self.binary, "--config", self.config],
                                     stdout=self.log, stderr=self.log)
        if not poll(self.listening):
            self.stop()
            raise AssertionError("server did not listen")

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def kill(self):
        """kill -9, and reaps the process."""
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        """SIGTERM (SIGKILL after 20 s), removes the data dir; returns the
        exit code (0 for a clean shutdown)."""
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)
        return rc


def check_pipelined_read_sees_earlier_writes_only(tc, zk, root, rounds=40):
    """A write sent after a read may be proposed before the read ran, but it
    is applied only after: the read sees the write before it, not the one
    after it, and its watch fires for the one after it. `tc`: the
    unittest.TestCase; `zk`: a started KazooClient."""
    zk.ensure_path(root)
    for n in range(rounds):
        path = f"{root}/n{n}"
        zk.create(path, b"0")
        fired = threading.Event()
        first = zk.set_async(path, b"1")
        read = zk.get_async(path, watch=lambda e, f=fired: f.set())
        later = zk.set_async(path, b"2")
        children = zk.get_children_async(root)
        tc.assertEqual(read.get(timeout=10)[0], b"1", n)
        tc.assertEqual(first.get(timeout=10).version, 1)
        tc.assertEqual(later.get(timeout=10).version, 2)
        tc.assertEqual(len(children.get(timeout=10)), n + 1)
        tc.assertTrue(fired.wait(10), f"watch of round {n} did not fire")


def check_pipelined_reads_miss_later_related_writes(tc, zk, prefix, rounds=20):
    """Writes sent after a read are applied before it ran only when the read
    cannot observe them: a child's create changes its parent's stat and child
    list, a sequential create may make the name read, a create under a node
    changes its stat."""
    for n in range(rounds):
        root = f"{prefix}{n}"
        zk.create(root, b"")
        zk.create(f"{root}/p", b"")
        # A write first: the reads below wait for it, the writes after them
        # may pass them.
        first = zk.set_async(root, b"x")
        seen = {
            "children": zk.get_children_async(f"{root}/p"),
            "stat": zk.exists_async(f"{root}/p"),
            "seq": zk.exists_async(f"{root}/p/s0000000001"),
            "count": zk.get_async(root),
        }
        writes = [zk.create_async(f"{root}/p/kid", b""),
                  zk.create_async(f"{root}/p/s", b"", sequence=True),
                  zk.create_async(f"{root}/other", b"")]
        tc.assertEqual(seen["children"].get(timeout=10), [], n)
        tc.assertEqual(seen["stat"].get(timeout=10).numChildren, 0, n)
        tc.assertIsNone(seen["seq"].get(timeout=10), n)
        tc.assertEqual(seen["count"].get(timeout=10)[1].numChildren, 1, n)
        tc.assertEqual(writes[1].get(timeout=10), f"{root}/p/s0000000001")
        first.get(timeout=10)
        for w in writes:
            w.get(timeout=10)
        tc.assertEqual(zk.get(root)[1].numChildren, 2)
