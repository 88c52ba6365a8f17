# Shared by the standalone benchmark scripts (thread_cpu.sh, one_run.sh):
# a temp dir, a zoo.cfg on free 127.0.0.1 ports, start/stop of the server
# by PID, and cleanup on exit. Source it after setting SERVER; it defines
# DIR, PORT, ADMIN_PORT, PID, start and stop. Extra zoo.cfg lines: EXTRA_CONFIG.
DIR=$(mktemp -d /tmp/rk-bench.XXXXXX)
PID=
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}
PORT=$(free_port)
ADMIN_PORT=$(free_port)
cat >"$DIR/zoo.cfg" <<EOC
dataDir=$DIR/data
clientPort=$PORT
clientPortAddress=127.0.0.1
grpcPort=$(free_port)
admin.serverPort=$ADMIN_PORT
${EXTRA_CONFIG:-}
EOC

start() {
  "$SERVER" --config "$DIR/zoo.cfg" >>"$DIR/log" 2>&1 &
  PID=$!
  for _ in $(seq 200); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "server did not start; log:" >&2
  cat "$DIR/log" >&2
  exit 1
}
stop() { kill "$PID"; wait "$PID" || true; PID=; }
