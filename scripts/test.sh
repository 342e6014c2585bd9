#!/usr/bin/env bash
# The whole test suite, from a fresh machine: Docker installed and started,
# container egress blocked, test images built, then fmt, clippy and every test
# against the real engine and the real OpenClaw gateway. Idempotent; quick
# when the set-up is already done. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/docker-up.sh
./scripts/build-test-image.sh
./scripts/build-failure-images.sh
if [ -x scripts/build-fake-image.sh ]; then ./scripts/build-fake-image.sh; fi

cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace -- --test-threads "${MTP_TEST_THREADS:-4}"
