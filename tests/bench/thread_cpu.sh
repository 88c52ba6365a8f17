#!/bin/bash
# Runs one rkbench workload against a fresh standalone rockeeper and prints
# the rkbench figures, then the CPU each server thread used (rk-wire, rk-apply,
# rk-txnlog, rk-work, rocksdb:*) and vmstat, to tell which thread limits a
# figure. The tree is created first, then the server restarts (its memtables
# flushed), so reads start from SST files as after any restart.
#
# usage: tests/bench/thread_cpu.sh BUILD_DIR WORKLOAD [KEYS [rkbench args...]]
#   env: DURATION (s, default 8), EXTRA_CONFIG (zoo.cfg lines, e.g.
#        "rowCacheSizeMb=0"), SERVER (binary, default BUILD_DIR/server/rockeeper)
# Not part of the test suite; binds 127.0.0.1 on free ports; cleans up.
set -euo pipefail
BUILD=${1:?build dir}
WORKLOAD=${2:?workload}
KEYS=${3:-200000}
shift $(($# < 3 ? $# : 3))
SERVER=${SERVER:-$BUILD/server/rockeeper}
RKBENCH=$BUILD/tools/rkbench/rkbench
# shellcheck source=tests/bench/standalone_lib.sh
source "$(dirname "$0")/standalone_lib.sh"

start
"$RKBENCH" --server 127.0.0.1:"$PORT" --workload "$WORKLOAD" --keys "$KEYS" \
  --setup-only --progress off >/dev/null
stop
start

# CPU ticks per thread: "tid name ticks".
ticks() {
  for t in /proc/"$PID"/task/*; do
    echo "$(basename "$t") $(tr ' ' '_' <"$t/comm") $(awk '{print $14+$15}' "$t/stat")"
  done | sort
}
(
  sleep 2
  ticks >"$DIR/a"
  vmstat 1 5 >"$DIR/vmstat"
  ticks >"$DIR/b"
) &
SAMPLER=$!
"$RKBENCH" --server 127.0.0.1:"$PORT" --workload "$WORKLOAD" --keys "$KEYS" \
  --no-setup --duration "${DURATION:-8}" --progress off --server-pid "$PID" "$@"
wait "$SAMPLER"
echo "vmstat (last 4 s):"
sed -n 2p "$DIR/vmstat"
tail -4 "$DIR/vmstat"
echo "server threads over 5 s (cores):"
TICK=$(getconf CLK_TCK)
join "$DIR/a" "$DIR/b" | awk -v hz="$TICK" \
  '{ c = ($5 - $3) / 5 / hz; if (c >= 0.01) printf "  %-16s %.2f\n", $2, c }'
