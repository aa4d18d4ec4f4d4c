#!/usr/bin/env bash
# The main job on a fresh machine, with embedded defaults: the reference
# controller (`zedctl serve`, with its own MQTT broker) and one device. The
# operator registers the device; the device boots with scripts/device-steps.sh
# (keys, onboarding, agents); the operator sets the example config
# (docs/examples/device-config.json, signed by zedctl); the device fetches,
# verifies and runs its two apps, and the demo shows the device's state as the
# controller sees it converge, curls the apps, shows the device's console (diag)
# and LED code, and the apps' log lines as the controller stored them. `make demo`
# first starts the engine, the registry and the test image (scripts/test-services.sh).
# State goes under $DEMO_DIR (default /tmp/zedbox-demo: zedctl/ and device/). DEMO_SECONDS=N stops after N
# seconds (otherwise Ctrl-C). Containers and images are removed at the end unless DEMO_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=${DEMO_DIR:-/tmp/zedbox-demo}
port=${DEMO_BROKER_PORT:-18830}
serial=demo-001
zedctl() { dist/zedbox zedctl --state "$demo/zedctl" "$@"; }
rm -rf "$demo"
mkdir -p "$demo/device/config"
export ZEDBOX_ROOT=$demo/device ZEDBOX_INSTANCE=demo
# The demo asks for no reboot: a reboot counter would only print here.
export ZEDBOX_REBOOT_COMMAND="echo reboot requested >> $demo/device/reboot-requests" ZEDBOX_SHUTDOWN_COMMAND="echo shutdown requested >> $demo/device/reboot-requests"

stop() {
  trap - EXIT
  if [[ -s $demo/device/run/zedbox.pids ]]; then
    while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done <"$demo/device/run/zedbox.pids"
    while read -r pid; do while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done; done <"$demo/device/run/zedbox.pids"
  fi
  [[ -n ${serve_pid:-} ]] && { kill -TERM "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; }
  if [[ -z "${DEMO_KEEP:-}" ]]; then
    ids=$(docker ps -aq --filter label=org.zedbox.instance=demo)
    [[ -n "$ids" ]] && docker rm -f $ids >/dev/null
    tags=$(docker images --format '{{.Repository}}:{{.Tag}}' | grep '^zedbox-demo/' || true)
    [[ -n "$tags" ]] && docker rmi $tags >/dev/null
    echo; echo "stopped; demo containers removed (DEMO_KEEP=1 keeps them). Logs: $demo/zedctl.log, $demo/device/persist/log/"
  else
    echo; echo "stopped; the apps keep running. Logs: $demo/zedctl.log, $demo/device/persist/log/"
  fi
}
trap stop EXIT
trap 'exit 0' INT TERM

echo "== 1. the controller: zedctl serve (embedded MQTT broker on 127.0.0.1:$port, state $demo/zedctl)"
dist/zedbox zedctl serve --state "$demo/zedctl" --listen "127.0.0.1:$port" --log-format text >"$demo/zedctl.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 100); do grep -q 'serving devices' "$demo/zedctl.log" && break; kill -0 $serve_pid || { cat "$demo/zedctl.log"; exit 1; }; sleep 0.1; done
grep 'serving devices' "$demo/zedctl.log" | sed 's/^/   /'

echo; echo "== 2. the operator registers the device: zedctl device add $serial"
zedctl device add "$serial" --out "$demo/device/config/controller.json" | sed 's/^/   /'

echo; echo "== 3. the device boots: scripts/device-steps.sh (keys, wait for the broker, onboard, start the agents)"
ZEDBOX_NETWORK_WAIT=30 bash scripts/device-steps.sh 2>&1 | sed 's/^/   /'

echo; echo "== 4. the operator sets its config: zedctl config set $serial docs/examples/device-config.json"
zedctl config set "$serial" docs/examples/device-config.json | sed 's/^/   /'

echo; echo "== 5. the device converges, as the controller sees it (zedctl show $serial)"
last=""
for _ in $(seq 1 300); do
  now=$(zedctl show "$serial" --json 2>/dev/null | node -e '
    const v = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const lines = [`device ${v.record.deviceId ?? "-"} ${v.status?.state ?? "?"}; config seq ${v.config?.appliedSeq ?? "-"} ${v.config?.error ? "REFUSED: " + v.config.error.error : "applied"}`];
    for (const a of (v.apps ?? []).sort((x, y) => x.name.localeCompare(y.name))) {
      lines.push(`  ${a.name.padEnd(8)} ${a.state.padEnd(16)}${(a.errors ?? []).map((e) => " error: " + e.error).join("")}`);
    }
    console.log(lines.join("\n"));' 2>/dev/null || true)
  [[ "$now" != "$last" && -n "$now" ]] && { echo "$now" | sed 's/^/   /'; echo; last=$now; }
  [[ $(grep -c ' RUNNING ' <<<"$now") -eq 2 ]] && break
  sleep 0.5
done

for url in http://127.0.0.1:18081/ http://127.0.0.1:18082/boots.txt; do
  echo "== curl $url"
  curl -sS --retry 10 --retry-connrefused --retry-delay 1 "$url" | sed 's/^/   /' || true
done
echo; echo "== 6. at the device's console: zedbox diag --once (the same text is kept in $demo/device/run/diag.txt)"
dist/zedbox diag --once 2>/dev/null | sed 's/^/   /'

echo "== 7. the LED (no LED on this machine: ledmanager logs each code it would blink)"
grep -ho '"msg":"LED code [^"]*"' "$demo"/device/persist/log/*.log | sed 's/"msg":"\(.*\)"/   \1/'

echo; echo "== 8. the apps' output, as the controller stored it: zedctl logs $serial --app hello / --app notes"
for app in hello notes; do
  for _ in $(seq 1 60); do
    out=$(zedctl logs "$serial" --app "$app" 2>/dev/null || true)
    grep -q 'response:200' <<<"$out" && break
    sleep 0.5
  done
  sed 's/^/   /' <<<"$out"
done

echo; echo "== zedctl devices"
zedctl devices | sed 's/^/   /'
echo
echo "   Change the config and set it again (zedctl --state $demo/zedctl config set $serial FILE);"
echo "   watch it: zedctl --state $demo/zedctl follow $serial [--metrics]"
echo "   its logs: zedctl --state $demo/zedctl logs $serial [--app NAME | --source AGENT] [--follow]"
echo "   its console: ZEDBOX_ROOT=$demo/device dist/zedbox diag"
if [[ -n "${DEMO_SECONDS:-}" ]]; then sleep "$DEMO_SECONDS"; else
  echo "   (Ctrl-C stops the demo)"; zedctl follow "$serial"; fi
