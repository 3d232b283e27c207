package index

import (
	"bytes"
	"testing"
)

// TestChunkKeysSortAfterEarlierChunks: every key a chunk's write stores
// (its segments' directories and blocks, its blocks of event times) sorts
// after every key of the chunks before it, and the meta after all of
// them, so that compacting what a write added overlaps only the end of
// the index's key space.
func TestChunkKeysSortAfterEarlierChunks(t *testing.T) {
	keysOf := func(chunk uint32) [][]byte {
		var ks [][]byte
		for f := fieldKind; f < numFields; f++ {
			ks = append(ks, directoryKey(chunk, f), blockKey(chunk, f, 0), blockKey(chunk, f, 1<<31))
		}
		first := uint64(chunk) << (chunkBits - blockBits)
		for b := first; b < first+chunkSize/blockSize; b++ {
			ks = append(ks, timesKey(b))
		}
		return ks
	}
	for _, c := range []uint32{0, 1, 255, 256, 65535, 1 << 31} {
		for _, k := range keysOf(c) {
			for _, next := range keysOf(c + 1) {
				if bytes.Compare(k, next) >= 0 {
					t.Fatalf("key %x of chunk %d does not sort before key %x of chunk %d", k, c, next, c+1)
				}
			}
			if bytes.Compare(k, keyMeta) >= 0 {
				t.Fatalf("key %x of chunk %d does not sort before the meta %x", k, c, keyMeta)
			}
		}
	}
	// The times of a block are in the block's chunk.
	if got, want := timesKey(chunkSize / blockSize)[:5], postingPrefix(1, fieldKind)[:5]; !bytes.Equal(got, want) {
		t.Errorf("times of the first block of chunk 1 under %x, want the chunk's prefix %x", got, want)
	}
}
