package index

import (
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// loadgenLeaves returns n leaves shaped like cmd/loadgen's events, as the
// API writes them (with the key that submitted them): a skewed population
// of 20,000 actors with stable addresses, unique resource ids on data
// access, times within seconds of each other.
func loadgenLeaves(n int) []ledger.Leaf {
	r := mrand.New(mrand.NewPCG(1, 2))
	actions := []string{"login", "logout", "read", "update", "create", "delete"}
	out := make([]ledger.Leaf, n)
	t0 := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	for i := range out {
		a := int(r.ExpFloat64()*2000) % 20000
		ip := fmt.Sprintf("10.%d.%d.%d", a>>16, a>>8&255, a&255)
		res := ""
		if r.IntN(2) == 0 {
			res = fmt.Sprintf(`,"resource":{"type":"invoice","id":"inv-%d"}`, r.IntN(1_000_000))
		}
		data := fmt.Sprintf(`{"kind":"event","received_at":"2026-11-27T05:00:00.000000000Z","submitted_by":"ingest","body":{"time":%q,"service":"svc-%d","actor":{"id":"user-%d","type":"user","session":"s1"},"source":{"ip":%q,"port":1234,"user_agent":"Mozilla/5.0"},"action":%q,"category":"data_access","outcome":"success"%s,"request_id":"%x","tenant":"t%d"}}`,
			t0.Add(time.Duration(i)*20*time.Microsecond).Format("2006-01-02T15:04:05.000000000Z"), a%12, a, ip, actions[r.IntN(len(actions))], res, r.Uint64(), a%5)
		out[i] = ledger.Leaf{Index: uint64(i), Data: []byte(data)}
	}
	return out
}

// BenchmarkFollowerAdd measures indexing one leaf in memory (parsing and
// posting-list updates), without storage.
func BenchmarkFollowerAdd(b *testing.B) {
	leaves := loadgenLeaves(chunkSize)
	benchAdd(b, len(leaves), func(f *follower, j int) { f.add(leaves[j].Index, leaves[j].Data) })
}

// benchAdd runs add for leaves 0..n-1 over and over, b.N calls in all, in
// a fresh open chunk for each pass.
func benchAdd(b *testing.B, n int, add func(f *follower, j int)) {
	m, _ := newMetrics(&Index{}, nil)
	x := &Index{metrics: m}
	b.ResetTimer()
	for i := 0; i < b.N; {
		f := &follower{x: x, mem: newMemChunk(0)}
		for j := 0; j < n && i < b.N; j++ {
			add(f, j)
			i++
		}
	}
}

// BenchmarkFollowerAddDecoded is BenchmarkFollowerAdd for leaves the log
// still holds in memory with what they were appended with: the same
// posting-list updates, without parsing.
func BenchmarkFollowerAddDecoded(b *testing.B) {
	leaves := loadgenLeaves(chunkSize)
	decoded := make([]*event.Decoded, len(leaves))
	for i, lf := range leaves {
		l, err := event.DecodeLeaf(lf.Data)
		if err != nil {
			b.Fatal(err)
		}
		ev, err := event.Parse(l.Body, event.ParseOptions{})
		if err != nil {
			b.Fatal(err)
		}
		decoded[i] = &event.Decoded{ReceivedAt: l.ReceivedAt, SubmittedBy: l.SubmittedBy, Event: ev}
	}
	benchAdd(b, len(leaves), func(f *follower, j int) { f.addDecoded(leaves[j].Index, decoded[j]) })
}
