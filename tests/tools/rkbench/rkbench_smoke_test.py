#!/usr/bin/python3
"""Smoke test of rkbench against a real rockeeper process: every workload
briefly over the ZooKeeper wire protocol and over gRPC, the key=value and
JSON outputs, the op-count limit, setup-only, and flag errors. No timing
assertions.

Usage: rkbench_smoke_test.py --rkbench build/tools/rkbench/rkbench \
           --bin build/server/rockeeper
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..", "testlib"))
from rktest import free_port  # noqa: E402

ARGS = None
WORKLOADS = ["create", "set", "get", "exists", "children", "delete", "multi",
             "mix", "clickhouse"]


def poll(predicate, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


class RkbenchSmokeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rk-rkbench-")
        cls.zk_port, cls.grpc_port = free_port(), free_port()
        cfg = os.path.join(cls.root, "zoo.cfg")
        with open(cfg, "w") as f:
            # tickTime 200: sessions negotiate 4 s, so rkbench's pings run.
            f.write(f"tickTime=200\ndataDir={cls.root}/data\n"
                    f"clientPort={cls.zk_port}\nclientPortAddress=127.0.0.1\n"
                    f"grpcPort={cls.grpc_port}\ngrpcPortAddress=127.0.0.1\n"
                    f"admin.serverPort={free_port()}\nadmin.serverAddress=127.0.0.1\n")
        cls.log = open(os.path.join(cls.root, "server.log"), "ab")
        cls.proc = subprocess.Popen([ARGS.bin, "--config", cfg],
                                    stdout=cls.log, stderr=cls.log)
        for port in (cls.zk_port, cls.grpc_port):
            assert poll(lambda: cls._listening(port)), "server did not listen"

    @staticmethod
    def _listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        try:
            cls.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
            cls.proc.wait()
        cls.log.close()
        shutil.rmtree(cls.root, ignore_errors=True)

    def server(self, proto):
        port = self.zk_port if proto == "zk" else self.grpc_port
        return f"127.0.0.1:{port}"

    def rkbench(self, *args, expect_rc=0):
        p = subprocess.run([ARGS.rkbench, *args], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(p.returncode, expect_rc,
                         f"rkbench {args}: rc {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def run_json(self, proto, *args):
        p = self.rkbench("--proto", proto, "--server", self.server(proto),
                         "--json", "--progress", "off",
                         "--server-pid", str(self.proc.pid), *args)
        lines = p.stdout.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stdout)
        return json.loads(lines[0])

    def check_workloads(self, proto):
        for workload in WORKLOADS:
            with self.subTest(proto=proto, workload=workload):
                r = self.run_json(proto, "--workload", workload,
                                  "--duration", "1", "--keys", "300",
                                  "--fanout", "30", "--sessions", "4",
                                  "--outstanding", "8", "--wide-children", "50",
                                  "--root", f"/smoke-{proto}-{workload}")
                self.assertEqual(r["workload"], workload)
                self.assertGreater(r["ops"], 0)
                self.assertEqual(r["errors"], 0, r["errors_by_code"])
                self.assertEqual(r["errors_by_code"], {})
                self.assertGreater(r["p50_us"], 0)
                self.assertGreaterEqual(r["max_us"], r["p99_us"])
                self.assertGreaterEqual(r["p99_us"], r["p50_us"])
                self.assertGreaterEqual(r["client_cpu_s"], 0)
                self.assertGreaterEqual(r["server_cpu_s"], 0)
                self.assertGreater(r["server_rss_kb"], 0)
                if workload == "delete":
                    self.assertLessEqual(r["ops"], 300)

    def test_workloads_zk(self):
        self.check_workloads("zk")

    def test_workloads_grpc(self):
        self.check_workloads("grpc")

    def test_op_limit_and_key_value_line(self):
        for proto in ("zk", "grpc"):
            p = self.rkbench("--proto", proto, "--server", self.server(proto),
                             "--workload", "mix", "--ops", "500", "--keys", "100",
                             "--root", f"/smoke-kv-{proto}", "--progress", "off")
            line = p.stdout.strip()
            self.assertTrue(line.startswith("rkbench "), line)
            kv = dict(item.split("=", 1) for item in line.split()[1:])
            self.assertEqual(kv["proto"], proto)
            self.assertEqual(kv["ops"], "500")
            self.assertEqual(kv["errors"], "0")
            for key in ("ops_per_s", "p50_us", "p90_us", "p99_us", "p999_us",
                        "max_us", "client_cpu_s", "client_cpu_us_per_op"):
                self.assertIn(key, kv)
                float(kv[key])

    def test_setup_only_then_no_setup(self):
        r = self.run_json("zk", "--setup-only", "--keys", "1000",
                          "--root", "/smoke-setup")
        self.assertEqual(r["workload"], "setup")
        self.assertGreaterEqual(r["setup_ops"], 1000)
        # The tree is there: reads of every key succeed without a setup.
        r = self.run_json("grpc", "--no-setup", "--keys", "1000",
                          "--root", "/smoke-setup", "--workload", "get",
                          "--ops", "2000")
        self.assertEqual((r["ops"], r["errors"]), (2000, 0))
        # A tree that does not exist: NONODE is counted, not fatal.
        r = self.run_json("zk", "--no-setup", "--keys", "10",
                          "--root", "/smoke-missing", "--workload", "get",
                          "--ops", "50")
        self.assertEqual(r["errors_by_code"], {"NONODE": 50})

    def test_bad_flags(self):
        for args in (["--bogus"], ["--sessions", "0"], ["--workload", "nope"],
                     ["--proto", "http"], ["--duration", "x"], ["--sessions"],
                     ["--read-pct", "101"], ["--root", "relative"],
                     ["--server", "nohostport"], ["extra"],
                     ["--json=1"]):
            with self.subTest(args=args):
                p = self.rkbench(*args, expect_rc=2)
                self.assertIn("usage: rkbench", p.stderr)
                self.assertEqual(p.stdout, "")
        p = self.rkbench("--help")
        self.assertIn("usage: rkbench", p.stdout)

    def test_unreachable_server(self):
        p = self.rkbench("--server", f"127.0.0.1:{free_port()}", "--ops", "1",
                         expect_rc=1)
        self.assertIn("connect", p.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rkbench", required=True)
    parser.add_argument("--bin", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
