#!/bin/bash
# Loads KEYS znodes into a fresh standalone rockeeper, runs OPS operations of
# WORKLOAD, and prints the throughput and what RocksDB's compactions did
# over the whole run (load included), summed from the state DB's LOG: the
# memtable entries and bytes flushed ("flush_started" events), and the
# compactions' count, output MiB, time and input records
# ("compaction_finished"). These are steadier figures than ops/s for
# comparing write paths and RocksDB shapes: they barely depend on the
# machine's speed.
#
# usage: tests/bench/compaction_bytes.sh SERVER_BINARY WORKLOAD KEYS OPS
#   env: BUILD (default build, for rkbench), EXTRA_CONFIG (zoo.cfg lines)
# Not part of the test suite; binds 127.0.0.1 on free ports; cleans up.
set -euo pipefail
SERVER=${1:?server binary}
WORKLOAD=${2:?workload}
KEYS=${3:?keys}
OPS=${4:?ops}
RKBENCH=${BUILD:-build}/tools/rkbench/rkbench
# shellcheck source=tests/bench/standalone_lib.sh
source "$(dirname "$0")/standalone_lib.sh"
start
"$RKBENCH" --server 127.0.0.1:"$PORT" --workload get --keys "$KEYS" \
  --setup-only --progress off | grep -o 'setup_ops_per_s=[0-9]*' | tr '\n' ' '
"$RKBENCH" --server 127.0.0.1:"$PORT" --workload "$WORKLOAD" --keys "$KEYS" \
  --no-setup --ops "$OPS" --progress off --server-pid "$PID" |
  grep -o ' ops_per_s=[0-9]*\|server_cpu_us_per_op=[0-9.]*' | tr '\n' ' '
stop
find "$DIR/data" -name LOG -path '*state*' -print0 | xargs -0 cat |
  /usr/bin/python3 -c '
import json, sys
n = out = micros = records = flushed = flushed_bytes = 0
for line in sys.stdin:
    if "\"flush_started\"" in line:
        e = json.loads(line[line.index("{"):])
        flushed += e["num_entries"]
        flushed_bytes += e["total_data_size"]
    if "\"compaction_finished\"" not in line:
        continue
    e = json.loads(line[line.index("{"):])
    n += 1
    out += e["total_output_size"]
    micros += e["compaction_time_micros"]
    records += e.get("num_input_records", 0)
print(f"flushed_entries={flushed} flushed_mib={flushed_bytes / 2**20:.0f} "
      f"compactions={n} output_mib={out / 2**20:.0f} "
      f"compaction_s={micros / 1e6:.1f} input_records={records}")'
