//go:build unix

package ledger_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/accessledger/accessledger/ledger"
)

// selfAuditBenchSize is the size of the log BenchmarkSelfAudit audits;
// ACCESSLEDGER_SELFAUDIT_BENCH_SIZE overrides it.
const selfAuditBenchSize = 1_000_000

// BenchmarkSelfAudit measures SelfAudit of a log of a million 438-byte
// event leaves (built first, in some ten seconds, and reopened with
// QuickOpen), with nothing else running: leaves/s is the rate a daily
// audit reaches while its storage is in the page cache, cpu-µs/leaf the
// CPU time it costs per leaf. One op is one whole audit.
//
//	go test -run '^$' -bench SelfAudit -benchtime 5x ./ledger
func BenchmarkSelfAudit(b *testing.B) {
	size := uint64(selfAuditBenchSize)
	if s := os.Getenv("ACCESSLEDGER_SELFAUDIT_BENCH_SIZE"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			b.Fatalf("ACCESSLEDGER_SELFAUDIT_BENCH_SIZE=%q: %v", s, err)
		}
		size = n
	}
	src := newLeafSource(b)
	cfg := benchConfig(b, b.TempDir(), benchSigner(b))
	buildSelfAuditLog(b, cfg, src, size)
	cfg.QuickOpen = true
	ctx := context.Background()
	l, err := ledger.Open(ctx, cfg)
	if err != nil {
		b.Fatalf("Open() = %v", err)
	}
	defer l.Close(ctx)
	if cp := l.Latest(); cp.Size != size {
		b.Fatalf("Latest().Size = %d, want %d", cp.Size, size)
	}
	b.SetBytes(int64(size) * int64(src.size()))
	b.ReportAllocs()
	cpu0 := cpuTime()
	var last ledger.SelfAuditReport
	for b.Loop() {
		rep, err := l.SelfAudit(ctx)
		if err != nil || !rep.Clean || rep.Leaves != size {
			b.Fatalf("SelfAudit() = %v, %v; want a clean audit of %d leaves", rep, err, size)
		}
		last = rep
	}
	b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(size)/float64(b.N), "cpu-µs/leaf")
	b.Log(last)
}

// buildSelfAuditLog creates the log of cfg with size event leaves, from 4
// goroutines appending 4096-entry batches, and closes it. Storage syncing
// is off while building: the audit reads the same layout either way.
func buildSelfAuditLog(b *testing.B, cfg ledger.Config, src *leafSource, size uint64) {
	b.Helper()
	cfg.UnsafeNoSyncForTesting = true
	l, err := ledger.Create(context.Background(), cfg)
	if err != nil {
		b.Fatalf("Create() = %v", err)
	}
	const batch = 4096
	var next atomic.Uint64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for {
				end := next.Add(batch)
				if end-batch >= size {
					return
				}
				entries := make([]ledger.Entry, min(batch, size-(end-batch)))
				for i := range entries {
					entries[i] = src.entry()
				}
				if _, err := l.Append(context.Background(), entries...); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("Append() = %v", err)
	}
	if err := l.Close(context.Background()); err != nil {
		b.Fatalf("Close() = %v", err)
	}
}
