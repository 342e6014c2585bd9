#!/usr/bin/env bash
# Backup benchmark: the time a backup and a restore take, and how long the
# client's cell is paused, for state dirs of 10 MB and 100 MB (or the sizes
# given), against the real OpenClaw cell image.
#
#   scripts/bench-backup.sh [MB ...]        # default: 10 100
#
# Needs Docker up and the test image built (scripts/test.sh does both, or
# scripts/docker-up.sh and scripts/build-test-image.sh). Builds `mtp` in
# release mode. Each size: one tenant, its workspace filled with that many MB
# of incompressible files written from inside the cell, then RUNS backups
# (default 3) and one restore after a purge. Prints one line per size with the
# median pause, backup and restore times. Ports 21900-21919, data under
# target/bench-backup.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10 100)

cargo build --release --quiet --bin mtp
MTP=$PWD/target/release/mtp
WORK=$PWD/target/bench-backup
rm -rf "$WORK"
mkdir -p "$WORK"
cat > "$WORK/mtp.json5" <<EOF
{
  dataDir: "$WORK/data",
  cell: {
    portStart: 21900,
    portEnd: 21919,
    healthTimeout: "180s",
    telegramApiRoot: "http://127.0.0.1:9",
    extraEnv: { OPENCLAW_OFFLINE: "1" },
  },
  backup: { schedule: "off" },
}
EOF
printf '%s' "7000009001:AABenchTokenForTestsOnly_abcdefghijklm" > "$WORK/bot-token"
mtp() { "$MTP" --config "$WORK/mtp.json5" "$@"; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
now_ms() { date +%s%3N; }

printf '%-8s %-6s %12s %12s %12s %12s\n' "state" "runs" "pause ms" "backup ms" "restore ms" "archive"
for mb in "${SIZES[@]}"; do
  id=bench-$mb
  mtp tenant rm "$id" --purge --yes >/dev/null 2>&1 || true
  mtp tenant create "$id" --bot-token-file "$WORK/bot-token" >/dev/null
  # Incompressible data written by the cell's own user, 1 MB per file.
  docker exec "mtp-cell-$id" node -e "
    const fs = require('fs'), crypto = require('crypto');
    const dir = '/home/node/.openclaw/workspace/bench';
    fs.mkdirSync(dir, { recursive: true });
    for (let i = 0; i < $mb; i++) fs.writeFileSync(dir + '/f' + i, crypto.randomBytes(1 << 20));
  "
  pauses=() backups=() bytes=0 archive=""
  for _ in $(seq "$RUNS"); do
    start=$(now_ms)
    out=$(mtp backup create "$id" --json)
    backups+=($(( $(now_ms) - start )))
    pauses+=("$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["paused_ms"])')")
    bytes=$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])')
    archive=$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])')
  done
  mtp tenant rm "$id" --purge --yes >/dev/null
  start=$(now_ms)
  mtp backup restore "$archive" >/dev/null
  restore=$(( $(now_ms) - start ))
  mtp tenant rm "$id" --purge --yes >/dev/null
  printf '%-8s %-6s %12s %12s %12s %12s\n' "${mb} MB" "$RUNS" \
    "$(printf '%s\n' "${pauses[@]}" | median)" \
    "$(printf '%s\n' "${backups[@]}" | median)" \
    "$restore" "$(( bytes / 1000000 )) MB"
done
