package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/accessledger/accessledger/event"
)

// benchLeaves returns n leaves as the log stores them.
func benchLeaves(b *testing.B, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		var ev map[string]any
		if err := json.Unmarshal(testEvent("", i), &ev); err != nil {
			b.Fatal(err)
		}
		body, _ := json.Marshal(ev)
		leaf, err := event.EncodeLeaf(event.KindEvent, time.Unix(1_800_000_000, int64(i)), body)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = leaf
	}
	return out
}

// BenchmarkAuditLeaves measures the auditor's own work per leaf in
// --full, without the network: checking the leaf envelope, hashing it and
// adding it to the recomputed tree.
//
//	go test -run XXX -bench AuditLeaves -cpu 1 ./cmd/accessledger
func BenchmarkAuditLeaves(b *testing.B) {
	leaves := benchLeaves(b, 4096)
	size := 0
	for _, l := range leaves {
		size += len(l)
	}
	for _, bc := range []struct {
		name     string
		validate bool
	}{{"hash", false}, {"validate+hash", true}} {
		b.Run(bc.name, func(b *testing.B) {
			rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
			rng := rf.NewEmptyRange(0)
			h := make([]byte, 32)
			b.SetBytes(int64(size / len(leaves)))
			b.ResetTimer()
			for i := range b.N {
				e := leaves[i%len(leaves)]
				if bc.validate {
					if err := validLeaf(e); err != nil {
						b.Fatal(err)
					}
				}
				hashLeaf(h, e)
				if err := rng.Append(h, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
		})
	}
}
