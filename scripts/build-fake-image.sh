#!/usr/bin/env bash
# Builds the fake OpenClaw cell image `mtp-test/fake-gateway:1`: the
# `mtp-fake-gateway` binary installed as /usr/local/bin/node in an image FROM scratch
# with the layout of the real test image (scripts/build-test-image.sh), so the
# runtime starts it with the same command (`node dist/index.js gateway --bind lan
# --port 18789`) and pairs with `node dist/index.js devices approve <requestId>`.
# A static busybox gives it /bin/sh and cat, as in the real test image: the
# cell's command exports its secret files before it execs the gateway.
#
# The binary comes from the workspace crate `crates/fake-gateway`, built exactly as
# `cargo test` at the root builds it (target/debug, every member's tests, so the
# features of the shared dependencies are unified the same way and a cold CI run
# compiles the dependency tree once, not twice; `cargo build -p mtp-fake-gateway`
# alone would resolve other features and compile much of it again), with the shared
# libraries `ldd` lists copied beside it, as the real test image does for node. It is built every time (quick when up to date) and the image
# rebuilt only when the binary changed (its sha256 is a label of the image);
# MTP_FAKE_REBUILD=1 forces an image rebuild.
set -euo pipefail

IMAGE=${MTP_FAKE_IMAGE:-mtp-test/fake-gateway:1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf 'build-fake-image: %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -x /bin/busybox ] || ! file -L /bin/busybox 2>/dev/null | grep -q 'statically linked'; then
  if ! dpkg -s busybox-static >/dev/null 2>&1; then
    log "installing busybox-static (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static file >/dev/null
  fi
fi

cd "$ROOT"
log "cargo test --workspace --no-run (builds mtp-fake-gateway as cargo test does)"
cargo test --quiet --locked --workspace --no-run
BIN=$ROOT/target/debug/mtp-fake-gateway

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS/usr/local/bin" "$ROOTFS/etc" "$ROOTFS/tmp" "$ROOTFS/home/node" \
  "$ROOTFS/app/node_modules/openclaw/dist"
chmod 1777 "$ROOTFS/tmp"
cp "$BIN" "$ROOTFS/usr/local/bin/node"
strip "$ROOTFS/usr/local/bin/node" 2>/dev/null || true
# Its shared libraries (libc, libm, libgcc_s, …) and the loader, at their paths.
ldd "$BIN" | awk '/=> \//{print $3} /^\s*\/lib/{print $1}' | sort -u | while read -r lib; do
  [ -e "$lib" ] || continue
  mkdir -p "$ROOTFS$(dirname "$lib")"
  cp -L "$lib" "$ROOTFS$lib"
done
mkdir -p "$ROOTFS/lib64"
cp -L /lib64/ld-linux-x86-64.so.2 "$ROOTFS/lib64/"
mkdir -p "$ROOTFS/bin"
cp "$(readlink -f /bin/busybox)" "$ROOTFS/bin/busybox"
for tool in sh cat; do ln -sf busybox "$ROOTFS/bin/$tool"; done
# Paths relative to the rootfs, so the label only changes when a file does.
SHA=$(cd "$ROOTFS" && { sha256sum usr/local/bin/node bin/busybox; ls bin; find . -type f -name '*.so*' | sort | xargs -r sha256sum; } | sha256sum | cut -d' ' -f1)
if [ "${MTP_FAKE_REBUILD:-0}" != 1 ] \
  && [ "$(docker image inspect "$IMAGE" --format '{{ index .Config.Labels "mtp.fake-gateway.sha256" }}' 2>/dev/null)" = "$SHA" ]; then
  log "$IMAGE is up to date"
  exit 0
fi
cat > "$ROOTFS/etc/passwd" <<'PW'
root:x:0:0:root:/root:/sbin/nologin
node:x:1000:1000:node:/home/node:/sbin/nologin
PW
cat > "$ROOTFS/etc/group" <<'GR'
root:x:0:
node:x:1000:
GR
chown 1000:1000 "$ROOTFS/home/node"

cat > "$WORK/Dockerfile" <<DF
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/bin HOME=/home/node
LABEL mtp.fake-gateway.sha256=$SHA
WORKDIR /app/node_modules/openclaw
USER 1000:1000
EXPOSE 18789
CMD ["node","dist/index.js","gateway","--bind","lan","--port","18789"]
DF
log "docker build $IMAGE"
if ! DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$WORK" >"$WORK/build.log" 2>&1; then
  cat "$WORK/build.log" >&2
  exit 1
fi
log "built $IMAGE ($(docker image inspect "$IMAGE" --format '{{.Size}}') bytes)"
