#!/usr/bin/env bash
# The main job with embedded defaults: every agent in one zedbox process on the
# bus, and ipcmonitor showing them. State goes under $DEMO_DIR (default
# /tmp/zedbox-demo). DEMO_SECONDS=N stops after N seconds; otherwise Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
export ZEDBOX_ROOT="${DEMO_DIR:-/tmp/zedbox-demo}"
mkdir -p "$ZEDBOX_ROOT"
log="$ZEDBOX_ROOT/zedbox.log"

dist/zedbox all --log-format text >"$log" 2>&1 &
zedbox_pid=$!
stop() {
  kill -TERM "$zedbox_pid" 2>/dev/null || true
  wait "$zedbox_pid" 2>/dev/null || true
  echo
  echo "zedbox stopped; its log: $log"
}
trap stop EXIT
trap 'exit 0' INT TERM

for _ in $(seq 1 100); do
  grep -q 'all agents ready' "$log" 2>/dev/null && break
  kill -0 "$zedbox_pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
grep 'all agents ready' "$log"
echo
echo "== every publication on the bus (dist/bin/ipcmonitor list) =="
dist/bin/ipcmonitor list
echo
echo "== the agents' status, then changes as they happen (dist/bin/ipcmonitor watch AgentStatus) =="
echo "   (state under $ZEDBOX_ROOT; in another shell: ZEDBOX_ROOT=$ZEDBOX_ROOT dist/bin/diag)"
if [[ -n "${DEMO_SECONDS:-}" ]]; then
  dist/bin/ipcmonitor watch AgentStatus --duration-ms "$((DEMO_SECONDS * 1000))"
else
  dist/bin/ipcmonitor watch AgentStatus
fi
