package index

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
)

// TestShortListBytes checks that a short posting list, serialized without
// building a bitmap, is byte for byte what roaring writes for the same
// positions, and that longer lists are roaring's own bytes.
func TestShortListBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 1; n <= shortList+8; n++ {
		for range 20 {
			set := map[uint16]bool{}
			for len(set) < n {
				set[uint16(rng.IntN(chunkSize))] = true
			}
			if n == 1 && rng.IntN(2) == 0 {
				set = map[uint16]bool{[]uint16{0, chunkSize - 1}[rng.IntN(2)]: true}
			}
			pos := slices.Sorted(maps.Keys(set))
			var l plist
			bm := roaring.New()
			for _, p := range pos {
				l.add(uint32(p))
				bm.Add(uint32(p))
			}
			want, err := bm.ToBytes()
			if err != nil {
				t.Fatal(err)
			}
			got, err := l.appendBytes([]byte("prefix"))
			if err != nil || !bytes.Equal(got[6:], want) || string(got[:6]) != "prefix" {
				t.Fatalf("appendBytes(%v) = %x, %v; want roaring's %x", pos, got, err, want)
			}
			back := roaring.New()
			if err := back.UnmarshalBinary(got[6:]); err != nil || !back.Equals(bm) {
				t.Fatalf("roaring reads appendBytes(%v) as %v, %v", pos, back, err)
			}
		}
	}
}
