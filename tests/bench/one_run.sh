#!/bin/bash
# Runs one rkbench workload against a fresh standalone rockeeper (setup
# phase, then DURATION s timed) and prints ops/s, p50, p999, max, the
# server's CPU per op and how long each snapshot paused the applies; for A/B
# runs of two binaries, alternated by hand. Unlike thread_cpu.sh it does
# not restart the server after the setup, and it passes extra rkbench
# arguments (e.g. --sessions 1 --outstanding 64).
#
# usage: tests/bench/one_run.sh SERVER_BINARY WORKLOAD KEYS [rkbench args...]
#   env: DURATION (s, default 6), BUILD (default build, for rkbench),
#        EXTRA_CONFIG (zoo.cfg lines)
# Not part of the test suite; binds 127.0.0.1 on free ports; cleans up.
set -euo pipefail
SERVER=${1:?server binary}
WORKLOAD=${2:?workload}
KEYS=${3:?keys}
shift 3
RKBENCH=${BUILD:-build}/tools/rkbench/rkbench
# shellcheck source=tests/bench/standalone_lib.sh
source "$(dirname "$0")/standalone_lib.sh"
start
"$RKBENCH" --server 127.0.0.1:"$PORT" --workload "$WORKLOAD" --keys "$KEYS" \
  --setup-only --progress off >/dev/null
"$RKBENCH" --server 127.0.0.1:"$PORT" --workload "$WORKLOAD" --keys "$KEYS" \
  --no-setup --duration "${DURATION:-6}" --progress off --server-pid "$PID" "$@" |
  grep -o 'ops_per_s=[0-9]*\|p50_us=[0-9.]*\|p999_us=[0-9.]*\|max_us=[0-9.]*\|server_cpu_us_per_op=[0-9.]*' |
  tr '\n' ' '
# How long each snapshot held the applies off (standalone, setup included).
echo "snapshot_pauses_ms=$(grep -o 'applies paused [0-9]*' "$DIR/log" |
  awk '{print $3}' | paste -sd, -)"
