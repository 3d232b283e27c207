#!/usr/bin/env bash
# scripts/bench.sh — what `make bench` runs; see BENCHMARKS.md.
#
#  1. Go benchmarks of the ledger (and event) packages -> bench-out/go-bench.txt,
#     and of the responders                            -> bench-out/respond-bench.txt
#  2. Builds bin/accessledger and bin/loadgen, then against a real server on
#     127.0.0.1 (a fresh data directory per phase, removed afterwards):
#       batch   POST batches of 100 events, 16 clients   -> bench-out/http-batch.{txt,json}
#       batch-writepath  the same with --index=false --detect=false
#                                                         -> bench-out/http-batch-writepath.{txt,json}
#       single-after-batch  right after batch, on its server: single events,
#               64 clients, in 1 s windows     -> bench-out/http-single-after-batch.{txt,json}
#       single  POST one event per request, 64 clients   -> bench-out/http-single.{txt,json}
#       large   POST one ~64 KiB event per request, 64 clients, as fast as
#               they can; the server's peak RSS must stay under 512 MiB
#               (LARGE_RSS_BOUND_MIB): the script fails at the end if not
#                                                         -> bench-out/http-large.{txt,json}
#       fill    append 1,000,000 events in batches of 1000, then the server's
#               memory holding them, at once and idle 30 s later; idle,
#               its RSS must be under 512 MiB (HOLD_RSS_BOUND_MIB)
#                                                         -> bench-out/http-fill.{txt,json}, fill-mem.txt
#       reopen  restart on the filled log (full verification) -> bench-out/reopen.txt
#       audit   audit --full of the filled log against that server
#                                                         -> bench-out/audit.{txt,json}
#  3. scripts/bench-vs-tessera.sh: accessledger and Tessera's POSIX
#     conformance server side by side, single events at 64 and 256
#     clients, interleaved, with the ratio  -> bench-out/vs-tessera.txt
#     (VS_SKIP=1 skips it); with wrk installed, one more round each
#     driven by wrk, a generator we did not write
#
# Everything runs on loopback only. Takes about 8 minutes on 2 cores.
# Data lives under $TMPDIR (default /tmp): it must be a real disk, not
# tmpfs, or the synced-commit figures mean nothing.
# Tunables (environment): BENCHTIME (default 2s), BENCH_COUNT (1),
# HTTP_DURATION (15s), HTTP_WARMUP (2s), FILL_ENTRIES (1000000),
# BENCH_OUT (bench-out), LARGE_RSS_BOUND_MIB (512), HOLD_RSS_BOUND_MIB (512).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1; then
  export PATH="/usr/local/go/bin:$PATH"
fi

OUT=${BENCH_OUT:-bench-out}
BENCHTIME=${BENCHTIME:-2s}
BENCH_COUNT=${BENCH_COUNT:-1}
HTTP_DURATION=${HTTP_DURATION:-15s}
HTTP_WARMUP=${HTTP_WARMUP:-2s}
FILL_ENTRIES=${FILL_ENTRIES:-1000000}
LARGE_RSS_BOUND_MIB=${LARGE_RSS_BOUND_MIB:-512}
HOLD_RSS_BOUND_MIB=${HOLD_RSS_BOUND_MIB:-512}

mkdir -p "$OUT" bin
TMP=$(mktemp -d "${TMPDIR:-/tmp}/accessledger-bench.XXXXXX")
SERVER_PID=""
URL=""

log() { printf '\n== %s\n' "$*"; }

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 300); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "server $SERVER_PID did not stop within 30s of SIGTERM; killing it" >&2
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

cleanup() {
  stop_server
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    return
  fi
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  echo "no free port found" >&2
  return 1
}

# healthy succeeds if GET $URL/healthz answers 200.
healthy() {
  if command -v curl >/dev/null 2>&1; then
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/healthz" || true)" = 200 ]
    return
  fi
  local hostport=${URL#http://}
  (
    exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" || exit 1
    printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n' "$hostport" >&3
    head -n1 <&3 | grep -q ' 200 '
  ) 2>/dev/null
}

# start_server DATA NAME [SERVE-FLAGS...] starts the server on a fresh
# port, waits until it is healthy and exports the admin key if the server
# generated one. It sets SERVER_PID, URL and START_MS (milliseconds to
# healthy).
start_server() {
  local data=$1 name=$2 port t0
  shift 2
  port=$(free_port)
  URL="http://127.0.0.1:$port"
  t0=$(date +%s%N)
  # ACCESSLEDGER_* settings of the caller's shell must not leak in.
  env $(env | sed -n 's/^\(ACCESSLEDGER_[A-Z0-9_]*\)=.*/-u \1/p') \
    bin/accessledger serve --data "$data" --listen "127.0.0.1:$port" --log-level warn "$@" \
    >"$OUT/server-$name.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 1200); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "server exited during start-up; see $OUT/server-$name.log:" >&2
      tail -n 20 "$OUT/server-$name.log" >&2
      exit 1
    fi
    healthy && break
    sleep 0.05
  done
  healthy || { echo "server not healthy after 60s" >&2; exit 1; }
  START_MS=$((($(date +%s%N) - t0) / 1000000))
  unset ACCESSLEDGER_API_KEY
  if [ -f "$data/admin.key" ]; then
    ACCESSLEDGER_API_KEY=$(tr -d ' \r\n' <"$data/admin.key")
    export ACCESSLEDGER_API_KEY
  fi
}

# storage DATA prints the size of a data directory and of its value log.
storage() {
  local total vlog
  total=$(du -sk "$1" | cut -f1)
  vlog=$(find "$1" -name '*.vlog' -printf '%s\n' | awk '{s += $1} END {printf "%d", s / 1024}')
  echo "data directory ${total} KiB on disk, value log ${vlog} KiB"
}

# settle PID waits (up to 60 s) until process PID uses less than a tenth of
# a core over a second.
settle() {
  local before after
  for _ in $(seq 1 60); do
    before=$(awk '{print $14 + $15}' "/proc/$1/stat")
    sleep 1
    after=$(awk '{print $14 + $15}' "/proc/$1/stat")
    [ $((after - before)) -lt $(($(getconf CLK_TCK) / 10)) ] && return 0
  done
  echo "process $1 still busy after 60 s" >&2
}

# mem PID prints the memory lines of /proc/PID/status.
mem() {
  grep -E '^(VmHWM|VmRSS|RssAnon|RssFile):' "/proc/$1/status" | tr -s ' \t' ' ' | tr '\n' ' '
  echo
}

{
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit:  $(git describe --always --dirty 2>/dev/null || echo unknown)"
  echo "go:      $(go version)"
  echo "cpus:    $(nproc)"
  echo "memory:  $(free -m 2>/dev/null | awk '/^Mem:/{print $2 " MiB"}')"
  echo "load:    $(uptime)"
  echo "tmpdir:  $TMP ($(stat -f -c %T "$TMP" 2>/dev/null || echo '?') filesystem)"
  # Other processes on the machine skew every figure: record how busy it is.
  if [ -r /proc/pressure/cpu ]; then
    echo "cpu pressure: $(head -n1 /proc/pressure/cpu)"
    echo "io pressure:  $(head -n1 /proc/pressure/io)"
  fi
} | tee "$OUT/machine.txt"
if [ "$(stat -f -c %T "$TMP" 2>/dev/null)" = tmpfs ]; then
  echo "WARNING: $TMP is on tmpfs: fsync is free there, so durable-append figures are meaningless; set TMPDIR to a directory on disk" >&2
fi

log "Go benchmarks (benchtime $BENCHTIME, count $BENCH_COUNT)"
go test -run '^$' -bench . -benchtime="$BENCHTIME" -count="$BENCH_COUNT" -timeout 30m ./ledger ./event |
  tee "$OUT/go-bench.txt"

log "Go benchmarks of the write path's followers and handler (detector from a written log, POST /v1/events in process)"
go test -run '^$' -bench 'DetectorFollow' -benchtime 200000x -count="$BENCH_COUNT" -timeout 30m ./detect |
  tee "$OUT/detect-bench.txt"
go test -run '^$' -bench 'PostEvents/handler' -benchtime="$BENCHTIME" -count="$BENCH_COUNT" -timeout 30m ./api |
  tee "$OUT/api-bench.txt"

log "Go benchmarks of the responders (webhooks, alert to delivery, decision pulls)"
go test -run '^$' -bench 'WebhookSend|AlertToWebhook|DecisionsDeltaPull|DecisionsEmptyPull' -benchtime="$BENCHTIME" \
  -count="$BENCH_COUNT" -timeout 30m ./respond | tee "$OUT/respond-bench.txt"

log "building bin/accessledger and bin/loadgen"
go build -o bin/accessledger ./cmd/accessledger
go build -o bin/loadgen ./cmd/loadgen

# phase NAME LOADGEN-ARGS... runs loadgen against a fresh server, started
# with the flags in $SERVE_FLAGS (default none: every default on). With
# $THEN_NAME and $THEN_ARGS set, it then runs loadgen $THEN_ARGS against the
# same server at once, into http-$THEN_NAME.{txt,json}.
phase() {
  local name=$1
  shift
  local data="$TMP/$name"
  log "HTTP $name: loadgen $*${SERVE_FLAGS:+ (server: $SERVE_FLAGS)}"
  # shellcheck disable=SC2086 # SERVE_FLAGS is a list of flags
  start_server "$data" "$name" ${SERVE_FLAGS:-}
  bin/loadgen -url "$URL" -pid "$SERVER_PID" -json-out "$OUT/http-$name.json" "$@" | tee "$OUT/http-$name.txt"
  if [ -n "${THEN_NAME:-}" ]; then
    log "HTTP $THEN_NAME: loadgen $THEN_ARGS, on the same server right after $name"
    # shellcheck disable=SC2086 # THEN_ARGS is a list of arguments
    bin/loadgen -url "$URL" -pid "$SERVER_PID" -json-out "$OUT/http-$THEN_NAME.json" $THEN_ARGS |
      tee "$OUT/http-$THEN_NAME.txt"
  fi
  stop_server
  # After a second load, the data directory holds what both wrote.
  storage "$data" | tee -a "$OUT/http-${THEN_NAME:-$name}.txt"
  rm -rf "$data"
}

# After the batches, single events on the same server, while its storage
# engines still flush and compact what the batches wrote: the issue found
# them falling to a fifth of a fresh server's rate. Windows of a second
# show any collapse; the summary compares them with the fresh single phase.
THEN_NAME=single-after-batch THEN_ARGS="-mode single -c 64 -duration $HTTP_DURATION -window 1s" \
  phase batch -mode batch -batch 100 -c 16 -duration "$HTTP_DURATION" -warmup "$HTTP_WARMUP"
# The same load on the write path alone: no query index, no detection
# (with them, batches at full speed are held to what the detector keeps
# up with: detect max_lag, README "Detection").
SERVE_FLAGS="--index=false --detect=false" \
  phase batch-writepath -mode batch -batch 100 -c 16 -duration "$HTTP_DURATION" -warmup "$HTTP_WARMUP"
phase single -mode single -c 64 -duration "$HTTP_DURATION" -warmup "$HTTP_WARMUP"
phase large -mode single -c 64 -pad 60000 -duration "$HTTP_DURATION"

log "HTTP fill: $FILL_ENTRIES events in batches of 1000, 4 clients"
FILL_DATA="$TMP/fill"
start_server "$FILL_DATA" fill
bin/loadgen -url "$URL" -pid "$SERVER_PID" -json-out "$OUT/http-fill.json" \
  -mode batch -batch 1000 -c 4 -n "$FILL_ENTRIES" | tee "$OUT/http-fill.txt"
sleep 2 # let the next checkpoint cover everything
{
  echo "server memory holding $FILL_ENTRIES entries (KiB): $(mem "$SERVER_PID")"
} | tee "$OUT/fill-mem.txt"
# An idle server hands back what the burst left (memlimit.go); its RSS
# then is what holding the entries costs.
sleep 30
{
  echo "the same, idle 30 s later (KiB): $(mem "$SERVER_PID")"
} | tee -a "$OUT/fill-mem.txt"
stop_server
storage "$FILL_DATA" | tee -a "$OUT/fill-mem.txt"

log "reopen: start on the filled log (full verification of every entry)"
start_server "$FILL_DATA" reopen
{
  echo "start-up to healthy: ${START_MS} ms"
  echo "server memory after open (KiB): $(mem "$SERVER_PID")"
} | tee "$OUT/reopen.txt"

log "audit --full of the filled log, against the reopened server once it is idle"
# A restarted detector replays the leaves since its last save: auditing
# meanwhile measures that too (590,000 leaves/s against 950,000-1,100,000
# once it is done).
settle "$SERVER_PID"
t0=$(date +%s%N)
ACCESSLEDGER_AUDIT_API_KEY=$ACCESSLEDGER_API_KEY bin/accessledger audit --url "$URL" \
  --vkey "$(cat "$FILL_DATA/log.vkey")" --state "$TMP/audit-state" --full --json >"$OUT/audit.json"
t1=$(date +%s%N)
leaves=$(sed -n 's/.*"leaves":\([0-9]*\).*/\1/p' "$OUT/audit.json")
rate=$(sed -n 's/.*"leaves_per_second":\([0-9]*\).*/\1/p' "$OUT/audit.json")
echo "audit --full: $leaves leaves verified at $rate leaves/s (the whole command: $(((t1 - t0) / 1000000)) ms)" |
  tee "$OUT/audit.txt"
stop_server
rm -rf "$FILL_DATA"

if [ "${VS_SKIP:-}" != 1 ]; then
  log "side by side with Tessera (scripts/bench-vs-tessera.sh)"
  BENCH_OUT="$OUT" scripts/bench-vs-tessera.sh | grep -E '^(load|clients| +[0-9]|\(round wrk|WARNING)|throughput|latency|Requests/sec'
fi

{
  echo "load at end:  $(uptime)"
  if [ -r /proc/pressure/cpu ]; then
    echo "cpu pressure at end: $(head -n1 /proc/pressure/cpu)"
    echo "io pressure at end:  $(head -n1 /proc/pressure/io)"
  fi
} | tee -a "$OUT/machine.txt"

log "summary (details in $OUT/)"
grep -E '^Benchmark' "$OUT/go-bench.txt" | awk '{
  line = $1
  for (i = 3; i <= NF; i++)
    if ($(i) == "events/s" || $(i) == "µs/proof" || $(i) == "cpu-µs/event" || $(i) == "ms/open") line = line "  " $(i-1) " " $(i)
  print line }'
for name in batch batch-writepath single single-after-batch large fill; do
  echo "http $name: $(grep -E '^throughput:' "$OUT/http-$name.txt" | sed 's/^throughput: *//')"
  echo "           $(grep -E '^latency:' "$OUT/http-$name.txt" | sed 's/^latency: *//')"
  echo "           $(grep -E '^server:' "$OUT/http-$name.txt" | sed 's/^server: *//')"
done
if command -v python3 >/dev/null 2>&1; then
  python3 - "$OUT/http-single.json" "$OUT/http-single-after-batch.json" <<'PY'
import json, sys
fresh, after = (json.load(open(f)) for f in sys.argv[1:3])
windows = after.get("windows") or []
line = "single after batch: %.0f %% of the fresh single phase's rate" % (100 * after["ok_requests_per_s"] / fresh["ok_requests_per_s"])
if windows:
    low = min(w["ok_requests_per_s"] for w in windows)
    line += "; lowest 1 s window %.0f req/s (%.0f %%), highest p99 of a window %.1f ms" % (
        low, 100 * low / fresh["ok_requests_per_s"], max(w["p99_ms"] for w in windows))
print(line)
PY
fi
echo "fill: $(tr '\n' ' ' <"$OUT/fill-mem.txt")"
echo "reopen: $(tr '\n' ' ' <"$OUT/reopen.txt")"
cat "$OUT/audit.txt"
if [ -f "$OUT/vs-tessera.txt" ]; then sed -n '/^clients/,$p' "$OUT/vs-tessera.txt"; fi

# Two memory bounds: the 64 KiB-event phase's peak (issue 6), and what the
# server holds with a million entries once idle (issue 2). A run that
# breaks one fails, after everything else is printed.
failed=0
check_bound() { # what, MiB or empty, bound in MiB
  if [ -z "$2" ] || [ "$2" -ge "$3" ]; then
    echo "FAIL: $1 was ${2:-not reported} MiB, over the bound of $3 MiB" >&2
    failed=1
  else
    echo "$1: $2 MiB, within the bound of $3 MiB"
  fi
}
check_bound "large: the server's peak RSS" \
  "$(sed -n 's/^server: .*peak RSS (VmHWM) \([0-9]*\).*/\1/p' "$OUT/http-large.txt")" "$LARGE_RSS_BOUND_MIB"
check_bound "fill: the server's RSS holding the entries, idle" \
  "$(sed -n 's/^the same, idle .* VmRSS: \([0-9]*\) kB.*/\1/p' "$OUT/fill-mem.txt" | awk '{print int($1 / 1024)}')" "$HOLD_RSS_BOUND_MIB"
exit "$failed"
