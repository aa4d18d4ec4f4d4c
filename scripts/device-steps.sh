#!/usr/bin/env bash
# What a zedbox device runs at every boot (after EVE's device-steps.sh): make
# its directories, make its keys the first time, wait for the network, onboard
# if it has no UUID, then start the agents: every agent in one process (the
# default, for small devices) or one process per agent (--split). Running it
# again while zedbox runs changes nothing.
#
#   scripts/device-steps.sh [--split] [--foreground] [--network-wait SECONDS]
#
# Directories come from ZEDBOX_ROOT or ZEDBOX_{RUN,PERSIST,CONFIG}_DIR (defaults /run/zedbox,
# /persist, /config); the controller from <config>/controller.json (written by `zedctl device
# add`). ZEDBOX (default: the bundle beside this script, dist/zedbox) is the program run.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
ZEDBOX=${ZEDBOX:-$here/dist/zedbox}
split=false foreground=false network_wait=${ZEDBOX_NETWORK_WAIT:-120}
while (($#)); do
  case $1 in
    --split) split=true ;;
    --foreground) foreground=true ;;
    --network-wait) network_wait=$2; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "device-steps: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [[ -n ${ZEDBOX_ROOT:-} ]]; then
  run=${ZEDBOX_RUN_DIR:-$ZEDBOX_ROOT/run} persist=${ZEDBOX_PERSIST_DIR:-$ZEDBOX_ROOT/persist} config=${ZEDBOX_CONFIG_DIR:-$ZEDBOX_ROOT/config}
else
  run=${ZEDBOX_RUN_DIR:-/run/zedbox} persist=${ZEDBOX_PERSIST_DIR:-/persist} config=${ZEDBOX_CONFIG_DIR:-/config}
fi
export ZEDBOX_RUN_DIR=$run ZEDBOX_PERSIST_DIR=$persist ZEDBOX_CONFIG_DIR=$config
# A device's own reboot and shutdown; a test or demo sets its own.
export ZEDBOX_REBOOT_COMMAND=${ZEDBOX_REBOOT_COMMAND-/sbin/reboot} ZEDBOX_SHUTDOWN_COMMAND=${ZEDBOX_SHUTDOWN_COMMAND-/sbin/poweroff}
log() { echo "device-steps: $*" >&2; }

# 1. Directories (private ones 0700).
mkdir -p "$run" "$config" "$persist/log"
install -d -m 0700 "$persist/certs" "$persist/status" "$persist/checkpoint"

# 2. Already running? Then this boot step has been done.
pidfile=$run/zedbox.pids
if [[ -s $pidfile ]]; then
  alive=0
  while read -r pid; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done <"$pidfile"
  if ((alive > 0)); then log "zedbox already runs ($alive process(es), $pidfile)"; exit 0; fi
fi

# 3. Keys, once for the device's life.
"$ZEDBOX" onboard --keys-only

# 4. The network: wait (bounded) until the controller's broker answers. Offline is not fatal: an
#    onboarded device boots from its checkpointed config and reconnects later.
provisioning=$config/controller.json
if [[ -f $provisioning ]]; then
  read -r host port < <(node -e '
    const u = new URL(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).broker.url);
    console.log(u.hostname.replace(/^\[|\]$/g, ""), u.port || (u.protocol === "mqtts:" ? 8883 : 1883));' "$provisioning")
  for ((i = 0; i < network_wait; i++)); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then log "broker $host:$port reachable"; break; fi
    ((i == 0)) && log "waiting up to ${network_wait}s for the broker at $host:$port"
    sleep 1
  done

  # 5. Onboard when there is no UUID yet (retries with backoff until the controller says yes).
  if [[ ! -s $persist/status/uuid ]]; then
    log "onboarding with the controller"
    "$ZEDBOX" onboard
  fi
  log "device $(cat "$persist/status/uuid")"
else
  log "no $provisioning: running without a controller (local config file)"
fi

# 6. The agents.
start() { # name args...
  local name=$1; shift
  if $foreground; then exec "$ZEDBOX" "$@"; fi
  setsid "$ZEDBOX" "$@" >>"$persist/log/$name.log" 2>&1 </dev/null &
  echo $! >>"$pidfile"
}
: >"$pidfile"
if $split; then
  $foreground && { log "--foreground needs the single-process mode"; exit 2; }
  for agent in nim ledmanager logmanager downloader verifier volumemgr domainmgr zedmanager zedagent; do
    start "$agent" "$agent"
  done
else
  start zedbox
fi
log "started zedbox ($(wc -l <"$pidfile") process(es)); logs in $persist/log/"
