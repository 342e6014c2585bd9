#!/usr/bin/env bash
# Benchmark: `mtp tenant create` to healthy against a bare `docker run` of the
# same image with the same limits to `/healthz`, alternating, in the same run.
# MTP's create goes on to pair the admin after `/healthz`; the script polls the
# cell's port while create runs, so it prints both "create → healthy" (the like-
# for-like figure, compared with the bare run) and "create → paired" (when the
# command returns). Usage: scripts/bench-create.sh [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
image=${MTP_CELL_IMAGE:-mtp-test/openclaw:2026.9.6}

./scripts/docker-up.sh >/dev/null 2>&1
./scripts/build-test-image.sh >/dev/null 2>&1
cargo build --locked --release --bin mtp >/dev/null 2>&1
mtp=$PWD/target/release/mtp

work=$(mktemp -d /tmp/mtp-bench.XXXXXX)
trap 'docker rm -f mtp-bench-bare >/dev/null 2>&1 || true; "$mtp" --config "$work/mtp.json5" tenant rm bench --purge --yes >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
cat > "$work/mtp.json5" <<JSON
{ dataDir: "$work/data", cell: { image: "$image", portStart: 19700, telegramApiRoot: "http://127.0.0.1:9", extraEnv: { OPENCLAW_OFFLINE: "1" } } }
JSON
echo "7000000001:AAFakeTokenForBenchmarksOnly_abcdefg" > "$work/token"

now_ms() { date +%s%3N; }
wait_healthz() { until curl -sf "http://127.0.0.1:$1/healthz" >/dev/null; do sleep 0.05; done; }

bare() {
  local dir=$work/bare
  rm -rf "$dir"; mkdir -p "$dir/state" "$dir/auth"
  # The same config MTP renders (templates/openclaw.json5), so only MTP's own work differs.
  cat > "$dir/state/openclaw.json" <<'CFG'
{ "gateway": { "mode": "local", "port": 18789, "bind": "lan", "auth": { "mode": "token" } },
  "update": { "checkOnStart": false },
  "agents": { "defaults": { "model": { "primary": "anthropic/claude-opus-4-6" } } },
  "channels": { "telegram": { "enabled": true, "botToken": "${TELEGRAM_BOT_TOKEN}", "dmPolicy": "pairing",
                              "groupPolicy": "disabled", "apiRoot": "http://127.0.0.1:9" } } }
CFG
  chown -R 1000:1000 "$dir"; chmod 700 "$dir/state" "$dir/auth"
  local start; start=$(now_ms)
  docker run -d --name mtp-bench-bare --init --cap-drop ALL --security-opt no-new-privileges \
    --memory 2g --memory-swap 2g --cpus 2 --pids-limit 512 --restart unless-stopped \
    -p 127.0.0.1:19790:18789 -v "$dir/state:/home/node/.openclaw" -v "$dir/auth:/home/node/.config/openclaw" \
    -e HOME=/home/node -e OPENCLAW_STATE_DIR=/home/node/.openclaw -e XDG_CACHE_HOME=/home/node/.openclaw/cache \
    -e OPENCLAW_GATEWAY_TOKEN=benchbenchbench -e OPENCLAW_OFFLINE=1 -e OPENCLAW_NO_AUTO_UPDATE=1 \
    -e TELEGRAM_BOT_TOKEN="$(cat "$work/token")" \
    "$image" node dist/index.js gateway --bind lan --port 18789 >/dev/null
  wait_healthz 19790
  echo $(( $(now_ms) - start ))
  docker rm -f mtp-bench-bare >/dev/null
}

with_mtp() {
  local start healthy; start=$(now_ms)
  "$mtp" --config "$work/mtp.json5" tenant create bench --bot-token-file "$work/token" >/dev/null &
  local create=$!
  wait_healthz 19700
  healthy=$(now_ms)
  wait "$create"
  echo "$(( healthy - start )) $(( $(now_ms) - start ))"
  "$mtp" --config "$work/mtp.json5" tenant rm bench --purge --yes >/dev/null
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

bare_times=(); mtp_times=(); paired_times=()
for i in $(seq 1 "$rounds"); do
  b=$(bare); with_mtp > "$work/times"; read -r m p < "$work/times"
  bare_times+=("$b"); mtp_times+=("$m"); paired_times+=("$p")
  echo "round $i: docker run → /healthz ${b} ms; mtp tenant create → healthy ${m} ms, → paired ${p} ms"
done
bm=$(printf '%s\n' "${bare_times[@]}" | median)
mm=$(printf '%s\n' "${mtp_times[@]}" | median)
pm=$(printf '%s\n' "${paired_times[@]}" | median)
echo "median: bare ${bm} ms, mtp to healthy ${mm} ms, ratio $(awk "BEGIN {printf \"%.3f\", $mm/$bm}") (overhead $(awk "BEGIN {printf \"%+.1f%%\", ($mm/$bm-1)*100}")); mtp to paired ${pm} ms"
