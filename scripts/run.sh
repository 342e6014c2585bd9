#!/usr/bin/env bash
# Runs MTP Admin on this machine: Docker installed and started, container egress
# blocked, the pinned OpenClaw cell image built, `mtp` built in release mode.
# Arguments go to `mtp` (default: `tenant list`). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/docker-up.sh
./scripts/build-test-image.sh
cargo build --locked --release --bin mtp
exec ./target/release/mtp "${@:-tenant list}"
