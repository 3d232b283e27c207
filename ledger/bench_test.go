//go:build unix

package ledger_test

// Benchmarks of the durable write path and of proof building, through the
// public API only, on real Badger storage in b.TempDir() with production
// options (every commit synced). Each Append benchmark reports events/s:
// entries made durable per second of wall time, and cpu-µs/event: the
// process's CPU time (user+sys, all threads) per entry, which is far less
// sensitive than events/s to other processes competing for the machine.
//
//	go test -run '^$' -bench . -benchtime 2s ./ledger
//
// Compare before and after a change with benchstat (see BENCHMARKS.md).

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"iter"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

const benchOrigin = "example.com/accessledger/bench"

// benchInFlight is how many Append callers BenchmarkAppend keeps in flight,
// like an API server under many concurrent single-event requests.
const benchInFlight = 256

// benchLogSize is the size of the pre-built log of the proof and open
// benchmarks.
const benchLogSize = 100_000

// benchEventJSON is a realistic access event. Its request_id holds a
// fixed-width counter that leafSource overwrites per entry, so every leaf
// (and leaf hash) differs while all have the same size: 438 bytes as a
// canonical leaf.
const benchEventJSON = `{
  "time": "2026-03-14T09:26:53.589793238Z",
  "service": "billing-api",
  "actor": {"id": "user-7f3a9c21", "type": "user"},
  "source": {"ip": "203.0.113.57", "port": 52814, "user_agent": "okhttp/4.12.0", "asn": 64496},
  "action": "read",
  "category": "data_access",
  "outcome": "success",
  "resource": {"type": "invoice", "id": "inv-000123"},
  "mfa": true,
  "request_id": "req-0000000000000000",
  "tenant": "acme"
}`

const benchCounterMarker = "req-0000000000000000"

// leafSource makes canonical event leaves (438 bytes) that differ in
// a 16-digit counter. It is safe for concurrent use.
type leafSource struct {
	tmpl []byte // the canonical leaf
	off  int    // offset of the 16 counter digits in tmpl
	next atomic.Uint64
}

func newLeafSource(b testing.TB) *leafSource {
	b.Helper()
	ev, err := event.Parse([]byte(benchEventJSON), event.ParseOptions{})
	if err != nil {
		b.Fatalf("event.Parse(benchEventJSON) = %v", err)
	}
	received := time.Date(2026, 3, 14, 9, 26, 54, 0, time.UTC)
	leaf, err := event.EncodeLeaf(event.KindEvent, received, ev.Canonical())
	if err != nil {
		b.Fatalf("event.EncodeLeaf() = %v", err)
	}
	if len(leaf) < 350 || len(leaf) > 450 {
		b.Fatalf("benchmark leaf is %d bytes, want about 400", len(leaf))
	}
	i := bytes.Index(leaf, []byte(benchCounterMarker))
	if i < 0 {
		b.Fatalf("canonical leaf lost the counter marker: %s", leaf)
	}
	return &leafSource{tmpl: leaf, off: i + len("req-")}
}

// size returns the length of every leaf.
func (s *leafSource) size() int { return len(s.tmpl) }

// leaf returns a fresh copy of the template carrying counter n.
func (s *leafSource) leaf(n uint64) []byte {
	b := bytes.Clone(s.tmpl)
	for i := s.off + 15; i >= s.off; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return b
}

// entry returns the next entry, without a dedup key.
func (s *leafSource) entry() ledger.Entry {
	return ledger.Entry{Data: s.leaf(s.next.Add(1))}
}

// dedupEntry returns an entry for counter n with a dedup key and
// fingerprint, as the API builds them for events that carry an "id".
func (s *leafSource) dedupEntry(n uint64) ledger.Entry {
	data := s.leaf(n)
	return ledger.Entry{
		Data:        data,
		DedupKey:    fmt.Appendf(nil, "event\x00client-%016d", n),
		Fingerprint: sha256.Sum256(data),
	}
}

func benchSigner(b testing.TB) ledger.Signer {
	b.Helper()
	sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		b.Fatalf("NewED25519SignerVerifier() = %v", err)
	}
	s, err := ledger.NewNoteSigner(benchOrigin, sv)
	if err != nil {
		b.Fatalf("NewNoteSigner() = %v", err)
	}
	return s
}

// benchConfig is a production-like configuration: default queue, batch
// and Badger options, checkpoints every second.
func benchConfig(b testing.TB, dir string, signer ledger.Signer) ledger.Config {
	return ledger.Config{Dir: dir, Origin: benchOrigin, Signer: signer}
}

// benchLedger is a ledger under benchmark and the registry of its
// metrics.
type benchLedger struct {
	*ledger.Ledger
	reg *prometheus.Registry
	dir string
}

// createBenchLedger creates a log in a fresh b.TempDir().
func createBenchLedger(b testing.TB) benchLedger {
	b.Helper()
	cfg := benchConfig(b, b.TempDir(), benchSigner(b))
	cfg.Registerer = prometheus.NewRegistry()
	l, err := ledger.Create(context.Background(), cfg)
	if err != nil {
		b.Fatalf("Create() = %v", err)
	}
	return benchLedger{l, cfg.Registerer.(*prometheus.Registry), cfg.Dir}
}

// closeBench closes l outside the benchmark timer. If commits is set it
// reports, from the ledger's metrics, the mean entries per commit and
// commit latency, and from the closed storage the value-log bytes written
// per appended entry (entries are 438 bytes; the rest is write
// amplification: partial bundles and tiles rewritten by every commit).
func closeBench(b *testing.B, l benchLedger, commits bool) {
	b.Helper()
	b.StopTimer()
	mfs, err := l.reg.Gather()
	if err != nil {
		b.Fatalf("Gather() = %v", err)
	}
	if err := l.Close(context.Background()); err != nil {
		b.Fatalf("Close() = %v", err)
	}
	if !commits {
		return
	}
	for _, mf := range mfs {
		if len(mf.GetMetric()) == 0 {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if h == nil || h.GetSampleCount() == 0 {
			continue
		}
		mean := h.GetSampleSum() / float64(h.GetSampleCount())
		switch mf.GetName() {
		case "accessledger_batch_size_entries":
			b.ReportMetric(mean, "entries/commit")
		case "accessledger_commit_latency_seconds":
			b.ReportMetric(mean*1000, "ms/commit")
		}
	}
	vlogs, _ := filepath.Glob(filepath.Join(l.dir, "*.vlog"))
	var written int64
	for _, f := range vlogs {
		if fi, err := os.Stat(f); err == nil {
			written += fi.Size()
		}
	}
	if size, _ := l.Size(); size > 0 && written > 0 {
		b.ReportMetric(float64(written)/float64(size), "vlog-B/entry")
	}
}

// reportEvents reports events per second of measured wall time and, if
// cpu0 is not negative, CPU microseconds per event since cpu0.
func reportEvents(b *testing.B, n int64, cpu0 time.Duration) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(n)/s, "events/s")
	}
	if cpu0 >= 0 && n > 0 {
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n), "cpu-µs/event")
	}
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// parallelism returns the SetParallelism argument that puts about want
// goroutines in RunParallel.
func parallelism(want int) int {
	return max(1, (want+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0))
}

// appendOrFail appends and fails the benchmark on error. Pushback is an
// error here: the benchmarks stay far below the queue bound.
func appendOrFail(b *testing.B, l benchLedger, entries ...ledger.Entry) []ledger.Result {
	res, err := l.Append(context.Background(), entries...)
	if err != nil {
		b.Errorf("Append(%d entries) = %v", len(entries), err)
		return nil
	}
	return res
}

// BenchmarkAppend measures durable appends of one event per call with
// about 256 callers in flight: the sequencer batches them into shared
// synced transactions. One op is one Append call of one entry.
func BenchmarkAppend(b *testing.B) {
	src := newLeafSource(b)
	l := createBenchLedger(b)
	b.SetBytes(int64(src.size()))
	b.ReportAllocs()
	b.SetParallelism(parallelism(benchInFlight))
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			appendOrFail(b, l, src.entry())
		}
	})
	reportEvents(b, int64(b.N), cpu0)
	closeBench(b, l, true)
}

// BenchmarkAppendBatch100 measures durable appends of 100 events per call
// from 16 concurrent callers, like the HTTP API under batched clients. One
// op is one Append call of 100 entries.
func BenchmarkAppendBatch100(b *testing.B) {
	const batch = 100
	src := newLeafSource(b)
	l := createBenchLedger(b)
	b.SetBytes(int64(batch * src.size()))
	b.ReportAllocs()
	b.SetParallelism(parallelism(16))
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		entries := make([]ledger.Entry, batch)
		for pb.Next() {
			for i := range entries {
				entries[i] = src.entry()
			}
			appendOrFail(b, l, entries...)
		}
	})
	reportEvents(b, int64(b.N)*batch, cpu0)
	closeBench(b, l, true)
}

// BenchmarkAppendDedup measures appends of one event per call that carry
// a dedup key (events with an "id"), with about 256 callers in flight.
// "new" appends fresh keys: each costs a dedup lookup that misses plus the
// dedup record. "resubmit" re-sends keys already in the log: each is a
// lookup that hits, and nothing is written.
func BenchmarkAppendDedup(b *testing.B) {
	b.Run("new", func(b *testing.B) {
		src := newLeafSource(b)
		l := createBenchLedger(b)
		var next atomic.Uint64
		b.SetBytes(int64(src.size()))
		b.ReportAllocs()
		b.SetParallelism(parallelism(benchInFlight))
		b.ResetTimer()
		cpu0 := cpuTime()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if res := appendOrFail(b, l, src.dedupEntry(next.Add(1))); res != nil && res[0].Duplicate {
					b.Errorf("Append(new key) = duplicate of %d", res[0].Index)
				}
			}
		})
		reportEvents(b, int64(b.N), cpu0)
		closeBench(b, l, true)
	})
	b.Run("resubmit", func(b *testing.B) {
		const keys = 10_000
		src := newLeafSource(b)
		l := createBenchLedger(b)
		for done := 0; done < keys; {
			entries := make([]ledger.Entry, 0, 1000)
			for ; len(entries) < cap(entries) && done < keys; done++ {
				entries = append(entries, src.dedupEntry(uint64(done)))
			}
			appendOrFail(b, l, entries...)
		}
		var next atomic.Uint64
		b.SetBytes(int64(src.size()))
		b.ReportAllocs()
		b.SetParallelism(parallelism(benchInFlight))
		b.ResetTimer()
		cpu0 := cpuTime()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if res := appendOrFail(b, l, src.dedupEntry(next.Add(1)%keys)); res != nil && !res[0].Duplicate {
					b.Errorf("Append(known key) appended a new entry %d", res[0].Index)
				}
			}
		})
		reportEvents(b, int64(b.N), cpu0)
		closeBench(b, l, false)
	})
}

// buildBenchLog creates a log of benchLogSize entries in a b.TempDir(),
// closes it and returns its configuration. It appends 1000-entry batches
// from 4 goroutines, and takes a second or two.
func buildBenchLog(b *testing.B) ledger.Config {
	b.Helper()
	cfg := benchConfig(b, b.TempDir(), benchSigner(b))
	l, err := ledger.Create(context.Background(), cfg)
	if err != nil {
		b.Fatalf("Create() = %v", err)
	}
	src := newLeafSource(b)
	const batch = 1000
	var wg sync.WaitGroup
	var calls atomic.Int64
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for calls.Add(1) <= benchLogSize/batch {
				entries := make([]ledger.Entry, batch)
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
	return cfg
}

// openBenchLog builds the benchmark log and opens it quickly.
func openBenchLog(b *testing.B) *ledger.Ledger {
	b.Helper()
	cfg := buildBenchLog(b)
	cfg.QuickOpen = true
	l, err := ledger.Open(context.Background(), cfg)
	if err != nil {
		b.Fatalf("Open() = %v", err)
	}
	if size, _ := l.Size(); size != benchLogSize {
		b.Fatalf("Size() = %d, want %d", size, benchLogSize)
	}
	return l
}

// BenchmarkInclusionProof measures building inclusion proofs for random
// leaves of a 100,000-entry log from the stored tiles.
func BenchmarkInclusionProof(b *testing.B) {
	l := openBenchLog(b)
	defer l.Close(context.Background())
	size, root := l.Size()
	ctx := context.Background()
	// Check one proof with an independent verifier before timing.
	idx := uint64(size / 3)
	data, leafHash, err := l.Entry(ctx, idx)
	if err != nil {
		b.Fatalf("Entry(%d) = %v", idx, err)
	}
	p, err := l.InclusionProof(ctx, idx, size)
	if err != nil {
		b.Fatalf("InclusionProof(%d, %d) = %v", idx, size, err)
	}
	if want := rfc6962.DefaultHasher.HashLeaf(data); !bytes.Equal(leafHash, want) {
		b.Fatalf("Entry(%d) leaf hash = %x, want %x", idx, leafHash, want)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, size, leafHash, p, root); err != nil {
		b.Fatalf("VerifyInclusion(InclusionProof(%d, %d)) = %v", idx, size, err)
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		i := rng.Uint64N(size)
		if _, err := l.InclusionProof(ctx, i, size); err != nil {
			b.Fatalf("InclusionProof(%d, %d) = %v", i, size, err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N), "µs/proof")
}

// BenchmarkConsistencyProof measures building consistency proofs from a
// random earlier size to the full 100,000-entry log.
func BenchmarkConsistencyProof(b *testing.B) {
	l := openBenchLog(b)
	defer l.Close(context.Background())
	size, root := l.Size()
	ctx := context.Background()
	from := size / 3
	fromRoot, err := l.RootAt(ctx, from)
	if err != nil {
		b.Fatalf("RootAt(%d) = %v", from, err)
	}
	p, err := l.ConsistencyProof(ctx, from, size)
	if err != nil {
		b.Fatalf("ConsistencyProof(%d, %d) = %v", from, size, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, from, size, p, fromRoot, root); err != nil {
		b.Fatalf("VerifyConsistency(ConsistencyProof(%d, %d)) = %v", from, size, err)
	}
	rng := mrand.New(mrand.NewPCG(3, 4))
	b.ReportAllocs()
	for b.Loop() {
		f := 1 + rng.Uint64N(size-1)
		if _, err := l.ConsistencyProof(ctx, f, size); err != nil {
			b.Fatalf("ConsistencyProof(%d, %d) = %v", f, size, err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N), "µs/proof")
}

// BenchmarkOpenVerify measures Open with full verification (every entry
// re-hashed, every tile checked, the root checked against the latest
// checkpoint) of a 100,000-entry log, followed by Close. The "quick"
// sub-benchmark opens with QuickOpen for comparison.
func BenchmarkOpenVerify(b *testing.B) {
	cfg := buildBenchLog(b)
	for _, quick := range []bool{false, true} {
		name := "full"
		if quick {
			name = "quick"
		}
		b.Run(name, func(b *testing.B) {
			cfg := cfg
			cfg.QuickOpen = quick
			b.ReportAllocs()
			for b.Loop() {
				l, err := ledger.Open(context.Background(), cfg)
				if err != nil {
					b.Fatalf("Open() = %v", err)
				}
				if size, _ := l.Size(); size != benchLogSize {
					b.Fatalf("Size() = %d, want %d", size, benchLogSize)
				}
				if err := l.Close(context.Background()); err != nil && !errors.Is(err, ledger.ErrClosed) {
					b.Fatalf("Close() = %v", err)
				}
			}
			reportEvents(b, int64(b.N)*benchLogSize, -1)
			b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/open")
		})
	}
}

// BenchmarkFollowEdge measures a follower of a log that grows a few
// entries per commit, as single-event requests make it grow: every commit
// wakes the follower, which reads the edge bundle again. One op is one
// commit of 4 entries, appended and then followed (allocations are both
// sides').
func BenchmarkFollowEdge(b *testing.B) {
	src := newLeafSource(b)
	l := createBenchLedger(b)
	ctx, cancel := context.WithCancel(context.Background())
	next, stop := iter.Pull2(l.Follow(ctx, 0))
	defer func() { cancel(); stop() }()
	batch := make([]ledger.Entry, 4)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for i := range batch {
			batch[i] = src.entry()
		}
		if _, err := l.Append(ctx, batch...); err != nil {
			b.Fatal(err)
		}
		for range batch {
			if _, err, ok := next(); !ok || err != nil {
				b.Fatalf("follow: %v", err)
			}
		}
	}
	b.StopTimer()
	cancel()
	stop()
	closeBench(b, l, true)
}
