package detect

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/internal/ledgertest"
	"github.com/accessledger/accessledger/ledger"
)

// BenchmarkDetectorFollow measures the detector as the server runs it:
// following a written log of b.N event leaves (20,000 users) through the
// default pack, saving its state in its own Badger database with the
// production options, from the first leaf to the last saved cursor. It
// reports leaves/s and the process's CPU time per leaf (the ledger is
// idle meanwhile, so that is the detector's, Badger's and the GC's).
//
//	go test ./detect -run '^$' -bench DetectorFollow -benchtime 200000x
func BenchmarkDetectorFollow(b *testing.B) {
	evs := benchEvents(b.N, 20_000)
	l := ledgertest.New(b, ledger.Config{})
	ctx := context.Background()
	entries := make([]ledger.Entry, 0, 1000)
	for i, ev := range evs {
		leaf, err := event.EncodeLeaf(event.KindEvent, ev.Time, ev.Canonical())
		if err != nil {
			b.Fatal(err)
		}
		entries = append(entries, ledger.Entry{Data: leaf})
		if len(entries) == cap(entries) || i == len(evs)-1 {
			if _, err := l.Append(ctx, entries...); err != nil {
				b.Fatal(err)
			}
			entries = entries[:0]
		}
	}
	e, err := LoadDefault(Config{})
	if err != nil {
		b.Fatal(err)
	}
	d, err := OpenDetector(ctx, DetectorConfig{Log: l, Engine: e, Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	go func() { done <- d.Run(rctx) }()
	for d.Cursor() < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "leaves/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/leaf")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
