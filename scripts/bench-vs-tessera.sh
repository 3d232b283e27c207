#!/usr/bin/env bash
# scripts/bench-vs-tessera.sh — accessledger and Tessera's POSIX conformance
# server (v1.0.4) side by side, in one run, interleaved: the same events
# from the same load generator (bodies prepared before the clock starts,
# keep-alive connections, on the same cores), single events at 64 and 256
# clients. Prints each run and the ratio accessledger / Tessera; results in
# $BENCH_OUT/vs-tessera.{txt,json}. make bench runs it.
#
# Tessera is installed with `go install` into $ACCESSLEDGER_TOOLS (default
# ~/.cache/accessledger-tools/bin), never into go.mod.
#
# With wrk on the PATH (Debian: apt-get install wrk), one more round per
# client count drives both servers with wrk instead, an HTTP load generator
# we did not write (C, epoll; about a third of loadgen's CPU per request),
# posting the same kind of prepared bodies (scripts/wrk-bodies.lua): a
# cross-check that the ratio is the servers', not our generator's.
# Tunables: VS_DURATION (10s), VS_WARMUP (2s), VS_ROUNDS (2), VS_CLIENTS ("64 256"),
# VS_WRK (auto: if wrk is installed; 0: never).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v go >/dev/null 2>&1; then export PATH="/usr/local/go/bin:$PATH"; fi

OUT=${BENCH_OUT:-bench-out}
TOOLS=${ACCESSLEDGER_TOOLS:-$HOME/.cache/accessledger-tools/bin}
DURATION=${VS_DURATION:-10s}
WARMUP=${VS_WARMUP:-2s}
ROUNDS=${VS_ROUNDS:-2}
CLIENTS=${VS_CLIENTS:-64 256}
WRK=${VS_WRK:-auto}
if [ "$WRK" = auto ]; then
  if command -v wrk >/dev/null 2>&1; then WRK=1; else WRK=0; fi
fi
mkdir -p "$OUT" bin "$TOOLS"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/accessledger-vs.XXXXXX")
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

if [ ! -x "$TOOLS/posix" ]; then
  echo "installing Tessera's POSIX conformance server v1.0.4 into $TOOLS"
  GOBIN="$TOOLS" go install github.com/transparency-dev/tessera/cmd/conformance/posix@v1.0.4
fi
go build -o bin/accessledger ./cmd/accessledger
go build -o bin/loadgen ./cmd/loadgen
go run ./scripts/notekey -name bench.example/tessera -out "$TMP/tessera.key" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
wait_up() { # url
  for _ in $(seq 1 200); do
    if curl -s -o /dev/null --max-time 1 "$1"; then return 0; fi
    sleep 0.05
  done
  echo "server at $1 did not come up" >&2; return 1
}

# start TARGET DIR PORT: starts one fresh server; sets PID, and KEY (the
# API key, empty for Tessera) and APATH (the path entries are posted to).
start() {
  local target=$1 dir=$2 port=$3 url="http://127.0.0.1:$3"
  if [ "$target" = tessera ]; then
    mkdir -p "$dir"
    "$TOOLS/posix" --storage_dir "$dir" --listen "127.0.0.1:$port" --private_key "$TMP/tessera.key" >"$dir.log" 2>&1 &
    PID=$!
    wait_up "$url/checkpoint"
    KEY="" APATH=/add
  else
    bin/accessledger serve --data "$dir" --listen "127.0.0.1:$port" --log-level warn >"$dir.log" 2>&1 &
    PID=$!
    wait_up "$url/healthz"
    KEY=$(tr -d ' \n' <"$dir/admin.key") APATH=/v1/events
  fi
}

stop() {
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
}

# cpu_ticks PID: user+system CPU time of the process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run TARGET CLIENTS ROUND: one fresh server, one loadgen run.
run() {
  local target=$1 c=$2 round=$3 port dir key=()
  port=$(free_port); dir="$TMP/$target-$c-$round"
  start "$target" "$dir" "$port"
  if [ -n "$KEY" ]; then key=(-key "$KEY"); fi
  # Enough prepared bodies for the warm-up and the run at ~30,000/s.
  bin/loadgen -target "$target" -url "http://127.0.0.1:$port" "${key[@]}" -mode single -c "$c" -id-fraction 0 \
    -prepare 400000 -warmup "$WARMUP" -duration "$DURATION" -pid "$PID" -json-out "$dir.json" |
    sed "s/^/[$target c=$c round $round] /"
  stop
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["ok_requests_per_s"], d["latency_ms"]["p99"], d["server"]["cpu_s"]*1e6/max(1, d["ok_requests"]))' "$dir.json" >"$dir.result"
  rm -rf "$dir"
}

# run_wrk TARGET CLIENTS: one fresh server, driven by wrk with bodies
# loadgen prepared (the same kind its own runs send): a warm-up, then
# the measured run; the server's CPU is read from /proc around it.
run_wrk() {
  local target=$1 c=$2 port dir t0 t1
  port=$(free_port); dir="$TMP/wrk-$target-$c"
  bin/loadgen -mode single -id-fraction 0 -prepare 400000 -bodies-out "$TMP/bodies.ndjson"
  start "$target" "$dir" "$port"
  export BODIES="$TMP/bodies.ndjson" WRK_PATH="$APATH" WRK_KEY="$KEY" WRK_THREADS=2
  wrk -t2 -c"$c" -d"$WARMUP" -s scripts/wrk-bodies.lua "http://127.0.0.1:$port$APATH" >/dev/null
  t0=$(cpu_ticks "$PID")
  wrk -t2 -c"$c" -d"$DURATION" --latency -s scripts/wrk-bodies.lua "http://127.0.0.1:$port$APATH" >"$dir.wrk"
  t1=$(cpu_ticks "$PID")
  stop
  sed "s/^/[wrk $target c=$c] /" "$dir.wrk" | grep -E 'Requests/sec|99%|requests in|Non-2xx|Socket errors'
  # requests/s of 2xx answers, p99 ms, server cpu-µs per request.
  python3 - "$dir.wrk" "$((t1 - t0))" "$(getconf CLK_TCK)" >"$dir.result" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
ticks, hz = int(sys.argv[2]), int(sys.argv[3])
n = int(re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text).group(1))
secs = float(re.search(r"requests in ([\d.]+)(us|ms|s|m)\b", text).group(1))
unit = re.search(r"requests in [\d.]+(us|ms|s|m)\b", text).group(1)
secs *= {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[unit]
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
ok = n - (int(bad.group(1)) if bad else 0)
m = re.search(r"99%\s+([\d.]+)(us|ms|s|m)\b", text)
p99 = float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 6e4}[m.group(2)]
print(ok / secs, p99, ticks / hz * 1e6 / max(1, n), n - ok)
PY
  rm -rf "$dir"
}

{
  echo "load before: $(uptime)"
  for c in $CLIENTS; do
    for round in $(seq 1 "$ROUNDS"); do
      run tessera "$c" "$round"
      run accessledger "$c" "$round"
    done
    if [ "$WRK" = 1 ]; then
      run_wrk tessera "$c"
      run_wrk accessledger "$c"
    fi
  done
  echo "load after: $(uptime)"
  echo
  # Server CPU per request (from /proc/<pid>/stat over the measured run)
  # moves less than throughput on a shared machine.
  echo "clients  round  tessera req/s (p99 ms) cpu-µs/req   accessledger req/s (p99 ms) cpu-µs/req   ratio"
  row() { # clients round tessera-result accessledger-result
    read -r t tp tc _ <"$3"
    read -r a ap ac _ <"$4"
    python3 -c 'import sys; c,r,t,tp,tc,a,ap,ac=sys.argv[1:]; print("%7s  %5s  %10.0f (%6.1f) %10.0f   %10.0f (%6.1f) %10.0f   %.2fx" % (c,r,float(t),float(tp),float(tc),float(a),float(ap),float(ac),float(a)/max(float(t),1e-9)))' "$1" "$2" "$t" "$tp" "$tc" "$a" "$ap" "$ac"
  }
  for c in $CLIENTS; do
    for round in $(seq 1 "$ROUNDS"); do
      row "$c" "$round" "$TMP/tessera-$c-$round.result" "$TMP/accessledger-$c-$round.result"
    done
    if [ "$WRK" = 1 ]; then
      row "$c" wrk "$TMP/wrk-tessera-$c.result" "$TMP/wrk-accessledger-$c.result"
    fi
  done
  if [ "$WRK" = 1 ]; then
    echo "(round wrk: driven by wrk $(wrk --version 2>&1 | head -1 | awk '{print $2}') with the same kind of bodies, instead of loadgen)"
    for f in "$TMP"/wrk-*.result; do
      read -r _ _ _ bad <"$f"
      if [ "$bad" != 0 ]; then echo "WARNING: $(basename "$f" .result): $bad answers were not 2xx"; fi
    done
  fi
} | tee "$OUT/vs-tessera.txt"
