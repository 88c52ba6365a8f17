#!/bin/bash
# Gets right after a server start with a cold page cache, for several
# readIoThreads values: loads KEYS znodes once into DATA_DIR (kept between
# runs; small caches so that most gets miss them), then per round and
# value drops the page cache (sync; echo 3 > /proc/sys/vm/drop_caches:
# root only, and it affects the whole machine), starts the server on that
# data dir and runs DURATION s of gets (16 x 32) on random keys.
#
# usage: tests/bench/cold_reads.sh DATA_DIR [rkbench args...]
#   env: SERVER (default build/server/rockeeper), BUILD (default build),
#        KEYS (default 2000000), DURATION (s, default 2), ROUNDS (default
#        "1 2"), THREADS (readIoThreads values, default "0 4 16"),
#        CACHE_MB (znode and block cache, default 8)
# Not part of the test suite; binds 127.0.0.1 on free ports; stops the
# server it starts. DATA_DIR must be on the disk under test (not tmpfs).
set -euo pipefail
D=${1:?data dir}
shift
SERVER=${SERVER:-build/server/rockeeper}
RKBENCH=${BUILD:-build}/tools/rkbench/rkbench
KEYS=${KEYS:-2000000}
free_port() {
  /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}
PID=
trap 'if [ -n "$PID" ]; then kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; fi; true' EXIT
run_server() {  # $1: readIoThreads
  PORT=$(free_port)
  cat >"$D/zoo.cfg" <<EOC
dataDir=$D/data
clientPort=$PORT
clientPortAddress=127.0.0.1
grpcPort=$(free_port)
grpcPortAddress=127.0.0.1
admin.serverPort=$(free_port)
admin.serverAddress=127.0.0.1
znodeCacheSizeMb=${CACHE_MB:-8}
blockCacheSizeMb=${CACHE_MB:-8}
readIoThreads=$1
EOC
  "$SERVER" --config "$D/zoo.cfg" >>"$D/log" 2>&1 &
  PID=$!
  for _ in $(seq 600); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "server did not start; see $D/log" >&2
  exit 1
}
stop_server() { kill "$PID"; wait "$PID" || true; PID=; }
if [ ! -d "$D/data" ]; then
  mkdir -p "$D"
  run_server 0
  "$RKBENCH" --server 127.0.0.1:"$PORT" --workload get --keys "$KEYS" \
    --setup-only --progress off | grep -o 'setup_ops_per_s=[0-9]*'
  stop_server
fi
echo "data dir: $(du -sh "$D/data" | cut -f1)"
for r in ${ROUNDS:-1 2}; do
  for t in ${THREADS:-0 4 16}; do
    sync
    echo 3 >/proc/sys/vm/drop_caches
    run_server "$t"
    echo -n "readIoThreads=$t round $r: "
    "$RKBENCH" --server 127.0.0.1:"$PORT" --workload get --keys "$KEYS" \
      --no-setup --duration "${DURATION:-2}" --progress off \
      --server-pid "$PID" "$@" |
      grep -o ' ops_per_s=[0-9]*\|p50_us=[0-9.]*\|p99_us=[0-9.]*\|server_cpu_us_per_op=[0-9.]*' |
      tr '\n' ' '
    echo
    stop_server
  done
done
