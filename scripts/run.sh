#!/usr/bin/env bash
# Runs MTP Admin on this machine: Docker installed and started, container egress
# blocked, the pinned OpenClaw cell image built, `mtp` built in release mode.
# Arguments go to `mtp` (default: `serve`, which needs MTP_TELEGRAM_TOKEN and
# MTP_OPERATORS). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/docker-up.sh
./scripts/build-test-image.sh
cargo build --locked --release --bin mtp
if [ $# -eq 0 ]; then set -- serve; fi
exec ./target/release/mtp "$@"
