#!/usr/bin/env bash
# The main job with embedded defaults: a device runs the example config
# (docs/examples/device-config.json): zedbox fetches two apps from the local
# registry, verifies them, loads them into Docker and runs them; then it shows
# their status on the bus and what each app serves. `make demo` first starts the
# engine, the registry and the test image (scripts/test-services.sh).
# State goes under $DEMO_DIR (default /tmp/zedbox-demo). DEMO_SECONDS=N stops
# after N seconds (otherwise Ctrl-C); the demo's containers and images are
# removed when it stops, unless DEMO_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
export ZEDBOX_ROOT="${DEMO_DIR:-/tmp/zedbox-demo}"
export ZEDBOX_INSTANCE=demo
mkdir -p "$ZEDBOX_ROOT/config"
config="$ZEDBOX_ROOT/config/device-config.json"
cp docs/examples/device-config.json "$config"
log="$ZEDBOX_ROOT/zedbox.log"

dist/zedbox all --log-format text --config "$config" >"$log" 2>&1 &
zedbox_pid=$!
stop() {
  kill -TERM "$zedbox_pid" 2>/dev/null || true
  wait "$zedbox_pid" 2>/dev/null || true
  if [[ -z "${DEMO_KEEP:-}" ]]; then
    ids=$(docker ps -aq --filter label=org.zedbox.instance=demo)
    [[ -n "$ids" ]] && docker rm -f $ids >/dev/null
    tags=$(docker images --format '{{.Repository}}:{{.Tag}}' | grep '^zedbox-demo/' || true)
    [[ -n "$tags" ]] && docker rmi $tags >/dev/null
    echo
    echo "zedbox stopped and its demo containers removed (DEMO_KEEP=1 keeps them); its log: $log"
  else
    echo
    echo "zedbox stopped; the apps keep running and are adopted when it starts again; its log: $log"
  fi
}
trap stop EXIT
trap 'exit 0' INT TERM

echo "== zedbox all --config $config (the example: two apps from the registry at 127.0.0.1:5000)"
# One line per app from the bus: "name STATE (errors)".
apps() {
  dist/bin/ipcmonitor watch AppInstanceStatus --once --json 2>/dev/null | node -e '
    const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
    for (const { value: v } of lines.filter((l) => l.value)) {
      const err = v.error ? `  error: ${v.error.error}` : "";
      const vol = v.volumes.map((x) => x.state).join(",");
      console.log(`   ${v.name.padEnd(8)} ${v.state.padEnd(16)} volumes ${vol}${v.containerId ? "  container " + v.containerId.slice(0, 12) : ""}${err}`);
    }'
}
last=""
for _ in $(seq 1 600); do
  kill -0 "$zedbox_pid" 2>/dev/null || { cat "$log"; exit 1; }
  now=$(apps || true)
  [[ "$now" != "$last" && -n "$now" ]] && { echo "$now"; echo; last=$now; }
  [[ $(grep -c ' RUNNING ' <<<"$now") -eq 2 ]] && break
  sleep 0.2
done
echo
for url in http://127.0.0.1:18081/ http://127.0.0.1:18082/boots.txt; do
  echo "== curl $url"
  curl -sS --retry 10 --retry-connrefused --retry-delay 1 "$url" || true
done
echo
echo "== what zedbox made in Docker"
docker ps --filter label=org.zedbox.instance=demo --format '   {{.Names}}  {{.Image}}  {{.Status}}  {{.Ports}}'
echo
echo "   Edit $config (a restartCounter, activate, a new app) and zedbox applies it; state under $ZEDBOX_ROOT;"
echo "   in another shell: ZEDBOX_ROOT=$ZEDBOX_ROOT dist/bin/ipcmonitor watch AppInstanceStatus"
if [[ -n "${DEMO_SECONDS:-}" ]]; then
  dist/bin/ipcmonitor watch AppInstanceStatus --duration-ms "$((DEMO_SECONDS * 1000))" >/dev/null
else
  dist/bin/ipcmonitor watch AppInstanceStatus
fi
