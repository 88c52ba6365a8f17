#!/bin/bash
# Runs one rkbench workload against a fresh standalone rockeeper and prints,
# from the server's /metrics before and after the timed run, where a write's
# time goes: mean request latency at the server, mean submit-to-applied
# (commit) latency, group commits (fsyncs) per second with their mean time
# and batch size, apply batches and their mean size; then the snapshot lines.
#
# usage: tests/bench/write_path.sh BUILD_DIR WORKLOAD [KEYS [rkbench args...]]
#   env: DURATION (s, default 6), SERVER (binary, default
#        BUILD_DIR/server/rockeeper), EXTRA_CONFIG (zoo.cfg lines)
# Not part of the test suite; binds 127.0.0.1 on free ports; cleans up.
set -euo pipefail
BUILD=${1:?build dir}
WORKLOAD=${2:?workload}
KEYS=${3:-100000}
shift $(($# < 3 ? $# : 3))
SERVER=${SERVER:-$BUILD/server/rockeeper}
RKBENCH=$BUILD/tools/rkbench/rkbench
# shellcheck source=tests/bench/standalone_lib.sh
source "$(dirname "$0")/standalone_lib.sh"
ADMIN=$(sed -n 's/^admin.serverPort=//p' "$DIR/zoo.cfg")

start
"$RKBENCH" --server 127.0.0.1:"$PORT" --workload "$WORKLOAD" --keys "$KEYS" \
  --setup-only --progress off >/dev/null
curl -s "127.0.0.1:$ADMIN/metrics" >"$DIR/m0"
"$RKBENCH" --server 127.0.0.1:"$PORT" --workload "$WORKLOAD" --keys "$KEYS" \
  --no-setup --duration "${DURATION:-6}" --progress off --server-pid "$PID" "$@"
curl -s "127.0.0.1:$ADMIN/metrics" >"$DIR/m1"

/usr/bin/python3 - "$DIR/m0" "$DIR/m1" "${DURATION:-6}" <<'EOF'
import sys

def load(path):
    out = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out

a, b, secs = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
d = lambda k: b.get(k, 0.0) - a.get(k, 0.0)
req_n = sum(d(k) for k in b if k.startswith("rockeeper_request_duration_seconds_count"))
req_s = sum(d(k) for k in b if k.startswith("rockeeper_request_duration_seconds_sum"))
def mean_ms(s, n):
    return f"{1000 * s / n:.2f} ms" if n else "-"
print(f"server latency, mean over {req_n:.0f} requests: {mean_ms(req_s, req_n)}")
cn = d("rockeeper_commit_duration_seconds_count")
print(f"submit to applied (commit), mean: "
      f"{mean_ms(d('rockeeper_commit_duration_seconds_sum'), cn)}")
fn = d("rockeeper_fsync_duration_seconds_count")
if fn:
    print(f"group commits: {fn / secs:.0f}/s, mean "
          f"{1e6 * d('rockeeper_fsync_duration_seconds_sum') / fn:.0f} us, "
          f"mean batch {d('rockeeper_commit_batch_size_sum') / fn:.1f} txns")
ab = d("rockeeper_apply_batches_total")
if ab:
    print(f"apply batches: {ab / secs:.0f}/s, mean "
          f"{d('rockeeper_txns_applied_total') / ab:.1f} txns")
EOF
grep -h "INFO snapshot" "$DIR/log" || true
