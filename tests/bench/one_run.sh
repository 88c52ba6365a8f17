#!/bin/bash
# Runs one rkbench workload against a fresh standalone rockeeper (setup
# phase, then DURATION s timed) and prints ops/s, p50, p999, max, the
# server's CPU per op, the znode cache's hit rate, the mean commit latency
# (submit to applied), log write + fdatasync and txns per log group during
# the timed run, and
# how long each snapshot paused the applies; for A/B
# runs of two binaries, alternated by hand. Unlike thread_cpu.sh it does
# not restart the server after the setup, and it passes extra rkbench
# arguments (e.g. --sessions 1 --outstanding 64).
#
# usage: tests/bench/one_run.sh SERVER_BINARY WORKLOAD KEYS [rkbench args...]
#   env: DURATION (s, default 6), BUILD (default build, for rkbench),
#        EXTRA_CONFIG (zoo.cfg lines), PRE_CREATE_S (s of creates before
#        the timed run, default 0)
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
# PRE_CREATE_S: that many seconds of creates (16 x 32) after the setup and
# before the timed run, so the tree outgrows the caches as it does in the
# side-by-side run, where the other workloads run after three rounds of
# creates.
if [ "${PRE_CREATE_S:-0}" != 0 ]; then
  "$RKBENCH" --server 127.0.0.1:"$PORT" --workload create --keys "$KEYS" \
    --duration "$PRE_CREATE_S" --progress off >/dev/null
fi
# The znode cache's hit and miss counters (admin /metrics), before and
# after the timed run.
cache_counters() {
  /usr/bin/python3 - "$ADMIN_PORT" <<'EOP'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics").read().decode()
vals = {l.split()[0]: l.split()[1] for l in text.splitlines() if l.startswith("rockeeper_")}
print(*(vals.get(f"rockeeper_{k}", "0") for k in (
    "znode_cache_hits_total", "znode_cache_misses_total",
    "commit_duration_seconds_sum", "commit_duration_seconds_count",
    "fsync_duration_seconds_sum", "fsync_duration_seconds_count",
    "commit_batch_size_sum")))
EOP
}
read -r HITS0 MISSES0 CSUM0 CCOUNT0 FSUM0 FCOUNT0 TXNS0 < <(cache_counters)
"$RKBENCH" --server 127.0.0.1:"$PORT" --workload "$WORKLOAD" --keys "$KEYS" \
  --no-setup --duration "${DURATION:-6}" --progress off --server-pid "$PID" "$@" |
  grep -o 'ops_per_s=[0-9]*\|p50_us=[0-9.]*\|p999_us=[0-9.]*\|max_us=[0-9.]*\|server_cpu_us_per_op=[0-9.]*' |
  tr '\n' ' '
read -r HITS1 MISSES1 CSUM1 CCOUNT1 FSUM1 FCOUNT1 TXNS1 < <(cache_counters)
awk -v h=$((HITS1 - HITS0)) -v m=$((MISSES1 - MISSES0)) \
  'BEGIN { printf "znode_cache_hit_pct=%.0f ", h + m ? 100 * h / (h + m) : 0 }'
# Mean commit latency (submit to applied, server side), mean log group
# write + fdatasync and txns per log group over the timed run.
awk -v cs="$CSUM0" -v cs1="$CSUM1" -v cc="$CCOUNT0" -v cc1="$CCOUNT1" \
  -v fs="$FSUM0" -v fs1="$FSUM1" -v fc="$FCOUNT0" -v fc1="$FCOUNT1" \
  -v t="$TXNS0" -v t1="$TXNS1" \
  'BEGIN { c = (cc1 > cc) ? (cs1 - cs) / (cc1 - cc) * 1e6 : 0
           f = (fc1 > fc) ? (fs1 - fs) / (fc1 - fc) * 1e6 : 0
           g = (fc1 > fc) ? (t1 - t) / (fc1 - fc) : 0
           printf "commit_mean_us=%.0f fsync_mean_us=%.0f txns_per_group=%.1f ", c, f, g }'
# How long each snapshot held the applies off (standalone, setup included).
echo "snapshot_pauses_ms=$(grep -o 'applies paused [0-9]*' "$DIR/log" |
  awk '{print $3}' | paste -sd, -)"
