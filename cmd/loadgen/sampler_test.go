package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/accessledger/accessledger/internal/badgerutil"
)

// TestWindowsShowServerStorage runs loadgen with -window against a server
// whose /metrics is the real storage collector over a real Badger
// database that every request writes to: each window must carry the
// tables the database wrote in it, adding up to what the collector
// counted, and /metrics must be read with the key.
func TestWindowsShowServerStorage(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil).
		WithMemTableSize(1 << 20).WithNumLevelZeroTables(2).WithNumLevelZeroTablesStall(10).
		WithValueThreshold(64 << 10).WithCompression(options.None).WithBlockCacheSize(0))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(badgerutil.NewStorageMetrics("test", db))
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	var n atomic.Int64
	var unauthorized atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sekrit" {
			unauthorized.Add(1)
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/metrics" {
			metrics.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		i := n.Add(1)
		// Each request writes 16 KiB: the 1 MiB memtables flush often.
		err := db.Update(func(txn *badger.Txn) error {
			return txn.Set([]byte(fmt.Sprintf("k%09d", i)), bytes.Repeat(body, 16<<10/max(1, len(body))+1)[:16<<10])
		})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	sum, stdout := runSummary(t, "-url", srv.URL, "-key", "sekrit", "-mode", "single", "-c", "4", "-duration", "3s", "-window", "1s", "-prepare", "100")
	if len(sum.Windows) < 2 || sum.ServerSampleError != "" {
		t.Fatalf("windows %d, sample error %q; want 3 windows read", len(sum.Windows), sum.ServerSampleError)
	}
	var written float64
	for _, w := range sum.Windows {
		v, ok := w.TablesWritten["test"]
		if !ok {
			t.Fatalf("window at %vs has no tables written for db=test: %+v", w.StartSeconds, w)
		}
		written += v
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() == tablesMetric {
			total = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if written <= 0 || written > total {
		t.Errorf("tables written over the windows = %v, want more than 0 and at most the %v the database wrote (%d requests)", written, total, n.Load())
	}
	if unauthorized.Load() > 0 {
		t.Errorf("%d requests without the key", unauthorized.Load())
	}
	if !strings.Contains(stdout, "tables written: test ") {
		t.Errorf("the text summary does not show the tables written per window:\n%s", stdout)
	}
}

// TestAttach: windows take the samples nearest their ends; a window
// without two distinct samples, or samples without metrics, gets nothing.
func TestAttach(t *testing.T) {
	s := func(at, cpu time.Duration, tables map[string]float64) serverSample {
		return serverSample{at: at, cpu: cpu, cpuOK: true, tables: tables}
	}
	samples := []serverSample{
		s(2*time.Millisecond, 10*time.Second, map[string]float64{"ledger": 5}),
		s(10*time.Second+3*time.Millisecond, 25*time.Second, map[string]float64{"ledger": 9, "index": 1}),
		s(19*time.Second+990*time.Millisecond, 36*time.Second, nil), // /metrics failed
	}
	samples[0].work = map[string]float64{gcCycles: 40}
	samples[1].work = map[string]float64{gcCycles: 52, detectorSnapshots: 1, detectorSnapSecs: 0.5}
	ws := make([]window, 2)
	attach(ws, samples, 10*time.Second)
	if got := ws[0].ServerWork; got[gcCycles] != 12 || got[detectorSnapshots] != 1 || got[detectorSnapSecs] != 0.5 {
		t.Errorf("window 0 server work = %v, want 12 gc cycles and one snapshot of 0.5 s", got)
	}
	if ws[1].ServerWork != nil {
		t.Errorf("window 1 server work = %v, want none (its end sample has no metrics)", ws[1].ServerWork)
	}
	if got := ws[0].TablesWritten; got["ledger"] != 4 || got["index"] != 1 {
		t.Errorf("window 0 tables written = %v, want ledger 4, index 1 (new since the first sample)", got)
	}
	if c := ws[0].ServerCPUCores; c < 1.49 || c > 1.51 {
		t.Errorf("window 0 cpu = %v cores, want 15 s over 10 s", c)
	}
	if ws[1].TablesWritten != nil {
		t.Errorf("window 1 tables written = %v, want none (its end sample has no metrics)", ws[1].TablesWritten)
	}
	if c := ws[1].ServerCPUCores; c < 1.09 || c > 1.11 {
		t.Errorf("window 1 cpu = %v cores, want 11 s over 10 s", c)
	}
}

// TestParseServerMetrics reads the tables written by their db label, the
// collector's cycles, the detector's snapshots and the log's commits,
// among other metrics.
func TestParseServerMetrics(t *testing.T) {
	text := `# HELP accessledger_storage_tables_written_total Tables.
# TYPE accessledger_storage_tables_written_total counter
accessledger_storage_tables_written_total{db="ledger"} 83
accessledger_storage_tables_written_total{db="index"} 14
# HELP accessledger_tree_size_entries Durable tree size.
# TYPE accessledger_tree_size_entries gauge
accessledger_tree_size_entries 1.355158e+06
# HELP go_gc_duration_seconds A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0.5"} 8.3825e-05
go_gc_duration_seconds_sum 0.000478532
go_gc_duration_seconds_count 6
# HELP accessledger_detect_state_save_seconds Saves.
# TYPE accessledger_detect_state_save_seconds histogram
accessledger_detect_state_save_seconds_bucket{kind="journal",le="+Inf"} 40
accessledger_detect_state_save_seconds_sum{kind="journal"} 0.5
accessledger_detect_state_save_seconds_count{kind="journal"} 40
accessledger_detect_state_save_seconds_bucket{kind="snapshot",le="+Inf"} 2
accessledger_detect_state_save_seconds_sum{kind="snapshot"} 1.25
accessledger_detect_state_save_seconds_count{kind="snapshot"} 2
# HELP accessledger_commit_latency_seconds Time to sequence, write and sync one batch.
# TYPE accessledger_commit_latency_seconds histogram
accessledger_commit_latency_seconds_bucket{le="0.001"} 10
accessledger_commit_latency_seconds_bucket{le="+Inf"} 12
accessledger_commit_latency_seconds_sum 0.024
accessledger_commit_latency_seconds_count 12
`
	tables, work, err := parseServerMetrics(strings.NewReader(text))
	if err != nil || len(tables) != 2 || tables["ledger"] != 83 || tables["index"] != 14 {
		t.Errorf("parseServerMetrics tables = %v, %v; want ledger 83, index 14", tables, err)
	}
	if len(work) != 5 || work[gcCycles] != 6 || work[detectorSnapshots] != 2 || work[detectorSnapSecs] != 1.25 || work[commits] != 12 || work[commitSecs] != 0.024 {
		t.Errorf("parseServerMetrics work = %v; want 6 gc cycles, 2 snapshots in 1.25 s, 12 commits in 24 ms", work)
	}
	if _, _, err := parseServerMetrics(strings.NewReader("not { metrics\n")); err == nil {
		t.Error("parseServerMetrics accepted malformed text")
	}
}
