#!/usr/bin/env bash
# Starts the real parts the tests and benchmarks run against, installing them
# from Debian's packages when missing: a Docker engine (docker.io), the
# Distribution registry (docker-registry) on 127.0.0.1, skopeo, and a small test
# image built here from busybox-static (nothing is pulled from the internet).
# Idempotent: what already runs is left alone. Prints the registry address.
set -euo pipefail

STATE=${ZEDBOX_SERVICES_DIR:-/var/tmp/zedbox-test-services}
REGISTRY=${ZEDBOX_TEST_REGISTRY:-127.0.0.1:5000}
mkdir -p "$STATE"

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
[[ -x /bin/busybox || -x /usr/bin/busybox ]] || need+=(busybox-static)
command -v docker-init >/dev/null || need+=(tini)
command -v iptables >/dev/null || need+=(iptables)
command -v curl >/dev/null || need+=(curl)
[[ -x /usr/sbin/mosquitto ]] || need+=(mosquitto)
command -v mosquitto_ctrl >/dev/null || need+=(mosquitto-clients)
command -v openssl >/dev/null || need+=(openssl)
# nim's tests: ip (network namespaces, veth pairs), busybox udhcpc/udhcpd (above), an HTTP CONNECT proxy.
command -v ip >/dev/null || need+=(iproute2)
[[ -x /usr/bin/tinyproxy ]] || need+=(tinyproxy)
if ((${#need[@]})); then
  echo "test-services: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${need[@]}" >"$STATE/apt.log" 2>&1 ||
    { apt-get update >>"$STATE/apt.log" 2>&1 && apt-get install -y --no-install-recommends "${need[@]}" >>"$STATE/apt.log" 2>&1; } ||
    { echo "test-services: apt-get failed, see $STATE/apt.log" >&2; tail -20 "$STATE/apt.log" >&2; exit 1; }
fi

wait_for() { # what, tries, command...
  local what=$1 tries=$2; shift 2
  for ((i = 0; i < tries; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "test-services: $what did not come up" >&2
  return 1
}

if ! docker info >/dev/null 2>&1; then
  echo "test-services: starting dockerd (log $STATE/dockerd.log)" >&2
  setsid dockerd >"$STATE/dockerd.log" 2>&1 </dev/null &
  wait_for dockerd 240 docker info || { tail -20 "$STATE/dockerd.log" >&2; exit 1; }
fi

if ! curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1; then
  mkdir -p "$STATE/registry"
  cat >"$STATE/registry.yml" <<YML
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $STATE/registry }
  delete: { enabled: true }
http: { addr: $REGISTRY }
YML
  echo "test-services: starting docker-registry on $REGISTRY" >&2
  setsid docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 </dev/null &
  wait_for docker-registry 80 curl -fsS "http://$REGISTRY/v2/" || { tail -20 "$STATE/registry.log" >&2; exit 1; }
fi

# The base test image: busybox-static as a root file system. Apps run busybox
# applets (httpd, sh, sleep); tests derive their own images from it.
if ! docker image inspect zedbox-test/busybox:1 >/dev/null 2>&1; then
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/www" "$root/tmp" "$root/etc"
  cp "$(command -v busybox)" "$root/bin/busybox"
  for app in sh httpd sleep echo cat ls mkdir wc sha256sum; do ln -s busybox "$root/bin/$app"; done
  echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - zedbox-test/busybox:1 >/dev/null
  rm -rf "$root"
fi
if ! skopeo inspect --tls-verify=false "docker://$REGISTRY/zedbox-test/busybox:1" >/dev/null 2>&1; then
  skopeo copy -q --dest-tls-verify=false docker-daemon:zedbox-test/busybox:1 "docker://$REGISTRY/zedbox-test/busybox:1"
fi
echo "$REGISTRY"
