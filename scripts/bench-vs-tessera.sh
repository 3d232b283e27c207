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
# Tunables: VS_DURATION (10s), VS_WARMUP (2s), VS_ROUNDS (2), VS_CLIENTS ("64 256").
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v go >/dev/null 2>&1; then export PATH="/usr/local/go/bin:$PATH"; fi

OUT=${BENCH_OUT:-bench-out}
TOOLS=${ACCESSLEDGER_TOOLS:-$HOME/.cache/accessledger-tools/bin}
DURATION=${VS_DURATION:-10s}
WARMUP=${VS_WARMUP:-2s}
ROUNDS=${VS_ROUNDS:-2}
CLIENTS=${VS_CLIENTS:-64 256}
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

# run TARGET CLIENTS ROUND: one fresh server, one loadgen run.
run() {
  local target=$1 c=$2 round=$3 port dir url key=()
  port=$(free_port); dir="$TMP/$target-$c-$round"; url="http://127.0.0.1:$port"
  if [ "$target" = tessera ]; then
    mkdir -p "$dir"
    "$TOOLS/posix" --storage_dir "$dir" --listen "127.0.0.1:$port" --private_key "$TMP/tessera.key" >"$dir.log" 2>&1 &
    PID=$!
    wait_up "$url/checkpoint"
  else
    bin/accessledger serve --data "$dir" --listen "127.0.0.1:$port" --log-level warn >"$dir.log" 2>&1 &
    PID=$!
    wait_up "$url/healthz"
    key=(-key "$(tr -d ' \n' <"$dir/admin.key")")
  fi
  # Enough prepared bodies for the warm-up and the run at ~30,000/s.
  bin/loadgen -target "$target" -url "$url" "${key[@]}" -mode single -c "$c" -id-fraction 0 \
    -prepare 400000 -warmup "$WARMUP" -duration "$DURATION" -pid "$PID" -json-out "$dir.json" |
    sed "s/^/[$target c=$c round $round] /"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["ok_requests_per_s"], d["latency_ms"]["p99"], d["server"]["cpu_s"]*1e6/max(1, d["ok_requests"]))' "$dir.json" >"$dir.result"
  rm -rf "$dir"
}

{
  echo "load before: $(uptime)"
  for c in $CLIENTS; do
    for round in $(seq 1 "$ROUNDS"); do
      run tessera "$c" "$round"
      run accessledger "$c" "$round"
    done
  done
  echo "load after: $(uptime)"
  echo
  # Server CPU per request (from /proc/<pid>/stat over the measured run)
  # moves less than throughput on a shared machine.
  echo "clients  round  tessera req/s (p99 ms) cpu-µs/req   accessledger req/s (p99 ms) cpu-µs/req   ratio"
  for c in $CLIENTS; do
    for round in $(seq 1 "$ROUNDS"); do
      read -r t tp tc <"$TMP/tessera-$c-$round.result"
      read -r a ap ac <"$TMP/accessledger-$c-$round.result"
      python3 -c 'import sys; c,r,t,tp,tc,a,ap,ac=sys.argv[1:]; print("%7s  %5s  %10.0f (%6.1f) %10.0f   %10.0f (%6.1f) %10.0f   %.2fx" % (c,r,float(t),float(tp),float(tc),float(a),float(ap),float(ac),float(a)/max(float(t),1e-9)))' "$c" "$round" "$t" "$tp" "$tc" "$a" "$ap" "$ac"
    done
  done
} | tee "$OUT/vs-tessera.txt"
