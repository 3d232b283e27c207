package index_test

import (
	"testing"
	"time"

	"github.com/accessledger/accessledger/ledger/index"
)

// BenchmarkIndexLog measures how fast the follower indexes a log that is
// already written (catching up after a restart, or rebuilding): b.N
// entries.
//
//	go test ./index -run '^$' -bench IndexLog -benchtime 200000x
func BenchmarkIndexLog(b *testing.B) {
	leaves := generate(b.N, 9)
	l := newLedger(b)
	appendAll(b, l, leaves)
	b.ResetTimer()
	start := time.Now()
	x := startIndex(b, l, b.TempDir())
	waitIndexed(b, x.Index, uint64(b.N))
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
}

// BenchmarkQuery measures queries on an indexed log of 200,000 entries.
//
//	go test ./index -run '^$' -bench Query
func BenchmarkQuery(b *testing.B) {
	const n = 200_000
	leaves := generate(n, 10)
	l := newLedger(b)
	appendAll(b, l, leaves)
	x := startIndex(b, l, b.TempDir())
	waitIndexed(b, x.Index, n)
	for _, bc := range []struct {
		name string
		q    index.Query
	}{
		{"Actor", index.Query{Actor: []string{"user-042"}}},
		{"CIDR24", index.Query{SourceIP: prefixes("203.0.113.0/24")}},
		{"FailedLoginsHour", index.Query{Action: []string{"login"}, Outcome: []string{"failure"}, Since: at(6 * day), Until: at(6*day + hour)}},
	} {
		b.Run(bc.name+"/FirstPage", func(b *testing.B) {
			for b.Loop() {
				search(b, x.Index, bc.q, 0, ^uint64(0), false, 100)
			}
		})
		b.Run(bc.name+"/Count", func(b *testing.B) {
			for b.Loop() {
				if _, _, err := x.Count(bg, bc.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
