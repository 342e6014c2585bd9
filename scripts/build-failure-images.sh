#!/usr/bin/env bash
# Builds two tiny cell images for failure tests, from a static busybox:
#   mtp-test/hang:1   its "gateway" never answers /healthz
#   mtp-test/crash:1  its "gateway" prints its secrets (to prove redaction) and exits 3
# Both answer the cell command `node dist/index.js gateway …`. Idempotent.
set -euo pipefail

log() { printf 'build-failure-images: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
docker image inspect mtp-test/hang:1 >/dev/null 2>&1 || need+=(hang)
docker image inspect mtp-test/crash:1 >/dev/null 2>&1 || need+=(crash)
[ ${#need[@]} -eq 0 ] && { log "images already exist"; exit 0; }

if ! dpkg -s busybox-static >/dev/null 2>&1; then
  log "installing busybox-static (apt-get)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for kind in "${need[@]}"; do
  root=$work/$kind/rootfs
  mkdir -p "$root/bin" "$root/usr/local/bin" "$root/etc" "$root/tmp" "$root/home/node" "$root/app/node_modules/openclaw"
  chmod 1777 "$root/tmp"
  cp "$(readlink -f /bin/busybox)" "$root/bin/busybox"
  for tool in sh sleep echo cat; do ln -sf busybox "$root/bin/$tool"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:node:/home/node:/bin/sh\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnode:x:1000:\n' > "$root/etc/group"
  case $kind in
    hang) printf '#!/bin/sh\necho "pretending to boot"\nexec sleep 1000000\n' > "$root/usr/local/bin/node" ;;
    crash) cat > "$root/usr/local/bin/node" <<'SH'
#!/bin/sh
echo "booting with OPENCLAW_GATEWAY_TOKEN=$OPENCLAW_GATEWAY_TOKEN TELEGRAM_BOT_TOKEN=$TELEGRAM_BOT_TOKEN"
echo "Invalid config: channels.telegram: boom" >&2
exit 3
SH
    ;;
  esac
  chmod 755 "$root/usr/local/bin/node"
  cat > "$work/$kind/Dockerfile" <<'DF'
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/bin
WORKDIR /app/node_modules/openclaw
USER 1000:1000
CMD ["node","dist/index.js","gateway","--bind","lan","--port","18789"]
DF
  DOCKER_BUILDKIT=0 docker build -q -t "mtp-test/$kind:1" "$work/$kind" >/dev/null 2>&1
  log "built mtp-test/$kind:1"
done
