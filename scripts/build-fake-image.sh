#!/usr/bin/env bash
# Builds the fake OpenClaw cell image `mtp-test/fake-gateway:1`: the static
# `mtp-fake-gateway` binary installed as /usr/local/bin/node in an image FROM scratch
# with the layout of the real test image (scripts/build-test-image.sh), so the
# runtime starts it with the same command (`node dist/index.js gateway --bind lan
# --port 18789`) and pairs with `node dist/index.js devices approve <requestId>`.
# There is no /bin/sh in the image.
#
# The binary is built every time (quick when up to date) and the image rebuilt only
# when the binary changed (its sha256 is a label of the image). The dev profile
# keeps a cold build short (the package's whole dependency tree is compiled once
# more for the static target); MTP_FAKE_REBUILD=1 forces an image rebuild.
set -euo pipefail

IMAGE=${MTP_FAKE_IMAGE:-mtp-test/fake-gateway:1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=x86_64-unknown-linux-gnu

log() { printf 'build-fake-image: %s\n' "$*" >&2; }

cd "$ROOT"
log "cargo build (static, $TARGET, target/static)"
# Its own target dir, so the static flags do not invalidate the normal build.
RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR="$ROOT/target/static" \
  cargo build --quiet --locked --bin mtp-fake-gateway --target "$TARGET"
BIN=$ROOT/target/static/$TARGET/debug/mtp-fake-gateway
if ldd "$BIN" 2>&1 | grep -q '=>'; then
  log "error: $BIN is dynamically linked"
  exit 1
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS/usr/local/bin" "$ROOTFS/etc" "$ROOTFS/tmp" "$ROOTFS/home/node" \
  "$ROOTFS/app/node_modules/openclaw/dist"
chmod 1777 "$ROOTFS/tmp"
cp "$BIN" "$ROOTFS/usr/local/bin/node"
strip "$ROOTFS/usr/local/bin/node" 2>/dev/null || true
SHA=$(sha256sum "$ROOTFS/usr/local/bin/node" | cut -d' ' -f1)
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
ENV PATH=/usr/local/bin HOME=/home/node
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
