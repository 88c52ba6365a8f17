#!/usr/bin/python3
"""Integration test of rkctl against real rockeeper processes on loopback:
one-shot mode (exit codes, exact zkCli-format output, --json), the extra
commands (tree, find, du, cp, mv, watch, 4lw/srvr/mntr), the interactive
shell through a pseudo-terminal (prompt, history/redo, persistent history,
tab completion, watch events, Ctrl-C, close/connect, a server restart), and
-- when Debian's zkCli.sh is installed -- rkctl's output for the zkCli
compatibility script equals zkCli.sh's own, both against rockeeper.

Usage: rkctl_test.py --rkctl build/tools/rkctl/rkctl --rockeeper build/server/rockeeper
"""
import argparse
import calendar
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..", "testlib"))
from rktest import free_port  # noqa: E402

ARGS = None
HERE = os.path.dirname(os.path.abspath(__file__))
ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
ZKCLI_SCRIPT = os.path.join(HERE, "..", "..", "compat", "zkcli_script.txt")


def poll(predicate, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


class Server:
    """A rockeeper process on free loopback ports, restartable on the same
    data dir and ports."""

    def __init__(self, root, tick_ms=200):
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.zk_port = free_port()
        self.grpc_port = free_port()
        self.cfg = os.path.join(root, "zoo.cfg")
        with open(self.cfg, "w") as f:
            f.write(f"tickTime={tick_ms}\ndataDir={root}/data\n"
                    f"clientPort={self.zk_port}\nclientPortAddress=127.0.0.1\n"
                    f"grpcPort={self.grpc_port}\ngrpcPortAddress=127.0.0.1\n"
                    "admin.enableServer=false\nextendedTypesEnabled=true\n"
                    "4lw.commands.whitelist=ruok,srvr,mntr,stat\n")
        self.proc = None

    def start(self):
        with open(os.path.join(self.root, "server.log"), "ab") as log:
            self.proc = subprocess.Popen([ARGS.rockeeper, "--config", self.cfg],
                                         stdout=log, stderr=log)
        if not poll(self._listening):
            raise RuntimeError("rockeeper did not start:\n" + self.log_tail())

    def _listening(self):
        for port in (self.zk_port, self.grpc_port):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
        return True

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def log_tail(self):
        with open(os.path.join(self.root, "server.log"), "rb") as f:
            return f.read()[-3000:].decode(errors="replace")

    @property
    def grpc(self):
        return f"127.0.0.1:{self.grpc_port}"


def java_date(ms):
    """java.util.Date#toString in UTC."""
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(ms // 1000))


def stat_text(s):
    """zkCli's StatPrinter output for a Stat as rkctl's --json prints it."""
    return "".join([
        f"cZxid = 0x{s['czxid']:x}\n",
        f"ctime = {java_date(s['ctime'])}\n",
        f"mZxid = 0x{s['mzxid']:x}\n",
        f"mtime = {java_date(s['mtime'])}\n",
        f"pZxid = 0x{s['pzxid']:x}\n",
        f"cversion = {s['cversion']}\n",
        f"dataVersion = {s['version']}\n",
        f"aclVersion = {s['aversion']}\n",
        f"ephemeralOwner = 0x{s['ephemeralOwner'] & 0xffffffffffffffff:x}\n",
        f"dataLength = {s['dataLength']}\n",
        f"numChildren = {s['numChildren']}\n",
    ])


class Pty:
    """rkctl's shell on a pseudo-terminal."""

    def __init__(self, argv, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child
            try:
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.buf = b""

    def send(self, data):
        os.write(self.fd, data.encode() if isinstance(data, str) else data)

    def expect(self, pattern, seconds=15):
        """Reads until `pattern` (a regex) matches the output after the last
        match; returns the match. Fails with the output seen on timeout."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.time() + seconds
        while True:
            m = rx.search(self.buf)
            if m:
                seen = self.buf[:m.end()]
                self.buf = self.buf[m.end():]
                return m, seen.decode(errors="replace")
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}; output:\n"
                                     + self.buf.decode(errors="replace"))
            r, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    raise AssertionError(f"EOF waiting for {pattern!r}; output:\n"
                                         + self.buf.decode(errors="replace"))
                self.buf += data

    def close(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        os.close(self.fd)


def either_order(a, b):
    """A regex for `a` and `b` (regexes) in either order: session events are
    printed by the client's event thread, racing the shell's prompt."""
    return f"(?:{a}[\\s\\S]*{b}|{b}[\\s\\S]*{a})"


def prompt_rx(host, state, n):
    """The shell's prompt; `state` None matches any state."""
    if state is None:
        return re.escape(f"[rk: {host}(") + r"[A-Z_]+" + re.escape(f") {n}] ")
    return re.escape(f"[rk: {host}({state}) {n}] ")


class RkctlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rk-rkctl-")
        cls.home = os.path.join(cls.root, "home")
        os.makedirs(cls.home)
        cls.server = Server(os.path.join(cls.root, "s1"))
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.root, ignore_errors=True)

    def env(self):
        env = dict(os.environ)
        env["TZ"] = "UTC"
        env["HOME"] = self.home
        env.pop("RKCTL_HISTORY", None)
        return env

    def rk(self, *args, server=None, stdin=None, timeout=30, extra=()):
        server = server or self.server
        argv = [ARGS.rkctl, "-s", server.grpc, "--zk", str(server.zk_port),
                *extra, *args]
        return subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              env=self.env(), timeout=timeout)

    def ok(self, *args, **kw):
        r = self.rk(*args, **kw)
        self.assertEqual(r.returncode, 0, f"rkctl {args}: {r.stderr}")
        return r.stdout

    def stat_json(self, path):
        return json.loads(self.ok("stat", "--json", path))["stat"]

    # ------------------------------------------------------------ one-shot

    def test_create_get_stat_exact(self):
        self.assertEqual(self.ok("create", "/t1", "hello"), "Created /t1\n")
        s = self.stat_json("/t1")
        self.assertEqual(s["dataLength"], 5)
        self.assertEqual(self.ok("stat", "/t1"), stat_text(s))
        self.assertEqual(self.ok("get", "/t1"), "hello\n")
        self.assertEqual(self.ok("get", "-s", "/t1"), "hello\n" + stat_text(s))
        out = self.ok("set", "-s", "/t1", "world!")
        s2 = self.stat_json("/t1")
        self.assertEqual(s2["version"], 1)
        self.assertEqual(out, stat_text(s2))
        # The date is Java's Date#toString of the node's mtime.
        self.assertRegex(out, r"mtime = [A-Z][a-z]{2} [A-Z][a-z]{2} \d\d "
                              r"\d\d:\d\d:\d\d UTC \d{4}\n")
        # Quoted data with spaces, as zkCli tokenises it (one-shot words
        # arrive already split by the caller's shell).
        self.ok("create", "/t1/sp", "a b  c")
        self.assertEqual(self.ok("get", "/t1/sp"), "a b  c\n")

    def test_ls_variants_exact(self):
        self.ok("create", "/t2", "")
        for c in ["b", "a", "c"]:
            self.ok("create", f"/t2/{c}", c)
        self.ok("create", "/t2/a/x", "")
        self.assertEqual(self.ok("ls", "/t2"), "[a, b, c]\n")
        s = self.stat_json("/t2")
        self.assertEqual(self.ok("ls", "-s", "/t2"), "[a, b, c]\n" + stat_text(s))
        self.assertEqual(self.ok("ls2", "/t2"), "[a, b, c]\n" + stat_text(s))
        self.assertEqual(self.ok("ls", "-R", "/t2"),
                         "/t2\n/t2/a\n/t2/a/x\n/t2/b\n/t2/c\n")
        self.assertEqual(self.ok("getAllChildrenNumber", "/t2"), "4\n")
        j = json.loads(self.ok("ls", "/t2", "--json"))
        self.assertEqual(j, {"path": "/t2", "children": ["a", "b", "c"]})
        j = json.loads(self.ok("--json", "ls", "-R", "/t2", extra=()))
        self.assertEqual(j["paths"], ["/t2", "/t2/a", "/t2/a/x", "/t2/b", "/t2/c"])

    def test_sequential_ephemeral_container_ttl(self):
        self.ok("create", "/t3", "")
        self.assertEqual(self.ok("create", "-s", "/t3/n-", "x"),
                         "Created /t3/n-0000000000\n")
        self.assertEqual(self.ok("create", "-s", "/t3/n-", "x"),
                         "Created /t3/n-0000000001\n")
        self.assertEqual(self.ok("create", "-c", "/t3/cont"), "Created /t3/cont\n")
        self.assertEqual(self.ok("create", "-t", "60000", "/t3/ttl", "t"),
                         "Created /t3/ttl\n")
        # An ephemeral lives as long as its (one-shot) session.
        self.assertEqual(self.ok("create", "-e", "/t3/eph", "e"),
                         "Created /t3/eph\n")
        self.assertTrue(poll(lambda: self.rk("stat", "/t3/eph").returncode == 1))
        # Flag conflicts are usage errors, with zkCli's messages.
        r = self.rk("create", "-c", "-s", "/t3/bad")
        self.assertEqual(r.returncode, 2)
        self.assertIn("-c cannot be combined with -s or -e. Containers cannot be "
                      "ephemeral or sequential.", r.stderr)
        self.assertIn("create [-s] [-e] [-c] [-t ttl] path [data] [acl]", r.stderr)
        r = self.rk("create", "-t", "abc", "/t3/bad")
        self.assertEqual(r.returncode, 2)
        self.assertIn("-t argument must be a long value", r.stderr)
        r = self.rk("create", "-e", "-t", "10", "/t3/bad")
        self.assertIn("TTLs cannot be used with Ephemeral znodes", r.stderr)

    def test_errors_exit_codes_and_names(self):
        self.ok("create", "/t4", "v")
        self.ok("create", "/t4/kid", "k")
        cases = [
            (("get", "/t4/none"), 1, "Node does not exist: /t4/none\nError: NONODE\n"),
            (("create", "/t4", "x"), 1, "Node already exists: /t4\nError: NODEEXISTS\n"),
            (("set", "-v", "9", "/t4", "x"), 1,
             "version No is not valid : /t4\nError: BADVERSION\n"),
            (("delete", "/t4"), 1, "Node not empty: /t4\nError: NOTEMPTY\n"),
            (("delete", "-v", "5", "/t4/kid"), 1,
             "version No is not valid : /t4/kid\nError: BADVERSION\n"),
            (("stat", "/t4/none"), 1, "Node does not exist: /t4/none\nError: NONODE\n"),
            (("create", "/t4/none/x"), 1,
             "Node does not exist: /t4/none/x\nError: NONODE\n"),
            (("removewatches", "/t4"), 1,
             "KeeperErrorCode = No such watcher for /t4\nError: NOWATCHER\n"),
            (("get", "t4"), 2, "Path must start with / character\nError: BADARGUMENTS\n"),
            (("ls", "/t4/"), 2,
             "Path must not end with / character\nError: BADARGUMENTS\n"),
        ]
        for args, code, err in cases:
            r = self.rk(*args)
            self.assertEqual((r.returncode, r.stderr, r.stdout), (code, err, ""), args)
        # Bad flags and missing arguments: the command's usage, exit 2.
        r = self.rk("ls", "-x", "/")
        self.assertEqual((r.returncode, r.stderr),
                         (2, "Unrecognized option: -x\nls [-s] [-w] [-R] path\n"))
        r = self.rk("set", "/t4")
        self.assertEqual((r.returncode, r.stderr), (2, "set [-s] [-v version] path data\n"))
        r = self.rk("delete", "-v")
        self.assertEqual(r.returncode, 2)
        self.assertIn("Missing argument for option: v", r.stderr)
        r = self.rk("frobnicate", "/")
        self.assertEqual(r.returncode, 2)
        self.assertIn("Command not found: Command not found frobnicate", r.stderr)
        self.assertIn("\tls [-s] [-w] [-R] path\n", r.stderr)
        # deleteall, and its old name rmr.
        self.ok("create", "/t4/kid/g", "")
        self.assertEqual(self.ok("deleteall", "/t4/kid"), "")
        r = self.rk("rmr", "/t4/kid")
        self.assertEqual((r.returncode, r.stderr),
                         (1, "Node does not exist: /t4/kid\nError: NONODE\n"))
        self.assertEqual(self.ok("rmr", "/t4"), "")

    def test_unreachable_server(self):
        dead = free_port()
        t0 = time.time()
        r = subprocess.run([ARGS.rkctl, "-s", f"127.0.0.1:{dead}", "--timeout", "500",
                            "ls", "/"], capture_output=True, text=True,
                           env=self.env(), timeout=30)
        self.assertEqual(r.returncode, 3)
        self.assertIn(f"Unable to connect to 127.0.0.1:{dead}", r.stderr)
        self.assertTrue(r.stderr.endswith("Error: CONNECTIONLOSS\n"), r.stderr)
        self.assertLess(time.time() - t0, 15)
        r = subprocess.run([ARGS.rkctl, "-s", f"127.0.0.1:{dead}", "--zk", str(dead),
                            "--timeout", "500", "srvr"], capture_output=True,
                           text=True, env=self.env(), timeout=30)
        self.assertEqual(r.returncode, 3)
        self.assertIn("Unable to run 'srvr'", r.stderr)

    def test_acls_and_auth_exact(self):
        self.ok("create", "/t5", "a", "world:anyone:r")
        self.assertEqual(self.ok("getAcl", "/t5"), "'world,'anyone\n: r\n")
        s = self.stat_json("/t5")
        self.assertEqual(self.ok("getAcl", "-s", "/t5"),
                         "'world,'anyone\n: r\n" + stat_text(s))
        r = self.rk("set", "/t5", "x")
        self.assertEqual((r.returncode, r.stderr),
                         (1, "Insufficient permission : /t5\nError: NOAUTH\n"))
        j = json.loads(self.ok("getAcl", "--json", "/t5"))
        self.assertEqual(j["acl"], [{"scheme": "world", "id": "anyone", "perms": "r"}])
        self.ok("create", "/t5b", "b")
        self.assertEqual(self.ok("setAcl", "/t5b", "world:anyone:cdrwa,ip:127.0.0.1:r"), "")
        self.assertEqual(self.ok("getAcl", "/t5b"),
                         "'world,'anyone\n: cdrwa\n'ip,'127.0.0.1\n: r\n")
        r = self.rk("setAcl", "/t5b", "bad:acl")
        self.assertEqual((r.returncode, r.stderr),
                         (1, "bad:acl does not have the form scheme:id:perm\n"
                             "Acl is not valid : null\nError: INVALIDACL\n"))
        # A session's auth lasts for the session: a script on stdin.
        script = ("addauth digest alice:secret\n"
                  "create /t5c \"d\" auth::cdrwa\n"
                  "getAcl /t5c\n"
                  "get /t5c\n"
                  "whoami\n")
        r = self.rk(stdin=script)
        self.assertEqual(r.returncode, 0, r.stderr)
        # The connect event is printed when it arrives (as zkCli.sh does),
        # which on a slow machine can be between two commands' outputs.
        out = r.stdout.replace("\nWATCHER::\n\nWatchedEvent state:SyncConnected "
                               "type:None path:null\n", "")
        self.assertIn("Created /t5c\n'digest,'alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=\n"
                      ": cdrwa\nd\nAuth scheme: User\ndigest: alice\nip: 127.0.0.1\n",
                      out)
        r = self.rk("get", "/t5c")
        self.assertEqual((r.returncode, r.stderr),
                         (1, "Insufficient permission : /t5c\nError: NOAUTH\n"))
        j = json.loads(self.ok("whoami", "--json"))
        self.assertEqual(j, {"authInfo": [{"scheme": "ip", "user": "127.0.0.1"}]})

    def test_setacl_recursive(self):
        self.ok("create", "/t6", "")
        self.ok("create", "/t6/a", "")
        self.ok("create", "/t6/a/b", "")
        self.assertEqual(self.ok("setAcl", "-R", "/t6", "world:anyone:rwa"), "")
        for p in ["/t6", "/t6/a", "/t6/a/b"]:
            self.assertEqual(self.ok("getAcl", p), "'world,'anyone\n: rwa\n")
        out = self.ok("setAcl", "-s", "-v", "1", "/t6", "world:anyone:cdrwa")
        self.assertEqual(out, stat_text(self.stat_json("/t6")))
        self.assertIn("aclVersion = 2\n", out)

    def test_quotas_exact(self):
        self.ok("create", "/t7", "12345")
        self.ok("create", "/t7/a", "1")
        out = self.ok("setquota", "-n", "1", "/t7")
        self.assertEqual(out, "[Warning]: the count quota you create is less than "
                              "the existing count:2\n")
        r = self.rk("listquota", "/t7")
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stderr, "absolute path is /zookeeper/quota/t7/zookeeper_limits\n")
        self.assertEqual(r.stdout,
                         "Output quota for /t7 count=1,bytes=-1=;byteHardLimit=-1;"
                         "countHardLimit=-1\nOutput stat for /t7 count=2,bytes=6\n")
        self.ok("setquota", "-B", "100", "/t7")
        j = json.loads(self.ok("listquota", "--json", "/t7"))
        self.assertEqual(j["limits"], {"count": 1, "bytes": -1,
                                       "countHardLimit": -1, "byteHardLimit": 100})
        self.assertEqual(j["stats"], {"count": 2, "bytes": 6})
        r = self.rk("setquota", "-n", "2", "/t7/a")
        self.assertEqual((r.returncode, r.stderr),
                         (1, "/t7/a has a parent /t7 which has a quota\nError: BADARGUMENTS\n"))
        self.ok("delquota", "-n", "/t7")
        self.assertIn("count=-1,bytes=-1=;byteHardLimit=100;countHardLimit=-1",
                      self.ok("listquota", "/t7"))
        self.assertEqual(self.ok("delquota", "/t7"), "")
        r = self.rk("listquota", "/t7")
        self.assertEqual((r.returncode, r.stderr),
                         (1, "absolute path is /zookeeper/quota/t7/zookeeper_limits\n"
                             "quota for /t7 does not exist.\nError: NONODE\n"))
        self.assertEqual(self.ok("delquota", "/t7"), "Quota does not exist for /t7\n")
        r = self.rk("setquota", "-n", "abc", "/t7")
        self.assertEqual(r.returncode, 2)
        self.assertIn("NumberFormatException happens when parsing the option value",
                      r.stderr)
        r = self.rk("setquota", "-n", "2", "/t7/none")
        self.assertEqual((r.returncode, r.stderr),
                         (1, "/t7/none does not exist.\nError: NONODE\n"))

    def test_misc_commands(self):
        self.assertEqual(self.ok("sync", "/"), "Sync is OK\n")
        self.assertEqual(self.ok("getEphemerals", "/"), "[]\n")
        self.assertRegex(self.ok("version"), r"^rockeeper CLI version: \d+\.\d+\.\d+\n$")
        self.assertEqual(self.ok("config"), "\n")
        self.assertEqual(json.loads(self.ok("config", "--json")), {"config": ""})
        self.assertEqual(self.ok("printwatches"), "printwatches is on\n")
        self.assertEqual(self.ok("get", "/zookeeper"), "\n")
        self.assertEqual(self.ok("ls", "/zookeeper"), "[config, quota]\n")
        # Ephemerals of a session, through a script.
        r = self.rk(stdin="create /t8 \"\"\ncreate -e /t8/e1 \"\"\ncreate -e -s /t8/e- \"\"\n"
                          "getEphemerals /t8\ngetEphemerals --json /t8\n")
        self.assertRegex(r.stdout, r"\[/t8/e(1|-0000000001), /t8/e(1|-0000000001)\]\n")
        self.assertIn('"paths":[', r.stdout)
        j = json.loads(self.ok("get", "--json", "/zookeeper/quota"))
        self.assertEqual((j["encoding"], j["data"]), ("utf8", ""))

    def test_json_binary_data(self):
        # Data that is not UTF-8 comes back base64-encoded.
        r = subprocess.run([ARGS.rkctl.encode(), b"-s", self.server.grpc.encode(),
                            b"create", b"/t9", b"\xff\xfe"], capture_output=True,
                           env=self.env(), timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(self.ok("get", "--json", "/t9"))
        self.assertEqual((j["path"], j["encoding"], j["data"]),
                         ("/t9", "base64", "//4="))
        self.assertEqual(j["stat"]["dataLength"], 2)

    # ------------------------------------------------------------ extras

    def make_tree(self, root):
        self.ok("create", root, "root!")
        self.ok("create", f"{root}/a", "1")
        self.ok("create", f"{root}/a/b", "22")
        self.ok("create", f"{root}/c", "333")
        self.ok("create", f"{root}/a/bb", "")

    def test_tree_find_du(self):
        self.make_tree("/x1")
        self.assertEqual(self.ok("tree", "/x1"),
                         "/x1 [5 B]\n  a [1 B]\n    b [2 B]\n    bb [0 B]\n  c [3 B]\n"
                         "5 nodes, 11 bytes\n")
        self.assertEqual(self.ok("tree", "-d", "1", "/x1"),
                         "/x1 [5 B]\n  a [1 B, 2 children]\n  c [3 B]\n"
                         "3 nodes, 9 bytes\n")
        t = json.loads(self.ok("tree", "--json", "/x1"))
        self.assertEqual(t["path"], "/x1")
        self.assertEqual([c["name"] for c in t["children"]], ["a", "c"])
        self.assertEqual([c["path"] for c in t["children"][0]["children"]],
                         ["/x1/a/b", "/x1/a/bb"])
        self.assertEqual(t["children"][0]["children"][0]["dataLength"], 2)
        self.assertEqual(self.ok("find", "/x1", "b*"), "/x1/a/b\n/x1/a/bb\n")
        self.assertEqual(self.ok("find", "/x1", "/x1/?"), "/x1/a\n/x1/c\n")
        self.assertEqual(self.ok("find", "/x1", "zz*"), "")
        j = json.loads(self.ok("find", "--json", "/x1", "*b"))
        self.assertEqual(j["matches"], ["/x1/a/b", "/x1/a/bb"])
        self.assertEqual(self.ok("du", "/x1"), "3\t3\t/x1/a\n3\t1\t/x1/c\n11\t5\t/x1\n")
        j = json.loads(self.ok("du", "--json", "/x1"))
        self.assertEqual((j["count"], j["bytes"]), (5, 11))
        self.assertEqual(j["children"], [{"path": "/x1/a", "count": 3, "bytes": 3},
                                         {"path": "/x1/c", "count": 1, "bytes": 3}])
        r = self.rk("tree", "/x1/none")
        self.assertEqual((r.returncode, r.stderr),
                         (1, "Node does not exist: /x1/none\nError: NONODE\n"))

    def test_cp_mv(self):
        self.make_tree("/x2")
        self.ok("setAcl", "/x2/c", "world:anyone:rwa")
        self.assertEqual(self.ok("cp", "/x2", "/x2copy"),
                         "Copied /x2 to /x2copy (5 nodes, 1 transaction)\n")
        self.assertEqual(self.ok("ls", "-R", "/x2copy"),
                         "/x2copy\n/x2copy/a\n/x2copy/a/b\n/x2copy/a/bb\n/x2copy/c\n")
        self.assertEqual(self.ok("get", "/x2copy/a/b"), "22\n")
        self.assertEqual(self.ok("getAcl", "/x2copy/c"), "'world,'anyone\n: rwa\n")
        self.assertEqual(self.ok("ls", "-R", "/x2"),
                         "/x2\n/x2/a\n/x2/a/b\n/x2/a/bb\n/x2/c\n")
        # Null data stays null, empty stays empty.
        self.ok("create", "/x4")
        self.ok("create", "/x4/e", "")
        self.ok("cp", "/x4", "/x4c")
        self.assertEqual(self.ok("get", "/x4c"), "null\n")
        self.assertEqual(self.ok("get", "/x4c/e"), "\n")
        # Atomic: a destination that exists fails the copy as a whole.
        self.ok("create", "/x2dst", "")
        self.ok("create", "/x2dst/c", "")
        r = self.rk("cp", "/x2", "/x2dst")
        self.assertEqual((r.returncode, r.stderr),
                         (1, "Node already exists: /x2dst\nError: NODEEXISTS\n"))
        j = json.loads(self.ok("mv", "--json", "/x2copy", "/x2dst/moved"))
        self.assertEqual(j, {"src": "/x2copy", "dst": "/x2dst/moved", "nodes": 5,
                             "transactions": 1, "atomic": True})
        self.assertEqual(self.rk("stat", "/x2copy").returncode, 1)
        self.assertEqual(self.ok("get", "/x2dst/moved"), "root!\n")
        self.assertEqual(self.ok("getAllChildrenNumber", "/x2dst/moved"), "4\n")
        r = self.rk("mv", "/x2", "/x2/inside")
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot copy /x2 into itself", r.stderr)
        # A subtree too large for one multi is copied in several.
        self.ok("create", "/x3", "")
        big = "y" * 200000
        script = "".join(f"create /x3/n{i} {big}\n" for i in range(4))
        self.assertEqual(self.rk(stdin=script).returncode, 0)
        r = self.rk("cp", "/x3", "/x3copy")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("(not atomic)", r.stderr)
        self.assertRegex(r.stdout, r"^Copied /x3 to /x3copy \(5 nodes, [2-9] transactions\)\n$")
        self.assertEqual(json.loads(self.ok("du", "--json", "/x3copy"))["bytes"], 800000)

    def test_watch_command_streams_events(self):
        self.ok("create", "/w1", "0")
        p = subprocess.Popen([ARGS.rkctl, "-s", self.server.grpc, "watch", "-R",
                              "-c", "3", "/w1"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=self.env())
        try:
            line = p.stderr.readline()
            self.assertEqual(line, "Watching /w1 and its subtree (Ctrl-C to stop)\n")
            self.ok("set", "/w1", "1")
            self.ok("create", "/w1/k", "")
            self.ok("delete", "/w1/k")
            out, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(out,
                         "WatchedEvent state:SyncConnected type:NodeDataChanged path:/w1\n"
                         "WatchedEvent state:SyncConnected type:NodeCreated path:/w1/k\n"
                         "WatchedEvent state:SyncConnected type:NodeDeleted path:/w1/k\n")
        # Until interrupted (SIGINT), as JSON lines.
        p = subprocess.Popen([ARGS.rkctl, "-s", self.server.grpc, "--json", "watch",
                              "/w1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=self.env())
        try:
            p.stderr.readline()
            self.ok("set", "/w1", "2")
            line = p.stdout.readline()
            ev = json.loads(line)
            self.assertEqual((ev["type"], ev["path"], ev["state"]),
                             ("NodeDataChanged", "/w1", "SyncConnected"))
            self.assertGreater(ev["zxid"], 0)
            p.send_signal(signal.SIGINT)
            p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0)

    def test_four_letter_words(self):
        self.assertEqual(self.ok("4lw", "ruok"), "imok\n")
        out = self.ok("srvr")
        self.assertIn("Mode: standalone\n", out)
        j = json.loads(self.ok("mntr", "--json"))
        self.assertEqual(j["zk_server_state"], "standalone")
        self.assertIsInstance(j["zk_znode_count"], int)
        j = json.loads(self.ok("srvr", "--json"))
        self.assertEqual(j["Mode"], "standalone")
        # Not in the whitelist: the server's answer is printed as is.
        self.assertIn("not executed because it is not in the whitelist",
                      self.ok("4lw", "envi"))
        r = self.rk("4lw", "toolong")
        self.assertEqual(r.returncode, 2)

    # ------------------------------------------------------------ shell

    def shell(self, *extra):
        argv = [ARGS.rkctl, "-s", self.server.grpc, "--zk", str(self.server.zk_port),
                *extra]
        return Pty(argv, self.env())

    def test_shell_prompt_history_completion_watches(self):
        self.ok("create", "/sh1", "v")
        self.ok("create", "/sh1/completion_target", "ct")
        host = self.server.grpc
        sh = self.shell()
        try:
            sh.expect(r"Connecting to " + re.escape(host))
            sh.expect(either_order(r"WatchedEvent state:SyncConnected type:None path:null",
                                   prompt_rx(host, "CONNECTED", 0)))
            sh.send("ls /sh1\r")
            _, seen = sh.expect(prompt_rx(host, "CONNECTED", 1))
            self.assertIn("[completion_target]\r\n", seen)
            # Tab completion of a znode path, then of a command.
            sh.send("get /sh1/compl\t")
            # libedit redraws the completed word (cursor moves in between).
            sh.expect(r"etion_target ")
            sh.send("\r")
            _, seen = sh.expect(prompt_rx(host, "CONNECTED", 2))
            self.assertIn("ct\r\n", seen)
            sh.send("getAllCh\t")
            sh.expect(r"ildrenNumber ")
            sh.send("/sh1\r")
            _, seen = sh.expect(prompt_rx(host, "CONNECTED", 3))
            self.assertIn("1\r\n", seen)
            # A one-shot watch fires once, printed as zkCli prints it.
            sh.send("get -w /sh1\r")
            sh.expect(prompt_rx(host, "CONNECTED", 4))
            self.ok("set", "/sh1", "changed")
            sh.expect(r"WATCHER::\r\n\r\nWatchedEvent state:SyncConnected "
                      r"type:NodeDataChanged path:/sh1\r\n")
            # history and redo (zkCli numbering).
            sh.send("history\r")
            _, seen = sh.expect(prompt_rx(host, "CONNECTED", 5))
            self.assertIn("0 - ls /sh1\r\n1 - get /sh1/completion_target \r\n"
                          "2 - getAllChildrenNumber /sh1\r\n3 - get -w /sh1\r\n"
                          "4 - history\r\n", seen)
            sh.send("redo 1\r")
            _, seen = sh.expect(prompt_rx(host, "CONNECTED", 6))
            self.assertIn("ct\r\n", seen)
            sh.send("redo 42\r")
            _, seen = sh.expect(prompt_rx(host, "CONNECTED", 7))
            self.assertIn("Command index out of range", seen)
            # `watch` streams until Ctrl-C, then the prompt returns.
            sh.send("watch /sh1\r")
            sh.expect(r"Watching /sh1 \(Ctrl-C to stop\)")
            self.ok("set", "/sh1", "again")
            sh.expect(r"WatchedEvent state:SyncConnected type:NodeDataChanged path:/sh1\r\n")
            sh.send("\x03")
            sh.expect(prompt_rx(host, "CONNECTED", 8))
            # Ctrl-C at the prompt drops the line.
            sh.send("ls /nothing-here")
            sh.expect(r"nothing-here")  # echoed by libedit: it is reading
            sh.send("\x03")
            sh.expect(prompt_rx(host, "CONNECTED", 8))
            # Ctrl-C typed right behind the text, while the shell is still
            # busy echoing it (the signal does not find it waiting in read).
            for _ in range(5):
                sh.send("ls /typed-ahead\x03")
                sh.expect(prompt_rx(host, "CONNECTED", 8))
            # close / connect.
            sh.send("close\r")
            sh.expect(prompt_rx(host, "CLOSED", 9))
            sh.send("ls /\r")
            _, seen = sh.expect(prompt_rx(host, "CLOSED", 10))
            self.assertIn("Not connected", seen)
            sh.send(f"connect {host}\r")
            sh.expect(either_order(r"WatchedEvent state:SyncConnected type:None path:null",
                                   prompt_rx(host, "CONNECTED", 11)))
            sh.send("bogus\r")
            _, seen = sh.expect(prompt_rx(host, "CONNECTED", 12))
            self.assertIn("Command not found: Command not found bogus", seen)
            sh.send("quit\r")
            sh.expect(r"quit\r\n")
            self.assertTrue(poll(lambda: os.waitpid(sh.pid, os.WNOHANG)[0] != 0, 10))
        finally:
            sh.close()
        # The line-editing history persists in ~/.rkctl_history.
        with open(os.path.join(self.home, ".rkctl_history")) as f:
            hist = f.read()
        self.assertIn("get\\040-w\\040/sh1", hist)
        sh = self.shell()
        try:
            sh.expect(prompt_rx(host, "CONNECTED", 0))
            sh.send("\x1b[A\x1b[A\r")  # up twice: "bogus" was before "quit"
            _, seen = sh.expect(prompt_rx(host, "CONNECTED", 1))
            self.assertIn("Command not found bogus", seen)
        finally:
            sh.close()

    def test_shell_survives_server_restart(self):
        # tickTime 2000: sessions may last 40 s, longer than the restarts.
        server = Server(os.path.join(self.root, "s-restart"), tick_ms=2000)
        server.start()
        try:
            sh = Pty([ARGS.rkctl, "-s", server.grpc, "--timeout", "3000"], self.env())
            try:
                sh.expect(prompt_rx(server.grpc, "CONNECTED", 0))
                sh.send("create /r \"1\"\r")
                sh.expect(prompt_rx(server.grpc, "CONNECTED", 1))
                sh.send("get -w /r\r")
                sh.expect(prompt_rx(server.grpc, "CONNECTED", 2))
                server.kill()
                sh.expect(r"WatchedEvent state:Disconnected type:None path:null", 30)
                server.start()
                sh.expect(r"WatchedEvent state:SyncConnected type:None path:null", 30)
                sh.send("get /r\r")
                _, seen = sh.expect(prompt_rx(server.grpc, "CONNECTED", 3), 30)
                self.assertIn("1\r\n", seen)
                # The watch set before the restart still fires.
                self.ok("set", "/r", "2", server=server)
                sh.expect(r"WatchedEvent state:SyncConnected type:NodeDataChanged path:/r")
                # A command while the server is down fails and is reported,
                # then works again once it is back.
                server.kill()
                sh.expect(r"state:Disconnected", 30)
                sh.send("get /r\r")
                _, seen = sh.expect(prompt_rx(server.grpc, None, 4), 60)
                self.assertRegex(seen, r"KeeperErrorCode = (ConnectionLoss|Request "
                                       r"timeout) for /r")
                server.start()
                sh.expect(r"state:SyncConnected", 30)
                sh.send("get /r\r")
                _, seen = sh.expect(prompt_rx(server.grpc, "CONNECTED", 5), 30)
                self.assertIn("2\r\n", seen)
            finally:
                sh.close()
        finally:
            server.stop()

    # ------------------------------------------------------------ zkCli

    def test_same_output_as_zkcli(self):
        """rkctl (over gRPC) and zkCli.sh (over the ZooKeeper protocol) run the
        zkCli compatibility script on two fresh rockeeper servers; the outputs
        are equal after normalising times, zxids and session ids."""
        if not (os.path.exists(ZKCLI) and shutil.which("java")):
            if os.environ.get("RK_REQUIRE_COMPAT") == "1":
                self.fail("zkCli.sh / java not installed")
            self.skipTest("zkCli.sh not installed")
        sys.path.insert(0, os.path.join(HERE, "..", "..", "compat"))
        import zkcli_compat_test as compat
        with open(ZKCLI_SCRIPT) as f:
            script = f.read()
        a = Server(os.path.join(self.root, "s-zkcli"))
        b = Server(os.path.join(self.root, "s-rkctl"))
        a.start()
        b.start()
        try:
            env = self.env()
            env["ZOO_LOG_DIR"] = self.root
            env["CLIENT_JVMFLAGS"] = "-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1"
            zk_out = subprocess.run([ZKCLI, "-server", f"127.0.0.1:{a.zk_port}"],
                                    input=script.encode(), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=env,
                                    timeout=120).stdout.decode(errors="replace")
            rk = subprocess.run([ARGS.rkctl, "-s", b.grpc], input=script,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=self.env(), timeout=120)
            self.assertEqual(rk.returncode, 0)
            zk_lines, zk_events = compat.normalise(zk_out)
            rk_lines, rk_events = compat.normalise(rk.stdout)
            rk_lines = [l for l in rk_lines if l != "Welcome to rockeeper!"]
            self.assertGreater(len(zk_lines), 40, zk_out)
            self.assertEqual(rk_lines, zk_lines)
            self.assertEqual(rk_events, zk_events)
        finally:
            a.stop()
            b.stop()


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--rkctl", required=True)
    ap.add_argument("--rockeeper", required=True)
    ARGS, rest = ap.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
