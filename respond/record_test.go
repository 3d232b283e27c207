package respond

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/go-json-experiment/json"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/accessledger/accessledger/event"
)

func testResponse(i int) *event.Response {
	idx := uint64(i)
	return &event.Response{Action: event.ActionAcknowledged, Time: time.Unix(1_790_000_000, 0).UTC(),
		Alert: &idx, DedupKey: fmt.Sprintf("dk-%d", i), By: "alice", Note: "seen"}
}

// TestRecorderFindsALateCommit pins the recorder's cursor: a scan from the
// cursor starts past the records appended last, and a record that commits
// after a later-numbered one was appended (its sequence number was taken
// first) is still appended by the next scan from the start.
func TestRecorderFindsALateCommit(t *testing.T) {
	l := newTestLedger(t)
	s, err := Open(bg, Config{Log: l, Dir: t.TempDir(), BadgerOptions: smallBadger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	late := s.nextSeq() // taken by a transaction that commits later
	if err := s.Record(bg, testResponse(1)); err != nil {
		t.Fatal(err)
	}
	n, next, err := s.appendRecords(bg, nil)
	if err != nil || n != 1 || next == nil {
		t.Fatalf("appendRecords from the start = %d, %x, %v; want 1 record and a cursor", n, next, err)
	}
	v, err := json.Marshal(&pendingRecord{Response: *testResponse(2), DedupKey: "late"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(indexKey(keyRecordPfx, late), v) }); err != nil {
		t.Fatal(err)
	}
	if n, _, err := s.appendRecords(bg, next); err != nil || n != 0 {
		t.Fatalf("appendRecords from the cursor = %d, %v; want nothing (the late record is before it)", n, err)
	}
	if n, _, err := s.appendRecords(bg, nil); err != nil || n != 1 {
		t.Fatalf("appendRecords from the start = %d, %v; want the late record", n, err)
	}
	got := responseLeaves(t, l)
	if len(got) != 2 || *got[0].Alert != 1 || *got[1].Alert != 2 {
		t.Fatalf("response leaves %+v, want alerts 1 then 2", got)
	}
	if n, _, err := s.appendRecords(bg, nil); err != nil || n != 0 {
		t.Fatalf("a third scan appended %d records (%v); want none", n, err)
	}
}

// BenchmarkRecordToLog measures a response's way from Record to the log
// with the recorder running, one record at a time, as the decision store
// and acknowledgements produce them. Its cost must not grow with the
// records appended before (they are deleted from the queue, and a scan
// from the queue's start steps over every deletion not yet compacted).
//
//	go test ./respond -run '^$' -bench RecordToLog -benchtime 20000x
func BenchmarkRecordToLog(b *testing.B) {
	l := newTestLedger(b)
	// The production database options: the test ones flush small
	// memtables often, which hides the cost of scanning deletions.
	s, stop := runService(b, Config{Log: l, Dir: b.TempDir(),
		BadgerOptions: func(o badger.Options) badger.Options { return o }})
	defer stop()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := range b.N {
		if err := s.Record(bg, testResponse(i)); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(b, "every record in the log", func() bool {
		return testutil.ToFloat64(s.metrics.recorded) >= float64(b.N)
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/record")
}

// cpuTime is the process's CPU time (user and system) in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
