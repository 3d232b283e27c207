package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// pacedRun runs loadgen with args against a server that answers every
// event after delay, and returns its summary.
func pacedRun(t *testing.T, delay time.Duration, args ...string) summary {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(delay)
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	sum, _ := runSummary(t, append([]string{"-url", srv.URL, "-mode", "single", "-prepare", "100"}, args...)...)
	return sum
}

// runSummary runs loadgen with args and -json-out, and returns the
// summary it wrote and what it printed.
func runSummary(t *testing.T, args ...string) (summary, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "run.json")
	var stdout, stderr bytes.Buffer
	args = append(args, "-json-out", out)
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("loadgen %q exited %d: %s", args, code, stderr.String())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var sum summary
	if err := json.Unmarshal(raw, &sum); err != nil {
		t.Fatal(err)
	}
	return sum, stdout.String()
}

// TestLatencyFromDue: with -rate, a server slower than the pace makes
// every client send late, and the latency from the time each request was
// due counts that wait, while the latency from sending does not; a server
// that keeps up gives about the same latency either way; an unpaced run
// reports no latency from the due time.
func TestLatencyFromDue(t *testing.T) {
	// Two clients at 200/s: each is due every 10 ms, and each request
	// takes 20 ms, so the clients fall further behind all along.
	slow := pacedRun(t, 20*time.Millisecond, "-c", "2", "-rate", "200", "-duration", "2s", "-window", "1s")
	due := slow.LatencyFromDueMs
	if due == nil {
		t.Fatal("paced run: no latency from the due time")
	}
	// By the end each client is about a second behind; a loaded machine
	// only adds to that, and to the latency from sending alike, so the
	// two are compared by difference, not by ratio.
	if due.P99 < 500 || due.P99 < slow.LatencyMs.P99+300 {
		t.Errorf("server slower than the pace: p99 from due %.1f ms, from sending %.1f ms; want the wait of a client 1 s behind counted", due.P99, slow.LatencyMs.P99)
	}
	if len(slow.Windows) == 0 || slow.Windows[len(slow.Windows)-1].P99FromDueMs < slow.Windows[len(slow.Windows)-1].P99Ms {
		t.Errorf("windows %+v: want each with a p99 from the due time at least its p99", slow.Windows)
	}

	// Two clients at 20/s against a 1 ms server: never late (a request
	// is due every 100 ms; the bound leaves room for a loaded machine).
	quick := pacedRun(t, time.Millisecond, "-c", "2", "-rate", "20", "-duration", "1s")
	if due := quick.LatencyFromDueMs; due == nil || due.P50 > quick.LatencyMs.P50+250 {
		t.Errorf("server keeping up: latency from due %+v, from sending %+v; want about the same", due, quick.LatencyMs)
	}

	if unpaced := pacedRun(t, time.Millisecond, "-c", "2", "-duration", "300ms"); unpaced.LatencyFromDueMs != nil {
		t.Errorf("unpaced run: latency from due %+v, want none", unpaced.LatencyFromDueMs)
	}
}
