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
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-bench-out}
N=${QUERY_ENTRIES:-1000000}
PORT=${QUERY_PORT:-18731}
mkdir -p "$OUT" bin
go build -o bin/accessledger ./cmd/accessledger
go build -o bin/loadgen ./cmd/loadgen
(cd scripts/querybench && go build -o ../../bin/querybench .)

start() { # $1 data dir, $2 --index value
  bin/accessledger serve --data "$1" --listen 127.0.0.1:$PORT --log-level warn --detect=false --index="$2" >"$1.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do [ -s "$1/admin.key" ] && curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$1.log"; exit 1
}
stop() { kill "$PID"; wait "$PID" || true; }

for round in 1 2; do
  for idx in off on; do
    D=$(mktemp -d); start "$D/d" "$([ $idx = on ] && echo true || echo false)"
    bin/loadgen -url http://127.0.0.1:$PORT -key "$(cat $D/d/admin.key)" -pid $PID -mode batch -batch 100 -c 16 \
      -duration 15s -warmup 2s | tee "$OUT/query-ingest-$idx-$round.txt"
    if [ $idx = on ]; then
      curl -s -H "Authorization: Bearer $(cat $D/d/admin.key)" http://127.0.0.1:$PORT/metrics | grep -E '^accessledger_index_(size|lag_entries) ' | tee -a "$OUT/query-ingest-$idx-$round.txt"
    fi
    stop; rm -rf "$D"
  done
done

D=$(mktemp -d); start "$D/d" true
KEY=$(cat "$D/d/admin.key")
bin/querybench -url http://127.0.0.1:$PORT -key "$KEY" -probe 25s >"$OUT/query-probe.txt" &
PROBE=$!
bin/loadgen -url http://127.0.0.1:$PORT -key "$KEY" -pid $PID -mode batch -batch 1000 -c 8 -n "$N" | tee "$OUT/query-fill.txt"
wait $PROBE; cat "$OUT/query-probe.txt"
bin/querybench -url http://127.0.0.1:$PORT -key "$KEY" -n 50 | tee "$OUT/query-latency.txt"
du -sh "$D/d/badger" "$D/d/index" | tee -a "$OUT/query-latency.txt"
stop; rm -rf "$D"
