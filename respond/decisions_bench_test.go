package respond_test

import (
	"fmt"
	"net/netip"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/accessledger/accessledger/respond"
)

// benchActive is the number of active decisions the benchmarks hold.
const benchActive = 100_000

// benchStore returns a store holding benchActive decisions (one address
// each), with bouncer "fw" up to date. Its bound on active decisions is
// far above the default: BenchmarkDecisionsDeltaPull adds 10 per
// iteration, and on a quiet machine it ran more than 90,000 iterations,
// past the default 1,000,000 (the benchmark failed in `make bench`).
func benchStore(b *testing.B) *decFixture {
	b.Helper()
	f := newDecFixture(b, respond.DecisionsConfig{MaxActive: 10_000_000})
	for i := range benchActive {
		addDecision(b, f, i)
	}
	f.pull("fw", true)
	return f
}

func addDecision(b *testing.B, f *decFixture, i int) {
	addr := netip.AddrFrom4([4]byte{10 + byte(i>>24), byte(i >> 16), byte(i >> 8), byte(i)})
	_, _, err := f.store.Add(decCtx, respond.DecisionInput{Key: fmt.Sprint(i), AlertIndex: uint64(i), Scenario: "bench",
		Value: addr.String(), Duration: time.Hour + time.Duration(i)*time.Millisecond})
	if err != nil {
		b.Fatalf("Add(%d) = %v", i, err)
	}
}

// BenchmarkDecisionsDeltaPull measures a bouncer's pull (Stream and Ack)
// with 100,000 active decisions and 10 new ones since its last pull.
func BenchmarkDecisionsDeltaPull(b *testing.B) {
	f := benchStore(b)
	next := benchActive
	for b.Loop() {
		b.StopTimer()
		for range 10 {
			addDecision(b, f, next)
			next++
		}
		b.StartTimer()
		ans := f.pull("fw", false)
		if len(ans.New) != 10 || ans.Full {
			b.Fatalf("pull: %d new (full %v), want 10", len(ans.New), ans.Full)
		}
	}
}

// BenchmarkDecisionsEmptyPull measures the pull of an up-to-date bouncer
// with 100,000 active decisions: what most pulls are.
func BenchmarkDecisionsEmptyPull(b *testing.B) {
	f := benchStore(b)
	for b.Loop() {
		if ans := f.pull("fw", false); len(ans.New)+len(ans.Deleted) != 0 {
			b.Fatalf("pull: %d new, %d deleted; want none", len(ans.New), len(ans.Deleted))
		}
	}
}

// BenchmarkDecisionsStartupPull measures a bouncer's startup pull of
// 100,000 active decisions.
func BenchmarkDecisionsStartupPull(b *testing.B) {
	f := benchStore(b)
	for b.Loop() {
		if ans := f.pull("fw", true); len(ans.New) != benchActive {
			b.Fatalf("startup pull: %d new, want %d", len(ans.New), benchActive)
		}
	}
}

// BenchmarkDecisionsAdd measures adding a decision (one Badger
// transaction each).
func BenchmarkDecisionsAdd(b *testing.B) {
	f := newDecFixture(b, respond.DecisionsConfig{})
	i := 0
	for b.Loop() {
		addDecision(b, f, i)
		i++
	}
}

// BenchmarkDecisionsGC measures what 100,000 active decisions cost the
// garbage collector, which marks them at every collection of the server:
// the objects they hold, per decision, and the time of a full collection
// with them live.
func BenchmarkDecisionsGC(b *testing.B) {
	base := liveObjects()
	f := benchStore(b)
	// The test recorder keeps what the log would have been given.
	f.rec.mu.Lock()
	f.rec.got = nil
	f.rec.mu.Unlock()
	objects := liveObjects() - base
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
	}
	b.ReportMetric(float64(objects)/benchActive, "objects/decision")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "gc-ms")
	runtime.KeepAlive(f)
}

// liveObjects returns the live heap objects after a full collection.
func liveObjects() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/objects:objects"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
