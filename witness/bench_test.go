package witness

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// BenchmarkAddCheckpoint measures cosigned checkpoints per second: logs
// advance one entry per submission, each with a consistency proof, from
// many goroutines (one log each), so that Badger batches the synced
// commits as it would under many clients. Run on one core with
//
//	go test -run XXX -bench AddCheckpoint -cpu 1 ./witness
func BenchmarkAddCheckpoint(b *testing.B) {
	for _, logs := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("logs=%d", logs), func(b *testing.B) {
			ctx := context.Background()
			perLog := b.N/logs + 2
			tls := make([]*testLog, logs)
			reqs := make([][]AddRequest, logs)
			for i := range tls {
				tls[i] = newTestLog(b, fmt.Sprintf("bench.example/log%d", i))
				tls[i].append(perLog+1, "x")
				reqs[i] = make([]AddRequest, perLog)
				for j := range reqs[i] {
					reqs[i][j] = tls[i].request(int64(j), int64(j+1))
				}
			}
			w := newTestWitness(b, tls...)
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := range logs {
				n := b.N / logs
				if i < b.N%logs {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range n {
						if _, err := w.AddCheckpoint(ctx, reqs[i][j]); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cosignatures/s")
		})
	}
}
