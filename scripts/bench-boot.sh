#!/usr/bin/env bash
# Boot benchmark of an OpenClaw cell, run the way MTP runs it (src/runtime/cell.rs,
# src/fleet/cell.rs): docker start -> first GET /healthz 200, for a fresh state dir
# and for warm restarts on the same state, without and with NODE_COMPILE_CACHE
# pointing into the state mount (so the cache persists across starts).
#
# usage: boot-bench.sh [IMAGE] [RUNS] [MODES]
#   IMAGE  default mtp-test/openclaw:2026.9.6
#   RUNS   default 3 (each run = one fresh start + WARM warm starts per mode)
#   MODES  default "nocache cache" (also: "cache-entry" = cache + openclaw.mjs entry)
# env: WARM (default 2), PORT (default 28741), OUT (default /tmp/mtp-bench-boot/run-<ts>),
#      MEM (2g), CPUS (2), HEALTH_TIMEOUT_S (300),
#      EXTRA_ENV="A=1 B=2" adds env to the cell (diagnostics, e.g. NODE_DEBUG_NATIVE=COMPILE_CACHE),
#      EXTRA_ENV_FILE=path adds a docker --env-file (values with spaces, e.g. NODE_OPTIONS),
#      TRACE=1 adds OPENCLAW_GATEWAY_STARTUP_TRACE=1 (per-phase trace lines in the logs)
# Containers are named mtp-bench-boot-*, network mtp-bench-boot-net; both are removed at the end.
set -euo pipefail

if [ "${1:-}" = __one ]; then ONE_MODE=$5 ONE_RUN=$6; set -- "$2" "$3" "$4"; ONE=1; else ONE=; fi
IMAGE=${1:-mtp-test/openclaw:2026.9.6}
RUNS=${2:-3}
MODES=${3:-nocache cache}
WARM=${WARM:-2}
PORT=${PORT:-28741}
MEM=${MEM:-2g}
CPUS=${CPUS:-2}
HEALTH_TIMEOUT_S=${HEALTH_TIMEOUT_S:-300}
OUT=${OUT:-/tmp/mtp-bench-boot/run-$(date +%Y%m%d-%H%M%S)}
export OUT WARM PORT MEM CPUS HEALTH_TIMEOUT_S TRACE EXTRA_ENV EXTRA_ENV_FILE
NET=mtp-bench-boot-net
SUBNET=10.251.77.0/28          # outside MTP's pool 10.213.0.0/16
CACHE_IN_CELL=/home/node/.openclaw/.cache/node-compile

mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
log() { printf '%s boot-bench: %s\n' "$(date +%T)" "$*" | tee -a "$OUT/bench.log" >&2; }
now_ns() { date +%s%N; }

if [ -z "$ONE" ]; then
if ss -ltn | awk '{print $4}' | grep -qE "[:.]$PORT\$"; then
  echo "port $PORT is in use; set PORT=" >&2; exit 1
fi
docker image inspect "$IMAGE" >/dev/null

cleanup() {
  for c in $(docker ps -a --filter name='^mtp-bench-boot-' --format '{{.Names}}'); do
    docker rm -f "$c" >/dev/null 2>&1 || true
  done
  docker network rm "$NET" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
docker network create --driver bridge --subnet "$SUBNET" \
  -o com.docker.network.bridge.enable_icc=false --label mtp.bench=boot "$NET" >/dev/null
fi

write_state() { # dir
  local dir=$1
  rm -rf "$dir"
  mkdir -p "$dir/state" "$dir/auth"
  cat > "$dir/state/openclaw.json" <<'JSON'
{
  "gateway": { "mode": "local", "port": 18789, "bind": "lan", "auth": { "mode": "token" } },
  "update": { "checkOnStart": false },
  "agents": { "defaults": { "model": { "primary": "anthropic/claude-opus-4-6" } } },
  "channels": {
    "telegram": {
      "enabled": true,
      "botToken": "${TELEGRAM_BOT_TOKEN}",
      "dmPolicy": "pairing",
      "groupPolicy": "disabled",
      "apiRoot": "http://127.0.0.1:9"
    }
  }
}
JSON
  chown -R 1000:1000 "$dir/state" "$dir/auth"
  chmod 0700 "$dir/state" "$dir/auth"
  chmod 0600 "$dir/state/openclaw.json"
}

create_cell() { # name mode dir
  local name=$1 mode=$2 dir=$3 extra=() cmd=(node dist/index.js gateway --bind lan --port 18789)
  case $mode in
    cache) extra=(-e "NODE_COMPILE_CACHE=$CACHE_IN_CELL") ;;
    cache-entry) extra=(-e "NODE_COMPILE_CACHE=$CACHE_IN_CELL"); cmd=(node openclaw.mjs gateway --bind lan --port 18789) ;;
  esac
  docker create --name "$name" --hostname "$name" --label mtp.bench=boot \
    --user 1000:1000 --init --read-only \
    --tmpfs /tmp:rw,noexec,nosuid,nodev,size=128m,mode=1777 \
    --cap-drop ALL --security-opt no-new-privileges:true \
    --pids-limit 512 --memory "$MEM" --memory-swap "$MEM" --cpus "$CPUS" \
    --restart unless-stopped --stop-timeout 30 \
    --log-driver json-file --log-opt max-size=10485760 --log-opt max-file=3 \
    --network "$NET" -p "127.0.0.1:$PORT:18789" \
    --mount "type=bind,source=$dir/state,target=/home/node/.openclaw" \
    --mount "type=bind,source=$dir/auth,target=/home/node/.config/openclaw" \
    -e HOME=/home/node -e OPENCLAW_HOME=/home/node \
    -e OPENCLAW_STATE_DIR=/home/node/.openclaw \
    -e OPENCLAW_CONFIG_PATH=/home/node/.openclaw/openclaw.json \
    -e OPENCLAW_WORKSPACE_DIR=/home/node/.openclaw/workspace \
    -e XDG_CACHE_HOME=/home/node/.openclaw/cache \
    -e OPENCLAW_NO_AUTO_UPDATE=1 -e OPENCLAW_DISABLE_BONJOUR=1 -e DO_NOT_TRACK=1 \
    -e OPENCLAW_OFFLINE=1 \
    -e OPENCLAW_GATEWAY_TOKEN=mtp-bench-boot-gateway-token-0123456789abcdef \
    -e TELEGRAM_BOT_TOKEN=123456:mtp-bench-boot-fake-bot-token \
    -e ANTHROPIC_API_KEY=sk-ant-mtp-bench-boot-fake \
    ${TRACE:+-e OPENCLAW_GATEWAY_STARTUP_TRACE=1} \
    $(for kv in ${EXTRA_ENV:-}; do printf -- '-e %s ' "$kv"; done) \
    ${EXTRA_ENV_FILE:+--env-file "$EXTRA_ENV_FILE"} \
    "${extra[@]}" "$IMAGE" "${cmd[@]}" >/dev/null
}

# One start: prints ms start->healthz, start->first log line, start->"loading configuration"
# (end of the module-loading prelude), start->"starting HTTP server".
measure_start() { # name phase
  local name=$1 phase=$2 t0 t1 code since ms_health="" f c h cpu_ms=NA
  since=$(date +%s.%N)
  t0=$(now_ns)
  docker start "$name" >/dev/null
  local deadline=$(( t0 + HEALTH_TIMEOUT_S * 1000000000 ))
  while :; do
    code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$PORT/healthz" || true)
    t1=$(now_ns)
    if [ "$code" = 200 ]; then
      # CPU the cell used for this boot (cgroup v1 cpuacct or v2 cpu.stat; reset by each start).
      cpu_ms=NA
      local id; id=$(docker inspect -f '{{.Id}}' "$name")
      for f in /sys/fs/cgroup/cpuacct/docker/$id/cpuacct.usage /sys/fs/cgroup/cpuacct/system.slice/docker-$id.scope/cpuacct.usage; do
        [ -r "$f" ] && { cpu_ms=$(( $(cat "$f") / 1000000 )); break; }
      done
      for f in /sys/fs/cgroup/system.slice/docker-$id.scope/cpu.stat /sys/fs/cgroup/docker/$id/cpu.stat; do
        [ -r "$f" ] && { cpu_ms=$(( $(awk '/^usage_usec/{print $2}' "$f") / 1000 )); break; }
      done
      break
    fi
    if [ "$t1" -gt "$deadline" ] || [ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]; then
      log "$name $phase: no healthz 200 (last code $code)"; ms_health=NA; break
    fi
    sleep 0.05
  done
  ms_health=${ms_health:-$(( (t1 - t0) / 1000000 ))}
  # What Node left in the cell's tmpfs (OpenClaw's own compile cache would go to /tmp/node-compile-cache).
  docker exec "$name" ls -R /tmp > "$OUT/$name.$phase.tmp-ls" 2>&1 || true
  docker logs --timestamps --since "$since" "$name" > "$OUT/$name.$phase.log" 2>&1 || true
  rel() { # pattern -> ms since t0 of the first matching line, or NA
    local ts; ts=$(grep -m1 -E "$1" "$OUT/$name.$phase.log" | awk '{print $1}')
    if [ -n "$ts" ]; then echo $(( ($(date -d "$ts" +%s%N) - t0) / 1000000 )); else echo NA; fi
  }
  f=$(rel '.'); c=$(rel 'loading configuration'); h=$(rel 'starting HTTP server')
  echo "$ms_health $f $c $h $cpu_ms"
}

one_run() { # mode run: one fresh start and WARM warm starts on one state dir; rows to stdout
  local mode=$1 run=$2 name dir phases load h f c l cpu s0 s1 cb cf
  name=mtp-bench-boot-$mode-$run
  dir=$OUT/$mode-$run
  write_state "$dir"
  create_cell "$name" "$mode" "$dir"
  phases="fresh"; for w in $(seq 1 "$WARM"); do phases="$phases warm$w"; done
  for phase in $phases; do
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    read -r h f c l cpu < <(measure_start "$name" "$phase")
    [ "$h" = NA ] && { log "$mode run$run $phase failed"; exit 1; }
    s0=$(now_ns); docker stop "$name" >/dev/null; s1=$(now_ns)
    cb=0; cf=0
    if [ -d "$dir/state/.cache/node-compile" ]; then
      cb=$(du -sb "$dir/state/.cache/node-compile" | cut -f1)
      cf=$(find "$dir/state/.cache/node-compile" -type f | wc -l)
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$run" "$phase" "$h" "$f" "$c" "$l" "$cpu" \
      $(( (s1 - s0) / 1000000 )) "$cb" "$cf" "$load"
    log "$mode run$run $phase: healthz ${h}ms firstlog ${f}ms config ${c}ms http ${l}ms cpu ${cpu}ms cache ${cb}B/${cf} files load [$load]"
  done
  docker rm -f "$name" >/dev/null
}

if [ -n "$ONE" ]; then one_run "$ONE_MODE" "$ONE_RUN"; exit 0; fi

printf 'mode\trun\tphase\tstart_to_healthz_ms\tstart_to_firstlog_ms\tstart_to_config_ms\tstart_to_http_ms\tcpu_ms\tstop_ms\tcache_bytes\tcache_files\tloadavg\n' > "$RESULTS"
log "image=$IMAGE runs=$RUNS warm=$WARM modes=[$MODES] out=$OUT"
for run in $(seq 1 "$RUNS"); do
  # Alternate the order of the modes between runs, so drift in host load does not favour one.
  order=$MODES
  [ $(( run % 2 )) = 0 ] && order=$(printf '%s\n' $MODES | tac | tr '\n' ' ')
  for mode in $order; do
    # Each mode-run in a child process; on failure (e.g. the Docker daemon restarted
    # under us) wait for Docker and retry once, keeping only complete runs.
    for attempt in 1 2; do
      if bash "$0" __one "$IMAGE" "$RUNS" "$MODES" "$mode" "$run" > "$OUT/rows.tmp"; then
        cat "$OUT/rows.tmp" >> "$RESULTS"; break
      fi
      log "$mode run$run attempt $attempt failed"
      docker rm -f "mtp-bench-boot-$mode-$run" >/dev/null 2>&1 || true
      for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 5; done
      docker network inspect "$NET" >/dev/null 2>&1 || docker network create --driver bridge --subnet "$SUBNET" \
        -o com.docker.network.bridge.enable_icc=false --label mtp.bench=boot "$NET" >/dev/null
    done
  done
done

# Medians per mode and phase kind (fresh / warm pooled / warm1).
python3 - "$RESULTS" <<'PY' | tee "$OUT/summary.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter='\t'))
def med(xs):
    xs = [int(x) for x in xs if x not in ('NA', '')]
    return (statistics.median(xs), len(xs)) if xs else ('NA', 0)
for mode in dict.fromkeys(r['mode'] for r in rows):
    for label, pick in [('fresh', lambda p: p == 'fresh'), ('warm1', lambda p: p == 'warm1'),
                        ('warm(all)', lambda p: p.startswith('warm'))]:
        sel = [r for r in rows if r['mode'] == mode and pick(r['phase'])]
        h = med(r['start_to_healthz_ms'] for r in sel)
        f = med(r['start_to_firstlog_ms'] for r in sel)
        c = med(r['start_to_config_ms'] for r in sel)
        l = med(r['start_to_http_ms'] for r in sel)
        s = med(r['stop_ms'] for r in sel)
        u = med(r.get('cpu_ms', 'NA') for r in sel)
        print(f"{mode:12} {label:9} n={h[1]} healthz={h[0]}ms firstlog={f[0]}ms config={c[0]}ms http-server={l[0]}ms cpu={u[0]}ms stop={s[0]}ms")
    last = [r for r in rows if r['mode'] == mode]
    print(f"{mode:12} cache after last start: {max(int(r['cache_bytes']) for r in last)} bytes, {max(int(r['cache_files']) for r in last)} files")
PY
log "done; results in $RESULTS"
