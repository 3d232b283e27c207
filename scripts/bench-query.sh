#!/usr/bin/env bash
# scripts/bench-query.sh — benchmarks of the query indexes and API; see
# BENCHMARKS.md ("Queries, evidence and indexing").
#
#  1. HTTP batch ingest (batches of 100, 16 clients, 15 s after 2 s of
#     warm-up) against a fresh server with indexing off, then on, then off
#     and on again (interleaved) -> bench-out/query-ingest-{off,on}-{1,2}.txt
#  2. A fresh server with indexing on, filled with QUERY_ENTRIES (1,000,000)
#     events in batches of 1000 by 8 clients as fast as they go, while a
#     probe measures ack-to-queryable (an event posted, then polled for by
#     actor until the count finds it)        -> bench-out/query-fill.txt, query-probe.txt
#  3. On that log: query latencies (p50, p99 of 50 runs), NDJSON, CSV and
#     OCSF exports of 100,000 matches, evidence bundles -> bench-out/query-latency.txt
#
# Detection is off (--detect=false) so that only indexing is measured.
# Everything runs on loopback. Takes about 3 minutes on 2 cores.
#
# To compare exports before and after a change on one filled log, keep the
# data directory and pass it back: QUERY_DATA=<dir> skips steps 1 and 2
# and serves that directory (it must hold a log filled by step 2; the
# server appends a few entries at each start) with QUERY_BIN (default
# bin/accessledger, built from this tree); QUERY_ONLY=export then runs
# only the NDJSON exports (-export-runs 3 of each way). QUERY_KEEP=1 keeps
# the log that step 2 fills (its path is printed):
#
#   go build -o /tmp/old-accessledger ./cmd/accessledger   # before the change
#   QUERY_KEEP=1 scripts/bench-query.sh                      # prints "kept /var/tmp/bench-query.XXXXXX/d"
#   QUERY_DATA=/var/tmp/bench-query.XXXXXX/d QUERY_BIN=/tmp/old-accessledger QUERY_ONLY=export scripts/bench-query.sh
#   QUERY_DATA=/var/tmp/bench-query.XXXXXX/d QUERY_ONLY=export scripts/bench-query.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-bench-out}
N=${QUERY_ENTRIES:-1000000}
PORT=${QUERY_PORT:-18731}
BIN=${QUERY_BIN:-bin/accessledger}
mkdir -p "$OUT" bin
go build -o bin/accessledger ./cmd/accessledger
go build -o bin/loadgen ./cmd/loadgen
(cd scripts/querybench && go build -o ../../bin/querybench .)

start() { # $1 data dir, $2 --index value
  "$BIN" serve --data "$1" --listen 127.0.0.1:$PORT --log-level warn --detect=false --index="$2" >"$1.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do [ -s "$1/admin.key" ] && curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$1.log"; exit 1
}
stop() { kill "$PID"; wait "$PID" || true; }

if [ -n "${QUERY_DATA:-}" ]; then
  start "$QUERY_DATA" true
  trap stop EXIT
  only=()
  [ "${QUERY_ONLY:-}" = export ] && only=(-only export -export-runs 3)
  echo "$BIN, $(date -u +%H:%M:%S), load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/query-latency.txt"
  bin/querybench -url http://127.0.0.1:$PORT -key "$(cat "$QUERY_DATA/admin.key")" -n 50 "${only[@]}" | tee -a "$OUT/query-latency.txt"
  exit
fi

for round in 1 2; do
  for idx in off on; do
    D=$(mktemp -d /var/tmp/bench-query.XXXXXX); start "$D/d" "$([ $idx = on ] && echo true || echo false)"
    bin/loadgen -url http://127.0.0.1:$PORT -key "$(cat $D/d/admin.key)" -pid $PID -mode batch -batch 100 -c 16 \
      -duration 15s -warmup 2s | tee "$OUT/query-ingest-$idx-$round.txt"
    if [ $idx = on ]; then
      curl -s -H "Authorization: Bearer $(cat $D/d/admin.key)" http://127.0.0.1:$PORT/metrics | grep -E '^accessledger_index_(size|lag_entries) ' | tee -a "$OUT/query-ingest-$idx-$round.txt"
    fi
    stop; rm -rf "$D"
  done
done

D=$(mktemp -d /var/tmp/bench-query.XXXXXX); start "$D/d" true
KEY=$(cat "$D/d/admin.key")
bin/querybench -url http://127.0.0.1:$PORT -key "$KEY" -probe 25s >"$OUT/query-probe.txt" &
PROBE=$!
bin/loadgen -url http://127.0.0.1:$PORT -key "$KEY" -pid $PID -mode batch -batch 1000 -c 8 -n "$N" | tee "$OUT/query-fill.txt"
wait $PROBE; cat "$OUT/query-probe.txt"
bin/querybench -url http://127.0.0.1:$PORT -key "$KEY" -n 50 | tee "$OUT/query-latency.txt"
du -sh "$D/d/badger" "$D/d/index" | tee -a "$OUT/query-latency.txt"
stop
if [ -n "${QUERY_KEEP:-}" ]; then echo "kept $D/d"; else rm -rf "$D"; fi
