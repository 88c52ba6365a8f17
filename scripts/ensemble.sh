#!/usr/bin/env bash
# A local N-server rockeeper ensemble on 127.0.0.1, for trying replication
# on one machine.
#   scripts/ensemble.sh start [N]     write configs (first time) and start N
#                                     servers (default 3) in $ENSEMBLE_DIR
#   scripts/ensemble.sh status        role and zxid of every server
#   scripts/ensemble.sh stop [i]      SIGTERM server i (default: all)
#   scripts/ensemble.sh kill i        SIGKILL server i
#   scripts/ensemble.sh restart i     start server i again
#   scripts/ensemble.sh wipe i        stop server i and delete its data
# Server i listens on clientPort 2180+i (ZooKeeper protocol), grpcPort
# 2280+i, quorum port 2887+i, election port 3887+i, admin port 8079+i;
# ENSEMBLE_PORT_OFFSET shifts them all. Data and logs: $ENSEMBLE_DIR
# (default ./ensemble)/server<i>/.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${ENSEMBLE_DIR:-./ensemble}"
OFF="${ENSEMBLE_PORT_OFFSET:-0}"
BIN="${ROCKEEPER_BIN:-./build/server/rockeeper}"

count() { ls -d "$DIR"/server* 2>/dev/null | wc -l; }

write_configs() {
  local n=$1 i j
  for i in $(seq 1 "$n"); do
    local d="$DIR/server$i"
    mkdir -p "$d/data"
    echo "$i" > "$d/data/myid"
    {
      echo "tickTime=500"
      echo "initLimit=10"
      echo "syncLimit=5"
      echo "dataDir=$(cd "$d/data" && pwd)"
      echo "clientPort=$((2180 + i + OFF))"
      echo "clientPortAddress=127.0.0.1"
      echo "grpcPort=$((2280 + i + OFF))"
      echo "grpcPortAddress=127.0.0.1"
      echo "admin.serverPort=$((8079 + i + OFF))"
      echo "admin.serverAddress=127.0.0.1"
      echo "4lw.commands.whitelist=*"
      for j in $(seq 1 "$n"); do
        echo "server.$j=127.0.0.1:$((2887 + j + OFF)):$((3887 + j + OFF))"
      done
    } > "$d/zoo.cfg"
  done
}

pid_of() { cat "$DIR/server$1/pid" 2>/dev/null || true; }
alive() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

start_one() {
  local i=$1
  if alive "$i"; then echo "server $i already running (pid $(pid_of "$i"))"; return; fi
  "$BIN" --config "$DIR/server$i/zoo.cfg" >> "$DIR/server$i/server.log" 2>&1 &
  echo $! > "$DIR/server$i/pid"
  echo "server $i started (pid $!), log $DIR/server$i/server.log"
}

signal_one() {
  local sig=$1 i=$2
  if alive "$i"; then kill "-$sig" "$(pid_of "$i")"; echo "server $i: SIG$sig"; fi
}

status() {
  local i
  for i in $(seq 1 "$(count)"); do
    printf 'server %s: ' "$i"
    if ! alive "$i"; then echo "down"; continue; fi
    local out
    out=$("$BIN" status --config "$DIR/server$i/zoo.cfg" 2>/dev/null || true)
    if echo "$out" | grep -q '^Mode'; then
      echo "$out" | grep -E '^(Mode|Zxid)' | tr '\n' ' '
      echo
    elif echo "$out" | grep -q 'not currently serving'; then
      echo "up, not serving (no quorum: looking for a leader)"
    else
      echo "not responding"
    fi
  done
}

case "${1:-}" in
  start)
    n="${2:-3}"
    [ "$(count)" -eq 0 ] && write_configs "$n"
    for i in $(seq 1 "$(count)"); do start_one "$i"; done ;;
  status) status ;;
  stop)
    if [ -n "${2:-}" ]; then signal_one TERM "$2"
    else for i in $(seq 1 "$(count)"); do signal_one TERM "$i"; done; fi ;;
  kill) signal_one KILL "${2:?server number}" ;;
  restart) start_one "${2:?server number}" ;;
  wipe)
    signal_one KILL "${2:?server number}"
    rm -rf "$DIR/server$2/data"/{state,log,snapshots,acceptedEpoch,currentEpoch,logBase} ;;
  *) sed -n 2,14p "$0"; exit 2 ;;
esac
