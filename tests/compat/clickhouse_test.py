#!/usr/bin/python3
"""Compatibility test: ClickHouse (Debian's clickhouse-server 18.16) uses a
real rockeeper process as its ZooKeeper: two replicas of a
ReplicatedMergeTree table, inserts on one replica are visible on the other,
and a replica that was stopped catches up after its restart.

Usage: clickhouse_test.py --bin build/server/rockeeper
Skips (exit 77, ctest's SKIP_RETURN_CODE) when clickhouse-server is not installed,
unless RK_REQUIRE_COMPAT=1.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testlib"))
from rktest import free_port  # noqa: E402

SERVER = "/usr/sbin/clickhouse-server"
CLIENT = "/usr/bin/clickhouse-client"


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def poll(predicate, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def stop(proc):
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Replica:
    def __init__(self, root, name, zk_port):
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.tcp = free_port()
        self.config = os.path.join(self.dir, "config.xml")
        with open(self.config, "w") as f:
            f.write(f"""<yandex>
  <logger><level>information</level><log>{self.dir}/server.log</log>
    <errorlog>{self.dir}/server.err.log</errorlog></logger>
  <http_port>{free_port()}</http_port>
  <tcp_port>{self.tcp}</tcp_port>
  <interserver_http_port>{free_port()}</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <listen_host>127.0.0.1</listen_host>
  <path>{self.dir}/data/</path>
  <tmp_path>{self.dir}/tmp/</tmp_path>
  <user_files_path>{self.dir}/user_files/</user_files_path>
  <format_schema_path>{self.dir}/format_schemas/</format_schema_path>
  <users_config>/etc/clickhouse-server/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>536870912</mark_cache_size>
  <uncompressed_cache_size>536870912</uncompressed_cache_size>
  <zookeeper>
    <node><host>127.0.0.1</host><port>{zk_port}</port></node>
    <session_timeout_ms>10000</session_timeout_ms>
  </zookeeper>
  <macros><shard>01</shard><replica>{name}</replica></macros>
</yandex>
""")
        self.proc = None

    def start(self):
        out = open(os.path.join(self.dir, "stdout.log"), "ab")
        self.proc = subprocess.Popen([SERVER, f"--config-file={self.config}"],
                                     stdout=out, stderr=out)
        out.close()
        return poll(lambda: self.query("SELECT 1", check=False) == "1")

    def query(self, sql, check=True):
        r = subprocess.run([CLIENT, "--host", "127.0.0.1", "--port", str(self.tcp),
                            "-q", sql], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"{sql}: {r.stderr.decode()}")
        return r.stdout.decode().strip()

    def count(self):
        return self.query("SELECT count() FROM t", check=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    if not (os.path.exists(SERVER) and os.path.exists(CLIENT)):
        if os.environ.get("RK_REQUIRE_COMPAT") == "1":
            print("clickhouse-server / clickhouse-client not installed")
            return 1
        print("SKIPPED: clickhouse-server not installed (packages "
              "clickhouse-server, clickhouse-client)")
        return 77
    root = tempfile.mkdtemp(prefix="rk-clickhouse-")
    rk = None
    replicas = []
    try:
        zk_port = free_port()
        with open(f"{root}/zoo.cfg", "w") as f:
            f.write(f"tickTime=500\ndataDir={root}/rk\nclientPort={zk_port}\n"
                    f"clientPortAddress=127.0.0.1\ngrpcPort={free_port()}\n"
                    "grpcPortAddress=127.0.0.1\nadmin.enableServer=false\n")
        log = open(f"{root}/rockeeper.log", "ab")
        rk = subprocess.Popen([args.bin, "--config", f"{root}/zoo.cfg"],
                              stdout=log, stderr=log)
        log.close()
        assert poll(lambda: port_open(zk_port), 20), "rockeeper did not start"
        replicas = [Replica(root, "r1", zk_port), Replica(root, "r2", zk_port)]
        for r in replicas:
            assert r.start(), f"ClickHouse {r.dir} did not start"
        r1, r2 = replicas
        for r in replicas:
            r.query("CREATE TABLE t (d Date, k UInt64, v String) ENGINE = "
                    "ReplicatedMergeTree('/clickhouse/tables/{shard}/t', "
                    "'{replica}', d, k, 8192)")
        r1.query("INSERT INTO t VALUES ('2026-11-22', 1, 'a'), ('2026-11-22', 2, 'b')")
        assert poll(lambda: r2.count() == "2"), f"r2 sees {r2.count()} rows"
        r2.query("INSERT INTO t VALUES ('2026-11-22', 3, 'c')")
        assert poll(lambda: r1.count() == "3"), f"r1 sees {r1.count()} rows"
        # The replica metadata lives in rockeeper.
        names = r1.query("SELECT name FROM system.zookeeper WHERE "
                         "path = '/clickhouse/tables/01/t/replicas' ORDER BY name")
        assert names.split() == ["r1", "r2"], names
        # r2 stops; writes go on on r1; r2 catches up after its restart.
        stop(r2.proc)
        for i in range(4, 9):
            r1.query(f"INSERT INTO t VALUES ('2026-11-22', {i}, 'x')")
        assert r2.start(), "r2 did not restart"
        assert poll(lambda: r2.count() == "8"), f"r2 sees {r2.count()} rows"
        assert r2.query("SELECT sum(k) FROM t") == str(sum(range(1, 9)))
        print("ClickHouse: 2 replicas over rockeeper, inserts replicated, "
              "restart caught up")
        print("1 passed, 0 failed")
        return 0
    except (AssertionError, RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"FAILED: {e}")
        for name in ("rockeeper.log", "r1/server.err.log", "r2/server.err.log"):
            p = os.path.join(root, name)
            if os.path.exists(p):
                print(f"--- {name} ---\n" + open(p, errors="replace").read()[-4000:])
        return 1
    finally:
        for r in replicas:
            stop(r.proc)
        stop(rk)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
