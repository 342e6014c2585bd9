#!/usr/bin/env bash
# Makes sure a Docker engine runs on this machine and that containers cannot
# reach anything outside the host. Idempotent and quick when already done.
#
# - installs Debian's docker.io when dockerd is missing;
# - starts dockerd in the background when the socket does not answer;
# - inserts `DOCKER-USER -o <uplink> -j DROP` once, before any cell starts,
#   so cells (which try Telegram on their own) never send traffic out.
set -euo pipefail

log() { printf 'docker-up: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v dockerd >/dev/null 2>&1; then
  log "installing docker.io (apt-get)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io iptables >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  as_root mkdir -p /var/log
  as_root sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /var/log/dockerd.log"; tail -20 /var/log/dockerd.log >&2 || true; exit 1; }
fi

# dockerd creates the DOCKER-USER chain when it starts; wait for it.
for _ in $(seq 1 60); do
  as_root iptables -L DOCKER-USER -n >/dev/null 2>&1 && break
  sleep 0.5
done
uplink=$(ip route show default 2>/dev/null | awk '{print $5; exit}')
if [ -n "$uplink" ]; then
  as_root iptables -C DOCKER-USER -o "$uplink" -j DROP 2>/dev/null \
    || as_root iptables -I DOCKER-USER -o "$uplink" -j DROP
  log "container egress via $uplink is dropped"
else
  log "no default route: containers have nowhere to send traffic"
fi
