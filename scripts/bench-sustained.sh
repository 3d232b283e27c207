#!/usr/bin/env bash
# scripts/bench-sustained.sh — steady under sustained load: measure the
# server's maximum single-event rate (64 clients, unpaced, over
# SUSTAINED_MAX_DURATION (30s) after SUSTAINED_WARMUP (60s) of the same
# load, so that it is the rate of a server holding the state a long run
# builds, not that of an empty one), then run at
# SUSTAINED_FRACTION (80 %) of it for SUSTAINED_DURATION (10m), paced, with
# throughput and p99 per 10 s window and the server's RSS, and plot them
# (BENCHMARKS-sustained.png, via scripts/benchplot) with the tables each
# database wrote per window (its flushes and compactions). Prints the lowest
# window against the run's median. `make bench-sustained` runs it.
# SUSTAINED_RATE, if set, is the pace in requests/s instead (no maximum is
# measured): runs that compare builds or settings then load them alike.
# SUSTAINED_CLIENTS (64) is the number of clients of the paced run; each
# sends its next request when it is due or when its last one returns,
# whichever is later, so 64 clients hold a pace of 10,000/s only while the
# mean latency stays under 6.4 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v go >/dev/null 2>&1; then export PATH="/usr/local/go/bin:$PATH"; fi

OUT=${BENCH_OUT:-bench-out}
DURATION=${SUSTAINED_DURATION:-10m}
FRACTION=${SUSTAINED_FRACTION:-0.8}
CLIENTS=${SUSTAINED_CLIENTS:-64}
WARMUP=${SUSTAINED_WARMUP:-60s}
MAXDUR=${SUSTAINED_MAX_DURATION:-30s}
PNG=${SUSTAINED_PNG:-BENCHMARKS-sustained.png}
mkdir -p "$OUT" bin
go build -o bin/accessledger ./cmd/accessledger
go build -o bin/loadgen ./cmd/loadgen
TMP=$(mktemp -d "${TMPDIR:-/tmp}/accessledger-sustained.XXXXXX")
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
url="http://127.0.0.1:$port"
bin/accessledger serve --data "$TMP/data" --listen "127.0.0.1:$port" --log-level warn >"$OUT/server-sustained.log" 2>&1 &
PID=$!
for _ in $(seq 1 200); do curl -s -o /dev/null --max-time 1 "$url/healthz" && break; sleep 0.05; done
key=$(tr -d ' \n' <"$TMP/data/admin.key")

echo "load before: $(uptime)" | tee "$OUT/sustained.txt"
if [ -n "${SUSTAINED_RATE:-}" ]; then
  rate=$SUSTAINED_RATE
  echo "running at $rate requests/s (SUSTAINED_RATE) for $DURATION" | tee -a "$OUT/sustained.txt"
else
  bin/loadgen -url "$url" -key "$key" -mode single -c 64 -warmup "$WARMUP" -duration "$MAXDUR" -json-out "$OUT/sustained-max.json" |
    grep -E 'throughput|latency' | sed 's/^/max: /' | tee -a "$OUT/sustained.txt"
  max=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok_requests_per_s"])' "$OUT/sustained-max.json")
  rate=$(python3 -c "print(round($max * $FRACTION))")
  echo "running at $rate requests/s ($FRACTION of $max) for $DURATION" | tee -a "$OUT/sustained.txt"
fi
echo "paced run: $CLIENTS clients" | tee -a "$OUT/sustained.txt"
bin/loadgen -url "$url" -key "$key" -mode single -c "$CLIENTS" -rate "$rate" -duration "$DURATION" -window 10s \
  -pid "$PID" -json-out "$OUT/sustained.json" >"$OUT/sustained-run.txt"
grep -E 'throughput|latency|server' "$OUT/sustained-run.txt" | tee -a "$OUT/sustained.txt"
python3 - "$OUT/sustained.json" <<'PY' | tee -a "$OUT/sustained.txt"
import json, statistics, sys
w = json.load(open(sys.argv[1]))["windows"]
ok = [x["ok_requests_per_s"] for x in w]
p99 = [x["p99_ms"] for x in w]
med, medp = statistics.median(ok), statistics.median(p99)
print("windows: %d of 10 s; throughput median %.0f/s, lowest %.0f/s (%.0f %% of the median), highest %.0f/s" % (len(ok), med, min(ok), 100 * min(ok) / med, max(ok)))
print("p99 per window: median %.1f ms, highest %.1f ms" % (medp, max(p99)))
pd = [x.get("p99_from_due_ms", 0) for x in w]
if all(pd):
    print("p99 per window from the time each request was due: median %.1f ms, highest %.1f ms" % (statistics.median(pd), max(pd)))
print("windows below 80 %% of the median: %d" % sum(1 for x in ok if x < 0.8 * med))
# What the server was doing: its CPU and the tables each database wrote
# (flushes and compactions), over the run and in its slowest windows.
def doing(x):
    t = x.get("tables_written") or {}
    s = "server %.2f cores, tables written: %s" % (x.get("server_cpu_cores", 0),
        ", ".join("%s %d" % (db, t[db]) for db in sorted(t)) or "unknown")
    wk = x.get("server_work") or {}
    if "gc_cycles" in wk:
        s += "; gc %d" % wk["gc_cycles"]
    if wk.get("detector_snapshots"):
        s += "; detector snapshots %d (%.2f s)" % (wk["detector_snapshots"], wk.get("detector_snapshot_seconds", 0))
    if wk.get("commits"):
        s += "; commits %d (mean %.2f ms)" % (wk["commits"], 1000 * wk.get("commit_seconds", 0) / wk["commits"])
    return s
gc = [(x.get("server_work") or {}).get("gc_cycles") for x in w]
if all(g is not None for g in gc):
    print("gc cycles per window: median %d, most %d" % (statistics.median(gc), max(gc)))
cm = [1000 * x["server_work"]["commit_seconds"] / x["server_work"]["commits"] for x in w if (x.get("server_work") or {}).get("commits")]
if cm:
    print("mean commit latency per window: median %.2f ms, highest %.2f ms" % (statistics.median(cm), max(cm)))
snaps = [x for x in w if (x.get("server_work") or {}).get("detector_snapshots")]
if snaps:
    print("detector snapshots in windows at: " + ", ".join("%.0f s (%.2f s)" % (x["start_s"], x["server_work"].get("detector_snapshot_seconds", 0)) for x in snaps))
dbs = sorted({db for x in w for db in (x.get("tables_written") or {})})
if dbs:
    print("tables written over the run: " + ", ".join("%s %d" % (db, sum((x.get("tables_written") or {}).get(db, 0) for x in w)) for db in dbs))
for x in sorted(w, key=lambda x: x["ok_requests_per_s"])[:3]:
    print("slow window at %.0f s: %.0f/s (%.0f %%), p99 %.1f ms; %s" % (x["start_s"], x["ok_requests_per_s"], 100 * x["ok_requests_per_s"] / med, x["p99_ms"], doing(x)))
PY
echo "load after: $(uptime)" | tee -a "$OUT/sustained.txt"
json_abs=$(realpath -m "$OUT/sustained.json"); png_abs=$(realpath -m "$PNG")
(cd scripts/benchplot && go run . -in "$json_abs" -out "$png_abs")
echo "plot: $PNG"
